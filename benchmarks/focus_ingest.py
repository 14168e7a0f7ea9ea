"""Ingest speed of a FOCUS export: opsflow's normalizer against a naive pandas baseline.

Generates an AWS "FOCUS 1.0 with AWS columns" CSV (48 columns, the sample generator's
data at scale, with its planted bad rows) in a temporary folder (not timed), then
times, each variant in a fresh subprocess so that its peak RSS is its own:

  opsflow  tasks.costs.normalize.pipeline.iter_normalized + tasks.costs.dataset (the flow's writer)
  naive    pandas.read_csv (default C engine, all columns as text) + the same
           conversions row by row with DataFrame.apply(axis=1) + DataFrame.to_parquet

The naive variant is first run on a 100,000-row slice; if the full file would take more
than ~5 minutes at that rate, its figure is extrapolated from the slice (and says so).

Usage:  .venv/bin/python benchmarks/focus_ingest.py [--rows 1000000] [--repeat 3]
        .venv/bin/python benchmarks/focus_ingest.py --variant opsflow --input X.csv --output Y
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

SLICE_ROWS = 100_000
FULL_RUN_LIMIT_S = 300.0


# --- the variants (each runs in its own process) ------------------------------------------


def write_batches(batches, path: Path) -> int:
    """The write step: every normalized batch into the cost dataset (rows written).

    The same transaction ``collect-costs`` uses: per (partition, source) Parquet files,
    then one atomic manifest swap.
    """
    from tasks.costs.dataset import CostDataset

    with CostDataset(path).replacing() as tx:
        for batch in batches:
            tx.write(batch.table)
    return tx.summary.rows_written


def run_opsflow(src: Path, dest: Path) -> dict:
    from tasks.costs.normalize.pipeline import iter_normalized

    quarantined = 0

    def counted():
        nonlocal quarantined
        for batch in iter_normalized(src):
            quarantined += batch.quarantine.num_rows
            yield batch

    kept = write_batches(counted(), dest)
    return {"kept": kept, "quarantined": quarantined}


def _naive_row_normalizer():
    """A row -> normalized row function doing the same conversions as tasks.costs.normalize."""
    import pandas as pd

    from tasks.costs import focus_schema as fs
    from tasks.costs.normalize import convert as f

    positions: dict[str, str] = {}
    nulls = set(f.NULL_SPELLINGS)
    enums = {
        name: {f._enum_key(v): v for v in values} | f._LEGACY_ENUM_VALUES.get(name, {})
        for name, values in f._ENUMS.items()
    }

    def text(v):
        if v is None or (isinstance(v, float) and math.isnan(v)):
            return None
        s = str(v).strip()
        return None if s in nulls else s

    def normalize_row(row: pd.Series) -> pd.Series:
        out, problems = {}, []
        for name in fs.COLUMN_NAMES:
            raw = row.get(positions[name]) if name in positions else None
            v = text(raw)
            typ = fs.COLUMN_TYPES[name]
            if name == "Tags":
                pairs, ok = f.parse_tags(raw) if isinstance(raw, str) else (None, True)
                out[name] = pairs
            elif str(typ) == "double":
                try:
                    out[name] = None if v is None else float(v)
                    if out[name] is not None and not math.isfinite(out[name]):
                        raise ValueError(v)
                except ValueError:
                    out[name] = None
                    if name in fs.COST_COLUMNS:
                        problems.append(f"{name}: not a number ('{raw}')")
            elif str(typ).startswith("timestamp"):
                out[name] = None if v is None else f.parse_timestamp(v)
                if v is not None and out[name] is None:
                    problems.append(f"{name}: not a timestamp ('{raw}')")
            elif name in enums:
                out[name] = None if v is None else enums[name].get(f._enum_key(v))
                if v is not None and out[name] is None:
                    if name == "ChargeCategory":
                        problems.append(f"{name}: unknown value ('{raw}')")
                    elif name == "ServiceCategory":
                        out[name] = "Other"
            elif name in ("BillingCurrency", "PricingCurrency"):
                out[name] = None if v is None else v.upper()
                if out[name] is not None and not (len(v) == 3 and v.isalpha() and v.isascii()):
                    out[name] = None
                    if name == "BillingCurrency":
                        problems.append(f"{name}: not a 3-letter currency code ('{raw}')")
            else:
                out[name] = v
        if out["ListCost"] is None:
            out["ListCost"] = out["EffectiveCost"]
        if out["ContractedCost"] is None:
            out["ContractedCost"] = out["BilledCost"]
        for name in fs.REQUIRED:
            if out[name] is None:
                problems.append(f"{name}: required value is missing")
        start, end = out["ChargePeriodStart"], out["ChargePeriodEnd"]
        if start and end and end <= start:
            problems.append("ChargePeriodEnd: not after ChargePeriodStart")
        out[fs.SOURCE_COLUMN] = (
            f"focus:{fs.provider_key(out['ProviderName'])}:{out['BillingAccountId'] or ''}"
        )
        out["_problems"] = "; ".join(problems) or None
        return pd.Series(out)

    def bind(columns) -> None:
        positions.update({canon: columns[i] for canon, i in f.resolve_columns(columns).items()})

    return normalize_row, bind


def run_naive(src: Path, dest: Path) -> dict:
    import pandas as pd

    from tasks.costs import focus_schema as fs

    df = pd.read_csv(src, dtype=str, keep_default_na=False)
    normalize_row, bind = _naive_row_normalizer()
    bind(list(df.columns))
    out = df.apply(normalize_row, axis=1)
    bad = out["_problems"].notna()
    good = out.loc[~bad, list(fs.SCHEMA.names)]
    good.to_parquet(dest, schema=fs.SCHEMA, index=False)
    return {"kept": int((~bad).sum()), "quarantined": int(bad.sum())}


def peak_rss_mb() -> float:
    """This process's peak RSS. VmHWM belongs to the process image, unlike ru_maxrss,
    which Linux carries over from the parent across fork + exec."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(variant: str, src: Path, dest: Path, rows: int) -> None:
    if variant == "generate":
        make_input(rows, src, dest)
        return
    run = {"opsflow": run_opsflow, "naive": run_naive}[variant]
    start = time.perf_counter()
    result = run(src, dest)
    result["seconds"] = time.perf_counter() - start
    result["peak_rss_mb"] = peak_rss_mb()
    print(json.dumps(result))


# --- the driver ---------------------------------------------------------------------------


def make_input(rows: int, full: Path, part: Path) -> None:
    """A ``rows``-row AWS FOCUS CSV and its first ``SLICE_ROWS`` rows as a second file."""
    import pyarrow.csv as pacsv

    from samples import focus_exports as samples

    start, end = samples.SAMPLE_START, samples.SAMPLE_END
    per_scale = samples.generate_export("aws", start, end).num_rows
    table = samples.generate_export("aws", start, end, scale=rows / per_scale * 1.01)
    table = table.slice(0, rows)
    options = pacsv.WriteOptions(quoting_style="needed")
    pacsv.write_csv(table, full, options)
    pacsv.write_csv(table.slice(0, min(rows, SLICE_ROWS)), part, options)


def spawn(variant: str, src: Path, dest: Path, rows: int = 0) -> dict:
    cmd = [sys.executable, __file__, "--variant", variant, "--input", str(src)]
    cmd += ["--output", str(dest), "--rows", str(rows)]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"{variant} failed:\n{done.stderr[-3000:]}")
    lines = done.stdout.strip().splitlines()
    return json.loads(lines[-1]) if lines else {}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3, help="opsflow runs (median shown)")
    parser.add_argument("--variant", choices=["opsflow", "naive", "generate"])
    parser.add_argument("--input", type=Path)
    parser.add_argument("--output", type=Path)
    args = parser.parse_args()
    if args.variant:
        child(args.variant, args.input, args.output, args.rows)
        return

    with tempfile.TemporaryDirectory(prefix="opsflow-focus-bench-") as tmp:
        folder = Path(tmp)
        t = time.perf_counter()
        full, part = folder / "aws_focus.csv", folder / "aws_focus_slice.csv"
        spawn("generate", full, part, args.rows)  # in a child: this process stays small
        size_mb = full.stat().st_size / 1e6
        print(
            f"input: {args.rows:,} rows x 48 columns, {size_mb:,.0f} MB CSV "
            f"(generated in {time.perf_counter() - t:.1f} s, not timed)"
        )
        print(f"machine: {os.cpu_count()} CPUs, python {sys.version.split()[0]}, {_versions()}")
        results = []
        runs = [spawn("opsflow", full, folder / f"dataset-{i}") for i in range(args.repeat)]
        runs.sort(key=lambda r: r["seconds"])
        ops = dict(runs[len(runs) // 2], peak_rss_mb=max(r["peak_rss_mb"] for r in runs))
        note = f"median of {len(runs)} runs" if len(runs) > 1 else ""
        results.append(("opsflow", args.rows, ops, note))
        slice_rows = min(args.rows, SLICE_ROWS)
        ops_slice = spawn("opsflow", part, folder / "dataset-slice")
        naive_slice = spawn("naive", part, folder / "naive_slice.parquet")
        estimate = naive_slice["seconds"] * args.rows / slice_rows
        if args.rows == slice_rows:
            results.append(("naive (pandas apply)", args.rows, naive_slice, ""))
        elif estimate > FULL_RUN_LIMIT_S:
            note = (
                f"extrapolated from {slice_rows:,} rows measured in "
                f"{naive_slice['seconds']:.1f} s (full run est. > {FULL_RUN_LIMIT_S:.0f} s); "
                "RSS of that slice run"
            )
            scaled = dict(naive_slice, seconds=estimate)
            results.append(("naive (pandas apply)", args.rows, scaled, note))
        else:
            naive = spawn("naive", full, folder / "naive.parquet")
            results.append(("naive (pandas apply)", args.rows, naive, ""))
        _print_table(results)
        walls = ", ".join(f"{r['seconds']:.2f}" for r in runs)
        print(f"opsflow runs (s): {walls}")
        agree = ops_slice["kept"] == naive_slice["kept"]
        print(
            f"check on the {slice_rows:,}-row slice: opsflow kept {ops_slice['kept']:,} / "
            f"quarantined {ops_slice['quarantined']:,}; naive kept {naive_slice['kept']:,} / "
            f"quarantined {naive_slice['quarantined']:,} ({'agree' if agree else 'DIFFER'})"
        )
        speedup = results[1][2]["seconds"] / ops["seconds"]
        print(f"opsflow is {speedup:,.0f}x faster than the naive baseline")


def _versions() -> str:
    import pandas
    import pyarrow

    return f"pyarrow {pyarrow.__version__}, pandas {pandas.__version__}"


def _print_table(results) -> None:
    print()
    print(f"{'variant':<22} {'rows':>11} {'wall s':>9} {'rows/s':>11} {'peak RSS MB':>12}  note")
    for name, rows, r, note in results:
        approx = "~" if note.startswith("extrapolated") else ""
        print(
            f"{name:<22} {rows:>11,} {approx + format(r['seconds'], ',.2f'):>9} "
            f"{approx + format(rows / r['seconds'], ',.0f'):>11} {r['peak_rss_mb']:>12,.0f}  {note}"
        )
    print(f"(measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; peak RSS of each variant's process)")
    print()


if __name__ == "__main__":
    main()
