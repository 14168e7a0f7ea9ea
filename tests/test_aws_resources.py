"""AWS inventory (tasks.inventory.aws): the mapping and metric summaries alone, then the
task against moto with real EC2/EBS/EIP/NAT resources and CloudWatch datapoints.

The moto server is shared by the whole test session, so the integration test works in
its own account (reached through the block's ``assume_role_arn``) and region.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import boto3
import pytest
from prefect_aws import AwsCredentials

from tasks.clouds import aws as aws_clients
from tasks.common.retry import RETRIES, retry_on_transient
from tasks.inventory.aws import (
    address_resource,
    collect_aws_resources,
    instance_resource,
    metric_queries,
    nat_resource,
    parse_state_since,
    percentile,
    summarize_metric,
    volume_resource,
)
from tasks.inventory.model import Resource
from tasks.pricing.resource_prices import price_resources
from tests.servers.aws_pricing import AwsPricingServer

pytestmark = pytest.mark.filterwarnings("ignore:Logger 'prefect.task_runs' attempted:UserWarning")

ACCOUNT = "444455556666"
REGION = "ap-southeast-2"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/opsflow-inventory"


# ------------------------------------------------------------------ pure mapping


def test_parse_state_since():
    assert parse_state_since("User initiated (2025-06-01 12:30:00 GMT)") == datetime(
        2025, 6, 1, 12, 30, tzinfo=UTC
    )
    assert parse_state_since("User initiated (2025-06-01 12:30:00 UTC)").day == 1  # moto
    assert parse_state_since("Server.ScheduledStop: Stopped due to event") is None
    assert parse_state_since("") is None and parse_state_since(None) is None


def test_percentile_and_summary():
    assert percentile([1, 2, 3, 4, 5], 50) == 3
    assert percentile([1, 2], 95) == pytest.approx(1.95)
    assert percentile([7], 95) == 7
    hourly = [3.0] * 24 + [15.0]
    s = summarize_metric("cpu_percent", hourly, 14, maxima=[4.0] * 24 + [20.0])
    assert (s.datapoints, s.average, s.p95, s.maximum) == (25, 3.48, 3.0, 20.0)
    empty = summarize_metric("cpu_percent", [], 14)
    assert (empty.datapoints, empty.average, empty.p95, empty.maximum) == (0, None, None, None)
    assert summarize_metric("bytes", [0.0, 10.0], 7).maximum == 10.0


def test_instance_mapping():
    launched = datetime(2025, 5, 1, 8, tzinfo=UTC)
    inst = {
        "InstanceId": "i-1",
        "InstanceType": "m7i.large",
        "State": {"Name": "stopped"},
        "StateTransitionReason": "User initiated (2025-06-01 12:00:00 GMT)",
        "LaunchTime": launched,
        "Placement": {"AvailabilityZone": "us-east-1b"},
        "Tags": [{"Key": "Name", "Value": "web"}, {"Key": "team", "Value": "a"}],
    }
    r = instance_resource(inst, "111122223333", "us-east-1")
    assert (r.kind, r.type, r.state, r.zone, r.name) == (
        "instance",
        "m7i.large",
        "stopped",
        "us-east-1b",
        "web",
    )
    assert r.state_since == datetime(2025, 6, 1, 12, tzinfo=UTC) and r.created == launched
    assert r.tags == {"Name": "web", "team": "a"} and r.hourly_price is None
    running = instance_resource({**inst, "State": {"Name": "running"}}, "1", "us-east-1")
    assert running.state_since == launched


def test_volume_address_nat_mapping():
    attached = volume_resource(
        {
            "VolumeId": "vol-1",
            "VolumeType": "gp3",
            "Size": 50,
            "State": "in-use",
            "Attachments": [{"InstanceId": "i-1", "State": "attached"}],
        },
        "1",
        "r",
    )
    assert (attached.attached_to, attached.size_gib, attached.state) == ("i-1", 50, "in-use")
    detaching = volume_resource(
        {
            "VolumeId": "vol-2",
            "VolumeType": "st1",
            "Size": 500,
            "State": "available",
            "Attachments": [{"InstanceId": "i-1", "State": "detached"}],
        },
        "1",
        "r",
    )
    assert detaching.attached_to is None and detaching.state == "available"
    eip = address_resource({"AllocationId": "eipalloc-1", "PublicIp": "203.0.113.1"}, "1", "r")
    assert (eip.id, eip.name, eip.attached_to, eip.state) == (
        "eipalloc-1",
        "203.0.113.1",
        None,
        "available",
    )
    on_eni = address_resource(
        {
            "AllocationId": "eipalloc-2",
            "PublicIp": "203.0.113.2",
            "AssociationId": "eipassoc-1",
            "InstanceId": "",
            "NetworkInterfaceId": "eni-1",
        },
        "1",
        "r",
    )
    assert on_eni.attached_to == "eni-1" and on_eni.state == "in-use"
    gw = nat_resource(
        {"NatGatewayId": "nat-1", "State": "available", "ConnectivityType": "private"}, "1", "r"
    )
    assert (gw.kind, gw.type, gw.state) == ("nat_gateway", "nat-private", "available")


def test_metric_queries_only_for_running_instances_and_available_nats():
    res = [
        Resource(id="i-run", provider="aws", account="1", region="r", kind="instance",
                 type="m7i.large", state="running"),
        Resource(id="i-stop", provider="aws", account="1", region="r", kind="instance",
                 type="m7i.large", state="stopped"),
        Resource(id="nat-1", provider="aws", account="1", region="r", kind="nat_gateway",
                 type="nat-public", state="available"),
        Resource(id="vol-1", provider="aws", account="1", region="r", kind="volume",
                 type="gp3", state="available"),
    ]  # fmt: skip
    queries = metric_queries(res)
    by_resource = {}
    for rid, key, query in queries.values():
        by_resource.setdefault(rid, []).append((key, query["MetricStat"]["Stat"]))
        assert query["MetricStat"]["Period"] == 3600
    assert by_resource == {
        "i-run": [
            ("cpu_percent", "Average"),
            ("cpu_percent_max", "Maximum"),
            ("network_in_bytes", "Sum"),
            ("network_out_bytes", "Sum"),
        ],
        "nat-1": [("bytes_out_to_destination", "Sum")],
    }
    assert all(q[2]["Id"] == qid and qid[0].islower() for qid, q in queries.items())


def test_task_policy_and_input_validation():
    assert collect_aws_resources.retries == RETRIES
    assert collect_aws_resources.retry_condition_fn is retry_on_transient
    creds = AwsCredentials(aws_access_key_id="A", aws_secret_access_key="B")
    for kwargs, message in (
        ({"region": "Europe"}, "region: must be an AWS region code"),
        ({"region": "us-east-1", "metrics_days": 0}, "metrics_days: must be an integer"),
        ({"region": "us-east-1", "metrics_days": 64}, "metrics_days"),
    ):
        with pytest.raises(ValueError, match=message):
            collect_aws_resources.fn(creds, **kwargs)


# ---------------------------------------------------------------- against moto


@pytest.fixture(scope="module")
def world(moto_url):
    """Resources in ACCOUNT/REGION, created with that account's (assumed-role) keys."""
    base = dict(
        endpoint_url=moto_url,
        region_name=REGION,
        aws_access_key_id="AKIATESTING",
        aws_secret_access_key="testing",
    )
    creds = boto3.client("sts", **base).assume_role(RoleArn=ROLE, RoleSessionName="setup")[
        "Credentials"
    ]
    kw = dict(
        endpoint_url=moto_url,
        region_name=REGION,
        aws_access_key_id=creds["AccessKeyId"],
        aws_secret_access_key=creds["SecretAccessKey"],
        aws_session_token=creds["SessionToken"],
    )
    ec2, cw = boto3.client("ec2", **kw), boto3.client("cloudwatch", **kw)
    image = ec2.describe_images()["Images"][0]["ImageId"]

    def run(itype, name, **tags):
        tag_list = [{"Key": "Name", "Value": name}] + [
            {"Key": k, "Value": v} for k, v in tags.items()
        ]
        return ec2.run_instances(
            ImageId=image,
            MinCount=1,
            MaxCount=1,
            InstanceType=itype,
            Placement={"AvailabilityZone": f"{REGION}a"},
            TagSpecifications=[{"ResourceType": "instance", "Tags": tag_list}],
        )["Instances"][0]["InstanceId"]

    idle = run("m7i.4xlarge", "idle-api", team="web", owner="a@example.com", env="prod")
    busy = run("c7i.2xlarge", "busy-worker", team="batch")
    stopped = run("m7i.large", "old-report")
    gone = run("m7i.large", "terminated")
    ec2.stop_instances(InstanceIds=[stopped])
    ec2.terminate_instances(InstanceIds=[gone])

    root = ec2.create_volume(Size=100, AvailabilityZone=f"{REGION}a", VolumeType="gp3")
    ec2.attach_volume(VolumeId=root["VolumeId"], InstanceId=stopped, Device="/dev/sdf")
    loose = ec2.create_volume(
        Size=500,
        AvailabilityZone=f"{REGION}a",
        VolumeType="gp2",
        TagSpecifications=[{"ResourceType": "volume", "Tags": [{"Key": "team", "Value": "x"}]}],
    )
    used_ip = ec2.allocate_address(Domain="vpc")
    ec2.associate_address(AllocationId=used_ip["AllocationId"], InstanceId=idle)
    free_ip = ec2.allocate_address(Domain="vpc")
    vpc = ec2.create_vpc(CidrBlock="10.9.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.9.1.0/24")["Subnet"]["SubnetId"]
    nat_ip = ec2.allocate_address(Domain="vpc")
    gw = ec2.create_nat_gateway(SubnetId=subnet, AllocationId=nat_ip["AllocationId"])["NatGateway"][
        "NatGatewayId"
    ]

    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    hours = [now - timedelta(hours=h) for h in range(1, 25)]  # 24 full hours in the window

    def points(namespace, metric, dim, rid, values_by_hour):
        data = [
            {
                "MetricName": metric,
                "Dimensions": [{"Name": dim, "Value": rid}],
                "Timestamp": hour + timedelta(minutes=minute),
                "Value": value,
            }
            for hour, values in values_by_hour
            for minute, value in zip((10, 40), values, strict=False)
        ]
        for i in range(0, len(data), 500):
            cw.put_metric_data(Namespace=namespace, MetricData=data[i : i + 500])

    # idle: two samples an hour (2%, 4%) for 23 hours, one busier hour (10%, 20%)
    points(
        "AWS/EC2",
        "CPUUtilization",
        "InstanceId",
        idle,
        [(h, (10.0, 20.0) if i == 0 else (2.0, 4.0)) for i, h in enumerate(hours)],
    )
    points("AWS/EC2", "NetworkIn", "InstanceId", idle, [(h, (1000.0, 500.0)) for h in hours])
    points("AWS/EC2", "CPUUtilization", "InstanceId", busy, [(h, (80.0, 90.0)) for h in hours])
    points(
        "AWS/NATGateway",
        "BytesOutToDestination",
        "NatGatewayId",
        gw,
        [(h, (0.0, 0.0)) for h in hours],
    )
    return {
        "idle": idle,
        "busy": busy,
        "stopped": stopped,
        "gone": gone,
        "root": root["VolumeId"],
        "loose": loose["VolumeId"],
        "used_ip": used_ip["AllocationId"],
        "free_ip": free_ip["AllocationId"],
        "nat_ip": nat_ip["AllocationId"],
        "nat": gw,
        "vpc": vpc,
    }


@pytest.fixture
def proxy(moto_url):
    with AwsPricingServer([], upstream=moto_url) as server:
        yield server


def api_calls(proxy: AwsPricingServer, operation: str) -> list:
    """Requests for ``operation`` (JSON protocol target header or query-protocol Action)."""
    return [
        s
        for s in proxy.requests
        if s.headers.get("x-amz-target", "").endswith(f".{operation}")
        or f"Action={operation}&".encode() in s.body + b"&"
    ]


def assumed_block(url: str) -> AwsCredentials:
    return AwsCredentials(
        aws_access_key_id="AKIATESTING",
        aws_secret_access_key="testing",
        region_name=REGION,
        assume_role_arn=ROLE,
        aws_client_parameters={"endpoint_url": url},
    )


def test_collect_inventory_and_metrics(world, proxy, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL_STS", proxy.url)  # the block's AssumeRole call
    started = datetime.now(UTC)
    found = collect_aws_resources.fn(assumed_block(proxy.url), REGION)
    by_id = {r.id: r for r in found}
    assert world["gone"] not in by_id  # terminated instances are not billable
    assert {r.account for r in found} == {ACCOUNT} and {r.region for r in found} == {REGION}

    idle, busy, stopped = by_id[world["idle"]], by_id[world["busy"]], by_id[world["stopped"]]
    assert (idle.type, idle.state, idle.zone, idle.name) == (
        "m7i.4xlarge",
        "running",
        f"{REGION}a",
        "idle-api",
    )
    assert idle.tags == {"Name": "idle-api", "team": "web", "owner": "a@example.com", "env": "prod"}
    assert stopped.state == "stopped" and stopped.metrics == {}
    assert abs((stopped.state_since - started).total_seconds()) < 300  # moto stops "now"

    assert by_id[world["root"]].attached_to == world["stopped"]
    loose = by_id[world["loose"]]
    assert (loose.attached_to, loose.size_gib, loose.type, loose.tags) == (
        None,
        500,
        "gp2",
        {"team": "x"},
    )
    assert by_id[world["used_ip"]].attached_to == world["idle"]
    assert by_id[world["free_ip"]].attached_to is None
    assert by_id[world["nat_ip"]].attached_to.startswith("eni-")
    gw = by_id[world["nat"]]
    assert (gw.kind, gw.state, gw.type) == ("nat_gateway", "available", "nat-public")

    cpu = idle.metrics["cpu_percent"]
    # hourly averages: 23 x 3% and one 15%; hourly maxima: 4% and 20%
    assert (cpu.datapoints, cpu.period_days) == (24, 14)
    assert cpu.average == pytest.approx((23 * 3 + 15) / 24, abs=1e-3)
    assert cpu.p95 == pytest.approx(3.0) and cpu.maximum == 20.0
    net = idle.metrics["network_in_bytes"]
    assert (net.datapoints, net.average) == (24, 1500.0)  # hourly Sum of two samples
    assert idle.metrics["network_out_bytes"].datapoints == 0
    hot = busy.metrics["cpu_percent"]
    assert (hot.average, hot.maximum) == (85.0, 90.0)
    sent = gw.metrics["bytes_out_to_destination"]
    assert (sent.datapoints, sent.average, sent.maximum) == (24, 0.0, 0.0)

    calls = api_calls(proxy, "GetMetricData")
    assert len(calls) == 1  # 9 queries in one batched call
    assert len(api_calls(proxy, "DescribeInstances")) == 1


def test_metric_queries_are_batched(world, proxy, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL_STS", proxy.url)
    monkeypatch.setattr(aws_clients, "METRIC_DATA_QUERIES_PER_CALL", 4)
    found = collect_aws_resources.fn(assumed_block(proxy.url), REGION, metrics_days=2)
    calls = api_calls(proxy, "GetMetricData")
    assert len(calls) == 3  # 4 + 4 + 1 queries
    idle = next(r for r in found if r.id == world["idle"])
    assert idle.metrics["cpu_percent"].datapoints == 24
    assert idle.metrics["cpu_percent"].period_days == 2


def test_collected_inventory_prices(world, proxy, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL_STS", proxy.url)
    found = price_resources(collect_aws_resources.fn(assumed_block(proxy.url), REGION))
    by_id = {r.id: r for r in found}
    idle = by_id[world["idle"]]
    # ap-southeast-2 is not in the bundled catalog: the asia price is borrowed and marked
    assert idle.hourly_price == 1.0416 and "ap-northeast-1" in idle.price_note
    assert by_id[world["stopped"]].monthly_cost == 0.0
    assert by_id[world["free_ip"]].monthly_cost == 3.65
    assert by_id[world["nat"]].monthly_cost == 32.85
    assert by_id[world["loose"]].monthly_cost == pytest.approx(50.0)  # 500 GiB gp2, us price


def test_get_metric_data_batches_and_reads_every_page(monkeypatch):
    """The one GetMetricData reader: batches of METRIC_DATA_QUERIES_PER_CALL, every page."""
    calls: list[dict] = []

    class Paginator:
        def paginate(self, **kwargs):
            calls.append(kwargs)
            ids = [q["Id"] for q in kwargs["MetricDataQueries"]]
            first = {"MetricDataResults": [{"Id": i, "Values": [1.0]} for i in ids]}
            return [first, {"MetricDataResults": [{"Id": ids[0], "Values": [2.0]}]}, {}]

    class Client:
        def get_paginator(self, name):
            assert name == "get_metric_data"
            return Paginator()

    monkeypatch.setattr(aws_clients, "METRIC_DATA_QUERIES_PER_CALL", 2)
    start, end = datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 2, tzinfo=UTC)
    queries = [{"Id": f"q{i}"} for i in range(5)]
    results = aws_clients.get_metric_data(Client(), queries, start, end)
    assert [[q["Id"] for q in c["MetricDataQueries"]] for c in calls] == [
        ["q0", "q1"],
        ["q2", "q3"],
        ["q4"],
    ]
    assert all(
        (c["StartTime"], c["EndTime"], c["ScanBy"]) == (start, end, "TimestampAscending")
        for c in calls
    )
    assert [(r["Id"], r["Values"]) for r in results] == [
        ("q0", [1.0]),
        ("q1", [1.0]),
        ("q0", [2.0]),
        ("q2", [1.0]),
        ("q3", [1.0]),
        ("q2", [2.0]),
        ("q4", [1.0]),
        ("q4", [2.0]),
    ]
    calls.clear()
    assert aws_clients.get_metric_data(Client(), [], start, end) == [] and not calls
