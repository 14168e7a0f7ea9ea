"""Read the clouds' native FOCUS exports and normalize every row into FOCUS 1.2.

AWS Data Exports (FOCUS 1.0/1.2), Azure ``FocusCost`` and the Google Cloud FOCUS export
all claim FOCUS but differ in version, column names, timestamp styles, casing, tag
encoding and null spellings, and real files carry a few broken rows. This module
turns any of them (CSV, gzip CSV or Parquet) into tables with exactly
``tasks.costs.focus_schema.SCHEMA``. A row that cannot be stored faithfully is never dropped
silently and never fails the run: it goes to the batch's ``quarantine`` table with the
reason and its original values.

It is built for volume (a million rows in a few seconds on two cores): the file is
streamed in bounded batches by Arrow's CSV/Parquet readers, every column is converted
with vectorized ``pyarrow.compute`` kernels, and the little Python there is (timestamp
and tag parsing, enum re-casing) runs once per *distinct* value, never per row.

Decisions worth knowing:

- ``NULL``, ``Null``, ``null``, ``None``, ``NONE``, ``none`` and empty or blank text
  (surrounding whitespace ignored) are null everywhere.
- Timestamps without a zone are UTC; dates are midnight UTC.
- ``Tags`` is a JSON object (Azure's brace-less ``"k": "v", ...`` form too), a map or
  a list of ``{key, value}`` records. Keys are trimmed and inner whitespace runs
  collapsed; keys that then collide are merged, the later value winning. Non-string
  values are stringified (JSON text). Tags that cannot be read keep the row, with
  null tags and an ``invalid_tags`` warning: a bad tag must not hide a cost.
- Cost columns (``BilledCost``, ``EffectiveCost``, ``ListCost``, ``ContractedCost``)
  that hold text other than a number quarantine the row; other numeric columns
  become null with a ``bad_number:<column>`` warning.
- Null ``ListCost`` is filled from ``EffectiveCost`` and null ``ContractedCost`` from
  ``BilledCost`` (FOCUS 1.0-preview exports lack both), counted as ``filled:<column>``
  warnings.
- Unknown ``ChargeCategory`` quarantines the row; unknown ``ServiceCategory`` becomes
  ``Other``; unknown values of the other enum columns become null (all warned).
- ``BillingCurrency`` must be a three-letter code (upper-cased); rows keep their own
  currency, nothing is converted.
"""

from __future__ import annotations

import csv
import gzip
import json
import os
import queue
import re
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from tasks.common.times import parse_time_or_none
from tasks.costs import focus_schema as fs

DEFAULT_BATCH_ROWS = 262_144
# iter_normalized's batches: measured fastest on 2 cores (working set stays in cache,
# less allocator churn) and ~0.5 GB peak RSS for a 1M-row, 48-column CSV.
NORMALIZE_BATCH_ROWS = 65_536
NULL_SPELLINGS = ("", "NULL", "Null", "null", "None", "NONE", "none")
_NULL_SET = pa.array(NULL_SPELLINGS[1:], pa.string())
_LONGEST_NULL_SPELLING = max(len(w) for w in NULL_SPELLINGS)
_NUMBER_RE = r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$"
_STR = pa.string()
_F64 = pa.float64()
_TS = pa.timestamp("us", tz="UTC")
_TAGS = pa.map_(pa.string(), pa.string())
_REASON_VALUE_CHARS = 80
_CSV_BLOCK_BYTES = 2 << 20
_SLICE_DROP_MAX = 64  # up to this many bad rows per batch are cut out without copying

QUARANTINE_SCHEMA = pa.schema(
    [
        pa.field("x_SourceRow", pa.int64(), nullable=False),
        pa.field("x_QuarantineReason", pa.string(), nullable=False),
        pa.field("x_RawRow", pa.string(), nullable=False),
    ]
)

# Reason codes, in priority order: a row with several problems is counted under the
# first (its x_QuarantineReason still names every problem).
QUARANTINE_CODES = (
    "malformed_row",
    "missing_column",
    "missing_value",
    "bad_number",
    "bad_timestamp",
    "bad_currency",
    "bad_charge_category",
    "bad_period",
)

# Columns whose unknown values are re-cased to the FOCUS spelling (legacy spellings too).
_ENUMS: dict[str, tuple[str, ...]] = {
    "ChargeCategory": fs.CHARGE_CATEGORIES,
    "ChargeClass": fs.CHARGE_CLASSES,
    "ChargeFrequency": fs.CHARGE_FREQUENCIES,
    "PricingCategory": fs.PRICING_CATEGORIES,
    "ServiceCategory": fs.SERVICE_CATEGORIES,
    "CommitmentDiscountCategory": fs.COMMITMENT_DISCOUNT_CATEGORIES,
    "CommitmentDiscountStatus": fs.COMMITMENT_DISCOUNT_STATUSES,
    "CapacityReservationStatus": ("Used", "Unused"),
}
_LEGACY_ENUM_VALUES = {  # FOCUS 1.0-preview spellings
    "PricingCategory": {"ondemand": "Standard", "commitmentbased": "Committed"},
}
_CURRENCY_COLUMNS = ("BillingCurrency", "PricingCurrency")


class FocusReadError(ValueError):
    """The export file itself cannot be read (missing, not CSV/Parquet, corrupt)."""


@dataclass
class NormalizedBatch:
    """One batch of an export, normalized.

    Attributes:
        table: the rows that passed, with exactly ``focus_schema.SCHEMA``.
        quarantine: one row per rejected input row (``QUARANTINE_SCHEMA``):
            ``x_SourceRow`` (0-based row number in the file), ``x_QuarantineReason``
            (names the column(s) and why) and ``x_RawRow`` (the original values as a
            JSON object).
        reason_codes: the short code of each quarantine row (see ``QUARANTINE_CODES``).
        warnings: counts of kept-but-changed values, e.g. ``{"invalid_tags": 2}``.
    """

    table: pa.Table
    quarantine: pa.Table
    reason_codes: pa.Array = field(default_factory=lambda: pa.array([], pa.string()))
    warnings: dict[str, int] = field(default_factory=dict)

    @property
    def rows_in(self) -> int:
        """Input rows this batch accounts for (kept + quarantined)."""
        return self.table.num_rows + self.quarantine.num_rows

    def quarantine_counts(self) -> dict[str, int]:
        """Quarantined rows per reason code, e.g. ``{"bad_number": 1}``."""
        counts = pc.value_counts(self.reason_codes).to_pylist()
        return {c["values"]: c["counts"] for c in counts}


# --- reading -----------------------------------------------------------------------------


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
        for table in read_export_batches("focus.csv.gz"):
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


# --- column resolution -----------------------------------------------------------------


def _canonical_name(raw: str) -> str | None:
    name = raw.replace("\ufeff", "").strip()
    if name in fs.COLUMN_TYPES:
        return name
    if name in fs.COLUMN_ALIASES:
        return fs.COLUMN_ALIASES[name]
    folded = name.lower()
    for known in (*fs.COLUMN_TYPES, *fs.COLUMN_ALIASES):
        if known.lower() == folded:
            return fs.COLUMN_ALIASES.get(known, known)
    return None


def resolve_columns(names: Iterable[str]) -> dict[str, int]:
    """Map FOCUS 1.2 column names to positions in an export's header.

    Whitespace and a BOM around names are ignored, older FOCUS names (0.5, 1.0-preview)
    are mapped through ``COLUMN_ALIASES``, and case differences are tolerated. When two
    headers map to the same column, the one already spelled the 1.2 way wins. Unknown
    columns are left out.

    Args:
        names: the header cells, in file order.

    Returns:
        ``{FOCUS 1.2 name: position}`` for the columns the header provides.

    Example:
        ```python
        resolve_columns([" AmortizedCost", "BilledCost"])  # {"EffectiveCost": 0, "BilledCost": 1}
        ```
    """
    found: dict[str, tuple[int, int]] = {}  # canonical -> (rank, index); lower rank wins
    for i, raw in enumerate(names):
        canon = _canonical_name(raw)
        if canon is None or canon == fs.SOURCE_COLUMN:
            continue
        rank = 0 if raw.strip() == canon else 1
        if canon not in found or rank < found[canon][0]:
            found[canon] = (rank, i)
    return {canon: i for canon, (_, i) in found.items()}


# --- per-distinct-value helpers ------------------------------------------------------------


def _plain(arr: pa.Array | pa.ChunkedArray) -> pa.Array:
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks() if arr.num_chunks != 1 else arr.chunk(0)
    if pa.types.is_dictionary(arr.type):
        arr = arr.dictionary_decode()
    return arr


def _as_string(arr: pa.Array) -> pa.Array:
    if arr.type == _STR:
        return arr
    if pa.types.is_null(arr.type):
        return pa.nulls(len(arr), _STR)
    if pa.types.is_large_string(arr.type) or pa.types.is_string_view(arr.type):
        return arr.cast(_STR)
    try:
        return pc.cast(arr, _STR)
    except (pa.ArrowNotImplementedError, pa.ArrowInvalid):
        values = arr.to_pylist()  # nested values: JSON text per row (rare: odd exports)
        return pa.array([None if v is None else _json_text(v) for v in values], _STR)


def _json_text(v: Any) -> str:
    return json.dumps(v, separators=(",", ":"), ensure_ascii=False, default=str)


def _map_distinct(
    arr: pa.Array, fn: Callable[[str], tuple[Any, str | None]], out_type: pa.DataType
) -> tuple[pa.Array, dict[str, pa.Array]]:
    """Apply ``fn`` once per distinct string and spread the results back to every row.

    ``fn(value) -> (new_value, flag)``; returns the mapped array and, per flag, a
    boolean row mask of the rows whose value raised it. When ``fn`` changes nothing
    the input array itself is returned (no copy).
    """
    encoded = pc.dictionary_encode(arr)
    uniques = encoded.dictionary.to_pylist()
    results = [fn(u) for u in uniques]
    flags: dict[str, pa.Array] = {}
    for flag in {r[1] for r in results if r[1]}:
        hit = pa.array([r[1] == flag for r in results], pa.bool_())
        flags[flag] = hit.take(encoded.indices).fill_null(False)
    if (
        out_type == arr.type
        and not flags
        and all(r[0] == u for r, u in zip(results, uniques, strict=True))
    ):
        return arr, flags
    return pa.array([r[0] for r in results], out_type).take(encoded.indices), flags


def _null_spelled(arr: pa.Array) -> pa.Array:
    """Trimmed text, with ``NULL``-like spellings and blanks turned into nulls.

    Returns the input itself when there is nothing to change (the common case).
    """
    trimmed = pc.utf8_trim_whitespace(arr)
    lengths = pc.binary_length(trimmed)
    shortest = pc.min(lengths).as_py()
    if shortest is not None and shortest <= _LONGEST_NULL_SPELLING:
        is_null_word = pc.or_(pc.is_in(trimmed, value_set=_NULL_SET), pc.equal(trimmed, ""))
        if pc.any(is_null_word).as_py():
            return pc.if_else(is_null_word, pa.scalar(None, _STR), trimmed)
    if pc.sum(lengths).as_py() == pc.sum(pc.binary_length(arr)).as_py():
        return arr  # nothing was trimmed: keep sharing the input's buffers
    return trimmed


def _enum_key(value: str) -> str:
    """Spelling-insensitive key: "usage_based", "Usage-Based" and "USAGE BASED" match."""
    return "".join(ch for ch in value.lower().replace("&", "and") if ch.isalnum())


def _is_null_word(value: str) -> bool:
    return value.strip() in NULL_SPELLINGS


# --- converters: each returns the column and its problems ----------------------------------


@dataclass
class _Problem:
    code: str
    column: str
    mask: pa.Array  # bool per row, no nulls
    message: str
    values: pa.Array | None = None  # offending raw text, quoted at "{v}" in message


@dataclass
class _Column:
    values: pa.Array
    problems: list[_Problem] = field(default_factory=list)
    warnings: dict[str, int] = field(default_factory=dict)


def _count(mask: pa.Array) -> int:
    return int(pc.sum(mask).as_py() or 0)


def _convert_string(arr: pa.Array) -> _Column:
    return _Column(_null_spelled(_as_string(arr)))


def _convert_number(name: str, arr: pa.Array) -> _Column:
    text: pa.Array | None = None  # the text, when the column is not typed
    invalid: pa.Array | None = None  # text present but not a number
    if pa.types.is_floating(arr.type) or pa.types.is_integer(arr.type):
        values = pc.cast(arr, _F64)
    elif pa.types.is_decimal(arr.type):
        values = pc.cast(arr, _F64, safe=False)
    else:
        text = _as_string(arr)
        try:  # fast path: clean numbers (the CSV reader already nulled NULL spellings)
            values = pc.cast(text, _F64)
        except pa.ArrowInvalid:
            trimmed = _null_spelled(text)
            try:  # padded numbers and NULL spellings only
                values = pc.cast(trimmed, _F64)
            except pa.ArrowInvalid:  # some text is not a number: find it
                ok = pc.match_substring_regex(trimmed, _NUMBER_RE)
                values = pc.cast(pc.if_else(ok, trimmed, pa.scalar(None, _STR)), _F64)
                invalid = pc.invert(ok).fill_null(False)
    col = _Column(values)
    finite = pc.is_finite(values)
    if invalid is None and pc.all(finite).as_py() is not False:
        return col
    bad = pc.invert(finite).fill_null(False)  # NaN, inf
    if invalid is not None:
        bad = pc.or_(bad, invalid)
    if not pc.any(bad).as_py():
        return col
    col.values = pc.if_else(bad, pa.scalar(None, _F64), values)
    if name in fs.COST_COLUMNS:
        shown = text if text is not None else _as_string(values)
        col.problems.append(_Problem("bad_number", name, bad, "not a number ({v})", shown))
    else:
        col.warnings[f"bad_number:{name}"] = _count(bad)
    return col


_TS_FALLBACK_FORMATS = ("%m/%d/%Y", "%m/%d/%Y %H:%M:%S", "%Y/%m/%d", "%Y/%m/%d %H:%M:%S")


def parse_timestamp(text: str) -> datetime | None:
    """One export timestamp as an aware UTC datetime (naive = UTC); ``None`` if unreadable.

    Accepts ISO 8601 with or without zone, fractions of any length, ``Z``, a space
    instead of ``T``, plain dates, and the ``MM/DD/YYYY`` form of older Azure exports.

    Example:
        ```python
        parse_timestamp("2026-10-01T02:00:00+02:00")  # 2026-10-01 00:00:00+00:00
        ```
    """
    return parse_time_or_none(text, formats=_TS_FALLBACK_FORMATS, numbers=False)


def _convert_timestamp(name: str, arr: pa.Array) -> _Column:
    if pa.types.is_timestamp(arr.type) or pa.types.is_date(arr.type):
        # Zone-aware values are stored as UTC already; naive ones are taken as UTC.
        tz = getattr(arr.type, "tz", None)
        return _Column(pc.cast(arr, pa.timestamp("us", tz=tz), safe=False).cast(_TS))
    raw = _as_string(arr)

    def parse(value: str) -> tuple[datetime | None, str | None]:
        if _is_null_word(value):
            return None, None
        dt = parse_timestamp(value)
        return (dt, None) if dt is not None else (None, "bad")

    values, flags = _map_distinct(raw, parse, _TS)
    col = _Column(values)
    if "bad" in flags:
        col.problems.append(
            _Problem("bad_timestamp", name, flags["bad"], "not a timestamp ({v})", raw)
        )
    return col


def _convert_enum(name: str, arr: pa.Array) -> _Column:
    allowed = {_enum_key(v): v for v in _ENUMS[name]}
    allowed.update(_LEGACY_ENUM_VALUES.get(name, {}))
    raw = _as_string(arr)

    def recase(value: str) -> tuple[str | None, str | None]:
        if _is_null_word(value):
            return None, None
        known = allowed.get(_enum_key(value))
        return (known, None) if known else (None, "unknown")

    values, flags = _map_distinct(raw, recase, _STR)
    col = _Column(values)
    unknown = flags.get("unknown")
    if unknown is None:
        return col
    if name == "ChargeCategory":
        expected = ", ".join(fs.CHARGE_CATEGORIES)
        msg = f"unknown value ({{v}}), expected one of {expected}"
        col.problems.append(_Problem("bad_charge_category", name, unknown, msg, raw))
    elif name == "ServiceCategory":
        col.values = pc.if_else(unknown, pa.scalar("Other"), values)
        col.warnings["service_category_other"] = _count(unknown)
    else:
        col.warnings[f"unknown_value:{name}"] = _count(unknown)
    return col


def _convert_currency(name: str, arr: pa.Array) -> _Column:
    raw = _as_string(arr)

    def code(value: str) -> tuple[str | None, str | None]:
        if _is_null_word(value):
            return None, None
        v = value.strip().upper()
        return (v, None) if re.fullmatch("[A-Z]{3}", v) else (None, "bad")

    values, flags = _map_distinct(raw, code, _STR)
    col = _Column(values)
    if "bad" in flags:
        if name in fs.REQUIRED:
            col.problems.append(
                _Problem(
                    "bad_currency", name, flags["bad"], "not a 3-letter currency code ({v})", raw
                )
            )
        else:
            col.warnings[f"bad_currency:{name}"] = _count(flags["bad"])
    return col


# Tags ---------------------------------------------------------------------------------


def _tag_key(key: Any) -> str:
    return " ".join(str(key).split())


def _tag_value(v: Any) -> str | None:
    if v is None or isinstance(v, str):
        return v
    return _json_text(v)


def parse_tags(text: str) -> tuple[list[tuple[str, str | None]] | None, bool]:
    """One ``Tags`` text as ``(pairs, ok)``: merged, trimmed key/value pairs.

    ``ok`` is False for text that is not a JSON object (pairs are then ``None``).
    Null spellings give ``(None, True)``.

    Example:
        ```python
        parse_tags('{" team ": "web", "team": "data"}')  # ([("team", "data")], True)
        ```
    """
    s = text.strip()
    if s in NULL_SPELLINGS:
        return None, True
    try:
        obj = json.loads(s if s.startswith("{") else "{" + s + "}")
    except (ValueError, RecursionError):
        return None, False
    if not isinstance(obj, dict):
        return None, False
    merged: dict[str, str | None] = {}
    for k, v in obj.items():
        merged[_tag_key(k)] = _tag_value(v)
    return list(merged.items()), True


def _list_parts(arr: pa.Array) -> tuple[pa.Array, pa.Array]:
    """``(offsets from 0, flattened children)`` of a list/map array, slicing respected."""
    offsets = arr.offsets
    first = offsets[0].as_py()
    return pc.subtract(offsets, first), first


def _convert_tags(arr: pa.Array) -> _Column:
    t = arr.type
    if pa.types.is_map(t):
        offsets, first = _list_parts(arr)
        size = offsets[-1].as_py()
        keys, items = arr.keys.slice(first, size), arr.items.slice(first, size)
        return _Column(_normalize_map(offsets, keys, items, arr.is_null()))
    if (pa.types.is_list(t) or pa.types.is_large_list(t)) and pa.types.is_struct(t.value_type):
        fields = {t.value_type.field(i).name.lower(): i for i in range(t.value_type.num_fields)}
        if "key" in fields and "value" in fields:
            offsets, first = _list_parts(arr)
            records = arr.values.slice(first, offsets[-1].as_py())
            keys = records.field(fields["key"])
            items = records.field(fields["value"])
            return _Column(_normalize_map(offsets.cast(pa.int32()), keys, items, arr.is_null()))
    raw = _as_string(arr)  # JSON text (other types are rendered as JSON first)

    def parse(value: str) -> tuple[list | None, str | None]:
        pairs, ok = parse_tags(value)
        return pairs, None if ok else "invalid"

    values, flags = _map_distinct(raw, parse, _TAGS)
    col = _Column(values)
    if "invalid" in flags:
        col.warnings["invalid_tags"] = _count(flags["invalid"])
    return col


def _normalize_map(offsets: pa.Array, keys: pa.Array, items: pa.Array, nulls: pa.Array) -> pa.Array:
    """A string map with trimmed/collapsed keys; keys that then collide are merged."""
    keys, values = _as_string(keys), _as_string(items)
    clean = pc.utf8_trim_whitespace(pc.replace_substring_regex(keys, r"\s+", " "))
    # A null tag key cannot be stored in a map: give it an empty key.
    clean = clean.fill_null("")
    rebuilt = pa.MapArray.from_arrays(offsets, clean, values, mask=nulls)
    changed = pc.not_equal(clean, keys).fill_null(True)
    if not pc.any(changed).as_py():
        return rebuilt
    # Only rows with a changed key can now hold duplicates: merge those in Python.
    parents = pc.list_parent_indices(pa.ListArray.from_arrays(offsets, keys))
    rows = np.unique(pc.filter(parents, changed).to_numpy())
    merged = []
    for pairs in rebuilt.take(pa.array(rows)).to_pylist():
        merged.append(list(dict(pairs).items()) if pairs is not None else None)
    index = np.arange(len(rebuilt))
    index[rows] = len(rebuilt) + np.arange(len(rows))
    return pa.concat_arrays([rebuilt, pa.array(merged, _TAGS)]).take(pa.array(index))


# --- normalize ----------------------------------------------------------------------------


def _convert(name: str, arr: pa.Array) -> _Column:
    typ = fs.COLUMN_TYPES[name]
    if name == "Tags":
        return _convert_tags(arr)
    if typ == _F64:
        return _convert_number(name, arr)
    if typ == _TS:
        return _convert_timestamp(name, arr)
    if name in _ENUMS:
        return _convert_enum(name, arr)
    if name in _CURRENCY_COLUMNS:
        return _convert_currency(name, arr)
    return _convert_string(arr)


def _source_ids(provider: pa.Array, account: pa.Array) -> pa.Array:
    """``focus:<provider key>:<BillingAccountId>`` per row, built once per distinct pair."""
    prov, acct = pc.dictionary_encode(provider), pc.dictionary_encode(account)
    width = len(acct.dictionary) + 1  # index + 1, so that null takes slot 0
    codes = pc.add(
        pc.multiply(pc.add(prov.indices.cast(pa.int64()), 1).fill_null(0), width),
        pc.add(acct.indices.cast(pa.int64()), 1).fill_null(0),
    )
    distinct = pc.unique(codes)
    providers = [None, *prov.dictionary.to_pylist()]
    accounts = ["", *acct.dictionary.to_pylist()]
    ids = [
        f"focus:{fs.provider_key(providers[c // width])}:{accounts[c % width]}"
        for c in distinct.to_pylist()
    ]
    return pa.array(ids, _STR).take(pc.index_in(codes, value_set=distinct))


def normalize(
    table: pa.Table, *, source_id: str | None = None, row_offset: int = 0
) -> NormalizedBatch:
    """Normalize one batch of a FOCUS export into FOCUS 1.2 (``focus_schema.SCHEMA``).

    Never raises for bad data: rows that cannot be stored go to ``quarantine`` with the
    reason, and the counts of kept-but-changed values go to ``warnings``.

    Args:
        table: the export rows with the file's own column names (any FOCUS version,
            strings or typed columns).
        source_id: ``x_SourceId`` for every row; by default
            ``focus:<provider key>:<BillingAccountId>`` per row.
        row_offset: row number in the file of ``table``'s first row (for
            ``x_SourceRow``).

    Returns:
        A ``NormalizedBatch``; every input row is in exactly one of ``table`` and
        ``quarantine``.

    Example:
        ```python
        batch = normalize(pacsv.read_csv("focus.csv"))
        batch.table.num_rows, batch.quarantine_counts()
        ```
    """
    n = table.num_rows
    positions = resolve_columns(table.column_names)
    columns: dict[str, pa.Array] = {}
    problems: list[_Problem] = []
    warnings: dict[str, int] = {}
    for name in fs.COLUMN_NAMES:
        if name not in positions:
            columns[name] = pa.nulls(n, fs.COLUMN_TYPES[name])
            continue
        col = _convert(name, _plain(table.column(positions[name])))
        columns[name] = col.values
        problems.extend(col.problems)
        for k, v in col.warnings.items():
            warnings[k] = warnings.get(k, 0) + v

    for target, source in (("ListCost", "EffectiveCost"), ("ContractedCost", "BilledCost")):
        before = columns[target].null_count
        if before:
            columns[target] = pc.coalesce(columns[target], columns[source])
            filled = before - columns[target].null_count
            if filled:
                warnings[f"filled:{target}"] = filled

    for name in sorted(fs.REQUIRED):
        if name not in positions and name not in ("ListCost", "ContractedCost"):
            msg = "required column missing from the export"
            problems.append(_Problem("missing_column", name, pa.repeat(True, n), msg))
        elif columns[name].null_count:
            missing = pc.is_null(columns[name])
            for p in problems:  # unreadable values are reported as such, not as missing
                if p.column == name:
                    missing = pc.and_(missing, pc.invert(p.mask))
            if pc.any(missing).as_py():
                msg = "required value is missing"
                problems.append(_Problem("missing_value", name, missing, msg))

    start, end = columns["ChargePeriodStart"], columns["ChargePeriodEnd"]
    order = pc.less_equal(end, start).fill_null(False)
    if pc.any(order).as_py():
        problems.append(
            _Problem("bad_period", "ChargePeriodEnd", order, "not after ChargePeriodStart")
        )

    if source_id is not None:
        columns[fs.SOURCE_COLUMN] = pa.repeat(pa.scalar(source_id, _STR), n)
    else:
        columns[fs.SOURCE_COLUMN] = _source_ids(
            columns["ProviderName"], columns["BillingAccountId"]
        )

    out = pa.Table.from_arrays([columns[f.name] for f in fs.SCHEMA], schema=fs.SCHEMA)
    if not problems:
        return NormalizedBatch(out, _empty_quarantine(), pa.array([], _STR), warnings)
    bad = problems[0].mask
    for p in problems[1:]:
        bad = pc.or_(bad, p.mask)
    rows = pc.indices_nonzero(bad)
    quarantine, codes = _quarantine(table, problems, rows, row_offset)
    return NormalizedBatch(_drop_rows(out, rows, bad), quarantine, codes, warnings)


def _drop_rows(table: pa.Table, rows: pa.Array, mask: pa.Array) -> pa.Table:
    """``table`` without ``rows``; a few rows are cut out by zero-copy slicing."""
    if len(rows) > _SLICE_DROP_MAX:
        return table.filter(pc.invert(mask))
    pieces, start = [], 0
    for r in rows.to_pylist():
        if r > start:
            pieces.append(table.slice(start, r - start))
        start = r + 1
    if start < table.num_rows:
        pieces.append(table.slice(start))
    return pa.concat_tables(pieces) if pieces else table.slice(0, 0)


def _take_rows(table: pa.Table, rows: pa.Array) -> list[dict[str, Any]]:
    if len(rows) > _SLICE_DROP_MAX:
        return table.take(rows).to_pylist()
    return [table.slice(r, 1).to_pylist()[0] for r in rows.to_pylist()]


def _empty_quarantine() -> pa.Table:
    return QUARANTINE_SCHEMA.empty_table()


def _quarantine(
    table: pa.Table, problems: list[_Problem], rows: pa.Array, row_offset: int
) -> tuple[pa.Table, pa.Array]:
    """The quarantine rows (reason, raw JSON) and their reason codes."""
    reasons, codes_by_priority = [], {}
    for p in problems:
        hit = p.mask.take(rows)
        text = pa.scalar(f"{p.column}: {p.message}")
        if p.values is not None:  # the message quotes the offending value at "{v}"
            before, _, after = p.message.partition("{v}")
            shown = pc.utf8_slice_codeunits(p.values.take(rows), 0, _REASON_VALUE_CHARS)
            text = pc.binary_join_element_wise(
                f"{p.column}: {before}'", shown.fill_null(""), f"'{after}", ""
            )
        reasons.append(pc.if_else(hit, text, pa.scalar(None, _STR)))
        codes_by_priority.setdefault(p.code, []).append(hit)
    reason = pc.binary_join_element_wise(*reasons, "; ", null_handling="skip")
    code_cols = []
    for code in QUARANTINE_CODES:
        for hit in codes_by_priority.get(code, []):
            code_cols.append(pc.if_else(hit, pa.scalar(code), pa.scalar(None, _STR)))
    codes = pc.coalesce(*code_cols) if len(code_cols) > 1 else code_cols[0]
    raw = _take_rows(table, rows)
    raw_json = pa.array([_json_text(r) for r in raw], _STR)
    source_rows = pc.add(rows.cast(pa.int64()), pa.scalar(row_offset, pa.int64()))
    quarantine = pa.Table.from_arrays([source_rows, reason, raw_json], schema=QUARANTINE_SCHEMA)
    return quarantine, codes


def _malformed(rows: list[pacsv.InvalidRow], line_offset: int = 2) -> NormalizedBatch:
    """Quarantine CSV rows the parser could not split into the header's columns."""
    source = [-1 if r.number is None else r.number - line_offset for r in rows]
    reasons = [
        f"row: has {r.actual_columns} fields, the header has {r.expected_columns}" for r in rows
    ]
    raw = [_json_text({"_line": r.text}) for r in rows]
    q = pa.Table.from_arrays(
        [pa.array(source, pa.int64()), pa.array(reasons, _STR), pa.array(raw, _STR)],
        schema=QUARANTINE_SCHEMA,
    )
    return NormalizedBatch(fs.empty_table(), q, pa.array(["malformed_row"] * len(rows), _STR))


def merge_batches(batches: Iterable[NormalizedBatch]) -> NormalizedBatch:
    """One ``NormalizedBatch`` from several (e.g. a whole small file).

    Args:
        batches: batches in file order.

    Returns:
        Their tables, quarantines and reason codes concatenated, warnings summed.
    """
    batches = list(batches)
    if not batches:
        return NormalizedBatch(fs.empty_table(), _empty_quarantine())
    warnings: dict[str, int] = {}
    for b in batches:
        for k, v in b.warnings.items():
            warnings[k] = warnings.get(k, 0) + v
    return NormalizedBatch(
        pa.concat_tables([b.table for b in batches]),
        pa.concat_tables([b.quarantine for b in batches]),
        pa.concat_arrays([b.reason_codes for b in batches]),
        warnings,
    )


def _prefetch(items: Iterator[Any], depth: int = 1) -> Iterator[Any]:
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


def iter_normalized(
    path: str | os.PathLike,
    *,
    source_id: str | None = None,
    batch_rows: int = NORMALIZE_BATCH_ROWS,
) -> Iterator[NormalizedBatch]:
    """Read and normalize an export batch by batch (bounded memory).

    CSV rows with the wrong number of fields are quarantined (``malformed_row``) in
    the batch read after them.

    Args:
        path: CSV, gzip CSV or Parquet export.
        source_id: ``x_SourceId`` for every row (default: per provider and account).
        batch_rows: upper bound of input rows per batch.

    Returns:
        An iterator of ``NormalizedBatch``.

    Raises:
        FocusReadError: the file itself cannot be read.

    Example:
        ```python
        for batch in iter_normalized("aws_focus.csv.gz"):
            writer.write_table(batch.table)
        ```
    """
    invalid: list[pacsv.InvalidRow] = []
    reported = 0
    offset = 0
    for table in _prefetch(read_export_batches(path, batch_rows, invalid_rows=invalid)):
        batch = normalize(table, source_id=source_id, row_offset=offset)
        offset += table.num_rows
        new = invalid[reported:]
        reported += len(new)
        if invalid:
            batch = _with_file_rows(batch, invalid, new)
        yield batch
    if invalid[reported:]:
        yield _malformed(invalid[reported:])


def _with_file_rows(
    batch: NormalizedBatch, invalid: list[pacsv.InvalidRow], new: list[pacsv.InvalidRow]
) -> NormalizedBatch:
    """Shift x_SourceRow past skipped malformed rows and add those rows' quarantine."""
    file_rows = np.array([r.number - 2 for r in invalid if r.number is not None])
    if len(file_rows) and batch.quarantine.num_rows:
        parsed_before = file_rows - np.arange(len(file_rows))  # parsed rows before each
        rows = batch.quarantine.column("x_SourceRow").to_numpy()
        shifted = rows + np.searchsorted(parsed_before, rows, side="right")
        q = batch.quarantine.set_column(0, QUARANTINE_SCHEMA.field(0), pa.array(shifted))
        batch = NormalizedBatch(batch.table, q, batch.reason_codes, batch.warnings)
    return merge_batches([batch, _malformed(new)]) if new else batch


def normalize_file(path: str | os.PathLike, *, source_id: str | None = None) -> NormalizedBatch:
    """The whole export normalized at once (for small files such as the samples; stream
    big ones with ``iter_normalized``).

    Args:
        path: CSV, gzip CSV or Parquet export.
        source_id: ``x_SourceId`` for every row (default: per provider and account).

    Returns:
        One ``NormalizedBatch`` for the file.

    Example:
        ```python
        batch = normalize_file(bundled_export_paths()[0])
        ```
    """
    return merge_batches(iter_normalized(path, source_id=source_id))
