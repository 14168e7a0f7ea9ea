"""Detect and correlate incidents across Kubernetes, Sentry, CloudWatch and Grafana.

Each source is a retried task mapping its API into one event model and one metric
model (``tasks.telemetry.model``). The pipeline (``tasks.incidents.pipeline``) mines log
templates, embeds and clusters the unique templates, scores anomalies with a weighted
ensemble, joins anomalies that share an entity or meaning within a time window into
incidents, names a probable root cause and attaches remediation suggestions. Nothing
is executed: ``remediate`` applies one suggestion, after approval.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Literal

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE
from pydantic import BaseModel, Field

from flows.incident_sources import (
    CloudWatchSource,
    GrafanaSource,
    KubernetesSource,
    SentrySource,
    SourceStatus,
    collect,
    submit_sources,
)
from samples.scenarios import SCENARIO_NAMES, generate
from tasks.common.atomic import write_text_atomic
from tasks.common.charts import svg_data_uri, timeline_svg
from tasks.common.paths import demo_reports_dir, reports_dir
from tasks.incidents.anomaly.ensemble import AnomalyConfig
from tasks.incidents.pipeline import (
    PipelineSteps,
    correlate_signals,
    embed_and_cluster,
    mine_templates,
    run_pipeline,
    score_anomalies,
)
from tasks.incidents.signals import AnomalySignal, Incident
from tasks.telemetry.files import load_telemetry_files

REPORT_KEY = "detect-incidents-report"
SUGGESTIONS_KEY = "detect-incidents-suggestions"
DEFAULT_SCENARIO = "bad_rollout"
NO_SOURCE = (
    "no telemetry source configured: set kubernetes, sentry, cloudwatch, grafana, "
    "events_file or metrics_file (run parameters, or [flows.detect-incidents.parameters] "
    "in opsflow.toml), or samples: true for a generated scenario"
)


# ----------------------------------------------------------------------------- results


class IncidentReport(BaseModel):
    """Result of ``detect_incidents``."""

    start: datetime | None
    end: datetime | None
    baseline_end: datetime | None
    sources: list[SourceStatus]
    partial: bool
    missing: list[str] = Field(default_factory=list)
    events: int
    log_lines: int
    metric_series: int
    templates: int
    clusters: int
    clustering_quality: dict[str, float | None] = Field(default_factory=dict)
    signals: int
    incidents: list[Incident] = Field(description="Most severe and confident first")
    top_signals: list[AnomalySignal] = Field(description="Highest-scoring signals (up to 20)")
    report_files: list[str] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)


# ----------------------------------------------------------------------------- tasks


def _step(name: str, fn):
    """A pipeline step as a Prefect task (a task run in the UI, no caching or persisting)."""
    return task(fn, name=name, cache_policy=NO_CACHE, persist_result=False)


# The pipeline of tasks.incidents.pipeline.run_pipeline, each step a task run.
TASK_STEPS = PipelineSteps(
    mine=_step("mine-templates", mine_templates),
    embed_and_cluster=_step("embed-and-cluster-templates", embed_and_cluster),
    score=_step("score-anomalies", score_anomalies),
    correlate=_step("correlate-incidents", correlate_signals),
)


# ----------------------------------------------------------------------------- the flow


@flow(name="detect-incidents", persist_result=True, result_serializer="json", log_prints=True)
def detect_incidents(
    kubernetes: list[KubernetesSource] = [],  # noqa: B006
    sentry: list[SentrySource] = [],  # noqa: B006
    cloudwatch: list[CloudWatchSource] = [],  # noqa: B006
    grafana: list[GrafanaSource] = [],  # noqa: B006
    events_file: str | None = None,
    metrics_file: str | None = None,
    samples: bool = False,
    scenario: list[Literal[SCENARIO_NAMES]] | None = None,  # type: ignore[valid-type]
    scenario_lines: Annotated[int, Field(ge=1000, le=1_000_000)] = 20_000,
    seed: int = 7,
    since_minutes: Annotated[int, Field(ge=5, le=7 * 24 * 60)] = 120,
    baseline_end: datetime | None = None,
    window_seconds: Annotated[int, Field(ge=5, le=3600)] = 60,
    correlation_window_minutes: Annotated[int, Field(ge=1, le=240)] = 10,
    dependencies: dict[str, list[str]] | None = None,
) -> IncidentReport:
    """Find incidents in Kubernetes, Sentry, CloudWatch and Grafana telemetry, with root cause.

    With no source it fails at once, naming what to set. ``samples: true`` analyses a
    generated scenario instead (``bad_rollout``: a deploy that crash-loops, with
    realistic noise in four sources), so it runs without any account. Suggestions are
    never executed here; see the ``remediate`` flow.

    Args:
        kubernetes: clusters/namespaces: pod states, Warning events, container logs,
            node conditions, metrics-server usage.
        sentry: organizations/projects: new and regressed issues.
        cloudwatch: log groups (filter pattern), Logs Insights queries, metric queries,
            alarms.
        grafana: annotations (deploys, alerts; org-wide, or of the dashboards a
            ``dashboard_search`` finds) and datasource queries.
        events_file: exported events as JSON Lines (timestamp, source, entity,
            severity, message, attributes).
        metrics_file: exported metric samples as CSV (timestamp, entity, metric, value).
        samples: analyse generated synthetic telemetry (the ``scenario`` names, default
            bad_rollout); report files go to ``$OPSFLOW_HOME/demo/reports``.
        scenario: the synthetic scenarios to generate; naming one asks for samples too,
            added to any live source given.
        scenario_lines: events to generate per scenario run.
        seed: scenario random seed.
        since_minutes: how far back live sources are read.
        baseline_end: end of the "normal" period the detection period is compared with;
            default halfway through the data.
        window_seconds: anomaly scoring window.
        correlation_window_minutes: signals further apart than this never join directly.
        dependencies: service -> services it calls; makes root cause "most upstream".

    Returns:
        IncidentReport with incidents (timeline, root cause, confidence, suggestions),
        per-source status and pipeline figures.

    Example:
        ```python
        from flows.detect_incidents import detect_incidents

        report = detect_incidents(sentry=[{"credentials_block": "sentry", "projects": ["api"]}],
                                  kubernetes=[{"namespace": "shop"}])
        for incident in report.incidents:
            print(incident.title, incident.root_cause, incident.suggestions[0].command)
        ```
    """
    logger = get_run_logger()
    secrets: list[str] = []
    notes: list[str] = []
    since = datetime.now(UTC) - timedelta(minutes=since_minutes)
    live = bool(kubernetes or sentry or cloudwatch or grafana)
    samples = samples or bool(scenario)  # a scenario named is samples asked for by name
    if not (samples or live or events_file or metrics_file):
        raise ValueError(NO_SOURCE)  # before any outside call
    for field, path in (("events_file", events_file), ("metrics_file", metrics_file)):
        if path and not Path(path).expanduser().is_file():
            raise ValueError(f"{field}: no such file: {path}")  # before any outside call
    jobs = submit_sources(kubernetes, sentry, cloudwatch, grafana, since, secrets)
    events, metrics, statuses = collect(jobs, secrets, logger)
    deps = dict(dependencies or {})
    for path, label, is_events in (
        (events_file, "events file", True),
        (metrics_file, "metrics file", False),
    ):
        if path:
            file = Path(path).expanduser()
            got = load_telemetry_files(*((file, None) if is_events else (None, file)))
            bad = got.bad_line_count
            first_bad = next(iter(got.bad_lines.values()), [None])[0]
            events += got.events
            metrics += got.series
            statuses.append(
                SourceStatus(
                    source=f"{label} {path}",
                    status="collected",
                    events=len(got.events),
                    series=len(got.series),
                    reason=f"{bad} bad line(s) skipped: {first_bad}" if bad else None,
                )
            )
    if samples:
        names = list(scenario or [DEFAULT_SCENARIO])
        generated = generate(names, seed=seed, lines=scenario_lines)
        events += generated.events
        metrics += generated.metrics
        deps = {**generated.dependencies, **deps}
        statuses.append(
            SourceStatus(
                source=f"scenario {'+'.join(names)} (seed {seed})",
                status="collected",
                events=len(generated.events),
                series=len(generated.metrics),
            )
        )
        if not (scenario or live):
            notes.append(
                "Sample run: analysed a generated bad_rollout scenario (synthetic "
                "Kubernetes, Sentry, CloudWatch and Grafana telemetry with noise)."
            )
    events.sort(key=lambda e: e.timestamp)
    config = AnomalyConfig(window_seconds=window_seconds, baseline_end=baseline_end)
    result = run_pipeline(
        events,
        metrics,
        config=config,
        window=timedelta(minutes=correlation_window_minutes),
        dependencies=deps or None,
        steps=TASK_STEPS,
    )
    mined, space, signals = result.mined, result.space, result.signals
    failed = [s for s in statuses if s.status == "failed"]
    stamps = [e.timestamp for e in events]
    report = IncidentReport(
        start=min(stamps) if stamps else None,
        end=max(stamps) if stamps else None,
        baseline_end=_baseline_end(stamps, config),
        sources=statuses,
        partial=bool(failed),
        missing=[f"{s.source}: {s.reason}" for s in failed],
        events=len(events),
        log_lines=mined.log_lines,
        metric_series=len(metrics),
        templates=len(mined.templates),
        clusters=len(space.clusters.clusters),
        clustering_quality=space.quality,
        signals=len(signals),
        incidents=sorted(result.incidents, key=_rank),
        top_signals=sorted(signals, key=lambda s: s.score, reverse=True)[:20],
        notes=notes,
    )
    report.report_files = publish_incident_artifacts(
        report, signals, demo_reports_dir() if samples else reports_dir()
    )
    print(headline(report))
    return report


def _rank(incident: Incident) -> tuple:
    from tasks.telemetry.model import SEVERITY_RANK

    return (-SEVERITY_RANK[incident.severity], -incident.confidence, incident.start)


def _baseline_end(stamps: list[datetime], config: AnomalyConfig) -> datetime | None:
    if config.baseline_end or not stamps:
        return config.baseline_end
    first, last = min(stamps), max(stamps)
    return first + (last - first) * config.baseline_fraction


# ----------------------------------------------------------------------------- artifacts


def headline(report: IncidentReport) -> str:
    text = (
        f"{report.events:,} events ({report.log_lines:,} log lines, {report.templates} templates "
        f"in {report.clusters} clusters), {report.metric_series} metric series -> "
        f"{report.signals} anomaly signals -> {len(report.incidents)} incident(s)"
    )
    if report.incidents:
        top = report.incidents[0]
        text += f"; top: {top.title} (root cause {top.root_cause}, confidence {top.confidence:.2f})"
    return text


def render_markdown(report: IncidentReport, chart_uri: str | None = None) -> str:
    lines = ["# Incidents", "", headline(report) + ".", ""]
    if report.partial:
        lines += ["**Partial result.** Missing:", ""] + [f"- {m}" for m in report.missing] + [""]
    if chart_uri:
        lines += [f"![Incident timeline]({chart_uri})", ""]
    for inc in report.incidents:
        lines += [
            f"## {inc.severity.upper()}: {inc.title}",
            "",
            f"- **When:** {inc.start:%Y-%m-%d %H:%M:%S} to {inc.end:%H:%M:%S} UTC",
            f"- **Probable root cause:** `{inc.root_cause}` (confidence {inc.confidence:.2f})",
            f"- **Affected:** {', '.join(f'`{e}`' for e in inc.entities[:8])}",
            "",
            "| time | source | entity | signal | joined by |",
            "|---|---|---|---|---|",
        ]
        for t in inc.timeline[:25]:
            why = ", ".join(t.joined_by) or "first"
            title = t.title.replace("|", "/")[:110]
            lines.append(f"| {t.at:%H:%M:%S} | {t.source} | `{t.entity}` | {title} | {why} |")
        if len(inc.timeline) > 25:
            lines.append(f"| | | | ... {len(inc.timeline) - 25} more | |")
        if inc.suggestions:
            lines += ["", "**Suggested remediation** (not executed):", ""]
            for s in inc.suggestions:
                auto = "automatable" if s.automatable else "manual"
                lines.append(f"- `{s.command}` ({s.type}, {s.risk} risk, {auto}): {s.reason}")
        lines.append("")
    lines += ["## Sources", "", "| source | status | events | series | note |"]
    lines += ["|---|---|---:|---:|---|"]
    for s in report.sources:
        note = (s.reason or "").replace("|", "/")
        lines.append(f"| {s.source} | {s.status} | {s.events:,} | {s.series} | {note} |")
    q = report.clustering_quality
    if q:
        lines += [
            "",
            f"Template clustering: silhouette {q.get('silhouette')}, "
            f"Davies-Bouldin {q.get('davies_bouldin')}.",
        ]
    lines += [""] + [f"- {n}" for n in report.notes]
    return "\n".join(lines) + "\n"


def incident_chart(report: IncidentReport, signals: list[AnomalySignal]) -> str:
    by_entity: dict[str, list] = {}
    for s in sorted(signals, key=lambda s: s.start):
        by_entity.setdefault(s.entity, []).append((s.start, s.source, f"{s.kind}: {s.title}"))
    in_incidents = {e for inc in report.incidents for e in inc.entities}
    rows = sorted(by_entity.items(), key=lambda kv: (kv[0] not in in_incidents, kv[1][0][0]))
    spans = [(i.start, i.end, i.title[:40]) for i in report.incidents]
    return timeline_svg(rows[:30], title="Anomaly signals by entity", spans=spans)


@task(name="publish-incident-artifacts", cache_policy=NO_CACHE, persist_result=False)
def publish_incident_artifacts(
    report: IncidentReport, signals: list[AnomalySignal], folder: Path
) -> list[str]:
    """Markdown incident report with a timeline chart, a table of suggestions, report files."""
    svg = incident_chart(report, signals)
    create_markdown_artifact(
        key=REPORT_KEY, markdown=render_markdown(report, svg_data_uri(svg)), description="Incidents"
    )
    create_table_artifact(
        key=SUGGESTIONS_KEY,
        table=[
            {
                "incident": inc.title,
                "type": s.type,
                "target": s.target,
                "command": s.command,
                "risk": s.risk,
                "automatable": s.automatable,
                "reason": s.reason,
            }
            for inc in report.incidents
            for s in inc.suggestions
        ]
        or [{"incident": "none", "reason": "no incident found"}],
        description="Remediation suggestions (never executed by detect-incidents)",
    )
    chart, text = folder / "detect-incidents-timeline.svg", folder / "detect-incidents.md"
    write_text_atomic(chart, svg)
    write_text_atomic(text, render_markdown(report, chart.name))
    return [str(text), str(chart)]
