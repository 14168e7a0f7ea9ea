"""`opsflow serve` as a real process: deployments, `prefect deployment run`, results, shutdown."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import BIN, REPO, start_serve, stop_serve, wait_ready


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
