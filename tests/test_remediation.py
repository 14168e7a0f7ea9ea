"""Remediation rules (tasks.incidents.remediation) per scenario type, and the Kubernetes actions
(tasks.incidents.k8s_actions) end to end: the real ``kubernetes`` client, built from a
prefect-kubernetes ``KubernetesCredentials`` block, against a local apps/v1 server
(tests/servers/kubernetes_apps.py) that honours ``dryRun=All``.
"""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest
from prefect_kubernetes.credentials import KubernetesClusterConfig, KubernetesCredentials

from tasks.clouds.kubernetes import KubernetesApiError, kubernetes_api_client
from tasks.common.retry import RETRIES, is_transient
from tasks.incidents.correlation import correlate
from tasks.incidents.k8s_actions.deployments import (
    execute_plan,
    rollout_restart,
    rollout_undo,
    run_action,
    scale,
)
from tasks.incidents.k8s_actions.planning import ActionError, ActionPlan, plan_action
from tasks.incidents.remediation.evidence import format_quantity, parse_quantity
from tasks.incidents.remediation.ranking import suggest
from tasks.incidents.remediation.rules import RULES
from tasks.incidents.signals import Suggestion
from tests.servers.kubernetes_apps import HASH_LABEL, REVISION, KubernetesAppsServer, deployment
from tests.signal_builders import NS, pod
from tests.signal_builders import sig as build_signal

pytestmark = pytest.mark.filterwarnings("ignore:Logger 'prefect.task_runs' attempted:UserWarning")

CANARY = "canary-k8s-token-5f1e2d"


def sig(sid, entity, minute, **kw):
    """Signals here carry only the title a test gives (rules read titles)."""
    return build_signal(sid, entity, minute, **{"title": "", **kw})


def incident_for(signals, **kwargs):
    (inc,) = correlate(signals, **kwargs)
    return inc, suggest(inc, signals)


# ---------------------------------------------------------------------- rules per scenario


def test_bad_rollout_suggests_an_automatable_rollback_first():
    signals = [
        sig(
            "dep",
            "service:checkout",
            -2,
            related=(NS,),
            kind="deploy",
            source="grafana",
            score=0.1,
            title="Rollout checkout-v2",
            severity="info",
        ),
        sig(
            "crash",
            **pod("checkout"),
            minute=0,
            kind="k8s_warning",
            score=0.95,
            title="CrashLoopBackOff: back-off restarting failed container checkout",
        ),
        sig(
            "fe",
            "service:frontend",
            1,
            related=(NS,),
            source="grafana",
            score=0.7,
            title="HTTP 502 rate on frontend",
        ),
    ]
    inc, sugs = incident_for(signals, dependencies={"frontend": ["checkout"]})
    top = sugs[0]
    assert (top.rule, top.type, top.target) == (
        "crashloop-after-rollout",
        "rollback",
        "deployment:checkout",
    )
    assert top.command == "kubectl rollout undo deployment/checkout -n shop"
    assert (top.risk, top.automatable) == ("low", True)
    assert "Rollout checkout-v2" in top.reason and "CrashLoopBackOff" in top.reason
    # the crash is explained by the rollout: no "read the logs" suggestion on top of it
    assert all(s.rule != "crashloop-no-rollout" for s in sugs)
    plan = plan_action(top)
    assert (plan.action, plan.name, plan.namespace) == ("rollout_undo", "checkout", "shop")


def test_a_recent_deploy_outside_the_incident_still_counts():
    deploy = sig(
        "dep",
        "service:checkout",
        -8,
        related=(NS,),
        kind="deploy",
        score=0.1,
        title="Rollout checkout-v2",
    )
    crash = sig(
        "crash",
        **pod("checkout"),
        minute=0,
        kind="k8s_warning",
        score=0.9,
        title="CrashLoopBackOff",
    )
    (inc,) = correlate([deploy, crash], window=timedelta(minutes=5))
    assert inc.signals == ["crash"]  # 8 min is beyond this window
    assert suggest(inc, [deploy, crash])[0].type == "rollback"  # but within 10 min
    assert suggest(inc, [crash])[0].rule == "crashloop-no-rollout"
    old = deploy.model_copy(update={"start": deploy.start - timedelta(minutes=5)})
    assert suggest(inc, [old, crash])[0].rule == "crashloop-no-rollout"


def test_rollback_targets_the_rollout_before_the_errors_not_a_recovery():
    signals = [
        sig(
            "dep-fe",
            "service:frontend",
            -4,
            related=(NS,),
            kind="deploy",
            score=0.1,
            title="Deployed frontend 5.2",
        ),
        sig(
            "dep-pa",
            "service:payments",
            -3,
            related=(NS,),
            kind="deploy",
            score=0.1,
            title="Release payments v1.32",
        ),
        sig(
            "crash",
            **pod("payments"),
            minute=0,
            kind="k8s_warning",
            score=0.9,
            title="BackOff on pod:payments-7d9f8c6b5-x2k4p",
        ),
        sig("fe", "service:frontend", 1, related=(NS,), score=0.9, title="HTTP 503 on frontend"),
        sig(
            "undo",
            "service:payments",
            8,
            related=(NS,),
            kind="deploy",
            score=0.1,
            title="Rollback payments to 1.31.0",
        ),
        sig(
            "crash2",
            **pod("payments"),
            minute=9,
            kind="k8s_warning",
            score=0.9,
            title="CrashLoopBackOff on pod:payments-7d9f8c6b5-x2k4p",
        ),
    ]
    inc, sugs = incident_for(signals, dependencies={"frontend": ["payments"]})
    assert inc.root_cause == "service:payments"
    rollbacks = [s.command for s in sugs if s.type == "rollback"]
    assert rollbacks[0] == "kubectl rollout undo deployment/payments -n shop"
    assert "Rollback payments" not in " ".join(s.reason for s in sugs)


def test_retry_backoff_in_an_app_log_is_not_a_crash_loop():
    retry = sig(
        "r",
        **pod("checkout"),
        minute=0,
        score=0.9,
        title="WARN RetryImpl: Retrying call to payments (attempt 3, backoff 200ms)",
    )
    _, sugs = incident_for([retry])
    assert all(s.rule not in ("crashloop-no-rollout", "crashloop-after-rollout") for s in sugs)


def test_crashloop_without_rollout_is_investigated_not_rolled_back():
    crash = sig(
        "crash",
        **pod("checkout"),
        minute=0,
        kind="k8s_warning",
        score=0.9,
        title="Back-off restarting failed container",
    )
    _, sugs = incident_for([crash])
    assert [s.type for s in sugs] == ["investigate"]
    assert sugs[0].command == "kubectl logs deployment/checkout -n shop --previous --tail=200"
    assert not sugs[0].automatable


def test_oom_killed_doubles_the_memory_limit():
    oom = sig(
        "oom",
        **pod("orders"),
        minute=0,
        kind="k8s_warning",
        score=0.9,
        title="OOMKilled: container api",
        evidence={"memory_limit": "768Mi", "container": "api"},
    )
    mem = sig(
        "mem",
        **pod("orders"),
        minute=-5,
        kind="metric_zscore",
        source="grafana",
        score=0.7,
        title="memory_bytes climbing",
        evidence={"metric": "memory_bytes"},
    )
    _, sugs = incident_for([mem, oom])
    top = sugs[0]
    assert top.type == "raise_memory_limit"
    assert top.command == (
        "kubectl set resources deployment/orders -n shop -c api --limits=memory=1536Mi"
    )
    assert (top.risk, top.automatable) == ("medium", False)
    with pytest.raises(ValueError, match="not automatable"):
        plan_action(top)


def test_oom_without_a_known_limit_doubles_the_observed_peak():
    mem = sig(
        "mem",
        **pod("orders"),
        minute=-3,
        kind="metric_zscore",
        score=0.8,
        title="memory_bytes on pod up",
        evidence={"metric": "memory_bytes", "peak_value": 1073741824.0, "peak_z": 40.0},
    )
    oom = sig(
        "oom",
        **pod("orders"),
        minute=0,
        kind="k8s_warning",
        score=0.9,
        title="OOMKilled on pod:orders-7d9f8c6b5-x2k4p",
    )
    _, sugs = incident_for([mem, oom])
    assert sugs[0].command.endswith("-c orders --limits=memory=2Gi")
    assert "usage peaked at 1Gi, doubled" in sugs[0].reason


def test_memory_going_down_is_not_a_leak():
    mem = sig(
        "mem",
        **pod("orders"),
        minute=0,
        kind="metric_zscore",
        score=0.9,
        title="memory_bytes down",
        evidence={"metric": "memory_bytes", "peak_z": -8.0},
    )
    _, sugs = incident_for([mem])
    assert [s.rule for s in sugs] == ["investigate-root-cause"]


def test_memory_climbing_without_a_known_limit_says_how_to_read_it():
    mem = sig(
        "mem",
        **pod("orders"),
        minute=0,
        kind="metric_zscore",
        source="grafana",
        score=0.9,
        title="memory climbing",
        evidence={"metric": "container_memory"},
    )
    _, sugs = incident_for([mem])
    top = sugs[0]
    assert top.command.endswith("-c orders --limits=memory=<2x current limit>")
    assert top.prerequisites[0].startswith("read the current limit: kubectl get deployment/orders")


def test_connection_exhaustion_raises_the_pool_and_scales_callers_not_restart():
    signals = [
        sig(
            "db",
            "database:postgres",
            0,
            related=(NS,),
            source="cloudwatch",
            score=0.9,
            title="FATAL: remaining connection slots are reserved for non-replication "
            "superuser connections",
        ),
        sig(
            "p1",
            **pod("payments"),
            minute=1,
            score=0.8,
            title="timeout acquiring connection from pool",
            evidence={"replicas": "4"},
        ),
        sig(
            "p2",
            **pod("payments", "7d9f8c6b5-abcde"),
            minute=1.5,
            score=0.6,
            title="upstream request timeout",
        ),
    ]
    inc, sugs = incident_for(signals, dependencies={"payments": ["postgres"]})
    assert inc.root_cause == "database:postgres"
    assert [s.type for s in sugs] == ["raise_pool", "scale"]
    pool, callers = sugs
    assert pool.target == "database:postgres"
    assert pool.command == (
        'psql -h postgres -U postgres -c "ALTER SYSTEM SET max_connections = 200"'
    )
    assert any("restart postgres" in p for p in pool.prerequisites)
    assert callers.command == "kubectl scale deployment/payments -n shop --replicas=2"
    assert callers.risk == "medium" and not callers.automatable


def test_mysql_too_many_connections_uses_the_mysql_setting():
    signals = [
        sig(
            "db",
            "database:orders-mysql",
            0,
            score=0.9,
            title="ERROR 1040: Too many connections",
            evidence={"max_connections": "300"},
        ),
    ]
    _, sugs = incident_for(signals)
    assert sugs[0].command == (
        'mysql -h orders-mysql -u root -e "SET GLOBAL max_connections = 600"'
    )


def test_noisy_neighbour_suggests_draining_the_node():
    signals = [
        sig(
            "cpu",
            "node:ip-10-0-1-5",
            0,
            kind="metric_zscore",
            source="grafana",
            score=0.9,
            title="cpu_percent 98",
            evidence={"metric": "node_cpu_percent", "peak_z": 12.0},
        ),
        sig(
            "lat",
            **pod("search", node="ip-10-0-1-5"),
            minute=1,
            score=0.7,
            title="p99 latency 2300ms",
        ),
    ]
    _, sugs = incident_for(signals)
    top = sugs[0]
    assert (top.type, top.target, top.risk, top.automatable) == (
        "drain",
        "node:ip-10-0-1-5",
        "medium",
        False,
    )
    assert top.command.startswith("kubectl cordon ip-10-0-1-5 && kubectl drain ip-10-0-1-5")


def test_upstream_timeouts_restart_the_upstream():
    signals = [
        sig(
            "fe",
            "service:frontend",
            0,
            related=(NS,),
            source="grafana",
            score=0.8,
            title="504 Gateway Timeout from frontend",
        ),
        sig(
            "co",
            **pod("checkout"),
            minute=1,
            score=0.7,
            title="context deadline exceeded calling payments",
        ),
        sig("pa", **pod("payments"), minute=2, score=0.5, title="request took 30s"),
    ]
    inc, sugs = incident_for(
        signals, dependencies={"frontend": ["checkout"], "checkout": ["payments"]}
    )
    assert inc.root_cause == "service:payments"
    top = sugs[0]
    assert (top.type, top.target, top.command, top.risk, top.automatable) == (
        "restart",
        "deployment:payments",
        "kubectl rollout restart deployment/payments -n shop",
        "low",
        True,
    )
    assert sugs[1].type == "investigate"
    assert plan_action(top).action == "rollout_restart"


def test_disk_full_is_high_risk_and_manual():
    signals = [
        sig(
            "disk",
            **pod("ingest", node="node-c"),
            minute=0,
            score=0.9,
            title="write /data/segment: no space left on device",
        ),
    ]
    _, sugs = incident_for(signals)
    top = sugs[0]
    assert (top.type, top.target, top.risk, top.automatable) == (
        "free_disk",
        "node:node-c",
        "high",
        False,
    )
    assert top.command.startswith("kubectl debug node/node-c")
    with pytest.raises(ValueError, match="not automatable"):
        plan_action(top)


def test_certificate_expiry_renews_the_certificate():
    signals = [
        sig(
            "tls",
            **pod("checkout"),
            minute=0,
            score=0.9,
            title="x509: certificate has expired or is not yet valid",
        ),
        sig(
            "cw",
            "service:payments",
            1,
            related=(NS,),
            source="cloudwatch",
            score=0.8,
            title="TLS handshake errors > 10",
            evidence={"certificate": "payments-cert"},
        ),
    ]
    _, sugs = incident_for(signals, dependencies={"checkout": ["payments"]})
    top = sugs[0]
    assert top.type == "renew_certificate"
    assert top.command == "kubectl cert-manager renew payments-cert -n shop"
    assert top.risk == "medium" and not top.automatable
    assert all(s.type != "restart" for s in sugs)  # the timeouts are the certificate's fault


def test_no_rule_matched_yields_one_investigation_of_the_root_cause():
    signals = [sig("odd", "service:search", 0, related=(NS,), score=0.9, title="weird thing")]
    _, sugs = incident_for(signals)
    assert [(s.rule, s.type, s.command) for s in sugs] == [
        ("investigate-root-cause", "investigate", "kubectl describe deployment/search -n shop")
    ]


def test_every_rule_action_exists_and_quantities_round_trip():
    assert {r.id for r in RULES} >= {
        "crashloop-after-rollout",
        "oom-killed",
        "connection-pool-exhaustion",
        "node-cpu-noisy-neighbour",
        "upstream-timeouts",
        "disk-full",
        "certificate-expiry",
    }
    assert parse_quantity("512Mi") == 512 * 2**20
    assert parse_quantity("1G") == 10**9
    assert parse_quantity("lots") is None
    assert format_quantity(2 * parse_quantity("512Mi")) == "1Gi"
    assert format_quantity(parse_quantity("1536Mi")) == "1536Mi"


# ---------------------------------------------------------------------- plan_action


def suggestion(**overrides) -> Suggestion:
    base = {
        "rule": "upstream-timeouts",
        "type": "restart",
        "target": "deployment:payments",
        "command": "kubectl rollout restart deployment/payments -n shop",
        "risk": "low",
        "automatable": True,
        "reason": "test",
    }
    return Suggestion(**{**base, **overrides})


def test_plan_action_parses_the_three_commands():
    assert plan_action(suggestion()).model_dump(exclude={"command", "rule"}) == {
        "action": "rollout_restart",
        "name": "payments",
        "namespace": "shop",
        "replicas": None,
        "to_revision": None,
        "to_replicaset": None,
        "restarted_at": None,
    }
    undo = suggestion(
        type="rollback",
        target="deployment:checkout",
        command="kubectl rollout undo deployment/checkout -n shop --to-revision=3",
    )
    assert plan_action(undo).to_revision == 3
    sc = suggestion(type="scale", command="kubectl scale deployment/payments --replicas=3")
    plan = plan_action(sc)
    assert (plan.replicas, plan.namespace) == (3, "default")


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"risk": "high"}, "risk is 'high'"),
        ({"risk": "medium"}, "only low-risk"),
        ({"automatable": False}, "not automatable"),
        ({"type": "free_disk"}, "type 'free_disk' is not one of"),
        ({"type": "rollback"}, "type 'rollback' but command does rollout_restart"),
        ({"target": "deployment:checkout"}, "is not the command's deployment/payments"),
        (
            {"command": "kubectl rollout restart deployment/payments -n shop; rm -rf /"},
            "is not 'kubectl rollout",
        ),
        (
            {"command": "kubectl rollout restart deployment/payments -n 'shop;rm'"},
            "not a valid Kubernetes namespace",
        ),
        ({"command": "kubectl delete deployment/payments -n shop"}, "is not 'kubectl rollout"),
        ({"command": "kubectl rollout restart deployment/Pay_ments"}, "not a valid"),
        ({"type": "scale", "command": "kubectl scale deployment/payments --replicas=0"}, "to 0"),
        ({"type": "scale", "command": "kubectl scale deployment/payments"}, "--replicas"),
    ],
)
def test_plan_action_refuses_with_a_clear_error(overrides, message):
    with pytest.raises(ValueError, match=message):
        plan_action(suggestion(**overrides))


# ---------------------------------------------------------------------- actions, end to end


@pytest.fixture
def k8s():
    with KubernetesAppsServer(token=CANARY) as server:
        server.add_deployment(deployment("checkout", "shop", "registry.local/checkout:1.0"))
        server.set_image("shop", "checkout", "registry.local/checkout:2.0")
        yield server


def credentials(server: KubernetesAppsServer, token: str = CANARY) -> KubernetesCredentials:
    kubeconfig = {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": "local",
        "clusters": [{"name": "local", "cluster": {"server": server.url}}],
        "users": [{"name": "ops", "user": {"token": token}}],
        "contexts": [{"name": "local", "context": {"cluster": "local", "user": "ops"}}],
    }
    return KubernetesCredentials(
        cluster_config=KubernetesClusterConfig(config=kubeconfig, context_name="local")
    )


@pytest.fixture
def api(k8s):
    from kubernetes.client import AppsV1Api

    with kubernetes_api_client(credentials(k8s)) as client:
        yield AppsV1Api(client)


def image(server, name="checkout"):
    return server.get_deployment("shop", name)["spec"]["template"]["spec"]["containers"][0]["image"]


def test_dry_run_restart_changes_nothing_and_shows_the_plan(k8s, api):
    before = k8s.get_deployment("shop", "checkout")
    result = rollout_restart(api, "checkout", "shop")
    assert result.dry_run and result.changed
    assert k8s.get_deployment("shop", "checkout") == before
    assert "kubectl.kubernetes.io/restartedAt" in result.diff
    patch = [r for r in k8s.requests if r.method == "PATCH"]
    assert len(patch) == 1 and "dryRun=All" in patch[0].path
    assert patch[0].headers["content-type"] == "application/strategic-merge-patch+json"


def test_restart_sets_the_annotation_and_repeating_the_plan_is_a_no_op(k8s, api):
    preview = rollout_restart(api, "checkout", "shop")
    done = execute_plan(api, preview.plan, dry_run=False)
    annotations = k8s.get_deployment("shop", "checkout")["spec"]["template"]["metadata"][
        "annotations"
    ]
    assert annotations["kubectl.kubernetes.io/restartedAt"] == preview.plan.restarted_at
    assert done.changed and done.before["restartedAt"] is None
    again = execute_plan(api, done.plan, dry_run=False)
    assert not again.changed and "already restarted" in again.summary


def test_undo_dry_run_then_real_run_restores_the_previous_template(k8s, api):
    before = k8s.get_deployment("shop", "checkout")
    preview = rollout_undo(api, "checkout", "shop")
    assert k8s.get_deployment("shop", "checkout") == before
    assert preview.before == {
        "revision": 2,
        "images": "registry.local/checkout:2.0",
        "replicaset": None,
    }
    assert preview.after["revision"] == 1
    assert preview.after["images"] == "registry.local/checkout:1.0"
    assert '-        "image": "registry.local/checkout:2.0"' in preview.diff
    done = execute_plan(api, preview.plan, dry_run=False)
    assert done.changed and not done.dry_run
    live = k8s.get_deployment("shop", "checkout")
    assert image(k8s) == "registry.local/checkout:1.0"
    assert HASH_LABEL not in live["spec"]["template"]["metadata"]["labels"]
    assert live["metadata"]["annotations"][REVISION] == "3"  # revision 1 became the newest
    undo_patch = [r for r in k8s.requests if r.method == "PATCH"][-1]
    assert undo_patch.headers["content-type"] == "application/json-patch+json"
    # the pinned plan is idempotent; a fresh undo flips back, like kubectl
    assert not execute_plan(api, done.plan, dry_run=False).changed
    assert image(k8s) == "registry.local/checkout:1.0"
    rollout_undo(api, "checkout", "shop", dry_run=False)
    assert image(k8s) == "registry.local/checkout:2.0"


def test_undo_to_a_revision_and_missing_history(k8s, api):
    k8s.set_image("shop", "checkout", "registry.local/checkout:3.0")
    rollout_undo(api, "checkout", "shop", to_revision=1, dry_run=False)
    assert image(k8s) == "registry.local/checkout:1.0"
    with pytest.raises(ActionError, match="unable to find specified revision 9"):
        rollout_undo(api, "checkout", "shop", to_revision=9)
    k8s.add_deployment(deployment("fresh", "shop"))
    with pytest.raises(ActionError, match="no rollout history"):
        rollout_undo(api, "fresh", "shop")


def test_scale_dry_run_then_real(k8s, api):
    preview = scale(api, "checkout", "shop", 5)
    assert preview.before == {"replicas": 2} and preview.after == {"replicas": 5}
    assert k8s.get_deployment("shop", "checkout")["spec"]["replicas"] == 2
    done = scale(api, "checkout", "shop", 5, dry_run=False)
    assert done.changed and k8s.get_deployment("shop", "checkout")["spec"]["replicas"] == 5
    patch = [r for r in k8s.requests if r.method == "PATCH"][-1]
    assert patch.path.startswith("/apis/apps/v1/namespaces/shop/deployments/checkout/scale")
    assert patch.headers["content-type"] == "application/merge-patch+json"


def test_bad_input_is_refused_before_any_request(k8s, api):
    k8s.reset()
    with pytest.raises(ValueError, match="replicas"):
        scale(api, "checkout", "shop", -1)
    with pytest.raises(ValueError, match="namespace"):
        rollout_restart(api, "checkout", "Shop!")
    with pytest.raises(ValueError, match="name"):
        rollout_restart(api, "checkout\n", "shop")
    with pytest.raises(ValueError, match="to_revision"):
        rollout_undo(api, "checkout", "shop", to_revision=0)
    assert k8s.requests == []


def test_missing_deployment_is_a_clear_error(api):
    with pytest.raises(KubernetesApiError, match='404 Not Found: deployments.apps "nope"') as err:
        rollout_restart(api, "nope", "shop")
    assert err.value.status == 404 and not is_transient(err.value)


def test_a_real_run_needs_the_pinned_plan_of_a_dry_run(k8s):
    k8s.reset()
    for action in ("rollout_undo", "rollout_restart"):
        plan = ActionPlan(action=action, name="checkout", namespace="shop", command="x")
        with pytest.raises(ValueError, match="execute the plan a dry run returned"):
            run_action.fn(credentials(k8s), plan, dry_run=False)
    assert k8s.requests == []


def test_the_server_validates_a_dry_run_and_persists_nothing(k8s, api):
    from kubernetes.client.exceptions import ApiException

    before = k8s.get_deployment("shop", "checkout")
    bad = [{"op": "replace", "path": "/spec/template/spec/containers", "value": []}]
    with pytest.raises(ApiException) as err:
        api.patch_namespaced_deployment("checkout", "shop", bad, dry_run="All")
    assert err.value.status == 422
    assert k8s.get_deployment("shop", "checkout") == before


def test_run_action_task_end_to_end_without_leaking_the_token(k8s, caplog):
    caplog.set_level(logging.DEBUG)
    plan = plan_action(
        suggestion(
            type="rollback",
            target="deployment:checkout",
            command="kubectl rollout undo deployment/checkout -n shop",
        )
    )
    creds = credentials(k8s)
    preview = run_action.fn(creds, plan, dry_run=True)
    assert image(k8s) == "registry.local/checkout:2.0"
    done = run_action.fn(creds, preview.plan, dry_run=False)
    assert image(k8s) == "registry.local/checkout:1.0"
    assert CANARY not in preview.model_dump_json() + done.model_dump_json()
    with pytest.raises(KubernetesApiError) as err:
        run_action.fn(credentials(k8s, token=f"{CANARY}-wrong"), plan)
    assert err.value.status == 401 and not is_transient(err.value)
    assert CANARY not in str(err.value) and CANARY not in caplog.text
    assert all(r.headers.get("authorization") for r in k8s.requests)


def test_run_action_retries_a_503_but_not_a_401(k8s, harness, monkeypatch):
    monkeypatch.setattr(run_action, "retry_delay_seconds", 0)
    plan = ActionPlan(
        action="scale",
        name="checkout",
        namespace="shop",
        replicas=3,
        command="kubectl scale deployment/checkout -n shop --replicas=3",
    )
    k8s.reset()
    k8s.fail(503, {"kind": "Status", "code": 503, "message": "etcd is busy"}, times=2)
    result = run_action(credentials(k8s), plan, dry_run=False)
    assert result.after == {"replicas": 3}
    assert k8s.faults_served == 2
    k8s.reset()
    k8s.fail(401, {"kind": "Status", "code": 401, "message": "Unauthorized"}, times=None)
    with pytest.raises(KubernetesApiError, match="401"):
        run_action(credentials(k8s), plan, dry_run=False)
    assert k8s.faults_served == 1 < RETRIES + 1
