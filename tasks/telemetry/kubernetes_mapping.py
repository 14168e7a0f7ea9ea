"""Kubernetes API objects (their JSON) as telemetry ``Event``s: pods, Events, container logs, nodes.

Pure functions over the shapes the API documents (``metadata``, ``spec``, ``status``),
so they are testable without a cluster; ``tasks.telemetry.kubernetes`` calls the API and
maps its answers with them. A pod's service comes from ``tasks.telemetry.entities``.

What becomes what (pods, Events, container logs, node conditions) is listed in
``tasks.telemetry.kubernetes``; metrics-server usage is ``tasks.telemetry.kubernetes_metrics``.

Example:
    ```python
    from tasks.telemetry.kubernetes_mapping import PodRef, k8s_event_to_event, log_text_to_events

    warning = {
        "type": "Warning",
        "reason": "BackOff",
        "message": "Back-off restarting failed container",
        "lastTimestamp": "2026-01-05T10:00:00Z",
        "involvedObject": {"kind": "Pod", "name": "checkout-7d9f8b6c5d-x2x4z", "namespace": "shop"},
    }
    event = k8s_event_to_event(warning)
    assert (event.entity, event.severity) == ("pod:checkout-7d9f8b6c5d-x2x4z", "warning")
    assert "service:checkout" in event.related

    pod = PodRef(namespace="shop", name="checkout-7d9f8b6c5d-x2x4z", containers=["app"])
    lines = log_text_to_events("2026-01-05T10:00:01Z ERROR payment declined", pod, "app")
    assert (lines[0].severity, lines[0].message) == ("error", "ERROR payment declined")
    ```
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, Field

from tasks.common.times import as_utc, parse_time_or_none
from tasks.telemetry.entities import (
    DEFAULT_SERVICE_LABELS,
    owner_workload,
    pod_service,
    service_from_pod_name,
)
from tasks.telemetry.files import log_severity
from tasks.telemetry.model import Event, Severity, entity_key

SOURCE = "kubernetes"

# waiting reasons that mean the container cannot run (anything else, e.g.
# ContainerCreating / PodInitializing, is a normal step)
BAD_WAITING_REASONS = frozenset(
    {
        "CrashLoopBackOff",
        "ImagePullBackOff",
        "ErrImagePull",
        "ErrImageNeverPull",
        "InvalidImageName",
        "CreateContainerConfigError",
        "CreateContainerError",
        "RunContainerError",
        "ContainerCannotRun",
        "PreStartHookError",
        "PostStartHookError",
    }
)
# node condition -> (the status that is bad, the event reason, severity)
NODE_CONDITIONS: dict[str, tuple[str, str, Severity]] = {
    "MemoryPressure": ("True", "MemoryPressure", "warning"),
    "DiskPressure": ("True", "DiskPressure", "warning"),
    "PIDPressure": ("True", "PIDPressure", "warning"),
    "NetworkUnavailable": ("True", "NetworkUnavailable", "error"),
}
# involvedObject.kind -> entity type
OBJECT_ENTITY_TYPES: dict[str, str] = {
    "Pod": "pod",
    "Node": "node",
    "Namespace": "namespace",
    "Deployment": "service",
    "ReplicaSet": "service",
    "StatefulSet": "service",
    "DaemonSet": "service",
    "Job": "service",
    "CronJob": "service",
    "Service": "service",
    "HorizontalPodAutoscaler": "service",
}


# --------------------------------------------------------------- models


class PodRef(BaseModel):
    """A pod as the other Kubernetes tasks need it: where it runs and what it belongs to."""

    namespace: str
    name: str
    node: str | None = None
    service: str | None = None
    phase: str | None = None
    containers: list[str] = Field(default_factory=list)
    restarts: int = 0
    related: list[str] = Field(default_factory=list)

    @property
    def entity(self) -> str:
        return entity_key("pod", self.name)


class NodeRef(BaseModel):
    """A node's identity, capacity and allocatable resources (Kubernetes quantities)."""

    name: str
    capacity: dict[str, str] = Field(default_factory=dict)
    allocatable: dict[str, str] = Field(default_factory=dict)
    conditions: dict[str, str] = Field(default_factory=dict, description="type -> status")
    unschedulable: bool = False
    labels: dict[str, str] = Field(default_factory=dict)


# ----------------------------------------------------------- pure mapping


def _meta(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    return obj.get("metadata") or {}


def pod_ref(
    pod: Mapping[str, Any], service_labels: Iterable[str] = DEFAULT_SERVICE_LABELS
) -> PodRef:
    """A ``PodRef`` (with ``related``: service, node, namespace) from a Pod's JSON."""
    meta, spec, status = _meta(pod), pod.get("spec") or {}, pod.get("status") or {}
    namespace = str(meta.get("namespace") or "default")
    service = pod_service(pod, service_labels)
    node = spec.get("nodeName")
    related = [
        entity_key(kind, name)
        for kind, name in (("service", service), ("node", node), ("namespace", namespace))
        if name
    ]
    statuses = status.get("containerStatuses") or []
    return PodRef(
        namespace=namespace,
        name=str(meta.get("name", "")),
        node=node,
        service=service,
        phase=status.get("phase"),
        containers=[str(c.get("name")) for c in spec.get("containers") or [] if c.get("name")],
        restarts=sum(int(s.get("restartCount") or 0) for s in statuses),
        related=related,
    )


def _state_event(
    ref: PodRef,
    when: datetime,
    severity: Severity,
    reason: str,
    message: str,
    **attributes: Any,
) -> Event:
    attrs = {"namespace": ref.namespace, "pod": ref.name, "reason": reason}
    if ref.node:
        attrs["node"] = ref.node
    if ref.phase:
        attrs["phase"] = ref.phase
    attrs.update({k: str(v) for k, v in attributes.items() if v not in (None, "")})
    return Event(
        timestamp=when,
        source=SOURCE,
        kind="k8s_state",
        entity=ref.entity,
        related=list(ref.related),
        severity=severity,
        message=message,
        attributes=attrs,
    )


def _container_events(ref: PodRef, cs: Mapping[str, Any], observed: datetime) -> list[Event]:
    out: list[Event] = []
    name = str(cs.get("name", "?"))
    restarts = int(cs.get("restartCount") or 0)
    state = cs.get("state") or {}
    last = (cs.get("lastState") or {}).get("terminated") or {}
    common = {"container": name, "restart_count": restarts, "image": cs.get("image")}
    if last.get("reason") or last.get("exitCode"):
        reason = str(last.get("reason") or "Error")
        exit_code = last.get("exitCode")
        out.append(
            _state_event(
                ref,
                parse_time_or_none(last.get("finishedAt")) or observed,
                "error" if reason == "OOMKilled" else "warning",
                reason,
                f"{reason}: container {name} of pod {ref.name} terminated "
                f"(exit code {exit_code}), restarted {restarts} time(s)",
                exit_code=exit_code,
                started_at=last.get("startedAt"),
                state="last_terminated",
                **common,
            )
        )
    waiting = state.get("waiting") or {}
    if waiting.get("reason") in BAD_WAITING_REASONS:
        reason = str(waiting["reason"])
        detail = f" ({waiting['message']})" if waiting.get("message") else ""
        out.append(
            _state_event(
                ref,
                observed,
                "error",
                reason,
                f"{reason}: container {name} of pod {ref.name}{detail}",
                state="waiting",
                last_termination_reason=last.get("reason"),
                **common,
            )
        )
    terminated = state.get("terminated") or {}
    if terminated and (terminated.get("exitCode") or terminated.get("reason") == "OOMKilled"):
        reason = str(terminated.get("reason") or "Error")
        out.append(
            _state_event(
                ref,
                parse_time_or_none(terminated.get("finishedAt")) or observed,
                "error",
                reason,
                f"{reason}: container {name} of pod {ref.name} exited with code "
                f"{terminated.get('exitCode')}",
                exit_code=terminated.get("exitCode"),
                state="terminated",
                **common,
            )
        )
    if state.get("running") is not None and cs.get("ready") is False and ref.phase == "Running":
        out.append(
            _state_event(
                ref,
                observed,
                "warning",
                "NotReady",
                f"NotReady: container {name} of pod {ref.name} is running but not ready",
                state="running",
                **common,
            )
        )
    return out


def pod_state_events(
    pod: Mapping[str, Any],
    *,
    service_labels: Iterable[str] = DEFAULT_SERVICE_LABELS,
    observed_at: datetime | None = None,
    include_healthy: bool = False,
) -> list[Event]:
    """``k8s_state`` events for what is wrong with one pod (from its JSON).

    Args:
        pod: a Pod object as the API returns it (``metadata``, ``spec``, ``status``).
        service_labels: labels naming the pod's service, first match wins.
        observed_at: when the status was read; the time of states that carry none
            (a waiting container). Default: now.
        include_healthy: also emit one ``info`` event for a pod with nothing wrong.

    Returns:
        Events for bad waiting states (``CrashLoopBackOff``, ``ImagePullBackOff``...), the
        last termination of restarted containers (``OOMKilled``, ``Error``; at
        ``finishedAt``), failed containers, a ``Failed`` pod (``Evicted``...), an
        unschedulable ``Pending`` pod, an ``Unknown`` pod and running-but-not-ready
        containers.

    Example:
        ```python
        from tasks.telemetry.kubernetes_mapping import pod_state_events

        pod = {
            "metadata": {"name": "checkout-7d9f8b6c5d-x2x4z", "namespace": "shop"},
            "spec": {"nodeName": "node-1", "containers": [{"name": "app"}]},
            "status": {
                "phase": "Running",
                "containerStatuses": [
                    {
                        "name": "app",
                        "restartCount": 4,
                        "ready": False,
                        "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                    }
                ],
            },
        }
        event = pod_state_events(pod)[0]
        assert (event.entity, event.attributes["reason"]) == (
            "pod:checkout-7d9f8b6c5d-x2x4z",
            "CrashLoopBackOff",
        )
        ```
    """
    observed = as_utc(observed_at or datetime.now(UTC))
    ref = pod_ref(pod, service_labels)
    status = pod.get("status") or {}
    conditions = {c.get("type"): c for c in status.get("conditions") or []}
    events: list[Event] = []
    statuses = [*(status.get("initContainerStatuses") or [])]
    statuses += status.get("containerStatuses") or []
    for cs in statuses:
        events.extend(_container_events(ref, cs, observed))
    phase = ref.phase
    if phase == "Failed":
        reason = str(status.get("reason") or "Failed")
        detail = f": {status['message']}" if status.get("message") else ""
        events.append(
            _state_event(ref, observed, "error", reason, f"{reason}: pod {ref.name} failed{detail}")
        )
    elif phase == "Unknown":
        events.append(
            _state_event(
                ref, observed, "warning", "PodUnknown", f"PodUnknown: pod {ref.name} state unknown"
            )
        )
    elif phase == "Pending":
        scheduled = conditions.get("PodScheduled") or {}
        if scheduled.get("status") == "False":
            reason = str(scheduled.get("reason") or "Unschedulable")
            detail = f": {scheduled['message']}" if scheduled.get("message") else ""
            events.append(
                _state_event(
                    ref,
                    parse_time_or_none(scheduled.get("lastTransitionTime")) or observed,
                    "warning",
                    reason,
                    f"{reason}: pod {ref.name} cannot be scheduled{detail}",
                )
            )
    if not events and include_healthy:
        events.append(
            _state_event(
                ref,
                observed,
                "info",
                phase or "Unknown",
                f"pod {ref.name} is {phase}, {ref.restarts} restart(s)",
                restart_count=ref.restarts,
            )
        )
    return events


def pod_related_index(pods: Iterable[PodRef]) -> dict[tuple[str, str], PodRef]:
    """``(namespace, pod name) -> PodRef``, to resolve the pods named by events and metrics."""
    return {(p.namespace, p.name): p for p in pods}


def _object_entity(
    kind: str,
    name: str,
    namespace: str | None,
    pods: Mapping[tuple[str, str], PodRef],
) -> tuple[str, list[str]]:
    if kind == "Pod":
        ref = pods.get((namespace or "", name))
        if ref is not None:
            return ref.entity, list(ref.related)
        related = [entity_key("service", service_from_pod_name(name))]
        return entity_key("pod", name), related + ([f"namespace:{namespace}"] if namespace else [])
    entity_type = OBJECT_ENTITY_TYPES.get(kind, "unknown")
    if entity_type == "service":
        name = owner_workload(kind, name)
    elif entity_type == "unknown":
        name = f"{kind}/{name}" if kind else name
    related = [entity_key("namespace", namespace)] if namespace and kind != "Namespace" else []
    return entity_key(entity_type, name), related


def k8s_event_to_event(
    ev: Mapping[str, Any], pods: Mapping[tuple[str, str], PodRef] | None = None
) -> Event:
    """One Kubernetes ``Event`` (core/v1 JSON) as a ``k8s_event``.

    Args:
        ev: the Event object (``involvedObject``, ``reason``, ``message``, ``type``,
            ``count``, ``firstTimestamp``/``lastTimestamp``/``eventTime``).
        pods: ``pod_related_index`` of known pods, to relate a pod's events to its
            service and node; unknown pods get a service guessed from their name.

    Returns:
        An event at the last time it was seen; severity ``warning`` for Warning events,
        ``info`` for Normal ones; the involved object as entity (Deployments,
        ReplicaSets, StatefulSets... as ``service:<workload>``).
    """
    obj = ev.get("involvedObject") or ev.get("regarding") or {}
    kind, name = str(obj.get("kind") or ""), str(obj.get("name") or "")
    # cluster-scoped objects (nodes) have no namespace; their events live in "default"
    namespace = obj.get("namespace") or None
    entity, related = _object_entity(kind, name or "unknown", namespace, pods or {})
    series = ev.get("series") or {}
    when = (
        parse_time_or_none(ev.get("lastTimestamp"))
        or parse_time_or_none(series.get("lastObservedTime"))
        or parse_time_or_none(ev.get("eventTime"))
        or parse_time_or_none(ev.get("firstTimestamp"))
        or parse_time_or_none(_meta(ev).get("creationTimestamp"))
        or datetime.now(UTC)
    )
    event_type = str(ev.get("type") or "Normal")
    reason = str(ev.get("reason") or "")
    source = ev.get("source") or {}
    count = ev.get("count") or series.get("count") or 1
    attributes = {
        "reason": reason,
        "type": event_type,
        "count": str(count),
        "object_kind": kind,
        "object_name": name,
        "namespace": namespace or _meta(ev).get("namespace"),
        "field_path": obj.get("fieldPath"),
        "component": source.get("component") or ev.get("reportingComponent"),
        "host": source.get("host"),
        "first_timestamp": ev.get("firstTimestamp"),
    }
    message = str(ev.get("message") or ev.get("note") or "").strip()
    return Event(
        timestamp=when,
        source=SOURCE,
        kind="k8s_event",
        entity=entity,
        related=related,
        severity="warning" if event_type == "Warning" else "info",
        message=f"{reason}: {message}" if reason else message,
        attributes={k: str(v) for k, v in attributes.items() if v not in (None, "")},
    )


_LOG_PREFIX = re.compile(r"^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:\d{2})) ")


def log_text_to_events(
    text: str,
    pod: PodRef,
    container: str,
    *,
    since: datetime | None = None,
    previous: bool = False,
) -> list[Event]:
    """Container log text read with ``timestamps=True`` as ``log`` events.

    Args:
        text: the log body; each line ``"<RFC 3339 nano> <line>"``.
        pod: the pod it came from (entity and related).
        container: the container name.
        since: drop lines older than this (the API's ``sinceSeconds`` is whole seconds).
        previous: the logs of the previous (crashed) container instance.

    Returns:
        One event per non-empty line, severity from the line (``log_severity``). A line
        without a timestamp (never sent by the kubelet, but tolerated) takes the
        previous line's time.
    """
    events: list[Event] = []
    last: datetime | None = None
    floor = as_utc(since) if since is not None else None
    for raw in text.splitlines():
        match = _LOG_PREFIX.match(raw)
        stamp = parse_time_or_none(match.group(1)) if match else None
        line = raw[match.end() :] if match else raw
        stamp = stamp or last
        if stamp is None or not line.strip():
            continue
        last = stamp
        if floor is not None and stamp < floor:
            continue
        attrs = {"namespace": pod.namespace, "pod": pod.name, "container": container}
        if pod.node:
            attrs["node"] = pod.node
        if previous:
            attrs["previous"] = "true"
        events.append(
            Event(
                timestamp=stamp,
                source=SOURCE,
                kind="log",
                entity=pod.entity,
                related=list(pod.related),
                severity=log_severity(line),
                message=line,
                attributes=attrs,
            )
        )
    return events


def node_ref(node: Mapping[str, Any]) -> NodeRef:
    """A ``NodeRef`` from a Node's JSON."""
    meta, status = _meta(node), node.get("status") or {}
    keep = (
        "node.kubernetes.io/instance-type",
        "topology.kubernetes.io/zone",
        "topology.kubernetes.io/region",
        "kubernetes.io/os",
        "kubernetes.io/arch",
    )
    labels = meta.get("labels") or {}
    return NodeRef(
        name=str(meta.get("name", "")),
        capacity={k: str(v) for k, v in (status.get("capacity") or {}).items()},
        allocatable={k: str(v) for k, v in (status.get("allocatable") or {}).items()},
        conditions={
            str(c.get("type")): str(c.get("status")) for c in status.get("conditions") or []
        },
        unschedulable=bool((node.get("spec") or {}).get("unschedulable")),
        labels={k: str(labels[k]) for k in keep if k in labels},
    )


def node_state_events(
    node: Mapping[str, Any], *, observed_at: datetime | None = None, include_healthy: bool = False
) -> list[Event]:
    """``k8s_state`` events for a node's bad conditions (from its JSON).

    ``Ready`` False -> ``NotReady`` (error), Unknown -> ``NodeStatusUnknown`` (error,
    the kubelet stopped reporting); ``MemoryPressure``/``DiskPressure``/``PIDPressure``
    True -> warning; ``NetworkUnavailable`` True -> error; cordoned -> warning. Each at its
    condition's ``lastTransitionTime``; capacity and allocatable in the attributes.
    """
    observed = as_utc(observed_at or datetime.now(UTC))
    ref = node_ref(node)
    shown = ("cpu", "memory", "pods")
    base = {f"capacity_{k}": v for k, v in ref.capacity.items() if k in shown}
    base.update({f"allocatable_{k}": v for k, v in ref.allocatable.items() if k in shown})
    base.update({k.rsplit("/", 1)[-1]: v for k, v in ref.labels.items()})
    entity = entity_key("node", ref.name)

    def event(when: datetime | None, severity: Severity, reason: str, message: str, cond=None):
        attrs = {"node": ref.name, "reason": reason, **base}
        if cond:
            attrs.update(
                {"condition": str(cond.get("type")), "condition_status": str(cond.get("status"))}
            )
            if cond.get("reason"):
                attrs["condition_reason"] = str(cond["reason"])
        return Event(
            timestamp=when or observed,
            source=SOURCE,
            kind="k8s_state",
            entity=entity,
            severity=severity,
            message=message,
            attributes=attrs,
        )

    events: list[Event] = []
    for cond in (node.get("status") or {}).get("conditions") or []:
        ctype, cstatus = cond.get("type"), cond.get("status")
        when = parse_time_or_none(cond.get("lastTransitionTime"))
        detail = f": {cond['message']}" if cond.get("message") else ""
        if ctype == "Ready" and cstatus != "True":
            reason = "NotReady" if cstatus == "False" else "NodeStatusUnknown"
            events.append(event(when, "error", reason, f"{reason}: node {ref.name}{detail}", cond))
        elif ctype in NODE_CONDITIONS and cstatus == NODE_CONDITIONS[ctype][0]:
            _, reason, severity = NODE_CONDITIONS[ctype]
            events.append(event(when, severity, reason, f"{reason}: node {ref.name}{detail}", cond))
    if ref.unschedulable:
        events.append(event(None, "warning", "Cordoned", f"Cordoned: node {ref.name}"))
    if not events and include_healthy:
        events.append(event(None, "info", "Ready", f"node {ref.name} is Ready"))
    return events
