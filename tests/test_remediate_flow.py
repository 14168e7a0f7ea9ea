"""remediate under a real Prefect API: dry run by default, then pause for approval,
resume with input (as the Prefect UI or the bridge's resume tool does) and apply
through the Kubernetes API (local apps/v1 server, the real kubernetes client)."""

from __future__ import annotations

import threading
import time

import pytest
from prefect_kubernetes.credentials import KubernetesClusterConfig, KubernetesCredentials

from flows.remediate import PLAN_KEY, remediate
from tasks.incidents.signals import Suggestion
from tests.servers.kubernetes_apps import KubernetesAppsServer, deployment

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

TOKEN = "canary-remediate-7Hq2"
UNDO = Suggestion(
    rule="crashloop-after-rollout",
    type="rollback",
    target="service:checkout",
    command="kubectl rollout undo deployment/checkout -n shop",
    risk="low",
    automatable=True,
    reason="CrashLoopBackOff right after the rollout of checkout 2.0",
)


@pytest.fixture
def cluster():
    with KubernetesAppsServer(token=TOKEN) as server:
        server.add_deployment(deployment("checkout", "shop", "registry.local/checkout:1.0"))
        server.set_image("shop", "checkout", "registry.local/checkout:2.0")
        yield server


def save_block(server: KubernetesAppsServer, name: str) -> str:
    kubeconfig = {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": "local",
        "clusters": [{"name": "local", "cluster": {"server": server.url}}],
        "users": [{"name": "ops", "user": {"token": TOKEN}}],
        "contexts": [{"name": "local", "context": {"cluster": "local", "user": "ops"}}],
    }
    KubernetesCredentials(
        cluster_config=KubernetesClusterConfig(config=kubeconfig, context_name="local")
    ).save(name, overwrite=True)
    return name


def image(server: KubernetesAppsServer) -> str:
    spec = server.get_deployment("shop", "checkout")["spec"]["template"]["spec"]
    return spec["containers"][0]["image"]


def test_dry_run_by_default_changes_nothing(harness, cluster):
    result = remediate(suggestion=UNDO, kubernetes_credentials_block=save_block(cluster, "k8s-a"))
    assert result.status == "planned" and result.applied is None
    assert result.preview.dry_run and "checkout:1.0" in result.preview.diff
    assert image(cluster) == "registry.local/checkout:2.0"


def _resume_when_paused(approve: bool, box: dict) -> None:
    from prefect import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterName
    from prefect.input.run_input import keyset_from_paused_state

    with get_client(sync_client=True) as client:
        for _ in range(600):
            runs = client.read_flow_runs(
                flow_run_filter=FlowRunFilter(name=FlowRunFilterName(any_=[box["name"]]))
            )
            if runs and runs[0].state and runs[0].state.is_paused():
                keyset = keyset_from_paused_state(runs[0].state)
                client.resume_flow_run(
                    runs[0].id, run_input={"approve": approve, "comment": "checked the diff"}
                )
                box["keyset"] = keyset
                return
            time.sleep(0.2)


@pytest.mark.parametrize("approve", [True, False])
def test_applies_only_after_approval(harness, cluster, approve):
    block = save_block(cluster, f"k8s-{str(approve).lower()}")
    name = f"remediate-approve-{approve}-{time.time_ns()}"
    box = {"name": name}
    helper = threading.Thread(target=_resume_when_paused, args=(approve, box), daemon=True)
    helper.start()
    result = remediate.with_options(flow_run_name=name)(
        suggestion=UNDO, kubernetes_credentials_block=block, dry_run=False
    )
    helper.join(timeout=5)
    assert "keyset" in box, "the run never paused for approval"
    assert result.approver_comment == "checked the diff"
    if approve:
        assert result.status == "applied" and result.applied.changed
        assert image(cluster) == "registry.local/checkout:1.0"
    else:
        assert result.status == "rejected" and result.applied is None
        assert image(cluster) == "registry.local/checkout:2.0"

    from prefect import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    with get_client(sync_client=True) as client:
        plans = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[PLAN_KEY]))
        )
    assert any("kubectl rollout undo deployment/checkout -n shop" in a.data for a in plans)
    assert all(TOKEN not in (a.data or "") for a in plans)


def test_high_risk_or_manual_suggestions_are_refused(harness, cluster):
    manual = UNDO.model_copy(
        update={
            "type": "raise_memory_limit",
            "automatable": False,
            "risk": "medium",
            "command": "kubectl set resources deployment/checkout -c app --limits=memory=2Gi",
        }
    )
    with pytest.raises(Exception, match="(?i)automat|risk"):
        remediate(suggestion=manual, kubernetes_credentials_block=save_block(cluster, "k8s-b"))
    assert image(cluster) == "registry.local/checkout:2.0"
