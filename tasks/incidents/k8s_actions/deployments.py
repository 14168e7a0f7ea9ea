"""Apply an ``ActionPlan`` to a Deployment through the ``apps/v1`` API, as kubectl does.

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

``run_action`` is the retried task the ``remediate`` flow calls with a
prefect-kubernetes ``KubernetesCredentials`` block (the sync client is built by
``tasks.clouds.kubernetes.kubernetes_api_client``; API failures are that module's
``KubernetesUnavailable`` (retried) / ``KubernetesApiError`` (not retried)).

Example:
    ```python
    from prefect import flow
    from prefect_kubernetes.credentials import KubernetesCredentials

    from tasks.incidents.k8s_actions.deployments import run_action
    from tasks.incidents.k8s_actions.planning import ActionPlan


    @flow
    def scale_checkout(replicas: int = 4) -> str:
        credentials = KubernetesCredentials.load("kubernetes")
        command = f"kubectl scale deployment/checkout -n shop --replicas={replicas}"
        plan = ActionPlan(action="scale", name="checkout", namespace="shop", replicas=replicas,
                          command=command)
        preview = run_action(credentials, plan, dry_run=True)
        print(preview.diff)
        return run_action(credentials, preview.plan, dry_run=False).summary


    print(scale_checkout())
    ```
"""

from __future__ import annotations

import difflib
import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from tasks.clouds.kubernetes import REQUEST_TIMEOUT, api_error, kubernetes_api_client
from tasks.common.retry import cloud_api_task, one_line_reason, task_logger
from tasks.incidents.k8s_actions.planning import (
    ActionError,
    ActionPlan,
    ActionResult,
    check_name,
    check_namespace,
    check_replicas,
)

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
        from kubernetes.client import AppsV1Api
        from prefect_kubernetes.credentials import KubernetesCredentials

        from tasks.clouds.kubernetes import kubernetes_api_client
        from tasks.incidents.k8s_actions.deployments import rollout_restart

        with kubernetes_api_client(KubernetesCredentials.load("kubernetes")) as client:
            result = rollout_restart(AppsV1Api(client), "payments", "shop", dry_run=False)
        print(result.summary)  # restarted deployment/payments -n shop
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
        from kubernetes.client import AppsV1Api
        from prefect_kubernetes.credentials import KubernetesCredentials

        from tasks.clouds.kubernetes import kubernetes_api_client
        from tasks.incidents.k8s_actions.deployments import rollout_undo

        with kubernetes_api_client(KubernetesCredentials.load("kubernetes")) as client:
            api = AppsV1Api(client)
            preview = rollout_undo(api, "checkout", "shop")  # dry run
            done = rollout_undo(api, "checkout", "shop",
                                to_replicaset=preview.plan.to_replicaset, dry_run=False)
        print(done.summary)
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
        from kubernetes.client import AppsV1Api
        from prefect_kubernetes.credentials import KubernetesCredentials

        from tasks.clouds.kubernetes import kubernetes_api_client
        from tasks.incidents.k8s_actions.deployments import scale

        with kubernetes_api_client(KubernetesCredentials.load("kubernetes")) as client:
            print(scale(AppsV1Api(client), "checkout", "shop", 4, dry_run=False).after)
        # {'replicas': 4}
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
        from kubernetes.client import AppsV1Api
        from prefect_kubernetes.credentials import KubernetesCredentials

        from tasks.clouds.kubernetes import kubernetes_api_client
        from tasks.incidents.k8s_actions.deployments import execute_plan
        from tasks.incidents.k8s_actions.planning import ActionPlan

        plan = ActionPlan(action="rollout_restart", name="payments", namespace="shop",
                          command="kubectl rollout restart deployment/payments -n shop")
        with kubernetes_api_client(KubernetesCredentials.load("kubernetes")) as client:
            api = AppsV1Api(client)
            preview = execute_plan(api, plan)
            done = execute_plan(api, preview.plan, dry_run=False)
        print(preview.diff, done.summary)
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
    kubernetes_credentials: KubernetesCredentials, plan: ActionPlan, dry_run: bool = True
) -> ActionResult:
    """Execute one plan against the cluster the credentials point at.

    The client comes from ``tasks.clouds.kubernetes.kubernetes_api_client`` (the block's
    kubeconfig, else in-cluster, else ~/.kube/config). Retried on throttling, 5xx and
    connection failures only. A real run (``dry_run=False``) of an undo or restart needs
    the *pinned* plan of a dry run (``result.plan``): a retried or repeated execution of
    it is then a no-op instead of a second rollback / restart.

    Args:
        kubernetes_credentials: prefect-kubernetes ``KubernetesCredentials``.
        plan: from ``plan_action`` (dry run) or a dry run's ``result.plan``.
        dry_run: validate on the server without persisting (default).

    Returns:
        ``ActionResult``.

    Raises:
        ValueError: an unpinned undo/restart plan with ``dry_run=False``.

    Example:
        ```python
        from prefect import flow
        from prefect_kubernetes.credentials import KubernetesCredentials

        from tasks.incidents.k8s_actions.deployments import run_action
        from tasks.incidents.k8s_actions.planning import plan_action
        from tasks.incidents.signals import Suggestion


        @flow
        def restart_payments() -> str:
            credentials = KubernetesCredentials.load("kubernetes")
            suggestion = Suggestion(rule="upstream-timeouts", type="restart",
                                    target="deployment:payments",
                                    command="kubectl rollout restart deployment/payments -n shop",
                                    risk="low", automatable=True, reason="payments times out")
            preview = run_action(credentials, plan_action(suggestion), dry_run=True)
            # ... pause_flow_run for approval showing preview.diff ...
            return run_action(credentials, preview.plan, dry_run=False).summary


        print(restart_payments())
        ```
    """
    from kubernetes.client import AppsV1Api

    if not dry_run:
        _require_pinned(plan)
    logger = task_logger(__name__)
    try:
        with kubernetes_api_client(kubernetes_credentials) as client:
            result = execute_plan(AppsV1Api(client), plan, dry_run=dry_run)
    except Exception as exc:
        logger.warning("%s failed: %s", plan.command, one_line_reason(exc))
        raise
    logger.info("%s", result.summary)
    return result
