"""CloudWatch Logs telemetry: log events (``FilterLogEvents``) and Logs Insights queries.

Every call uses boto3 through a prefect-aws ``AwsCredentials`` block (its session and
``aws_client_parameters``; SDK retries off, the task retries, see ``tasks.clouds.aws.aws_client``)
in the block's region (``tasks.telemetry.cloudwatch.cloudwatch_client``):

- ``logs:FilterLogEvents`` (paginated, a filter pattern, a time window) -> ``log`` events;
- Logs Insights: ``logs:StartQuery``, then ``logs:GetQueryResults`` polled until the
  query is ``Complete`` / ``Failed`` / ``Cancelled`` / ``Timeout``, within a bounded wait
  (the query is stopped when the wait runs out) -> rows, and ``log`` events for rows that
  have ``@timestamp`` and ``@message``.

Entities: a log group/stream is mapped by ``LogEntityRule`` regexes (default:
``/aws/lambda/<fn>`` -> ``function:``, ``/ecs/<service>`` -> ``service:``, RDS groups
-> ``database:``); Container Insights application logs
(``/aws/containerinsights/<cluster>/application``) are mapped to their pod, namespace,
node and service from the Fluent Bit record (or the stream name; the service as
``tasks.telemetry.entities`` names it). Metrics and alarms are in ``tasks.telemetry.cloudwatch``.

Example:
    ```python
    from datetime import UTC, datetime, timedelta

    from prefect import flow
    from prefect_aws import AwsCredentials

    from tasks.telemetry.cloudwatch_logs import fetch_cloudwatch_logs, run_logs_insights_query


    @flow
    def checkout_errors() -> int:
        aws_credentials = AwsCredentials.load("BLOCK_NAME")
        since = datetime.now(UTC) - timedelta(hours=1)
        logs = fetch_cloudwatch_logs(
            aws_credentials, "/aws/lambda/checkout", since, filter_pattern="ERROR"
        )
        insights = run_logs_insights_query(
            aws_credentials,
            ["/aws/lambda/checkout"],
            "fields @timestamp, @message | filter @message like /ERROR/ | limit 50",
            since,
        )
        return len(logs.events) + len(insights.events)
    ```
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from prefect_aws import AwsCredentials
from pydantic import BaseModel, Field, field_validator

from tasks.common.retry import cloud_api_task, task_logger
from tasks.common.times import parse_time, time_window
from tasks.telemetry.cloudwatch import SOURCE, cloudwatch_client
from tasks.telemetry.entities import service_from_labels, service_from_pod_name
from tasks.telemetry.files import log_severity
from tasks.telemetry.model import Event, Severity, entity_key

INSIGHTS_DONE = frozenset({"Complete", "Failed", "Cancelled", "Timeout", "Unknown"})
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


# ------------------------------------------------------------- pure mapping


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
    service = service_from_labels(labels) or service_from_pod_name(pod)
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


# ------------------------------------------------------------------ tasks


def _ms(when: datetime) -> int:
    return int(when.timestamp() * 1000)


def _rules(rules: Iterable[LogEntityRule | Mapping[str, str]] | None) -> list[LogEntityRule]:
    if rules is None:
        return list(DEFAULT_LOG_RULES)
    return [r if isinstance(r, LogEntityRule) else LogEntityRule(**r) for r in rules]


@cloud_api_task("cloudwatch-logs")
def fetch_cloudwatch_logs(
    aws_credentials: AwsCredentials,
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
        aws_credentials: prefect-aws ``AwsCredentials`` block.
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
        from datetime import UTC, datetime, timedelta

        from prefect import flow
        from prefect_aws import AwsCredentials

        from tasks.telemetry.cloudwatch_logs import fetch_cloudwatch_logs


        @flow
        def checkout_error_lines() -> list[str]:
            since = datetime.now(UTC) - timedelta(hours=1)
            aws_credentials = AwsCredentials.load("BLOCK_NAME")
            logs = fetch_cloudwatch_logs(
                aws_credentials, "/aws/lambda/checkout", since, filter_pattern="ERROR"
            )
            return [event.message for event in logs.events]
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
    logs = cloudwatch_client(aws_credentials, "logs")
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
    aws_credentials: AwsCredentials,
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
        aws_credentials: prefect-aws ``AwsCredentials`` block.
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
    logs = cloudwatch_client(aws_credentials, "logs")
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
