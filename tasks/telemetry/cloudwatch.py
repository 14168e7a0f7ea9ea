"""CloudWatch metrics and alarms: ``GetMetricData`` series, alarm states and their history.

Every call uses boto3 through a prefect-aws ``AwsCredentials`` block (its session and
``aws_client_parameters``; SDK retries off, the task retries, see ``tasks.clouds.aws.aws_client``)
in the block's region (``us-east-1`` when it names none):

- ``cloudwatch:GetMetricData`` (``tasks.clouds.aws.get_metric_data``: up to 500 queries
  per call, paginated) -> ``MetricSeries``;
- ``cloudwatch:DescribeAlarms`` -> current ``alarm`` events, and
  ``cloudwatch:DescribeAlarmHistory`` (``StateUpdate`` items) -> one ``alarm`` event per
  state change. ``ALARM`` is error severity, ``INSUFFICIENT_DATA`` warning, ``OK`` info.

Metric and alarm dimensions are mapped to entities by ``DIMENSION_ENTITY_TYPES``
(``FunctionName``, ``PodName``, ``InstanceId``, ``ServiceName``, ...). CloudWatch Logs
(``FilterLogEvents``, Logs Insights) are read by ``tasks.telemetry.cloudwatch_logs``.

Example:
    ```python
    from datetime import UTC, datetime, timedelta

    from prefect import flow
    from prefect_aws import AwsCredentials

    from tasks.telemetry.cloudwatch import (
        MetricQuery,
        fetch_cloudwatch_alarm_history,
        fetch_cloudwatch_alarms,
        fetch_cloudwatch_metrics,
    )


    @flow
    def checkout_health() -> int:
        aws_credentials = AwsCredentials.load("BLOCK_NAME")
        since = datetime.now(UTC) - timedelta(hours=1)
        errors = MetricQuery(
            namespace="AWS/Lambda",
            metric_name="Errors",
            dimensions={"FunctionName": "checkout"},
            stat="Sum",
        )
        metrics = fetch_cloudwatch_metrics(aws_credentials, [errors], since)
        alarms = fetch_cloudwatch_alarms(aws_credentials, since=since, state_value="ALARM")
        changes = fetch_cloudwatch_alarm_history(aws_credentials, since)
        return len(metrics.series) + len(alarms) + len(changes)
    ```
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from prefect_aws import AwsCredentials
from pydantic import BaseModel, Field, field_validator

from tasks.clouds.aws import aws_client, get_metric_data
from tasks.common.retry import cloud_api_task, task_logger
from tasks.common.times import parse_time, time_window
from tasks.telemetry.model import Event, MetricSeries, Severity, entity_key

SOURCE = "cloudwatch"
DEFAULT_REGION = "us-east-1"
ALARM_SEVERITY: dict[str, Severity] = {
    "ALARM": "error",
    "INSUFFICIENT_DATA": "warning",
    "OK": "info",
}
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


def cloudwatch_client(aws_credentials: AwsCredentials, service: str = "cloudwatch") -> Any:
    """A boto3 client for ``service`` (``cloudwatch``, ``logs``) in the block's region
    (``region_name``; ``DEFAULT_REGION`` when the block names none)."""
    region = aws_credentials.region_name or DEFAULT_REGION
    return aws_client(aws_credentials, service, region)


@cloud_api_task("cloudwatch-metrics")
def fetch_cloudwatch_metrics(
    aws_credentials: AwsCredentials,
    queries: list[MetricQuery],
    since: datetime,
    until: datetime | None = None,
) -> CloudWatchMetrics:
    """Metric data for ``queries`` (``GetMetricData``, 500 per call, paginated).

    Args:
        aws_credentials: prefect-aws ``AwsCredentials`` block.
        queries: the metrics (namespace, name, dimensions, stat, period).
        since: window start (naive means UTC).
        until: window end; default now.

    Returns:
        ``CloudWatchMetrics``: one series per query (entity from its dimensions, e.g.
        ``FunctionName`` -> ``function:<name>``), and CloudWatch's flags for queries
        whose data is partial or failed.

    Example:
        ```python
        from datetime import UTC, datetime, timedelta

        from prefect import flow
        from prefect_aws import AwsCredentials

        from tasks.telemetry.cloudwatch import MetricQuery, fetch_cloudwatch_metrics


        @flow
        def checkout_errors() -> list[float]:
            query = MetricQuery(
                namespace="AWS/Lambda",
                metric_name="Errors",
                dimensions={"FunctionName": "checkout"},
                stat="Sum",
            )
            since = datetime.now(UTC) - timedelta(hours=1)
            metrics = fetch_cloudwatch_metrics(AwsCredentials.load("BLOCK_NAME"), [query], since)
            return metrics.series[0].values  # the series' metric is "Errors_Sum"
        ```
    """
    start, end = time_window(since, until)
    if not queries:
        raise ValueError("queries: give at least one metric query")
    queries = [q if isinstance(q, MetricQuery) else MetricQuery(**q) for q in queries]
    ids = {f"m{i}": q for i, q in enumerate(queries)}
    data_queries = [metric_data_query(q, i) for i, q in ids.items()]
    out = CloudWatchMetrics()
    samples: dict[str, tuple[list[datetime], list[float]]] = {i: ([], []) for i in ids}
    cloudwatch = cloudwatch_client(aws_credentials)
    for result in get_metric_data(cloudwatch, data_queries, start, end):
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
    aws_credentials: AwsCredentials,
    *,
    since: datetime | None = None,
    alarm_names: list[str] | None = None,
    alarm_name_prefix: str | None = None,
    state_value: str | None = None,
) -> list[Event]:
    """Alarms' current states (``DescribeAlarms``) as ``alarm`` events.

    Args:
        aws_credentials: prefect-aws ``AwsCredentials`` block.
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
        for alarm, kind in _describe_alarms(cloudwatch_client(aws_credentials), **params)
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
    aws_credentials: AwsCredentials,
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
        aws_credentials: prefect-aws ``AwsCredentials`` block.
        since: window start (naive means UTC).
        until: window end; default now.
        alarm_name: only this alarm's history.
        max_items: stop after this many history items.

    Returns:
        One ``alarm`` event per state change, oldest first.
    """
    start, end = time_window(since, until)
    cloudwatch = cloudwatch_client(aws_credentials)
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
