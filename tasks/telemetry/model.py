"""One event model and one metric-series model for every telemetry source.

Kubernetes, Sentry, CloudWatch, Grafana and exported files (``tasks.telemetry.kubernetes``,
``tasks.telemetry.sentry``, ``tasks.telemetry.cloudwatch``, ``tasks.telemetry.grafana``,
``tasks.telemetry.files``)
map into these, and the incident pipeline (masking, template mining, clustering,
anomaly scoring, correlation) only ever sees them.

Entities: ``entity`` is the most specific thing a signal is about (a pod, a host, a
Lambda function, a service); ``related`` lists the bigger things it belongs to (its
service, node, namespace), each as ``"<type>:<name>"``, so two signals about different
pods of one service, or about a pod and its node, share an entity.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field, field_validator

Severity = Literal["debug", "info", "warning", "error", "critical"]
SEVERITY_RANK: dict[str, int] = {"debug": 0, "info": 1, "warning": 2, "error": 3, "critical": 4}
EntityType = Literal[
    "service", "pod", "container", "node", "host", "function", "database", "namespace", "unknown"
]
SourceName = Literal["kubernetes", "sentry", "cloudwatch", "grafana", "file"]
EventKind = Literal[
    "log",  # a log line (container log, CloudWatch log event, file line)
    "k8s_event",  # a Kubernetes Event (BackOff, OOMKilling, FailedScheduling, ...)
    "k8s_state",  # a pod/node condition read from status (CrashLoopBackOff, NotReady, ...)
    "issue",  # a Sentry issue (new, regressed, escalating)
    "error_event",  # one Sentry event of an issue
    "alarm",  # a CloudWatch alarm state change / Grafana alert
    "annotation",  # a Grafana annotation (deploys, incidents marked by people)
    "deploy",  # a rollout / release marker from any source
]


def entity_key(entity_type: str, name: str) -> str:
    """``"pod:checkout-7d9f"``: the form used in ``Event.entity`` and ``related``."""
    return f"{entity_type}:{name}"


class Event(BaseModel):
    """A discrete telemetry signal: a log line, a Kubernetes event, a Sentry issue, an alarm."""

    timestamp: datetime = Field(description="When it happened (UTC)")
    source: SourceName
    kind: EventKind = "log"
    entity: str = Field(description='Most specific entity, "<type>:<name>", e.g. "pod:api-7d9f"')
    related: list[str] = Field(
        default_factory=list,
        description='Enclosing entities, e.g. ["service:api", "node:ip-10-0-1-5"]',
    )
    severity: Severity = "info"
    message: str
    attributes: dict[str, str] = Field(
        default_factory=dict, description="Source-specific fields (reason, count, issue id, ...)"
    )

    @field_validator("entity", "related", mode="after")
    @classmethod
    def _typed(cls, value):
        for item in [value] if isinstance(value, str) else value:
            if ":" not in item:
                raise ValueError(f"entity {item!r} must be '<type>:<name>'")
        return value

    def entities(self) -> set[str]:
        """This event's entity and every enclosing one."""
        return {self.entity, *self.related}


class MetricSeries(BaseModel):
    """Samples of one metric of one entity, oldest first."""

    source: SourceName
    entity: str = Field(description='"<type>:<name>", as in Event.entity')
    related: list[str] = Field(default_factory=list)
    metric: str = Field(description="e.g. cpu_percent, memory_bytes, http_5xx_rate, latency_p99_ms")
    unit: str | None = None
    timestamps: list[datetime]
    values: list[float]
    attributes: dict[str, str] = Field(default_factory=dict)

    @field_validator("values", mode="after")
    @classmethod
    def _same_length(cls, values, info):
        stamps = info.data.get("timestamps")
        if stamps is not None and len(stamps) != len(values):
            raise ValueError(f"{len(stamps)} timestamps but {len(values)} values")
        return values
