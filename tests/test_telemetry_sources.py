"""Telemetry sources: Kubernetes, Sentry and Grafana through their real clients against local
servers (tests/servers), CloudWatch through boto3 against the moto server, and the file
formats. Every source's pure mapping is also checked on documented shapes.

moto 5.2 does not implement ``DescribeAlarmHistory``: a small recording proxy in front of
moto answers it from the ``SetAlarmState`` calls it forwarded. moto's filter patterns
cover plain terms and quoted phrases, and its Logs Insights supports ``fields``, ``sort``
and ``limit`` (not ``filter``), so those are what the CloudWatch tests exercise.
"""

from __future__ import annotations

import json
import logging
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import boto3
import httpx
import pytest
from prefect_aws import AwsCredentials
from prefect_kubernetes.credentials import KubernetesClusterConfig, KubernetesCredentials
from pydantic import ValidationError

from blocks.grafana import GrafanaCredentials
from blocks.sentry import SentryCredentials
from tasks.clouds.kubernetes import KubernetesApiError, KubernetesUnavailable
from tasks.common.retry import is_transient, one_line_reason
from tasks.telemetry import cloudwatch, cloudwatch_logs, entities, grafana, kubernetes, sentry
from tasks.telemetry.files import (
    load_telemetry_files,
    log_severity,
    parse_time,
    read_events_jsonl,
    read_metrics_csv,
    write_events_jsonl,
    write_metrics_csv,
)
from tasks.telemetry.model import Event, MetricSeries
from tests.conftest import task_run_count
from tests.servers import Seen, json_response
from tests.servers import grafana as gf
from tests.servers import kubernetes as k8s
from tests.servers import sentry as st
from tests.servers.aws_pricing import AwsPricingServer

pytestmark = pytest.mark.filterwarnings("ignore:Logger 'prefect.task_runs' attempted:UserWarning")

NOW = datetime.now(UTC).replace(microsecond=0)
K8S_TOKEN = "CANARY-k8s-Zx81Qw0Lm3"
SENTRY_TOKEN = "CANARY-sentry-Hq2Vt9Pe4K"
GRAFANA_TOKEN = "CANARY-grafana-Bn7Rc5Ys1D"


@pytest.fixture
def fast_retries(monkeypatch):
    """Keep the retry count and condition, drop the waiting (the backoff is unit-tested)."""
    for t in (
        kubernetes.fetch_k8s_pods,
        sentry.fetch_sentry_issues,
        grafana.fetch_grafana_annotations,
    ):
        monkeypatch.setattr(t, "retry_delay_seconds", 0)


def assert_no_secret(secret: str, *texts: str) -> None:
    for text in texts:
        assert secret not in text


# ============================================================== files


def sample_events() -> list[Event]:
    return [
        Event(
            timestamp=NOW - timedelta(minutes=3),
            source="kubernetes",
            kind="k8s_event",
            entity="pod:checkout-7d9f8b6c5d-x2x4z",
            related=["service:checkout", "node:node-a", "namespace:shop"],
            severity="warning",
            message="BackOff: Back-off restarting failed container api",
            attributes={"reason": "BackOff", "count": "12"},
        ),
        Event(
            timestamp=NOW - timedelta(minutes=1),
            source="file",
            entity="service:payments",
            severity="error",
            message='{"level":"error","msg":"card declined: gateway timeout"}',
        ),
    ]


def test_events_jsonl_round_trip(tmp_path):
    path = write_events_jsonl(tmp_path / "out" / "events.jsonl", sample_events())
    assert path.exists() and not list(path.parent.glob("*.part"))  # temp file renamed away
    lines = path.read_text().splitlines()
    assert len(lines) == 2 and json.loads(lines[0])["timestamp"].endswith("Z")
    read = read_events_jsonl(path)
    assert read.events == sample_events()
    assert (read.lines_read, read.bad_line_count, read.bad_lines) == (2, 0, [])


def test_events_jsonl_bad_lines_are_counted_with_line_numbers(tmp_path, caplog):
    good = sample_events()[0].model_dump_json()
    text = "\n".join(
        [
            good,
            "{not json",
            "",  # blank: skipped, not bad
            json.dumps({"timestamp": "yesterday", "entity": "pod:a", "message": "x"}),
            json.dumps({"timestamp": "2025-03-01T10:00:00", "entity": "checkout", "message": "x"}),
            json.dumps({"timestamp": "2025-03-01T10:00:00", "entity": "pod:a", "source": "splunk"}),
            json.dumps(  # minimal record: source/severity/kind defaulted, naive time = UTC
                {"timestamp": "2025-03-01T10:00:00", "entity": "host:web-1", "message": "WARN slow"}
            ),
            "[1, 2]",
        ]
    )
    (tmp_path / "e.jsonl").write_text(text + "\n")
    with caplog.at_level(logging.WARNING):
        read = read_events_jsonl(tmp_path / "e.jsonl")
    assert len(read.events) == 2 and read.lines_read == 7 and read.bad_line_count == 5
    assert [b.line for b in read.bad_lines] == [2, 4, 5, 6, 8]
    reasons = [b.error for b in read.bad_lines]
    assert reasons[0].startswith("not JSON")
    assert "timestamp: not an ISO 8601 time" in reasons[1]
    assert "entity" in reasons[2] and "<type>:<name>" in reasons[2]
    assert "source" in reasons[3] and "message" in reasons[3]  # both fields named
    assert "not a JSON object" in reasons[4]
    minimal = read.events[1]
    assert (minimal.source, minimal.kind, minimal.severity) == ("file", "log", "warning")
    assert minimal.timestamp == datetime(2025, 3, 1, 10, tzinfo=UTC)
    assert "skipped 5 unreadable line(s)" in caplog.text and "line 2" in caplog.text


def test_metrics_csv_round_trip_groups_and_sorts(tmp_path):
    series = [
        MetricSeries(
            source="cloudwatch",
            entity="function:checkout",
            related=["service:checkout"],
            metric="Errors_Sum",
            unit="Count",
            timestamps=[NOW - timedelta(minutes=2), NOW - timedelta(minutes=1)],
            values=[1.0, 7.5],
        ),
        MetricSeries(
            source="file",
            entity="pod:api-1",
            metric="cpu_percent",
            timestamps=[NOW],
            values=[0.1],
        ),
    ]
    path = write_metrics_csv(tmp_path / "m.csv", series)
    read = read_metrics_csv(path)
    assert read.bad_line_count == 0 and read.rows_read == 3
    assert [s.model_dump(exclude={"attributes"}) for s in read.series] == [
        s.model_dump(exclude={"attributes"}) for s in series
    ]
    # the four-column form the scenario generator writes, rows out of order
    (tmp_path / "plain.csv").write_text(
        "timestamp,entity,metric,value\n"
        "2025-03-01T10:02:00Z,service:api,latency_p99_ms,250\n"
        "2025-03-01T10:00:00Z,service:api,latency_p99_ms,120.5\n"
        "2025-03-01T10:01:00+00:00,service:db,latency_p99_ms,3\n"
    )
    plain = read_metrics_csv(tmp_path / "plain.csv")
    api = next(s for s in plain.series if s.entity == "service:api")
    assert api.values == [120.5, 250.0] and api.source == "file"
    assert api.timestamps[0] == datetime(2025, 3, 1, 10, tzinfo=UTC)
    assert len(plain.series) == 2


def test_metrics_csv_bad_rows_and_header(tmp_path):
    (tmp_path / "bad.csv").write_text(
        "timestamp,entity,metric,value\n"
        "2025-03-01T10:00:00Z,service:api,rps,10\n"
        "2025-03-01T10:01:00Z,service:api,rps,ten\n"
        "2025-03-01T10:02:00Z,api,rps,3\n"
        ",service:api,rps,3\n"
        "2025-03-01T10:03:00Z,service:api,rps,nan\n"
        "2025-03-01T10:04:00Z,service:api,rps,12\n"
    )
    read = read_metrics_csv(tmp_path / "bad.csv")
    assert read.rows_read == 6 and read.bad_line_count == 4
    assert [b.line for b in read.bad_lines] == [3, 4, 5, 6]
    assert read.bad_lines[0].error == "value: not a number: 'ten'"
    assert "timestamp: missing" in read.bad_lines[2].error
    assert read.series[0].values == [10.0, 12.0]
    (tmp_path / "nohdr.csv").write_text("time,entity,value\n1,2,3\n")
    with pytest.raises(ValueError, match="lacks column.*timestamp.*metric"):
        read_metrics_csv(tmp_path / "nohdr.csv")


def test_load_telemetry_files_task_and_input_checks(tmp_path):
    events = write_events_jsonl(tmp_path / "e.jsonl", sample_events())
    (tmp_path / "m.csv").write_text("timestamp,entity,metric,value\nbad,service:a,x,1\n")
    loaded = load_telemetry_files.fn(events, tmp_path / "m.csv")
    assert len(loaded.events) == 2 and loaded.series == []
    assert loaded.bad_line_count == 1
    assert list(loaded.bad_lines) == [str(tmp_path / "m.csv")]
    with pytest.raises(ValueError, match="events_path, metrics_path: give at least one"):
        load_telemetry_files.fn()
    with pytest.raises(ValueError, match="metrics_path: no such file"):
        load_telemetry_files.fn(None, tmp_path / "missing.csv")


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ('{"level":"warn","msg":"slow query took 2s"}', "warning"),
        ('ts=2025-03-01T10:00:00Z level=error msg="dial tcp 10.0.0.7:5432: refused"', "error"),
        ("2025-03-01 10:00:00,123 CRITICAL [worker] out of memory", "critical"),
        ("E0512 10:04:05.123456       1 main.go:42] failed to sync pod", "error"),
        ("W0512 10:04:05.123456       1 reflector.go:9] watch closed", "warning"),
        ("[INFO] GET /healthz 200 1ms", "info"),
        ("Traceback (most recent call last):", "error"),
        ("panic: runtime error: invalid memory address", "error"),
        ("psycopg.OperationalError: connection refused", "error"),
        ("user error rate looks fine today", "info"),  # lower-case word is not a level
        ("DEBUG cache hit key=user:42", "debug"),
    ],
)
def test_log_severity(line, expected):
    assert log_severity(line) == expected


def test_parse_time_forms():
    expected = datetime(2025, 3, 1, 10, 0, 0, 123456, tzinfo=UTC)
    assert parse_time("2025-03-01T10:00:00.123456789Z") == expected
    assert parse_time("2025-03-01T12:00:00.123456+02:00") == expected
    assert parse_time(expected.timestamp() * 1000) == expected
    assert parse_time("1740823200") == datetime(2025, 3, 1, 10, tzinfo=UTC)
    assert parse_time(datetime(2025, 3, 1, 10)) == datetime(2025, 3, 1, 10, tzinfo=UTC)
    with pytest.raises(ValueError, match="since: not an ISO 8601 time"):
        parse_time("last tuesday", "since")


# ========================================================= kubernetes


def k8s_credentials(url: str, token: str = K8S_TOKEN) -> KubernetesCredentials:
    config = KubernetesClusterConfig(config=k8s.kubeconfig(url, token), context_name="local")
    return KubernetesCredentials(cluster_config=config)


CHECKOUT_POD = "checkout-7d9f8b6c5d-x2x4z"


@pytest.fixture
def cluster():
    with k8s.KubernetesServer(K8S_TOKEN) as server:
        oom_at = NOW - timedelta(minutes=4)
        server.pods = [
            k8s.pod(
                CHECKOUT_POD,
                "shop",
                labels={"app.kubernetes.io/name": "checkout", "tier": "web"},
                node="ip-10-0-1-5",
                statuses=[
                    k8s.container_status(
                        "api",
                        ready=False,
                        restarts=6,
                        waiting=("CrashLoopBackOff", "back-off 5m0s restarting failed container"),
                        last_terminated=k8s.terminated("OOMKilled", 137, oom_at),
                    ),
                    k8s.container_status("envoy"),
                ],
                owner=("ReplicaSet", "checkout-7d9f8b6c5d"),
            ),
            k8s.pod(  # no service label: the owner's Deployment names the service
                "payments-5c8d7f9b4-k2l9m",
                "shop",
                labels={"tier": "web", "pod-template-hash": "5c8d7f9b4"},
                node="ip-10-0-1-6",
                statuses=[
                    k8s.container_status(
                        "app", ready=False, waiting=("ImagePullBackOff", "pull access denied")
                    )
                ],
                owner=("ReplicaSet", "payments-5c8d7f9b4"),
            ),
            k8s.pod(
                "worker-6f7d8c9b5-abcde",
                "shop",
                labels={"app": "worker", "tier": "batch"},
                phase="Pending",
                node=None,
                statuses=[],
                conditions=[
                    {
                        "type": "PodScheduled",
                        "status": "False",
                        "reason": "Unschedulable",
                        "message": "0/3 nodes are available: 3 Insufficient memory.",
                        "lastTransitionTime": k8s.iso(NOW - timedelta(minutes=2)),
                    }
                ],
            ),
            k8s.pod("web-5d6f7c8b9-qwert", "shop", labels={"app": "web", "tier": "web"}),
            k8s.pod("coredns-1", "kube-system", labels={"app": "coredns"}),
        ]
        yield server


def test_k8s_pod_states_selectors_and_related(cluster):
    states = kubernetes.fetch_k8s_pods.fn(
        k8s_credentials(cluster.url),
        namespace="shop",
        label_selector="tier in (web, batch),app!=web",
        field_selector="status.phase!=Succeeded",
    )
    assert [p.name for p in states.pods] == [
        CHECKOUT_POD,
        "payments-5c8d7f9b4-k2l9m",
        "worker-6f7d8c9b5-abcde",
    ]
    sent = cluster.queries("/api/v1/namespaces/shop/pods")[0]
    assert sent["labelSelector"] == ["tier in (web, batch),app!=web"]
    assert sent["fieldSelector"] == ["status.phase!=Succeeded"] and sent["limit"] == ["500"]
    checkout, payments, worker = states.pods
    assert checkout.related == ["service:checkout", "node:ip-10-0-1-5", "namespace:shop"]
    assert checkout.containers == ["api", "envoy"] and checkout.restarts == 6
    assert payments.service == "payments"  # from the ReplicaSet owner
    assert worker.related == ["service:worker", "namespace:shop"]  # not scheduled: no node
    by_reason = {e.attributes["reason"]: e for e in states.events}
    assert set(by_reason) == {"OOMKilled", "CrashLoopBackOff", "ImagePullBackOff", "Unschedulable"}
    oom = by_reason["OOMKilled"]
    assert oom.kind == "k8s_state" and oom.severity == "error"
    assert oom.timestamp == NOW - timedelta(minutes=4)  # the termination's finishedAt
    assert oom.entity == f"pod:{CHECKOUT_POD}" and "service:checkout" in oom.related
    assert (oom.attributes["exit_code"], oom.attributes["restart_count"]) == ("137", "6")
    crash = by_reason["CrashLoopBackOff"]
    assert crash.attributes["last_termination_reason"] == "OOMKilled"
    assert "back-off 5m0s" in crash.message and crash.attributes["container"] == "api"
    assert by_reason["Unschedulable"].severity == "warning"
    assert "Insufficient memory" in by_reason["Unschedulable"].message


def test_k8s_lists_follow_continue_tokens(cluster):
    cluster.max_page = 2
    states = kubernetes.fetch_k8s_pods.fn(k8s_credentials(cluster.url), include_healthy=True)
    assert len(states.pods) == 5  # all namespaces, three pages
    sent = cluster.queries("/api/v1/pods")
    assert [q.get("continue") for q in sent] == [None, ["2"], ["4"]]
    healthy = [e for e in states.events if e.severity == "info"]
    assert {e.entity for e in healthy} == {"pod:web-5d6f7c8b9-qwert", "pod:coredns-1"}


def test_k8s_events_since_and_related(cluster):
    cluster.events = [
        k8s.event(
            "e1",
            "shop",
            kind="Pod",
            obj=CHECKOUT_POD,
            reason="BackOff",
            message="Back-off restarting failed container api",
            last=NOW - timedelta(minutes=1),
            count=14,
        ),
        k8s.event(
            "e2",
            "shop",
            kind="Pod",
            obj="gone-7d9f8b6c5d-zzzzz",  # deleted pod: service guessed from the name
            reason="Killing",
            message="Stopping container app",
            type_="Normal",
            last=NOW - timedelta(minutes=2),
        ),
        k8s.event(
            "e3",
            "shop",
            kind="Deployment",
            obj="checkout",
            reason="ScalingReplicaSet",
            message="Scaled up replica set checkout-7d9f8b6c5d to 3",
            type_="Normal",
            last=NOW - timedelta(minutes=5),
            component="deployment-controller",
        ),
        k8s.event(
            "e4",
            "default",
            kind="Node",
            obj="ip-10-0-1-5",
            reason="NodeNotReady",
            message="Node ip-10-0-1-5 status is now: NodeNotReady",
            last=NOW - timedelta(minutes=3),
        ),
        k8s.event(
            "old",
            "shop",
            kind="Pod",
            obj=CHECKOUT_POD,
            reason="Pulled",
            message="Container image pulled",
            type_="Normal",
            last=NOW - timedelta(hours=3),
        ),
    ]
    creds = k8s_credentials(cluster.url)
    pods = kubernetes.fetch_k8s_pods.fn(creds, namespace="shop").pods
    events = kubernetes.fetch_k8s_events.fn(creds, NOW - timedelta(minutes=10), pods=pods)
    assert [e.attributes["reason"] for e in events] == [
        "ScalingReplicaSet",
        "NodeNotReady",
        "Killing",
        "BackOff",
    ]  # oldest first; the 3-hour-old event is outside the window
    scaling, node_event, killing, backoff = events
    assert backoff.severity == "warning" and backoff.kind == "k8s_event"
    assert backoff.related == ["service:checkout", "node:ip-10-0-1-5", "namespace:shop"]
    assert backoff.attributes["count"] == "14" and backoff.message.startswith("BackOff: ")
    assert killing.severity == "info" and killing.related == ["service:gone", "namespace:shop"]
    assert scaling.entity == "service:checkout" and scaling.related == ["namespace:shop"]
    assert node_event.entity == "node:ip-10-0-1-5" and node_event.related == []
    warnings = kubernetes.fetch_k8s_events.fn(
        creds, NOW - timedelta(minutes=10), namespace="shop", warnings_only=True
    )
    assert [e.attributes["reason"] for e in warnings] == ["BackOff"]
    assert cluster.queries("/api/v1/namespaces/shop/events")[-1]["fieldSelector"] == [
        "type=Warning"
    ]


def test_k8s_logs_since_tail_timestamps_and_skips(cluster):
    key = ("shop", CHECKOUT_POD, "api", False)
    cluster.logs[key] = [
        (NOW - timedelta(minutes=30), "INFO starting checkout api v1.4.2"),
        (NOW - timedelta(seconds=90), '{"level":"warn","msg":"db pool at 95%"}'),
        (NOW - timedelta(seconds=60), "ERROR payment call failed: timeout after 3000ms"),
        (NOW - timedelta(seconds=30), "INFO GET /healthz 200"),
    ]
    cluster.logs[("shop", CHECKOUT_POD, "api", True)] = [
        (NOW - timedelta(minutes=5), "FATAL out of memory: cannot allocate 512MiB")
    ]
    cluster.logs[("shop", CHECKOUT_POD, "envoy", False)] = [
        (
            NOW - timedelta(seconds=10),
            "[2025-03-01 10:00:00.000][14][warning][upstream] upstream reset",
        )
    ]
    creds = k8s_credentials(cluster.url)
    pods = kubernetes.fetch_k8s_pods.fn(creds, namespace="shop").pods
    checkout, payments = pods[0], pods[1]
    recent = kubernetes.fetch_k8s_logs.fn(
        creds, [checkout, payments], since=NOW - timedelta(minutes=2)
    )
    messages = [(e.attributes["container"], e.severity, e.message) for e in recent.events]
    assert messages == [
        ("api", "warning", '{"level":"warn","msg":"db pool at 95%"}'),
        ("api", "error", "ERROR payment call failed: timeout after 3000ms"),
        ("api", "info", "INFO GET /healthz 200"),
        ("envoy", "warning", "[2025-03-01 10:00:00.000][14][warning][upstream] upstream reset"),
    ]
    assert recent.events[1].timestamp == NOW - timedelta(seconds=60)  # the kubelet's stamp
    assert recent.events[0].related == checkout.related
    assert list(recent.skipped) == ["shop/payments-5c8d7f9b4-k2l9m/app"]
    assert "waiting to start" in recent.skipped["shop/payments-5c8d7f9b4-k2l9m/app"]
    sent = cluster.queries(f"/api/v1/namespaces/shop/pods/{CHECKOUT_POD}/log")[0]
    assert sent["timestamps"] == ["true"] and sent["container"] == ["api"]
    # since = NOW - 2 min, and NOW was taken at import: the gap grows with the suite's age
    expected = (datetime.now(UTC) - (NOW - timedelta(minutes=2))).total_seconds()
    assert 120 <= int(sent["sinceSeconds"][0]) <= expected + 1
    tail = kubernetes.fetch_k8s_logs.fn(creds, [checkout], tail_lines=1, containers=["api"])
    assert [e.message for e in tail.events] == ["INFO GET /healthz 200"]
    assert cluster.queries(f"/api/v1/namespaces/shop/pods/{CHECKOUT_POD}/log")[-1]["tailLines"] == [
        "1"
    ]
    previous = kubernetes.fetch_k8s_logs.fn(creds, [checkout], previous=True, containers=["api"])
    assert [(e.severity, e.attributes["previous"]) for e in previous.events] == [
        ("critical", "true")
    ]
    with pytest.raises(ValueError, match="tail_lines: must be a positive"):
        kubernetes.fetch_k8s_logs.fn(creds, [checkout], tail_lines=0)


def test_k8s_nodes_conditions_and_capacity(cluster):
    changed = NOW - timedelta(minutes=7)
    cluster.nodes = [
        k8s.node("ip-10-0-1-5", ready="False", changed=changed),
        k8s.node("ip-10-0-1-6", pressure={"MemoryPressure": "True"}, changed=changed),
        k8s.node("ip-10-0-1-7", ready="Unknown", unschedulable=True, changed=changed),
        k8s.node("ip-10-0-1-8", labels={"pool": "spot"}),
    ]
    states = kubernetes.fetch_k8s_nodes.fn(k8s_credentials(cluster.url))
    assert [n.name for n in states.nodes] == [f"ip-10-0-1-{i}" for i in (5, 6, 7, 8)]
    assert states.nodes[0].allocatable == {"cpu": "3920m", "memory": "15Gi", "pods": "110"}
    found = [(e.entity, e.attributes["reason"], e.severity) for e in states.events]
    assert found == [
        ("node:ip-10-0-1-5", "NotReady", "error"),
        ("node:ip-10-0-1-6", "MemoryPressure", "warning"),
        ("node:ip-10-0-1-7", "NodeStatusUnknown", "error"),
        ("node:ip-10-0-1-7", "Cordoned", "warning"),
    ]
    not_ready = states.events[0]
    assert not_ready.timestamp == changed
    assert not_ready.attributes["allocatable_memory"] == "15Gi"
    assert not_ready.attributes["capacity_cpu"] == "4"
    only = kubernetes.fetch_k8s_nodes.fn(k8s_credentials(cluster.url), label_selector="pool=spot")
    assert [n.name for n in only.nodes] == ["ip-10-0-1-8"] and only.events == []


def test_k8s_metrics_present_and_absent(cluster):
    creds = k8s_credentials(cluster.url)
    absent = kubernetes.fetch_k8s_metrics.fn(creds, namespace="shop")
    assert absent.available is False and absent.series == []
    cluster.metrics_enabled = True
    cluster.pod_metrics = [
        k8s.pod_metrics(
            CHECKOUT_POD, "shop", {"api": ("250m", "300Mi"), "envoy": ("5m", "20Mi")}, NOW
        ),
        k8s.pod_metrics("orphan-0", "shop", {"app": ("123456789n", "1Gi")}, NOW),
    ]
    cluster.node_metrics = [k8s.node_metrics("ip-10-0-1-5", "1960m", "7680Mi", NOW)]
    cluster.nodes = [k8s.node("ip-10-0-1-5")]
    pods = kubernetes.fetch_k8s_pods.fn(creds, namespace="shop").pods
    nodes = kubernetes.fetch_k8s_nodes.fn(creds).nodes
    usage = kubernetes.fetch_k8s_metrics.fn(creds, namespace="shop", pods=pods, nodes=nodes)
    assert usage.available is True
    got = {(s.entity, s.metric): s for s in usage.series}
    cpu = got[(f"pod:{CHECKOUT_POD}", "cpu_millicores")]
    assert cpu.values == [255.0] and cpu.unit == "millicores" and cpu.timestamps == [NOW]
    assert cpu.related == ["service:checkout", "node:ip-10-0-1-5", "namespace:shop"]
    assert got[(f"pod:{CHECKOUT_POD}", "memory_bytes")].values == [320 * 2**20]
    orphan = got[("pod:orphan-0", "cpu_millicores")]
    assert orphan.values == [123.457] and orphan.related == ["service:orphan", "namespace:shop"]
    assert got[("node:ip-10-0-1-5", "cpu_percent")].values == [50.0]  # of 3920m allocatable
    assert got[("node:ip-10-0-1-5", "memory_percent")].values == [50.0]  # of 15Gi
    paths = [s.path.split("?")[0] for s in cluster.requests]
    assert "/apis/metrics.k8s.io/v1beta1/namespaces/shop/pods" in paths
    assert "/apis/metrics.k8s.io/v1beta1/nodes" in paths


def test_k8s_errors_are_classified_and_keep_the_token_out(cluster, caplog):
    with caplog.at_level(logging.DEBUG), pytest.raises(KubernetesApiError) as denied:
        kubernetes.fetch_k8s_pods.fn(k8s_credentials(cluster.url, token="wrong-token-1234"))
    assert denied.value.status == 401 and not is_transient(denied.value)
    cluster.fail(503, k8s.status(503, "ServiceUnavailable", "etcdserver: leader changed"))
    with pytest.raises(KubernetesUnavailable) as unavailable:
        kubernetes.fetch_k8s_pods.fn(k8s_credentials(cluster.url))
    assert is_transient(unavailable.value) and "leader changed" in str(unavailable.value)
    port = cluster.port
    cluster.stop()
    with pytest.raises(KubernetesUnavailable) as refused:
        kubernetes.fetch_k8s_pods.fn(k8s_credentials(f"http://127.0.0.1:{port}"))
    assert is_transient(refused.value)
    for error in (denied.value, unavailable.value, refused.value):
        assert_no_secret(K8S_TOKEN, str(error), repr(error), one_line_reason(error))
    assert_no_secret(K8S_TOKEN, caplog.text)


def test_k8s_transient_failure_is_retried_by_the_task(harness, cluster, fast_retries):
    cluster.fail(429, k8s.status(429, "TooManyRequests", "too many requests"), times=1)
    state = kubernetes.fetch_k8s_pods(
        k8s_credentials(cluster.url), namespace="shop", return_state=True
    )
    assert state.is_completed() and len(state.result().pods) == 4
    assert task_run_count(state) == 2 and cluster.faults_served == 1


def test_k8s_pure_naming_helpers():
    assert entities.service_from_pod_name("checkout-7d9f8b6c5d-x2x4z") == "checkout"
    assert entities.service_from_pod_name("postgres-0") == "postgres"
    assert entities.service_from_pod_name("fluentd-k8s4q") == "fluentd"
    assert entities.service_from_pod_name("standalone") == "standalone"
    assert entities.owner_workload("ReplicaSet", "api-7d9f8b6c5d", "7d9f8b6c5d") == "api"
    assert entities.owner_workload("Job", "nightly-report-28374650") == "nightly-report"
    bare = k8s.pod("debug", "shop", labels={})
    assert entities.pod_service(bare) is None
    labelled = k8s.pod("x", "shop", labels={"team.io/service": "cart", "app": "other"})
    assert entities.pod_service(labelled, ["team.io/service", "app"]) == "cart"
    with pytest.raises(ValueError, match="namespace: must be a DNS label"):
        kubernetes.fetch_k8s_pods.fn(None, namespace="Shop_1")
    with pytest.raises(ValueError, match="label_selector: must be a non-empty"):
        kubernetes.fetch_k8s_pods.fn(None, label_selector=" ")


# ============================================================ sentry


def sentry_credentials(url: str, token: str = SENTRY_TOKEN) -> SentryCredentials:
    return SentryCredentials(token=token, organization="acme", base_url=url)


@pytest.fixture
def sentry_api():
    with st.SentryServer(SENTRY_TOKEN, page_size=2) as server:
        server.issues = [
            st.issue(
                101,
                "OperationalError: connection to server at 10.0.3.7 refused",
                "checkout",
                first_seen=NOW - timedelta(minutes=8),
                last_seen=NOW - timedelta(minutes=1),
                level="error",
                substatus="new",
                count=240,
                user_count=57,
            ),
            st.issue(
                102,
                "TimeoutError: payment gateway did not answer in 3s",
                "checkout",
                first_seen=NOW - timedelta(days=20),
                last_seen=NOW - timedelta(minutes=2),
                level="fatal",
                substatus="regressed",
            ),
            st.issue(
                103,
                "KeyError: 'currency'",
                "checkout",
                first_seen=NOW - timedelta(days=3),
                last_seen=NOW - timedelta(minutes=3),
                level="warning",
            ),
            st.issue(
                104,
                "ValueError: invalid sku",
                "checkout",
                first_seen=NOW - timedelta(days=9),
                last_seen=NOW - timedelta(minutes=4),
            ),
            st.issue(
                107,
                "RuntimeError: cart lock not acquired",
                "checkout",
                first_seen=NOW - timedelta(days=1),
                last_seen=NOW - timedelta(minutes=6),
            ),
            st.issue(
                105,
                "TimeoutError: redis read timed out",
                "inventory",
                first_seen=NOW - timedelta(minutes=30),
                last_seen=NOW - timedelta(minutes=5),
            ),
            st.issue(
                106,
                "ZeroDivisionError: division by zero",
                "checkout",
                first_seen=NOW - timedelta(days=40),
                last_seen=NOW - timedelta(days=2),
                status="resolved",
            ),
        ]
        yield server


def test_sentry_issues_follow_link_pages(sentry_api):
    result = sentry.fetch_sentry_issues.fn(
        sentry_credentials(sentry_api.url), project="checkout", since=NOW - timedelta(hours=1)
    )
    assert result.pages == 3 and result.truncated is False  # 2 + 2 + 1 issues
    assert SENTRY_TOKEN not in result.model_dump_json()
    assert [e.attributes["issue_id"] for e in result.events] == ["101", "102", "103", "104", "107"]
    cursors = [q.get("cursor") for q in sentry_api.queries("/api/0/projects/acme/checkout/issues/")]
    assert cursors == [None, "0:2:0", "0:4:0"]
    query = sentry_api.queries()[0]["query"]
    assert query.startswith("is:unresolved lastSeen:>=")
    new, regressed, warning, *_ = result.events
    assert new.kind == "issue" and new.entity == "service:checkout" and new.related == []
    assert new.attributes["is_new"] == "true" and new.attributes["substatus"] == "new"
    assert new.timestamp == NOW - timedelta(minutes=8)  # new in the window: first seen
    assert (new.attributes["count"], new.attributes["user_count"]) == ("240", "57")
    assert new.message.startswith("OperationalError: connection to server")
    assert regressed.attributes["is_regression"] == "true" and regressed.severity == "critical"
    assert regressed.timestamp == NOW - timedelta(minutes=2)  # old issue: last seen
    assert warning.severity == "warning" and warning.attributes["is_new"] == "false"


def test_sentry_org_issues_text_search_and_truncation(sentry_api):
    creds = sentry_credentials(sentry_api.url)
    found = sentry.fetch_sentry_issues.fn(
        creds, query="TimeoutError", project_services={"inventory": "inventory-api"}
    )
    assert [e.entity for e in found.events] == ["service:checkout", "service:inventory-api"]
    sent = sentry_api.queries("/api/0/organizations/acme/issues/")[0]
    assert sent["query"] == "is:unresolved TimeoutError" and sent["limit"] == "100"
    capped = sentry.fetch_sentry_issues.fn(creds, status=None, max_pages=2)
    assert capped.truncated is True and len(capped.events) == 4 and capped.pages == 2


def test_sentry_issue_events_tags_and_frames(sentry_api):
    sentry_api.events["101"] = [
        st.sentry_event(
            "a" * 32,
            NOW - timedelta(minutes=1),
            exc_type="OperationalError",
            exc_value="connection to server at 10.0.3.7 refused",
            tags={
                "server_name": "checkout-7d9f8b6c5d-x2x4z",
                "service": "checkout-api",
                "environment": "prod",
                "level": "error",
            },
        ),
        st.sentry_event(
            "b" * 32,
            NOW - timedelta(minutes=2),
            exc_type="OperationalError",
            exc_value="connection refused",
            tags={"environment": "prod"},
        ),
        st.sentry_event(
            "c" * 32,
            NOW - timedelta(hours=5),
            exc_type="OperationalError",
            exc_value="old",
            tags={},
        ),
    ]
    result = sentry.fetch_sentry_issue_events.fn(
        sentry_credentials(sentry_api.url),
        "101",
        project="checkout",
        since=NOW - timedelta(hours=1),
    )
    assert [e.attributes["event_id"] for e in result.events] == ["a" * 32, "b" * 32]
    assert result.pages == 2
    first, second = result.events
    assert first.kind == "error_event" and first.entity == "host:checkout-7d9f8b6c5d-x2x4z"
    assert first.related == ["service:checkout-api"]
    assert second.entity == "service:checkout"  # no tags: the project
    assert first.message == "OperationalError: connection to server at 10.0.3.7 refused"
    assert first.attributes["frames"].splitlines() == [
        "app.server.dispatch (app/server.py:88)",
        "app.handlers.handle (app/handlers.py:42)",
        "psycopg.connection.connect (psycopg/connection.py:120)",
    ]
    assert first.attributes["culprit_frame"] == "app.handlers.handle (app/handlers.py:42)"
    assert first.attributes["tag.environment"] == "prod" and first.attributes["issue_id"] == "101"
    sent = sentry_api.queries("/api/0/organizations/acme/issues/101/events/")[0]
    assert sent["full"] == "true" and "start" in sent and "end" in sent
    with pytest.raises(ValueError, match="issue_id: must be a numeric"):
        sentry.fetch_sentry_issue_events.fn(sentry_credentials(sentry_api.url), "101/../x")


def test_sentry_429_waits_for_retry_after(sentry_api, caplog):
    sentry_api.fail(
        429, {"detail": "Request was throttled."}, times=1, headers={"Retry-After": "1"}
    )
    with caplog.at_level(logging.WARNING):
        result = sentry.fetch_sentry_issues.fn(
            sentry_credentials(sentry_api.url), project="checkout"
        )
    assert len(result.events) == 5 and sentry_api.faults_served == 1
    issue_calls = [r for r in sentry_api.requests if "/issues/" in r.path]
    assert len(issue_calls) == 4  # the throttled call, asked again, then pages 2 and 3
    assert "waiting 1.0s" in caplog.text
    # a wait longer than the bound is not slept: the 429 is raised for the task to retry
    sentry_api.fail(429, {"detail": "slow down"}, times=1, headers={"Retry-After": "3600"})
    with pytest.raises(httpx.HTTPStatusError) as throttled:
        sentry.fetch_sentry_issues.fn(sentry_credentials(sentry_api.url), project="checkout")
    assert throttled.value.response.status_code == 429 and is_transient(throttled.value)


def test_sentry_pure_link_and_retry_after():
    link = (
        '<https://sentry.io/api/0/x/?cursor=0:0:1>; rel="previous"; results="false"; '
        'cursor="0:0:1", <https://sentry.io/api/0/x/?cursor=0:100:0>; rel="next"; '
        'results="true"; cursor="0:100:0"'
    )
    assert sentry.next_cursor(link) == "0:100:0"
    assert sentry.next_cursor(link.replace('results="true"', 'results="false"')) is None
    assert sentry.next_cursor(None) is None
    now = datetime(2025, 3, 1, 10, tzinfo=UTC)
    assert sentry.retry_after_seconds({"retry-after": "7"}, now) == 7.0
    assert sentry.retry_after_seconds({"retry-after": "Sat, 01 Mar 2025 10:00:30 GMT"}, now) == 30
    assert (
        sentry.retry_after_seconds({"x-sentry-rate-limit-reset": str(now.timestamp() + 4)}, now)
        == 4
    )
    assert sentry.retry_after_seconds({}, now) is None


def test_sentry_401_not_retried_and_token_never_leaks(
    harness, sentry_api, fast_retries, caplog, capfd
):
    canary = "CANARY-sentry-wrong-Tq5Wm2Lx8"
    with caplog.at_level(logging.DEBUG):
        state = sentry.fetch_sentry_issues(
            sentry_credentials(sentry_api.url, token=canary), project="checkout", return_state=True
        )
    assert state.is_failed()
    error = state.result(raise_on_failure=False)
    assert isinstance(error, httpx.HTTPStatusError) and error.response.status_code == 401
    assert task_run_count(state) == 1 and len(sentry_api.requests) == 1
    out, err = capfd.readouterr()
    creds = sentry_credentials(sentry_api.url, token=canary)
    assert_no_secret(
        canary,
        caplog.text,
        out,
        err,
        str(error),
        repr(error),
        state.message or "",
        one_line_reason(error),
        repr(creds),
        str(creds.model_dump()),
    )
    assert "HTTP 401" in one_line_reason(error)


def test_sentry_5xx_is_retried_by_the_task(harness, sentry_api, fast_retries):
    sentry_api.fail(502, {"detail": "bad gateway"}, times=1)
    state = sentry.fetch_sentry_issues(
        sentry_credentials(sentry_api.url), project="checkout", return_state=True
    )
    assert state.is_completed() and len(state.result().events) == 5
    assert task_run_count(state) == 2


def test_sentry_and_grafana_blocks_validate_without_echoing_the_token():
    with pytest.raises(ValidationError) as bad_org:
        SentryCredentials(token=SENTRY_TOKEN, organization="Acme Corp")
    assert "organization: must be a Sentry slug" in str(bad_org.value)
    with pytest.raises(ValidationError) as bad_url:
        SentryCredentials(token=SENTRY_TOKEN, organization="acme", base_url="ftp://sentry")
    with pytest.raises(ValidationError) as bad_grafana:
        GrafanaCredentials(url="https://user:pw@grafana.example", token=GRAFANA_TOKEN)
    assert "url: must be an http(s):// URL without credentials" in str(bad_grafana.value)
    for exc in (bad_org, bad_url, bad_grafana):
        assert_no_secret(SENTRY_TOKEN, str(exc.value))
        assert_no_secret(GRAFANA_TOKEN, str(exc.value))
    block = SentryCredentials(token=SENTRY_TOKEN, organization="acme", base_url="https://x.io/")
    assert block.base_url == "https://x.io" and SENTRY_TOKEN not in repr(block)


# ============================================================ grafana


def grafana_credentials(url: str, token: str = GRAFANA_TOKEN) -> GrafanaCredentials:
    return GrafanaCredentials(url=url, token=token, org_id=2)


@pytest.fixture
def grafana_api():
    with gf.GrafanaServer(GRAFANA_TOKEN) as server:
        server.dashboards = [
            gf.dashboard("svc-overview", "Checkout Overview", ["checkout", "prod"]),
            gf.dashboard("k8s-nodes", "Kubernetes Nodes", ["k8s"]),
            gf.dashboard("checkout-slo", "Checkout SLO", ["checkout", "slo"]),
        ]
        yield server


def test_grafana_dashboard_search(grafana_api):
    hits = grafana.search_grafana_dashboards.fn(
        grafana_credentials(grafana_api.url), "checkout", tags=["prod"]
    )
    assert [(d.uid, d.title, d.folder) for d in hits] == [
        ("svc-overview", "Checkout Overview", "Services")
    ]
    sent = grafana_api.queries("/api/search")[0]
    assert sent == {"type": ["dash-db"], "query": ["checkout"], "limit": ["100"], "tag": ["prod"]}
    headers = grafana_api.requests[0].headers
    assert headers["x-grafana-org-id"] == "2"


def test_grafana_annotations_deploys_alerts_and_window(grafana_api):
    grafana_api.annotations = [
        gf.annotation(
            1,
            NOW - timedelta(minutes=9),
            "Deployed <b>checkout</b> v1.4.2",
            ["deploy", "service:checkout", "env=prod"],
        ),
        gf.annotation(
            2,
            NOW - timedelta(minutes=4),
            "error rate above 5%",
            ["pod=checkout-7d9f8b6c5d-x2x4z", "service:checkout"],
            alert=("Checkout 5xx rate", "alerting", "ok"),
        ),
        gf.annotation(3, NOW - timedelta(minutes=2), "on-call looking at db", ["incident"]),
        gf.annotation(4, NOW - timedelta(days=2), "old release", ["release"]),
    ]
    events = grafana.fetch_grafana_annotations.fn(
        grafana_credentials(grafana_api.url), NOW - timedelta(hours=1), NOW
    )
    assert [e.kind for e in events] == ["deploy", "alarm", "annotation"]  # oldest first
    deploy, alert, note = events
    assert deploy.entity == "service:checkout" and deploy.message == "Deployed checkout v1.4.2"
    assert deploy.timestamp == NOW - timedelta(minutes=9) and deploy.severity == "info"
    assert alert.entity == "pod:checkout-7d9f8b6c5d-x2x4z"
    assert alert.related == ["service:checkout"] and alert.severity == "error"
    assert alert.message == "Checkout 5xx rate: alerting (error rate above 5%)"
    assert alert.attributes["prev_state"] == "ok"
    assert note.entity == "unknown:grafana" and note.attributes["tags"] == "incident"
    sent = grafana_api.queries("/api/annotations")[0]
    assert sent["from"] == [str(gf.ms(NOW - timedelta(hours=1)))] and sent["to"] == [
        str(gf.ms(NOW))
    ]
    tagged = grafana.fetch_grafana_annotations.fn(
        grafana_credentials(grafana_api.url),
        NOW - timedelta(days=3),
        tags=["deploy", "release"],
        match_any=True,
    )
    assert [e.attributes["annotation_id"] for e in tagged] == ["4", "1"]
    assert grafana_api.queries("/api/annotations")[-1]["tags"] == ["deploy", "release"]
    with pytest.raises(ValueError, match="until: must be after since"):
        grafana.fetch_grafana_annotations.fn(grafana_credentials(grafana_api.url), NOW, NOW)


def test_grafana_ds_query_frames_to_series_and_errors(grafana_api):
    stamps = [NOW - timedelta(minutes=m) for m in (3, 2, 1)]
    grafana_api.frames_by_ref["A"] = [
        gf.wide_frame(
            "A",
            stamps,
            [
                ({"service": "checkout", "namespace": "shop"}, [0.1, None, 4.5]),
                ({"service": "payments", "namespace": "shop"}, [0.0, 0.0, 0.2]),
            ],
            unit="reqps",
        )
    ]
    grafana_api.frames_by_ref["B"] = [
        {  # a long frame (SQL-style): the string column acts as a label
            "schema": {
                "refId": "B",
                "name": "latency",
                "fields": [
                    {"name": "time", "type": "time"},
                    {"name": "instance", "type": "string"},
                    {"name": "latency_p99_ms", "type": "number", "config": {"unit": "ms"}},
                ],
            },
            "data": {
                "values": [
                    [gf.ms(stamps[1]), gf.ms(stamps[0]), gf.ms(stamps[1])],
                    ["10.0.1.5:9100", "10.0.1.5:9100", "10.0.1.6:9100"],
                    [250.0, 120.0, 80.0],
                ]
            },
        }
    ]
    grafana_api.errors_by_ref["C"] = "bad_data: parse error at char 5: unclosed left parenthesis"
    result = grafana.query_grafana_datasource.fn(
        grafana_credentials(grafana_api.url),
        "prom",
        [
            {"refId": "A", "expr": "sum by (service, namespace) (rate(http_5xx_total[1m]))"},
            {"refId": "B", "rawSql": "select ..."},
            {"refId": "C", "expr": "sum(rate("},
        ],
        NOW - timedelta(minutes=30),
        NOW,
        metric_names={"A": "http_5xx_rate"},
    )
    assert result.errors == {"C": "bad_data: parse error at char 5: unclosed left parenthesis"}
    assert GRAFANA_TOKEN not in result.model_dump_json()
    got = {(s.entity, s.metric): s for s in result.series}
    assert set(got) == {
        ("service:checkout", "http_5xx_rate"),
        ("service:payments", "http_5xx_rate"),
        ("host:10.0.1.5:9100", "latency_p99_ms"),
        ("host:10.0.1.6:9100", "latency_p99_ms"),
    }
    checkout = got[("service:checkout", "http_5xx_rate")]
    assert checkout.values == [0.1, 4.5] and checkout.timestamps == [stamps[0], stamps[2]]
    assert checkout.related == ["namespace:shop"] and checkout.unit == "reqps"
    assert checkout.attributes["label.service"] == "checkout"
    host = got[("host:10.0.1.5:9100", "latency_p99_ms")]
    assert host.values == [120.0, 250.0] and host.unit == "ms"  # sorted by time
    body = grafana_api.bodies("/api/ds/query")[0]
    assert body["from"] == str(gf.ms(NOW - timedelta(minutes=30))) and body["to"] == str(gf.ms(NOW))
    assert [q["datasource"] for q in body["queries"]] == [{"uid": "prom"}] * 3
    with pytest.raises(ValueError, match=r"queries\[1\].refId: must be a unique id"):
        grafana.query_grafana_datasource.fn(
            grafana_credentials(grafana_api.url),
            "prom",
            [{"refId": "A"}, {"refId": "A"}],
            NOW - timedelta(hours=1),
        )
    with pytest.raises(httpx.HTTPStatusError) as missing:
        grafana.query_grafana_datasource.fn(
            grafana_credentials(grafana_api.url), "nope", [{"refId": "A"}], NOW - timedelta(hours=1)
        )
    assert missing.value.response.status_code == 404


def test_grafana_401_not_retried_and_token_never_leaks(
    harness, grafana_api, fast_retries, caplog, capfd
):
    canary = "CANARY-grafana-wrong-Jd4Np7Vc2"
    with caplog.at_level(logging.DEBUG):
        state = grafana.fetch_grafana_annotations(
            grafana_credentials(grafana_api.url, token=canary),
            NOW - timedelta(hours=1),
            return_state=True,
        )
    assert state.is_failed()
    error = state.result(raise_on_failure=False)
    assert isinstance(error, httpx.HTTPStatusError) and error.response.status_code == 401
    assert task_run_count(state) == 1 and len(grafana_api.requests) == 1
    out, err = capfd.readouterr()
    assert_no_secret(
        canary,
        caplog.text,
        out,
        err,
        str(error),
        repr(error),
        state.message or "",
        one_line_reason(error),
    )


# ========================================================= cloudwatch


def aws_credentials(url: str) -> AwsCredentials:
    return AwsCredentials(
        aws_access_key_id="AKIATESTING",
        aws_secret_access_key="testing-secret",
        region_name="us-east-1",
        aws_client_parameters={"endpoint_url": url},
    )


def boto(url: str, service: str):
    return boto3.client(
        service,
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id="AKIATESTING",
        aws_secret_access_key="testing-secret",
    )


def put_logs(url: str, group: str, stream: str, lines: list[tuple[datetime, str]]) -> None:
    logs = boto(url, "logs")
    logs.create_log_group(logGroupName=group)
    logs.create_log_stream(logGroupName=group, logStreamName=stream)
    logs.put_log_events(
        logGroupName=group,
        logStreamName=stream,
        logEvents=[
            {"timestamp": int(t.timestamp() * 1000), "message": m} for t, m in sorted(lines)
        ],
    )


def test_cloudwatch_filter_log_events_with_pattern(moto_url):
    group = "/aws/lambda/checkout-fn"
    stream = "2025/03/01/[$LATEST]0123456789abcdef"
    put_logs(
        moto_url,
        group,
        stream,
        [
            (NOW - timedelta(minutes=5), "START RequestId: 1 Version: $LATEST"),
            (NOW - timedelta(minutes=4), "[ERROR] TimeoutError: payment gateway timed out"),
            (NOW - timedelta(minutes=3), "[WARNING] retrying payment"),
            (NOW - timedelta(minutes=2), "[ERROR] ConnectionError: db refused"),
            (NOW - timedelta(hours=2), "[ERROR] old error outside the window"),
        ],
    )
    creds = aws_credentials(moto_url)
    found = cloudwatch_logs.fetch_cloudwatch_logs.fn(
        creds, group, NOW - timedelta(minutes=30), NOW, filter_pattern="ERROR"
    )
    assert [e.message for e in found.events] == [
        "[ERROR] TimeoutError: payment gateway timed out",
        "[ERROR] ConnectionError: db refused",
    ]
    first = found.events[0]
    assert first.entity == "function:checkout-fn" and first.severity == "error"
    assert first.timestamp == NOW - timedelta(minutes=4)
    assert first.attributes["log_stream"] == stream and first.attributes["log_group"] == group
    everything = cloudwatch_logs.fetch_cloudwatch_logs.fn(creds, group, NOW - timedelta(minutes=30))
    assert [e.severity for e in everything.events] == ["info", "error", "warning", "error"]
    capped = cloudwatch_logs.fetch_cloudwatch_logs.fn(
        creds, group, NOW - timedelta(minutes=30), max_events=2
    )
    assert capped.truncated is True and len(capped.events) == 2


def test_cloudwatch_logs_insights_query(moto_url):
    group = "/ecs/inventory"
    put_logs(
        moto_url,
        group,
        "inventory/app/3f2a",
        [
            (NOW - timedelta(minutes=6), "level=info msg=ready"),
            (NOW - timedelta(minutes=5), 'level=error msg="redis: i/o timeout"'),
            (NOW - timedelta(minutes=4), 'level=warn msg="cache miss storm"'),
        ],
    )
    result = cloudwatch_logs.run_logs_insights_query.fn(
        aws_credentials(moto_url),
        [group],
        "fields @timestamp, @message, @logStream | sort @timestamp desc | limit 2",
        NOW - timedelta(minutes=30),
        NOW + timedelta(minutes=1),
        max_wait_seconds=30,
        poll_seconds=0.2,
    )
    assert result.status == "Complete" and len(result.rows) == 2
    assert [r["@message"] for r in result.rows] == [  # the query's order: newest first
        'level=warn msg="cache miss storm"',
        'level=error msg="redis: i/o timeout"',
    ]
    assert [e.message for e in result.events] == [  # events: oldest first
        'level=error msg="redis: i/o timeout"',
        'level=warn msg="cache miss storm"',
    ]
    assert {e.entity for e in result.events} == {"service:inventory"}
    assert [e.severity for e in result.events] == ["error", "warning"]
    assert result.events[0].timestamp == NOW - timedelta(minutes=5)
    assert result.events[0].attributes["log_stream"] == "inventory/app/3f2a"


def test_cloudwatch_insights_rows_and_container_insights_entities():
    rows = cloudwatch_logs.insights_rows(
        [
            [
                {"field": "@timestamp", "value": "2025-03-01 10:00:00.000"},
                {"field": "@message", "value": "Task timed out after 3.00 seconds"},
                {"field": "@log", "value": "123456789012:/aws/lambda/resize"},
                {"field": "requestId", "value": "r-1"},
            ],
            [{"field": "bin(5m)", "value": "2025-03-01 10:00:00"}, {"field": "n", "value": "4"}],
        ]
    )
    events = cloudwatch_logs.insights_rows_to_events(rows, "/aws/lambda/other")
    assert len(events) == 1 and events[0].entity == "function:resize"
    assert events[0].severity == "error"  # a Lambda timeout names no level
    assert events[0].attributes["field.requestId"] == "r-1"
    record = json.dumps(
        {
            "log": "ERROR connection reset by peer\n",
            "stream": "stderr",
            "kubernetes": {
                "pod_name": "checkout-7d9f8b6c5d-x2x4z",
                "namespace_name": "shop",
                "container_name": "api",
                "host": "ip-10-0-1-5.ec2.internal",
                "labels": {"app": "checkout"},
            },
        }
    )
    stream = (
        "ip-10-0-1-5.ec2.internal-application.var.log.containers."
        f"checkout-7d9f8b6c5d-x2x4z_shop_api-{'a' * 64}.log"
    )
    entity, related, message, attrs = cloudwatch_logs.log_entities(
        "/aws/containerinsights/prod/application", stream, record
    )
    assert entity == "pod:checkout-7d9f8b6c5d-x2x4z"
    assert related == ["service:checkout", "node:ip-10-0-1-5.ec2.internal", "namespace:shop"]
    assert message == "ERROR connection reset by peer" and attrs["cluster"] == "prod"
    plain = cloudwatch_logs.log_entities("/aws/containerinsights/prod/application", stream, "oops")
    assert plain[0] == "pod:checkout-7d9f8b6c5d-x2x4z" and plain[1][0] == "service:checkout"
    custom = [
        cloudwatch_logs.LogEntityRule(pattern=r"^/apps/(?P<name>[^/]+)/", entity_type="service")
    ]
    assert cloudwatch_logs.log_entities("/apps/cart/web", "s", "m", custom)[0] == "service:cart"
    assert cloudwatch_logs.log_entities("/misc", "s", "m")[0] == "unknown:/misc"
    with pytest.raises(ValidationError, match="needs a named group"):
        cloudwatch_logs.LogEntityRule(pattern="^/x/(.*)$", entity_type="service")


def test_cloudwatch_metric_data(moto_url):
    cw = boto(moto_url, "cloudwatch")
    base = NOW.replace(second=0) - timedelta(minutes=10)
    cw.put_metric_data(
        Namespace="AWS/Lambda",
        MetricData=[
            {
                "MetricName": "Errors",
                "Dimensions": [{"Name": "FunctionName", "Value": "checkout-metrics"}],
                "Timestamp": base + timedelta(minutes=i),
                "Value": float(v),
            }
            for i, v in enumerate([0, 0, 1, 9, 14])
        ],
    )
    cw.put_metric_data(
        Namespace="ContainerInsights",
        MetricData=[
            {
                "MetricName": "pod_cpu_utilization",
                "Dimensions": [
                    {"Name": "ClusterName", "Value": "prod"},
                    {"Name": "Namespace", "Value": "shop"},
                    {"Name": "PodName", "Value": "checkout"},
                ],
                "Timestamp": base + timedelta(minutes=i),
                "Value": v,
            }
            for i, v in enumerate([20.0, 35.5])
        ],
    )
    queries = [
        cloudwatch.MetricQuery(
            namespace="AWS/Lambda",
            metric_name="Errors",
            dimensions={"FunctionName": "checkout-metrics"},
            stat="Sum",
            unit="Count",
        ),
        cloudwatch.MetricQuery(
            namespace="ContainerInsights",
            metric_name="pod_cpu_utilization",
            dimensions={"ClusterName": "prod", "Namespace": "shop", "PodName": "checkout"},
            stat="Maximum",
            metric="cpu_percent",
        ),
    ]
    result = cloudwatch.fetch_cloudwatch_metrics.fn(
        aws_credentials(moto_url), queries, base - timedelta(minutes=5), NOW + timedelta(minutes=1)
    )
    errors, cpu = result.series
    assert errors.entity == "function:checkout-metrics" and errors.metric == "Errors_Sum"
    assert errors.values == [0.0, 0.0, 1.0, 9.0, 14.0] and errors.unit == "Count"
    assert errors.timestamps == sorted(errors.timestamps)
    assert errors.timestamps[0] == base
    assert cpu.entity == "pod:checkout" and cpu.related == ["namespace:shop"]
    assert cpu.metric == "cpu_percent" and cpu.values == [20.0, 35.5]
    assert cpu.attributes["dimension.ClusterName"] == "prod"
    with pytest.raises(ValidationError, match="period: must be"):
        cloudwatch.MetricQuery(namespace="x", metric_name="y", period=90)


CW_TARGET = "GraniteServiceVersion20100801."


class AlarmHistoryProxy(AwsPricingServer):
    """Forwards every call to moto; records SetAlarmState calls (timestamped) and answers
    DescribeAlarmHistory from them in the documented shape (moto 5.2 lacks it)."""

    def __init__(self, upstream: str) -> None:
        super().__init__(products=[], upstream=upstream)
        self.changes: list[dict] = []
        self.states: dict[str, str] = {}

    def handle(self, seen: Seen):
        target = seen.headers.get("x-amz-target", "")
        if target == CW_TARGET + "PutMetricAlarm":
            self.states[json.loads(seen.body)["AlarmName"]] = "OK"  # moto's initial state
        if target == CW_TARGET + "SetAlarmState":
            body = json.loads(seen.body)
            old = self.states.get(body["AlarmName"], "INSUFFICIENT_DATA")
            self.states[body["AlarmName"]] = body["StateValue"]
            self.changes.append(
                {
                    "AlarmName": body["AlarmName"],
                    "AlarmType": "MetricAlarm",
                    "Timestamp": time.time(),
                    "HistoryItemType": "StateUpdate",
                    "HistorySummary": f"Alarm updated from {old} to {body['StateValue']}",
                    "HistoryData": json.dumps(
                        {
                            "version": "1.0",
                            "oldState": {"stateValue": old, "stateReason": "previous"},
                            "newState": {
                                "stateValue": body["StateValue"],
                                "stateReason": body["StateReason"],
                            },
                        }
                    ),
                }
            )
        if target == CW_TARGET + "DescribeAlarmHistory":
            body = json.loads(seen.body)
            start, end = body["StartDate"], body["EndDate"]
            items = [
                c
                for c in self.changes
                if start <= c["Timestamp"] <= end
                and body.get("AlarmName") in (None, c["AlarmName"])
                and body.get("HistoryItemType") in (None, c["HistoryItemType"])
            ]
            return json_response(
                {"AlarmHistoryItems": items}, content_type="application/x-amz-json-1.0"
            )
        return super().handle(seen)


def put_alarm(cw, name: str, function: str) -> None:
    cw.put_metric_alarm(
        AlarmName=name,
        MetricName="Errors",
        Namespace="AWS/Lambda",
        Dimensions=[{"Name": "FunctionName", "Value": function}],
        Statistic="Sum",
        Period=60,
        EvaluationPeriods=1,
        Threshold=5,
        ComparisonOperator="GreaterThanThreshold",
    )


def test_cloudwatch_alarms_current_state(moto_url):
    cw = boto(moto_url, "cloudwatch")
    put_alarm(cw, "tsrc-checkout-errors", "checkout-alarm")
    put_alarm(cw, "tsrc-search-errors", "search-alarm")
    cw.set_alarm_state(
        AlarmName="tsrc-checkout-errors",
        StateValue="ALARM",
        StateReason="Threshold Crossed: 1 datapoint [14.0] was greater than the threshold (5.0).",
    )
    events = cloudwatch.fetch_cloudwatch_alarms.fn(
        aws_credentials(moto_url), alarm_name_prefix="tsrc-"
    )
    by_name = {e.attributes["alarm_name"]: e for e in events}
    assert set(by_name) == {"tsrc-checkout-errors", "tsrc-search-errors"}
    alarm = by_name["tsrc-checkout-errors"]
    assert (
        alarm.kind == "alarm" and alarm.severity == "error" and alarm.attributes["state"] == "ALARM"
    )
    assert alarm.entity == "function:checkout-alarm"
    assert alarm.attributes["dimensions"] == "FunctionName=checkout-alarm"
    assert "Threshold Crossed" in alarm.message
    assert by_name["tsrc-search-errors"].severity == "info"
    firing = cloudwatch.fetch_cloudwatch_alarms.fn(
        aws_credentials(moto_url), alarm_name_prefix="tsrc-", state_value="ALARM"
    )
    assert [e.attributes["alarm_name"] for e in firing] == ["tsrc-checkout-errors"]
    # a window after both changes keeps only the alarm still firing
    later = cloudwatch.fetch_cloudwatch_alarms.fn(
        aws_credentials(moto_url), alarm_name_prefix="tsrc-", since=NOW + timedelta(hours=1)
    )
    assert [e.attributes["alarm_name"] for e in later] == ["tsrc-checkout-errors"]


def test_cloudwatch_alarm_history_state_changes(moto_url):
    with AlarmHistoryProxy(moto_url) as proxy:
        creds = aws_credentials(proxy.url)
        cw = boto(proxy.url, "cloudwatch")
        start = datetime.now(UTC) - timedelta(seconds=5)
        put_alarm(cw, "hist-payments-errors", "payments-hist")
        for state, reason in (
            ("ALARM", "Threshold Crossed: 9 > 5"),
            ("OK", "Threshold no longer crossed"),
            ("ALARM", "Threshold Crossed: 12 > 5"),
        ):
            cw.set_alarm_state(
                AlarmName="hist-payments-errors", StateValue=state, StateReason=reason
            )
        events = cloudwatch.fetch_cloudwatch_alarm_history.fn(
            creds, start, datetime.now(UTC) + timedelta(seconds=5)
        )
        sent = [
            json.loads(s.body)
            for s in proxy.requests
            if s.headers.get("x-amz-target") == CW_TARGET + "DescribeAlarmHistory"
        ]
    assert [(e.attributes["previous_state"], e.attributes["state"]) for e in events] == [
        ("OK", "ALARM"),
        ("ALARM", "OK"),
        ("OK", "ALARM"),
    ]
    assert [e.severity for e in events] == ["error", "info", "error"]
    assert {e.entity for e in events} == {"function:payments-hist"}  # from DescribeAlarms
    assert (
        events[0].message
        == "hist-payments-errors changed from OK to ALARM: Threshold Crossed: 9 > 5"
    )
    assert sent[0]["HistoryItemType"] == "StateUpdate" and sent[0]["ScanBy"] == "TimestampAscending"


def test_cloudwatch_alarm_history_pure_mapping():
    item = {
        "AlarmName": "deleted-alarm",
        "Timestamp": datetime(2025, 3, 1, 10, tzinfo=UTC),
        "HistoryItemType": "StateUpdate",
        "HistorySummary": "Alarm updated from OK to INSUFFICIENT_DATA",
        "HistoryData": "not json",
    }
    event = cloudwatch.alarm_history_to_event(item)
    assert event.entity == "unknown:alarm/deleted-alarm"
    assert event.attributes["state"] == "INSUFFICIENT_DATA" and event.severity == "warning"
    assert cloudwatch.alarm_history_to_event({**item, "HistoryItemType": "Action"}) is None


def test_cloudwatch_input_checks_before_any_call():
    creds = aws_credentials("http://127.0.0.1:9")  # nothing listens: a call would fail
    with pytest.raises(ValueError, match="until: must be after since"):
        cloudwatch_logs.fetch_cloudwatch_logs.fn(creds, "/g", NOW, NOW - timedelta(minutes=1))
    with pytest.raises(ValueError, match="log_groups: give 1 to 50"):
        cloudwatch_logs.run_logs_insights_query.fn(
            creds, [], "fields @message", NOW - timedelta(hours=1)
        )
    with pytest.raises(ValueError, match="state_value: must be one of"):
        cloudwatch.fetch_cloudwatch_alarms.fn(creds, state_value="FIRING")
    with pytest.raises(ValueError, match="queries: give at least one"):
        cloudwatch.fetch_cloudwatch_metrics.fn(creds, [], NOW - timedelta(hours=1))


def test_sample_files_written_by_one_source_read_back(tmp_path: Path, cluster):
    """A source's events survive the file format: what the demo exports, detection reads."""
    states = kubernetes.fetch_k8s_pods.fn(k8s_credentials(cluster.url), namespace="shop")
    path = write_events_jsonl(tmp_path / "k8s.jsonl", states.events)
    assert read_events_jsonl(path).events == states.events
