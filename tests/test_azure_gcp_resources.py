"""Azure and GCP inventory collectors: mapping to ``Resource`` on the documented shapes,
and the tasks end to end with the real SDKs against local servers (HTTPS Azure
Resource Manager + Entra ID in tests/servers/azure_arm.py, Compute Engine REST in
tests/servers/gcp_compute.py, Google OAuth from tests/servers/gcp_catalog.py).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import pytest
from azure.core.exceptions import ClientAuthenticationError, HttpResponseError
from google.api_core import exceptions as gx

from blocks.azure import AzureCredentials
from tasks.common.retry import RETRIES, retry_on_transient
from tasks.inventory import azure as ar
from tasks.inventory import gcp as gr
from tests.conftest import task_run_count
from tests.servers.azure_arm import AzureArmServer, arm_error, disk, instance_view, vm
from tests.servers.bigquery import google_error
from tests.servers.gcp_catalog import GcpCatalogServer, service_account_info
from tests.servers.gcp_compute import GcpComputeServer
from tests.servers.gcp_compute import disk as gdisk
from tests.servers.gcp_compute import instance as ginstance

pytestmark = pytest.mark.filterwarnings("ignore:Logger 'prefect.task_runs' attempted:UserWarning")

SUB = "6f1c2b3a-0d4e-4f5a-9b8c-7d6e5f4a3b2c"
TENANT, CLIENT = "72f988bf-86f1-41af-91ab-2d7cd011db47", "0a1b2c3d-4e5f-6789-abcd-ef0123456789"
SECRET = "local-test-secret-value"
PROJECT = "shop-prod-42"

WEB = vm(SUB, "web-rg", "web-1", "Standard_D2s_v5", zones=["2"], tags={"team": "web"})
IDLE = vm(SUB, "web-rg", "idle-1", "Standard_E4s_v5", location="westeurope")
SHUT = vm(SUB, "batch-rg", "shut-1", "Standard_F2s_v2", created=None)
GONE = vm(SUB, "batch-rg", "gone-1", "Standard_F2s_v2")  # deleted before its instance view
VIEWS = {
    "web-1": instance_view("running"),
    "idle-1": instance_view("deallocated", op_time="2026-09-01T12:00:00.1234567+00:00"),
    "shut-1": instance_view("stopped", power_time="2026-10-20T08:00:00+00:00"),
}
DISKS = [
    disk(SUB, "web-rg", "web-1-os", 30, "Premium_LRS", "Attached", WEB["id"], zones=["2"]),
    disk(
        SUB,
        "web-rg",
        "orphan-data",
        512,
        "StandardSSD_LRS",
        "Unattached",
        tags={"owner": "ana"},
        owner_changed="2026-08-01T00:00:00.0000000+00:00",
    ),
    disk(SUB, "web-rg", "idle-1-os", 64, "Premium_LRS", "Reserved", IDLE["id"]),
]


# ----------------------------------------------------------------------- fixtures


@pytest.fixture
def azure_server(ca, trust_local_ca):
    with AzureArmServer(
        ca,
        tenant_id=TENANT,
        client_id=CLIENT,
        client_secret=SECRET,
        vms=[WEB, IDLE, SHUT, GONE],
        views=VIEWS,
        disks=DISKS,
        page_size=2,
    ) as server:
        yield server


def azure_block(server: AzureArmServer, secret: str = SECRET) -> AzureCredentials:
    return AzureCredentials(
        tenant_id=TENANT,
        client_id=CLIENT,
        client_secret=secret,
        authority_host=server.url,
        resource_manager_url=server.url,
        credential_kwargs={"disable_instance_discovery": True},
    )


def gcp_block(oauth: GcpCatalogServer, key):
    from prefect_gcp import GcpCredentials

    return GcpCredentials(service_account_info=service_account_info(key, oauth.token_uri, "kid"))


G_WEB = ginstance(
    PROJECT,
    "us-central1-a",
    "web-1",
    "n2-standard-4",
    labels={"team": "web"},
    lastStartTimestamp="2026-10-01T01:00:00.000-07:00",
)
G_OFF = ginstance(
    PROJECT,
    "europe-west4-b",
    "batch-1",
    "e2-standard-8",
    "TERMINATED",
    lastStopTimestamp="2026-09-15T10:00:00.000-07:00",
)
G_NEW = ginstance(PROJECT, "us-east1-c", "new-1", "c3-standard-4", "STAGING")
G_DISKS = [
    gdisk(PROJECT, "web-1", 50, "pd-balanced", zone="us-central1-a", users=[G_WEB["selfLink"]]),
    gdisk(PROJECT, "orphan", 200, "pd-ssd", zone="europe-west4-b", labels={"owner": "li"}),
    gdisk(PROJECT, "shared", 100, "pd-standard", region="us-central1"),
]


@pytest.fixture
def gce_server(oauth):
    with GcpComputeServer(oauth.tokens, [G_WEB, G_OFF, G_NEW], G_DISKS) as server:
        yield server


@pytest.fixture
def fast_retries(monkeypatch):
    for t in (ar.collect_azure_resources, gr.collect_gcp_resources):
        monkeypatch.setattr(t, "retry_delay_seconds", 0)


# ------------------------------------------------------------------- Azure: pure


@pytest.mark.parametrize(
    ("view", "state", "since"),
    [
        (instance_view("running"), "running", None),
        (instance_view("deallocated", "2026-10-01T00:00:00Z"), "stopped", datetime(2026, 10, 1)),
        # no PowerState time: the last completed operation (a lower bound) for deallocated
        (
            instance_view("deallocated", op_time="2026-09-01T12:00:00.1234567+00:00"),
            "stopped",
            datetime(2026, 9, 1, 12, 0, 0, 123456),
        ),
        # OS shut down but still allocated: billed, so "running"
        (instance_view("stopped", op_time="2026-09-01T00:00:00Z"), "running", None),
        (instance_view("starting"), "pending", None),
        (instance_view("deallocating"), "stopping", None),
        (instance_view(None), "unknown", None),
        (None, "unknown", None),
    ],
)
def test_power_state(view, state, since):
    got_state, got_since = ar.power_state(view)
    assert got_state == state
    assert got_since == (since.replace(tzinfo=UTC) if since else None)


def test_vm_resource_maps_the_arm_shape():
    res = ar.vm_resource(WEB, VIEWS["web-1"], SUB)
    assert (res.id, res.provider, res.account, res.kind) == (WEB["id"], "azure", SUB, "instance")
    assert (res.type, res.region, res.zone, res.name) == (
        "Standard_D2s_v5",
        "eastus",
        "eastus-2",
        "web-1",
    )
    assert res.state == "running" and res.tags == {"team": "web"}
    assert res.created == datetime(2025, 1, 15, 10, 0, tzinfo=UTC)
    assert res.hourly_price is None and res.monthly_cost is None  # priced elsewhere
    shut = ar.vm_resource(SHUT, VIEWS["shut-1"], SUB)
    assert shut.state == "running" and shut.created is None and shut.zone is None
    assert shut.state_since == datetime(2026, 10, 20, 8, tzinfo=UTC)


def test_disk_resource_maps_states_and_attachment():
    attached, orphan, reserved = (ar.disk_resource(d, SUB) for d in DISKS)
    assert (attached.state, attached.attached_to, attached.type) == (
        "in-use",
        WEB["id"],
        "Premium_LRS",
    )
    assert attached.size_gib == 30.0 and attached.kind == "volume" and attached.zone == "eastus-2"
    assert (orphan.state, orphan.attached_to, orphan.size_gib) == ("available", None, 512.0)
    assert orphan.state_since == datetime(2026, 8, 1, tzinfo=UTC) and orphan.tags == {
        "owner": "ana"
    }
    assert (reserved.state, reserved.attached_to) == ("in-use", IDLE["id"])
    # an Unattached disk whose managedBy lingers is still unattached
    stale = disk(SUB, "rg", "d", 8, "Standard_LRS", "Unattached", managed_by=WEB["id"])
    assert ar.disk_resource(stale, SUB).attached_to is None
    odd = disk(SUB, "rg", "d", 8, "Standard_LRS", "ReadyToUpload")
    assert ar.disk_resource(odd, SUB).state == "unknown"


def test_resource_group_from_arm_id():
    assert ar.resource_group(WEB["id"]) == "web-rg"
    with pytest.raises(ValueError, match="no resource group"):
        ar.resource_group(f"/subscriptions/{SUB}")


# --------------------------------------------------------------- Azure: end to end


def test_collect_azure_resources_lists_pages_views_and_disks(harness, azure_server):
    resources = ar.collect_azure_resources(azure_block(azure_server), SUB.upper())
    by_name = {r.name: r for r in resources}
    assert set(by_name) == {"web-1", "idle-1", "shut-1", "web-1-os", "orphan-data", "idle-1-os"}
    assert "gone-1" not in by_name  # deleted between the listing and its instance view
    assert by_name["web-1"].state == "running" and by_name["web-1"].zone == "eastus-2"
    idle = by_name["idle-1"]
    assert (idle.state, idle.region) == ("stopped", "westeurope")
    assert idle.state_since == datetime(2026, 9, 1, 12, 0, 0, 123456, tzinfo=UTC)
    assert by_name["shut-1"].state == "running"  # stopped, not deallocated: still billed
    assert by_name["orphan-data"].attached_to is None
    assert by_name["idle-1-os"].attached_to == IDLE["id"]
    assert all(r.account == SUB for r in resources)  # lower-cased GUID
    paths = [r.path for r in azure_server.api_requests()]
    vm_lists = [p for p in paths if "/virtualMachines?" in p]
    assert len(vm_lists) == 2 and "$skiptoken=2" in vm_lists[1]  # followed nextLink
    assert sum("/instanceView?" in p for p in paths) == 4
    assert sum("/disks?" in p for p in paths) == 2  # 3 disks, 2 per page


def test_collect_azure_resources_retries_429(harness, azure_server, fast_retries):
    azure_server.fail(429, arm_error("TooManyRequests", "slow down"), headers={"Retry-After": "1"})
    state = ar.collect_azure_resources(azure_block(azure_server), SUB, return_state=True)
    assert state.is_completed() and len(state.result()) == 6
    assert azure_server.faults_served == 1 and task_run_count(state) == 2
    assert ar.collect_azure_resources.retry_condition_fn is retry_on_transient
    assert ar.collect_azure_resources.retries == RETRIES


def test_collect_azure_resources_does_not_retry_403(harness, azure_server, fast_retries):
    azure_server.fail(403, arm_error("AuthorizationFailed", "no read on subscription"), times=None)
    state = ar.collect_azure_resources(azure_block(azure_server), SUB, return_state=True)
    assert state.is_failed()
    error = state.result(raise_on_failure=False)
    assert isinstance(error, HttpResponseError) and error.status_code == 403
    assert task_run_count(state) == 1 and len(azure_server.api_requests()) == 1


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [({"subscription_id": "sub-1"}, "subscription_id"), ({"max_workers": 0}, "max_workers")],
)
def test_collect_azure_resources_rejects_bad_input_before_any_call(azure_server, kwargs, field):
    args = {"subscription_id": SUB, **kwargs}
    with pytest.raises(ValueError, match=f"^{field}: "):
        ar.collect_azure_resources.fn(azure_block(azure_server), **args)
    assert azure_server.requests == []


def test_azure_resources_never_leak_the_client_secret(
    harness, azure_server, fast_retries, caplog, capfd
):
    canary = "CANARY-azinv-7Hq2Lm9Xv4Pz1Ks8"
    azure_server.client_secret = canary
    caplog.set_level(logging.DEBUG)
    ok = ar.collect_azure_resources(azure_block(azure_server, canary), SUB, return_state=True)
    assert ok.is_completed() and azure_server.token_forms  # the canary was the secret used
    bad = ar.collect_azure_resources(azure_block(azure_server, "wrong"), SUB, return_state=True)
    error = bad.result(raise_on_failure=False)
    assert isinstance(error, ClientAuthenticationError) and task_run_count(bad) == 1
    out, err = capfd.readouterr()
    texts = {
        "result": "".join(r.model_dump_json() for r in ok.result()),
        "exception": f"{error!s} {error!r}",
        "logs": caplog.text + "\n".join(str(r.args) for r in caplog.records),
        "stdout/stderr": out + err,
    }
    assert "Azure Compute" in caplog.text and "AADSTS7000215" in caplog.text
    for where, text in texts.items():
        assert canary not in text, where


def test_azure_credentials_block_validation_hides_the_secret():
    canary = "CANARY-block-5Tn3Wq8Rz"
    with pytest.raises(ValueError, match="tenant_id: required") as info:
        AzureCredentials(client_id=CLIENT, client_secret=canary)
    assert canary not in str(info.value)
    with pytest.raises(ValueError, match="resource_manager_url: must be an https"):
        AzureCredentials(resource_manager_url="http://127.0.0.1:1")
    block = AzureCredentials(tenant_id=TENANT, client_id=CLIENT, client_secret=canary)
    assert canary not in repr(block) and canary not in block.model_dump_json()
    assert block.credential_scope == "https://management.azure.com/.default"


# --------------------------------------------------------------------- GCP: pure


def test_instance_resource_maps_status_machine_type_and_times():
    web = gr.instance_resource(G_WEB, PROJECT)
    assert (web.id, web.kind, web.provider, web.account) == (
        G_WEB["selfLink"],
        "instance",
        "gcp",
        PROJECT,
    )
    assert (web.type, web.region, web.zone, web.state) == (
        "n2-standard-4",
        "us-central1",
        "us-central1-a",
        "running",
    )
    assert web.state_since == datetime(2026, 10, 1, 8, 0, tzinfo=UTC)  # -07:00 -> UTC
    assert web.tags == {"team": "web"} and web.created == datetime(2025, 1, 10, 17, tzinfo=UTC)
    off = gr.instance_resource(G_OFF, PROJECT)
    assert (off.state, off.state_since) == ("stopped", datetime(2026, 9, 15, 17, tzinfo=UTC))
    assert gr.instance_resource(G_NEW, PROJECT).state == "pending"
    for status, state in [("SUSPENDED", "stopped"), ("STOPPING", "stopping"), ("X", "unknown")]:
        assert gr.instance_resource({**G_WEB, "status": status}, PROJECT).state == state
    suspended = {**G_WEB, "status": "SUSPENDED", "lastSuspendedTimestamp": "2026-10-02T00:00:00Z"}
    assert gr.instance_resource(suspended, PROJECT).state_since == datetime(2026, 10, 2, tzinfo=UTC)


def test_disk_resource_maps_users_type_and_regional_disks():
    used, orphan, regional = (gr.disk_resource(d, PROJECT) for d in G_DISKS)
    assert (used.state, used.attached_to, used.type, used.size_gib) == (
        "in-use",
        G_WEB["selfLink"],
        "pd-balanced",
        50.0,
    )
    assert used.attached_to == gr.instance_resource(G_WEB, PROJECT).id  # ids line up
    assert (orphan.state, orphan.attached_to, orphan.tags) == ("available", None, {"owner": "li"})
    assert (regional.region, regional.zone) == ("us-central1", None)
    creating = gdisk(PROJECT, "new", 10, "pd-ssd", zone="us-east1-b", status="CREATING")
    assert gr.disk_resource(creating, PROJECT).state == "pending"


def test_short_names_and_regions():
    assert gr.short_name(G_WEB["machineType"]) == "n2-standard-4"
    assert gr.zone_region("europe-west4-b") == "europe-west4"
    assert gr.zone_region("us-central1") == "us-central1"


# ----------------------------------------------------------------- GCP: end to end


def test_collect_gcp_resources_pages_aggregated_lists(harness, oauth, gcp_key, gce_server):
    resources = gr.collect_gcp_resources(
        gcp_block(oauth, gcp_key), PROJECT, api_endpoint=gce_server.url, page_size=2
    )
    kinds = {(r.kind, r.name) for r in resources}
    assert len(resources) == len(kinds) == 6
    assert kinds == {("instance", n) for n in ("web-1", "batch-1", "new-1")} | {
        ("volume", n) for n in ("web-1", "orphan", "shared")
    }
    inst = gce_server.api_requests("instances")
    assert len(inst) == 2 and "pageToken=2" in inst[1].path and "maxResults=2" in inst[0].path
    assert len(gce_server.api_requests("disks")) == 2
    assert oauth.jwt_claims and "cloud-platform" in oauth.jwt_claims[0]["scope"]


def test_collect_gcp_resources_uses_the_block_project(harness, oauth, gcp_key, gce_server):
    block = gcp_block(oauth, gcp_key)
    gr.collect_gcp_resources(block, api_endpoint=gce_server.url)
    assert all(f"/projects/{block.project}/" in r.path for r in gce_server.api_requests())


def test_collect_gcp_resources_retries_503(harness, oauth, gcp_key, gce_server, fast_retries):
    gce_server.fail(503, google_error(503, "UNAVAILABLE", "try again"), times=1)
    state = gr.collect_gcp_resources(
        gcp_block(oauth, gcp_key), PROJECT, api_endpoint=gce_server.url, return_state=True
    )
    assert state.is_completed() and len(state.result()) == 6
    assert task_run_count(state) == 2 and gce_server.faults_served == 1


def test_collect_gcp_resources_does_not_retry_403(
    harness, oauth, gcp_key, gce_server, fast_retries
):
    gce_server.fail(
        403, google_error(403, "PERMISSION_DENIED", "compute.instances.list"), times=None
    )
    state = gr.collect_gcp_resources(
        gcp_block(oauth, gcp_key), PROJECT, api_endpoint=gce_server.url, return_state=True
    )
    assert state.is_failed()
    assert isinstance(state.result(raise_on_failure=False), gx.Forbidden)
    assert task_run_count(state) == 1 and len(gce_server.api_requests()) == 1


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [({"project": "Shop_Prod"}, "project"), ({"page_size": 501}, "page_size")],
)
def test_collect_gcp_resources_rejects_bad_input_before_any_call(
    oauth, gcp_key, gce_server, kwargs, field
):
    args = {"project": PROJECT, **kwargs}
    with pytest.raises(ValueError, match=f"^{field}: "):
        gr.collect_gcp_resources.fn(gcp_block(oauth, gcp_key), api_endpoint=gce_server.url, **args)
    assert gce_server.requests == [] and oauth.requests == []


def test_azure_credentials_block_registers_saves_and_loads(harness, azure_server):
    AzureCredentials.register_type_and_schema()  # what `prefect block register -m blocks` does
    azure_block(azure_server).save("test-azure-arm", overwrite=True)
    loaded = AzureCredentials.load("test-azure-arm")
    assert loaded.client_secret.get_secret_value() == SECRET
    assert loaded.credential_kwargs == {"disable_instance_discovery": True}
    resources = ar.collect_azure_resources(loaded, SUB)
    assert len(resources) == 6


def test_default_azure_credential_is_used_without_a_service_principal(
    harness, azure_server, monkeypatch
):
    # DefaultAzureCredential's first link reads a service principal from the environment
    monkeypatch.setenv("AZURE_TENANT_ID", TENANT)
    monkeypatch.setenv("AZURE_CLIENT_ID", CLIENT)
    monkeypatch.setenv("AZURE_CLIENT_SECRET", SECRET)
    block = AzureCredentials(
        authority_host=azure_server.url,
        resource_manager_url=azure_server.url,
        credential_kwargs={"disable_instance_discovery": True},
    )
    from azure.identity import DefaultAzureCredential

    assert isinstance(block.get_credential(), DefaultAzureCredential)
    assert len(ar.collect_azure_resources(block, SUB)) == 6
    assert azure_server.token_forms[0]["client_id"] == CLIENT
