"""The only changes the ``remediate`` flow may make: restart, undo or scale a Deployment.

Each action does what the kubectl command of the same name does, through the
``apps/v1`` API of the official ``kubernetes`` client:

- ``rollout_restart``: sets ``spec.template.metadata.annotations
  ["kubectl.kubernetes.io/restartedAt"]`` (strategic merge patch), so the Deployment
  rolls its pods.
- ``rollout_undo``: finds the ReplicaSets the Deployment owns, picks the previous
  revision (``deployment.kubernetes.io/revision``; or ``to_revision``) and writes that
  ReplicaSet's pod template, minus its ``pod-template-hash`` label, back into the
  Deployment together with its annotations (a JSON patch, as kubectl sends).
- ``scale``: patches the ``scale`` subresource (merge patch, as kubectl sends).

Every action takes ``dry_run`` (default True): the request is sent with
``dryRun=All`` so the API server validates it without persisting anything, and the
result shows the planned change as a unified diff. The result also carries the
*pinned* plan (restart timestamp, target ReplicaSet, replicas): executing it again is
a no-op, so a retry after a lost response cannot roll back twice, and approving a dry
run's plan executes exactly what was shown.

``plan_action`` turns a ``Suggestion`` into an ``ActionPlan`` and refuses anything
that is not automatable, not low risk, or not one of these three commands.
``run_action`` is the retried task the ``remediate`` flow calls with a
prefect-kubernetes ``KubernetesCredentials`` block (the sync client is built by
``tasks.telemetry.kubernetes.kubernetes_api_client``; API failures are that module's
``KubernetesUnavailable`` (retried) / ``KubernetesApiError`` (not retried)).
"""

from __future__ import annotations

import difflib
import json
import re
import shlex
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, Field, field_validator

from tasks.clouds.kubernetes import REQUEST_TIMEOUT, api_error, kubernetes_api_client
from tasks.common.retry import cloud_api_task, one_line_reason, task_logger
from tasks.incidents.signals import Suggestion

if TYPE_CHECKING:
    from kubernetes.client import AppsV1Api
    from prefect_kubernetes.credentials import KubernetesCredentials

RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"
REVISION = "deployment.kubernetes.io/revision"
HASH_LABEL = "pod-template-hash"
# Deployment annotations a rollback keeps (kubectl's annotationsToSkip).
ANNOTATIONS_TO_SKIP = frozenset(
    {
        "kubectl.kubernetes.io/last-applied-configuration",
        REVISION,
        "deployment.kubernetes.io/revision-history",
        "deployment.kubernetes.io/desired-replicas",
        "deployment.kubernetes.io/max-replicas",
        "deprecated.deployment.rollback.to",
    }
)
MAX_REPLICAS = 1000
_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
ActionName = Literal["rollout_restart", "rollout_undo", "scale"]
_TYPE_TO_ACTION: dict[str, ActionName] = {
    "restart": "rollout_restart",
    "rollback": "rollout_undo",
    "scale": "scale",
}


class ActionError(RuntimeError):
    """An action kubectl would also refuse: no previous revision, a paused Deployment."""


def check_name(value: str, field: str = "name") -> str:
    """A Deployment name: a DNS-1123 subdomain (lowercase, digits, '-', '.'; <= 253)."""
    if not isinstance(value, str) or len(value) > 253 or not _DNS_SUBDOMAIN.fullmatch(value):
        raise ValueError(f"{field}: {value!r} is not a valid Kubernetes object name")
    return value


def check_namespace(value: str, field: str = "namespace") -> str:
    """A namespace: a DNS-1123 label (lowercase, digits, '-'; <= 63)."""
    if not isinstance(value, str) or len(value) > 63 or not _DNS_LABEL.fullmatch(value):
        raise ValueError(f"{field}: {value!r} is not a valid Kubernetes namespace")
    return value


def check_replicas(value: int, field: str = "replicas") -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= MAX_REPLICAS:
        raise ValueError(f"{field}: {value!r} must be an integer from 0 to {MAX_REPLICAS}")
    return value


class ActionPlan(BaseModel):
    """One validated call of ``rollout_restart``, ``rollout_undo`` or ``scale``."""

    action: ActionName
    name: str
    namespace: str = "default"
    replicas: int | None = Field(default=None, description="scale only")
    to_revision: int | None = Field(default=None, description="rollout_undo only")
    to_replicaset: str | None = Field(
        default=None, description="rollout_undo: the ReplicaSet pinned by a dry run"
    )
    restarted_at: str | None = Field(
        default=None, description="rollout_restart: the timestamp pinned by a dry run"
    )
    command: str = Field(description="The kubectl command this plan does")
    rule: str | None = Field(default=None, description="The suggestion rule it came from")

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return check_name(value)

    @field_validator("namespace")
    @classmethod
    def _namespace(cls, value: str) -> str:
        return check_namespace(value)

    @field_validator("replicas")
    @classmethod
    def _replicas(cls, value: int | None) -> int | None:
        return None if value is None else check_replicas(value)

    @field_validator("to_revision")
    @classmethod
    def _revision(cls, value: int | None) -> int | None:
        if value is not None and value < 1:
            raise ValueError(f"to_revision: {value} must be a positive revision number")
        return value


class ActionResult(BaseModel):
    """What an action changed (or, in a dry run, would change)."""

    action: ActionName
    name: str
    namespace: str
    dry_run: bool
    changed: bool
    before: dict[str, str | int | None]
    after: dict[str, str | int | None]
    diff: str = Field(description="Unified diff of the pod template or replicas")
    summary: str
    plan: ActionPlan = Field(description="The pinned plan: executing it repeats this change")


# ---------------------------------------------------------------------- plan


def _parse_command(command: str) -> tuple[ActionName, dict[str, Any]]:
    """Parse exactly the kubectl commands ``tasks.incidents.remediation`` writes for these
    actions."""
    try:
        argv = shlex.split(command)
    except ValueError as exc:
        raise ValueError(f"command: cannot be parsed ({exc})") from None
    namespace, replicas, to_revision = "default", None, None
    rest: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg in ("-n", "--namespace") and i + 1 < len(argv):
            namespace, i = argv[i + 1], i + 2
            continue
        if arg.startswith("--namespace="):
            namespace = arg.split("=", 1)[1]
        elif arg.startswith("--replicas="):
            replicas = arg.split("=", 1)[1]
        elif arg.startswith("--to-revision="):
            to_revision = arg.split("=", 1)[1]
        else:
            rest.append(arg)
        i += 1
    shapes: dict[tuple[str, ...], ActionName] = {
        ("kubectl", "rollout", "restart"): "rollout_restart",
        ("kubectl", "rollout", "undo"): "rollout_undo",
        ("kubectl", "scale"): "scale",
    }
    action = shapes.get(tuple(rest[:-1]))
    if action is None or not rest[-1].startswith("deployment/"):
        raise ValueError(
            f"command: {command!r} is not 'kubectl rollout restart|undo deployment/<name>' "
            "or 'kubectl scale deployment/<name> --replicas=<n>'"
        )
    args: dict[str, Any] = {
        "name": check_name(rest[-1].split("/", 1)[1], "command: deployment name"),
        "namespace": check_namespace(namespace, "command: namespace"),
    }
    if action == "scale":
        if replicas is None or not replicas.isdigit():
            raise ValueError(f"command: scale needs --replicas=<n>, got {replicas!r}")
        args["replicas"] = int(replicas)
    elif replicas is not None:
        raise ValueError("command: --replicas only applies to kubectl scale")
    if to_revision is not None:
        if action != "rollout_undo" or not to_revision.isdigit():
            raise ValueError(f"command: bad --to-revision={to_revision!r}")
        args["to_revision"] = int(to_revision)
    return action, args


def plan_action(suggestion: Suggestion) -> ActionPlan:
    """Turn an automatable, low-risk suggestion into a validated ``ActionPlan``.

    Args:
        suggestion: from ``tasks.incidents.remediation.suggest``.

    Returns:
        The plan for ``execute_plan`` / ``run_action``.

    Raises:
        ValueError: when the suggestion is not automatable, not low risk, not a
            rollback / restart / scale of a Deployment, its command does not parse, its
            target disagrees with its command, or it would scale to 0 replicas.

    Example:
        ```python
        plan = plan_action(incident.suggestions[0])
        preview = run_action(credentials, plan, dry_run=True)
        ```
    """
    where = f"suggestion {suggestion.rule!r}"
    if not suggestion.automatable:
        raise ValueError(f"{where}: not automatable; a person must run {suggestion.command!r}")
    if suggestion.risk != "low":
        raise ValueError(f"{where}: risk is {suggestion.risk!r}; only low-risk actions run")
    if suggestion.type not in _TYPE_TO_ACTION:
        raise ValueError(
            f"{where}: type {suggestion.type!r} is not one of {sorted(_TYPE_TO_ACTION)}"
        )
    action, args = _parse_command(suggestion.command)
    if action != _TYPE_TO_ACTION[suggestion.type]:
        raise ValueError(f"{where}: type {suggestion.type!r} but command does {action}")
    kind, _, target = suggestion.target.partition(":")
    if kind not in ("deployment", "service") or target != args["name"]:
        raise ValueError(
            f"{where}: target {suggestion.target!r} is not the command's deployment/{args['name']}"
        )
    if action == "scale" and args["replicas"] == 0:
        raise ValueError(f"{where}: replicas: scaling to 0 stops the service; not low risk")
    return ActionPlan(action=action, command=suggestion.command, rule=suggestion.rule, **args)


# ---------------------------------------------------------------------- API helpers


def _call(fn, *args, **kwargs):
    """One API call with the telemetry tasks' timeout; failures become
    ``tasks.clouds.kubernetes``'s ``KubernetesUnavailable`` (429/5xx/connection: retried) or
    ``KubernetesApiError`` (401/403/404/422...: not retried), with the API's message."""
    import urllib3
    from kubernetes.client.exceptions import ApiException

    try:
        return fn(*args, _request_timeout=REQUEST_TIMEOUT, **kwargs)
    except (ApiException, urllib3.exceptions.HTTPError) as exc:
        raise api_error(exc) from None


def _plain(apps_api: AppsV1Api, obj: Any) -> Any:
    """The API JSON shape of a client model (camelCase keys, no None values)."""
    return apps_api.api_client.sanitize_for_serialization(obj)


def _template_text(template: dict) -> list[str]:
    return json.dumps(template, indent=2, sort_keys=True).splitlines()


def _diff(before: list[str], after: list[str], label: str) -> str:
    lines = difflib.unified_diff(
        before, after, f"{label} (live)", f"{label} (planned)", lineterm=""
    )
    return "\n".join(lines)


def _read(apps_api: AppsV1Api, name: str, namespace: str) -> dict:
    return _plain(apps_api, _call(apps_api.read_namespaced_deployment, name, namespace))


def _patch_deployment(
    apps_api: AppsV1Api, name: str, namespace: str, patch: Any, dry_run: bool
) -> dict:
    """PATCH the Deployment (``dryRun=All`` when ``dry_run``); its new state as a dict."""
    new = _call(apps_api.patch_namespaced_deployment, name, namespace, patch, **_dry(dry_run))
    return _plain(apps_api, new)


def _revision(obj: dict) -> int | None:
    value = (obj.get("metadata", {}).get("annotations") or {}).get(REVISION)
    return int(value) if value and str(value).isdigit() else None


def _without_hash(template: dict) -> dict:
    clean = json.loads(json.dumps(template))
    labels = clean.get("metadata", {}).get("labels")
    if labels:
        labels.pop(HASH_LABEL, None)
    return clean


def _dry(dry_run: bool) -> dict[str, str]:
    return {"dry_run": "All"} if dry_run else {}


def _images(template: dict) -> str:
    return ",".join(c.get("image", "") for c in template.get("spec", {}).get("containers", []))


# ---------------------------------------------------------------------- actions


def rollout_restart(
    apps_api: AppsV1Api,
    name: str,
    namespace: str,
    *,
    dry_run: bool = True,
    restarted_at: str | None = None,
) -> ActionResult:
    """``kubectl rollout restart deployment/<name>``: roll every pod of a Deployment.

    Args:
        apps_api: a ``kubernetes.client.AppsV1Api`` (see ``apps_api``).
        name: the Deployment.
        namespace: its namespace.
        dry_run: send with ``dryRun=All`` and persist nothing (default).
        restarted_at: the annotation value (RFC 3339, UTC); now when None. Passing the
            value of an earlier run makes the call a no-op.

    Returns:
        ``ActionResult`` with the old and new ``restartedAt`` and the template diff.

    Raises:
        ValueError: bad name/namespace. ActionError: the Deployment is paused.
        KubernetesApiError / KubernetesUnavailable (``tasks.clouds.kubernetes``): the API
            refused (404, 422, ...) / was unavailable.

    Example:
        ```python
        result = rollout_restart(api, "payments", "shop", dry_run=False)
        ```
    """
    check_name(name), check_namespace(namespace)
    stamp = restarted_at or datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    live = _read(apps_api, name, namespace)
    if live.get("spec", {}).get("paused"):
        raise ActionError(f"deployment/{name} -n {namespace} is paused; resume it first")
    old = ((live["spec"]["template"].get("metadata") or {}).get("annotations") or {}).get(
        RESTARTED_AT
    )
    patch = {"spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: stamp}}}}}
    new = _patch_deployment(apps_api, name, namespace, patch, dry_run)
    diff = _diff(
        _template_text(live["spec"]["template"]),
        _template_text(new["spec"]["template"]),
        f"deployment/{name} spec.template",
    )
    changed = old != stamp
    verb = "would restart" if dry_run else "restarted"
    return ActionResult(
        action="rollout_restart",
        name=name,
        namespace=namespace,
        dry_run=dry_run,
        changed=changed,
        before={"revision": _revision(live), "restartedAt": old},
        after={"revision": _revision(new), "restartedAt": stamp},
        diff=diff,
        summary=f"{verb} deployment/{name} -n {namespace}"
        if changed
        else f"deployment/{name} -n {namespace} already restarted at {stamp}",
        plan=ActionPlan(
            action="rollout_restart",
            name=name,
            namespace=namespace,
            restarted_at=stamp,
            command=f"kubectl rollout restart deployment/{name} -n {namespace}",
        ),
    )


def _owned_replicasets(apps_api: AppsV1Api, dep: dict) -> list[dict]:
    """The ReplicaSets the Deployment controls (its selector, then the owner uid)."""
    labels = dep["spec"]["selector"].get("matchLabels") or {}
    selector = ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
    namespace = dep["metadata"]["namespace"]
    found = _call(
        apps_api.list_namespaced_replica_set,
        namespace,
        label_selector=selector,
    )
    uid = dep["metadata"].get("uid")
    out = []
    for rs in _plain(apps_api, found).get("items", []):
        owners = rs.get("metadata", {}).get("ownerReferences") or []
        if any(o.get("uid") == uid and o.get("controller") for o in owners):
            out.append(rs)
    return out


def _pick_revision(
    replicasets: list[dict], to_revision: int | None, to_replicaset: str | None, name: str
) -> dict:
    """kubectl's choice: the given revision / ReplicaSet, else the second-newest."""
    if to_replicaset is not None:
        for rs in replicasets:
            if rs["metadata"]["name"] == to_replicaset:
                return rs
        raise ActionError(f"deployment/{name}: replicaset {to_replicaset!r} not found")
    with_rev = sorted(
        ((_revision(rs), rs) for rs in replicasets if _revision(rs) is not None),
        key=lambda pair: pair[0],
    )
    if to_revision is not None:
        for rev, rs in with_rev:
            if rev == to_revision:
                return rs
        raise ActionError(f"deployment/{name}: unable to find specified revision {to_revision}")
    if len(with_rev) < 2:
        raise ActionError(f"deployment/{name}: no rollout history found (no previous revision)")
    return with_rev[-2][1]


def rollout_undo(
    apps_api: AppsV1Api,
    name: str,
    namespace: str,
    to_revision: int | None = None,
    *,
    dry_run: bool = True,
    to_replicaset: str | None = None,
) -> ActionResult:
    """``kubectl rollout undo deployment/<name>``: go back to the previous revision.

    Args:
        apps_api: a ``kubernetes.client.AppsV1Api``.
        name: the Deployment.
        namespace: its namespace.
        to_revision: the revision to restore; the previous one when None.
        dry_run: send with ``dryRun=All`` and persist nothing (default).
        to_replicaset: restore this ReplicaSet's template (the pinned plan of a dry
            run); overrides ``to_revision``. Revisions are renumbered by a rollback,
            ReplicaSet names are not, so repeating a pinned undo is a no-op.

    Returns:
        ``ActionResult``: ``before``/``after`` hold the revisions and images, ``diff``
        the pod-template change.

    Raises:
        ValueError: bad arguments. ActionError: no previous revision, unknown
            revision or ReplicaSet, a paused Deployment. KubernetesApiError /
            KubernetesUnavailable: the API refused / was unavailable.

    Example:
        ```python
        preview = rollout_undo(api, "checkout", "shop")  # dry run
        done = rollout_undo(api, "checkout", "shop", to_replicaset=preview.plan.to_replicaset,
                            dry_run=False)
        ```
    """
    check_name(name), check_namespace(namespace)
    if to_revision is not None and (not isinstance(to_revision, int) or to_revision < 1):
        raise ValueError(f"to_revision: {to_revision!r} must be a positive revision number")
    live = _read(apps_api, name, namespace)
    target = _pick_revision(_owned_replicasets(apps_api, live), to_revision, to_replicaset, name)
    target_rev = _revision(target)
    plan = ActionPlan(
        action="rollout_undo",
        name=name,
        namespace=namespace,
        to_revision=target_rev,
        to_replicaset=target["metadata"]["name"],
        command=f"kubectl rollout undo deployment/{name} -n {namespace} --to-revision={target_rev}",
    )
    template = _without_hash(target["spec"]["template"])
    before = {
        "revision": _revision(live),
        "images": _images(live["spec"]["template"]),
        "replicaset": None,
    }
    if _without_hash(live["spec"]["template"]) == template:
        return ActionResult(
            action="rollout_undo",
            name=name,
            namespace=namespace,
            dry_run=dry_run,
            changed=False,
            before=before,
            after={**before, "replicaset": target["metadata"]["name"]},
            diff="",
            summary=f"skipped rollback: deployment/{name} already matches revision {target_rev}",
            plan=plan,
        )
    if live.get("spec", {}).get("paused"):
        raise ActionError(f"deployment/{name} -n {namespace} is paused; resume it first")
    annotations = {
        k: v
        for k, v in (live["metadata"].get("annotations") or {}).items()
        if k in ANNOTATIONS_TO_SKIP
    }
    annotations |= {
        k: v
        for k, v in (target["metadata"].get("annotations") or {}).items()
        if k not in ANNOTATIONS_TO_SKIP
    }
    patch = [
        {"op": "replace", "path": "/spec/template", "value": template},
        {"op": "replace", "path": "/metadata/annotations", "value": annotations},
    ]
    new = _patch_deployment(apps_api, name, namespace, patch, dry_run)
    verb = "would roll back" if dry_run else "rolled back"
    return ActionResult(
        action="rollout_undo",
        name=name,
        namespace=namespace,
        dry_run=dry_run,
        changed=True,
        before=before,
        after={
            "revision": target_rev,
            "images": _images(new["spec"]["template"]),
            "replicaset": target["metadata"]["name"],
        },
        diff=_diff(
            _template_text(live["spec"]["template"]),
            _template_text(new["spec"]["template"]),
            f"deployment/{name} spec.template",
        ),
        summary=f"{verb} deployment/{name} -n {namespace} from revision {before['revision']} "
        f"to revision {target_rev} ({target['metadata']['name']})",
        plan=plan,
    )


def scale(
    apps_api: AppsV1Api, name: str, namespace: str, replicas: int, *, dry_run: bool = True
) -> ActionResult:
    """``kubectl scale deployment/<name> --replicas=<n>`` through the scale subresource.

    Args:
        apps_api: a ``kubernetes.client.AppsV1Api``.
        name: the Deployment.
        namespace: its namespace.
        replicas: the new replica count (0 to ``MAX_REPLICAS``).
        dry_run: send with ``dryRun=All`` and persist nothing (default).

    Returns:
        ``ActionResult`` with ``before``/``after`` replicas.

    Raises:
        ValueError: bad arguments. KubernetesApiError / KubernetesUnavailable: the API
            refused / was unavailable.

    Example:
        ```python
        scale(api, "checkout", "shop", 4, dry_run=False).after  # {"replicas": 4}
        ```
    """
    check_name(name), check_namespace(namespace), check_replicas(replicas)
    live = _call(apps_api.read_namespaced_deployment_scale, name, namespace)
    old = live.spec.replicas if live.spec else None
    new = _call(
        apps_api.patch_namespaced_deployment_scale,
        name,
        namespace,
        {"spec": {"replicas": replicas}},
        _content_type="application/merge-patch+json",
        **_dry(dry_run),
    )
    after = new.spec.replicas if new.spec else None
    verb = "would scale" if dry_run else "scaled"
    return ActionResult(
        action="scale",
        name=name,
        namespace=namespace,
        dry_run=dry_run,
        changed=old != after,
        before={"replicas": old},
        after={"replicas": after},
        diff=_diff([f"replicas: {old}"], [f"replicas: {after}"], f"deployment/{name}"),
        summary=f"{verb} deployment/{name} -n {namespace} from {old} to {after} replicas",
        plan=ActionPlan(
            action="scale",
            name=name,
            namespace=namespace,
            replicas=replicas,
            command=f"kubectl scale deployment/{name} -n {namespace} --replicas={replicas}",
        ),
    )


def execute_plan(apps_api: AppsV1Api, plan: ActionPlan, *, dry_run: bool = True) -> ActionResult:
    """Run one ``ActionPlan`` (dry run by default).

    Args:
        apps_api: a ``kubernetes.client.AppsV1Api``.
        plan: from ``plan_action`` or the ``plan`` of an earlier (dry-run) result.
        dry_run: validate on the server without persisting.

    Returns:
        The action's ``ActionResult``.

    Example:
        ```python
        preview = execute_plan(api, plan)
        done = execute_plan(api, preview.plan, dry_run=False)
        ```
    """
    if plan.action == "rollout_restart":
        return rollout_restart(
            apps_api, plan.name, plan.namespace, dry_run=dry_run, restarted_at=plan.restarted_at
        )
    if plan.action == "rollout_undo":
        return rollout_undo(
            apps_api,
            plan.name,
            plan.namespace,
            plan.to_revision,
            dry_run=dry_run,
            to_replicaset=plan.to_replicaset,
        )
    if plan.replicas is None:
        raise ValueError("plan.replicas: required for scale")
    return scale(apps_api, plan.name, plan.namespace, plan.replicas, dry_run=dry_run)


# ---------------------------------------------------------------------- the task


def _require_pinned(plan: ActionPlan) -> None:
    if plan.action == "rollout_undo" and not plan.to_replicaset:
        missing = "to_replicaset"
    elif plan.action == "rollout_restart" and not plan.restarted_at:
        missing = "restarted_at"
    else:
        return
    raise ValueError(
        f"plan.{missing}: execute the plan a dry run returned (result.plan), so that a "
        "retry or a repeat cannot change the Deployment twice"
    )


@cloud_api_task("k8s-remediation-action")
def run_action(
    credentials: KubernetesCredentials, plan: ActionPlan, dry_run: bool = True
) -> ActionResult:
    """Execute one plan against the cluster the credentials point at.

    The client comes from ``tasks.telemetry.kubernetes.kubernetes_api_client`` (the block's
    kubeconfig, else in-cluster, else ~/.kube/config). Retried on throttling, 5xx and
    connection failures only. A real run (``dry_run=False``) of an undo or restart needs
    the *pinned* plan of a dry run (``result.plan``): a retried or repeated execution of
    it is then a no-op instead of a second rollback / restart.

    Args:
        credentials: prefect-kubernetes ``KubernetesCredentials``.
        plan: from ``plan_action`` (dry run) or a dry run's ``result.plan``.
        dry_run: validate on the server without persisting (default).

    Returns:
        ``ActionResult``.

    Raises:
        ValueError: an unpinned undo/restart plan with ``dry_run=False``.

    Example:
        ```python
        preview = run_action(credentials, plan_action(suggestion), dry_run=True)
        # ... pause_flow_run for approval showing preview.diff ...
        done = run_action(credentials, preview.plan, dry_run=False)
        ```
    """
    from kubernetes.client import AppsV1Api

    if not dry_run:
        _require_pinned(plan)
    logger = task_logger(__name__)
    try:
        with kubernetes_api_client(credentials) as client:
            result = execute_plan(AppsV1Api(client), plan, dry_run=dry_run)
    except Exception as exc:
        logger.warning("%s failed: %s", plan.command, one_line_reason(exc))
        raise
    logger.info("%s", result.summary)
    return result
