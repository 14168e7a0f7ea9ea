"""Time parsing, in one place: every API payload, file and parameter goes through here.

``parse_time`` is strict (it raises ``ValueError`` naming the field, for parameters and
files); ``parse_time_or_none`` is lenient (``None`` for a missing or unreadable value,
for optional fields of API payloads). Both return aware UTC datetimes; naive input is
taken as UTC.

Example:
    ```python
    from tasks.common.times import parse_time, parse_time_or_none, time_window

    parse_time("2025-03-01T10:00:00.123456789Z")  # 2025-03-01 10:00:00.123456+00:00
    parse_time(1740823200)  # epoch seconds (milliseconds above 1e11)
    parse_time_or_none("10/01/2026", formats=("%m/%d/%Y",))  # 2026-10-01 00:00:00+00:00
    parse_time_or_none("")  # None
    since, until = time_window("2025-03-01T00:00:00Z")  # until defaults to now
    ```
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

_NUMBER = re.compile(r"-?\d+(\.\d+)?")
_MILLISECONDS_ABOVE = 1e11  # epoch values above this are milliseconds (1e11 s is year 5138)


def as_utc(stamp: datetime) -> datetime:
    """The same instant in UTC; a naive datetime is taken as UTC."""
    return stamp.replace(tzinfo=UTC) if stamp.tzinfo is None else stamp.astimezone(UTC)


def _from_epoch(value: float, field: str) -> datetime:
    if not math.isfinite(value):
        raise ValueError(f"{field}: not a time: {value!r}")
    return datetime.fromtimestamp(value / 1000 if abs(value) > _MILLISECONDS_ABOVE else value, UTC)


def parse_time(
    value: Any,
    field: str = "timestamp",
    *,
    formats: Sequence[str] = (),
    numbers: bool = True,
) -> datetime:
    """An aware UTC datetime from ISO 8601 text, a datetime or epoch seconds/milliseconds.

    Args:
        value: ``"2025-03-01T10:00:00Z"``, ``"2025-03-01 10:00:00.123456789+02:00"``, a
            ``datetime`` (naive means UTC), or a number of epoch seconds (values above
            1e11 are read as milliseconds).
        field: the field name used in the error message.
        formats: ``strptime`` formats tried when the text is not ISO 8601.
        numbers: read numbers and digit strings as epoch seconds/milliseconds; with
            ``False`` they are rejected (a digit string is then read as ISO 8601).

    Returns:
        The instant in UTC (fractions below a microsecond are dropped).

    Raises:
        ValueError: naming ``field`` when the value is not a time.
    """
    if isinstance(value, datetime):
        stamp = value
    elif isinstance(value, int | float) and not isinstance(value, bool):
        if not numbers:
            raise ValueError(f"{field}: not a time: {value!r}")
        stamp = _from_epoch(value, field)
    elif isinstance(value, str) and value.strip():
        text = value.strip()
        if numbers and _NUMBER.fullmatch(text):
            stamp = _from_epoch(float(text), field)
        else:
            stamp = _from_text(text, field, formats)
    else:
        raise ValueError(f"{field}: not a time: {str(value)[:60]!r}")
    try:
        return as_utc(stamp)
    except OverflowError:  # an offset that pushes the instant out of range
        raise ValueError(f"{field}: out of range: {str(value)[:60]!r}") from None


def _from_text(text: str, field: str, formats: Sequence[str]) -> datetime:
    try:
        return datetime.fromisoformat(text)
    except (ValueError, OverflowError):
        pass
    for fmt in formats:
        try:
            return datetime.strptime(text, fmt)
        except ValueError:
            continue
    raise ValueError(f"{field}: not an ISO 8601 time: {text[:60]!r}")


def parse_time_or_none(
    value: Any, *, formats: Sequence[str] = (), numbers: bool = True
) -> datetime | None:
    """``parse_time``, or ``None`` for a missing (``None``, ``""``) or unreadable value."""
    if value is None or value == "":
        return None
    try:
        return parse_time(value, formats=formats, numbers=numbers)
    except (ValueError, OverflowError):
        return None


def time_window(since: Any, until: Any = None) -> tuple[datetime, datetime]:
    """``[since, until)`` as UTC datetimes (``until`` defaults to now), validated.

    Raises:
        ValueError: naming ``since``/``until`` when unreadable or not in order.
    """
    start = parse_time(since, "since")
    end = parse_time(until, "until") if until is not None else datetime.now(UTC)
    if end <= start:
        raise ValueError(f"until: must be after since ({start.isoformat()}), got {end.isoformat()}")
    return start, end
