"""Build the MCP server: one tool per registry flow plus run-management tools.

A flow tool's input schema is the flow's Prefect parameter schema (plus the
bridge's own ``wait_seconds`` and ``idempotency_key``), its output schema the
flow's result model wrapped in the run outcome. Nothing is written twice: both come
from the flow function's signature.
"""

from __future__ import annotations

import functools
import inspect
import typing
import uuid
from typing import Annotated, Any

from mcp.server import MCPServer
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.mcpserver.tools.base import Tool
from mcp.types import ToolAnnotations
from pydantic import BaseModel, Field
from pydantic_core import to_jsonable_python

from flows.registry import REGISTRY, FlowSpec
from mcp_bridge import runs
from mcp_bridge.models import FlowRunDetails, FlowRunList, FlowRunOutcome, outcome_model

DEFAULT_WAIT_SECONDS = 60.0
MAX_WAIT_SECONDS = 600.0
BRIDGE_PARAMS = ("wait_seconds", "idempotency_key")
_INSTANCE = uuid.uuid4().hex[:12]

WaitSeconds = Annotated[
    float,
    Field(
        ge=0,
        le=MAX_WAIT_SECONDS,
        description="How long to wait for the run to finish before returning its id and state",
    ),
]
IdempotencyKey = Annotated[
    str | None,
    Field(
        default=None,
        max_length=200,
        description="Same key, same run: pass it again to retry without starting a second run",
    ),
]


def _result_model(spec: FlowSpec) -> type[BaseModel]:
    hints = typing.get_type_hints(spec.flow.fn)
    model = hints.get("return")
    if not (inspect.isclass(model) and issubclass(model, BaseModel)):
        raise TypeError(f"flow {spec.name} must return a pydantic model, not {model!r}")
    return model


def _input_schema(spec: FlowSpec) -> dict[str, Any]:
    """The flow's Prefect parameter schema with the bridge's two arguments added."""
    schema = spec.flow.parameters.model_dump_for_openapi()
    props = schema.setdefault("properties", {})
    clash = set(BRIDGE_PARAMS) & set(props)
    if clash:
        raise ValueError(f"flow {spec.name} uses bridge argument names {sorted(clash)}")
    props["wait_seconds"] = {
        "type": "number",
        "minimum": 0,
        "maximum": MAX_WAIT_SECONDS,
        "default": DEFAULT_WAIT_SECONDS,
        "description": "Seconds to wait for the run to finish before returning its id and state",
    }
    props["idempotency_key"] = {
        "anyOf": [{"type": "string", "maxLength": 200}, {"type": "null"}],
        "default": None,
        "description": "Same key, same run: pass it again to retry without starting a second run",
    }
    return schema


def _idempotency_key(spec: FlowSpec, ctx: Context, given: str | None) -> str:
    if given:
        return f"mcp:{spec.name}:{given}"
    # A transport-level retry of the same request (same session, same request id)
    # must not start a second run.
    session = id(ctx.request_context.session) if ctx.request_context else 0
    return f"mcp:{spec.name}:{_INSTANCE}:{session}:{ctx.request_id}"


def _tool_errors(fn):
    """Report a BridgeError to the model as a tool error: one sentence, no traceback."""

    @functools.wraps(fn)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return await fn(*args, **kwargs)
        except runs.BridgeError as exc:
            raise ToolError(str(exc)) from None

    return wrapper


def flow_tool(spec: FlowSpec) -> Tool:
    """One MCP tool that runs ``spec``'s deployment and returns its outcome."""
    result_model = _result_model(spec)
    outcome_cls = outcome_model("".join(p.title() for p in spec.name.split("-")), result_model)
    flow_signature = inspect.signature(spec.flow.fn)
    hints = typing.get_type_hints(spec.flow.fn, include_extras=True)

    async def call_flow(ctx: Context, **arguments: Any) -> Any:
        wait_seconds = arguments.pop("wait_seconds", DEFAULT_WAIT_SECONDS)
        key = _idempotency_key(spec, ctx, arguments.pop("idempotency_key", None))
        parameters = to_jsonable_python(
            {k: v for k, v in arguments.items() if k in flow_signature.parameters}, by_alias=True
        )

        async def progress(done: float, total: float, message: str) -> None:
            await ctx.report_progress(done, total, f"{spec.name}: {message}")

        run = await runs.start_run(spec.full_deployment_name, parameters, key)
        await progress(0, wait_seconds, f"started flow run {run.id}")
        run = await runs.wait_for_run(run.id, wait_seconds, progress)
        return await runs.describe(
            run, spec.name, spec.full_deployment_name, outcome_cls=outcome_cls
        )

    sig_params = [
        inspect.Parameter("ctx", inspect.Parameter.KEYWORD_ONLY, annotation=Context),
    ]
    for name, param in flow_signature.parameters.items():
        sig_params.append(
            param.replace(kind=inspect.Parameter.KEYWORD_ONLY, annotation=hints[name])
        )
    sig_params.append(
        inspect.Parameter(
            "wait_seconds",
            inspect.Parameter.KEYWORD_ONLY,
            default=DEFAULT_WAIT_SECONDS,
            annotation=WaitSeconds,
        )
    )
    sig_params.append(
        inspect.Parameter(
            "idempotency_key",
            inspect.Parameter.KEYWORD_ONLY,
            default=None,
            annotation=IdempotencyKey,
        )
    )
    tool_fn = _tool_errors(call_flow)
    tool_fn.__signature__ = inspect.Signature(sig_params, return_annotation=outcome_cls)
    tool_fn.__annotations__ = {
        **{p.name: p.annotation for p in sig_params},
        "return": outcome_cls,
    }
    tool_fn.__name__ = spec.tool_name

    description = (spec.flow.description or spec.flow.fn.__doc__ or spec.name).strip()
    mode = "Changes real resources after approval." if spec.destructive else "Read-only."
    tool = Tool.from_function(
        tool_fn,
        name=spec.tool_name,
        title=spec.name,
        description=f"{inspect.cleandoc(description)}\n\n{mode} Runs deployment "
        f"'{spec.full_deployment_name}' on Prefect and waits up to wait_seconds.",
        annotations=ToolAnnotations(
            title=spec.name,
            read_only_hint=spec.read_only and not spec.destructive,
            destructive_hint=spec.destructive,
            idempotent_hint=False,
            open_world_hint=True,
        ),
        structured_output=True,
    )
    tool.parameters = _input_schema(spec)
    return tool


@_tool_errors
async def get_flow_run(flow_run_id: str, log_lines: int = 20) -> FlowRunDetails:
    """Get one flow run: state, result when done, artifact keys, last log lines and UI link."""
    return await runs.details(flow_run_id, max(0, min(log_lines, 200)))


@_tool_errors
async def list_flow_runs(
    flow: str | None = None, state: str | None = None, limit: int = 20
) -> FlowRunList:
    """List recent flow runs, newest first; filter by flow name and state name (e.g. Failed)."""
    return FlowRunList(runs=await runs.list_runs(flow, state, max(1, min(limit, 200))))


@_tool_errors
async def cancel_flow_run(flow_run_id: str) -> FlowRunOutcome:
    """Cancel a scheduled, pending, running or paused flow run."""
    return await runs.describe(await runs.cancel(flow_run_id))


@_tool_errors
async def resume_flow_run(
    flow_run_id: str, approve: bool, comment: str | None = None
) -> FlowRunOutcome:
    """Approve or reject a flow run paused for approval; it resumes and applies or stops."""
    return await runs.describe(await runs.resume(flow_run_id, approve, comment))


def _management_tools() -> list[Tool]:
    read = ToolAnnotations(read_only_hint=True, destructive_hint=False, open_world_hint=False)
    change = ToolAnnotations(read_only_hint=False, destructive_hint=True, open_world_hint=True)
    return [
        Tool.from_function(get_flow_run, annotations=read, structured_output=True),
        Tool.from_function(list_flow_runs, annotations=read, structured_output=True),
        Tool.from_function(cancel_flow_run, annotations=change, structured_output=True),
        Tool.from_function(resume_flow_run, annotations=change, structured_output=True),
    ]


def build_server() -> MCPServer:
    """The opsflow MCP server for the Prefect API this process is configured for.

    Run links use Prefect's UI address, which it derives from ``PREFECT_API_URL``.
    """
    tools = [flow_tool(spec) for spec in REGISTRY] + _management_tools()
    return MCPServer(
        name="opsflow",
        instructions=(
            "Each opsflow tool starts a Prefect flow run and waits up to wait_seconds. "
            "If the run is not finished, poll it with get_flow_run. Runs that change real "
            "resources pause for approval: show the plan to a person, then resume_flow_run."
        ),
        tools=tools,
    )
