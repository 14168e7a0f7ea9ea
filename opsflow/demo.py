"""``make demo``: run the main jobs on embedded defaults against the local Prefect server.

Runs go through the deployments that ``opsflow serve`` registered, exactly as the
Prefect UI, a schedule or the MCP bridge would start them. The cost, savings and
incident runs ask for the bundled samples by name (``samples: true``), so they write
the demo dataset and reports under ``$OPSFLOW_HOME/demo``, never the real ones.
"""

from __future__ import annotations

import asyncio
import os

from flows.compare_compute import ComputeComparison, render_markdown
from mcp_bridge import runs
from opsflow.local_server import ServeState
from tasks.common.paths import demo_costs_dir, demo_reports_dir

SAMPLE_RUN = {"samples": True}  # what collect-costs, recommend-savings, detect-incidents get

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


async def _run_flow(flow_name: str, parameters: dict) -> tuple[dict, str]:
    """Run ``flow_name``'s deployment as the UI or the bridge would; its result and link."""
    run = await runs.start_run(
        f"{flow_name}/opsflow", parameters, os.urandom(8).hex(), tags=("demo",)
    )
    run = await runs.wait_for_run(run.id, wait_seconds=600)
    if not (run.state and run.state.is_completed()):
        raise RuntimeError(f"demo run {run.id} ended {run.state.name if run.state else '?'}")
    outcome = await runs.describe(run, flow_name)
    return outcome.result, outcome.ui_url or ""


async def _run(parameters: dict) -> tuple[ComputeComparison, str]:
    result, url = await _run_flow("compare-compute", parameters)
    return ComputeComparison.model_validate(result), url


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
    out = demo_reports_dir()
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
    links += _cost_demo()
    links += _incident_demo()
    print("\n=== Look next ===")
    print(f"Prefect UI:      {state.ui_url}  (runs, artifacts, schedules)")
    for title, url, report in links:
        print(f"  {title}:\n    run    {url}\n    report {report}")
    print(f"Cost dataset:    {demo_costs_dir()}  (Parquet, FOCUS 1.2; the demo's own)")
    print("MCP bridge:      .venv/bin/opsflow mcp   (stdio; see README for the client config)")
    print("Stop the server: make stop")


def _cost_demo() -> list[tuple[str, str, str]]:
    """collect-costs on the bundled exports, twice (the second adds no rows), then savings.

    Both ask for the samples by name; recommend-savings then reads the demo dataset the
    two collect-costs runs filled for its commitment estimates.
    """
    from flows.collect_costs import CostCollection
    from flows.savings import SavingsReport, render_markdown

    links = []
    for attempt in ("first run", "second run: same exports, nothing duplicated"):
        raw, url = asyncio.run(_run_flow("collect-costs", SAMPLE_RUN))
        result = CostCollection.model_validate(raw)
        print(f"\n=== collect-costs ({attempt}) ===")
        print(_cost_table(result))
        links.append((f"collect-costs, {attempt}", url, result.report_files[0]))
    raw, url = asyncio.run(_run_flow("recommend-savings", SAMPLE_RUN))
    report = SavingsReport.model_validate(raw)
    print("\n=== recommend-savings (bundled sample inventory + cost dataset) ===")
    print(
        f"{report.resources} resources, ${report.monthly_cost:,.2f}/month; "
        f"{len(report.recommendations)} recommendations, "
        f"~${report.estimated_monthly_saving:,.2f}/month\n"
    )
    for r in report.recommendations[:8]:
        print(f"  ${r.estimated_monthly_saving:>9,.2f}  {r.kind:<10} {r.title}")
    path = demo_reports_dir() / "recommend-savings.md"
    path.write_text(render_markdown(report))
    links.append(("recommend-savings", url, str(path)))
    return links


def _cost_table(result) -> str:
    s = result.summary
    lines = [
        f"dataset {result.dataset}: {result.dataset_rows:,} rows "
        f"({sum(o.rows for o in result.sources):,} written this run, "
        f"{sum(o.rows_replaced for o in result.sources):,} replaced, "
        f"{result.quarantine.rows} quarantined)",
        f"{s.first_day} .. {s.last_day}: {s.effective_cost:,.2f} {s.currency} effective",
    ]
    for t in s.by_provider:
        lines.append(f"  {t.key:<8} {t.effective_cost:>14,.2f}")
    if s.month_to_date:
        m = s.month_to_date
        lines.append(
            f"{m.month} to date {m.effective_cost:,.2f}, forecast to month end "
            f"{m.forecast_month_end:,.2f}"
        )
    for a in s.anomalies[:4]:
        lines.append(
            f"  anomaly {a.day} {a.provider} {a.service} ({a.account}): {a.cost:,.2f} "
            f"vs {a.baseline:,.2f} baseline"
        )
    for r in result.recommendations[:3]:
        lines.append(f"  recommendation: {r.title} (~{r.estimated_monthly_saving:,.2f}/month)")
    lines += [f"  note: {n}" for n in result.notes]
    return "\n".join(lines)


def _incident_demo() -> list[tuple[str, str, str]]:
    """detect-incidents on the generated bad_rollout scenario (four sources, with noise)."""
    from flows.detect_incidents import IncidentReport, headline

    raw, url = asyncio.run(_run_flow("detect-incidents", SAMPLE_RUN))
    report = IncidentReport.model_validate(raw)
    print("\n=== detect-incidents (generated bad_rollout scenario) ===")
    print(headline(report))
    for incident in report.incidents:
        print(f"\n  {incident.severity.upper()} {incident.start:%H:%M:%S}-{incident.end:%H:%M:%S}")
        print(f"  {incident.title}")
        print(f"  root cause {incident.root_cause}, confidence {incident.confidence:.2f}")
        sources = sorted({t.source for t in incident.timeline})
        print(f"  {len(incident.timeline)} signals from {', '.join(sources)}")
        for s in incident.suggestions[:3]:
            print(f"  suggest ({s.risk} risk): {s.command}")
    return [("detect-incidents", url, report.report_files[0] if report.report_files else "")]
