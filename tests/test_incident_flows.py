"""detect-incidents and evaluate-incidents under a real Prefect API: the generated default,
exported files, live CloudWatch (moto) + Sentry (local server) telemetry, a source that
stays down, and secrets."""

from __future__ import annotations

import json
import logging
import random
from datetime import UTC, datetime, timedelta

import boto3
import pytest

from flows.detect_incidents import REPORT_KEY, SUGGESTIONS_KEY, IncidentReport, detect_incidents
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
    report = detect_incidents()
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
    assert (home / "reports" / "detect-incidents-timeline.svg").read_text().startswith("<svg")


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
