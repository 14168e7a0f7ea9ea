"""Generate a cloud's native FOCUS export, write it, and find the bundled ones.

Example:
    ```python
    import tempfile
    from datetime import date

    from samples.focus_exports.generate import generate_export, planted, write_export

    table = generate_export("gcp", date(2026, 10, 1), date(2026, 10, 31))
    with tempfile.TemporaryDirectory() as folder:
        print(write_export(table, f"{folder}/gcp.parquet").stat().st_size, planted(table)["rows"])
    ```
"""

from __future__ import annotations

import gzip
import json
import os
from datetime import date, timedelta
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from samples.focus_exports.aws import aws_lines
from samples.focus_exports.azure import azure_lines
from samples.focus_exports.constants import (
    METADATA_KEY,
    PROVIDERS,
    SAMPLE_END,
    SAMPLE_FILES,
    SAMPLE_START,
)
from samples.focus_exports.gcp import gcp_lines
from samples.focus_exports.grid import build_grid
from samples.focus_exports.mess import Edits, mess_csv, mess_gcp
from samples.focus_exports.render import render_aws, render_azure, render_gcp


def generate_export(
    provider: str,
    start: date,
    end: date,
    *,
    scale: float = 1.0,
    seed: int = 0,
    messy: bool = True,
) -> pa.Table:
    """A cloud's native FOCUS export for charge days ``start``..``end`` (inclusive).

    Args:
        provider: ``aws`` (FOCUS 1.0 with AWS columns), ``azure`` (FocusCost 1.0r2) or
            ``gcp`` (Google Cloud FOCUS export).
        start: first charge day.
        end: last charge day (inclusive).
        scale: multiplies the number of resources (rows per day); ``scale=130`` gives
            about a million AWS rows over the bundled 51 days.
        seed: random seed; the same arguments always give the same table.
        messy: plant bad rows (which a normalizer must quarantine) and messy-but-valid
            values (padded numbers, odd casing, ``NULL`` strings, stray tag whitespace).

    Returns:
        The export as the cloud writes it: all-string columns for the CSV exports
        (AWS, Azure), typed columns for GCP. The schema metadata key
        ``opsflow.planted`` records the planted bad rows and expected totals
        (see :func:`planted`).

    Example:
        ```python
        from datetime import date

        from samples.focus_exports import generate_export, planted

        table = generate_export("aws", date(2026, 10, 1), date(2026, 10, 31))
        print(table.num_rows, planted(table)["bad_rows"])
        ```
    """
    if provider not in PROVIDERS:
        raise ValueError(f"provider: expected one of {PROVIDERS}, got {provider!r}")
    if end < start:
        raise ValueError(f"end: {end} is before start {start}")
    if scale <= 0:
        raise ValueError(f"scale: must be > 0, got {scale}")
    days = [start + timedelta(days=i) for i in range((end - start).days + 1)]
    rng = np.random.default_rng([seed, PROVIDERS.index(provider)])
    build = {"aws": aws_lines, "azure": azure_lines, "gcp": gcp_lines}[provider]
    grid = build_grid(build(days), days, scale, rng)
    if provider == "aws":
        columns = render_aws(grid)
    elif provider == "azure":
        columns = render_azure(grid, mixed_styles=messy)
    else:
        columns = render_gcp(grid)

    edits = Edits(columns, grid.kinds, np.random.default_rng([seed, 99]))
    if messy:
        mess_gcp(edits) if provider == "gcp" else mess_csv(edits, provider)
    columns = edits.apply()

    good = np.ones(len(grid.kinds), dtype=bool)
    good[list(edits.bad)] = False
    currencies = np.array(grid.consts["BillingCurrency"].to_pylist())
    totals = {
        cur: round(float(grid.billed[good & (currencies == cur)].sum()), 6)
        for cur in sorted(set(currencies[good].tolist()))
    }
    meta = {
        "provider": provider,
        "rows": len(grid.kinds),
        "bad_rows": {str(k): v for k, v in sorted(edits.bad.items())},
        "warnings": edits.warnings,
        "billed_total": totals,
    }
    names = list(columns)
    if provider == "azure" and messy:  # a header cell with stray whitespace
        names[names.index("ChargeDescription")] = " ChargeDescription "
    table = pa.table(list(columns.values()), names=names)
    return table.replace_schema_metadata({METADATA_KEY: json.dumps(meta).encode()})


def planted(table: pa.Table) -> dict[str, Any]:
    """What :func:`generate_export` planted, so tests need no magic numbers.

    Args:
        table: a table returned by :func:`generate_export`.

    Returns:
        ``rows``, ``bad_rows`` (row number as text -> reason code), ``warnings``
        (code -> count) and ``billed_total`` of the good rows per currency; ``{}`` for a
        table that did not come from the generator.
    """
    raw = (table.schema.metadata or {}).get(METADATA_KEY)
    return json.loads(raw) if raw else {}


def write_export(table: pa.Table, path: str | os.PathLike) -> Path:
    """Write ``table`` as CSV, gzip CSV or Parquet, chosen by the file name.

    Output is byte-for-byte reproducible (gzip header without a timestamp).

    Args:
        table: an export from :func:`generate_export`.
        path: a ``.csv``, ``.csv.gz`` or ``.parquet`` file name.

    Returns:
        ``path``.
    """
    path = Path(path)
    if path.name.endswith(".parquet"):
        pq.write_table(table, path, compression="zstd")
    elif path.name.endswith(".csv.gz"):
        with open(path, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as gz:
            pacsv.write_csv(table, gz, pacsv.WriteOptions(quoting_style="needed"))
    elif path.name.endswith(".csv"):
        pacsv.write_csv(table, path, pacsv.WriteOptions(quoting_style="needed"))
    else:
        raise ValueError(f"path: expected .csv, .csv.gz or .parquet, got {path.name!r}")
    return path


def write_bundled_samples(dest_dir: str | os.PathLike) -> list[Path]:
    """(Re)write the three bundled sample exports into ``dest_dir``.

    Args:
        dest_dir: target folder (created if missing).

    Returns:
        The written files, AWS, Azure, GCP.

    ``python -m samples.focus_exports`` rewrites the bundled files in place.

    Example:
        ```python
        import tempfile

        from samples.focus_exports import write_bundled_samples

        for path in write_bundled_samples(tempfile.mkdtemp()):
            print(path.name, path.stat().st_size)
        ```
    """
    dest = Path(dest_dir)
    dest.mkdir(parents=True, exist_ok=True)
    return [
        write_export(generate_export(p, SAMPLE_START, SAMPLE_END), dest / SAMPLE_FILES[p])
        for p in PROVIDERS
    ]


def bundled_export_paths() -> list[Path]:
    """Paths of the sample exports shipped inside the package (AWS, Azure, GCP).

    Example:
        ```python
        from samples.focus_exports import bundled_export_paths

        for path in bundled_export_paths():
            print(path.name, path.exists())
        ```
    """
    folder = resources.files("samples") / "data" / "focus_exports"
    return [Path(str(folder / SAMPLE_FILES[p])) for p in PROVIDERS]
