"""The rows going in and out of the cost dataset: the FOCUS 1.2 schema check, partition
and file names, the ChargePeriodStart window, and argument checks.

Example:
    ```python
    from samples.focus_exports import bundled_export_paths
    from tasks.costs.dataset.rows import conform_table, split_by_partition
    from tasks.costs.normalize import normalize_file

    table = conform_table(normalize_file(bundled_export_paths()[0]).table)
    for (partition, source), rows in split_by_partition(table):
        print(partition, source, rows.num_rows)
    ```
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from datetime import date, datetime
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from tasks.costs.focus_schema import REQUIRED, SCHEMA, SOURCE_COLUMN, day_start, provider_key

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_TS_TYPE = SCHEMA.field("ChargePeriodStart").type


def safe_name(text: str, limit: int = 80) -> str:
    """``text`` reduced to characters safe in a file or partition name."""
    return _UNSAFE.sub("_", text).strip("._-")[:limit] or "unknown"


def conform_table(table: pa.Table | pa.RecordBatch) -> pa.Table:
    """Check ``table`` against the FOCUS 1.2 ``SCHEMA`` and return it in schema order.

    Args:
        table: an arrow table or record batch with exactly the ``SCHEMA`` columns (any
            order) and types.

    Returns:
        The table with ``SCHEMA`` (column order and nullability).

    Raises:
        TypeError: not an arrow table.
        ValueError: a missing, unexpected or mistyped column, or nulls in a column FOCUS
            requires (or in ``x_SourceId``), naming the column.
    """
    if isinstance(table, pa.RecordBatch):
        table = pa.Table.from_batches([table])
    if not isinstance(table, pa.Table):
        raise TypeError(f"table: expected a pyarrow Table, got {type(table).__name__}")
    names = set(table.column_names)
    for f in SCHEMA:
        if f.name not in names:
            raise ValueError(f"table: missing column {f.name!r} ({f.type})")
    extra = [n for n in table.column_names if n not in SCHEMA.names]
    if extra:
        raise ValueError(f"table: unexpected column {extra[0]!r} (not in the FOCUS 1.2 schema)")
    if len(names) != table.num_columns:
        raise ValueError("table: duplicate column names")
    for f in SCHEMA:
        actual = table.schema.field(f.name).type
        if actual != f.type:
            raise ValueError(f"table: column {f.name!r} has type {actual}, expected {f.type}")
        if (f.name in REQUIRED or f.name == SOURCE_COLUMN) and table[f.name].null_count:
            raise ValueError(
                f"table: column {f.name!r} has {table[f.name].null_count} null value(s); "
                "it must always have a value"
            )
    if table.num_rows and pc.any(pc.equal(table[SOURCE_COLUMN], "")).as_py():
        raise ValueError(f"table: column {SOURCE_COLUMN!r} has an empty source id")
    return pa.Table.from_arrays([table[n] for n in SCHEMA.names], schema=SCHEMA)


def split_by_partition(table: pa.Table) -> Iterator[tuple[tuple[str, str], pa.Table]]:
    """Yield ``((partition, source id), rows)`` for each group in a conformed table."""
    if not table.num_rows:
        return
    names = pc.unique(table["ProviderName"]).to_pylist()
    keys = pa.array([f"provider={safe_name(provider_key(n))}" for n in names])
    provider = pc.take(keys, pc.index_in(table["ProviderName"], value_set=pa.array(names)))
    starts = pc.unique(table["BillingPeriodStart"])  # a handful of distinct months
    months = pc.strftime(starts, format="%Y-%m")
    period = pc.take(months, pc.index_in(table["BillingPeriodStart"], value_set=starts))
    part = pc.binary_join_element_wise(provider, period, "/billing_period=")
    key = pc.binary_join_element_wise(part, table[SOURCE_COLUMN], "\x1f")
    for value in pc.unique(key).to_pylist():
        partition, _, source = value.partition("\x1f")
        yield (partition, source), table.filter(pc.equal(key, value))


def day_start_or_none(day: date | None) -> datetime | None:
    return None if day is None else day_start(day)


def check_day(value: Any, name: str) -> date | None:
    if value is None:
        return None
    if isinstance(value, datetime) or not isinstance(value, date):
        raise TypeError(f"{name}: expected a date (a day), got {type(value).__name__}")
    return value


def check_window(start: Any, end: Any) -> tuple[date | None, date | None]:
    start, end = check_day(start, "start"), check_day(end, "end")
    if start and end and start >= end:
        raise ValueError(f"start: {start} must be before end ({end}); the window is [start, end)")
    return start, end


def check_names(values: Iterable[str] | None, name: str) -> frozenset[str] | None:
    if values is None:
        return None
    if isinstance(values, str):
        raise TypeError(f"{name}: give a list, not one string")
    out = frozenset(values)
    bad = [v for v in out if not isinstance(v, str) or not v]
    if bad:
        raise ValueError(f"{name}: {bad[0]!r} is not a non-empty string")
    return out


def check_source_id(source_id: Any) -> str:
    if not isinstance(source_id, str) or not source_id:
        raise ValueError(f"source_id: {source_id!r} is not a source id (a non-empty string)")
    return source_id


def window_filter(start: datetime | None, end: datetime | None, inside: bool) -> Any:
    """A dataset expression for ChargePeriodStart in (``inside``) or out of [start, end)."""
    col = pc.field("ChargePeriodStart")
    terms = []
    if start is not None:
        terms.append(col >= pa.scalar(start, _TS_TYPE))
    if end is not None:
        terms.append(col < pa.scalar(end, _TS_TYPE))
    if not terms:
        return None if inside else pc.scalar(False)
    expr = terms[0] if len(terms) == 1 else terms[0] & terms[1]
    return expr if inside else ~expr
