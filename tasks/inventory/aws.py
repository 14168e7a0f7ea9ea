"""AWS inventory for savings rules: EC2 instances, EBS volumes, Elastic IPs, NAT gateways.

One region per call, through a prefect-aws ``AwsCredentials`` block (keys, profile or
``assume_role_arn``). Running instances and NAT gateways get ``metrics_days`` of
CloudWatch data with ``GetMetricData`` (hourly periods; ``tasks.clouds.aws.get_metric_data``
batches the queries, 500 per request):

- ``cpu_percent``: hourly ``CPUUtilization`` Average (average, p95 of the hourly
  averages, ``datapoints``) and the largest hourly Maximum (``maximum``);
- ``network_in_bytes`` / ``network_out_bytes``: hourly Sum of ``NetworkIn``/``NetworkOut``;
- ``bytes_out_to_destination`` (NAT gateways): hourly Sum of ``BytesOutToDestination``.

The mapping functions are plain functions so they can be tested without AWS or Prefect.
Prices are not set here: ``tasks.pricing.resource_prices.price_resources`` prices every cloud.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from prefect_aws import AwsCredentials

from tasks.clouds.aws import aws_client, get_metric_data
from tasks.common.retry import cloud_api_task, task_logger
from tasks.common.times import as_utc, parse_time_or_none
from tasks.inventory.model import MetricSummary, Resource

PERIOD_SECONDS = 3600
MAX_METRICS_DAYS = 63  # CloudWatch keeps 1-minute data 15 days, 5-minute 63 days, hourly 455
LIVE_INSTANCE_STATES = ["pending", "running", "stopping", "stopped"]
LIVE_NAT_STATES = ["pending", "available"]

_REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d$")
_TRANSITION_TIME = re.compile(r"\((\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}) (?:GMT|UTC)\)")

# (metric key, namespace, CloudWatch metric, dimension, statistic) per resource kind.
INSTANCE_METRICS = (
    ("cpu_percent", "AWS/EC2", "CPUUtilization", "InstanceId", "Average"),
    ("cpu_percent_max", "AWS/EC2", "CPUUtilization", "InstanceId", "Maximum"),
    ("network_in_bytes", "AWS/EC2", "NetworkIn", "InstanceId", "Sum"),
    ("network_out_bytes", "AWS/EC2", "NetworkOut", "InstanceId", "Sum"),
)
NAT_METRICS = (
    ("bytes_out_to_destination", "AWS/NATGateway", "BytesOutToDestination", "NatGatewayId", "Sum"),
)


def tags_dict(tags: Iterable[Mapping[str, str]] | None) -> dict[str, str]:
    """``[{"Key": k, "Value": v}]`` -> ``{k: v}``."""
    return {t["Key"]: t.get("Value", "") for t in tags or [] if "Key" in t}


def parse_state_since(reason: str | None) -> datetime | None:
    """When a stopped instance stopped, from ``StateTransitionReason``.

    Example:
        ```python
        from datetime import UTC, datetime

        from tasks.inventory.aws import parse_state_since

        stopped = parse_state_since("User initiated (2025-06-01 12:00:00 GMT)")
        assert stopped == datetime(2025, 6, 1, 12, tzinfo=UTC)
        ```
    """
    match = _TRANSITION_TIME.search(reason or "")
    if not match:
        return None
    return datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)


def instance_resource(inst: Mapping[str, Any], account: str, region: str) -> Resource:
    """One ``DescribeInstances`` instance as a ``Resource``."""
    tags = tags_dict(inst.get("Tags"))
    state = (inst.get("State") or {}).get("Name", "unknown")
    launched = parse_time_or_none(inst.get("LaunchTime"))
    if state == "stopped":
        since = parse_state_since(inst.get("StateTransitionReason"))
    else:
        since = launched if state == "running" else None
    return Resource(
        id=inst["InstanceId"],
        provider="aws",
        account=account,
        region=region,
        zone=(inst.get("Placement") or {}).get("AvailabilityZone"),
        kind="instance",
        type=inst["InstanceType"],
        name=tags.get("Name"),
        state=state if state in LIVE_INSTANCE_STATES else "unknown",
        state_since=since,
        created=launched,
        tags=tags,
    )


def volume_resource(vol: Mapping[str, Any], account: str, region: str) -> Resource:
    """One ``DescribeVolumes`` volume; ``attached_to`` None when it is not attached."""
    tags = tags_dict(vol.get("Tags"))
    attached = [
        a["InstanceId"]
        for a in vol.get("Attachments") or []
        if a.get("InstanceId") and a.get("State", "attached") in ("attaching", "attached")
    ]
    state = vol.get("State", "unknown")
    return Resource(
        id=vol["VolumeId"],
        provider="aws",
        account=account,
        region=region,
        zone=vol.get("AvailabilityZone"),
        kind="volume",
        type=vol.get("VolumeType", "unknown"),
        name=tags.get("Name"),
        state=state if state in ("available", "in-use") else "unknown",
        size_gib=vol.get("Size"),
        attached_to=attached[0] if attached else None,
        created=parse_time_or_none(vol.get("CreateTime")),
        tags=tags,
    )


def address_resource(addr: Mapping[str, Any], account: str, region: str) -> Resource:
    """One ``DescribeAddresses`` Elastic IP; ``attached_to`` None when unassociated."""
    tags = tags_dict(addr.get("Tags"))
    target = addr.get("InstanceId") or addr.get("NetworkInterfaceId") or None
    attached = target if addr.get("AssociationId") else None
    return Resource(
        id=addr.get("AllocationId") or addr["PublicIp"],
        provider="aws",
        account=account,
        region=region,
        kind="address",
        type="elastic-ip",
        name=tags.get("Name") or addr.get("PublicIp"),
        state="in-use" if attached else "available",
        attached_to=attached,
        tags=tags,
    )


def nat_resource(nat: Mapping[str, Any], account: str, region: str) -> Resource:
    """One ``DescribeNatGateways`` gateway."""
    tags = tags_dict(nat.get("Tags"))
    state = nat.get("State", "unknown")
    return Resource(
        id=nat["NatGatewayId"],
        provider="aws",
        account=account,
        region=region,
        kind="nat_gateway",
        type=f"nat-{nat.get('ConnectivityType', 'public')}",
        name=tags.get("Name"),
        state=state if state in LIVE_NAT_STATES else "unknown",
        created=parse_time_or_none(nat.get("CreateTime")),
        tags=tags,
    )


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100) with linear interpolation between ranks."""
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100.0
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def summarize_metric(
    name: str,
    values: Sequence[float],
    period_days: int,
    maxima: Sequence[float] | None = None,
) -> MetricSummary:
    """Summarize one series of hourly values.

    Args:
        name: metric key, e.g. ``cpu_percent``.
        values: one value per hour (hourly Average or Sum).
        period_days: length of the look-back window.
        maxima: hourly Maximum values, when the series has them; otherwise the largest
            of ``values`` is the maximum.

    Returns:
        ``MetricSummary`` with average, p95 and maximum (all None without values).
    """
    if not values:
        return MetricSummary(name=name, period_days=period_days, datapoints=0)
    peak = max(maxima) if maxima else max(values)
    return MetricSummary(
        name=name,
        period_days=period_days,
        datapoints=len(values),
        average=round(sum(values) / len(values), 4),
        p95=round(percentile(values, 95), 4),
        maximum=round(max(peak, max(values)), 4),
    )


def metric_queries(resources: Iterable[Resource]) -> dict[str, tuple[str, str, dict[str, Any]]]:
    """GetMetricData queries for running instances and NAT gateways.

    Returns:
        Query id -> (resource id, metric key, ``MetricDataQuery``).
    """
    out: dict[str, tuple[str, str, dict[str, Any]]] = {}
    for n, res in enumerate(resources):
        if res.kind == "instance" and res.state == "running":
            specs = INSTANCE_METRICS
        elif res.kind == "nat_gateway" and res.state == "available":
            specs = NAT_METRICS
        else:
            continue
        for m, (key, namespace, metric, dimension, stat) in enumerate(specs):
            qid = f"q{n}_{m}"
            query = {
                "Id": qid,
                "MetricStat": {
                    "Metric": {
                        "Namespace": namespace,
                        "MetricName": metric,
                        "Dimensions": [{"Name": dimension, "Value": res.id}],
                    },
                    "Period": PERIOD_SECONDS,
                    "Stat": stat,
                },
                "ReturnData": True,
            }
            out[qid] = (res.id, key, query)
    return out


def summarize_series(
    series: Mapping[str, Mapping[str, list[float]]], period_days: int
) -> dict[str, dict[str, MetricSummary]]:
    """Resource id -> metric key -> summary, from resource id -> metric key -> values."""
    out: dict[str, dict[str, MetricSummary]] = {}
    for rid, metrics in series.items():
        summaries: dict[str, MetricSummary] = {}
        for key, values in metrics.items():
            if key == "cpu_percent_max":
                continue
            maxima = metrics.get("cpu_percent_max") if key == "cpu_percent" else None
            summaries[key] = summarize_metric(key, values, period_days, maxima)
        out[rid] = summaries
    return out


def _fetch_series(
    cloudwatch: Any,
    queries: Mapping[str, tuple[str, str, dict[str, Any]]],
    start: datetime,
    end: datetime,
) -> dict[str, dict[str, list[float]]]:
    series: dict[str, dict[str, list[float]]] = defaultdict(dict)
    for rid, key, _ in queries.values():
        series[rid][key] = []
    data_queries = [query for _, _, query in queries.values()]
    for result in get_metric_data(cloudwatch, data_queries, start, end):
        rid, key, _ = queries[result["Id"]]
        series[rid][key].extend(float(v) for v in result.get("Values") or [])
    return dict(series)


def _pages(client: Any, operation: str, key: str, **kwargs: Any) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    for page in client.get_paginator(operation).paginate(**kwargs):
        items.extend(page.get(key) or [])
    return items


@cloud_api_task("aws-resources")
def collect_aws_resources(
    aws_credentials: AwsCredentials,
    region: str,
    *,
    metrics_days: int = 14,
    now: datetime | None = None,
) -> list[Resource]:
    """Inventory one AWS region with the utilisation the savings rules need.

    Lists EC2 instances (pending/running/stopping/stopped), EBS volumes, Elastic IPs and
    NAT gateways (pending/available), with paginators; the account comes from
    ``sts:GetCallerIdentity``. Then fetches ``metrics_days`` of hourly CloudWatch data
    for running instances (CPU, network) and NAT gateways (bytes out).

    Args:
        aws_credentials: prefect-aws ``AwsCredentials`` block; its session and
            ``aws_client_parameters`` (e.g. ``endpoint_url``) are used for every call.
        region: region code, e.g. ``us-east-1``.
        metrics_days: look-back window for CloudWatch metrics (1-63 days).
        now: end of the window (default: the current time), for reproducible runs.

    Returns:
        ``Resource`` objects without prices (see ``tasks.pricing.resource_prices``).

    Example:
        ```python
        from prefect import flow
        from prefect_aws import AwsCredentials
        from tasks.inventory.aws import collect_aws_resources

        @flow
        def inventory():
            return collect_aws_resources(AwsCredentials.load("BLOCK_NAME"), "eu-west-1")
        ```
    """
    if not isinstance(region, str) or not _REGION.match(region):
        raise ValueError(f"region: must be an AWS region code such as 'us-east-1', got {region!r}")
    if not isinstance(metrics_days, int) or not 1 <= metrics_days <= MAX_METRICS_DAYS:
        raise ValueError(f"metrics_days: must be an integer from 1 to {MAX_METRICS_DAYS}")
    end = as_utc(now or datetime.now(UTC)).replace(minute=0, second=0, microsecond=0)
    start = end - timedelta(days=metrics_days)
    logger = task_logger(__name__)
    session = aws_credentials.get_boto3_session()
    sts = aws_client(aws_credentials, "sts", region, session=session)
    account = sts.get_caller_identity()["Account"]
    ec2 = aws_client(aws_credentials, "ec2", region, session=session)

    state_filter = [{"Name": "instance-state-name", "Values": LIVE_INSTANCE_STATES}]
    reservations = _pages(ec2, "describe_instances", "Reservations", Filters=state_filter)
    resources = [
        instance_resource(inst, account, region)
        for reservation in reservations
        for inst in reservation.get("Instances") or []
    ]
    resources += [
        volume_resource(v, account, region)
        for v in _pages(ec2, "describe_volumes", "Volumes")
        if v.get("State") not in ("deleting", "deleted")
    ]
    addresses = ec2.describe_addresses().get("Addresses") or []  # not paginated by AWS
    resources += [address_resource(a, account, region) for a in addresses]
    nat_filter = [{"Name": "state", "Values": LIVE_NAT_STATES}]
    resources += [
        nat_resource(n, account, region)
        for n in _pages(ec2, "describe_nat_gateways", "NatGateways", Filters=nat_filter)
    ]

    queries = metric_queries(resources)
    if queries:
        cloudwatch = aws_client(aws_credentials, "cloudwatch", region, session=session)
        summaries = summarize_series(_fetch_series(cloudwatch, queries, start, end), metrics_days)
        resources = [
            r.model_copy(update={"metrics": summaries[r.id]}) if r.id in summaries else r
            for r in resources
        ]
    counts = defaultdict(int)
    for r in resources:
        counts[r.kind] += 1
    logger.info(
        "AWS %s/%s: %s; %d metric queries over %d days",
        account,
        region,
        ", ".join(f"{n} {k}" for k, n in sorted(counts.items())) or "no resources",
        len(queries),
        metrics_days,
    )
    return resources
