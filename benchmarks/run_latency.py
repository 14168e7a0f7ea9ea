"""Wall time of ``opsflow run compare-compute`` as a user sees it, next to the flow's own duration.

Two fresh data folders, one per way of running, interleaved so that both see the same
load on a shared machine:

  serve       the default: the first run starts the background ``opsflow serve`` and runs
              the flow in-process against its API; later runs reuse that serve
  ephemeral   ``opsflow run --ephemeral``, the old behaviour and the baseline: a temporary
              Prefect server started and stopped by every command

For every command: wall time, the command's CPU time (its own process and the children it
waited for, so the temporary server is included and the detached serve is not), and the
flow run's own duration (end - start) as the Prefect API recorded it: read from the
serve's API, or, for ephemeral runs whose server is gone, from the same table in the
temporary server's SQLite database. The load average is printed beside the figures.

Usage:  .venv/bin/python benchmarks/run_latency.py [--repeat 5]
"""

from __future__ import annotations

import argparse
import os
import re
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
PARAMS = '{"vcpus": 8, "memory_gib": 32}'
RUN_ID = re.compile(r"/runs/flow-run/([0-9a-f-]{36})")
RUN_NAME = re.compile(r"Beginning flow run '([^']+)'")  # an ephemeral server links no UI
STARTED = re.compile(r"^started opsflow serve in the background \(pid (\d+), UI (\S+)\)")


@dataclass
class Sample:
    label: str
    wall: float
    cpu: float
    run_name: str
    run_id: str | None
    serve_line_at: float | None = None  # seconds until the "started opsflow serve" line
    flow: float | None = None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


SERVE_PORT = str(free_port())  # never the default 4200: other servers may want it


def env_for(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(OPSFLOW_HOME=str(home), OPSFLOW_SERVE_PORT=SERVE_PORT)
    # opsflow gives the baseline's temporary server 60 s to start: too little for a fresh
    # database on a loaded machine; measured here rather than failed
    env["PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"] = "600"
    return env


def run_once(home: Path, label: str, *extra: str) -> Sample:
    out = home / "last-stdout.json"
    t0 = time.perf_counter()
    with out.open("wb") as stdout:
        proc = subprocess.Popen(
            [str(BIN / "opsflow"), "run", "compare-compute", *extra, "--params", PARAMS],
            env=env_for(home),
            stdout=stdout,
            stderr=subprocess.PIPE,
            cwd=REPO,
        )
        serve_line_at = None
        lines = []
        for raw in proc.stderr:
            line = raw.decode(errors="replace").rstrip("\n")
            lines.append(line)
            if serve_line_at is None and STARTED.match(line):
                serve_line_at = time.perf_counter() - t0
        _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    stderr = "\n".join(lines)
    if proc.returncode != 0 or not out.read_text().lstrip().startswith("{"):
        raise SystemExit(f"{label}: exit {proc.returncode}\n{stderr[-3000:]}")
    [run_name] = set(RUN_NAME.findall(stderr))
    run_id = next(iter(RUN_ID.findall(stderr)), None)
    return Sample(label, wall, usage.ru_utime + usage.ru_stime, run_name, run_id, serve_line_at)


def _seconds(start: str | None, end: str | None) -> float | None:
    if not start or not end:
        return None
    parse = datetime.fromisoformat
    return (parse(end.replace("Z", "+00:00")) - parse(start.replace("Z", "+00:00"))).total_seconds()


def flow_durations_from_api(api_url: str, samples: list[Sample]) -> None:
    for s in samples:
        run = httpx.get(f"{api_url}/flow_runs/{s.run_id}", timeout=30).raise_for_status().json()
        s.flow = _seconds(run["start_time"], run["end_time"])


def flow_durations_from_db(db: Path, samples: list[Sample]) -> None:
    with sqlite3.connect(db) as conn:
        for s in samples:
            start, end = conn.execute(
                "SELECT start_time, end_time FROM flow_run WHERE name = ?", (s.run_name,)
            ).fetchone()
            s.flow = _seconds(start, end)


def stop_serve(home: Path) -> None:
    subprocess.run([str(BIN / "opsflow"), "stop"], env=env_for(home), cwd=REPO, capture_output=True)


def load() -> str:
    return "/".join(f"{x:.1f}" for x in os.getloadavg())


def row(s: Sample) -> str:
    flow = f"{s.flow:8.2f}" if s.flow is not None else "       ?"
    note = f"  serve ready line at {s.serve_line_at:.1f} s" if s.serve_line_at else ""
    return f"{s.label:<22}{s.wall:8.2f}{s.cpu:9.2f}{flow}{s.wall - (s.flow or 0):10.2f}{note}"


def main(repeat: int) -> None:
    serve_home = Path(tempfile.mkdtemp(prefix="opsflow-bench-run-serve-"))
    eph_home = Path(tempfile.mkdtemp(prefix="opsflow-bench-run-ephemeral-"))
    loads = [load()]
    serve_runs: list[Sample] = []
    eph_runs: list[Sample] = []
    try:
        serve_runs.append(run_once(serve_home, "serve, first"))
        eph_runs.append(run_once(eph_home, "ephemeral, first", "--ephemeral"))
        loads.append(load())
        for i in range(1, repeat + 1):
            serve_runs.append(run_once(serve_home, f"serve, repeat {i}"))
            eph_runs.append(run_once(eph_home, f"ephemeral, repeat {i}", "--ephemeral"))
            loads.append(load())
        state = (serve_home / "serve.json").read_text()
        api_url = re.search(r'"api_url": "([^"]+)"', state)[1]
        flow_durations_from_api(api_url, serve_runs)
    finally:
        stop_serve(serve_home)
    flow_durations_from_db(eph_home / "prefect" / "ephemeral.db", eph_runs)

    print(f"\nopsflow run compare-compute --params '{PARAMS}', {os.cpu_count()} cores")
    print(f"load average (1/5/15 min) before, and after each round: {', '.join(loads)}")
    print(f"{'command':<22}{'wall s':>8}{'cpu s':>9}{'flow s':>8}{'overhead':>10}")
    for s in serve_runs + eph_runs:
        print(row(s))
    med = statistics.median
    rs, re_ = serve_runs[1:], eph_runs[1:]
    print(
        f"first run:    serve {serve_runs[0].wall:.2f} s vs ephemeral {eph_runs[0].wall:.2f} s"
        "  (targets: first < 15 s, repeated < 3 s)"
    )
    print(
        f"repeated p50: serve {med(s.wall for s in rs):.2f} s (max {max(s.wall for s in rs):.2f})"
        f" vs ephemeral {med(s.wall for s in re_):.2f} s (max {max(s.wall for s in re_):.2f});"
        f" flow itself p50 {med(s.flow for s in rs if s.flow is not None):.2f} s;"
        f" cpu p50 {med(s.cpu for s in rs):.2f} s vs {med(s.cpu for s in re_):.2f} s"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="repeated runs after the first")
    main(parser.parse_args().repeat)
