"""detect-incidents and evaluate-incidents under a real Prefect API: the generated default,
exported files, live CloudWatch (moto) + Sentry (local server) telemetry, a source that
stays down, and secrets."""

from __future__ import annotations

import contextlib
import json
import logging
import random
import re
from datetime import UTC, datetime, timedelta

import boto3
import pytest

from flows.detect_incidents import (
    NO_SOURCE,
    REPORT_KEY,
    SUGGESTIONS_KEY,
    IncidentReport,
    detect_incidents,
)
from flows.evaluate_incidents import evaluate_incidents
from samples.scenarios import generate, write_scenario

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

CANARY = "sntrys_canary-Qm72-never-print"


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("OPSFLOW_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def artifacts(keys):
    from prefect import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    with get_client(sync_client=True) as client:
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=keys))
        )
    return {a.key: a.data for a in found}


def test_default_scenario_finds_the_bad_rollout(harness, home):
    report = detect_incidents(samples=True)
    assert isinstance(report, IncidentReport) and not report.partial
    assert report.events > 10_000 and report.templates < report.log_lines / 50
    (incident,) = report.incidents
    assert incident.root_cause == "service:checkout"
    assert {t.source for t in incident.timeline} >= {"kubernetes", "sentry", "grafana"}
    assert any("entity" in t.joined_by for t in incident.timeline)
    rollback = incident.suggestions[0]
    assert rollback.type == "rollback" and rollback.automatable and rollback.risk == "low"
    assert rollback.command == "kubectl rollout undo deployment/checkout -n shop"
    shown = artifacts([REPORT_KEY, SUGGESTIONS_KEY])
    assert "data:image/svg+xml;base64," in shown[REPORT_KEY]
    assert "kubectl rollout undo deployment/checkout -n shop" in shown[SUGGESTIONS_KEY]
    demo = home / "demo" / "reports"
    assert (demo / "detect-incidents-timeline.svg").read_text().startswith("<svg")
    assert report.report_files == [
        str(demo / "detect-incidents.md"),
        str(demo / "detect-incidents-timeline.svg"),
    ]
    assert not (home / "reports").exists()  # a sample run never writes the real reports


def test_nothing_configured_fails_fast_and_writes_nothing(harness, home):
    state = detect_incidents(return_state=True)
    assert state.is_failed() and NO_SOURCE in state.message
    assert "kubernetes" in NO_SOURCE and "[flows.detect-incidents.parameters]" in NO_SOURCE
    assert not (home / "reports").exists() and not (home / "demo").exists()


def test_exported_files_memory_leak(harness, home, tmp_path):
    scenario = generate(["memory_leak_oom"], seed=3, lines=8000)
    paths = write_scenario(scenario, tmp_path / "export")
    truth = scenario.truth.incidents[0]
    report = detect_incidents(
        events_file=str(paths.events),
        metrics_file=str(paths.metrics),
        dependencies=scenario.dependencies,
    )
    assert [s.source.split()[0] for s in report.sources] == ["events", "metrics"]
    assert report.incidents, "the OOM incident was not found"
    top = report.incidents[0]
    assert truth.root_cause_entity.split(":")[1] in top.root_cause
    assert any(s.type == "raise_memory_limit" for s in top.suggestions)


def _cloudwatch_and_sentry(moto_url):
    """Two hours of checkout logs in CloudWatch: steady INFO and background warnings, then
    database connection errors in the last 20 minutes; the matching Sentry issue."""
    now = datetime.now(UTC).replace(microsecond=0)
    rng = random.Random(5)
    lines = []
    for i in range(720):  # one line every 10 s for two hours
        t = now - timedelta(seconds=7200 - 10 * i)
        lines.append((t, f"INFO GET /api/cart/{rng.randint(1, 999)} 200 in {rng.randint(5, 60)}ms"))
        if i % 30 == 0:
            lines.append((t, f"WARN slow cache refresh took {rng.randint(300, 900)}ms"))
        if t > now - timedelta(minutes=20):
            lines.append(
                (
                    t + timedelta(seconds=3),
                    "ERROR sqlalchemy.exc.OperationalError: connection to server at "
                    f"10.0.3.{rng.randint(2, 9)} port 5432 failed: too many connections",
                )
            )
    kw = dict(
        endpoint_url=moto_url,
        region_name="us-east-1",
        aws_access_key_id="AKIATESTING",
        aws_secret_access_key="testing",
    )
    logs = boto3.client("logs", **kw)
    group = "/ecs/checkout"
    with contextlib.suppress(logs.exceptions.ResourceNotFoundException):
        logs.delete_log_group(logGroupName=group)  # the moto server outlives each test
    logs.create_log_group(logGroupName=group)
    logs.create_log_stream(logGroupName=group, logStreamName="web/1")
    lines.sort()
    for i in range(0, len(lines), 500):
        logs.put_log_events(
            logGroupName=group,
            logStreamName="web/1",
            logEvents=[
                {"timestamp": int(t.timestamp() * 1000), "message": m}
                for t, m in lines[i : i + 500]
            ],
        )
    return now, group


def test_live_cloudwatch_and_sentry_with_a_source_down(
    harness, home, moto_url, caplog, monkeypatch
):
    from prefect_aws import AwsCredentials

    from blocks.sentry import SentryCredentials
    from tests.servers import sentry as st

    now, group = _cloudwatch_and_sentry(moto_url)
    AwsCredentials(
        aws_access_key_id="AKIATESTING",
        aws_secret_access_key="testing",
        region_name="us-east-1",
        aws_client_parameters={"endpoint_url": moto_url},
    ).save("moto-logs", overwrite=True)
    with st.SentryServer(CANARY) as sentry_api:
        sentry_api.issues = [
            st.issue(
                301,
                "OperationalError: too many connections for role checkout",
                "checkout",
                first_seen=now - timedelta(minutes=18),
                last_seen=now - timedelta(minutes=1),
                substatus="new",
                count=400,
            )
        ]
        SentryCredentials(token=CANARY, organization="acme", base_url=sentry_api.url).save(
            "sentry-local", overwrite=True
        )
        SentryCredentials(token=CANARY, organization="acme", base_url="http://127.0.0.1:9").save(
            "sentry-down", overwrite=True
        )
        caplog.set_level(logging.DEBUG)
        from tasks.telemetry.sentry import fetch_sentry_issues

        monkeypatch.setattr(fetch_sentry_issues, "retry_delay_seconds", 0)  # undone after
        report = detect_incidents(
            cloudwatch=[{"credentials_block": "moto-logs", "log_groups": [group], "alarms": False}],
            sentry=[
                {"credentials_block": "sentry-local", "projects": ["checkout"]},
                {"credentials_block": "sentry-down"},
            ],
            since_minutes=130,
        )
    assert report.partial and len(report.missing) == 1 and "sentry[1]" in report.missing[0]
    collected = {s.source: s.events for s in report.sources if s.status == "collected"}
    assert collected[f"cloudwatch[0] {group}"] > 700 and collected["sentry[0] checkout"] == 1
    assert report.incidents, "the connection errors were not found"
    incident = report.incidents[0]
    assert {t.source for t in incident.timeline} == {"cloudwatch", "sentry"}
    assert "service:checkout" in incident.entities
    assert any(s.type in ("raise_pool", "scale") for s in incident.suggestions)
    for text in (
        report.model_dump_json(),
        json.dumps(artifacts([REPORT_KEY, SUGGESTIONS_KEY])),
        caplog.text,
    ):
        assert CANARY not in text


def test_bad_parameters_are_named(harness, home):
    from flows.params import InvalidParameters, validate_parameters

    with pytest.raises(InvalidParameters, match="scenario"):
        validate_parameters(detect_incidents, {"scenario": ["alien_invasion"]})
    with pytest.raises(InvalidParameters, match="window_seconds"):
        validate_parameters(detect_incidents, {"window_seconds": 0})
    with pytest.raises(ValueError, match="sentry\\[0\\].credentials_block"):
        detect_incidents(sentry=[{"credentials_block": "no-such-block"}])
    with pytest.raises(ValueError, match="metrics_file: no such file: /nonexistent/m.csv"):
        detect_incidents(metrics_file="/nonexistent/m.csv")


def test_evaluation_reports_precision_recall_and_root_cause(harness, home):
    result = evaluate_incidents(
        scenarios=["bad_rollout", "certificate_expiry"],
        lines=6000,
        combined_run=True,
        overlapping_run=False,
    )
    assert [r.name for r in result.runs] == [
        "bad_rollout",
        "certificate_expiry",
        "bad_rollout+certificate_expiry",
    ]
    # the generated scenarios are seeded: one incident each, two in the combined run, and
    # the detector finds each one once, whole, with its root cause
    overall = result.overall
    assert [(r.true_incidents, r.predicted_incidents) for r in result.runs] == [
        (1, 1),
        (1, 1),
        (2, 2),
    ]
    assert (overall.true_incidents, overall.detected_true, overall.matched_predicted) == (4, 4, 4)
    assert overall.missed == [] and overall.split_true == 0 and overall.merged_predicted == 0
    assert (overall.precision, overall.recall) == (1.0, 1.0)
    assert (overall.root_cause_correct, overall.root_cause_total) == (4, 4)
    assert "precision" in result.table.lower()


def test_an_unreachable_cluster_is_a_partial_result(harness, home, monkeypatch):
    """A Kubernetes API that stays down is named in `missing`; the run still completes."""
    from prefect_kubernetes.credentials import KubernetesClusterConfig, KubernetesCredentials

    from tasks.telemetry.kubernetes import fetch_k8s_pods

    monkeypatch.setattr(fetch_k8s_pods, "retry_delay_seconds", 0)  # undone after the test
    kubeconfig = {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": "down",
        "clusters": [{"name": "down", "cluster": {"server": "http://127.0.0.1:9"}}],
        "users": [{"name": "ops", "user": {"token": CANARY}}],
        "contexts": [{"name": "down", "context": {"cluster": "down", "user": "ops"}}],
    }
    KubernetesCredentials(
        cluster_config=KubernetesClusterConfig(config=kubeconfig, context_name="down")
    ).save("k8s-down", overwrite=True)
    report = detect_incidents(
        kubernetes=[{"credentials_block": "k8s-down", "namespace": "shop"}],
        scenario=["bad_rollout"],
        scenario_lines=4000,
    )
    assert report.partial
    assert any(m.startswith("kubernetes[0] pods") for m in report.missing)
    assert not any(s.source == "kubernetes[0] logs" for s in report.sources)
    assert CANARY not in report.model_dump_json()


# ------------------------------------------------ secrets inside a kubeconfig (issue 9, item 7)

K8S_CANARY = "CANARY-kubeconfig-token-Vq83Lm0Zr"  # accepted by the API, which then fails
K8S_REFUSED = "CANARY-kubeconfig-refused-Pw41Xe9Jt"  # refused with 401


def _kubeconfig_block(name: str, url: str, token: str) -> None:
    from prefect_kubernetes.credentials import KubernetesClusterConfig, KubernetesCredentials

    from tests.servers.kubernetes import kubeconfig

    config = KubernetesClusterConfig(config=kubeconfig(url, token), context_name="local")
    KubernetesCredentials(cluster_config=config).save(name, overwrite=True)


def _run_texts(flow_run_id) -> dict[str, str]:
    """What the Prefect API holds about a flow run: its logs and its task runs' states."""
    from prefect import get_client
    from prefect.client.schemas.filters import (
        FlowRunFilter,
        FlowRunFilterId,
        LogFilter,
        LogFilterFlowRunId,
    )
    from prefect.logging.handlers import APILogHandler

    APILogHandler().flush()
    with get_client(sync_client=True) as client:
        logs = client.read_logs(
            log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id]))
        )
        task_runs = client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id]))
        )
        flow_run = client.read_flow_run(flow_run_id)
    return {
        "api logs": "\n".join(log.message for log in logs),
        "task run states": "\n".join(
            f"{t.name} {t.state.name} {t.state.message}" for t in task_runs if t.state
        ),
        "flow run": flow_run.model_dump_json(),
    }


def test_kubeconfig_token_never_leaks_through_a_failing_cluster(
    harness, home, caplog, capfd, monkeypatch
):
    """A kubeconfig token the API quotes back (401 and 500 bodies echo the Authorization
    header) appears nowhere: result, missing, logs, artifacts, task states."""
    from tasks.telemetry import kubernetes as kt
    from tests.servers import kubernetes as k8s

    for name in ("fetch_k8s_pods", "fetch_k8s_events", "fetch_k8s_nodes", "fetch_k8s_metrics"):
        monkeypatch.setattr(getattr(kt, name), "retry_delay_seconds", 0)
    monkeypatch.setattr(kt.fetch_k8s_logs, "retry_delay_seconds", 0)
    with k8s.KubernetesServer(K8S_CANARY) as cluster:
        cluster.echo_authorization = True
        cluster.pods = [k8s.pod("checkout-1", "shop", labels={"app": "checkout"})]
        cluster.failing_paths = {
            "/api/v1/namespaces/shop/events": 500,
            "/api/v1/nodes": 500,
            "/api/v1/namespaces/shop/pods/": 500,  # container logs
        }
        _kubeconfig_block("k8s-echo", cluster.url, K8S_CANARY)
        _kubeconfig_block("k8s-refused", cluster.url, K8S_REFUSED)
        caplog.set_level(logging.DEBUG)
        state = detect_incidents(
            kubernetes=[
                {"credentials_block": "k8s-echo", "namespace": "shop"},
                {"credentials_block": "k8s-refused", "namespace": "shop"},
            ],
            scenario=["bad_rollout"],
            scenario_lines=2000,
            return_state=True,
        )
        sent = {r.headers.get("authorization") for r in cluster.requests}
    report = state.result()
    # the canaries really were sent, and really were quoted back
    assert sent == {f"Bearer {K8S_CANARY}", f"Bearer {K8S_REFUSED}"}
    missing = {m.split(":")[0]: m for m in report.missing}
    assert {"kubernetes[0] events", "kubernetes[0] nodes", "kubernetes[0] logs"} <= set(missing)
    assert "kubernetes[1] pods" in missing and "401" in missing["kubernetes[1] pods"]
    assert "request had Authorization: ***" in missing["kubernetes[0] events"]
    assert "request had Authorization: ***" in missing["kubernetes[1] pods"]
    out, err = capfd.readouterr()
    haystacks = {
        "result": report.model_dump_json(),
        "artifacts": json.dumps(artifacts([REPORT_KEY, SUGGESTIONS_KEY])),
        "caplog": caplog.text + "\n".join(str(r.args) + str(r.exc_info) for r in caplog.records),
        "stdout/stderr": out + err,
        **_run_texts(state.state_details.flow_run_id),
    }
    assert "kubernetes[1] pods" in haystacks["api logs"]  # the failures were logged
    for where, text in haystacks.items():
        assert K8S_CANARY not in text, where
        assert K8S_REFUSED not in text, where


# ------------------------------ Logs Insights and Grafana dashboard search (issue 9, item 8)


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"cloudwatch": [{"insights_queries": [{"query": " ", "log_groups": ["/a"]}]}]}, "query"),
        (
            {
                "cloudwatch": [
                    {"insights_queries": [{"query": "fields @message", "log_groups": []}]}
                ]
            },
            "cloudwatch.0.insights_queries.0.log_groups:",
        ),
        (
            {"cloudwatch": [{"insights_queries": [{"query": "x", "log_groups": ["no spaces"]}]}]},
            "cloudwatch.0.insights_queries.0.log_groups.0:",
        ),
        (
            {"cloudwatch": [{"insights_queries": [{"query": "x", "log_groups": ["/a"] * 51}]}]},
            "cloudwatch.0.insights_queries.0.log_groups:",
        ),
        (
            {
                "cloudwatch": [
                    {"insights_queries": [{"query": "x", "log_groups": ["/a"], "limit": 0}]}
                ]
            },
            "cloudwatch.0.insights_queries.0.limit:",
        ),
        (
            {"grafana": [{"credentials_block": "g", "dashboard_search": {"query": " "}}]},
            "grafana.0.dashboard_search: Value error, give query or tags",
        ),
        (
            {
                "grafana": [
                    {"credentials_block": "g", "dashboard_search": {"tags": ["x"], "limit": 0}}
                ]
            },
            "grafana.0.dashboard_search.limit:",
        ),
    ],
)
def test_insights_and_dashboard_search_parameters_are_validated(params, field):
    from flows.params import InvalidParameters, validate_parameters

    with pytest.raises(InvalidParameters, match=re.escape(field)):
        validate_parameters(detect_incidents, params)


def test_logs_insights_and_grafana_dashboards_feed_the_pipeline(harness, home, moto_url):
    """A Logs Insights query (moto) and the annotations of the dashboards a search finds
    (local Grafana) reach the pipeline; other dashboards' and org annotations do not."""
    from prefect_aws import AwsCredentials

    from blocks.grafana import GrafanaCredentials
    from tests.servers import grafana as gf

    now, group = _cloudwatch_and_sentry(moto_url)
    AwsCredentials(
        aws_access_key_id="AKIATESTING",
        aws_secret_access_key="testing",
        region_name="us-east-1",
        aws_client_parameters={"endpoint_url": moto_url},
    ).save("moto-insights", overwrite=True)
    token = "CANARY-grafana-dash-Lk20Wq"
    with gf.GrafanaServer(token) as grafana_api:
        grafana_api.dashboards = [
            gf.dashboard("svc-overview", "Checkout Overview", ["service:checkout", "prod"]),
            gf.dashboard("k8s-nodes", "Kubernetes Nodes", ["k8s"]),
        ]
        grafana_api.annotations = [
            gf.annotation(1, now - timedelta(minutes=21), "checkout v2.4.0", ["deploy"]),
            gf.annotation(
                2, now - timedelta(minutes=30), "node drain", ["deploy"], dashboard_uid="k8s-nodes"
            ),
            gf.annotation(3, now - timedelta(minutes=25), "org note", ["note"], dashboard_uid=None),
        ]
        GrafanaCredentials(url=grafana_api.url, token=token).save("grafana-dash", overwrite=True)
        report = detect_incidents(
            cloudwatch=[
                {
                    "credentials_block": "moto-insights",
                    "alarms": False,
                    "insights_queries": [
                        {
                            "query": "fields @timestamp, @message, @logStream, @log "
                            "| sort @timestamp desc | limit 5000",
                            "log_groups": [group],
                        }
                    ],
                }
            ],
            grafana=[{"credentials_block": "grafana-dash", "dashboard_search": {"tags": ["prod"]}}],
            since_minutes=130,
        )
        searches = grafana_api.queries("/api/search")
        annotation_reads = grafana_api.queries("/api/annotations")
    assert not report.partial, report.missing
    by_source = {s.source: s for s in report.sources}
    assert set(by_source) == {
        "cloudwatch[0] insights[0]",
        "grafana[0] dashboard search",
        "grafana[0] dashboard Checkout Overview (svc-overview)",
    }
    assert by_source["cloudwatch[0] insights[0]"].events > 700  # every line of the window
    assert by_source["grafana[0] dashboard Checkout Overview (svc-overview)"].events == 1
    assert searches == [{"type": ["dash-db"], "limit": ["20"], "tag": ["prod"]}]  # blank query
    assert [q["dashboardUID"] for q in annotation_reads] == [["svc-overview"]]
    assert report.incidents, "the connection errors were not found"
    incident = report.incidents[0]
    assert "service:checkout" in incident.entities
    assert {t.source for t in incident.timeline} == {"cloudwatch", "grafana"}
    deploy = next(t for t in incident.timeline if t.source == "grafana")
    assert deploy.entity == "service:checkout"  # named by the dashboard's service:checkout tag
