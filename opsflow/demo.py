"""``make demo``: run the main jobs on embedded defaults against the local Prefect server.

Runs go through the deployments that ``opsflow serve`` registered, exactly as the
Prefect UI, a schedule or the MCP bridge would start them.
"""

from __future__ import annotations

import asyncio
import os

from flows.compare_compute import ComputeComparison, render_markdown
from mcp_bridge import runs
from opsflow.local_server import ServeState
from opsflow.paths import reports_dir

SAMPLES = [
    (
        "General purpose, 8 vCPU / 32 GiB, spot allowed",
        {"vcpus": 8, "memory_gib": 32, "storage_gib": 100, "spot_allowed": True},
    ),
    (
        "One NVIDIA A100 for fine-tuning, US regions",
        {"vcpus": 8, "memory_gib": 64, "gpu": {"type": "a100", "count": 1}, "region": "us"},
    ),
]


async def _run(parameters: dict) -> tuple[ComputeComparison, str]:
    run = await runs.start_run(
        "compare-compute/opsflow", parameters, os.urandom(8).hex(), tags=("demo",)
    )
    run = await runs.wait_for_run(run.id, wait_seconds=300)
    if not (run.state and run.state.is_completed()):
        raise RuntimeError(f"demo run {run.id} ended {run.state.name if run.state else '?'}")
    outcome = await runs.describe(run, "compare-compute")
    return ComputeComparison.model_validate(outcome.result), outcome.ui_url or ""


def _table(result: ComputeComparison, rows: int = 10) -> str:
    head = (
        f"{'#':>2}  {'provider':<6} {'instance type':<30} {'region':<15} {'pricing':<9} "
        f"{'vCPU':>4} {'GiB':>6} {'$/hour':>8} {'$/month':>10}"
    )
    lines = [head, "-" * len(head)]
    for i, o in enumerate(result.options[:rows], 1):
        lines.append(
            f"{i:>2}  {o.provider:<6} {o.instance_type[:30]:<30} {o.region:<15} "
            f"{o.pricing_model:<9} {o.vcpus:>4} {o.memory_gib:>6g} {o.hourly_usd:>8.3f} "
            f"{o.monthly_usd:>10,.2f}"
        )
    return "\n".join(lines)


def run_demo(state: ServeState) -> None:
    out = reports_dir()
    out.mkdir(parents=True, exist_ok=True)
    links = []
    for n, (title, params) in enumerate(SAMPLES, 1):
        result, url = asyncio.run(_run(params))
        print(f"\n=== compare-compute: {title} ===")
        print(
            f"catalog {result.catalog_version}, prices as of {result.catalog_as_of} "
            f"({result.catalog_age_days} days old); {result.options_found} options match\n"
        )
        print(_table(result))
        if result.recommendation:
            print(f"\nRecommendation: {result.recommendation.reason}")
        report = out / f"compare-compute-{n}.md"
        report.write_text(render_markdown(result))
        links.append((title, url, report))
    print("\n=== Look next ===")
    print(f"Prefect UI:      {state.ui_url}  (runs, artifacts, schedules)")
    for title, url, report in links:
        print(f"  {title}:\n    run    {url}\n    report {report}")
    print("MCP bridge:      .venv/bin/opsflow mcp   (stdio; see README for the client config)")
    print("Stop the server: make stop")
