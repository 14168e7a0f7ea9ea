"""Column conversion: any FOCUS export's columns (0.5, 1.0-preview, 1.0, 1.2; text or
typed) into the FOCUS 1.2 types of ``tasks.costs.focus_schema``.

Every column is converted with vectorized ``pyarrow.compute`` kernels; the little Python
there is (timestamp and tag parsing, enum re-casing) runs once per *distinct* value,
never per row. A converter returns the new column, the ``Problem``s that reject rows
(``tasks.costs.normalize.quarantine``) and counts of kept-but-changed values (warnings).

See ``tasks.costs.normalize`` for the decisions worth knowing (null spellings, zones,
tags, bad numbers, unknown enum values, currencies).

Example:
    ```python
    import pyarrow as pa

    from tasks.costs.normalize.convert import convert_column, parse_tags, resolve_columns

    print(resolve_columns([" AmortizedCost", "BilledCost"]))
    column = convert_column("ChargeCategory", pa.array(["usage", "PURCHASE", "NULL"]))
    print(column.values.to_pylist(), parse_tags('{" team ": "web"}'))
    ```
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from tasks.common.times import parse_time_or_none
from tasks.costs import focus_schema as fs
from tasks.costs.normalize.quarantine import Problem, json_text

NULL_SPELLINGS = ("", "NULL", "Null", "null", "None", "NONE", "none")
_NULL_SET = pa.array(NULL_SPELLINGS[1:], pa.string())
_LONGEST_NULL_SPELLING = max(len(w) for w in NULL_SPELLINGS)
_NUMBER_RE = r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$"
_STR = pa.string()
_F64 = pa.float64()
_TS = pa.timestamp("us", tz="UTC")
_TAGS = pa.map_(pa.string(), pa.string())

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
        from tasks.costs.normalize.convert import resolve_columns

        print(resolve_columns([" AmortizedCost", "BilledCost"]))
        # {'EffectiveCost': 0, 'BilledCost': 1}
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


def plain_array(arr: pa.Array | pa.ChunkedArray) -> pa.Array:
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
        return pa.array([None if v is None else json_text(v) for v in values], _STR)


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
class _Column:
    values: pa.Array
    problems: list[Problem] = field(default_factory=list)
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
        col.problems.append(Problem("bad_number", name, bad, "not a number ({v})", shown))
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
        from tasks.costs.normalize.convert import parse_timestamp

        print(parse_timestamp("2026-10-01T02:00:00+02:00"))  # 2026-10-01 00:00:00+00:00
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
            Problem("bad_timestamp", name, flags["bad"], "not a timestamp ({v})", raw)
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
        col.problems.append(Problem("bad_charge_category", name, unknown, msg, raw))
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
                Problem(
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
    return json_text(v)


def parse_tags(text: str) -> tuple[list[tuple[str, str | None]] | None, bool]:
    """One ``Tags`` text as ``(pairs, ok)``: merged, trimmed key/value pairs.

    ``ok`` is False for text that is not a JSON object (pairs are then ``None``).
    Null spellings give ``(None, True)``.

    Example:
        ```python
        from tasks.costs.normalize.convert import parse_tags

        print(parse_tags('{" team ": "web", "team": "data"}'))  # ([('team', 'data')], True)
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


# --- one column, by name ------------------------------------------------------------------


def convert_column(name: str, arr: pa.Array) -> _Column:
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


def source_ids(provider: pa.Array, account: pa.Array) -> pa.Array:
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
