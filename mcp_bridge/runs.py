"""Flow runs on a Prefect API: start, watch, describe, cancel, resume.

Nothing here knows about MCP; ``mcp_bridge.server`` turns these into tools.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, contextmanager
from typing import Any
from uuid import UUID

import anyio
import httpx
from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import FlowRun
from prefect.deployments import run_deployment
from prefect.exceptions import ObjectNotFound, PrefectHTTPStatusError
from prefect.settings import get_current_settings
from prefect.states import Cancelling

from mcp_bridge.models import FlowRunDetails, FlowRunOutcome, FlowRunSummary

# Poll fast while a run is young (most finish in seconds), then back off so many
# waiting calls do not flood the API.
POLL_FIRST_SECONDS = 0.1
POLL_MAX_SECONDS = 1.0
Progress = Callable[[float, float, str], Awaitable[None]]


class BridgeError(Exception):
    """A failure to report to the caller as one plain sentence."""


def api_url() -> str:
    return str(get_current_settings().api.url or "")


def ui_base() -> str | None:
    ui = get_current_settings().ui_url
    return str(ui).rstrip("/") if ui else None


def run_ui_url(flow_run_id: UUID | str) -> str | None:
    base = ui_base()
    return f"{base}/runs/flow-run/{flow_run_id}" if base else None


def _api_error(exc: Exception) -> BridgeError:
    if isinstance(exc, httpx.TransportError):
        return BridgeError(f"the Prefect API at {api_url()} is unreachable ({type(exc).__name__})")
    if isinstance(exc, PrefectHTTPStatusError):
        try:
            body = exc.response.json()
            detail = body.get("detail") or body.get("exception_detail") or ""
        except ValueError:
            detail = ""
        return BridgeError(
            f"the Prefect API at {api_url()} answered {exc.response.status_code}"
            + (f": {str(detail)[:300]}" if detail else "")
        )
    return BridgeError(f"Prefect API error: {type(exc).__name__}")


@contextmanager
def _api_errors():
    """Turn transport and HTTP failures of the Prefect API into one-sentence BridgeErrors."""
    try:
        yield
    except (httpx.TransportError, PrefectHTTPStatusError) as exc:
        raise _api_error(exc) from None


@asynccontextmanager
async def _client() -> AsyncIterator[Any]:
    """A Prefect client whose failures surface as BridgeErrors."""
    with _api_errors():
        async with get_client() as client:
            yield client


async def start_run(
    deployment: str,
    parameters: dict[str, Any],
    idempotency_key: str,
    tags: tuple[str, ...] = ("mcp",),
) -> FlowRun:
    """Create a run of ``deployment`` (``flow/deployment``) and return without waiting.

    The idempotency key makes a retried call return the run it already started.
    """
    try:
        with _api_errors():
            return await run_deployment(
                name=deployment,
                parameters=parameters,
                timeout=0,
                idempotency_key=idempotency_key,
                as_subflow=False,
                tags=list(tags),
            )
    except ObjectNotFound:
        raise BridgeError(
            f"deployment {deployment!r} is not on the Prefect API at {api_url()}; "
            "start `opsflow serve` there or deploy it with `prefect deploy`"
        ) from None


async def wait_for_run(
    flow_run_id: UUID, wait_seconds: float, progress: Progress | None = None
) -> FlowRun:
    """Poll the run until it is final, paused, or ``wait_seconds`` have passed."""
    started = time.monotonic()
    last_state = None
    interval = POLL_FIRST_SECONDS
    async with _client() as client:
        while True:
            run = await client.read_flow_run(flow_run_id)
            elapsed = time.monotonic() - started
            state = run.state
            if progress and state and state.name != last_state:
                last_state = state.name
                await progress(min(elapsed, wait_seconds), wait_seconds, f"{state.name}")
            if state and (state.is_final() or state.is_paused()):
                return run
            if elapsed >= wait_seconds:
                return run
            await anyio.sleep(min(interval, max(0.0, wait_seconds - elapsed)))
            interval = min(interval * 1.25, POLL_MAX_SECONDS)


def _duration(run: FlowRun) -> float | None:
    if run.start_time and run.end_time:
        return round((run.end_time - run.start_time).total_seconds(), 3)
    if run.total_run_time:
        return round(run.total_run_time.total_seconds(), 3)
    return None


async def _filter(client, path: str, body: dict[str, Any]) -> list[dict[str, Any]]:
    """POST a ``/<object>/filter`` query with every field explicit.

    prefect 3.8.8's typed client methods send null limit/sort/sub-filters, which its
    server rejects with 422 under fastapi 0.151+; the bridge sends complete bodies so
    it keeps working against any server it is pointed at.
    """
    response = await client.request("POST", path, json=body)
    return response.json()


async def _artifact_keys(client, flow_run_id: UUID) -> list[str]:
    rows = await _filter(
        client,
        "/artifacts/filter",
        {
            "artifacts": {"flow_run_id": {"any_": [str(flow_run_id)]}},
            "limit": 200,
            "offset": 0,
            "sort": "KEY_ASC",
        },
    )
    return sorted({row["key"] for row in rows if row.get("key")})


async def _result(run: FlowRun) -> Any:
    if not run.state or not run.state.is_completed():
        return None
    try:
        value = await run.state.aresult(raise_on_failure=False)
    except Exception as exc:  # noqa: BLE001 - report, do not crash the tool
        raise BridgeError(
            f"run {run.id} completed but its result could not be read ({type(exc).__name__}); "
            "the bridge needs the same result storage as the runner"
        ) from None
    return value.model_dump(mode="json") if hasattr(value, "model_dump") else value


def _next_step(run: FlowRun) -> str | None:
    state = run.state
    if state is None or not (state.is_final() or state.is_paused()):
        return f"call get_flow_run(flow_run_id='{run.id}') to poll"
    if state.is_paused():
        return f"review the plan, then resume_flow_run(flow_run_id='{run.id}', approve=...)"
    return None


async def describe(
    run: FlowRun,
    flow_name: str | None = None,
    deployment: str | None = None,
    outcome_cls: type[FlowRunOutcome] = FlowRunOutcome,
    **extra: Any,
):
    """Build the tool output for ``run``: state, duration, artifacts, link, result."""
    async with _client() as client:
        keys = await _artifact_keys(client, run.id)
        if flow_name is None:
            flow_name = (await client.read_flow(run.flow_id)).name
    state = run.state
    return outcome_cls(
        flow_run_id=str(run.id),
        flow_run_name=run.name,
        flow=flow_name,
        deployment=deployment,
        state=state.name if state else "Unknown",
        state_type=state.type.value if state else "UNKNOWN",
        finished=bool(state and state.is_final()),
        message=(state.message or None) if state else None,
        duration_seconds=_duration(run),
        artifact_keys=keys,
        ui_url=run_ui_url(run.id),
        next_step=_next_step(run),
        result=await _result(run),
        **extra,
    )


def _parse_id(flow_run_id: str) -> UUID:
    try:
        return UUID(flow_run_id)
    except ValueError:
        raise BridgeError(f"flow_run_id {flow_run_id!r} is not a UUID") from None


async def read_run(flow_run_id: str) -> FlowRun:
    run_id = _parse_id(flow_run_id)
    try:
        async with _client() as client:
            return await client.read_flow_run(run_id)
    except ObjectNotFound:
        raise BridgeError(f"no flow run {flow_run_id} on the Prefect API at {api_url()}") from None


async def details(flow_run_id: str, log_lines: int = 20) -> FlowRunDetails:
    run = await read_run(flow_run_id)
    async with _client() as client:
        logs = await _filter(
            client,
            "/logs/filter",
            {
                "logs": {"flow_run_id": {"any_": [str(run.id)]}},
                "limit": log_lines,
                "offset": 0,
                "sort": "TIMESTAMP_DESC",
            },
        )
    lines = [f"{log['timestamp'][11:19]} {log['message']}" for log in reversed(logs)]
    return await describe(
        run, outcome_cls=FlowRunDetails, parameters=dict(run.parameters or {}), logs=lines
    )


async def list_runs(flow: str | None, state: str | None, limit: int) -> list[FlowRunSummary]:
    body: dict[str, Any] = {"limit": limit, "offset": 0, "sort": "START_TIME_DESC"}
    if flow:
        body["flows"] = {"name": {"any_": [flow]}}
    if state:
        body["flow_runs"] = {"state": {"name": {"any_": [state.strip().capitalize()]}}}
    async with _client() as client:
        rows = await _filter(client, "/flow_runs/filter", body)
        runs = [FlowRun.model_validate(row) for row in rows]
        flow_ids = sorted({str(r.flow_id) for r in runs})
        flows = (
            await _filter(
                client,
                "/flows/filter",
                {
                    "flows": {"id": {"any_": flow_ids}},
                    "limit": 200,
                    "offset": 0,
                    "sort": "NAME_ASC",
                },
            )
            if flow_ids
            else []
        )
    names = {row["id"]: row["name"] for row in flows}
    return [
        FlowRunSummary(
            flow_run_id=str(r.id),
            flow_run_name=r.name,
            flow=names.get(str(r.flow_id), str(r.flow_id)),
            state=r.state.name if r.state else "Unknown",
            start_time=r.start_time.isoformat() if r.start_time else None,
            duration_seconds=_duration(r),
            ui_url=run_ui_url(r.id),
        )
        for r in runs
    ]


async def cancel(flow_run_id: str) -> FlowRun:
    run = await read_run(flow_run_id)
    if run.state and run.state.is_final():
        raise BridgeError(f"flow run {flow_run_id} already finished ({run.state.name})")
    async with _client() as client:
        await client.set_flow_run_state(run.id, Cancelling(message="cancelled via MCP"))
        return await client.read_flow_run(run.id)


async def resume(flow_run_id: str, approve: bool, comment: str | None) -> FlowRun:
    """Resume a run paused for approval with an Approval input (flows.approval)."""
    from prefect.exceptions import FlowPauseTimeout, NotPausedError
    from prefect.flow_runs import aresume_flow_run

    run = await read_run(flow_run_id)
    try:
        with _api_errors():
            await aresume_flow_run(run.id, run_input={"approve": approve, "comment": comment})
    except NotPausedError:
        state = run.state.name if run.state else "unknown"
        raise BridgeError(f"flow run {flow_run_id} is not paused (state {state})") from None
    except FlowPauseTimeout:
        raise BridgeError(f"flow run {flow_run_id} can no longer be resumed (timed out)") from None
    return await read_run(flow_run_id)
