"""CloudWatch telemetry: log events, Logs Insights, metric data and alarm states.

Every call uses boto3 through a prefect-aws ``AwsCredentials`` block (its session and
``aws_client_parameters``; SDK retries off, the task retries, see ``tasks.clouds.aws.aws_client``):

- ``logs:FilterLogEvents`` (paginated, a filter pattern, a time window) -> ``log`` events;
- Logs Insights: ``logs:StartQuery``, then ``logs:GetQueryResults`` polled until the
  query is ``Complete`` / ``Failed`` / ``Cancelled`` / ``Timeout``, within a bounded wait
  (the query is stopped when the wait runs out) -> rows, and ``log`` events for rows that
  have ``@timestamp`` and ``@message``;
- ``cloudwatch:GetMetricData`` (up to 500 queries per call, paginated) -> ``MetricSeries``;
- ``cloudwatch:DescribeAlarms`` -> current ``alarm`` events, and
  ``cloudwatch:DescribeAlarmHistory`` (``StateUpdate`` items) -> one ``alarm`` event per
  state change. ``ALARM`` is error severity, ``INSUFFICIENT_DATA`` warning, ``OK`` info.

Entities: a log group/stream is mapped by ``LogEntityRule`` regexes (default:
``/aws/lambda/<fn>`` -> ``function:``, ``/ecs/<service>`` -> ``service:``, RDS groups
-> ``database:``); Container Insights application logs
(``/aws/containerinsights/<cluster>/application``) are mapped to their pod, namespace,
node and service from the Fluent Bit record (or the stream name). Metric and alarm
dimensions are mapped by ``DIMENSION_ENTITY_TYPES`` (``FunctionName``, ``PodName``,
``InstanceId``, ``ServiceName``, ...).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from prefect_aws import AwsCredentials
from pydantic import BaseModel, Field, field_validator

from tasks.clouds.aws import aws_client
from tasks.common.retry import cloud_api_task, task_logger
from tasks.common.times import parse_time, time_window
from tasks.telemetry.files import log_severity
from tasks.telemetry.kubernetes import service_from_pod_name
from tasks.telemetry.model import Event, MetricSeries, Severity, entity_key

SOURCE = "cloudwatch"
DEFAULT_REGION = "us-east-1"
METRIC_QUERIES_PER_CALL = 500  # GetMetricData's limit
ALARM_SEVERITY: dict[str, Severity] = {
    "ALARM": "error",
    "INSUFFICIENT_DATA": "warning",
    "OK": "info",
}
INSIGHTS_DONE = frozenset({"Complete", "Failed", "Cancelled", "Timeout", "Unknown"})
# Dimension -> entity type, most specific first (the first present is the entity).
DIMENSION_ENTITY_TYPES: tuple[tuple[str, str], ...] = (
    ("PodName", "pod"),
    ("FunctionName", "function"),
    ("InstanceId", "host"),
    ("NodeName", "node"),
    ("DBInstanceIdentifier", "database"),
    ("DBClusterIdentifier", "database"),
    ("CacheClusterId", "database"),
    ("TableName", "database"),
    ("ServiceName", "service"),
    ("Service", "service"),
    ("LoadBalancer", "service"),
    ("TargetGroup", "service"),
    ("ApiName", "service"),
    ("QueueName", "service"),
    ("AutoScalingGroupName", "service"),
    ("Namespace", "namespace"),
)
# Lambda runtime lines that name no level but are failures
_LAMBDA_FAILURE = re.compile(
    r"Task timed out after|Runtime exited with error|Process exited before completing request|"
    r"Runtime\.\w+Error|INIT_REPORT .*Status: (?:error|timeout)"
)
# Container Insights stream names end in var.log.containers.<pod>_<ns>_<container>-<id>.log
_CONTAINER_STREAM = re.compile(
    r"var\.log\.containers\.(?P<pod>[^_]+)_(?P<namespace>[^_]+)_(?P<container>.+)-[0-9a-f]{64}\.log$"
)
_ACCOUNT_PREFIX = re.compile(r"^\d{12}:")


class LogEntityRule(BaseModel):
    """Map log groups (or streams) matching ``pattern`` to ``<entity_type>:<name>``.

    Args:
        pattern: a regular expression with a named group ``name``.
        entity_type: the entity type, e.g. ``function``, ``service``.
        field: match against the log ``group`` name or the ``stream`` name.
    """

    pattern: str
    entity_type: str
    field: str = "group"

    @field_validator("pattern")
    @classmethod
    def _has_name_group(cls, value: str) -> str:
        try:
            compiled = re.compile(value)
        except re.error as exc:
            raise ValueError(f"pattern: not a regular expression: {exc}") from None
        if "name" not in compiled.groupindex:
            raise ValueError(f"pattern: needs a named group (?P<name>...), got {value!r}")
        return value

    @field_validator("field")
    @classmethod
    def _field(cls, value: str) -> str:
        if value not in ("group", "stream"):
            raise ValueError(f"field: must be 'group' or 'stream', got {value!r}")
        return value


DEFAULT_LOG_RULES: tuple[LogEntityRule, ...] = (
    LogEntityRule(pattern=r"^/aws/lambda/(?P<name>[^/]+)$", entity_type="function"),
    LogEntityRule(
        pattern=r"^/(?:aws/)?ecs/(?:containerinsights/)?(?P<name>[^/]+)", entity_type="service"
    ),
    LogEntityRule(
        pattern=r"^/aws/rds/(?:instance|cluster|proxy)/(?P<name>[^/]+)", entity_type="database"
    ),
    LogEntityRule(pattern=r"^/aws/elasticbeanstalk/(?P<name>[^/]+)/", entity_type="service"),
    LogEntityRule(pattern=r"^/aws/apigateway/(?P<name>[^/]+)", entity_type="service"),
)


class MetricQuery(BaseModel):
    """One metric to read with ``GetMetricData``.

    Args:
        namespace: e.g. ``AWS/Lambda``, ``ContainerInsights``.
        metric_name: e.g. ``Errors``, ``pod_cpu_utilization``.
        dimensions: name -> value, e.g. ``{"FunctionName": "checkout"}``.
        stat: ``Average``, ``Sum``, ``Maximum``, ``p99``...
        period: seconds per sample (a multiple of 60, or 1/5/10/30 for high resolution).
        metric: the ``MetricSeries.metric`` name; default ``<metric_name>_<stat>``.
        unit: the ``MetricSeries.unit`` to record (GetMetricData does not return one).
        entity: the entity, overriding the one derived from the dimensions.
    """

    namespace: str
    metric_name: str
    dimensions: dict[str, str] = Field(default_factory=dict)
    stat: str = "Average"
    period: int = 60
    metric: str | None = None
    unit: str | None = None
    entity: str | None = None

    @field_validator("period")
    @classmethod
    def _period(cls, value: int) -> int:
        if value not in (1, 5, 10, 30) and (value < 60 or value % 60):
            raise ValueError(f"period: must be 1, 5, 10, 30 or a multiple of 60, got {value}")
        return value


class CloudWatchLogs(BaseModel):
    """``fetch_cloudwatch_logs``' result."""

    events: list[Event] = Field(default_factory=list)
    truncated: bool = Field(False, description="max_events was reached before the last page")


class InsightsResult(BaseModel):
    """A Logs Insights query's rows, and the log events among them."""

    query_id: str
    status: str
    rows: list[dict[str, str]] = Field(default_factory=list)
    events: list[Event] = Field(default_factory=list)
    statistics: dict[str, float] = Field(default_factory=dict)


class CloudWatchMetrics(BaseModel):
    """``fetch_cloudwatch_metrics``' result: series, and queries CloudWatch flagged."""

    series: list[MetricSeries] = Field(default_factory=list)
    messages: dict[str, str] = Field(
        default_factory=dict, description="metric -> CloudWatch's status / message (PartialData...)"
    )


# ------------------------------------------------------------- pure mapping


def dimension_entities(
    dimensions: Mapping[str, str],
    types: Iterable[tuple[str, str]] = DIMENSION_ENTITY_TYPES,
) -> tuple[str | None, list[str]]:
    """``(entity, related)`` from metric dimensions; ``(None, [])`` when none is mapped."""
    found = [entity_key(t, dimensions[d]) for d, t in types if dimensions.get(d)]
    found = list(dict.fromkeys(found))
    return (found[0], found[1:]) if found else (None, [])


def _container_insights(group: str, stream: str, message: str) -> tuple | None:
    if not group.startswith("/aws/containerinsights/"):
        return None
    cluster = group.split("/")[3] if len(group.split("/")) > 3 else ""
    record: dict[str, Any] = {}
    if message.lstrip().startswith("{"):
        try:
            parsed = json.loads(message)
            record = parsed if isinstance(parsed, dict) else {}
        except ValueError:
            record = {}
    k8s = record.get("kubernetes") if isinstance(record.get("kubernetes"), dict) else {}
    match = _CONTAINER_STREAM.search(stream)
    pod = k8s.get("pod_name") or (match and match["pod"])
    if not pod:
        return None
    namespace = k8s.get("namespace_name") or (match and match["namespace"])
    container = k8s.get("container_name") or (match and match["container"])
    labels = k8s.get("labels") if isinstance(k8s.get("labels"), dict) else {}
    service = (
        labels.get("app.kubernetes.io/name") or labels.get("app") or service_from_pod_name(pod)
    )
    related = [entity_key("service", service)]
    if k8s.get("host"):
        related.append(entity_key("node", k8s["host"]))
    if namespace:
        related.append(entity_key("namespace", namespace))
    text = record.get("log") if isinstance(record.get("log"), str) else message
    attrs = {"cluster": cluster, "namespace": namespace, "pod": pod, "container": container}
    return entity_key("pod", pod), related, text.rstrip("\n"), attrs


def log_entities(
    group: str,
    stream: str,
    message: str,
    rules: Iterable[LogEntityRule] = DEFAULT_LOG_RULES,
) -> tuple[str, list[str], str, dict[str, str]]:
    """``(entity, related, message, attributes)`` of a CloudWatch log event.

    Container Insights application logs give the pod (with service, node, namespace
    related) and their ``log`` text as the message; otherwise the first rule that
    matches names the entity; otherwise it is ``unknown:<group>``.
    """
    insights = _container_insights(group, stream, message)
    if insights is not None:
        entity, related, text, attrs = insights
        return entity, related, text, {k: str(v) for k, v in attrs.items() if v}
    for rule in rules:
        match = re.search(rule.pattern, group if rule.field == "group" else stream)
        if match and match.group("name"):
            return entity_key(rule.entity_type, match.group("name")), [], message, {}
    return entity_key("unknown", group), [], message, {}


def cloudwatch_severity(message: str) -> Severity:
    """``log_severity``, plus the Lambda runtime's level-less failure lines."""
    severity = log_severity(message)
    if severity in ("info", "debug") and _LAMBDA_FAILURE.search(message[:2000]):
        return "error"
    return severity


def log_event_to_event(
    group: str,
    item: Mapping[str, Any],
    rules: Iterable[LogEntityRule] = DEFAULT_LOG_RULES,
) -> Event:
    """One ``FilterLogEvents`` event (``logStreamName``, ``timestamp`` ms, ``message``)."""
    stream = str(item.get("logStreamName") or "")
    raw = str(item.get("message") or "").rstrip("\n")
    entity, related, message, attrs = log_entities(group, stream, raw, rules)
    attributes = {"log_group": group, "log_stream": stream, **attrs}
    if item.get("eventId"):
        attributes["event_id"] = str(item["eventId"])
    return Event(
        timestamp=parse_time(int(item.get("timestamp") or 0), "timestamp"),
        source=SOURCE,
        kind="log",
        entity=entity,
        related=related,
        severity=cloudwatch_severity(message),
        message=message,
        attributes=attributes,
    )


def insights_rows(results: Iterable[Iterable[Mapping[str, str]]]) -> list[dict[str, str]]:
    """``GetQueryResults`` rows (lists of ``{"field", "value"}``) as dicts."""
    return [{str(c["field"]): str(c.get("value", "")) for c in row} for row in results]


def insights_rows_to_events(
    rows: Iterable[Mapping[str, str]],
    default_group: str,
    rules: Iterable[LogEntityRule] = DEFAULT_LOG_RULES,
) -> list[Event]:
    """Log events for the rows that have ``@timestamp`` and ``@message`` (``@log`` and
    ``@logStream`` name the source when the query returns them)."""
    events = []
    for row in rows:
        if "@timestamp" not in row or "@message" not in row:
            continue
        group = _ACCOUNT_PREFIX.sub("", row.get("@log") or default_group)
        item = {
            "logStreamName": row.get("@logStream", ""),
            "message": row["@message"],
            "timestamp": int(parse_time(row["@timestamp"], "@timestamp").timestamp() * 1000),
        }
        event = log_event_to_event(group, item, rules)
        extra = {f"field.{k}": v for k, v in row.items() if not k.startswith("@")}
        events.append(event.model_copy(update={"attributes": {**event.attributes, **extra}}))
    return events


def metric_data_query(query: MetricQuery, query_id: str) -> dict[str, Any]:
    """The ``MetricDataQueries`` item for one ``MetricQuery``."""
    return {
        "Id": query_id,
        "MetricStat": {
            "Metric": {
                "Namespace": query.namespace,
                "MetricName": query.metric_name,
                "Dimensions": [{"Name": k, "Value": v} for k, v in query.dimensions.items()],
            },
            "Period": query.period,
            "Stat": query.stat,
        },
        "ReturnData": True,
    }


def metric_result_to_series(
    query: MetricQuery, stamps: list[datetime], values: list[float]
) -> MetricSeries:
    """A ``MetricSeries`` for one query's samples (sorted oldest first)."""
    entity, related = dimension_entities(query.dimensions)
    if query.entity:
        related = [e for e in [entity, *related] if e and e != query.entity]
        entity = query.entity
    pairs = sorted(zip((parse_time(s) for s in stamps), values, strict=True))
    attributes = {"namespace": query.namespace, "metric_name": query.metric_name}
    attributes.update({"stat": query.stat, "period": str(query.period)})
    attributes.update({f"dimension.{k}": v for k, v in query.dimensions.items()})
    return MetricSeries(
        source=SOURCE,
        entity=entity or entity_key("unknown", f"{query.namespace}/{query.metric_name}"),
        related=related,
        metric=query.metric or f"{query.metric_name}_{query.stat}",
        unit=query.unit,
        timestamps=[p[0] for p in pairs],
        values=[float(p[1]) for p in pairs],
        attributes=attributes,
    )


def _alarm_dimensions(alarm: Mapping[str, Any]) -> dict[str, str]:
    dims = {d["Name"]: d["Value"] for d in alarm.get("Dimensions") or [] if "Name" in d}
    for metric in alarm.get("Metrics") or []:  # metric-math alarms
        stat = (metric.get("MetricStat") or {}).get("Metric") or {}
        for d in stat.get("Dimensions") or []:
            dims.setdefault(d["Name"], d["Value"])
    return dims


def alarm_entities(alarm: Mapping[str, Any] | None, name: str) -> tuple[str, list[str]]:
    """An alarm's entity from its (or its metrics') dimensions, else ``unknown:alarm/<name>``."""
    entity, related = dimension_entities(_alarm_dimensions(alarm or {}))
    return (entity, related) if entity else (entity_key("unknown", f"alarm/{name}"), [])


def _alarm_attributes(alarm: Mapping[str, Any] | None) -> dict[str, str]:
    alarm = alarm or {}
    dims = _alarm_dimensions(alarm)
    attrs = {
        "alarm_arn": alarm.get("AlarmArn"),
        "namespace": alarm.get("Namespace"),
        "metric_name": alarm.get("MetricName"),
        "threshold": alarm.get("Threshold"),
        "comparison": alarm.get("ComparisonOperator"),
        "dimensions": ",".join(f"{k}={v}" for k, v in dims.items()),
    }
    return {k: str(v) for k, v in attrs.items() if v not in (None, "")}


def alarm_to_event(alarm: Mapping[str, Any], alarm_type: str = "MetricAlarm") -> Event:
    """An alarm's current state (``DescribeAlarms`` item) as an ``alarm`` event at its
    ``StateUpdatedTimestamp``."""
    name = str(alarm.get("AlarmName", ""))
    state = str(alarm.get("StateValue", "INSUFFICIENT_DATA"))
    entity, related = alarm_entities(alarm, name)
    reason = str(alarm.get("StateReason") or "")
    return Event(
        timestamp=parse_time(alarm.get("StateUpdatedTimestamp") or datetime.now(UTC)),
        source=SOURCE,
        kind="alarm",
        entity=entity,
        related=related,
        severity=ALARM_SEVERITY.get(state, "warning"),
        message=f"{name} is {state}" + (f": {reason}" if reason else ""),
        attributes={
            "alarm_name": name,
            "alarm_type": alarm_type,
            "state": state,
            "current": "true",
            "state_reason": reason,
            **_alarm_attributes(alarm),
        },
    )


def alarm_history_to_event(
    item: Mapping[str, Any], alarm: Mapping[str, Any] | None = None
) -> Event | None:
    """One ``StateUpdate`` history item as an ``alarm`` event (None for other item types).

    ``HistoryData`` is a JSON document with ``oldState`` / ``newState``
    (``stateValue``, ``stateReason``); ``alarm`` (its ``DescribeAlarms`` item) gives the
    entity.
    """
    if item.get("HistoryItemType", "StateUpdate") != "StateUpdate":
        return None
    name = str(item.get("AlarmName", ""))
    try:
        data = json.loads(item.get("HistoryData") or "{}")
    except ValueError:
        data = {}
    new = data.get("newState") or {}
    old = data.get("oldState") or {}
    state = str(new.get("stateValue") or "")
    if not state:  # fall back to the summary: "Alarm updated from OK to ALARM"
        match = re.search(r"to (\w+)\s*$", str(item.get("HistorySummary") or ""))
        state = match.group(1) if match else "INSUFFICIENT_DATA"
    entity, related = alarm_entities(alarm, name)
    reason = str(new.get("stateReason") or "")
    previous = str(old.get("stateValue") or "")
    summary = f"{name} changed" + (f" from {previous}" if previous else "") + f" to {state}"
    return Event(
        timestamp=parse_time(item.get("Timestamp")),
        source=SOURCE,
        kind="alarm",
        entity=entity,
        related=related,
        severity=ALARM_SEVERITY.get(state, "warning"),
        message=summary + (f": {reason}" if reason else ""),
        attributes={
            "alarm_name": name,
            "alarm_type": str(item.get("AlarmType") or "MetricAlarm"),
            "state": state,
            "previous_state": previous,
            "state_reason": reason,
            **_alarm_attributes(alarm),
        },
    )


# ------------------------------------------------------------------ tasks


def _ms(when: datetime) -> int:
    return int(when.timestamp() * 1000)


def _service(credentials: AwsCredentials, service: str) -> Any:
    region = credentials.region_name or DEFAULT_REGION
    return aws_client(credentials, service, region)


def _rules(rules: Iterable[LogEntityRule | Mapping[str, str]] | None) -> list[LogEntityRule]:
    if rules is None:
        return list(DEFAULT_LOG_RULES)
    return [r if isinstance(r, LogEntityRule) else LogEntityRule(**r) for r in rules]


@cloud_api_task("cloudwatch-logs")
def fetch_cloudwatch_logs(
    credentials: AwsCredentials,
    log_group: str,
    since: datetime,
    until: datetime | None = None,
    *,
    filter_pattern: str | None = None,
    log_stream_prefix: str | None = None,
    max_events: int = 10_000,
    entity_rules: list[LogEntityRule] | None = None,
) -> CloudWatchLogs:
    """Log events of one log group in ``[since, until]`` (``FilterLogEvents``, paginated).

    Args:
        credentials: prefect-aws ``AwsCredentials`` block.
        log_group: the log group name, e.g. ``/aws/lambda/checkout``.
        since: window start (naive means UTC).
        until: window end; default now.
        filter_pattern: CloudWatch filter pattern, e.g. ``"ERROR"``, ``"?ERROR ?WARN"``,
            ``'{ $.level = "error" }'``.
        log_stream_prefix: only streams starting with this.
        max_events: stop after this many events (``truncated`` says so).
        entity_rules: group/stream -> entity rules (default ``DEFAULT_LOG_RULES``).

    Returns:
        ``CloudWatchLogs``: events oldest first.

    Example:
        ```python
        fetch_cloudwatch_logs(creds, "/aws/lambda/checkout", start, filter_pattern="ERROR")
        ```
    """
    start, end = time_window(since, until)
    if not log_group or not log_group.strip():
        raise ValueError("log_group: must be a log group name")
    if isinstance(max_events, bool) or max_events < 1:
        raise ValueError(f"max_events: must be positive, got {max_events!r}")
    rules = _rules(entity_rules)
    params: dict[str, Any] = {
        "logGroupName": log_group,
        "startTime": _ms(start),
        "endTime": _ms(end),
    }
    if filter_pattern:
        params["filterPattern"] = filter_pattern
    if log_stream_prefix:
        params["logStreamNamePrefix"] = log_stream_prefix
    logs = _service(credentials, "logs")
    out = CloudWatchLogs()
    for page in logs.get_paginator("filter_log_events").paginate(**params):
        for item in page.get("events") or []:
            if len(out.events) >= max_events:
                out.truncated = True
                break
            out.events.append(log_event_to_event(log_group, item, rules))
        if out.truncated:
            break
    out.events.sort(key=lambda e: e.timestamp)
    task_logger(__name__).info(
        "CloudWatch logs %s: %d event(s)%s",
        log_group,
        len(out.events),
        " (truncated at max_events)" if out.truncated else "",
    )
    return out


@cloud_api_task("cloudwatch-logs-insights")
def run_logs_insights_query(
    credentials: AwsCredentials,
    log_groups: list[str],
    query: str,
    since: datetime,
    until: datetime | None = None,
    *,
    limit: int | None = None,
    max_wait_seconds: float = 120.0,
    poll_seconds: float = 1.0,
    entity_rules: list[LogEntityRule] | None = None,
) -> InsightsResult:
    """Run a Logs Insights query and wait (bounded) for its results.

    Args:
        credentials: prefect-aws ``AwsCredentials`` block.
        log_groups: the log groups to query (1..50).
        query: the Insights query, e.g. ``"fields @timestamp, @message, @logStream |
            filter @message like /ERROR/ | sort @timestamp desc | limit 200"``.
        since: window start (naive means UTC); Insights counts whole seconds.
        until: window end; default now.
        limit: most rows (``StartQuery``'s ``limit``).
        max_wait_seconds: how long to poll; then the query is stopped and the task fails
            with ``TimeoutError`` (which the task retries).
        poll_seconds: pause between ``GetQueryResults`` calls.
        entity_rules: group/stream -> entity rules for the log events.

    Returns:
        ``InsightsResult``: the rows (field -> value) in the query's order, the log
        events among them (oldest first), the scan statistics.

    Raises:
        RuntimeError: the query ended ``Failed``, ``Cancelled`` or ``Timeout``.
    """
    start, end = time_window(since, until)
    if not log_groups or len(log_groups) > 50:
        raise ValueError(f"log_groups: give 1 to 50 log groups, got {len(log_groups or [])}")
    if not query or not query.strip():
        raise ValueError("query: must be a Logs Insights query")
    if max_wait_seconds <= 0 or poll_seconds <= 0:
        raise ValueError("max_wait_seconds, poll_seconds: must be positive")
    logs = _service(credentials, "logs")
    params: dict[str, Any] = {
        "logGroupNames": list(log_groups),
        "startTime": int(start.timestamp()),
        "endTime": int(end.timestamp()),
        "queryString": query,
    }
    if limit is not None:
        params["limit"] = limit
    query_id = logs.start_query(**params)["queryId"]
    deadline = time.monotonic() + max_wait_seconds
    while True:
        answer = logs.get_query_results(queryId=query_id)
        status = str(answer.get("status", "Unknown"))
        if status in INSIGHTS_DONE:
            break
        if time.monotonic() >= deadline:
            try:
                logs.stop_query(queryId=query_id)
            except Exception as exc:  # the query may have just finished: nothing to stop
                task_logger(__name__).info("stop_query %s: %s", query_id, exc)
            raise TimeoutError(
                f"Logs Insights query {query_id} still {status} after {max_wait_seconds:.0f}s"
            )
        time.sleep(poll_seconds)
    if status != "Complete":
        raise RuntimeError(f"Logs Insights query {query_id} ended {status}")
    rows = insights_rows(answer.get("results") or [])
    events = insights_rows_to_events(rows, log_groups[0], _rules(entity_rules))
    events.sort(key=lambda e: e.timestamp)
    stats = {
        str(k): float(v)
        for k, v in (answer.get("statistics") or {}).items()
        if isinstance(v, int | float)
    }
    task_logger(__name__).info(
        "Logs Insights %s: %d row(s), %d log event(s)", query_id, len(rows), len(events)
    )
    return InsightsResult(
        query_id=query_id, status=status, rows=rows, events=events, statistics=stats
    )


@cloud_api_task("cloudwatch-metrics")
def fetch_cloudwatch_metrics(
    credentials: AwsCredentials,
    queries: list[MetricQuery],
    since: datetime,
    until: datetime | None = None,
) -> CloudWatchMetrics:
    """Metric data for ``queries`` (``GetMetricData``, 500 per call, paginated).

    Args:
        credentials: prefect-aws ``AwsCredentials`` block.
        queries: the metrics (namespace, name, dimensions, stat, period).
        since: window start (naive means UTC).
        until: window end; default now.

    Returns:
        ``CloudWatchMetrics``: one series per query (entity from its dimensions, e.g.
        ``FunctionName`` -> ``function:<name>``), and CloudWatch's flags for queries
        whose data is partial or failed.

    Example:
        ```python
        q = MetricQuery(namespace="AWS/Lambda", metric_name="Errors",
                        dimensions={"FunctionName": "checkout"}, stat="Sum")
        fetch_cloudwatch_metrics(creds, [q], start).series[0].metric  # 'Errors_Sum'
        ```
    """
    start, end = time_window(since, until)
    if not queries:
        raise ValueError("queries: give at least one metric query")
    queries = [q if isinstance(q, MetricQuery) else MetricQuery(**q) for q in queries]
    cloudwatch = _service(credentials, "cloudwatch")
    out = CloudWatchMetrics()
    for offset in range(0, len(queries), METRIC_QUERIES_PER_CALL):
        batch = queries[offset : offset + METRIC_QUERIES_PER_CALL]
        ids = {f"m{offset + i}": q for i, q in enumerate(batch)}
        samples: dict[str, tuple[list[datetime], list[float]]] = {i: ([], []) for i in ids}
        paginator = cloudwatch.get_paginator("get_metric_data")
        for page in paginator.paginate(
            MetricDataQueries=[metric_data_query(q, i) for i, q in ids.items()],
            StartTime=start,
            EndTime=end,
            ScanBy="TimestampAscending",
        ):
            for result in page.get("MetricDataResults") or []:
                stamps, values = samples.setdefault(result["Id"], ([], []))
                stamps.extend(result.get("Timestamps") or [])
                values.extend(result.get("Values") or [])
                code = result.get("StatusCode", "Complete")
                messages = "; ".join(m.get("Value", "") for m in result.get("Messages") or [])
                if code != "Complete" or messages:
                    label = ids[result["Id"]].metric or result.get("Label") or result["Id"]
                    out.messages[label] = f"{code}: {messages}".rstrip(": ")
        for query_id, query in ids.items():
            stamps, values = samples[query_id]
            out.series.append(metric_result_to_series(query, stamps, values))
    task_logger(__name__).info(
        "CloudWatch metrics: %d series, %d sample(s)",
        len(out.series),
        sum(len(s.values) for s in out.series),
    )
    return out


def _describe_alarms(cloudwatch: Any, **params: Any) -> list[tuple[dict[str, Any], str]]:
    alarms: list[tuple[dict[str, Any], str]] = []
    paginator = cloudwatch.get_paginator("describe_alarms")
    for page in paginator.paginate(AlarmTypes=["MetricAlarm", "CompositeAlarm"], **params):
        alarms += [(a, "MetricAlarm") for a in page.get("MetricAlarms") or []]
        alarms += [(a, "CompositeAlarm") for a in page.get("CompositeAlarms") or []]
    return alarms


@cloud_api_task("cloudwatch-alarms")
def fetch_cloudwatch_alarms(
    credentials: AwsCredentials,
    *,
    since: datetime | None = None,
    alarm_names: list[str] | None = None,
    alarm_name_prefix: str | None = None,
    state_value: str | None = None,
) -> list[Event]:
    """Alarms' current states (``DescribeAlarms``) as ``alarm`` events.

    Args:
        credentials: prefect-aws ``AwsCredentials`` block.
        since: keep alarms whose state changed at or after this time, and every alarm
            in ``ALARM`` (an ongoing alarm matters however old); None keeps all.
        alarm_names: only these alarms (at most 100).
        alarm_name_prefix: only alarms whose name starts with this.
        state_value: only alarms in this state (``OK``, ``ALARM``, ``INSUFFICIENT_DATA``).

    Returns:
        One event per alarm at its ``StateUpdatedTimestamp``, oldest first.
    """
    if state_value is not None and state_value not in ALARM_SEVERITY:
        raise ValueError(f"state_value: must be one of {', '.join(ALARM_SEVERITY)}")
    if alarm_names and alarm_name_prefix:
        raise ValueError("alarm_names, alarm_name_prefix: give one or the other")
    if alarm_names is not None and len(alarm_names) > 100:
        raise ValueError(f"alarm_names: at most 100 names, got {len(alarm_names)}")
    floor = parse_time(since, "since") if since is not None else None
    params: dict[str, Any] = {}
    if alarm_names:
        params["AlarmNames"] = list(alarm_names)
    if alarm_name_prefix:
        params["AlarmNamePrefix"] = alarm_name_prefix
    if state_value:
        params["StateValue"] = state_value
    events = [
        alarm_to_event(alarm, kind)
        for alarm, kind in _describe_alarms(_service(credentials, "cloudwatch"), **params)
    ]
    kept = [  # the state is checked here too: moto ignores StateValue next to a prefix
        e
        for e in events
        if (state_value is None or e.attributes["state"] == state_value)
        and (floor is None or e.timestamp >= floor or e.attributes["state"] == "ALARM")
    ]
    kept.sort(key=lambda e: e.timestamp)
    task_logger(__name__).info(
        "CloudWatch alarms: %d of %d (%d in ALARM)",
        len(kept),
        len(events),
        sum(e.attributes["state"] == "ALARM" for e in kept),
    )
    return kept


@cloud_api_task("cloudwatch-alarm-history")
def fetch_cloudwatch_alarm_history(
    credentials: AwsCredentials,
    since: datetime,
    until: datetime | None = None,
    *,
    alarm_name: str | None = None,
    max_items: int = 5_000,
) -> list[Event]:
    """Alarm state changes in ``[since, until]`` (``DescribeAlarmHistory``, ``StateUpdate``).

    The history names alarms only; their dimensions (the entity) come from
    ``DescribeAlarms`` for the alarms that changed. A deleted alarm's changes keep
    ``unknown:alarm/<name>`` as entity.

    Args:
        credentials: prefect-aws ``AwsCredentials`` block.
        since: window start (naive means UTC).
        until: window end; default now.
        alarm_name: only this alarm's history.
        max_items: stop after this many history items.

    Returns:
        One ``alarm`` event per state change, oldest first.
    """
    start, end = time_window(since, until)
    cloudwatch = _service(credentials, "cloudwatch")
    params: dict[str, Any] = {
        "HistoryItemType": "StateUpdate",
        "StartDate": start,
        "EndDate": end,
        "ScanBy": "TimestampAscending",
    }
    if alarm_name:
        params["AlarmName"] = alarm_name
    items: list[dict[str, Any]] = []
    for page in cloudwatch.get_paginator("describe_alarm_history").paginate(**params):
        items.extend(page.get("AlarmHistoryItems") or [])
        if len(items) >= max_items:
            items = items[:max_items]
            break
    names = sorted({str(i.get("AlarmName")) for i in items})
    alarms: dict[str, dict[str, Any]] = {}
    for offset in range(0, len(names), 100):
        for alarm, _kind in _describe_alarms(cloudwatch, AlarmNames=names[offset : offset + 100]):
            alarms[str(alarm.get("AlarmName"))] = alarm
    events = [
        e
        for e in (alarm_history_to_event(i, alarms.get(str(i.get("AlarmName")))) for i in items)
        if e is not None
    ]
    events.sort(key=lambda e: e.timestamp)
    task_logger(__name__).info(
        "CloudWatch alarm history: %d state change(s) of %d alarm(s)", len(events), len(names)
    )
    return events
