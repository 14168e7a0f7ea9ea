"""A local Kubernetes API server for the ``apps/v1`` calls ``tasks.incidents.k8s_actions`` makes.

Speaks the documented shapes (https://kubernetes.io/docs/reference/kubernetes-api/
workload-resources/deployment-v1/) to the real ``kubernetes`` client:

- ``GET``/``PATCH /apis/apps/v1/namespaces/{ns}/deployments/{name}``: PATCH takes
  ``application/strategic-merge-patch+json`` (lists of named things such as containers
  and env merged by ``name``), ``application/merge-patch+json`` (RFC 7386) and
  ``application/json-patch+json`` (RFC 6902: add, remove, replace, test).
- ``GET``/``PATCH .../deployments/{name}/scale`` (``autoscaling/v1`` Scale).
- ``GET /apis/apps/v1/namespaces/{ns}/replicasets?labelSelector=a=b,c=d``.
- ``?dryRun=All`` validates and answers with the would-be object without persisting;
  any other dryRun value is a 400, as on a real API server.
- Errors are ``Status`` objects: 401 without the bearer token (when one is set), 404,
  415 for other patch types, 422 for invalid objects (no containers, negative
  replicas, selector not matching the template labels, a changed selector, a failed
  JSON-patch test).

A tiny deployment controller runs synchronously after every persisted template change,
as kube-controller-manager would: the ReplicaSet whose template equals the new one
(ignoring ``pod-template-hash``) becomes the newest revision, or a new ReplicaSet is
created for it, and the Deployment's ``deployment.kubernetes.io/revision`` follows.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
import uuid
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from tests.servers import LocalServer, Seen, json_response

REVISION = "deployment.kubernetes.io/revision"
HASH_LABEL = "pod-template-hash"
_DEPLOY = re.compile(r"^/apis/apps/v1/namespaces/([^/]+)/deployments/([^/]+)(/scale)?$")
_RS_LIST = re.compile(r"^/apis/apps/v1/namespaces/([^/]+)/replicasets$")
# strategic-merge lists merged by a key instead of replaced (the ones a pod template has)
_MERGE_KEYS = {
    "containers": "name",
    "initContainers": "name",
    "env": "name",
    "volumes": "name",
    "volumeMounts": "mountPath",
    "ports": "containerPort",
    "imagePullSecrets": "name",
}
_NO_TEMPLATE_COPY = {REVISION, "deployment.kubernetes.io/revision-history"}


class Invalid(Exception):
    """A 422 from the API server."""


def status(code: int, reason: str, message: str, details: dict | None = None):
    body = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }
    if details:
        body["details"] = details
    return json_response(body, code)


def deployment(
    name: str,
    namespace: str = "default",
    image: str = "registry.local/app:1.0",
    *,
    replicas: int = 2,
    container: str | None = None,
    env: dict[str, str] | None = None,
) -> dict[str, Any]:
    """A Deployment in the apps/v1 JSON shape, selecting ``app=<name>``."""
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "uid": str(uuid.uuid4()),
            "generation": 1,
            "resourceVersion": "1",
            "creationTimestamp": "2025-01-01T00:00:00Z",
            "labels": dict(labels),
            "annotations": {},
        },
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": dict(labels)},
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"},
            },
            "template": {
                "metadata": {"labels": dict(labels)},
                "spec": {
                    "containers": [
                        {
                            "name": container or name,
                            "image": image,
                            "env": [{"name": k, "value": v} for k, v in (env or {}).items()],
                            "resources": {"limits": {"memory": "256Mi"}},
                        }
                    ]
                },
            },
        },
        "status": {"replicas": replicas, "readyReplicas": replicas, "observedGeneration": 1},
    }


# ---------------------------------------------------------------------- patch flavours


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge_patch(out.get(key), value)
    return out


def strategic_merge_patch(target: Any, patch: Any, key: str | None = None) -> Any:
    """Strategic merge patch, for the fields a Deployment uses (lists merged by key)."""
    if isinstance(patch, list) and key in _MERGE_KEYS and isinstance(target, list):
        merge_key = _MERGE_KEYS[key]
        out = copy.deepcopy(target)
        for item in patch:
            if not isinstance(item, dict) or merge_key not in item:
                raise Invalid(f"{key}: every item needs {merge_key!r}")
            idx = next((i for i, t in enumerate(out) if t.get(merge_key) == item[merge_key]), None)
            if item.get("$patch") == "delete":
                if idx is not None:
                    out.pop(idx)
            elif idx is None:
                out.append(copy.deepcopy(item))
            else:
                out[idx] = strategic_merge_patch(out[idx], item)
        return out
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = copy.deepcopy(target) if isinstance(target, dict) else {}
    for k, value in patch.items():
        if value is None:
            out.pop(k, None)
        else:
            out[k] = strategic_merge_patch(out.get(k), value, k)
    return out


def _pointer(path: str) -> list[str]:
    if not path.startswith("/"):
        raise Invalid(f"json patch: path {path!r} must start with '/'")
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def json_patch(target: Any, ops: Any) -> Any:
    """RFC 6902 JSON patch: add, remove, replace, test."""
    if not isinstance(ops, list):
        raise Invalid("json patch: the body must be a list of operations")
    doc = copy.deepcopy(target)
    for op in ops:
        parts = _pointer(op.get("path", ""))
        parent = doc
        for part in parts[:-1]:
            parent = parent[int(part)] if isinstance(parent, list) else parent.get(part)
            if parent is None:
                raise Invalid(f"json patch: missing path {op['path']!r}")
        last = parts[-1]
        kind = op.get("op")
        if kind == "test":
            current = parent[int(last)] if isinstance(parent, list) else parent.get(last)
            if current != op.get("value"):
                raise Invalid(f"json patch: test failed at {op['path']!r}")
        elif kind in ("add", "replace"):
            if kind == "replace" and isinstance(parent, dict) and last not in parent:
                raise Invalid(f"json patch: cannot replace missing {op['path']!r}")
            if isinstance(parent, list):
                if last == "-":
                    parent.append(op["value"])
                elif kind == "add":
                    parent.insert(int(last), op["value"])
                else:
                    parent[int(last)] = op["value"]
            else:
                parent[last] = op["value"]
        elif kind == "remove":
            if isinstance(parent, list):
                parent.pop(int(last))
            elif parent.pop(last, None) is None:
                raise Invalid(f"json patch: cannot remove missing {op['path']!r}")
        else:
            raise Invalid(f"json patch: unsupported op {kind!r}")
    return doc


PATCHERS = {
    "application/strategic-merge-patch+json": strategic_merge_patch,
    "application/merge-patch+json": merge_patch,
    "application/json-patch+json": json_patch,
}


# ---------------------------------------------------------------------- the server


def _template_hash(template: dict) -> str:
    clean = _without_hash(template)
    digest = hashlib.sha256(json.dumps(clean, sort_keys=True).encode()).hexdigest()
    return "".join(c for c in digest if c in "bcdfghjklmnpqrstvwxz2456789")[:10]


def _without_hash(template: dict) -> dict:
    clean = copy.deepcopy(template)
    clean.get("metadata", {}).get("labels", {}).pop(HASH_LABEL, None)
    return clean


def _matches(labels: dict[str, str], selector: str) -> bool:
    for term in filter(None, selector.split(",")):
        key, _, value = term.partition("=")
        if labels.get(key.strip()) != value.strip().lstrip("="):
            return False
    return True


class KubernetesAppsServer(LocalServer):
    """Deployments, their scale subresource and ReplicaSets, in memory."""

    def __init__(self, token: str | None = None) -> None:
        super().__init__()
        handler = self.httpd.RequestHandlerClass
        handler.do_PATCH = handler.do_GET  # the base handler serves GET/POST/PUT/DELETE
        self.token = token
        self.deployments: dict[tuple[str, str], dict] = {}
        self.replicasets: dict[tuple[str, str], dict] = {}
        self._rv = 100

    # ------------------------------------------------------------ fixtures for tests

    def add_deployment(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Create a Deployment (``deployment(...)``) and its first ReplicaSet."""
        meta = obj["metadata"]
        self.deployments[(meta["namespace"], meta["name"])] = copy.deepcopy(obj)
        self._reconcile(meta["namespace"], meta["name"])
        return self.get_deployment(meta["namespace"], meta["name"])

    def set_image(self, namespace: str, name: str, image: str, container: int = 0) -> None:
        """What ``kubectl set image`` does: a new template, hence a new revision."""
        dep = self.deployments[(namespace, name)]
        dep["spec"]["template"]["spec"]["containers"][container]["image"] = image
        self._persisted(dep)
        self._reconcile(namespace, name)

    def get_deployment(self, namespace: str, name: str) -> dict[str, Any]:
        return copy.deepcopy(self.deployments[(namespace, name)])

    def owned_replicasets(self, namespace: str, name: str) -> list[dict[str, Any]]:
        uid = self.deployments[(namespace, name)]["metadata"]["uid"]
        out = [
            copy.deepcopy(rs)
            for (ns, _), rs in self.replicasets.items()
            if ns == namespace
            and any(o.get("uid") == uid for o in rs["metadata"].get("ownerReferences", []))
        ]
        return sorted(out, key=lambda rs: int(rs["metadata"]["annotations"][REVISION]))

    # ------------------------------------------------------------ controller

    def _persisted(self, obj: dict) -> None:
        self._rv += 1
        obj["metadata"]["resourceVersion"] = str(self._rv)

    def _reconcile(self, namespace: str, name: str) -> None:
        dep = self.deployments[(namespace, name)]
        template = dep["spec"]["template"]
        owned = self.owned_replicasets(namespace, name)
        newest = max((int(rs["metadata"]["annotations"][REVISION]) for rs in owned), default=0)
        same = next(
            (
                rs
                for rs in owned
                if _without_hash(rs["spec"]["template"]) == _without_hash(template)
            ),
            None,
        )
        if same is not None:
            rs = self.replicasets[(namespace, same["metadata"]["name"])]
            revision = int(rs["metadata"]["annotations"][REVISION])
            if revision != newest:
                revision = newest + 1
                rs["metadata"]["annotations"][REVISION] = str(revision)
                self._persisted(rs)
        else:
            revision = newest + 1
            pod_hash = _template_hash(template)
            rs_template = copy.deepcopy(template)
            rs_template.setdefault("metadata", {}).setdefault("labels", {})[HASH_LABEL] = pod_hash
            annotations = {
                k: v
                for k, v in dep["metadata"].get("annotations", {}).items()
                if k not in _NO_TEMPLATE_COPY
            }
            annotations[REVISION] = str(revision)
            selector = copy.deepcopy(dep["spec"]["selector"])
            selector.setdefault("matchLabels", {})[HASH_LABEL] = pod_hash
            rs = {
                "apiVersion": "apps/v1",
                "kind": "ReplicaSet",
                "metadata": {
                    "name": f"{name}-{pod_hash}",
                    "namespace": namespace,
                    "uid": str(uuid.uuid4()),
                    "labels": dict(rs_template["metadata"]["labels"]),
                    "annotations": annotations,
                    "ownerReferences": [
                        {
                            "apiVersion": "apps/v1",
                            "kind": "Deployment",
                            "name": name,
                            "uid": dep["metadata"]["uid"],
                            "controller": True,
                            "blockOwnerDeletion": True,
                        }
                    ],
                    "creationTimestamp": "2025-01-01T00:00:00Z",
                },
                "spec": {"replicas": 0, "selector": selector, "template": rs_template},
                "status": {"replicas": 0},
            }
            self._persisted(rs)
            self.replicasets[(namespace, rs["metadata"]["name"])] = rs
        dep["metadata"].setdefault("annotations", {})[REVISION] = str(revision)
        for rs_key, rs in self.replicasets.items():  # the newest runs all replicas
            if any(
                o.get("uid") == dep["metadata"]["uid"] for o in rs["metadata"]["ownerReferences"]
            ):
                current = rs["metadata"]["annotations"][REVISION] == str(revision)
                rs["spec"]["replicas"] = dep["spec"]["replicas"] if current else 0
                self.replicasets[rs_key] = rs

    # ------------------------------------------------------------ HTTP

    def handle(self, seen: Seen):
        if self.token is not None and seen.headers.get("authorization") != f"Bearer {self.token}":
            return status(401, "Unauthorized", "Unauthorized")
        url = urlsplit(seen.path)
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        path = unquote(url.path)
        dry_run = query.get("dryRun")
        if dry_run is not None and dry_run != "All":
            return status(400, "BadRequest", f'Invalid dry run value "{dry_run}"')
        if m := _RS_LIST.match(path):
            if seen.method != "GET":
                return status(405, "MethodNotAllowed", "method not allowed")
            return self._list_replicasets(m.group(1), query.get("labelSelector", ""))
        if m := _DEPLOY.match(path):
            ns, name, scale = m.group(1), m.group(2), bool(m.group(3))
            if (ns, name) not in self.deployments:
                return status(
                    404,
                    "NotFound",
                    f'deployments.apps "{name}" not found',
                    {"name": name, "group": "apps", "kind": "deployments"},
                )
            if seen.method == "GET":
                dep = self.deployments[(ns, name)]
                return json_response(self._scale(dep) if scale else dep)
            if seen.method == "PATCH":
                return self._patch(seen, ns, name, scale, dry_run == "All")
            return status(405, "MethodNotAllowed", "method not allowed")
        return status(404, "NotFound", "the server could not find the requested resource")

    def _list_replicasets(self, namespace: str, selector: str):
        items = [
            rs
            for (ns, _), rs in sorted(self.replicasets.items())
            if ns == namespace and _matches(rs["metadata"].get("labels", {}), selector)
        ]
        body = {
            "apiVersion": "apps/v1",
            "kind": "ReplicaSetList",
            "metadata": {"resourceVersion": str(self._rv)},
            "items": items,
        }
        return json_response(body)

    @staticmethod
    def _scale(dep: dict) -> dict:
        labels = dep["spec"]["selector"].get("matchLabels", {})
        return {
            "apiVersion": "autoscaling/v1",
            "kind": "Scale",
            "metadata": {
                k: dep["metadata"][k]
                for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
            },
            "spec": {"replicas": dep["spec"]["replicas"]},
            "status": {
                "replicas": dep["status"].get("replicas", 0),
                "selector": ",".join(f"{k}={v}" for k, v in sorted(labels.items())),
            },
        }

    def _patch(self, seen: Seen, ns: str, name: str, scale: bool, dry_run: bool):
        ctype = seen.headers.get("content-type", "").split(";")[0].strip()
        patcher = PATCHERS.get(ctype)
        if patcher is None:
            return status(415, "UnsupportedMediaType", f"the media type {ctype!r} is not supported")
        try:
            body = json.loads(seen.body or b"null")
        except ValueError as exc:
            return status(400, "BadRequest", f"invalid JSON: {exc}")
        current = self.deployments[(ns, name)]
        try:
            if scale:
                patched = patcher(self._scale(current), body)
                replicas = patched.get("spec", {}).get("replicas")
                new = copy.deepcopy(current)
                new["spec"]["replicas"] = replicas
            else:
                new = patcher(current, body)
            self._validate(current, new)
        except Invalid as exc:
            return status(422, "Invalid", f'Deployment.apps "{name}" is invalid: {exc}')
        except (KeyError, IndexError, TypeError, ValueError) as exc:
            return status(422, "Invalid", f'Deployment.apps "{name}" is invalid: {exc!r}')
        template_changed = new["spec"]["template"] != current["spec"]["template"]
        if template_changed:
            new["metadata"]["generation"] = current["metadata"].get("generation", 1) + 1
        if not dry_run and new != current:
            self._persisted(new)
            self.deployments[(ns, name)] = new
            if template_changed:
                self._reconcile(ns, name)
            new = self.deployments[(ns, name)]
        return json_response(self._scale(new) if scale else new)

    @staticmethod
    def _validate(old: dict, new: dict) -> None:
        spec = new.get("spec") or {}
        replicas = spec.get("replicas")
        if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 0:
            raise Invalid(
                f"spec.replicas: Invalid value: {replicas!r}: must be greater than or equal to 0"
            )
        if spec.get("selector") != old["spec"]["selector"]:
            raise Invalid("spec.selector: Invalid value: field is immutable")
        template = spec.get("template") or {}
        containers = (template.get("spec") or {}).get("containers") or []
        if not containers or any(not c.get("name") or not c.get("image") for c in containers):
            raise Invalid("spec.template.spec.containers: Required value")
        labels = (template.get("metadata") or {}).get("labels") or {}
        for key, value in spec["selector"].get("matchLabels", {}).items():
            if labels.get(key) != value:
                raise Invalid(
                    "spec.template.metadata.labels: Invalid value: "
                    "`selector` does not match template `labels`"
                )
        if new["metadata"].get("name") != old["metadata"]["name"]:
            raise Invalid("metadata.name: Invalid value: field is immutable")
