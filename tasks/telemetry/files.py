"""Telemetry as files: events as JSON Lines, metric samples as CSV, and their readers.

The scenario generator and the demo write telemetry with these formats, and
``detect_incidents`` can read an export instead of calling a live source:

- events: one JSON object per line with ``timestamp`` (ISO 8601; naive means UTC),
  ``source``, ``entity``, ``severity``, ``message``, ``attributes`` and optionally
  ``kind`` and ``related`` (the fields of ``tasks.telemetry.model.Event``);
- metrics: CSV with the columns ``timestamp, entity, metric, value`` and optionally
  ``unit``, ``source`` and ``related`` (entities separated by ``;``); rows are grouped
  into one ``MetricSeries`` per (source, entity, metric), oldest sample first.

A line or row that cannot be read is skipped, and reported with its line number and the
reason (counted in the result and logged), never dropped silently. Writers replace the
target atomically (a temp file in the same folder, then a rename), so a reader never
sees half a file.

A helper every source shares lives here as well: ``log_severity`` (the level written in
a raw log line: ``ERROR``, ``level=warn``, ``"severity":"error"``, klog's ``E0512``...).
Times are read with ``tasks.common.times.parse_time``.

Example:
    ```python
    import tempfile
    from datetime import UTC, datetime
    from pathlib import Path

    from prefect import flow

    from tasks.telemetry.files import load_telemetry_files, write_events_jsonl, write_metrics_csv
    from tasks.telemetry.model import Event, MetricSeries


    @flow
    def replay(folder: str) -> int:
        files = load_telemetry_files(f"{folder}/events.jsonl", f"{folder}/metrics.csv")
        return len(files.events) + len(files.series)


    folder = Path(tempfile.mkdtemp())
    now = datetime.now(UTC)
    write_events_jsonl(
        folder / "events.jsonl",
        [Event(timestamp=now, source="file", entity="service:checkout", message="ERROR boom")],
    )
    write_metrics_csv(
        folder / "metrics.csv",
        [
            MetricSeries(
                source="file",
                entity="service:checkout",
                metric="cpu_percent",
                timestamps=[now],
                values=[93.0],
            )
        ],
    )
    ```
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import get_args

from prefect import task
from prefect.cache_policies import NO_CACHE
from pydantic import BaseModel, Field, ValidationError

from tasks.common.atomic import write_text_atomic
from tasks.common.retry import task_logger
from tasks.common.times import parse_time
from tasks.telemetry.model import Event, MetricSeries, Severity, SourceName

METRIC_COLUMNS = ("timestamp", "entity", "metric", "value")
OPTIONAL_METRIC_COLUMNS = ("unit", "source", "related")
RELATED_SEPARATOR = ";"
SOURCES: tuple[str, ...] = get_args(SourceName)
MAX_REPORTED_LINES = 100  # bad lines kept in a result (all of them are counted)

# -------------------------------------------------------------- severity

_LEVEL_WORDS: dict[str, Severity] = {
    "trace": "debug",
    "debug": "debug",
    "dbg": "debug",
    "info": "info",
    "information": "info",
    "informational": "info",
    "notice": "info",
    "warn": "warning",
    "warning": "warning",
    "wrn": "warning",
    "error": "error",
    "err": "error",
    "eror": "error",
    "severe": "error",
    "fatal": "critical",
    "critical": "critical",
    "crit": "critical",
    "panic": "critical",
    "emerg": "critical",
    "emergency": "critical",
    "alert": "critical",
}
# level=warn, "level":"error", severity: ERROR, lvl=E ...
_KEYED_LEVEL = re.compile(
    r"""(?i)["']?\b(?:level|lvl|severity|loglevel|log_level|levelname)\b["']?\s*[:=]\s*["']?"""
    r"""([A-Za-z]+)"""
)
# a level in brackets, any case: envoy's "[...][14][warning][upstream]", "[error]"
_BRACKET_LEVEL = re.compile(
    r"(?i)[\[<](trace|debug|info|notice|warn|warning|error|err|fatal|critical|crit|panic)[\]>]"
)
# klog / glog: "E0512 10:04:05.123456    1 file.go:42] message"
_KLOG = re.compile(r"^([IWEF])\d{4} \d{2}:\d{2}:\d{2}")
_KLOG_LEVEL: dict[str, Severity] = {"I": "info", "W": "warning", "E": "error", "F": "critical"}
# an upper-case level word standing alone: "ERROR", "[WARN]", "<FATAL>"
_BARE_LEVEL = re.compile(
    r"(?<![A-Za-z0-9_])(TRACE|DEBUG|INFO|NOTICE|WARN|WARNING|ERROR|ERR|SEVERE|FATAL|CRITICAL|"
    r"CRIT|PANIC|EMERG)(?![A-Za-z0-9_])"
)
# no level written, but unmistakably a failure
_FAILURE = re.compile(
    r"Traceback \(most recent call last\)|^panic: |^\s*at [\w$.]+\(|^Exception in thread|"
    r"\bUnhandled(?: \w+)? exception\b|^[\w.]+(?:Error|Exception): "
)


def log_severity(line: str, default: Severity = "info") -> Severity:
    """The severity written in a raw log line.

    Looks, in order, for a keyed level (``level=warn``, ``"level":"error"``,
    ``severity: ERROR``), a level in brackets (``[warning]``, any case), a klog prefix
    (``E0512 10:04:05...``), an upper-case level word (``ERROR``, ``WARN``), then for an
    unmistakable failure (a Python traceback, a Go panic, a Java stack frame,
    ``ValueError: ...``).

    Args:
        line: one log line (the message, without any transport prefix).
        default: the severity when the line names none.

    Returns:
        One of ``debug``, ``info``, ``warning``, ``error``, ``critical``.

    Example:
        ```python
        from tasks.telemetry.files import log_severity

        assert log_severity('{"level":"warn","msg":"slow query"}') == "warning"
        assert log_severity("E0512 10:04:05.1 1 main.go:42] dial tcp: refused") == "error"
        ```
    """
    head = line[:2000]
    keyed = _KEYED_LEVEL.search(head)
    if keyed and keyed.group(1).lower() in _LEVEL_WORDS:
        return _LEVEL_WORDS[keyed.group(1).lower()]
    bracket = _BRACKET_LEVEL.search(head)
    if bracket:
        return _LEVEL_WORDS[bracket.group(1).lower()]
    klog = _KLOG.match(head)
    if klog:
        return _KLOG_LEVEL[klog.group(1)]
    bare = _BARE_LEVEL.search(head)
    if bare:
        return _LEVEL_WORDS[bare.group(1).lower()]
    if _FAILURE.search(head):
        return "error"
    return default


# ------------------------------------------------------------ results


class BadLine(BaseModel):
    """A line (or CSV row) that could not be read, and why."""

    line: int = Field(description="1-based line number in the file")
    error: str


class EventsFile(BaseModel):
    """What ``read_events_jsonl`` read."""

    path: str
    events: list[Event] = Field(default_factory=list)
    lines_read: int = Field(0, description="Non-blank lines seen")
    bad_line_count: int = 0
    bad_lines: list[BadLine] = Field(
        default_factory=list, description=f"The first {MAX_REPORTED_LINES} bad lines"
    )


class MetricsFile(BaseModel):
    """What ``read_metrics_csv`` read."""

    path: str
    series: list[MetricSeries] = Field(default_factory=list)
    rows_read: int = 0
    bad_line_count: int = 0
    bad_lines: list[BadLine] = Field(
        default_factory=list, description=f"The first {MAX_REPORTED_LINES} bad rows"
    )


class TelemetryFiles(BaseModel):
    """Events and metric series loaded from files, with what could not be read."""

    events: list[Event] = Field(default_factory=list)
    series: list[MetricSeries] = Field(default_factory=list)
    bad_line_count: int = 0
    bad_lines: dict[str, list[BadLine]] = Field(
        default_factory=dict, description="File path -> its bad lines"
    )


def _validation_text(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors(include_url=False, include_input=False):
        loc = ".".join(str(p) for p in err.get("loc", ())) or "line"
        parts.append(f"{loc}: {err.get('msg', 'invalid')}")
    return "; ".join(parts)


def _note_bad(bad: list[BadLine], line: int, error: str) -> None:
    if len(bad) < MAX_REPORTED_LINES:
        bad.append(BadLine(line=line, error=error[:300]))


# -------------------------------------------------------------- events


def parse_event_line(text: str) -> Event:
    """One JSON Lines record as an ``Event``.

    Missing ``source`` means ``file``; missing ``severity`` is read from the message
    (``log_severity``); ``attributes`` values become strings.

    Raises:
        ValueError: with the field and reason when the record is not a valid event.
    """
    try:
        record = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not JSON: {exc.msg} at column {exc.colno}") from None
    if not isinstance(record, dict):
        raise ValueError(f"not a JSON object: {type(record).__name__}")
    if "timestamp" not in record:
        raise ValueError("timestamp: missing")
    record["timestamp"] = parse_time(record["timestamp"])
    record.setdefault("source", "file")
    message = record.get("message")
    if isinstance(message, str) and record.get("severity") in (None, ""):
        record["severity"] = log_severity(message)
    attributes = record.get("attributes")
    if isinstance(attributes, dict):
        record["attributes"] = {
            str(k): v if isinstance(v, str) else json.dumps(v) for k, v in attributes.items()
        }
    try:
        return Event.model_validate(record)
    except ValidationError as exc:
        raise ValueError(_validation_text(exc)) from None


def read_events_jsonl(path: str | os.PathLike[str]) -> EventsFile:
    """Read events from a JSON Lines file, skipping (and reporting) bad lines.

    Args:
        path: the ``.jsonl`` file.

    Returns:
        The events in file order, the number of non-blank lines, and every bad line
        counted (the first ``MAX_REPORTED_LINES`` with their line number and reason).

    Example:
        ```python
        import tempfile
        from datetime import UTC, datetime
        from pathlib import Path

        from tasks.telemetry.files import read_events_jsonl, write_events_jsonl
        from tasks.telemetry.model import Event

        path = Path(tempfile.mkdtemp()) / "events.jsonl"
        event = Event(
            timestamp=datetime.now(UTC), source="file", entity="pod:api-0", message="OOMKilled"
        )
        write_events_jsonl(path, [event])
        path.write_text(path.read_text() + "not json")
        read = read_events_jsonl(path)
        assert (len(read.events), read.bad_line_count) == (1, 1)
        ```
    """
    out = EventsFile(path=str(path))
    with open(path, encoding="utf-8") as handle:
        for number, text in enumerate(handle, start=1):
            if not text.strip():
                continue
            out.lines_read += 1
            try:
                out.events.append(parse_event_line(text))
            except ValueError as exc:
                out.bad_line_count += 1
                _note_bad(out.bad_lines, number, str(exc))
    _log_bad(out.path, out.bad_line_count, out.bad_lines)
    return out


def write_events_jsonl(path: str | os.PathLike[str], events: Iterable[Event]) -> Path:
    """Write events as JSON Lines (ISO 8601 UTC timestamps), replacing ``path`` atomically.

    See ``read_events_jsonl`` for an example (it writes the file it reads).
    """
    body = "".join(event.model_dump_json() + "\n" for event in events)
    return write_text_atomic(path, body)


# ------------------------------------------------------------- metrics


def _metric_row(row: dict[str, str | None], source: str) -> tuple[tuple[str, str, str], dict]:
    missing = [c for c in METRIC_COLUMNS if not (row.get(c) or "").strip()]
    if missing:
        raise ValueError(f"{', '.join(missing)}: missing")
    try:
        value = float(str(row["value"]).strip())
    except ValueError:
        raise ValueError(f"value: not a number: {str(row['value'])[:40]!r}") from None
    if not math.isfinite(value):
        raise ValueError(f"value: not a finite number: {row['value']!r}")
    entity = str(row["entity"]).strip()
    if ":" not in entity:
        raise ValueError(f"entity: {entity[:60]!r} must be '<type>:<name>'")
    related = [r.strip() for r in (row.get("related") or "").split(RELATED_SEPARATOR) if r.strip()]
    bad_related = [r for r in related if ":" not in r]
    if bad_related:
        raise ValueError(f"related: {bad_related[0][:60]!r} must be '<type>:<name>'")
    src = (row.get("source") or "").strip() or source
    if src not in SOURCES:
        raise ValueError(f"source: {src[:30]!r} is not one of {', '.join(SOURCES)}")
    key = (src, entity, str(row["metric"]).strip())
    sample = {
        "timestamp": parse_time(row["timestamp"]),
        "value": value,
        "unit": (row.get("unit") or "").strip() or None,
        "related": related,
    }
    return key, sample


def read_metrics_csv(path: str | os.PathLike[str], source: str = "file") -> MetricsFile:
    """Read metric samples from CSV into one ``MetricSeries`` per (source, entity, metric).

    Args:
        path: a CSV file with a header row naming at least ``timestamp, entity, metric,
            value`` (optional: ``unit``, ``source``, ``related``).
        source: the ``source`` of rows without a ``source`` column or value.

    Returns:
        The series (samples sorted by time; unit: the first one given; related: the
        union) and every bad row counted, with its line number and reason.

    Raises:
        ValueError: when the header lacks a required column.

    Example:
        ```python
        import tempfile
        from datetime import UTC, datetime
        from pathlib import Path

        from tasks.telemetry.files import read_metrics_csv, write_metrics_csv
        from tasks.telemetry.model import MetricSeries

        path = Path(tempfile.mkdtemp()) / "metrics.csv"
        cpu = MetricSeries(
            source="file",
            entity="host:web-1",
            metric="cpu_percent",
            timestamps=[datetime.now(UTC)],
            values=[42.0],
        )
        write_metrics_csv(path, [cpu])
        read = read_metrics_csv(path)
        assert [s.metric for s in read.series if s.entity == "host:web-1"] == ["cpu_percent"]
        ```
    """
    out = MetricsFile(path=str(path))
    groups: dict[tuple[str, str, str], list[dict]] = {}
    with open(path, encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        header = [h.strip() for h in reader.fieldnames or []]
        missing = [c for c in METRIC_COLUMNS if c not in header]
        if missing:
            raise ValueError(f"{path}: header lacks column(s) {', '.join(missing)}")
        reader.fieldnames = header
        for row in reader:
            out.rows_read += 1
            try:
                key, sample = _metric_row(row, source)
                groups.setdefault(key, []).append(sample)
            except ValueError as exc:
                out.bad_line_count += 1
                _note_bad(out.bad_lines, reader.line_num, str(exc))
    for (src, entity, metric), samples in groups.items():
        samples.sort(key=lambda s: s["timestamp"])
        related = list(dict.fromkeys(r for s in samples for r in s["related"]))
        out.series.append(
            MetricSeries(
                source=src,
                entity=entity,
                related=related,
                metric=metric,
                unit=next((s["unit"] for s in samples if s["unit"]), None),
                timestamps=[s["timestamp"] for s in samples],
                values=[s["value"] for s in samples],
            )
        )
    _log_bad(out.path, out.bad_line_count, out.bad_lines)
    return out


def write_metrics_csv(path: str | os.PathLike[str], series: Iterable[MetricSeries]) -> Path:
    """Write metric series as CSV, one row per sample, replacing ``path`` atomically.

    Columns: ``timestamp, entity, metric, value, unit, source, related``. Series
    ``attributes`` are not written (the format has no column for them).

    See ``read_metrics_csv`` for an example (it writes the file it reads).
    """
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([*METRIC_COLUMNS, *OPTIONAL_METRIC_COLUMNS])
    for s in series:
        related = RELATED_SEPARATOR.join(s.related)
        for stamp, value in zip(s.timestamps, s.values, strict=True):
            iso = parse_time(stamp).isoformat().replace("+00:00", "Z")
            writer.writerow([iso, s.entity, s.metric, repr(value), s.unit or "", s.source, related])
    return write_text_atomic(path, buffer.getvalue())


# ----------------------------------------------------------------- shared


def _log_bad(path: str, count: int, bad: list[BadLine]) -> None:
    if count:
        shown = ", ".join(f"line {b.line}: {b.error}" for b in bad[:5])
        task_logger(__name__).warning(
            "%s: skipped %d unreadable line(s) (%s%s)", path, count, shown, "..." * (count > 5)
        )


@task(name="load-telemetry-files", cache_policy=NO_CACHE, persist_result=False)
def load_telemetry_files(
    events_path: str | os.PathLike[str] | None = None,
    metrics_path: str | os.PathLike[str] | None = None,
) -> TelemetryFiles:
    """Events (JSON Lines) and metric series (CSV) from exported files.

    Args:
        events_path: a JSON Lines events file, or None.
        metrics_path: a metrics CSV file, or None.

    Returns:
        Everything readable, with bad lines per file (counted and reported).

    Raises:
        ValueError: when neither path is given, or a named file does not exist.

    Example:
        ```python
        from prefect import flow

        from tasks.telemetry.files import load_telemetry_files


        @flow
        def exported_errors(events_path: str) -> list[str]:
            files = load_telemetry_files(events_path)
            return [e.message for e in files.events if e.severity in ("error", "critical")]
        ```
    """
    if events_path is None and metrics_path is None:
        raise ValueError("events_path, metrics_path: give at least one file")
    for name, value in (("events_path", events_path), ("metrics_path", metrics_path)):
        if value is not None and not Path(value).is_file():
            raise ValueError(f"{name}: no such file: {value}")
    out = TelemetryFiles()
    if events_path is not None:
        read = read_events_jsonl(events_path)
        out.events = read.events
        out.bad_line_count += read.bad_line_count
        if read.bad_lines:
            out.bad_lines[read.path] = read.bad_lines
    if metrics_path is not None:
        metrics = read_metrics_csv(metrics_path)
        out.series = metrics.series
        out.bad_line_count += metrics.bad_line_count
        if metrics.bad_lines:
            out.bad_lines[metrics.path] = metrics.bad_lines
    return out
