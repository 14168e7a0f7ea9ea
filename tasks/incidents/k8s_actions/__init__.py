"""The only changes the ``remediate`` flow may make: restart, undo or scale a Deployment.

``planning`` turns a ``Suggestion`` into a validated ``ActionPlan`` (``plan_action``),
refusing anything that is not automatable, not low risk, or not one of the three
kubectl commands below. ``deployments`` applies a plan through the ``apps/v1`` API of
the official ``kubernetes`` client, as the kubectl command of the same name does
(``rollout_restart``, ``rollout_undo``, ``scale``, ``execute_plan``), and holds
``run_action``, the retried task the ``remediate`` flow calls. Every action defaults to
a server-side dry run (``dryRun=All``) and returns a *pinned* plan: executing it again
is a no-op.

Example:
    ```python
    from prefect import flow
    from prefect_kubernetes.credentials import KubernetesCredentials

    from tasks.incidents.k8s_actions import plan_action, run_action
    from tasks.incidents.signals import Suggestion


    @flow
    def preview_restart() -> str:
        suggestion = Suggestion(rule="upstream-timeouts", type="restart",
                                target="deployment:payments",
                                command="kubectl rollout restart deployment/payments -n shop",
                                risk="low", automatable=True, reason="payments times out")
        credentials = KubernetesCredentials.load("kubernetes")
        return run_action(credentials, plan_action(suggestion), dry_run=True).diff


    print(preview_restart())
    ```
"""

from tasks.incidents.k8s_actions.deployments import (
    execute_plan,
    rollout_restart,
    rollout_undo,
    run_action,
    scale,
)
from tasks.incidents.k8s_actions.planning import (
    ActionError,
    ActionPlan,
    ActionResult,
    check_name,
    check_namespace,
    check_replicas,
    plan_action,
)

__all__ = [
    "ActionError",
    "ActionPlan",
    "ActionResult",
    "check_name",
    "check_namespace",
    "check_replicas",
    "execute_plan",
    "plan_action",
    "rollout_restart",
    "rollout_undo",
    "run_action",
    "scale",
]
