"""`opsflow serve` on a real local PostgreSQL (OPSFLOW_DATABASE_URL): schedules, 20
concurrent deployment runs, the rows really in PostgreSQL, and the password never shown."""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from tests.conftest import BIN, start_serve, stop_serve, wait_ready
from tests.postgres import postgres  # noqa: F401 - the fixture

# The role's password: a canary that must appear in no log, message or file. The "/"
# and "@" force URL-encoding, so both spellings of it are looked for.
CANARY = "opsflow-canary-7f3a9c"
PASSWORD = f"{CANARY}/Z@x"
CONCURRENT_RUNS = 20


def _final(run) -> bool:
    return run.state is not None and run.state.is_final()


@pytest.fixture(scope="module")
def pg_serve(postgres, tmp_path_factory):  # noqa: F811
    url = postgres.create_database("opsflow", "opsflow", PASSWORD)
    home = tmp_path_factory.mktemp("pg-home")
    proc = start_serve(home, {"OPSFLOW_DATABASE_URL": url})
    try:
        state = wait_ready(home, proc, timeout=240)
        yield SimpleNamespace(state=state, home=home, url=url, proc=proc, pg=postgres)
    finally:
        stop_serve(proc)


async def _upcoming_scheduled_runs(api_url: str, deployment_names: list[str], timeout: float):
    """Per deployment, its SCHEDULED runs in the future, waiting (bounded) for the scheduler."""
    from prefect.client.orchestration import PrefectClient
    from prefect.client.schemas.filters import (
        DeploymentFilter,
        DeploymentFilterId,
        FlowRunFilter,
        FlowRunFilterState,
        FlowRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType

    async with PrefectClient(api_url) as client:
        ids = {n: (await client.read_deployment_by_name(n)).id for n in deployment_names}
        deadline = time.monotonic() + timeout
        while True:
            found = {}
            for name, dep_id in ids.items():
                runs = await client.read_flow_runs(
                    deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[dep_id])),
                    flow_run_filter=FlowRunFilter(
                        state=FlowRunFilterState(
                            type=FlowRunFilterStateType(any_=[StateType.SCHEDULED])
                        )
                    ),
                )
                found[name] = runs
            if all(found.values()) or time.monotonic() > deadline:
                return found
            await asyncio.sleep(1)


async def _concurrent_deployment_runs(api_url: str, count: int, timeout: float):
    """Create ``count`` compare-compute runs at once; wait (bounded) until all are final."""
    from prefect.client.orchestration import PrefectClient
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    async with PrefectClient(api_url) as client:
        deployment = await client.read_deployment_by_name("compare-compute/opsflow")
        created = await asyncio.gather(
            *(
                client.create_flow_run_from_deployment(
                    deployment.id,
                    parameters={"vcpus": 2 * (1 + i % 4), "memory_gib": 8 * (1 + i % 4)},
                )
                for i in range(count)
            )
        )
        ids = [run.id for run in created]
        deadline = time.monotonic() + timeout
        while True:
            runs = await client.read_flow_runs(
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=ids))
            )
            if (len(runs) == count and all(map(_final, runs))) or time.monotonic() > deadline:
                return ids, runs
            await asyncio.sleep(0.5)


async def _api_flow_run_count(api_url: str) -> int:
    from prefect.client.orchestration import PrefectClient

    async with PrefectClient(api_url) as client:
        return await client.count_flow_runs()


def test_serve_on_postgres_schedules_and_completes_concurrent_runs(pg_serve):
    from flows.registry import REGISTRY

    api = pg_serve.state.api_url
    scheduled = [s.full_deployment_name for s in REGISTRY if s.cron]
    assert scheduled
    upcoming = asyncio.run(_upcoming_scheduled_runs(api, scheduled, timeout=150))
    assert all(upcoming.values()), {n: len(r) for n, r in upcoming.items()}
    now = time.time()
    for runs in upcoming.values():
        assert all(r.expected_start_time.timestamp() > now - 60 for r in runs)

    ids, runs = asyncio.run(_concurrent_deployment_runs(api, CONCURRENT_RUNS, timeout=420))
    states = {str(r.id): (r.state.type.value if r.state else None) for r in runs}
    assert len(runs) == CONCURRENT_RUNS, states
    assert all(r.state.is_completed() for r in runs), states

    # The rows are in PostgreSQL, not in a SQLite file: every run by id, and as many
    # flow_run rows as the API counts (retried: the scheduler may add runs meanwhile).
    in_pg = set(pg_serve.pg.psql("SELECT id FROM flow_run", database="opsflow").split())
    assert {str(i) for i in ids} <= in_pg
    for _ in range(5):
        pg_count = int(pg_serve.pg.psql("SELECT count(*) FROM flow_run", database="opsflow"))
        api_count = asyncio.run(_api_flow_run_count(api))
        if pg_count == api_count:
            break
        time.sleep(1)
    assert pg_count == api_count
    completed = pg_serve.pg.psql(
        "SELECT count(*) FROM flow_run WHERE state_type = 'COMPLETED'", database="opsflow"
    )
    assert int(completed) >= CONCURRENT_RUNS
    assert not list(pg_serve.home.rglob("*.db")), "a SQLite database was created"

    server_log = (pg_serve.home / "prefect-server.log").read_text(errors="replace")
    assert "Traceback" not in server_log and "ERROR" not in server_log, server_log[-4000:]


def test_database_password_is_never_shown(pg_serve):
    log = (pg_serve.home / "serve-test.log").read_text(errors="replace")
    # what serve says names the database, with the password masked
    assert f"postgresql+asyncpg://opsflow:***@127.0.0.1:{pg_serve.pg.port}/opsflow" in log
    leaks = [
        str(path)
        for path in pg_serve.home.rglob("*")
        if path.is_file() and CANARY.encode() in path.read_bytes()
    ]
    assert not leaks
    logged = pg_serve.pg.psql(
        f"SELECT count(*) FROM log WHERE message LIKE '%{CANARY}%'", database="opsflow"
    )
    assert logged == "0"


def _serve_once(home: Path, url: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OPSFLOW_HOME": str(home), "OPSFLOW_DATABASE_URL": url}
    for key in ("PREFECT_API_URL", "PREFECT_HOME", "PREFECT_SERVER_DATABASE_CONNECTION_URL"):
        env.pop(key, None)
    return subprocess.run(
        [str(BIN / "opsflow"), "serve"], env=env, capture_output=True, text=True, timeout=240
    )


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        (f"postgres://opsflow:{CANARY}@127.0.0.1/opsflow", "driver 'postgres' is not supported"),
        (f"postgresql+asyncpg://opsflow:{CANARY}@127.0.0.1/", "names no database"),
        (f"not a url {CANARY}", "not a database URL"),
    ],
)
def test_bad_database_url_is_refused_before_anything_starts(tmp_path, url, reason):
    proc = _serve_once(tmp_path, url)
    assert proc.returncode == 2
    assert proc.stderr.strip() == proc.stderr.strip().splitlines()[0]  # one line
    assert "OPSFLOW_DATABASE_URL" in proc.stderr and reason in proc.stderr
    assert CANARY not in proc.stdout + proc.stderr
    assert not (tmp_path / "prefect-server.log").exists()


@pytest.mark.server_errors_expected  # the server cannot log in to its database, by design
def test_wrong_password_fails_start_up_without_showing_it(postgres, tmp_path):  # noqa: F811
    url = postgres.create_database("wrongpw", "wrongpw", "right-password")
    wrong = url.replace("right-password", PASSWORD.replace("/", "%2F").replace("@", "%40"))
    proc = _serve_once(tmp_path, wrong)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "password authentication failed" in out, out[-3000:]
    assert CANARY not in out
    assert f"postgresql+asyncpg://wrongpw:***@127.0.0.1:{postgres.port}/wrongpw" in out


def _serve_with_config(home: Path, toml: str) -> subprocess.CompletedProcess:
    home.mkdir(parents=True, exist_ok=True)
    (home / "opsflow.toml").write_text(toml)
    env = {**os.environ, "OPSFLOW_HOME": str(home)}
    for key in (
        "PREFECT_API_URL",
        "PREFECT_HOME",
        "PREFECT_SERVER_DATABASE_CONNECTION_URL",
        "OPSFLOW_DATABASE_URL",
    ):
        env.pop(key, None)
    return subprocess.run(
        [str(BIN / "opsflow"), "serve"], env=env, capture_output=True, text=True, timeout=240
    )


@pytest.mark.server_errors_expected  # the server cannot reach its database, by design
def test_config_file_database_url_is_checked_and_reaches_the_server(tmp_path):
    bad = _serve_with_config(tmp_path / "bad", '[server]\ndatabase_url = "mysql://db/x"\n')
    assert bad.returncode == 2
    assert "opsflow.toml: server.database_url: driver 'mysql' is not supported" in bad.stderr
    assert not (tmp_path / "bad" / "prefect-server.log").exists()  # refused before starting

    # No password in the file (it is refused there): the server gets this URL and, with
    # nothing listening on port 9, fails to start naming it.
    url = "postgresql+asyncpg://opsflow@127.0.0.1:9/prefect"
    down = _serve_with_config(tmp_path / "down", f'[server]\ndatabase_url = "{url}"\n')
    assert down.returncode != 0
    assert f"Prefect server database: {url}" in down.stdout + down.stderr
