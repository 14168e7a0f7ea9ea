"""Apply one low-risk remediation through the Kubernetes API, only after approval."""

from __future__ import annotations

from typing import Annotated, Literal

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from pydantic import BaseModel, Field

from flows.approval import request_approval
from flows.credentials import load_block
from tasks.incidents.k8s_actions.deployments import run_action
from tasks.incidents.k8s_actions.planning import ActionPlan, ActionResult, plan_action
from tasks.incidents.signals import Suggestion

PLAN_KEY = "remediate-plan"
RESULT_KEY = "remediate-result"


class RemediationResult(BaseModel):
    """Result of ``remediate``."""

    status: Literal["planned", "applied", "rejected"]
    plan: ActionPlan
    preview: ActionResult = Field(description="The server-side dry run (dryRun=All)")
    applied: ActionResult | None = None
    approver_comment: str | None = None


@task(name="plan-remediation", cache_policy=NO_CACHE, persist_result=False)
def make_plan(suggestion: Suggestion) -> ActionPlan:
    """Turn a suggestion into a validated call; refuses anything not low-risk automatable."""
    return plan_action(suggestion)


def render_plan(plan: ActionPlan, preview: ActionResult, dry_run: bool) -> str:
    mode = "dry run only: nothing will change" if dry_run else "will be applied on approval"
    return (
        f"# Remediation plan ({mode})\n\n"
        f"**Command:** `{plan.command}`\n\n"
        f"**Target:** deployment `{plan.namespace}/{plan.name}` ({plan.action})\n\n"
        f"**Server-side dry run:** {preview.summary}\n\n"
        f"```diff\n{preview.diff or '(no change)'}\n```\n\n"
        "Resume this run with `approve: true` to apply exactly this change, or "
        "`approve: false` to reject it.\n"
    )


@flow(name="remediate", persist_result=True, result_serializer="json", log_prints=True)
def remediate(
    suggestion: Suggestion,
    kubernetes_credentials_block: str | None = None,
    dry_run: bool = True,
    approval_timeout_seconds: Annotated[int, Field(ge=60, le=7 * 24 * 3600)] = 3600,
) -> RemediationResult:
    """Execute one remediation suggestion (rollout restart/undo, scale) after approval.

    Only low-risk, automatable suggestions from ``detect-incidents`` are accepted. The
    change is first validated by the Kubernetes API server (``dryRun=All``); with
    ``dry_run`` (the default) the run stops there. Otherwise it publishes the plan and
    pauses until a person (Prefect UI) or an agent (the bridge's ``resume_flow_run``)
    approves, then applies exactly the validated change.

    Args:
        suggestion: one entry of an incident's ``suggestions`` (detect-incidents result).
        kubernetes_credentials_block: prefect-kubernetes KubernetesCredentials block;
            the local kubeconfig if omitted.
        dry_run: validate and show the change, apply nothing.
        approval_timeout_seconds: how long to wait for approval before failing.

    Returns:
        RemediationResult: the plan, the server-side preview and, if applied, the result.

    Example:
        ```python
        from flows.detect_incidents import detect_incidents
        from flows.remediate import remediate

        report = detect_incidents(kubernetes=[{"namespace": "shop"}])
        result = remediate(suggestion=report.incidents[0].suggestions[0], dry_run=False)
        print(result.status)  # "applied" once a person approved it in the Prefect UI
        ```
    """
    logger = get_run_logger()
    creds = load_block(kubernetes_credentials_block, "kubernetes_credentials_block", "kubernetes")
    plan = make_plan(suggestion)
    preview = run_action(creds, plan, dry_run=True)
    markdown = render_plan(preview.plan, preview, dry_run)
    if dry_run:
        create_markdown_artifact(key=PLAN_KEY, markdown=markdown, description="Dry run")
        print(f"dry run: {preview.summary}")
        return RemediationResult(status="planned", plan=preview.plan, preview=preview)
    approval = request_approval(markdown, key=PLAN_KEY, timeout_seconds=approval_timeout_seconds)
    if not approval.approve:
        logger.info("remediation rejected: %s", approval.comment or "no comment")
        return RemediationResult(
            status="rejected", plan=preview.plan, preview=preview, approver_comment=approval.comment
        )
    applied = run_action(creds, preview.plan, dry_run=False)
    create_markdown_artifact(
        key=RESULT_KEY,
        markdown=f"# Applied\n\n`{preview.plan.command}`\n\n{applied.summary}\n",
        description="Remediation applied",
    )
    print(f"applied: {applied.summary}")
    return RemediationResult(
        status="applied",
        plan=preview.plan,
        preview=preview,
        applied=applied,
        approver_comment=approval.comment,
    )
