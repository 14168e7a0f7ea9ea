"""Kubernetes telemetry: pod states, events, container logs, node conditions, usage metrics.

Every call goes through the official ``kubernetes`` (sync) client, built from a
prefect-kubernetes ``KubernetesCredentials`` block the way the block itself resolves a
cluster: its ``cluster_config`` (a kubeconfig dict and a context name) when set, else
the in-cluster service account, else the default kubeconfig file. (The block's own
``get_client`` yields an asyncio client; these tasks are synchronous.) Responses are
read as the API's JSON (``_preload_content=False``) and mapped by plain functions, so
the mapping (``tasks.telemetry.kubernetes_mapping``, ``tasks.telemetry.kubernetes_metrics``)
is testable on documented shapes and large pod lists skip the SDK's model deserialization.

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

Example:
    ```python
    from datetime import UTC, datetime, timedelta

    from prefect import flow
    from prefect_kubernetes.credentials import KubernetesCredentials

    from tasks.telemetry.kubernetes import fetch_k8s_events, fetch_k8s_metrics, fetch_k8s_pods


    @flow
    def shop_telemetry() -> int:
        kubernetes_credentials = KubernetesCredentials.load("BLOCK_NAME")
        since = datetime.now(UTC) - timedelta(hours=1)
        states = fetch_k8s_pods(kubernetes_credentials, namespace="shop")
        events = fetch_k8s_events(kubernetes_credentials, since, namespace="shop", pods=states.pods)
        usage = fetch_k8s_metrics(kubernetes_credentials, namespace="shop", pods=states.pods)
        return len(states.events) + len(events) + len(usage.series)
    ```
"""

from __future__ import annotations

import math
import re
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
from tasks.common.times import parse_time
from tasks.telemetry.entities import DEFAULT_SERVICE_LABELS
from tasks.telemetry.kubernetes_mapping import (
    NodeRef,
    PodRef,
    k8s_event_to_event,
    log_text_to_events,
    node_ref,
    node_state_events,
    pod_ref,
    pod_related_index,
    pod_state_events,
)
from tasks.telemetry.kubernetes_metrics import node_metrics_to_series, pod_metrics_to_series
from tasks.telemetry.model import Event, MetricSeries

if TYPE_CHECKING:
    from prefect_kubernetes.credentials import KubernetesCredentials

METRICS_GROUP, METRICS_VERSION = "metrics.k8s.io", "v1beta1"


# --------------------------------------------------------------- models


class PodStates(BaseModel):
    """``fetch_k8s_pods``' result: the pods and the state events found on them."""

    pods: list[PodRef] = Field(default_factory=list)
    events: list[Event] = Field(default_factory=list)


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
    kubernetes_credentials: KubernetesCredentials | None,
    *,
    namespace: str | None = None,
    label_selector: str | None = None,
    field_selector: str | None = None,
    service_labels: list[str] | tuple[str, ...] = DEFAULT_SERVICE_LABELS,
    include_healthy: bool = False,
) -> PodStates:
    """Pods (filtered by namespace and selectors) and the ``k8s_state`` events of their status.

    Args:
        kubernetes_credentials: prefect-kubernetes ``KubernetesCredentials`` (None:
            in-cluster or the default kubeconfig).
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
        from prefect import flow
        from prefect_kubernetes.credentials import KubernetesCredentials

        from tasks.telemetry.kubernetes import fetch_k8s_pods


        @flow
        def web_pod_problems() -> list[str]:
            kubernetes_credentials = KubernetesCredentials.load("BLOCK_NAME")
            states = fetch_k8s_pods(
                kubernetes_credentials, namespace="shop", label_selector="tier=web"
            )
            return [event.message for event in states.events]
        ```
    """
    namespace = _check_namespace(namespace)
    label_selector = _check_selector("label_selector", label_selector)
    field_selector = _check_selector("field_selector", field_selector)
    labels = tuple(service_labels)
    from kubernetes.client import CoreV1Api

    with kubernetes_api_client(kubernetes_credentials) as api:
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
    kubernetes_credentials: KubernetesCredentials | None,
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
        kubernetes_credentials: prefect-kubernetes ``KubernetesCredentials``.
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

    with kubernetes_api_client(kubernetes_credentials) as api:
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
    kubernetes_credentials: KubernetesCredentials | None,
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
        kubernetes_credentials: prefect-kubernetes ``KubernetesCredentials``.
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
        from prefect import flow
        from prefect_kubernetes.credentials import KubernetesCredentials

        from tasks.telemetry.kubernetes import fetch_k8s_logs, fetch_k8s_pods


        @flow
        def crash_logs() -> list[str]:
            kubernetes_credentials = KubernetesCredentials.load("BLOCK_NAME")
            states = fetch_k8s_pods(kubernetes_credentials, namespace="shop")
            crashed = [pod for pod in states.pods if pod.restarts]
            logs = fetch_k8s_logs(kubernetes_credentials, crashed, previous=True, tail_lines=200)
            return [event.message for event in logs.events]
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
    with kubernetes_api_client(kubernetes_credentials) as api:
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
    kubernetes_credentials: KubernetesCredentials | None,
    *,
    label_selector: str | None = None,
    include_healthy: bool = False,
) -> NodeStates:
    """Nodes, their capacity/allocatable, and ``k8s_state`` events for bad conditions.

    Args:
        kubernetes_credentials: prefect-kubernetes ``KubernetesCredentials``.
        label_selector: e.g. ``"node.kubernetes.io/instance-type=m5.large"``.
        include_healthy: also emit an ``info`` event per healthy node.

    Returns:
        ``NodeStates`` (``node_state_events`` for each node).
    """
    label_selector = _check_selector("label_selector", label_selector)
    kwargs = {"label_selector": label_selector} if label_selector else {}
    from kubernetes.client import CoreV1Api

    with kubernetes_api_client(kubernetes_credentials) as api:
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
    kubernetes_credentials: KubernetesCredentials | None,
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
        kubernetes_credentials: prefect-kubernetes ``KubernetesCredentials``.
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
    with kubernetes_api_client(kubernetes_credentials) as api:
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
