"""Which Kubernetes events and states are warnings worth watching (detector ``k8s_warning``).

Kubernetes Warning events and bad pod/node states: ``BAD_K8S_REASONS`` weigh ``f = 1``,
other warnings 0.6. Read from ``reason`` (or ``state``/``waiting_reason``/
``terminated_reason``), node conditions as ``condition`` + ``condition_status``/``status``
(``tasks.telemetry.kubernetes`` maps into these). Scoring is shared with alarms:
``tasks.incidents.anomaly.watched_events``.

Example:
    ```python
    from datetime import UTC, datetime

    from tasks.incidents.anomaly.kubernetes_warnings import k8s_reason
    from tasks.telemetry.model import Event

    event = Event(timestamp=datetime(2024, 5, 1, tzinfo=UTC), source="kubernetes",
                  kind="k8s_state", entity="node:n1", severity="warning", message="node n1",
                  attributes={"condition": "Ready", "condition_status": "False"})
    print(k8s_reason(event))  # ('NodeNotReady', True)
    ```
"""

from __future__ import annotations

from tasks.incidents.anomaly.context import first_value
from tasks.telemetry.model import SEVERITY_RANK, Event

BAD_K8S_REASONS = frozenset(
    r.lower()
    for r in (
        "BackOff",
        "CrashLoopBackOff",
        "OOMKilled",
        "OOMKilling",
        "SystemOOM",
        "Unhealthy",
        "FailedScheduling",
        "Evicted",
        "Evicting",
        "NodeNotReady",
        "NotReady",
        "NodeStatusUnknown",
        "ImagePullBackOff",
        "ErrImagePull",
        "InvalidImageName",
        "CreateContainerError",
        "CreateContainerConfigError",
        "RunContainerError",
        "ContainerCannotRun",
        "FailedMount",
        "FailedAttachVolume",
        "FailedCreatePodSandBox",
        "FailedKillPod",
        "BackoffLimitExceeded",
        "DeadlineExceeded",
        "Error",
        "Failed",
        "NodeHasDiskPressure",
        "NodeHasInsufficientMemory",
        "NodeHasInsufficientPID",
        "DiskPressure",
        "MemoryPressure",
        "PIDPressure",
        "NetworkUnavailable",
        "Rebooted",
    )
)
_NODE_PRESSURE = {"memorypressure", "diskpressure", "pidpressure", "networkunavailable"}
_REASON_KEYS = ("reason", "state", "waiting_reason", "terminated_reason")


def k8s_reason(event: Event) -> tuple[str, bool] | None:
    """(reason, is a known bad reason) of a Kubernetes event/state worth watching."""
    attrs = event.attributes
    condition = (attrs.get("condition") or "").lower()
    status = (attrs.get("condition_status") or attrs.get("status") or "").lower()
    if condition == "ready" and status in {"false", "unknown"}:
        return "NodeNotReady", True
    if condition in _NODE_PRESSURE and status == "true":
        return attrs["condition"], True
    reason = first_value(attrs, _REASON_KEYS)
    if reason and reason.lower() in BAD_K8S_REASONS:
        return reason, True
    if event.kind == "k8s_event" and SEVERITY_RANK[event.severity] >= SEVERITY_RANK["warning"]:
        return reason or "Warning", False
    return None
