"""Which remediation may run: a ``Suggestion`` parsed and validated into an ``ActionPlan``.

``plan_action`` accepts only automatable, low-risk suggestions whose command is exactly
``kubectl rollout restart|undo deployment/<name>`` or ``kubectl scale deployment/<name>
--replicas=<n>`` (as ``tasks.incidents.remediation`` writes them), with valid
Kubernetes names; ``ActionResult`` is what applying a plan returns
(``tasks.incidents.k8s_actions.deployments``).

Example:
    ```python
    from tasks.incidents.k8s_actions.planning import plan_action
    from tasks.incidents.signals import Suggestion

    suggestion = Suggestion(rule="crashloop-after-rollout", type="rollback",
                            target="deployment:checkout",
                            command="kubectl rollout undo deployment/checkout -n shop",
                            risk="low", automatable=True, reason="crash loop after a rollout")
    plan = plan_action(suggestion)
    print(plan.action, plan.name, plan.namespace)  # rollout_undo checkout shop
    ```
"""

from __future__ import annotations

import re
import shlex
from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator

from tasks.incidents.signals import Suggestion

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
        from tasks.incidents.k8s_actions.planning import plan_action
        from tasks.incidents.signals import Suggestion

        suggestion = Suggestion(rule="connection-pool-scale-callers", type="scale",
                                target="deployment:orders",
                                command="kubectl scale deployment/orders -n shop --replicas=2",
                                risk="low", automatable=True, reason="each replica holds a pool")
        print(plan_action(suggestion).replicas)  # 2
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
