"""`opsflow serve` as a real process: deployments, `prefect deployment run`, results, shutdown."""

from __future__ import annotations

import http.server
import json
import os
import re
import signal
import subprocess
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import BIN, REPO, free_port, start_serve, stop_serve, wait_ready


def _env(state, home: Path) -> dict:
    env = {**os.environ, "OPSFLOW_HOME": str(home), "PREFECT_API_URL": state.api_url}
    return env


def test_prefect_deployment_run_completes_and_result_is_readable_by_id(serve_api, opsflow_home):
    proc = subprocess.run(
        [
            str(BIN / "prefect"),
            "deployment",
            "run",
            "compare-compute/opsflow",
            "--params",
            json.dumps({"vcpus": 4, "memory_gib": 16, "spot_allowed": True}),
            "--watch",
            "--watch-timeout",
            "180",
        ],
        env=_env(serve_api, opsflow_home),
        capture_output=True,
        text=True,
        timeout=240,
        cwd=REPO,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    run_id = re.search(r"UUID: ([0-9a-f-]{36})", out).group(1)

    # Later, from another process: read the persisted result back by run id.
    from prefect.client.orchestration import get_client
    from prefect.utilities.asyncutils import run_coro_as_sync

    async def read():
        async with get_client() as client:
            run = await client.read_flow_run(run_id)
            return run, await run.state.aresult()

    from flows.compare_compute import ComputeComparison

    run, stored = run_coro_as_sync(read())
    assert run.state.is_completed()
    result = ComputeComparison.model_validate(stored)  # persisted as JSON
    assert result.request.vcpus == 4
    assert result.options and all(o.vcpus >= 4 and o.memory_gib >= 16 for o in result.options)
    assert {o.provider for o in result.options} == {"aws", "gcp", "azure"}
    assert result.recommendation.option.monthly_usd <= result.options[0].on_demand_monthly_usd


def test_serve_listens_on_prefect_server_api_port_when_free(serve):
    """conftest sets PREFECT_SERVER_API_PORT to a free port so no test contends for 4200."""
    assert serve.api_url == f"http://127.0.0.1:{os.environ['PREFECT_SERVER_API_PORT']}/api"


def test_second_serve_refuses_and_first_keeps_running(serve, opsflow_home):
    env = {**os.environ, "OPSFLOW_HOME": str(opsflow_home)}
    env.pop("PREFECT_API_URL", None)
    proc = subprocess.run(
        [str(BIN / "opsflow"), "serve"], env=env, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 1
    assert "already running" in proc.stderr
    assert str(serve.pid) in proc.stderr
    assert httpx.get(f"{serve.api_url}/health", timeout=5).status_code == 200


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_stops_server_and_runner_without_orphans(tmp_path, sig):
    proc = start_serve(tmp_path)
    state = wait_ready(tmp_path, proc)
    assert state.server_pid and _group_alive(state.server_pid)
    os.killpg(proc.pid, sig) if sig == signal.SIGINT else proc.send_signal(sig)
    assert stop_serve(proc) == 0
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and _group_alive(state.server_pid):
        time.sleep(0.2)
    assert not _group_alive(state.server_pid), "Prefect server outlived opsflow serve"
    assert not _group_alive(proc.pid)
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{state.api_url}/health", timeout=2)
    assert not (tmp_path / "serve.json").exists()


def _scheduled_runs(client, deployment_id):
    from prefect.client.schemas.filters import (
        DeploymentFilter,
        FlowRunFilter,
        FlowRunFilterState,
        FlowRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType

    return client.read_flow_runs(
        deployment_filter=DeploymentFilter(id={"any_": [deployment_id]}),
        flow_run_filter=FlowRunFilter(
            state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.SCHEDULED]))
        ),
    )


async def _poll(check, what: str, timeout: float = 240):
    """Await ``check()`` until it returns something truthy; fail naming ``what`` otherwise."""
    import asyncio

    deadline = time.monotonic() + timeout
    while True:
        found = await check()
        if found:
            return found
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: nothing after {timeout:.0f}s")
        await asyncio.sleep(1)


def test_scheduled_deployments_get_upcoming_runs_and_a_due_run_completes(serve_elsewhere_api):
    """The scheduler creates runs and the runner executes them (Prefect 3.8.8 + SQLAlchemy 2.0).

    With SQLAlchemy 2.1 the scheduler fails every loop and no run is ever created: this
    test then fails here, and the server-log check names the traceback.
    """
    from datetime import timedelta

    from prefect._vendor.croniter import croniter  # what Prefect's scheduler computes with
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import DeploymentScheduleCreate
    from prefect.client.schemas.filters import DeploymentFilter
    from prefect.client.schemas.schedules import IntervalSchedule
    from prefect.utilities.asyncutils import run_coro_as_sync

    from flows.compare_compute import ComputeComparison
    from flows.registry import REGISTRY

    scheduled = [s for s in REGISTRY if s.cron]
    assert scheduled, "the registry names no scheduled flow"
    params = {"vcpus": 3, "memory_gib": 7}

    async def scenario():
        async with get_client() as client:
            for spec in scheduled:  # the registry's cron schedules, as `opsflow serve` set them
                deployment = await client.read_deployment_by_name(spec.full_deployment_name)
                [schedule] = deployment.schedules
                assert schedule.schedule.cron == spec.cron
                upcoming = await _poll(
                    lambda d=deployment: _scheduled_runs(client, d.id),
                    f"upcoming scheduled runs of {spec.full_deployment_name}",
                )
                assert all(r.auto_scheduled for r in upcoming)
                assert all(croniter.match(spec.cron, r.expected_start_time) for r in upcoming)

            # A due run: a schedule of a few seconds on the cheapest flow, with its parameters
            # (a per-schedule parameter set, as the Prefect UI or API adds one).
            deployment = await client.read_deployment_by_name("compare-compute/opsflow")
            [added] = await client.create_deployment_schedules(
                deployment.id,
                [
                    DeploymentScheduleCreate(
                        schedule=IntervalSchedule(interval=timedelta(seconds=5)),
                        active=True,
                        parameters=params,
                    )
                ],
            )
            try:

                async def completed_scheduled_run():
                    runs = await client.read_flow_runs(
                        deployment_filter=DeploymentFilter(id={"any_": [deployment.id]})
                    )
                    done = [r for r in runs if r.auto_scheduled and r.state.is_completed()]
                    return done[0] if done else None

                run = await _poll(completed_scheduled_run, "a completed scheduled compare-compute")
            finally:
                await client.delete_deployment_schedule(deployment.id, added.id)
            return run, await run.state.aresult()

    run, stored = run_coro_as_sync(scenario())
    assert run.parameters == params
    result = ComputeComparison.model_validate(stored)
    assert (result.request.vcpus, result.request.memory_gib) == (3, 7)
    assert result.options and all(o.vcpus >= 3 and o.memory_gib >= 7 for o in result.options)


class _ForeignHealth(http.server.BaseHTTPRequestHandler):
    """Someone else's server on the port: answers /api/health like Prefect, 404 otherwise."""

    requests: list[tuple[str, str]] = []

    def _answer(self) -> None:
        self.requests.append((self.command, self.path))
        ok = self.command == "GET" and self.path == "/api/health"
        body = b"true" if ok else b'{"detail":"Not Found"}'
        self.send_response(200 if ok else 404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _answer

    def log_message(self, *args):  # quiet
        pass


def test_serve_refuses_a_port_another_server_answers_on(tmp_path):
    port = free_port()
    foreign = http.server.ThreadingHTTPServer(("127.0.0.1", port), _ForeignHealth)
    threading.Thread(target=foreign.serve_forever, daemon=True).start()
    _ForeignHealth.requests = []
    try:
        assert httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=5).status_code == 200
        env = {**os.environ, "OPSFLOW_HOME": str(tmp_path)}
        for key in ("PREFECT_API_URL", "PREFECT_HOME", "PREFECT_SERVER_DATABASE_CONNECTION_URL"):
            env.pop(key, None)
        proc = subprocess.run(
            [str(BIN / "opsflow"), "serve", "--port", str(port)],
            env=env,
            capture_output=True,
            text=True,
            timeout=240,
            cwd=REPO,
        )
    finally:
        foreign.shutdown()
        foreign.server_close()
    assert proc.returncode == 1, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.strip()]
    assert (
        errors[-1].startswith("error: ")
        and len([e for e in errors if e.startswith("error: ")]) == 1
    ), proc.stderr
    assert f"127.0.0.1:{port} is held by another process" in errors[-1]
    assert "--port" in errors[-1]
    assert "Traceback" not in proc.stderr
    # nothing was registered on (or asked of) the foreign server but its health
    assert {r for r in _ForeignHealth.requests} <= {("GET", "/api/health")}
    assert not (tmp_path / "serve.json").exists()
    assert not _prefect_servers_on(port), "the Prefect server opsflow started outlived it"


def _prefect_servers_on(port: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"server" in argv and b"start" in argv and str(port).encode() in argv:
            found.append(int(entry.name))
    return found
