"""Structured outputs of the bridge's tools."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field, create_model


class FlowRunOutcome(BaseModel):
    """Where a flow run stands; ``result`` is filled once it has completed."""

    flow_run_id: str
    flow_run_name: str
    flow: str
    deployment: str | None = None
    state: str = Field(description="State name: Scheduled, Running, Paused, Completed, Failed, ...")
    state_type: str
    finished: bool
    message: str | None = Field(default=None, description="The state's message (failure reason)")
    duration_seconds: float | None = None
    artifact_keys: list[str] = Field(default_factory=list)
    ui_url: str | None = None
    next_step: str | None = Field(default=None, description="What to call next, if anything")
    result: Any = None


class FlowRunDetails(FlowRunOutcome):
    parameters: dict[str, Any] = Field(default_factory=dict)
    logs: list[str] = Field(default_factory=list, description="Last log lines, oldest first")


class FlowRunSummary(BaseModel):
    flow_run_id: str
    flow_run_name: str
    flow: str
    state: str
    start_time: str | None = None
    duration_seconds: float | None = None
    ui_url: str | None = None


class FlowRunList(BaseModel):
    runs: list[FlowRunSummary]


def outcome_model(name: str, result_model: type[BaseModel]) -> type[FlowRunOutcome]:
    """A FlowRunOutcome whose ``result`` has the flow's own result schema."""
    return create_model(  # type: ignore[call-overload]
        f"{name}Run",
        __base__=FlowRunOutcome,
        result=(result_model | None, None),
    )
