"""Scenario files: write a run as the files ``detect_incidents`` and ``evaluate_incidents``
read, and read its ``truth.json`` back.

Example:
    ```python
    import tempfile

    from samples.scenarios import generate, load_truth, write_scenario

    with tempfile.TemporaryDirectory() as folder:
        paths = write_scenario(generate(["bad_rollout"], lines=2_000), folder)
        print(paths.events.name, load_truth(paths.truth).incidents[0].id)
    ```
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import NamedTuple

from samples.scenarios.dialects import iso_utc
from samples.scenarios.truth import Scenario
from tasks.common.atomic import write_text_atomic
from tasks.incidents.ground_truth import GroundTruth


class ScenarioPaths(NamedTuple):
    events: Path
    metrics: Path
    truth: Path


def write_scenario(scenario: Scenario, folder: str | Path) -> ScenarioPaths:
    """Write a run as the files ``detect_incidents`` and ``evaluate_incidents`` read.

    ``events.jsonl`` (one event per line: timestamp, source, kind, entity, related,
    severity, message, attributes), ``metrics.csv`` (timestamp, entity, metric, value) and
    ``truth.json`` (:class:`GroundTruth`, with the call graph). Timestamps are ISO-8601
    UTC (``2026-03-02T09:00:00.000000Z``). Each file goes to a temp file beside it and is
    renamed when complete, so a reader never sees half a file. The formats are the ones
    ``tasks.telemetry.files`` reads; metric series lose ``source``/``related``/``unit``,
    which the CSV format has no column for.

    Args:
        scenario: A run from :func:`generate`.
        folder: Created if missing.

    Returns:
        The three paths.

    Example:
        >>> import tempfile
        >>> from samples.scenarios import generate, write_scenario
        >>> paths = write_scenario(generate(["bad_rollout"], lines=2_000), tempfile.mkdtemp())
        >>> paths.events.name
        'events.jsonl'
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = ScenarioPaths(folder / "events.jsonl", folder / "metrics.csv", folder / "truth.json")
    records = (
        json.dumps(
            {
                "timestamp": iso_utc(e.timestamp),
                "source": e.source,
                "kind": e.kind,
                "entity": e.entity,
                "related": e.related,
                "severity": e.severity,
                "message": e.message,
                "attributes": e.attributes,
            },
            ensure_ascii=False,
            separators=(",", ":"),
        )
        for e in scenario.events
    )
    write_text_atomic(paths.events, "".join(f"{r}\n" for r in records))
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(("timestamp", "entity", "metric", "value"))
    for series in scenario.metrics:
        for stamp, value in zip(series.timestamps, series.values, strict=True):
            writer.writerow((iso_utc(stamp), series.entity, series.metric, repr(float(value))))
    write_text_atomic(paths.metrics, buf.getvalue())
    write_text_atomic(paths.truth, scenario.truth.model_dump_json(indent=1))
    return paths


def load_truth(path: str | Path) -> GroundTruth:
    """Read a ``truth.json`` written by :func:`write_scenario`.

    Raises:
        FileNotFoundError: no such file.
        ValueError: the file is not a ground-truth document (names the path and reason).
    """
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    try:
        return GroundTruth.model_validate_json(text)
    except ValueError as exc:
        reason = "; ".join(str(exc).splitlines()[:3])
        raise ValueError(f"{path}: not a ground-truth file ({reason})") from None
