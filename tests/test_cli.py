"""The `opsflow` command as a user runs it: a real process, stdout JSON, one-line errors."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import BIN, REPO

STARTED = re.compile(
    r"^started opsflow serve in the background \(pid (\d+), UI (http://\S+)\); "
    r"`opsflow stop` stops it$"
)


def free_port() -> int:
    """A port nobody listens on now, never Prefect's default 4200."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            if (port := s.getsockname()[1]) != 4200:
                return port


def opsflow(*args: str, home=None, timeout: float = 240) -> subprocess.CompletedProcess:
    env = {**os.environ}
    if home is not None:
        env["OPSFLOW_HOME"] = str(home)
        # the session's Prefect home, database and results belong to the session's home
        for key in ("PREFECT_HOME", "PREFECT_SERVER_DATABASE_CONNECTION_URL"):
            env.pop(key, None)
        env.pop("PREFECT_LOCAL_STORAGE_PATH", None)
        # a serve that `opsflow run` starts must not depend on the default port being free
        env["OPSFLOW_SERVE_PORT"] = str(free_port())
    env.pop("PREFECT_API_URL", None)
    return subprocess.run(
        [str(BIN / "opsflow"), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
    )


def processes_of(home: Path) -> list[int]:
    """Pids of live processes started for ``home`` (their environment names it)."""
    marker = f"OPSFLOW_HOME={home}".encode()
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                environ = (entry / "environ").read_bytes()
            except OSError:
                continue
            if marker in environ.split(b"\0"):
                pids.append(int(entry.name))
    return pids


@pytest.fixture
def auto_serve_home(tmp_path):
    """A fresh data folder whose background serve (started by `opsflow run`) is stopped after."""
    home = tmp_path / "home"
    home.mkdir()
    yield home
    stop = opsflow("stop", home=home, timeout=120)
    deadline = time.monotonic() + 30
    while processes_of(home) and time.monotonic() < deadline:
        time.sleep(0.5)
    left = processes_of(home)
    for pid in left:  # never let a server outlive the tests, even when stop failed
        os.kill(pid, signal.SIGKILL)
    assert stop.returncode == 0, stop.stderr
    assert not left, f"processes left after `opsflow stop`: {left}"


def read_run_by_id(home: Path, api_url: str, run_id: str) -> dict:
    """Read a flow run and its persisted result back from the API, as the bridge and UI do."""
    code = (
        "import json, sys\n"
        "from opsflow import environment\n"
        "environment.configure()\n"
        "from prefect import get_client\n"
        "with get_client(sync_client=True) as client:\n"
        "    run = client.read_flow_run(sys.argv[1])\n"
        "result = run.state.result()\n"
        "if hasattr(result, 'model_dump'):\n"
        "    result = result.model_dump(mode='json')\n"
        "out = {'state': run.state.type.value, 'deployment_id': run.deployment_id}\n"
        "print(json.dumps({**out, 'result': result}, default=str))\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(OPSFLOW_HOME=str(home), PREFECT_API_URL=api_url)
    proc = subprocess.run(
        [sys.executable, "-c", code, run_id],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout)


def run_id_of(stderr: str, ui_url: str) -> str:
    [run_id] = re.findall(re.escape(ui_url) + r"/runs/flow-run/([0-9a-f-]{36})", stderr)
    return run_id


def test_flows_lists_the_registry():
    from flows.registry import REGISTRY

    proc = opsflow("flows")
    assert proc.returncode == 0, proc.stderr
    for spec in REGISTRY:
        line = next(ln for ln in proc.stdout.splitlines() if ln.startswith(spec.name))
        assert ("read-only" in line) == (spec.read_only and not spec.destructive)
        assert (spec.cron or "on demand") in line
        assert spec.summary[:30] in line
    rows = json.loads(opsflow("flows", "--json").stdout)
    assert [r["name"] for r in rows] == [s.name for s in REGISTRY]


def test_run_prints_the_result_as_json_on_stdout(serve):
    proc = opsflow(
        "run",
        "compare-compute",
        "--params",
        json.dumps({"vcpus": 8, "memory_gib": 32, "gpu": None, "region": "europe"}),
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)  # stdout is only the result
    assert result["request"]["vcpus"] == 8
    assert result["options"], result
    assert all(
        o["region"]
        in {
            "eu-west-1",
            "europe-west4",
            "westeurope",
            "eu-central-1",
            "europe-west1",
            "northeurope",
            "francecentral",
            "uksouth",
            "germanywestcentral",
            "europe-west3",
            "eu-west-2",
            "swedencentral",
        }
        or "eu" in o["region"]
        for o in result["options"]
    )
    assert "Cheapest" in result["recommendation"]["reason"]
    assert "Finished in state Completed" in proc.stderr  # logs went to stderr
    assert run_id_of(proc.stderr, serve.ui_url)  # it ran on the running serve's API
    assert "started opsflow serve" not in proc.stderr


def test_first_run_starts_the_background_serve_and_later_runs_reuse_it(auto_serve_home):
    from opsflow import local_server

    params = json.dumps({"vcpus": 8, "memory_gib": 32})
    first = opsflow("run", "compare-compute", "--params", params, home=auto_serve_home)
    assert first.returncode == 0, first.stderr[-3000:]
    [started] = [m for ln in first.stderr.splitlines() if (m := STARTED.match(ln))]
    pid, ui_url = int(started[1]), started[2]
    assert not ui_url.endswith(":4200")  # OPSFLOW_SERVE_PORT reached the serve it started
    state = json.loads((auto_serve_home / "serve.json").read_text())
    assert (state["pid"], state["ui_url"]) == (pid, ui_url)
    os.kill(pid, 0)  # the serve outlives the command

    second = opsflow("run", "compare-compute", "--params", params, home=auto_serve_home)
    assert second.returncode == 0, second.stderr[-3000:]
    assert "started opsflow serve" not in second.stderr
    assert json.loads((auto_serve_home / "serve.json").read_text())["pid"] == pid
    assert local_server.is_healthy(state["api_url"])

    # both results are persisted and read back by run id from the serve's API
    ids = [run_id_of(p.stderr, ui_url) for p in (first, second)]
    assert ids[0] != ids[1]
    for proc, run_id in zip((first, second), ids, strict=True):
        stored = read_run_by_id(auto_serve_home, state["api_url"], run_id)
        assert stored["state"] == "COMPLETED"
        assert stored["deployment_id"] is None  # ran in the command's process
        assert stored["result"] == json.loads(proc.stdout)


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"vcpus": -1, "memory_gib": 4}, "vcpus"),
        ({"vcpus": 2}, "memory_gib"),
        ({"vcpus": 2, "memory_gib": 4, "providers": ["ibm"]}, "providers"),
        ({"vcpus": 2, "memory_gib": 4, "gpu": {"type": "voodoo2"}}, "gpu.type"),
        ({"vcpus": 2, "memory_gib": 4, "region": "mars-north-1"}, "region"),
        ({"vcpus": 2, "memory_gib": 4, "colour": "blue"}, "colour"),
    ],
)
def test_invalid_parameters_exit_non_zero_naming_the_field(params, field, tmp_path):
    proc = opsflow("run", "compare-compute", "--params", json.dumps(params), home=tmp_path)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert field in lines[0]
    assert proc.stdout == ""
    assert not (tmp_path / "serve.json").exists()  # rejected before any server starts
    assert processes_of(tmp_path) == []


def test_bad_json_and_unknown_flow_are_one_line_errors():
    proc = opsflow("run", "compare-compute", "--params", "{vcpus: 2")
    assert proc.returncode == 2 and "not valid JSON" in proc.stderr
    proc = opsflow("run", "no-such-flow")
    assert proc.returncode == 2 and "known flows" in proc.stderr


def test_failed_run_exits_non_zero_and_ephemeral_leaves_no_server(tmp_path):
    # A corrupt catalog version makes the flow fail at run time, not at validation.
    bad = tmp_path / "price_catalog" / "versions" / "broken"
    bad.mkdir(parents=True)
    for provider in ("aws", "gcp", "azure"):
        (bad / f"{provider}.json").write_text('{"provider": "aws", "half written')
    (tmp_path / "price_catalog" / "CURRENT").write_text("broken")
    proc = opsflow(
        "run",
        "compare-compute",
        "--ephemeral",
        "--params",
        '{"vcpus": 2, "memory_gib": 4}',
        home=tmp_path,
    )
    assert proc.returncode == 1
    [line] = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
    assert line.startswith("error: flow run Failed: ")
    assert "ValidationError" in line or "JSON" in line
    assert "Traceback" not in line
    assert proc.stdout == ""
    # --ephemeral: a temporary server for this command only, gone when it returns
    assert "started opsflow serve" not in proc.stderr
    assert not (tmp_path / "serve.json").exists()
    assert processes_of(tmp_path) == []
    assert (tmp_path / "prefect" / "ephemeral.db").exists()  # not the serve's opsflow.db
    assert not (tmp_path / "prefect" / "opsflow.db").exists()


def test_run_collect_costs_on_a_downloaded_export(tmp_path, auto_serve_home):
    """What a person does with an export they downloaded: exactly that file, result JSON."""
    from samples.focus_exports import bundled_export_paths

    export = next(p for p in bundled_export_paths() if "azure" in p.name)
    local = tmp_path / "downloaded-focus.csv"
    local.write_bytes(export.read_bytes())
    params = {"focus_exports": [str(local)], "fx_rates": {"EUR": 1.08}}
    proc = opsflow("run", "collect-costs", "--params", json.dumps(params), home=auto_serve_home)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout)
    assert [s["source"] for s in result["sources"]] == [str(local)]
    assert [p["key"] for p in result["summary"]["by_provider"]] == ["azure"]
    assert result["summary"]["unconverted"] == {}  # EUR converted with the given rate
    assert result["quarantine"]["rows"] > 0
    assert (auto_serve_home / "costs" / "_manifest.json").exists()


def test_a_serve_that_cannot_start_is_one_error_line_and_leaves_nothing(tmp_path):
    """The port for the serve is taken: exit 1 naming the problem and the way out."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        env_port = str(taken.getsockname()[1])
        home = tmp_path / "home"
        home.mkdir()
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")},
            "OPSFLOW_HOME": str(home),
            "OPSFLOW_SERVE_PORT": env_port,
        }
        proc = subprocess.run(
            [
                str(BIN / "opsflow"),
                "run",
                "compare-compute",
                "--params",
                '{"vcpus": 2, "memory_gib": 4}',
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            cwd=REPO,
        )
    assert proc.returncode == 1, proc.stderr[-2000:]
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1, proc.stderr[-2000:]
    assert errors[0].startswith("error: could not start opsflow serve: ")
    assert f"{home / 'serve.log'}" in errors[0] and "--ephemeral" in errors[0]
    assert proc.stdout == ""
    assert processes_of(home) == []
