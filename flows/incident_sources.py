"""detect-incidents' live sources: their parameter models and the submission of their tasks.

Each source model is validated with the flow's parameters (Prefect's schema for the flow
is the MCP tool's input schema), so a bad field is named before any outside call:

- ``KubernetesSource``: pods, Warning events, nodes, metrics-server usage, container logs;
- ``SentrySource``: new and regressed issues per project (or org-wide);
- ``CloudWatchSource``: log groups (``FilterLogEvents`` with a filter pattern), Logs
  Insights queries (``insights_queries``: rows with ``@timestamp`` and ``@message`` become
  log events, mapped to entities like filtered log events), metric queries, alarms;
- ``GrafanaSource``: annotations (org-wide, or with ``dashboard_search`` those of each
  dashboard the search finds, one job per dashboard; a ``service:x`` style dashboard tag
  names the entity of annotations whose own tags name none) and datasource queries.

``submit_sources`` loads each credential block (collecting its secrets for masking) and
submits one task per source job; ``collect`` waits for them and turns failures into
``SourceStatus`` rows naming the job and a secret-free reason.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, StringConstraints, model_validator

from flows.credentials import load_block
from tasks.common.retry import failure_reason
from tasks.common.secrets import block_secrets
from tasks.telemetry.cloudwatch import (
    MetricQuery,
    fetch_cloudwatch_alarm_history,
    fetch_cloudwatch_alarms,
    fetch_cloudwatch_metrics,
)
from tasks.telemetry.cloudwatch_logs import fetch_cloudwatch_logs, run_logs_insights_query
from tasks.telemetry.grafana import (
    annotation_tags,
    entities_from_labels,
    fetch_grafana_annotations,
    query_grafana_datasource,
    search_grafana_dashboards,
)
from tasks.telemetry.kubernetes import (
    fetch_k8s_events,
    fetch_k8s_logs,
    fetch_k8s_metrics,
    fetch_k8s_nodes,
    fetch_k8s_pods,
)
from tasks.telemetry.model import Event, MetricSeries
from tasks.telemetry.sentry import fetch_sentry_issues

# ----------------------------------------------------------------------------- parameters


class KubernetesSource(BaseModel):
    """A cluster (or namespace) to read pods, events, logs, nodes and usage from."""

    credentials_block: str | None = Field(
        default=None, description="prefect-kubernetes KubernetesCredentials; kubeconfig if omitted"
    )
    namespace: str | None = Field(default=None, description="All namespaces if omitted")
    label_selector: str | None = None
    log_tail_lines: Annotated[int, Field(ge=0, le=100_000)] = 2000


class SentrySource(BaseModel):
    credentials_block: str = Field(description="opsflow SentryCredentials block")
    projects: list[str] | None = Field(
        default=None, description="Project slugs; org-wide if omitted"
    )
    query: str | None = Field(default=None, description="Sentry search, e.g. 'is:unresolved'")


# CloudWatch Logs' log group name rule (1-512 of a-z A-Z 0-9 _ - / . #)
LogGroupName = Annotated[
    str, StringConstraints(pattern=r"^[A-Za-z0-9_\-/.#]+$", min_length=1, max_length=512)
]
NonBlank = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]


class InsightsQuery(BaseModel):
    """A Logs Insights query; rows with ``@timestamp`` and ``@message`` become log events."""

    query: NonBlank = Field(
        description="e.g. 'fields @timestamp, @message, @logStream, @log "
        "| filter @message like /ERROR/ | sort @timestamp desc | limit 500'"
    )
    log_groups: list[LogGroupName] = Field(min_length=1, max_length=50)
    limit: Annotated[int, Field(ge=1, le=10_000)] | None = Field(
        default=None, description="Most rows (StartQuery limit)"
    )
    max_wait_seconds: Annotated[float, Field(gt=0, le=900)] = 120.0


class CloudWatchSource(BaseModel):
    credentials_block: str | None = Field(
        default=None, description="prefect-aws AwsCredentials; default chain if omitted"
    )
    log_groups: list[LogGroupName] = Field(default_factory=list)
    filter_pattern: str | None = None
    insights_queries: list[InsightsQuery] = Field(
        default_factory=list, description="Logs Insights queries over the window"
    )
    metrics: list[MetricQuery] = Field(default_factory=list)
    alarms: bool = Field(default=True, description="Alarm states and state changes")
    alarm_name_prefix: str | None = None


class DashboardSearch(BaseModel):
    """Dashboards to read annotations from (``/api/search``: title text and/or tags)."""

    query: str = Field(default="", description="Title search text")
    tags: list[NonBlank] = Field(default_factory=list, description="Dashboards with all of these")
    limit: Annotated[int, Field(ge=1, le=200)] = 20

    @model_validator(mode="after")
    def _query_or_tags(self) -> DashboardSearch:
        if not self.query.strip() and not self.tags:
            raise ValueError("give query or tags (an empty search is every dashboard)")
        return self


class GrafanaSource(BaseModel):
    credentials_block: str = Field(description="opsflow GrafanaCredentials block")
    annotation_tags: list[str] | None = None
    dashboard_search: DashboardSearch | None = Field(
        default=None,
        description="Read the annotations of the dashboards found (instead of org-wide); "
        "'service:x' style dashboard tags name the entity of untagged annotations",
    )
    datasource_uid: str | None = Field(default=None, description="For `queries`")
    queries: list[dict[str, Any]] = Field(
        default_factory=list, description="/api/ds/query query objects (refId, expr, ...)"
    )

    @model_validator(mode="after")
    def _datasource_for_queries(self) -> GrafanaSource:
        if self.queries and not self.datasource_uid:
            raise ValueError("datasource_uid: required with queries")
        return self


class SourceStatus(BaseModel):
    source: str
    status: Literal["collected", "failed"]
    events: int = 0
    series: int = 0
    reason: str | None = None


# ----------------------------------------------------------------------------- sources


def submit_sources(kubernetes, sentry, cloudwatch, grafana, since, secrets):
    """Submit every source task; returns ``[(name, future), ...]``."""
    jobs: list[tuple[str, Any]] = []
    for i, src in enumerate(kubernetes):
        creds = load_block(
            src.credentials_block, f"kubernetes[{i}].credentials_block", "kubernetes"
        )
        secrets += block_secrets(creds)
        scope = {"namespace": src.namespace}
        pods = fetch_k8s_pods.submit(
            creds, label_selector=src.label_selector, include_healthy=True, **scope
        )
        jobs.append((f"kubernetes[{i}] pods", pods))
        jobs.append((f"kubernetes[{i}] events", fetch_k8s_events.submit(creds, since, **scope)))
        jobs.append((f"kubernetes[{i}] nodes", fetch_k8s_nodes.submit(creds)))
        jobs.append(
            (
                f"kubernetes[{i}] metrics",
                fetch_k8s_metrics.submit(creds, label_selector=src.label_selector, **scope),
            )
        )
        pods.wait()  # logs need the pod list; a failed pod list is reported as its own job
        if src.log_tail_lines and pods.state.is_completed():
            logs = fetch_k8s_logs.submit(
                creds, pods.result().pods, since=since, tail_lines=src.log_tail_lines
            )
            jobs.append((f"kubernetes[{i}] logs", logs))
    for i, src in enumerate(sentry):
        creds = load_block(src.credentials_block, f"sentry[{i}].credentials_block", "sentry")
        secrets += block_secrets(creds)
        for project in src.projects or [None]:
            future = fetch_sentry_issues.submit(
                creds, project=project, query=src.query, since=since
            )
            jobs.append((f"sentry[{i}] {project or 'organization'}", future))
    for i, src in enumerate(cloudwatch):
        creds = load_block(src.credentials_block, f"cloudwatch[{i}].credentials_block", "aws")
        secrets += block_secrets(creds)
        for group in src.log_groups:
            future = fetch_cloudwatch_logs.submit(
                creds, group, since, filter_pattern=src.filter_pattern
            )
            jobs.append((f"cloudwatch[{i}] {group}", future))
        for q, insights in enumerate(src.insights_queries):
            future = run_logs_insights_query.submit(
                creds,
                insights.log_groups,
                insights.query,
                since,
                limit=insights.limit,
                max_wait_seconds=insights.max_wait_seconds,
            )
            jobs.append((f"cloudwatch[{i}] insights[{q}]", future))
        if src.metrics:
            future = fetch_cloudwatch_metrics.submit(creds, src.metrics, since)
            jobs.append((f"cloudwatch[{i}] metrics", future))
        if src.alarms:
            prefix = src.alarm_name_prefix
            alarms = fetch_cloudwatch_alarms.submit(creds, since=since, alarm_name_prefix=prefix)
            jobs.append((f"cloudwatch[{i}] alarms", alarms))
            jobs.append(
                (
                    f"cloudwatch[{i}] alarm history",
                    fetch_cloudwatch_alarm_history.submit(creds, since),
                )
            )
    for i, src in enumerate(grafana):
        creds = load_block(src.credentials_block, f"grafana[{i}].credentials_block", "grafana")
        secrets += block_secrets(creds)
        if src.dashboard_search:
            jobs += _dashboard_annotations(i, creds, src, since)
        else:
            future = fetch_grafana_annotations.submit(creds, since, tags=src.annotation_tags)
            jobs.append((f"grafana[{i}] annotations", future))
        if src.queries:
            future = query_grafana_datasource.submit(creds, src.datasource_uid, src.queries, since)
            jobs.append((f"grafana[{i}] datasource", future))
    return jobs


def _dashboard_annotations(i: int, creds, src: GrafanaSource, since) -> list[tuple[str, Any]]:
    """Search dashboards, then read each one's annotations (a failed search is its own job)."""
    search = src.dashboard_search
    found = search_grafana_dashboards.submit(
        creds, search.query, tags=search.tags or None, limit=search.limit
    )
    jobs: list[tuple[str, Any]] = [(f"grafana[{i}] dashboard search", found)]
    found.wait()
    if not found.state.is_completed():
        return jobs
    for board in found.result():
        entity, _related = entities_from_labels(annotation_tags(board.tags)[0])
        future = fetch_grafana_annotations.submit(
            creds,
            since,
            tags=src.annotation_tags,
            dashboard_uid=board.uid,
            default_entity=entity or f"dashboard:{board.uid}",
        )
        jobs.append((f"grafana[{i}] dashboard {board.title} ({board.uid})", future))
    return jobs


def _unpack(value: Any) -> tuple[list[Event], list[MetricSeries]]:
    """Events and series from any source task's return value."""
    if isinstance(value, list):
        return [v for v in value if isinstance(v, Event)], []
    events = list(getattr(value, "events", []) or [])
    series = list(getattr(value, "series", []) or [])
    return events, series


def collect(jobs, secrets, logger) -> tuple[list[Event], list[MetricSeries], list[SourceStatus]]:
    events: list[Event] = []
    metrics: list[MetricSeries] = []
    statuses: list[SourceStatus] = []
    for name, future in jobs:
        future.wait()
        state = future.state
        if state.is_completed():
            got_events, got_series = _unpack(future.result())
            events += got_events
            metrics += got_series
            statuses.append(
                SourceStatus(
                    source=name, status="collected", events=len(got_events), series=len(got_series)
                )
            )
            continue
        reason = failure_reason(state, secrets)
        logger.warning("%s not collected: %s", name, reason)
        statuses.append(SourceStatus(source=name, status="failed", reason=reason))
    return events, metrics, statuses
