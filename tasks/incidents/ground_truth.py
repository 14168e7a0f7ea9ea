"""The answer key of an incident run: which events and series belong to which true incident.

:class:`GroundTruth` names, per planted incident (:class:`TrueIncident`), its scenario,
root-cause entity, time span, the positions of its events in the run's event list and the
``(entity, metric)`` series it moved; every other event is noise. The synthetic scenarios
(``samples.scenarios``) produce it, and ``tasks.incidents.evaluation`` scores detections
against it.

Example:
    ```python
    from datetime import UTC, datetime

    from tasks.incidents.ground_truth import GroundTruth, TrueIncident

    t0, t1 = datetime(2026, 3, 2, 10, tzinfo=UTC), datetime(2026, 3, 2, 10, 12, tzinfo=UTC)
    truth = GroundTruth(
        incidents=[
            TrueIncident(
                id="T1-bad_rollout",
                scenario="bad_rollout",
                root_cause_entity="service:payments",
                start=t0,
                end=t1,
                event_indices={3, 4},
            )
        ],
        start=t0,
        end=t1,
        baseline_end=t0,
        n_events=10,
        seed=0,
        scenarios=["bad_rollout"],
    )
    assert truth.label_of(3) == "T1-bad_rollout" and truth.label_of(0) is None
    ```
"""

from __future__ import annotations

from datetime import datetime
from functools import cached_property

from pydantic import BaseModel, Field, field_serializer


class TrueIncident(BaseModel):
    """One planted incident: what happened, where it started and what it left behind."""

    id: str = Field(description="e.g. 'T1-bad_rollout'")
    scenario: str
    root_cause_entity: str = Field(description='"<type>:<name>", e.g. "service:payments"')
    start: datetime
    end: datetime
    event_indices: set[int] = Field(default_factory=set, description="Positions in events")
    metric_keys: set[tuple[str, str]] = Field(
        default_factory=set, description="(entity, metric) series the incident moved"
    )
    entities: list[str] = Field(default_factory=list, description="Every entity it touched")
    description: str = ""

    @field_serializer("event_indices")
    def _sorted_indices(self, value: set[int]) -> list[int]:
        return sorted(value)

    @field_serializer("metric_keys")
    def _sorted_keys(self, value: set[tuple[str, str]]) -> list[list[str]]:
        return [list(key) for key in sorted(value)]


class GroundTruth(BaseModel):
    """The answer key of a generated run. Events in no incident are noise."""

    incidents: list[TrueIncident]
    start: datetime
    end: datetime
    baseline_end: datetime = Field(description="No incident before this")
    n_events: int
    seed: int
    scenarios: list[str]
    dependencies: dict[str, list[str]] = Field(default_factory=dict)

    @cached_property
    def _labels(self) -> dict[int, str]:
        return {i: inc.id for inc in self.incidents for i in inc.event_indices}

    def labels(self) -> dict[int, str]:
        """Event position -> true incident id (noise events are absent)."""
        return self._labels

    def label_of(self, index: int) -> str | None:
        """The true incident an event belongs to, or None for noise."""
        return self.labels().get(index)

    def incident(self, incident_id: str) -> TrueIncident:
        for inc in self.incidents:
            if inc.id == incident_id:
                return inc
        raise KeyError(incident_id)
