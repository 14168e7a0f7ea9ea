"""A local Kubernetes API server speaking the core/v1 and metrics.k8s.io/v1beta1 shapes.

Serves what ``tasks.telemetry.kubernetes`` calls, with bearer-token auth (401 ``Status``
otherwise), chunked lists (``limit`` / ``metadata.continue``), label selectors
(``k=v``, ``k==v``, ``k!=v``, ``k``, ``!k``, ``k in (a,b)``, ``k notin (a,b)``) and field
selectors (``path=v``, ``path!=v`` on dotted paths such as ``spec.nodeName``):

- ``GET /api/v1/pods``, ``/api/v1/namespaces/{ns}/pods``
- ``GET /api/v1/events``, ``/api/v1/namespaces/{ns}/events``
- ``GET /api/v1/namespaces/{ns}/pods/{name}/log`` with ``container``, ``tailLines``,
  ``sinceSeconds``, ``timestamps``, ``previous``, ``limitBytes``
- ``GET /api/v1/nodes``
- ``GET /apis/metrics.k8s.io/v1beta1/{pods,nodes}``, ``.../namespaces/{ns}/pods``: 404
  ``page not found`` (as the API server answers an unknown group) while
  ``metrics_enabled`` is False.

``failing_paths`` makes chosen paths answer an error ``Status`` (e.g. 500) every time;
``echo_authorization`` puts the request's ``Authorization`` header into the message of
every error (401 and those), to prove callers never repeat a token an API quoted.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.servers import LocalServer, Seen, json_response

_NS_LIST = re.compile(r"^/api/v1/(?:namespaces/(?P<ns>[^/]+)/)?(?P<plural>pods|events)$")
_LOG = re.compile(r"^/api/v1/namespaces/(?P<ns>[^/]+)/pods/(?P<name>[^/]+)/log$")
_METRICS = re.compile(
    r"^/apis/metrics\.k8s\.io/v1beta1/(?:namespaces/(?P<ns>[^/]+)/)?(?P<plural>pods|nodes)$"
)


def iso(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def rfc3339_nano(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f") + "000Z"


def status(code: int, reason: str, message: str) -> dict[str, Any]:
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }


def kubeconfig(url: str, token: str, context: str = "local") -> dict[str, Any]:
    """A kubeconfig dict (as ``KubernetesClusterConfig.config``) for ``url`` with a token."""
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "local", "cluster": {"server": url}}],
        "users": [{"name": "reader", "user": {"token": token}}],
        "contexts": [{"name": context, "context": {"cluster": "local", "user": "reader"}}],
        "current-context": context,
    }


def container_status(
    name: str,
    *,
    ready: bool = True,
    restarts: int = 0,
    waiting: tuple[str, str] | None = None,
    terminated: dict[str, Any] | None = None,
    last_terminated: dict[str, Any] | None = None,
    started: datetime | None = None,
    image: str = "registry.local/app:1.0",
) -> dict[str, Any]:
    """A ``containerStatuses`` item: running unless ``waiting``/``terminated`` is given."""
    if waiting:
        state: dict[str, Any] = {"waiting": {"reason": waiting[0], "message": waiting[1]}}
    elif terminated:
        state = {"terminated": terminated}
    else:
        state = {"running": {"startedAt": iso(started or datetime(2025, 1, 1, tzinfo=UTC))}}
    out: dict[str, Any] = {
        "name": name,
        "state": state,
        "lastState": {"terminated": last_terminated} if last_terminated else {},
        "ready": ready,
        "restartCount": restarts,
        "image": image,
        "imageID": f"{image}@sha256:{'0' * 64}",
        "started": bool(state.get("running")),
    }
    return out


def terminated(reason: str, exit_code: int, finished: datetime) -> dict[str, Any]:
    return {
        "exitCode": exit_code,
        "reason": reason,
        "startedAt": iso(finished - timedelta(minutes=5)),
        "finishedAt": iso(finished),
    }


def pod(
    name: str,
    namespace: str,
    *,
    labels: dict[str, str] | None = None,
    node: str | None = "node-a",
    phase: str = "Running",
    statuses: list[dict[str, Any]] | None = None,
    owner: tuple[str, str] | None = None,
    conditions: list[dict[str, Any]] | None = None,
    reason: str | None = None,
    message: str | None = None,
) -> dict[str, Any]:
    """A Pod object; containers are named after ``statuses`` (default one ``app``)."""
    statuses = statuses if statuses is not None else [container_status("app")]
    meta: dict[str, Any] = {
        "name": name,
        "namespace": namespace,
        "uid": f"uid-{namespace}-{name}",
        "labels": labels or {},
        "creationTimestamp": "2025-01-01T00:00:00Z",
    }
    if owner:
        meta["ownerReferences"] = [
            {
                "apiVersion": "apps/v1",
                "kind": owner[0],
                "name": owner[1],
                "uid": f"uid-{owner[1]}",
                "controller": True,
            }
        ]
    containers = [{"name": s["name"], "image": s["image"]} for s in statuses]
    spec: dict[str, Any] = {"containers": containers}
    if node:
        spec["nodeName"] = node
    status_: dict[str, Any] = {
        "phase": phase,
        "conditions": conditions or [],
        "containerStatuses": statuses,
    }
    if reason:
        status_["reason"] = reason
    if message:
        status_["message"] = message
    return {"kind": "Pod", "apiVersion": "v1", "metadata": meta, "spec": spec, "status": status_}


def event(
    name: str,
    namespace: str,
    *,
    kind: str,
    obj: str,
    reason: str,
    message: str,
    type_: str = "Warning",
    last: datetime,
    count: int = 1,
    component: str = "kubelet",
) -> dict[str, Any]:
    """A core/v1 Event about ``kind``/``obj``."""
    involved = {"kind": kind, "name": obj, "apiVersion": "v1"}
    if kind != "Node":
        involved["namespace"] = namespace
    return {
        "kind": "Event",
        "apiVersion": "v1",
        "metadata": {"name": name, "namespace": namespace, "creationTimestamp": iso(last)},
        "involvedObject": involved,
        "reason": reason,
        "message": message,
        "source": {"component": component},
        "firstTimestamp": iso(last - timedelta(minutes=count)),
        "lastTimestamp": iso(last),
        "count": count,
        "type": type_,
        "eventTime": None,
        "reportingComponent": component,
    }


def node(
    name: str,
    *,
    ready: str = "True",
    pressure: dict[str, str] | None = None,
    changed: datetime | None = None,
    cpu: str = "4",
    memory: str = "16Gi",
    allocatable_cpu: str = "3920m",
    allocatable_memory: str = "15Gi",
    labels: dict[str, str] | None = None,
    unschedulable: bool = False,
) -> dict[str, Any]:
    """A Node with Ready and the pressure conditions (``pressure``: type -> status)."""
    changed = changed or datetime(2025, 1, 1, tzinfo=UTC)
    kinds = {"MemoryPressure": "False", "DiskPressure": "False", "PIDPressure": "False"}
    kinds.update(pressure or {})
    conditions = [
        {
            "type": ctype,
            "status": cstatus,
            "reason": f"Kubelet{'Has' if cstatus == 'True' else 'HasNo'}{ctype}",
            "message": f"kubelet reports {ctype}={cstatus}",
            "lastHeartbeatTime": iso(changed),
            "lastTransitionTime": iso(changed),
        }
        for ctype, cstatus in kinds.items()
    ]
    conditions.append(
        {
            "type": "Ready",
            "status": ready,
            "reason": "KubeletReady" if ready == "True" else "KubeletNotReady",
            "message": "kubelet is posting ready status"
            if ready == "True"
            else "container runtime network not ready",
            "lastHeartbeatTime": iso(changed),
            "lastTransitionTime": iso(changed),
        }
    )
    return {
        "kind": "Node",
        "apiVersion": "v1",
        "metadata": {"name": name, "labels": labels or {"kubernetes.io/os": "linux"}},
        "spec": {"unschedulable": True} if unschedulable else {},
        "status": {
            "capacity": {"cpu": cpu, "memory": memory, "pods": "110"},
            "allocatable": {"cpu": allocatable_cpu, "memory": allocatable_memory, "pods": "110"},
            "conditions": conditions,
            "nodeInfo": {"kubeletVersion": "v1.31.0"},
        },
    }


def pod_metrics(name: str, namespace: str, usage: dict[str, tuple[str, str]], when: datetime):
    """A PodMetrics item: container name -> (cpu, memory) quantities."""
    return {
        "metadata": {"name": name, "namespace": namespace, "creationTimestamp": iso(when)},
        "timestamp": iso(when),
        "window": "15s",
        "containers": [
            {"name": c, "usage": {"cpu": cpu, "memory": mem}} for c, (cpu, mem) in usage.items()
        ],
    }


def node_metrics(name: str, cpu: str, memory: str, when: datetime):
    return {
        "metadata": {"name": name, "creationTimestamp": iso(when)},
        "timestamp": iso(when),
        "window": "20s",
        "usage": {"cpu": cpu, "memory": memory},
    }


# ----------------------------------------------------------------- selectors


def _split_terms(selector: str) -> list[str]:
    terms, depth, current = [], 0, ""
    for char in selector:
        if char == "," and depth == 0:
            terms.append(current.strip())
            current = ""
            continue
        depth += char == "("
        depth -= char == ")"
        current += char
    if current.strip():
        terms.append(current.strip())
    return terms


def label_match(labels: dict[str, str], selector: str | None) -> bool:
    for term in _split_terms(selector or ""):
        set_match = re.fullmatch(r"(\S+)\s+(in|notin)\s+\((.*)\)", term)
        if set_match:
            key, op, values = set_match.groups()
            options = {v.strip() for v in values.split(",")}
            inside = labels.get(key) in options
            if (op == "in") != inside:
                return False
        elif "!=" in term:
            key, value = term.split("!=", 1)
            if labels.get(key.strip()) == value.strip():
                return False
        elif "=" in term:
            key, value = re.split(r"==?", term, maxsplit=1)
            if labels.get(key.strip()) != value.strip():
                return False
        elif term.startswith("!"):
            if term[1:].strip() in labels:
                return False
        elif term not in labels:
            return False
    return True


def _path(obj: dict[str, Any], dotted: str) -> str:
    value: Any = obj
    for part in dotted.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return "" if value is None else str(value)


def field_match(obj: dict[str, Any], selector: str | None) -> bool:
    for term in _split_terms(selector or ""):
        if "!=" in term:
            key, value = term.split("!=", 1)
            if _path(obj, key.strip()) == value.strip():
                return False
        else:
            key, value = re.split(r"==?", term, maxsplit=1)
            if _path(obj, key.strip()) != value.strip():
                return False
    return True


# -------------------------------------------------------------------- server


class KubernetesServer(LocalServer):
    """Pods, events, logs, nodes and (optionally) metrics-server data, behind a token."""

    def __init__(self, token: str) -> None:
        super().__init__()
        self.token = token
        self.pods: list[dict[str, Any]] = []
        self.events: list[dict[str, Any]] = []
        self.nodes: list[dict[str, Any]] = []
        # (namespace, pod, container, previous) -> [(time, line)]
        self.logs: dict[tuple[str, str, str, bool], list[tuple[datetime, str]]] = {}
        self.metrics_enabled = False
        self.pod_metrics: list[dict[str, Any]] = []
        self.node_metrics: list[dict[str, Any]] = []
        self.max_page: int | None = None  # cap on ``limit``, to force continue tokens
        # path prefix -> status answered there (a ``Status`` body), e.g. {"/api/v1/nodes": 500}
        self.failing_paths: dict[str, int] = {}
        # quote the request's Authorization header in error messages, as a careless proxy
        # or webhook would: whatever quotes a token, the caller must not repeat it
        self.echo_authorization = False

    def _error(self, seen: Seen, code: int, reason: str, message: str):
        if self.echo_authorization:
            message += f" (request had Authorization: {seen.headers.get('authorization')})"
        return json_response(status(code, reason, message), code)

    def queries(self, path_prefix: str) -> list[dict[str, list[str]]]:
        """The query parameters of every request whose path starts with ``path_prefix``."""
        out = []
        for seen in self.requests:
            parts = urlsplit(seen.path)
            if parts.path.startswith(path_prefix):
                out.append(parse_qs(parts.query))
        return out

    def handle(self, seen: Seen):
        if seen.headers.get("authorization") != f"Bearer {self.token}":
            return self._error(seen, 401, "Unauthorized", "Unauthorized")
        parts = urlsplit(seen.path)
        for prefix, code in self.failing_paths.items():
            if parts.path.startswith(prefix):
                return self._error(seen, code, "InternalError", "Internal error occurred")
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        path = parts.path
        match = _NS_LIST.match(path)
        if match:
            items = self.pods if match["plural"] == "pods" else self.events
            kind = "PodList" if match["plural"] == "pods" else "EventList"
            return self._list(items, kind, match["ns"], query)
        if path == "/api/v1/nodes":
            return self._list(self.nodes, "NodeList", None, query)
        match = _LOG.match(path)
        if match:
            return self._log(match["ns"], match["name"], query)
        match = _METRICS.match(path)
        if match:
            if not self.metrics_enabled:
                return 404, {"Content-Type": "text/plain; charset=utf-8"}, b"404 page not found\n"
            items = self.pod_metrics if match["plural"] == "pods" else self.node_metrics
            kind = "PodMetricsList" if match["plural"] == "pods" else "NodeMetricsList"
            out = self._list(items, kind, match["ns"], query)
            body = json.loads(out[2])
            body["apiVersion"] = "metrics.k8s.io/v1beta1"
            return out[0], out[1], json.dumps(body).encode()
        return json_response(status(404, "NotFound", f"the server could not find {path}"), 404)

    def _list(self, items, kind: str, namespace: str | None, query: dict[str, str]):
        chosen = [
            item
            for item in items
            if (namespace is None or item["metadata"].get("namespace") == namespace)
            and label_match(item["metadata"].get("labels") or {}, query.get("labelSelector"))
            and field_match(item, query.get("fieldSelector"))
        ]
        start = int(query.get("continue") or 0)
        limit = int(query.get("limit") or 0) or len(chosen) or 1
        limit = min(limit, self.max_page or limit)
        page = chosen[start : start + limit]
        meta: dict[str, Any] = {"resourceVersion": "1000"}
        if start + limit < len(chosen):
            meta["continue"] = str(start + limit)
        return json_response({"kind": kind, "apiVersion": "v1", "metadata": meta, "items": page})

    def _log(self, namespace: str, name: str, query: dict[str, str]):
        found = next(
            (
                p
                for p in self.pods
                if p["metadata"]["name"] == name and p["metadata"]["namespace"] == namespace
            ),
            None,
        )
        if found is None:
            return json_response(status(404, "NotFound", f'pods "{name}" not found'), 404)
        names = [c["name"] for c in found["spec"]["containers"]]
        container = query.get("container")
        if not container:
            if len(names) != 1:
                message = (
                    f"a container name must be specified for pod {name}, "
                    f"choose one of: [{' '.join(names)}]"
                )
                return json_response(status(400, "BadRequest", message), 400)
            container = names[0]
        if container not in names:
            message = f"container {container} is not valid for pod {name}"
            return json_response(status(400, "BadRequest", message), 400)
        previous = query.get("previous") == "true"
        key = (namespace, name, container, previous)
        if key not in self.logs:
            if previous:
                message = f'previous terminated container "{container}" in pod "{name}" not found'
            else:
                message = f'container "{container}" in pod "{name}" is waiting to start'
            return json_response(status(400, "BadRequest", message), 400)
        lines = list(self.logs[key])
        if query.get("sinceSeconds"):
            floor = datetime.now(UTC) - timedelta(seconds=int(query["sinceSeconds"]))
            lines = [(t, line) for t, line in lines if t >= floor]
        if query.get("tailLines"):
            lines = lines[-int(query["tailLines"]) :] if int(query["tailLines"]) else []
        stamps = query.get("timestamps") == "true"
        text = "".join(f"{rfc3339_nano(t)} " * stamps + f"{line}\n" for t, line in lines)
        data = text.encode()
        if query.get("limitBytes"):
            data = data[: int(query["limitBytes"])]
        return 200, {"Content-Type": "text/plain"}, data
