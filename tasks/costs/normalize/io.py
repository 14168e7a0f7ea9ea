"""Reading FOCUS export files: format sniffing, batched CSV / gzip CSV / Parquet reads,
and a prefetch thread that overlaps reading with normalizing.

CSV columns are all read as strings (null spellings already null) so that messy values
reach the converters, and their quarantine, instead of failing the read.

Example:
    ```python
    from samples.focus_exports import bundled_export_paths
    from tasks.costs.normalize.io import read_export_batches, sniff_format

    path = bundled_export_paths()[0]
    print(sniff_format(path))
    for table in read_export_batches(path, batch_rows=10_000):
        print(table.num_rows, table.column_names[:3])
    ```
"""

from __future__ import annotations

import csv
import gzip
import os
import queue
import threading
from collections.abc import Iterator
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from tasks.costs.normalize.convert import NULL_SPELLINGS

DEFAULT_BATCH_ROWS = 262_144
_CSV_BLOCK_BYTES = 2 << 20
_STR = pa.string()


class FocusReadError(ValueError):
    """The export file itself cannot be read (missing, not CSV/Parquet, corrupt)."""


def sniff_format(path: str | os.PathLike) -> str:
    """The export's format from its first bytes, not its name (names lie: ``.csv`` files
    that are gzip, exports renamed by hand).

    Args:
        path: the export file.

    Returns:
        ``"parquet"`` (``PAR1``), ``"gzip"`` (gzip CSV, ``1f8b``) or ``"csv"``.

    Raises:
        FocusReadError: the file cannot be opened, or is a zip archive.
    """
    try:
        with open(path, "rb") as f:
            magic = f.read(4)
    except OSError as exc:
        raise FocusReadError(f"{path}: cannot open export: {exc.strerror or exc}") from exc
    if magic == b"PAR1":
        return "parquet"
    if magic[:2] == b"\x1f\x8b":
        return "gzip"
    if magic == b"PK\x03\x04":
        raise FocusReadError(f"{path}: is a zip archive; extract the CSV or Parquet file first")
    return "csv"


def _csv_header(path: str | os.PathLike, fmt: str) -> list[str]:
    """The header cells (read with Python's csv module, so quoting is honoured)."""
    opener = gzip.open if fmt == "gzip" else open
    with opener(path, "rb") as f:
        first = f.readline(1 << 20).decode("utf-8-sig", errors="replace")
    header = next(csv.reader([first]), [])
    if not any(h.strip() for h in header):
        raise FocusReadError(f"{path}: not a CSV export (no header row)")
    return header


def read_export_batches(
    path: str | os.PathLike,
    batch_rows: int = DEFAULT_BATCH_ROWS,
    *,
    invalid_rows: list[pacsv.InvalidRow] | None = None,
) -> Iterator[pa.Table]:
    """Stream a CSV, gzip CSV or Parquet export in batches of at most ``batch_rows``.

    The format is sniffed from the magic bytes (gzip ``1f8b``, Parquet ``PAR1``), not
    the extension. CSV columns are all read as strings so that messy values reach the
    normalizer (and its quarantine) instead of failing the read.

    Args:
        path: the export file.
        batch_rows: upper bound of rows per yielded table.
        invalid_rows: if given, CSV rows with the wrong number of fields are skipped
            and appended here (``pyarrow.csv.InvalidRow``, with 1-based line numbers);
            if ``None`` such a row raises ``FocusReadError``.

    Returns:
        An iterator of ``pyarrow.Table`` with the file's own column names.

    Raises:
        FocusReadError: the file is missing, empty, corrupt or not CSV/Parquet.

    Example:
        ```python
        from samples.focus_exports import bundled_export_paths
        from tasks.costs.normalize.io import read_export_batches

        for table in read_export_batches(bundled_export_paths()[0], batch_rows=5_000):
            print(table.num_rows)
        ```
    """
    if batch_rows < 1:
        raise ValueError(f"batch_rows: must be >= 1, got {batch_rows}")
    fmt = sniff_format(path)
    try:
        if fmt == "parquet":
            yield from _parquet_batches(path, batch_rows)
        else:
            yield from _csv_batches(path, fmt, batch_rows, invalid_rows)
    except FocusReadError:
        raise
    except (pa.ArrowException, OSError, EOFError, UnicodeDecodeError) as exc:
        raise FocusReadError(f"{path}: cannot read {fmt} export: {exc}") from exc


def _parquet_batches(path: str | os.PathLike, batch_rows: int) -> Iterator[pa.Table]:
    with pq.ParquetFile(str(path)) as pf:
        for batch in pf.iter_batches(batch_size=batch_rows):
            yield pa.Table.from_batches([batch])


def _csv_batches(
    path: str | os.PathLike,
    fmt: str,
    batch_rows: int,
    invalid_rows: list[pacsv.InvalidRow] | None,
) -> Iterator[pa.Table]:
    header = _csv_header(path, fmt)

    def on_invalid(row: pacsv.InvalidRow) -> str:
        if invalid_rows is None:
            return "error"
        invalid_rows.append(row)
        return "skip"

    stream = pa.input_stream(str(path), compression="gzip" if fmt == "gzip" else None)
    reader = pacsv.open_csv(
        stream,
        # Small blocks parse fastest (they stay in CPU cache); batches gather many.
        # Single-threaded parsing keeps InvalidRow line numbers; iter_normalized
        # overlaps reading with normalizing instead.
        read_options=pacsv.ReadOptions(use_threads=False, block_size=_CSV_BLOCK_BYTES),
        parse_options=pacsv.ParseOptions(invalid_row_handler=on_invalid),
        convert_options=pacsv.ConvertOptions(
            column_types=dict.fromkeys(header, _STR),
            strings_can_be_null=True,
            quoted_strings_can_be_null=True,
            null_values=list(NULL_SPELLINGS),
        ),
    )
    pending: list[pa.RecordBatch] = []
    size = 0
    with stream:
        for batch in reader:
            while batch.num_rows:
                take = min(batch.num_rows, batch_rows - size)
                pending.append(batch.slice(0, take))
                size += take
                batch = batch.slice(take)
                if size == batch_rows:
                    yield _one_chunk(pending)
                    pending, size = [], 0
        if size:
            yield _one_chunk(pending)


def _one_chunk(batches: list[pa.RecordBatch]) -> pa.Table:
    """One contiguous table from many small parsed blocks (one copy, made once)."""
    table = pa.Table.from_batches(batches)
    batches.clear()  # let the blocks go as soon as their copy exists
    return table.combine_chunks()


def prefetch(items: Iterator[Any], depth: int = 1) -> Iterator[Any]:
    """Yield ``items`` while a thread produces the next ones (reading overlaps work)."""
    q: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()
    done = object()

    def put(entry: tuple[bool, Any]) -> bool:
        while not stop.is_set():
            try:
                q.put(entry, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put((True, item)):
                    return
            put((True, done))
        except BaseException as exc:  # handed to the consumer, raised there
            put((False, exc))

    worker = threading.Thread(target=produce, name="focus-prefetch", daemon=True)
    worker.start()
    try:
        while True:
            ok, item = q.get()
            if not ok:
                raise item
            if item is done:
                return
            yield item
    finally:
        stop.set()
        worker.join(timeout=10)
