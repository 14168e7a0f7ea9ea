"""What the anomaly ensemble hands to correlation: one model for every kind of signal.

``tasks.incidents.anomaly`` turns events and metric series into :class:`AnomalySignal` objects;
``tasks.incidents.correlation`` joins signals into :class:`Incident` objects;
``tasks.incidents.remediation`` attaches :class:`Suggestion` objects;
``tasks.incidents.evaluation`` scores incidents against a scenario's ground truth. Each module
only depends on these models.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from tasks.telemetry.model import Severity, SourceName


def entity_type(entity: str) -> str:
    """``"pod"`` for ``"pod:api-7d9f"``."""
    return entity.split(":", 1)[0]


def entity_name(entity: str) -> str:
    """``"api-7d9f"`` for ``"pod:api-7d9f"``."""
    return entity.split(":", 1)[-1]


SignalKind = Literal[
    "new_template",  # a log template never seen in the baseline window
    "frequency_spike",  # a known template far more frequent than its baseline
    "isolation_forest",  # an unusual mix of templates in a time window
    "metric_zscore",  # a metric far from its robust baseline (median/MAD)
    "sentry_new_issue",
    "sentry_regression",
    "alarm",  # CloudWatch alarm in ALARM, Grafana alert firing
    "k8s_warning",  # Kubernetes Warning events / bad pod states (BackOff, OOMKilled, ...)
    "deploy",  # a rollout or release: context for correlation, never an incident alone
]


class AnomalySignal(BaseModel):
    """One anomalous thing, with the evidence and the events behind it."""

    id: str = Field(description="Stable within a run, e.g. 'new_template:42:pod:api-7d9f'")
    kind: SignalKind
    source: SourceName
    entity: str = Field(description='"<type>:<name>" (see tasks.telemetry.model)')
    related: list[str] = Field(default_factory=list)
    start: datetime
    end: datetime
    score: float = Field(ge=0, le=1, description="Weighted ensemble score")
    severity: Severity = "warning"
    title: str = Field(description="One readable line: what is anomalous")
    template_id: int | None = None
    template: str | None = None
    cluster_id: int | None = Field(default=None, description="HDBSCAN cluster of the template")
    cluster_label: str | None = None
    evidence: dict[str, float | str] = Field(default_factory=dict)
    event_indices: list[int] = Field(
        default_factory=list, description="Positions of the supporting events in the run's input"
    )

    def entities(self) -> set[str]:
        return {self.entity, *self.related}


JoinReason = Literal["temporal", "entity", "semantic"]


class TimelineEntry(BaseModel):
    signal_id: str
    at: datetime
    kind: SignalKind
    source: SourceName
    entity: str
    title: str
    joined_by: list[JoinReason] = Field(
        default_factory=list, description="Why it joined the incident (empty for the first)"
    )
    note: str | None = Field(
        default=None,
        description="Detail of the join, e.g. 'service:checkout calls service:payments'",
    )


class Suggestion(BaseModel):
    """A remediation from the rule library. ``detect_incidents`` never executes it."""

    rule: str = Field(description="Rule id, e.g. crashloop-after-rollout")
    type: Literal[
        "rollback",
        "restart",
        "scale",
        "raise_memory_limit",
        "raise_pool",
        "free_disk",
        "renew_certificate",
        "drain",  # cordon and drain a node (noisy neighbour)
        "investigate",
    ]
    target: str = Field(description='"<type>:<name>" it acts on')
    command: str = Field(description="The exact command a person (or the remediate flow) runs")
    risk: Literal["low", "medium", "high"]
    automatable: bool = Field(description="The remediate flow can execute it (after approval)")
    prerequisites: list[str] = Field(default_factory=list)
    reason: str


class Incident(BaseModel):
    id: str
    start: datetime
    end: datetime
    severity: Severity
    title: str
    entities: list[str]
    signals: list[str] = Field(description="AnomalySignal ids, earliest first")
    timeline: list[TimelineEntry]
    root_cause: str | None = Field(
        description="Entity of the earliest signal on the most upstream entity"
    )
    root_cause_signal: str | None = None
    confidence: float = Field(ge=0, le=1)
    suggestions: list[Suggestion] = Field(default_factory=list)
