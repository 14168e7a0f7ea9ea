"""Approval before changing the world (DESIGN.md, "Changing the world").

A destructive flow renders its plan, publishes it as a markdown artifact and pauses
with ``pause_flow_run(wait_for_input=Approval)``. A person resumes it from the
Prefect UI; an agent through the bridge's ``resume_flow_run`` tool.
"""

from __future__ import annotations

from prefect.artifacts import create_markdown_artifact
from prefect.flow_runs import pause_flow_run
from prefect.input import RunInput


class Approval(RunInput):
    """What the approver answers: apply the plan or not, and why."""

    approve: bool
    comment: str | None = None


def request_approval(plan_markdown: str, key: str, timeout_seconds: int = 3600) -> Approval:
    """Publish the plan and pause until someone approves or rejects it.

    Args:
        plan_markdown: the plan, exactly as it will be applied.
        key: artifact key for the plan (stable per flow, e.g. ``vpn-plan``).
        timeout_seconds: how long to wait before the run fails as not approved.

    Returns:
        The Approval given when the run was resumed.
    """
    create_markdown_artifact(key=key, markdown=plan_markdown, description="Plan awaiting approval")
    return pause_flow_run(wait_for_input=Approval, timeout=timeout_seconds, key=key)
