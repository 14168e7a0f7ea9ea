"""Latency of an MCP tool call to a completed compare_compute result, with baselines.

Starts a private ``opsflow serve`` (local Prefect server + runner) and an
``opsflow mcp`` stdio bridge, then measures, in the same run:

  direct   ``compare_compute(...)`` called in-process (a Prefect flow run, no deployment)
  deploy   ``run_deployment`` + polling the Prefect API (what the bridge does, minus MCP)
  mcp      ``call_tool("compare_compute")`` over stdio through ``opsflow mcp``

and then fires N concurrent MCP calls. Prints p50/p95/max per path and the
bridge overhead (mcp - direct, mcp - deploy) at p50.

Usage:  .venv/bin/python benchmarks/bridge_latency.py [--calls 20] [--concurrent 20]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

HOME = Path(tempfile.mkdtemp(prefix="opsflow-bench-"))
os.environ["OPSFLOW_HOME"] = str(HOME)
os.environ.pop("PREFECT_API_URL", None)

from opsflow import environment, local_server  # noqa: E402

environment.configure()

PARAMS = {"vcpus": 8, "memory_gib": 32, "spot_allowed": True}
BIN = Path(sys.executable).parent


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def summary(name: str, values: list[float]) -> str:
    return (
        f"{name:<34} n={len(values):<3} p50={statistics.median(values):6.2f}s "
        f"p95={pct(values, 0.95):6.2f}s max={max(values):6.2f}s"
    )


async def bench_direct(calls: int) -> list[float]:
    from flows.compare_compute import compare_compute

    out = []
    for _ in range(calls):
        t = time.perf_counter()
        await asyncio.to_thread(compare_compute, **PARAMS)
        out.append(time.perf_counter() - t)
    return out


async def bench_deploy(calls: int) -> list[float]:
    from mcp_bridge import runs

    out = []
    for _ in range(calls):
        t = time.perf_counter()
        run = await runs.start_run("compare-compute/opsflow", PARAMS, os.urandom(8).hex())
        run = await runs.wait_for_run(run.id, 300)
        assert run.state.is_completed(), run.state
        await runs.describe(run, "compare-compute")
        out.append(time.perf_counter() - t)
    return out


async def bench_mcp(calls: int, concurrent: int) -> tuple[list[float], list[float], int, float]:
    from mcp import Client, StdioServerParameters

    params = StdioServerParameters(
        command=str(BIN / "opsflow"),
        args=["mcp"],
        env={**os.environ},
    )
    async with Client(params, read_timeout_seconds=600) as client:
        await client.list_tools()

        async def one() -> tuple[float, bool]:
            t = time.perf_counter()
            res = await client.call_tool("compare_compute", {**PARAMS, "wait_seconds": 300})
            ok = (not res.is_error) and res.structured_content["state"] == "Completed"
            return time.perf_counter() - t, ok

        sequential = []
        for _ in range(calls):
            dt, ok = await one()
            assert ok
            sequential.append(dt)
        t0 = time.perf_counter()
        results = await asyncio.gather(*(one() for _ in range(concurrent)))
        wall = time.perf_counter() - t0
    return sequential, [dt for dt, _ in results], sum(ok for _, ok in results), wall


async def main(calls: int, concurrent: int) -> None:
    direct = await bench_direct(calls)
    deploy = await bench_deploy(calls)
    mcp_seq, mcp_conc, ok, wall = await bench_mcp(calls, concurrent)
    print(f"\nbridge latency, compare_compute {PARAMS} on {os.cpu_count()} cores")
    print(summary("direct (flow called in-process)", direct))
    print(summary("deploy (run_deployment + poll)", deploy))
    print(summary("mcp (stdio tool call)", mcp_seq))
    print(
        f"bridge overhead at p50: mcp - deploy = "
        f"{statistics.median(mcp_seq) - statistics.median(deploy):+.2f}s; "
        f"mcp - direct = {statistics.median(mcp_seq) - statistics.median(direct):+.2f}s"
    )
    print(summary(f"mcp, {concurrent} concurrent calls", mcp_conc))
    print(f"concurrent: {ok}/{concurrent} completed, wall {wall:.2f}s")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20)
    parser.add_argument("--concurrent", type=int, default=20)
    args = parser.parse_args()
    state, child = local_server.ensure_serve()
    os.environ["PREFECT_API_URL"] = state.api_url
    try:
        asyncio.run(main(args.calls, args.concurrent))
    finally:
        local_server.stop_child(child)
