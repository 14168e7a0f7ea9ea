"""Kubernetes telemetry: pod states, events, container logs, node conditions, usage metrics.

Every call goes through the official ``kubernetes`` (sync) client, built from a
prefect-kubernetes ``KubernetesCredentials`` block the way the block itself resolves a
cluster: its ``cluster_config`` (a kubeconfig dict and a context name) when set, else
the in-cluster service account, else the default kubeconfig file. (The block's own
``get_client`` yields an asyncio client; these tasks are synchronous.) Responses are
read as the API's JSON (``_preload_content=False``) and mapped by plain functions, so
the mapping is testable on documented shapes and large pod lists skip the SDK's model
deserialization.

What becomes what:

- pod status -> ``k8s_state`` events: ``CrashLoopBackOff``, ``ImagePullBackOff``,
  ``OOMKilled`` (from the last termination, at its ``finishedAt``), ``Failed``/``Evicted``,
  ``Unschedulable``, running but not ready. Entity ``pod:<name>``; related: its service
  (a configurable label, default ``app.kubernetes.io/name`` then ``app``; else the owning
  Deployment/StatefulSet/DaemonSet/Job), ``node:<node>``, ``namespace:<ns>``.
- Events -> ``k8s_event`` (Warning: severity warning; Normal: info).
- container logs -> ``log`` events with the kubelet's timestamps and the severity the
  line names (``tasks.telemetry.files.log_severity``).
- node conditions -> ``k8s_state`` events (``NotReady``, ``MemoryPressure``, ...).
- ``metrics.k8s.io/v1beta1`` usage -> ``MetricSeries`` (``cpu_millicores``,
  ``memory_bytes``; for nodes also ``cpu_percent``/``memory_percent`` of allocatable).
  No metrics-server (HTTP 404) means no metrics, not an error.

API failures are raised as ``KubernetesUnavailable`` (a ``ConnectionError``, so the task
retries it: 429, 5xx, connection failures, timeouts) or ``KubernetesApiError`` (not
retried: 401, 403, 400, 404...), with the API's own one-line message.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field

from tasks.clouds.kubernetes import (
    KubernetesApiError,
    json_call,
    kubernetes_api_client,
    list_all,
)
from tasks.common.retry import cloud_api_task, task_logger
from tasks.common.times import as_utc, parse_time, parse_time_or_none
from tasks.telemetry.files import log_severity
from tasks.telemetry.model import Event, MetricSeries, Severity, entity_key

if TYPE_CHECKING:
    from prefect_kubernetes.credentials import KubernetesCredentials

SOURCE = "kubernetes"
DEFAULT_SERVICE_LABELS: tuple[str, ...] = ("app.kubernetes.io/name", "app")
METRICS_GROUP, METRICS_VERSION = "metrics.k8s.io", "v1beta1"

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
# Kubernetes' random-suffix alphabet (pod-template-hash, generateName)
_K8S_RAND = "[bcdfghjklmnpqrstvwxz2456789]"
_DEPLOYMENT_POD = re.compile(rf"^(.+)-{_K8S_RAND}{{6,10}}-{_K8S_RAND}{{5}}$")
_STATEFUL_POD = re.compile(r"^(.+)-\d+$")
_GENERATED_POD = re.compile(rf"^(.+)-{_K8S_RAND}{{5}}$")
_RS_HASH = re.compile(rf"^(.+)-{_K8S_RAND}{{6,10}}$")
_CRONJOB_JOB = re.compile(r"^(.+)-\d{8,}$")


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


class PodStates(BaseModel):
    """``fetch_k8s_pods``' result: the pods and the state events found on them."""

    pods: list[PodRef] = Field(default_factory=list)
    events: list[Event] = Field(default_factory=list)


class NodeRef(BaseModel):
    """A node's identity, capacity and allocatable resources (Kubernetes quantities)."""

    name: str
    capacity: dict[str, str] = Field(default_factory=dict)
    allocatable: dict[str, str] = Field(default_factory=dict)
    conditions: dict[str, str] = Field(default_factory=dict, description="type -> status")
    unschedulable: bool = False
    labels: dict[str, str] = Field(default_factory=dict)


class NodeStates(BaseModel):
    """``fetch_k8s_nodes``' result."""

    nodes: list[NodeRef] = Field(default_factory=list)
    events: list[Event] = Field(default_factory=list)


class PodLogs(BaseModel):
    """``fetch_k8s_logs``' result: log events, and the containers whose logs were not read."""

    events: list[Event] = Field(default_factory=list)
    skipped: dict[str, str] = Field(
        default_factory=dict, description='"<namespace>/<pod>/<container>" -> why'
    )


class UsageMetrics(BaseModel):
    """``fetch_k8s_metrics``' result; ``available`` is False without a metrics-server."""

    available: bool = True
    series: list[MetricSeries] = Field(default_factory=list)


# ----------------------------------------------------------- pure mapping


def _meta(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    return obj.get("metadata") or {}


def service_from_pod_name(name: str) -> str:
    """Best guess of a pod's workload from its generated name.

    ``checkout-7d9f8b6c5d-x2x4z`` (Deployment) -> ``checkout``; ``postgres-0``
    (StatefulSet) -> ``postgres``; ``fluentd-k8s4q`` (DaemonSet/Job) -> ``fluentd``;
    anything else is returned unchanged.
    """
    for pattern in (_DEPLOYMENT_POD, _STATEFUL_POD, _GENERATED_POD):
        match = pattern.match(name)
        if match:
            return match.group(1)
    return name


def owner_workload(kind: str, name: str, pod_template_hash: str | None = None) -> str:
    """The workload a controller object stands for: a ReplicaSet's Deployment, a Job's
    CronJob; other kinds are their own workload."""
    if kind == "ReplicaSet":
        if pod_template_hash and name.endswith(f"-{pod_template_hash}"):
            return name[: -len(pod_template_hash) - 1]
        match = _RS_HASH.match(name)
        return match.group(1) if match else name
    if kind == "Job":
        match = _CRONJOB_JOB.match(name)
        return match.group(1) if match else name
    return name


def pod_service(
    pod: Mapping[str, Any], service_labels: Iterable[str] = DEFAULT_SERVICE_LABELS
) -> str | None:
    """The service a pod belongs to: the first of ``service_labels`` it has, else its
    controlling owner's workload (a ReplicaSet's Deployment, ...); None for a bare pod."""
    meta = _meta(pod)
    labels = meta.get("labels") or {}
    for label in service_labels:
        if labels.get(label):
            return str(labels[label])
    owners = meta.get("ownerReferences") or []
    owner = next((o for o in owners if o.get("controller")), owners[0] if owners else None)
    if owner and owner.get("name"):
        return owner_workload(
            str(owner.get("kind", "")), str(owner["name"]), labels.get("pod-template-hash")
        )
    return None


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
        pod_state_events(pod_json)[0].attributes["reason"]  # 'CrashLoopBackOff'
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


def quantity(value: Any) -> float:
    """A Kubernetes quantity (``"250m"``, ``"12345678n"``, ``"512Mi"``) as a float."""
    from kubernetes.utils import parse_quantity

    return float(parse_quantity(str(value)))


def _usage_series(
    entity: str,
    related: list[str],
    when: datetime,
    cpu_cores: float,
    memory_bytes: float,
    attributes: dict[str, str],
) -> list[MetricSeries]:
    return [
        MetricSeries(
            source=SOURCE,
            entity=entity,
            related=related,
            metric=metric,
            unit=unit,
            timestamps=[when],
            values=[value],
            attributes=attributes,
        )
        for metric, unit, value in (
            ("cpu_millicores", "millicores", round(cpu_cores * 1000, 3)),
            ("memory_bytes", "bytes", memory_bytes),
        )
    ]


def pod_metrics_to_series(
    items: Iterable[Mapping[str, Any]],
    pods: Mapping[tuple[str, str], PodRef] | None = None,
    service_labels: Iterable[str] = DEFAULT_SERVICE_LABELS,
) -> list[MetricSeries]:
    """``PodMetrics`` items (``metrics.k8s.io/v1beta1``) as per-pod usage series.

    Each pod gets ``cpu_millicores`` and ``memory_bytes`` (its containers summed), one
    sample at the item's ``timestamp``; related entities from ``pods`` when known, else
    from the item's labels or its name.
    """
    out: list[MetricSeries] = []
    for item in items:
        meta = _meta(item)
        namespace, name = str(meta.get("namespace") or "default"), str(meta.get("name", ""))
        ref = (pods or {}).get((namespace, name))
        if ref is None:
            service = pod_service(item, service_labels) or service_from_pod_name(name)
            ref = PodRef(
                namespace=namespace,
                name=name,
                service=service,
                related=[f"service:{service}", f"namespace:{namespace}"],
            )
        containers = item.get("containers") or []
        cpu = sum(quantity((c.get("usage") or {}).get("cpu", 0)) for c in containers)
        memory = sum(quantity((c.get("usage") or {}).get("memory", 0)) for c in containers)
        attrs = {"namespace": namespace, "pod": name, "containers": str(len(containers))}
        if item.get("window"):
            attrs["window"] = str(item["window"])
        when = parse_time_or_none(item.get("timestamp")) or datetime.now(UTC)
        out.extend(_usage_series(ref.entity, list(ref.related), when, cpu, memory, attrs))
    return out


def node_metrics_to_series(
    items: Iterable[Mapping[str, Any]], nodes: Iterable[NodeRef] = ()
) -> list[MetricSeries]:
    """``NodeMetrics`` items as node usage series; with the node's allocatable
    resources known (``nodes``), also ``cpu_percent`` and ``memory_percent``."""
    known = {n.name: n for n in nodes}
    out: list[MetricSeries] = []
    for item in items:
        name = str(_meta(item).get("name", ""))
        usage = item.get("usage") or {}
        cpu, memory = quantity(usage.get("cpu", 0)), quantity(usage.get("memory", 0))
        when = parse_time_or_none(item.get("timestamp")) or datetime.now(UTC)
        attrs = {"node": name}
        if item.get("window"):
            attrs["window"] = str(item["window"])
        entity = entity_key("node", name)
        out.extend(_usage_series(entity, [], when, cpu, memory, attrs))
        node = known.get(name)
        percents = (("cpu_percent", cpu, "cpu"), ("memory_percent", memory, "memory"))
        for metric, used, key in percents:
            total = quantity(node.allocatable[key]) if node and key in node.allocatable else 0.0
            if total > 0 and math.isfinite(used):
                out.append(
                    MetricSeries(
                        source=SOURCE,
                        entity=entity,
                        metric=metric,
                        unit="percent",
                        timestamps=[when],
                        values=[round(100.0 * used / total, 3)],
                        attributes={**attrs, "of": f"allocatable {node.allocatable[key]}"},
                    )
                )
    return out


def _check_selector(name: str, value: str | None) -> str | None:
    if value is None:
        return None
    value = value.strip()
    if not value or any(c in value for c in "\r\n\t"):
        raise ValueError(f"{name}: must be a non-empty single-line selector, got {value!r}")
    return value


def _check_namespace(namespace: str | None) -> str | None:
    if namespace is not None and not re.fullmatch(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?", namespace):
        raise ValueError(f"namespace: must be a DNS label such as 'shop', got {namespace!r}")
    return namespace


def _list_pods(core: Any, namespace: str | None, label_selector: str | None, field_selector):
    kwargs = {"label_selector": label_selector, "field_selector": field_selector}
    kwargs = {k: v for k, v in kwargs.items() if v}
    if namespace:
        return list_all(core.list_namespaced_pod, namespace, **kwargs)
    return list_all(core.list_pod_for_all_namespaces, **kwargs)


# ---------------------------------------------------------------- tasks


@cloud_api_task("k8s-pods")
def fetch_k8s_pods(
    credentials: KubernetesCredentials | None,
    *,
    namespace: str | None = None,
    label_selector: str | None = None,
    field_selector: str | None = None,
    service_labels: list[str] | tuple[str, ...] = DEFAULT_SERVICE_LABELS,
    include_healthy: bool = False,
) -> PodStates:
    """Pods (filtered by namespace and selectors) and the ``k8s_state`` events of their status.

    Args:
        credentials: prefect-kubernetes ``KubernetesCredentials`` (None: in-cluster or
            the default kubeconfig).
        namespace: one namespace; None for all namespaces.
        label_selector: e.g. ``"app.kubernetes.io/part-of=shop,tier!=cache"``.
        field_selector: e.g. ``"spec.nodeName=ip-10-0-1-5"`` or ``"status.phase!=Succeeded"``.
        service_labels: pod labels naming the service, first match wins.
        include_healthy: also emit an ``info`` event per healthy pod.

    Returns:
        ``PodStates``: every pod as a ``PodRef`` (for ``fetch_k8s_logs`` and event
        resolution) and the state events (``pod_state_events``).

    Example:
        ```python
        states = fetch_k8s_pods(creds, namespace="shop", label_selector="tier=web")
        logs = fetch_k8s_logs(creds, states.pods, since=start)
        ```
    """
    namespace = _check_namespace(namespace)
    label_selector = _check_selector("label_selector", label_selector)
    field_selector = _check_selector("field_selector", field_selector)
    labels = tuple(service_labels)
    from kubernetes.client import CoreV1Api

    with kubernetes_api_client(credentials) as api:
        observed = datetime.now(UTC)
        pods = _list_pods(CoreV1Api(api), namespace, label_selector, field_selector)
    out = PodStates()
    for pod in pods:
        out.pods.append(pod_ref(pod, labels))
        out.events.extend(
            pod_state_events(
                pod, service_labels=labels, observed_at=observed, include_healthy=include_healthy
            )
        )
    task_logger(__name__).info(
        "Kubernetes pods%s: %d pod(s), %d state event(s)",
        f" in {namespace}" if namespace else "",
        len(out.pods),
        len(out.events),
    )
    return out


@cloud_api_task("k8s-events")
def fetch_k8s_events(
    credentials: KubernetesCredentials | None,
    since: datetime,
    *,
    namespace: str | None = None,
    field_selector: str | None = None,
    warnings_only: bool = False,
    pods: list[PodRef] | None = None,
) -> list[Event]:
    """Kubernetes Events last seen at or after ``since``, as ``k8s_event`` events.

    The Events API cannot filter by time, so the list is filtered here on each
    event's last-seen time.

    Args:
        credentials: prefect-kubernetes ``KubernetesCredentials``.
        since: the earliest last-seen time kept (naive means UTC).
        namespace: one namespace; None for all.
        field_selector: e.g. ``"involvedObject.kind=Pod"``.
        warnings_only: only ``type=Warning`` events (sent as a field selector).
        pods: ``PodRef`` objects from ``fetch_k8s_pods``, to relate pod events to their
            service and node.

    Returns:
        Events, oldest first.
    """
    namespace = _check_namespace(namespace)
    field_selector = _check_selector("field_selector", field_selector)
    floor = parse_time(since, "since")
    if warnings_only:
        field_selector = ",".join(filter(None, [field_selector, "type=Warning"]))
    kwargs = {"field_selector": field_selector} if field_selector else {}
    from kubernetes.client import CoreV1Api

    with kubernetes_api_client(credentials) as api:
        core = CoreV1Api(api)
        if namespace:
            items = list_all(core.list_namespaced_event, namespace, **kwargs)
        else:
            items = list_all(core.list_event_for_all_namespaces, **kwargs)
    index = pod_related_index(pods or [])
    events = [k8s_event_to_event(item, index) for item in items]
    kept = sorted((e for e in events if e.timestamp >= floor), key=lambda e: e.timestamp)
    task_logger(__name__).info(
        "Kubernetes events: %d of %d since %s", len(kept), len(events), floor.isoformat()
    )
    return kept


@cloud_api_task("k8s-logs")
def fetch_k8s_logs(
    credentials: KubernetesCredentials | None,
    pods: list[PodRef],
    *,
    since: datetime | None = None,
    tail_lines: int | None = None,
    previous: bool = False,
    containers: list[str] | None = None,
    limit_bytes: int | None = 5_000_000,
) -> PodLogs:
    """Container logs of ``pods`` as ``log`` events (``timestamps=True``).

    A container whose logs cannot be read (still waiting, no previous instance, pod
    gone: HTTP 400/404) is listed in ``skipped`` with the API's reason; other failures
    (auth, throttling, 5xx) fail the task (and are retried when transient).

    Args:
        credentials: prefect-kubernetes ``KubernetesCredentials``.
        pods: from ``fetch_k8s_pods``.
        since: only lines from this time on (sent as ``sinceSeconds``, trimmed here to
            the exact instant).
        tail_lines: only the last N lines of each container (``tailLines``).
        previous: the previous (crashed) container instance's logs.
        containers: only these container names (default: every container).
        limit_bytes: at most this many bytes per container (``limitBytes``).

    Returns:
        ``PodLogs``: events per line, severity from the line; skipped containers.

    Example:
        ```python
        crashed = [p for p in states.pods if p.restarts]
        fetch_k8s_logs(creds, crashed, previous=True, tail_lines=200)
        ```
    """
    if tail_lines is not None and (isinstance(tail_lines, bool) or tail_lines < 1):
        raise ValueError(f"tail_lines: must be a positive number of lines, got {tail_lines!r}")
    if limit_bytes is not None and limit_bytes < 1:
        raise ValueError(f"limit_bytes: must be positive, got {limit_bytes!r}")
    floor = parse_time(since, "since") if since is not None else None
    params: dict[str, Any] = {"timestamps": True}
    if floor is not None:
        age = (datetime.now(UTC) - floor).total_seconds()
        params["since_seconds"] = max(1, math.ceil(age))
    if tail_lines is not None:
        params["tail_lines"] = tail_lines
    if limit_bytes is not None:
        params["limit_bytes"] = limit_bytes
    if previous:
        params["previous"] = True
    from kubernetes.client import CoreV1Api

    out = PodLogs()
    with kubernetes_api_client(credentials) as api:
        core = CoreV1Api(api)
        for pod in pods:
            for container in pod.containers:
                if containers and container not in containers:
                    continue
                key = f"{pod.namespace}/{pod.name}/{container}"
                try:
                    body = json_call(
                        core.read_namespaced_pod_log,
                        pod.name,
                        pod.namespace,
                        container=container,
                        **params,
                    )
                except KubernetesApiError as exc:
                    if exc.status not in (400, 404):
                        raise
                    out.skipped[key] = str(exc)
                    continue
                text = body.decode("utf-8", "replace") if isinstance(body, bytes) else str(body)
                out.events.extend(
                    log_text_to_events(text, pod, container, since=floor, previous=previous)
                )
    task_logger(__name__).info(
        "Kubernetes logs: %d line(s) from %d pod(s), %d container(s) skipped",
        len(out.events),
        len(pods),
        len(out.skipped),
    )
    return out


@cloud_api_task("k8s-nodes")
def fetch_k8s_nodes(
    credentials: KubernetesCredentials | None,
    *,
    label_selector: str | None = None,
    include_healthy: bool = False,
) -> NodeStates:
    """Nodes, their capacity/allocatable, and ``k8s_state`` events for bad conditions.

    Args:
        credentials: prefect-kubernetes ``KubernetesCredentials``.
        label_selector: e.g. ``"node.kubernetes.io/instance-type=m5.large"``.
        include_healthy: also emit an ``info`` event per healthy node.

    Returns:
        ``NodeStates`` (``node_state_events`` for each node).
    """
    label_selector = _check_selector("label_selector", label_selector)
    kwargs = {"label_selector": label_selector} if label_selector else {}
    from kubernetes.client import CoreV1Api

    with kubernetes_api_client(credentials) as api:
        observed = datetime.now(UTC)
        items = list_all(CoreV1Api(api).list_node, **kwargs)
    out = NodeStates(nodes=[node_ref(n) for n in items])
    for item in items:
        out.events.extend(
            node_state_events(item, observed_at=observed, include_healthy=include_healthy)
        )
    task_logger(__name__).info(
        "Kubernetes nodes: %d node(s), %d condition event(s)", len(out.nodes), len(out.events)
    )
    return out


@cloud_api_task("k8s-metrics")
def fetch_k8s_metrics(
    credentials: KubernetesCredentials | None,
    *,
    namespace: str | None = None,
    label_selector: str | None = None,
    pods: list[PodRef] | None = None,
    nodes: list[NodeRef] | None = None,
    include_nodes: bool = True,
    service_labels: list[str] | tuple[str, ...] = DEFAULT_SERVICE_LABELS,
) -> UsageMetrics:
    """Current CPU and memory usage from metrics-server (``metrics.k8s.io/v1beta1``).

    Args:
        credentials: prefect-kubernetes ``KubernetesCredentials``.
        namespace: pods of one namespace; None for all.
        label_selector: pods matching it.
        pods: ``PodRef`` objects from ``fetch_k8s_pods`` (related entities).
        nodes: ``NodeRef`` objects from ``fetch_k8s_nodes`` (for percent of allocatable).
        include_nodes: also read node usage.
        service_labels: labels naming a pod's service when ``pods`` does not know it.

    Returns:
        ``UsageMetrics``; ``available=False`` and no series when the cluster serves no
        metrics API (HTTP 404).
    """
    namespace = _check_namespace(namespace)
    label_selector = _check_selector("label_selector", label_selector)
    from kubernetes.client import CustomObjectsApi

    kwargs = {"label_selector": label_selector} if label_selector else {}
    logger = task_logger(__name__)
    with kubernetes_api_client(credentials) as api:
        custom = CustomObjectsApi(api)
        try:
            if namespace:
                pod_items = list_all(
                    custom.list_namespaced_custom_object,
                    METRICS_GROUP,
                    METRICS_VERSION,
                    namespace,
                    "pods",
                    **kwargs,
                )
            else:
                pod_items = list_all(
                    custom.list_cluster_custom_object,
                    METRICS_GROUP,
                    METRICS_VERSION,
                    "pods",
                    **kwargs,
                )
            node_items = (
                list_all(custom.list_cluster_custom_object, METRICS_GROUP, METRICS_VERSION, "nodes")
                if include_nodes
                else []
            )
        except KubernetesApiError as exc:
            if exc.status != 404:
                raise
            logger.info("Kubernetes metrics: no %s API (%s)", METRICS_GROUP, exc)
            return UsageMetrics(available=False)
    series = pod_metrics_to_series(pod_items, pod_related_index(pods or []), tuple(service_labels))
    series += node_metrics_to_series(node_items, nodes or [])
    logger.info(
        "Kubernetes metrics: %d pod(s), %d node(s), %d series",
        len(pod_items),
        len(node_items),
        len(series),
    )
    return UsageMetrics(available=True, series=series)
