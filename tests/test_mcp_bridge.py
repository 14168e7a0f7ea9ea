"""The MCP bridge with the official client: in-process, over stdio and over HTTP."""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import json
import os
import socket
import subprocess
import threading
import time
from datetime import UTC, datetime

import httpx
import httpx2
import pytest
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from prefect import flow

from flows.approval import request_approval
from flows.registry import REGISTRY
from tests.conftest import BIN, REPO

REQUIREMENT = {"vcpus": 4, "memory_gib": 16}
TOKEN = "canary-token-0123456789abcdef"


def run(coro):
    return asyncio.run(coro)


def server():
    from mcp_bridge.server import build_server

    return build_server()


async def _tools(client):
    return {t.name: t for t in (await client.list_tools()).tools}


def test_one_tool_per_flow_with_prefect_schemas_and_hints(serve_api):
    async def go():
        async with Client(server()) as client:
            return await _tools(client)

    tools = run(go())
    assert set(tools) == {s.tool_name for s in REGISTRY} | {
        "get_flow_run",
        "list_flow_runs",
        "cancel_flow_run",
        "resume_flow_run",
    }
    for spec in REGISTRY:
        tool = tools[spec.tool_name]
        schema = dict(tool.input_schema)
        props = dict(schema["properties"])
        wait = props.pop("wait_seconds")
        assert wait["type"] == "number" and wait["minimum"] == 0 and wait["default"] > 0
        assert {"type": "string", "maxLength": 200} in props.pop("idempotency_key")["anyOf"]
        # one property per parameter of the flow function; required = no default
        params = inspect.signature(spec.flow.fn).parameters
        assert list(props) == list(params), spec.name
        required = [n for n, p in params.items() if p.default is inspect.Parameter.empty]
        assert schema.get("required", []) == required, spec.name
        for name, param in params.items():
            if param.default is not inspect.Parameter.empty:
                assert "default" in props[name], (spec.name, name)
        assert tool.annotations.read_only_hint == (spec.read_only and not spec.destructive)
        assert tool.annotations.destructive_hint == spec.destructive
        assert tool.description.startswith(spec.summary)
        out = tool.output_schema
        assert {"flow_run_id", "state", "result", "ui_url", "artifact_keys"} <= set(
            out["properties"]
        )
    # the bounds a model must respect, as compare-compute declares them
    compare = tools["compare_compute"].input_schema
    props = compare["properties"]
    assert compare["required"] == ["vcpus", "memory_gib"]
    assert _bounds(props["vcpus"]) == ("integer", 1, None, 1024)
    assert _bounds(props["memory_gib"]) == ("number", None, 0, 32768)
    assert _bounds(props["hours_per_month"]) == ("number", None, 0, 744)
    assert props["hours_per_month"]["default"] == 730
    assert _bounds(props["max_options"]) == ("integer", 1, None, 500)
    assert props["providers"]["type"] == "array"
    assert props["providers"]["items"]["enum"] == ["aws", "gcp", "azure"]
    assert props["spot_allowed"] == {**props["spot_allowed"], "type": "boolean", "default": False}
    assert {"type": "null"} in props["region"]["anyOf"]  # optional, and may be null
    assert tools["remediate"].input_schema["required"] == ["suggestion"]
    # the result schema is the flow's result model
    out = json.dumps(tools["compare_compute"].output_schema)
    assert "ComputeComparison" in out and "recommendation" in out


def _bounds(prop: dict) -> tuple:
    """(type, minimum, exclusiveMinimum, maximum) of a JSON-schema property."""
    return (prop["type"], prop.get("minimum"), prop.get("exclusiveMinimum"), prop.get("maximum"))


def test_compare_compute_returns_structured_result(serve_api):
    progress: list = []

    async def on_progress(done, total, message):
        progress.append(message)

    async def go():
        async with Client(server()) as client:
            return await client.call_tool(
                "compare_compute",
                {**REQUIREMENT, "wait_seconds": 120},
                progress_callback=on_progress,
            )

    res = run(go())
    assert not res.is_error, res.content
    out = res.structured_content
    assert out["state"] == "Completed" and out["finished"] is True
    assert out["flow"] == "compare-compute" and out["deployment"] == "compare-compute/opsflow"
    assert out["duration_seconds"] > 0
    assert {"compare-compute-options", "compare-compute-summary"} <= set(out["artifact_keys"])
    assert out["ui_url"].endswith(f"/runs/flow-run/{out['flow_run_id']}")
    result = out["result"]
    assert result["options"][0]["monthly_usd"] <= result["options"][-1]["monthly_usd"]
    assert result["recommendation"]["reason"]
    assert any("started flow run" in m for m in progress)


def test_unfinished_run_returns_id_then_polls_and_lists(serve_api):
    async def go():
        async with Client(server()) as client:
            first = await client.call_tool("compare_compute", {**REQUIREMENT, "wait_seconds": 0})
            run_id = first.structured_content["flow_run_id"]
            assert first.structured_content["finished"] is False
            assert "get_flow_run" in first.structured_content["next_step"]
            for _ in range(240):
                got = await client.call_tool("get_flow_run", {"flow_run_id": run_id})
                content = got.structured_content
                # logs reach the API in batches, shortly after the state does
                if content["finished"] and any("Finished in state" in ln for ln in content["logs"]):
                    break
                await asyncio.sleep(0.5)
            listed = await client.call_tool(
                "list_flow_runs", {"flow": "compare-compute", "state": "completed", "limit": 50}
            )
            return got.structured_content, listed.structured_content, run_id

    details, listed, run_id = run(go())
    assert details["state"] == "Completed"
    assert details["result"]["options"]
    assert details["parameters"]["vcpus"] == 4
    assert any("Finished in state Completed" in line for line in details["logs"])
    assert run_id in {r["flow_run_id"] for r in listed["runs"]}
    assert {r["flow"] for r in listed["runs"]} == {"compare-compute"}


def test_same_idempotency_key_returns_the_same_run(serve_api):
    async def go():
        async with Client(server()) as client:
            args = {**REQUIREMENT, "wait_seconds": 0, "idempotency_key": f"k-{time.time()}"}
            a = await client.call_tool("compare_compute", args)
            b = await client.call_tool("compare_compute", args)
            return a.structured_content["flow_run_id"], b.structured_content["flow_run_id"]

    a, b = run(go())
    assert a == b


@pytest.mark.parametrize(
    ("args", "field"),
    [
        ({"vcpus": -2, "memory_gib": 4}, "vcpus"),
        ({"memory_gib": 4}, "vcpus"),
        ({"vcpus": 2, "memory_gib": 4, "gpu": {"type": "voodoo2"}}, "gpu"),
        ({"vcpus": 2, "memory_gib": 4, "providers": ["oracle"]}, "providers"),
    ],
)
def test_invalid_arguments_are_tool_errors_naming_the_field(serve_api, args, field):
    since = datetime.now(UTC)

    async def go():
        async with Client(server()) as client:
            return await client.call_tool("compare_compute", args)

    res = run(go())
    assert res.is_error
    assert field in res.content[0].text
    assert _runs_since(serve_api.api_url, since) == []  # nothing was started


def test_unknown_tool_is_an_error(serve_api):
    async def go():
        async with Client(server()) as client:
            return await client.call_tool("drop_all_tables", {})

    res = run(go())
    assert res.is_error and "drop_all_tables" in res.content[0].text


def test_unreachable_prefect_api_is_a_tool_error():
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings({PREFECT_API_URL: "http://127.0.0.1:9/api"}):

        async def go():
            async with Client(server()) as client:
                return await client.call_tool("compare_compute", REQUIREMENT)

        res = run(go())
    assert res.is_error
    assert "unreachable" in res.content[0].text and "Traceback" not in res.content[0].text


@flow(name="bridge-test-failing")
def _failing_flow():
    raise RuntimeError("the VPN peer rejected the proposal")


@flow(name="bridge-test-approval")
def _approval_flow() -> dict:
    answer = request_approval(
        "## Plan\n- create 1 thing", key="bridge-test-plan", timeout_seconds=120
    )
    return {"approved": answer.approve, "comment": answer.comment}


def test_failed_run_reports_state_and_message_without_traceback(serve_api):
    state = _failing_flow(return_state=True)
    assert state.is_failed()
    run_id = str(state.state_details.flow_run_id)

    async def go():
        async with Client(server()) as client:
            return await client.call_tool("get_flow_run", {"flow_run_id": run_id})

    out = run(go()).structured_content
    assert out["state"] == "Failed" and out["finished"]
    assert "the VPN peer rejected the proposal" in out["message"]
    assert "Traceback" not in out["message"] and 'File "' not in out["message"]
    assert out["result"] is None


def _start_in_thread(fn):
    ctx = contextvars.copy_context()
    box: dict = {}
    thread = threading.Thread(
        target=lambda: box.setdefault("state", ctx.run(fn, return_state=True))
    )
    thread.start()
    return thread, box


def _wait_paused(name: str):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowFilter, FlowFilterName
    from prefect.client.schemas.sorting import FlowRunSort

    async def find():
        async with get_client() as client:
            for _ in range(240):
                runs = await client.read_flow_runs(
                    flow_filter=FlowFilter(name=FlowFilterName(any_=[name])),
                    sort=FlowRunSort.EXPECTED_START_TIME_DESC,
                    limit=1,
                )
                if runs and runs[0].state.is_paused():
                    return str(runs[0].id)
                await asyncio.sleep(0.25)
        raise TimeoutError("flow never paused")

    return run(find())


@pytest.mark.parametrize("approve", [True, False])
def test_resume_flow_run_approves_or_rejects_a_paused_run(serve_api, approve):
    thread, box = _start_in_thread(_approval_flow)
    run_id = _wait_paused("bridge-test-approval")

    async def go():
        async with Client(server()) as client:
            got = await client.call_tool("get_flow_run", {"flow_run_id": run_id})
            assert "resume_flow_run" in got.structured_content["next_step"]
            assert "bridge-test-plan" in got.structured_content["artifact_keys"]
            return await client.call_tool(
                "resume_flow_run",
                {"flow_run_id": run_id, "approve": approve, "comment": "checked by test"},
            )

    res = run(go())
    assert not res.is_error, res.content
    thread.join(60)
    assert box["state"].result() == {"approved": approve, "comment": "checked by test"}

    async def again():
        async with Client(server()) as client:
            return await client.call_tool(
                "resume_flow_run", {"flow_run_id": run_id, "approve": True}
            )

    res = run(again())
    assert res.is_error and "not paused" in res.content[0].text


def test_cancel_flow_run_cancels_a_scheduled_run(serve_api):
    from datetime import UTC, datetime, timedelta

    from prefect.client.orchestration import get_client
    from prefect.states import Scheduled

    async def go():
        async with get_client() as client:
            dep = await client.read_deployment_by_name("compare-compute/opsflow")
            fr = await client.create_flow_run_from_deployment(
                dep.id,
                parameters=REQUIREMENT,
                state=Scheduled(scheduled_time=datetime.now(UTC) + timedelta(hours=1)),
            )
        async with Client(server()) as mcp_client:
            res = await mcp_client.call_tool("cancel_flow_run", {"flow_run_id": str(fr.id)})
            bad = await mcp_client.call_tool("cancel_flow_run", {"flow_run_id": "not-a-uuid"})
            return res, bad

    res, bad = run(go())
    assert not res.is_error, res.content
    assert res.structured_content["state"] in {"Cancelled", "Cancelling"}
    assert bad.is_error and "not a UUID" in bad.content[0].text


# --- stdio ---------------------------------------------------------------------------


def _stdio_params(home, **env) -> StdioServerParameters:
    base = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    return StdioServerParameters(
        command=str(BIN / "opsflow"),
        args=["mcp"],
        env={**base, "OPSFLOW_HOME": str(home), **env},
        cwd=str(REPO),
    )


def test_stdio_bridge_reuses_running_serve(serve, opsflow_home):
    async def go():
        async with Client(_stdio_params(opsflow_home), read_timeout_seconds=180) as client:
            tools = await _tools(client)
            res = await client.call_tool("compare_compute", {**REQUIREMENT, "wait_seconds": 120})
            return tools, res

    tools, res = run(go())
    assert "compare_compute" in tools
    assert res.structured_content["state"] == "Completed"
    assert res.structured_content["ui_url"].startswith(serve.ui_url)


def test_stdio_bridge_starts_its_own_prefect_when_none_runs(tmp_path):
    from opsflow import local_server

    async def go():
        async with Client(_stdio_params(tmp_path), read_timeout_seconds=300) as client:
            res = await client.call_tool("compare_compute", {**REQUIREMENT, "wait_seconds": 120})
            return res

    res = run(go())
    assert res.structured_content["state"] == "Completed", res.content
    # the serve it started went away with it
    os.environ["OPSFLOW_HOME"], old = str(tmp_path), os.environ["OPSFLOW_HOME"]
    try:
        deadline = time.monotonic() + 60
        while local_server.lock_is_held() and time.monotonic() < deadline:
            time.sleep(0.3)
        assert not local_server.lock_is_held()
    finally:
        os.environ["OPSFLOW_HOME"] = old


# --- HTTP ----------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _mcp_http(serve, home, *args, token: str | None = TOKEN) -> subprocess.Popen:
    env = {**os.environ, "OPSFLOW_HOME": str(home), "PREFECT_API_URL": serve.api_url}
    env.pop("OPSFLOW_MCP_TOKEN", None)
    if token:
        env["OPSFLOW_MCP_TOKEN"] = token
    return subprocess.Popen(
        [str(BIN / "opsflow"), "mcp", *args],
        env=env,
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_port(port: int, proc: subprocess.Popen, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(proc.stderr.read())
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise TimeoutError(f"port {port} never opened")


def _runs_since(api_url: str, since: datetime, flow: str = "compare-compute") -> list[str]:
    """Ids of the runs of ``flow`` created to start between ``since`` and now (a run the
    bridge starts is scheduled for the moment it is created; a run another test scheduled
    for later is not one of them), however many runs exist."""
    window = {"after_": since.isoformat(), "before_": datetime.now(UTC).isoformat()}
    body = {
        "flows": {"name": {"any_": [flow]}},
        "flow_runs": {"expected_start_time": window},
        "limit": 200,
    }
    runs = httpx.post(f"{api_url}/flow_runs/filter", json=body, timeout=10)
    runs.raise_for_status()
    return [r["id"] for r in runs.json()]


def test_http_requires_the_bearer_token(serve, opsflow_home):
    port = _free_port()
    proc = _mcp_http(serve, opsflow_home, "--http", f"127.0.0.1:{port}")
    try:
        _wait_port(port, proc)
        url = f"http://127.0.0.1:{port}/mcp"
        since = datetime.now(UTC)
        call = {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "tools/call",
            "params": {"name": "compare_compute", "arguments": REQUIREMENT},
        }
        headers = {"Accept": "application/json, text/event-stream"}
        for auth in (None, "Bearer wrong-token-wrong-token", f"Basic {TOKEN}", TOKEN):
            h = dict(headers, **({"Authorization": auth} if auth else {}))
            r = httpx.post(url, json=call, headers=h, timeout=10)
            assert r.status_code == 401, (auth, r.text)
            assert TOKEN not in r.text
        assert _runs_since(serve.api_url, since) == []  # nothing started

        async def go():
            http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {TOKEN}"}, timeout=180)
            async with Client(streamable_http_client(url, http_client=http)) as client:
                tools = await _tools(client)
                res = await client.call_tool(
                    "compare_compute", {**REQUIREMENT, "wait_seconds": 120}
                )
                return tools, res

        tools, res = run(go())
        assert "compare_compute" in tools
        assert res.structured_content["state"] == "Completed"
        # the filter sees the one run the authorized call started
        assert _runs_since(serve.api_url, since) == [res.structured_content["flow_run_id"]]
    finally:
        proc.terminate()
        proc.wait(30)


def test_http_refuses_to_start_without_a_token(serve, opsflow_home):
    port = _free_port()
    proc = _mcp_http(serve, opsflow_home, "--http", f"127.0.0.1:{port}", token=None)
    assert proc.wait(60) == 2
    assert "OPSFLOW_MCP_TOKEN" in proc.stderr.read()
    proc = _mcp_http(
        serve, opsflow_home, "--http", f"0.0.0.0:{port}", "--insecure-local", token=None
    )
    assert proc.wait(60) == 2
    assert "loopback" in proc.stderr.read()


def test_http_insecure_local_serves_loopback_without_token(serve, opsflow_home):
    port = _free_port()
    proc = _mcp_http(
        serve, opsflow_home, "--http", f"127.0.0.1:{port}", "--insecure-local", token=None
    )
    try:
        _wait_port(port, proc)

        async def go():
            async with Client(f"http://127.0.0.1:{port}/mcp") as client:
                return await _tools(client)

        assert "compare_compute" in run(go())
    finally:
        proc.terminate()
        proc.wait(30)
