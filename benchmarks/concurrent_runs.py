"""20 concurrent deployment runs of compare-compute: `opsflow serve` on SQLite vs PostgreSQL.

Same machine, same flow, same run: for each database a fresh data folder and a real
`opsflow serve` (local Prefect server + runner), one warm-up run, then N runs created
at once through the Prefect client; wall time from the first create to the last final
state. PostgreSQL is a throw-away local cluster (tests/postgres.py, Debian's
`postgresql`). Run from the repository root:

    .venv/bin/python benchmarks/concurrent_runs.py [--runs 20] [--rounds 1]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.postgres import LocalPostgres  # noqa: E402

BIN = Path(sys.executable).parent
DEPLOYMENT = "compare-compute/opsflow"


def start_serve(home: Path, database_url: str | None) -> subprocess.Popen:
    env = {**os.environ, "OPSFLOW_HOME": str(home)}
    for key in ("PREFECT_API_URL", "PREFECT_HOME", "PREFECT_SERVER_DATABASE_CONNECTION_URL"):
        env.pop(key, None)
    env.pop("OPSFLOW_DATABASE_URL", None)
    if database_url:
        env["OPSFLOW_DATABASE_URL"] = database_url
    log = open(home / "serve-bench.log", "ab")  # noqa: SIM115 - handed to the child
    proc = subprocess.Popen(
        [str(BIN / "opsflow"), "serve"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
        cwd=REPO,
    )
    log.close()
    return proc


def wait_ready(home: Path, proc: subprocess.Popen, timeout: float = 300) -> str:
    from opsflow import local_server

    os.environ["OPSFLOW_HOME"] = str(home)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = local_server.running_instance()
        if state:
            return state.api_url
        if proc.poll() is not None:
            break
        time.sleep(0.3)
    tail = (home / "serve-bench.log").read_text(errors="replace")[-2000:]
    raise RuntimeError(f"opsflow serve did not become ready:\n{tail}")


async def concurrent_runs(api_url: str, count: int) -> tuple[float, float, dict[str, int]]:
    """Create ``count`` runs at once, wait until all are final.

    Returns (wall seconds to the last final state, seconds the creates took, states).
    """
    from prefect.client.orchestration import PrefectClient
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    async with PrefectClient(api_url) as client:
        deployment = await client.read_deployment_by_name(DEPLOYMENT)
        started = time.perf_counter()
        created = await asyncio.gather(
            *(
                client.create_flow_run_from_deployment(
                    deployment.id,
                    parameters={"vcpus": 2 * (1 + i % 4), "memory_gib": 8 * (1 + i % 4)},
                )
                for i in range(count)
            )
        )
        create = time.perf_counter() - started
        ids = [run.id for run in created]
        deadline = time.monotonic() + 900
        while time.monotonic() < deadline:
            runs = await client.read_flow_runs(
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=ids))
            )
            if len(runs) == count and all(r.state and r.state.is_final() for r in runs):
                break
            await asyncio.sleep(0.1)
        wall = time.perf_counter() - started
    states: dict[str, int] = {}
    for run in runs:
        name = run.state.type.value if run.state else "NONE"
        states[name] = states.get(name, 0) + 1
    return wall, create, states


def measure(database: str, database_url: str | None, runs: int, rounds: int) -> dict:
    home = Path(tempfile.mkdtemp(prefix=f"opsflow-bench-{database}-"))
    proc = start_serve(home, database_url)
    try:
        t0 = time.perf_counter()
        api_url = wait_ready(home, proc)
        ready = time.perf_counter() - t0
        warm, _, _ = asyncio.run(concurrent_runs(api_url, 1))
        walls, creates, states = [], [], {}
        for _ in range(rounds):
            wall, create, round_states = asyncio.run(concurrent_runs(api_url, runs))
            walls.append(wall)
            creates.append(create)
            for k, v in round_states.items():
                states[k] = states.get(k, 0) + v
        return {"ready": ready, "warm": warm, "walls": walls, "creates": creates, "states": states}
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        shutil.rmtree(home, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20, help="concurrent runs per round")
    parser.add_argument("--rounds", type=int, default=1, help="rounds per database")
    args = parser.parse_args()

    results = {"SQLite": measure("sqlite", None, args.runs, args.rounds)}
    with LocalPostgres() as pg:
        url = pg.create_database("opsflow_bench", "opsflow", "bench-only-password")
        results["PostgreSQL"] = measure("postgres", url, args.runs, args.rounds)

    print(f"\n{args.runs} concurrent `{DEPLOYMENT}` deployment runs through `opsflow serve`")
    head = f"{'database':<12} {'serve ready s':>13} {'1 run s':>8} {'create N s':>12}"
    print(f"{head} {'wall s (each round)':>22}  states")
    for name, r in results.items():
        walls = ", ".join(f"{w:.1f}" for w in r["walls"])
        creates = ", ".join(f"{c:.2f}" for c in r["creates"])
        line = f"{name:<12} {r['ready']:>13.1f} {r['warm']:>8.1f} {creates:>12}"
        print(f"{line} {walls:>22}  {r['states']}")
    sqlite, postgres = (min(results[k]["walls"]) for k in ("SQLite", "PostgreSQL"))
    print(f"PostgreSQL / SQLite wall time (best round): {postgres / sqlite:.2f}")


if __name__ == "__main__":
    main()
