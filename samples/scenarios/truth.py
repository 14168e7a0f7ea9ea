"""The ground-truth assembly: a run's rows become sorted ``Event`` objects, its arrays
``MetricSeries``, and its planted incidents a :class:`~tasks.incidents.ground_truth.GroundTruth`.

Example:
    ```python
    from samples.scenarios import generate

    run = generate(["memory_leak_oom"], seed=2, lines=5_000)
    first = run.truth.incidents[0]
    print(first.id, sorted(first.metric_keys)[:2], run.truth.label_of(0))
    ```
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from pydantic import TypeAdapter

from samples.scenarios.run import METRIC_STEP, Run
from samples.scenarios.topology import DEPENDENCIES
from tasks.incidents.ground_truth import GroundTruth, TrueIncident
from tasks.telemetry.model import Event, MetricSeries


@dataclass
class Scenario:
    """A generated run: telemetry (events sorted by time), the answer key, the call graph."""

    events: list[Event]
    metrics: list[MetricSeries]
    truth: GroundTruth
    dependencies: dict[str, list[str]]


def assemble(run: Run, names: list[str], seed: int) -> Scenario:
    """Sort and validate the events; label them and the moved series with their incident."""
    rows = sorted(run.rows, key=lambda r: (r[0], r[1]))
    events = TypeAdapter(list[Event]).validate_python([r[3] for r in rows])
    indices: dict[str, set[int]] = {inc_id: set() for inc_id in run.incidents}
    for i, row in enumerate(rows):
        if row[2] is not None:
            indices[row[2]].add(i)
    stamps = [run.at(i * METRIC_STEP) for i in range(run.n_steps)]
    metrics = [
        MetricSeries(
            source=s.source,
            entity=entity,
            related=s.related,
            metric=metric,
            unit=s.unit,
            timestamps=stamps[s.first :],
            values=np.round(s.values, 3).tolist(),
        )
        for (entity, metric), s in run.series.items()
    ]
    incidents = []
    for inc in run.incidents.values():
        touched = {e for i in indices[inc.id] for e in events[i].entities()}
        touched |= {entity for entity, _metric in inc.metric_keys}
        incidents.append(
            TrueIncident(
                id=inc.id,
                scenario=inc.scenario,
                root_cause_entity=inc.root_cause,
                start=run.at(inc.span[0]),
                end=run.at(inc.span[1]),
                event_indices=indices[inc.id],
                metric_keys=inc.metric_keys,
                entities=sorted(touched),
                description=inc.description,
            )
        )
    truth = GroundTruth(
        incidents=incidents,
        start=run.start,
        end=run.at(run.duration),
        baseline_end=run.at(run.duration // 2),
        n_events=len(events),
        seed=seed,
        scenarios=names,
        dependencies={k: list(v) for k, v in DEPENDENCIES.items()},
    )
    return Scenario(events, metrics, truth, {k: list(v) for k, v in DEPENDENCIES.items()})


# --------------------------------------------------------------------------- files
