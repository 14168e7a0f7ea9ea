"""Row rejection: what a converter found wrong (``Problem``), the quarantine rows built
from it (source row, every reason, the raw values as JSON) and their reason codes.

A row that cannot be stored faithfully is never dropped silently and never fails the
run: it leaves the batch's table for its ``quarantine`` table. A row with several
problems names every one in ``x_QuarantineReason`` and is counted under the first code
of ``QUARANTINE_CODES``.

Example:
    ```python
    from samples.focus_exports import bundled_export_paths
    from tasks.costs.normalize import normalize_file
    from tasks.costs.normalize.quarantine import QUARANTINE_CODES

    batch = normalize_file(bundled_export_paths()[0])
    for row in batch.quarantine.to_pylist():
        print(row["x_SourceRow"], row["x_QuarantineReason"])
    print(sorted(batch.quarantine_counts(), key=QUARANTINE_CODES.index))
    ```
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

_STR = pa.string()
_REASON_VALUE_CHARS = 80
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


@dataclass
class Problem:
    """Rows one converter or check rejects, and why."""

    code: str  # one of QUARANTINE_CODES
    column: str
    mask: pa.Array  # bool per row, no nulls
    message: str
    values: pa.Array | None = None  # offending raw text, quoted at "{v}" in message


def json_text(v: Any) -> str:
    """``v`` as compact JSON text (non-JSON values as their ``str``)."""
    return json.dumps(v, separators=(",", ":"), ensure_ascii=False, default=str)


def drop_rows(table: pa.Table, rows: pa.Array, mask: pa.Array) -> pa.Table:
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


def empty_quarantine() -> pa.Table:
    return QUARANTINE_SCHEMA.empty_table()


def quarantine_rows(
    table: pa.Table, problems: list[Problem], rows: pa.Array, row_offset: int
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
    raw_json = pa.array([json_text(r) for r in raw], _STR)
    source_rows = pc.add(rows.cast(pa.int64()), pa.scalar(row_offset, pa.int64()))
    quarantine = pa.Table.from_arrays([source_rows, reason, raw_json], schema=QUARANTINE_SCHEMA)
    return quarantine, codes


def malformed_rows(rows: list[pacsv.InvalidRow], line_offset: int = 2) -> tuple[pa.Table, pa.Array]:
    """Quarantine rows (and their codes) for CSV rows the parser could not split into the
    header's columns."""
    source = [-1 if r.number is None else r.number - line_offset for r in rows]
    reasons = [
        f"row: has {r.actual_columns} fields, the header has {r.expected_columns}" for r in rows
    ]
    raw = [json_text({"_line": r.text}) for r in rows]
    q = pa.Table.from_arrays(
        [pa.array(source, pa.int64()), pa.array(reasons, _STR), pa.array(raw, _STR)],
        schema=QUARANTINE_SCHEMA,
    )
    return q, pa.array(["malformed_row"] * len(rows), _STR)


def shift_past_skipped(quarantine: pa.Table, invalid: list[pacsv.InvalidRow]) -> pa.Table:
    """``quarantine`` with ``x_SourceRow`` counted in file rows: the parser skipped the
    ``invalid`` rows, so parsed row numbers after each of them move up by one."""
    file_rows = np.array([r.number - 2 for r in invalid if r.number is not None])
    if not len(file_rows) or not quarantine.num_rows:
        return quarantine
    parsed_before = file_rows - np.arange(len(file_rows))  # parsed rows before each
    rows = quarantine.column("x_SourceRow").to_numpy()
    shifted = rows + np.searchsorted(parsed_before, rows, side="right")
    return quarantine.set_column(0, QUARANTINE_SCHEMA.field(0), pa.array(shifted))
