"""Log dialects: how each kind of service writes a log line, and what its levels mean.

Styles: ``java`` (Spring Boot 3 console), ``go`` (log/slog text), ``python`` (logging),
``gunicorn``, ``node`` (pino JSON), ``nginx-error``, ``postgres``, ``redis`` and ``plain``;
and the nginx access log (:func:`nginx_access_line`).

Example:
    ```python
    import random
    from datetime import UTC, datetime

    from samples.scenarios.dialects import format_line
    from samples.scenarios.topology import Pod

    pod = Pod("payments-7d9f-x2x4k", "payments", "ip-10-0-1-23", "10.0.1.40", "go")
    when = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    print(format_line("go", when, "ERROR", "", 'msg="charge failed"', pod, random.Random(0)))
    ```
"""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime

from samples.datafiles import load_json
from samples.scenarios.draw import VALUES, draw_int, pick
from samples.scenarios.topology import Pod

# a line's level -> the event severity
SEVERITY = {
    "DEBUG": "debug",
    "INFO": "info",
    "LOG": "info",
    "DETAIL": "info",
    "WARN": "warning",
    "WARNING": "warning",
    "ERROR": "error",
    "FATAL": "critical",
    "CRITICAL": "critical",
    "PANIC": "critical",
}
_PINO_LEVEL = {"INFO": 30, "WARN": 40, "ERROR": 50, "FATAL": 60}
_AGENTS = load_json("scenarios", "dialects.json")["agents"]


def iso_utc(dt: datetime) -> str:
    """``2026-03-02T09:00:00.000000Z``."""
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def pino_fields(**extra: object) -> str:
    """The ``logger`` argument that gives a pino (``node`` style) record extra fields."""
    return json.dumps(extra, separators=(",", ":"))


def format_line(
    style: str, dt: datetime, level: str, logger: str, text: str, pod: Pod, rng: random.Random
) -> str:
    """One log line as the service's stack writes it."""
    ms = dt.microsecond // 1000
    if style == "java":  # Spring Boot 3 console pattern
        thread = (
            "main" if logger.endswith("Application") else f"nio-8080-exec-{draw_int(rng, 1, 11)}"
        )
        return (
            f"{dt:%Y-%m-%dT%H:%M:%S}.{ms:03d}Z {level:>5} 1 --- [{pod.service}] "
            f"[{thread:>15}] {logger:<40} : {text}"
        )
    if style == "go":  # log/slog TextHandler
        return f"time={dt:%Y-%m-%dT%H:%M:%S}.{ms:03d}Z level={level} {text}"
    if style == "python":
        return f"{dt:%Y-%m-%d %H:%M:%S},{ms:03d} {level} [{logger}] {text}"
    if style == "gunicorn":
        return f"[{dt:%Y-%m-%d %H:%M:%S} +0000] [{draw_int(rng, 7, 40)}] [{level}] {text}"
    if style == "node":  # pino; ``logger`` carries the extra fields as JSON
        record = {
            "level": _PINO_LEVEL[level],
            "time": int(dt.timestamp() * 1000),
            "pid": 1,
            "hostname": pod.name,
            "msg": text,
        }
        record.update(json.loads(logger) if logger else {})
        return json.dumps(record, separators=(",", ":"))
    if style == "nginx-error":
        return (
            f"{dt:%Y/%m/%d %H:%M:%S} [{level.lower()}] 23#23: *{draw_int(rng, 1000, 99999)} {text}"
        )
    if style == "postgres":
        return f"{dt:%Y-%m-%d %H:%M:%S}.{ms:03d} UTC [{draw_int(rng, 100, 9999)}] {level}:  {text}"
    if style == "redis":
        return f"1:M {dt:%d %b %Y %H:%M:%S}.{ms:03d} {'#' if level == 'WARNING' else '*'} {text}"
    return f"{dt:%Y-%m-%dT%H:%M:%S}.{ms:03d}Z {level} {text}"  # plain


def nginx_access_line(
    dt: datetime, method: str, path: str, status: int, size: int, rt: float, rng: random.Random
) -> str:
    """An nginx access line: combined format plus the request time."""
    return (
        f'{VALUES["client"](rng)} - - [{dt:%d/%b/%Y:%H:%M:%S} +0000] "{method} {path} '
        f'HTTP/1.1" {status} {size} "https://shop.example.com/" "{pick(rng, _AGENTS)}" '
        f"{rt:.3f}"
    )
