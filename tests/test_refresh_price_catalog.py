"""refresh_price_catalog: parsing, retry classification, each fetcher against a local
server speaking its API, and the flow end to end under a Prefect test harness.

Servers (all on 127.0.0.1): moto (EC2 spot price history) behind a local Price List API
server (tests/servers/aws_pricing.py), a local Azure Retail Prices API and a local
Cloud Billing Catalog API with its OAuth token endpoint.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, date, datetime
from pathlib import Path

import httpx
import pytest
from botocore.exceptions import (
    ClientError,
    EndpointConnectionError,
    NoCredentialsError,
    ReadTimeoutError,
)
from google.api_core import exceptions as gx
from google.auth import exceptions as gax
from prefect.client.schemas.objects import StateType
from prefect.states import Failed

from tasks.common.retry import is_transient, one_line_reason, retry_on_transient
from tasks.pricing import aws as aws_mod
from tasks.pricing import azure as azure_mod
from tasks.pricing import gcp as gcp_mod
from tasks.pricing.catalog import (
    GpuSpec,
    InstanceType,
    ProviderCatalog,
    Region,
    RegionPrice,
    current_version_dir,
    load_catalog,
    write_catalog_version,
)
from tasks.pricing.prices import Quote, biggest_changes, merge_prices, refresh_scope
from tests.conftest import task_run_count
from tests.retries import assert_backoff_with_jitter, shrink_waits
from tests.servers.aws_pricing import AwsPricingServer, aws_error, ec2_product
from tests.servers.azure_retail import AzureRetailServer, parse_filter, vm_item
from tests.servers.gcp_catalog import (
    AMERICAS,
    EUROPE,
    GcpCatalogServer,
    google_error_body,
    service_account_info,
    sku,
)

# fetch tasks called directly (outside a flow) log locally only; that is expected here
pytestmark = pytest.mark.filterwarnings("ignore:Logger 'prefect.task_runs' attempted:UserWarning")

TODAY = datetime.now(UTC).date()
OLD = date(2025, 1, 1)

# --------------------------------------------------------------------------- data


def _region(id_: str, geo: str) -> Region:
    return Region(id=id_, name=id_, geo=geo, block_storage_gib_month=0.08)


def _inst(name, family, vcpus, mem, prices, gpu=None, category="general") -> InstanceType:
    return InstanceType(
        name=name,
        family=family,
        category=category if gpu is None else "gpu",
        vcpus=vcpus,
        memory_gib=mem,
        gpu=gpu,
        prices={r: RegionPrice(on_demand=od, spot=sp) for r, (od, sp) in prices.items()},
    )


def small_catalogs() -> dict[str, ProviderCatalog]:
    t4 = GpuSpec(model="nvidia-t4", count=1, memory_gib=16)
    return {
        "aws": ProviderCatalog(
            provider="aws",
            as_of=OLD,
            source="bundled sample",
            notes="AWS sample",
            regions=[_region("us-east-1", "us"), _region("eu-west-1", "europe")],
            instances=[
                _inst(
                    "m5.large", "m5", 2, 8, {"us-east-1": (0.09, 0.04), "eu-west-1": (0.1, 0.045)}
                ),
                _inst(
                    "c5.xlarge", "c5", 4, 8, {"us-east-1": (0.16, 0.07), "eu-west-1": (0.18, 0.08)}
                ),
            ],
        ),
        "gcp": ProviderCatalog(
            provider="gcp",
            as_of=OLD,
            source="bundled sample",
            regions=[_region("us-central1", "us"), _region("europe-west4", "europe")],
            instances=[
                _inst(
                    "n2-standard-4",
                    "n2-standard",
                    4,
                    16,
                    {"us-central1": (0.18, 0.04), "europe-west4": (0.2, 0.05)},
                ),
                _inst(
                    "n1-standard-4+1xnvidia-tesla-t4",
                    "n1-t4",
                    4,
                    15,
                    {"us-central1": (0.5, 0.15), "europe-west4": (0.55, 0.16)},
                    gpu=t4,
                ),
            ],
        ),
        "azure": ProviderCatalog(
            provider="azure",
            as_of=OLD,
            source="bundled sample",
            regions=[_region("eastus", "us"), _region("westeurope", "europe")],
            instances=[
                _inst(
                    "Standard_D2s_v5",
                    "Dsv5",
                    2,
                    8,
                    {"eastus": (0.09, 0.01), "westeurope": (0.1, 0.012)},
                ),
                _inst(
                    "Standard_NC4as_T4_v3",
                    "NCasT4_v3",
                    4,
                    28,
                    {"eastus": (0.5, 0.05), "westeurope": (0.55, 0.06)},
                    gpu=t4,
                ),
            ],
        ),
    }


AWS_PRODUCTS = [
    ec2_product("m5.large", "us-east-1", 0.096),
    # a second product for the same query (a $0 placeholder) makes GetProducts page
    ec2_product("m5.large", "us-east-1", 0.0, sku="ZEROPRICEPLACEHO"),
    ec2_product("m5.large", "eu-west-1", 0.107),
    ec2_product("c5.xlarge", "us-east-1", 0.17),
    # c5.xlarge in eu-west-1 is deliberately absent: the refresh must keep the old price
    ec2_product("m5.large", "us-east-1", 0.188, operatingSystem="Windows", sku="WINDOWSM5LARGE00"),
    ec2_product("m5.large", "us-east-1", 0.156, operatingSystem="RHEL", sku="RHELM5LARGE00000"),
]

GCP_SKUS = [
    sku("N2 Instance Core running in Americas", AMERICAS, 0.031611),
    sku("N2 Instance Ram running in Americas", AMERICAS, 0.004237, unit="GiBy.h", group="RAM"),
    sku(
        "Spot Preemptible N2 Instance Core running in Americas",
        AMERICAS,
        0.00765,
        usage="Preemptible",
    ),
    sku(
        "Spot Preemptible N2 Instance Ram running in Americas",
        AMERICAS,
        0.001025,
        usage="Preemptible",
        unit="GiBy.h",
        group="RAM",
    ),
    sku("N2 Instance Core running in EMEA", EUROPE, 0.03477),
    sku("N2 Instance Ram running in EMEA", EUROPE, 0.00466, unit="GiBy.h", group="RAM"),
    sku("Spot Preemptible N2 Instance Core running in EMEA", EUROPE, 0.0085, usage="Preemptible"),
    sku(
        "Spot Preemptible N2 Instance Ram running in EMEA",
        EUROPE,
        0.0011,
        usage="Preemptible",
        unit="GiBy.h",
        group="RAM",
    ),
    sku("N1 Predefined Instance Core running in Americas", AMERICAS, 0.031611, group="N1Standard"),
    sku(
        "N1 Predefined Instance Ram running in Americas",
        AMERICAS,
        0.004237,
        unit="GiBy.h",
        group="N1Standard",
    ),
    sku(
        "Spot Preemptible N1 Predefined Instance Core running in Americas",
        AMERICAS,
        0.00698,
        usage="Preemptible",
        group="N1Standard",
    ),
    sku(
        "Spot Preemptible N1 Predefined Instance Ram running in Americas",
        AMERICAS,
        0.00094,
        usage="Preemptible",
        unit="GiBy.h",
        group="N1Standard",
    ),
    sku("Nvidia Tesla T4 GPU running in Americas", AMERICAS, 0.35, group="GPU"),
    sku(
        "Nvidia Tesla T4 GPU attached to Spot Preemptible VMs running in Americas",
        AMERICAS,
        0.11,
        usage="Preemptible",
        group="GPU",
    ),
    # noise the parser must ignore
    sku("Commitment v1: N2 Cpu in Americas for 1 Year", AMERICAS, 0.019915, usage="Commit1Yr"),
    sku("N2 Custom Instance Core running in Americas", AMERICAS, 0.033197),
    sku("SSD backed PD Capacity", AMERICAS, 0.17, unit="GiBy.mo", group="SSD"),
    sku("Nvidia Tesla T4 GPU running in Virtual Workstation", AMERICAS, 0.55, group="GPU"),
]

AZURE_ITEMS = [
    vm_item("Standard_D2s_v5", "eastus", 0.096),
    vm_item("Standard_D2s_v5", "eastus", 0.0096, spot=True),
    vm_item("Standard_D2s_v5", "eastus", 0.188, windows=True),
    vm_item("Standard_D2s_v5", "eastus", 0.0192, low_priority=True),
    vm_item("Standard_D2s_v5", "eastus", 0.05, price_type="DevTestConsumption"),
    vm_item("Standard_D2s_v5", "westeurope", 0.11),
    vm_item("Standard_D2s_v5", "westeurope", 0.0121, spot=True),
    vm_item("Standard_NC4as_T4_v3", "eastus", 0.6, effective="2024-01-01T00:00:00Z"),
    vm_item("Standard_NC4as_T4_v3", "eastus", 0.526),
    vm_item("Standard_NC4as_T4_v3", "eastus", 0.0526, spot=True),
    # NC4as_T4_v3 in westeurope is deliberately absent
    vm_item("Standard_E2s_v5", "eastus", 0.126),
]

# expected refreshed prices (see the SKUs / items / products above)
N2_US = round(4 * 0.031611 + 16 * 0.004237, 6)  # 0.194236
N2_US_SPOT = round(4 * 0.00765 + 16 * 0.001025, 6)
N2_EU = round(4 * 0.03477 + 16 * 0.00466, 6)
N1T4_US = round(4 * 0.031611 + 15 * 0.004237 + 0.35, 6)
N1T4_US_SPOT = round(4 * 0.00698 + 15 * 0.00094 + 0.11, 6)
MOTO_SPOT = 0.00001  # moto answers every DescribeSpotPriceHistory with this price

# ----------------------------------------------------------------------- fixtures


@pytest.fixture
def fast_retries(monkeypatch):
    """Keep the retry count and condition, drop the waiting (the backoff is unit-tested)."""
    for t in (aws_mod.fetch_aws_prices, azure_mod.fetch_azure_prices, gcp_mod.fetch_gcp_prices):
        monkeypatch.setattr(t, "retry_delay_seconds", 0)


@pytest.fixture
def aws_server(moto_url):
    with AwsPricingServer(AWS_PRODUCTS, page_size=1, upstream=moto_url) as server:
        yield server


@pytest.fixture
def azure_server():
    with AzureRetailServer(AZURE_ITEMS, page_size=2) as server:
        yield server


@pytest.fixture
def gcp_server(gcp_key, monkeypatch):
    with GcpCatalogServer(GCP_SKUS, gcp_key.public_key(), page_size=5) as server:
        # google-auth's Regional Access Boundary lookup goes here instead of Google.
        from google.auth import _regional_access_boundary_utils as rab

        monkeypatch.setattr(rab, "get_service_account_rab_endpoint", server.rab_endpoint)
        yield server


def aws_block(server: AwsPricingServer, secret: str = "testing-secret"):
    from prefect_aws import AwsCredentials

    return AwsCredentials(
        aws_access_key_id="AKIATESTING",
        aws_secret_access_key=secret,
        region_name="us-east-1",
        aws_client_parameters={"endpoint_url": server.url},
    )


def gcp_block(server: GcpCatalogServer, key, key_id: str = "test-key-id"):
    from prefect_gcp import GcpCredentials

    return GcpCredentials(service_account_info=service_account_info(key, server.token_uri, key_id))


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    """A fresh OPSFLOW_HOME whose current catalog is ``small_catalogs()``."""
    monkeypatch.setenv("OPSFLOW_HOME", str(tmp_path / "home"))
    write_catalog_version(small_catalogs())
    return tmp_path / "home"


def versions_on_disk() -> set[str]:
    from tasks.common.paths import catalog_dir

    return {p.name for p in (catalog_dir() / "versions").iterdir()}


# ------------------------------------------------------------ retry classification


def _client_error(code: str, status: int) -> ClientError:
    return ClientError(
        {"Error": {"Code": code, "Message": "m"}, "ResponseMetadata": {"HTTPStatusCode": status}},
        "GetProducts",
    )


def _http_error(status: int) -> httpx.HTTPStatusError:
    request = httpx.Request("GET", "http://127.0.0.1/api/retail/prices")
    return httpx.HTTPStatusError(
        "x", request=request, response=httpx.Response(status, request=request)
    )


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (_client_error("Throttling", 400), True),
        (_client_error("ThrottlingException", 400), True),
        (_client_error("RequestLimitExceeded", 503), True),
        (_client_error("ServiceUnavailable", 503), True),
        (_client_error("InternalError", 500), True),
        (_client_error("SomethingNew", 502), True),
        (_client_error("AccessDeniedException", 403), False),
        (_client_error("UnauthorizedOperation", 403), False),
        (_client_error("ValidationException", 400), False),
        (_client_error("InvalidParameterException", 400), False),
        (ReadTimeoutError(endpoint_url="http://x"), True),
        (EndpointConnectionError(endpoint_url="http://x"), True),
        (NoCredentialsError(), False),
        (_http_error(429), True),
        (_http_error(500), True),
        (_http_error(503), True),
        (_http_error(400), False),
        (_http_error(403), False),
        (_http_error(404), False),
        (httpx.ReadTimeout("slow"), True),
        (httpx.ConnectError("refused"), True),
        (httpx.InvalidURL("bad"), False),
        (gx.ServiceUnavailable("down"), True),
        (gx.TooManyRequests("slow down"), True),
        (gx.InternalServerError("oops"), True),
        (gx.DeadlineExceeded("late"), True),
        (gx.PermissionDenied("no"), False),
        (gx.Forbidden("no"), False),
        (gx.NotFound("gone"), False),
        (gx.Unauthenticated("who"), False),
        (gx.InvalidArgument("bad"), False),
        (gax.RefreshError("invalid_grant"), False),
        (gax.TransportError("no route"), True),
        (TimeoutError(), True),
        (ValueError("bad"), False),
        (KeyError("x"), False),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, BaseException) else str(v),
)
def test_is_transient(exc, expected):
    assert is_transient(exc) is expected


def test_retry_condition_reads_the_failed_state():
    assert retry_on_transient(None, None, Failed(data=gx.ServiceUnavailable("down"))) is True
    assert retry_on_transient(None, None, Failed(data=gx.PermissionDenied("no"))) is False
    assert retry_on_transient(None, None, Failed(data=_client_error("Throttling", 400))) is True


def test_one_line_reason_masks_secrets_and_newlines():
    exc = RuntimeError("token refused\n  key=Sup3rS3cret!\tretry later")
    text = one_line_reason(exc, secrets=["Sup3rS3cret!", ""])
    assert text == "RuntimeError: token refused key=*** retry later"
    assert len(one_line_reason(ValueError("x" * 1000))) <= 300
    assert one_line_reason(_http_error(503)) == (
        "HTTPStatusError: HTTP 503 Service Unavailable from GET http://127.0.0.1/api/retail/prices"
    )


@pytest.mark.parametrize("provider", ["aws", "azure", "gcp"])
def test_tasks_retry_with_exponential_backoff_and_jitter(
    harness, request, monkeypatch, gcp_key, provider
):
    """A server that answers 503 three times, then serves: the task succeeds on its 4th
    attempt, after waits that grow and vary (observed, see tests/retries.py)."""
    if provider == "aws":
        server = request.getfixturevalue("aws_server")
        server.fail(503, aws_error("ServiceUnavailableException", "try again"), times=3)
        task = aws_mod.fetch_aws_prices
        args = (aws_block(server), ["m5.large"], ["eu-west-1"])
        kwargs = {"include_spot": False}
    elif provider == "azure":
        server = request.getfixturevalue("azure_server")
        server.fail(503, {"error": {"code": "ServiceUnavailable"}}, times=3)
        task = azure_mod.fetch_azure_prices
        args, kwargs = (["Standard_D2s_v5"], ["westeurope"]), {"endpoint": server.url}
    else:
        server = request.getfixturevalue("gcp_server")
        server.fail(503, google_error_body(503, "UNAVAILABLE", "try again"), times=3)
        task = gcp_mod.fetch_gcp_prices
        args = (gcp_block(server, gcp_key), small_catalogs()["gcp"].instances, ["us-central1"])
        kwargs = {"api_endpoint": server.url}
    shrink_waits(monkeypatch, task)
    state = task(*args, return_state=True, **kwargs)
    assert state.is_completed(), state
    assert server.faults_served == 3
    api = [r for r in server.requests if server.is_api_request(r)]
    # attempts 1-3 each stopped at their first (failed) request; attempt 4 starts after
    attempt_times = [r.at for r in api[:4]]
    assert_backoff_with_jitter(state, attempt_times)


def test_task_run_count_fails_when_the_final_state_never_shows(harness, azure_server):
    state = azure_mod.fetch_azure_prices(
        ["Standard_D2s_v5"], ["westeurope"], endpoint=azure_server.url, return_state=True
    )
    assert task_run_count(state) == 1
    never = state.model_copy(update={"type": StateType.FAILED})  # the API holds COMPLETED
    with pytest.raises(pytest.fail.Exception, match="state COMPLETED after 1 s, never"):
        task_run_count(never, timeout=1)


# ------------------------------------------------------------------------ parsing


def test_aws_parse_price_list_item_reads_on_demand_linux_only():
    doc = ec2_product("m5.large", "us-east-1", 0.096)
    assert aws_mod.parse_price_list_item(json.dumps(doc)) == ("m5.large", "us-east-1", 0.096)
    assert aws_mod.parse_price_list_item(doc) == ("m5.large", "us-east-1", 0.096)
    for override in (
        {"operatingSystem": "Windows"},
        {"operatingSystem": "RHEL"},
        {"tenancy": "Dedicated"},
        {"preInstalledSw": "SQL Std"},
        {"capacitystatus": "UnusedCapacityReservation"},
        {"operation": "RunInstances:0002"},
    ):
        assert (
            aws_mod.parse_price_list_item(ec2_product("m5.large", "us-east-1", 0.1, **override))
            is None
        )
    assert aws_mod.parse_price_list_item(ec2_product("m5.large", "us-east-1", 0.0)) is None
    reserved_only = ec2_product("m5.large", "us-east-1", 0.096)
    reserved_only["terms"].pop("OnDemand")
    assert aws_mod.parse_price_list_item(reserved_only) is None


def test_aws_parse_on_demand_prices_keeps_lowest_positive():
    docs = [json.dumps(p) for p in AWS_PRODUCTS]
    assert aws_mod.parse_on_demand_prices(docs) == {
        ("m5.large", "us-east-1"): 0.096,
        ("m5.large", "eu-west-1"): 0.107,
        ("c5.xlarge", "us-east-1"): 0.17,
    }


def test_aws_pricing_filters():
    filters = aws_mod.pricing_filters("g5.xlarge", "eu-west-1")
    assert {f["Type"] for f in filters} == {"TERM_MATCH"}
    assert {f["Field"]: f["Value"] for f in filters} == {
        "instanceType": "g5.xlarge",
        "regionCode": "eu-west-1",
        "operatingSystem": "Linux",
        "tenancy": "Shared",
        "preInstalledSw": "NA",
        "capacitystatus": "Used",
    }


def test_aws_parse_spot_history_latest_per_az_then_average():
    t1, t2 = datetime(2025, 6, 1, tzinfo=UTC), datetime(2025, 6, 2, tzinfo=UTC)
    records = [
        {
            "InstanceType": "m5.large",
            "AvailabilityZone": "us-east-1a",
            "ProductDescription": "Linux/UNIX",
            "SpotPrice": "0.050",
            "Timestamp": t1,
        },
        {
            "InstanceType": "m5.large",
            "AvailabilityZone": "us-east-1a",
            "ProductDescription": "Linux/UNIX",
            "SpotPrice": "0.040",
            "Timestamp": t2,
        },
        {
            "InstanceType": "m5.large",
            "AvailabilityZone": "us-east-1b",
            "ProductDescription": "Linux/UNIX (Amazon VPC)",
            "SpotPrice": "0.030",
            "Timestamp": t1,
        },
        {
            "InstanceType": "m5.large",
            "AvailabilityZone": "us-east-1c",
            "ProductDescription": "Windows",
            "SpotPrice": "0.090",
            "Timestamp": t2,
        },
        {
            "InstanceType": "m5.large",
            "AvailabilityZone": "us-east-1d",
            "ProductDescription": "SUSE Linux",
            "SpotPrice": "0.070",
            "Timestamp": t2,
        },
        {
            "InstanceType": "c5.xlarge",
            "AvailabilityZone": "us-east-1a",
            "ProductDescription": "Linux/UNIX",
            "SpotPrice": "0.068",
            "Timestamp": t2,
        },
    ]
    assert aws_mod.parse_spot_price_history(records) == {"m5.large": 0.035, "c5.xlarge": 0.068}


def test_azure_classify_and_parse_items():
    assert azure_mod.classify_item(vm_item("Standard_D2s_v5", "eastus", 0.096)) == (
        "Standard_D2s_v5",
        "eastus",
        "on_demand",
        0.096,
    )
    assert (
        azure_mod.classify_item(vm_item("Standard_D2s_v5", "eastus", 0.0096, spot=True))[2]
        == "spot"
    )
    assert (
        azure_mod.classify_item(vm_item("Standard_D2s_v5", "eastus", 0.188, windows=True)) is None
    )
    assert (
        azure_mod.classify_item(vm_item("Standard_D2s_v5", "eastus", 0.02, low_priority=True))
        is None
    )
    assert (
        azure_mod.classify_item(
            vm_item("Standard_D2s_v5", "eastus", 0.05, price_type="DevTestConsumption")
        )
        is None
    )
    table = azure_mod.parse_retail_items(AZURE_ITEMS)
    assert table["Standard_D2s_v5"]["eastus"] == Quote(on_demand=0.096, spot=0.0096)
    assert table["Standard_D2s_v5"]["westeurope"] == Quote(on_demand=0.11, spot=0.0121)
    # the newer effectiveStartDate wins over the 2024 price
    assert table["Standard_NC4as_T4_v3"]["eastus"] == Quote(on_demand=0.526, spot=0.0526)
    assert "westeurope" not in table["Standard_NC4as_T4_v3"]


def test_azure_retail_filter():
    text = azure_mod.retail_filter("eastus", ["Standard_D2s_v5", "Standard_E2s_v5"])
    assert text == (
        "serviceName eq 'Virtual Machines' and armRegionName eq 'eastus' and priceType eq "
        "'Consumption' and (armSkuName eq 'Standard_D2s_v5' or armSkuName eq 'Standard_E2s_v5')"
    )
    assert parse_filter(text)["armSkuName"] == {"Standard_D2s_v5", "Standard_E2s_v5"}


def test_gcp_classify_sku():
    def classify(description, usage="OnDemand", unit="h"):
        return gcp_mod.classify_sku(sku(description, ["us-central1"], 0.01, usage=usage, unit=unit))

    assert classify("N2 Instance Core running in Americas") == (("core", "n2"), "OnDemand")
    assert classify("N2 Instance Ram running in Americas", unit="GiBy.h") == (
        ("ram", "n2"),
        "OnDemand",
    )
    assert classify(
        "Spot Preemptible N2D AMD Instance Core running in Americas", "Preemptible"
    ) == (
        ("core", "n2d"),
        "Preemptible",
    )
    assert classify("N1 Predefined Instance Core running in Americas") == (
        ("core", "n1"),
        "OnDemand",
    )
    assert classify("E2 Instance Core running in Iowa") == (("core", "e2"), "OnDemand")
    assert classify("Compute optimized Core running in Americas") == (("core", "c2"), "OnDemand")
    assert classify("Nvidia Tesla T4 GPU running in Americas") == (
        ("gpu", "nvidia-t4", ""),
        "OnDemand",
    )
    assert classify(
        "Nvidia Tesla T4 GPU attached to Spot Preemptible VMs running in Americas", "Preemptible"
    ) == (("gpu", "nvidia-t4", ""), "Preemptible")
    assert classify("Nvidia A100 80GB GPU running in Americas") == (
        ("gpu", "nvidia-a100", "80gb"),
        "OnDemand",
    )
    assert classify("Nvidia L4 GPU running in Americas") == (("gpu", "nvidia-l4", ""), "OnDemand")
    for ignored in (
        "Commitment v1: N2 Cpu in Americas for 1 Year",
        "N2 Custom Instance Core running in Americas",
        "N2 Sole Tenancy Instance Core running in Americas",
        "N2 Custom Extended Instance Ram running in Americas",
        "Nvidia Tesla T4 GPU running in Virtual Workstation",
        "SSD backed PD Capacity",
    ):
        assert classify(ignored) is None, ignored
    assert classify("N2 Instance Core running in Americas", usage="Commit1Yr") is None
    assert classify("N2 Instance Ram running in Americas", unit="GiBy.mo") is None


def test_gcp_unit_price_adds_units_and_nanos():
    assert gcp_mod.unit_price(sku("x", [], 1.25)) == pytest.approx(1.25)
    assert gcp_mod.unit_price(sku("x", [], 0.031611)) == pytest.approx(0.031611)
    assert gcp_mod.unit_price({"pricingInfo": []}) is None


def test_gcp_rate_table_and_machine_prices():
    rates = gcp_mod.build_rate_table(GCP_SKUS, ["us-central1", "europe-west4"])
    machines = small_catalogs()["gcp"].instances
    table = gcp_mod.price_instances(machines, ["us-central1", "europe-west4"], rates)
    assert table["n2-standard-4"]["us-central1"] == Quote(on_demand=N2_US, spot=N2_US_SPOT)
    assert N2_US == 0.194236  # the published n2-standard-4 us-central1 price
    assert table["n2-standard-4"]["europe-west4"].on_demand == N2_EU
    t4 = table["n1-standard-4+1xnvidia-tesla-t4"]
    assert t4["us-central1"] == Quote(on_demand=N1T4_US, spot=N1T4_US_SPOT)
    assert "europe-west4" not in t4  # no N1/T4 rates there -> no price, never a partial sum


def test_gcp_machine_price_edge_cases():
    rates = gcp_mod.build_rate_table(
        [
            sku("E2 Instance Core running in Americas", AMERICAS, 0.021811),
            sku("E2 Instance Ram running in Americas", AMERICAS, 0.002923, unit="GiBy.h"),
            sku("E2 Instance Core running in Iowa", ["us-central1"], 0.02),  # more specific
            sku("A2 Instance Core running in Americas", AMERICAS, 0.031611),
            sku("A2 Instance Ram running in Americas", AMERICAS, 0.004237, unit="GiBy.h"),
            sku("Nvidia Tesla A100 GPU running in Americas", AMERICAS, 2.933908),
            sku("Nvidia A100 80GB GPU running in Americas", AMERICAS, 3.92),
        ]
    )
    e2 = _inst("e2-standard-2", "e2", 2, 8, {})
    assert gcp_mod.machine_price(e2, "us-central1", "OnDemand", rates) == round(
        2 * 0.02 + 8 * 0.002923, 6
    )
    assert gcp_mod.machine_price(e2, "us-east1", "OnDemand", rates) == round(
        2 * 0.021811 + 8 * 0.002923, 6
    )
    assert (
        gcp_mod.machine_price(_inst("e2-micro", "e2", 2, 1, {}), "us-east1", "OnDemand", rates)
        is None
    )
    a100_40 = _inst(
        "a2-highgpu-1g", "a2", 12, 85, {}, gpu=GpuSpec(model="nvidia-a100", count=1, memory_gib=40)
    )
    a100_80 = _inst(
        "a2-ultragpu-1g",
        "a2",
        12,
        170,
        {},
        gpu=GpuSpec(model="nvidia-a100", count=1, memory_gib=80),
    )
    base40 = 12 * 0.031611 + 85 * 0.004237
    base80 = 12 * 0.031611 + 170 * 0.004237
    assert gcp_mod.machine_price(a100_40, "us-east1", "OnDemand", rates) == round(
        base40 + 2.933908, 6
    )
    assert gcp_mod.machine_price(a100_80, "us-east1", "OnDemand", rates) == round(base80 + 3.92, 6)
    assert gcp_mod.machine_price(a100_40, "us-east1", "Preemptible", rates) is None


def test_merge_prices_replaces_keeps_and_counts():
    cat = small_catalogs()["aws"]
    fetched = {
        "m5.large": {
            "us-east-1": Quote(on_demand=0.096, spot=0.041),
            "eu-west-1": Quote(on_demand=0.1),
        },
        "c5.xlarge": {"us-east-1": Quote(spot=0.07)},
    }
    out = merge_prices(cat, fetched, ["us-east-1", "eu-west-1"], source="API", as_of=TODAY)
    prices = {i.name: i.prices for i in out.catalog.instances}
    assert prices["m5.large"]["us-east-1"] == RegionPrice(on_demand=0.096, spot=0.041)
    assert prices["m5.large"]["eu-west-1"] == RegionPrice(on_demand=0.1, spot=0.045)  # spot kept
    assert prices["c5.xlarge"]["us-east-1"] == RegionPrice(on_demand=0.16, spot=0.07)  # od kept
    assert prices["c5.xlarge"]["eu-west-1"] == RegionPrice(on_demand=0.18, spot=0.08)  # all kept
    assert out.prices_updated == 4
    assert out.prices_changed == 2  # m5.large us-east-1 on-demand and spot; the rest equal
    assert sorted(out.missing) == [
        "c5.xlarge/eu-west-1/on_demand",
        "c5.xlarge/eu-west-1/spot",
        "c5.xlarge/us-east-1/on_demand",
        "m5.large/eu-west-1/spot",
    ]
    assert out.prices_missing == 4
    assert out.catalog.as_of == TODAY and out.catalog.source == "API"
    assert out.catalog.notes.startswith("AWS sample\nRefresh note: 4 price(s)")
    again = merge_prices(out.catalog, fetched, ["us-east-1"], source="API", as_of=TODAY)
    assert again.catalog.notes.count("Refresh note:") == 1
    change = next(c for c in out.changes if c.price == "on_demand")
    assert (change.old, change.new, change.change_pct) == (0.09, 0.096, 6.67)


def test_merge_prices_adds_new_region_prices_and_ignores_other_regions():
    cat = small_catalogs()["aws"]
    cat.instances[0].prices.pop("eu-west-1")
    fetched = {"m5.large": {"eu-west-1": Quote(on_demand=0.107, spot=0.03)}}
    out = merge_prices(cat, fetched, ["eu-west-1"], source="API", as_of=TODAY)
    assert out.catalog.instances[0].prices["eu-west-1"] == RegionPrice(on_demand=0.107, spot=0.03)
    assert out.catalog.instances[0].prices["us-east-1"] == RegionPrice(on_demand=0.09, spot=0.04)
    assert out.prices_updated == 2 and {c.old for c in out.changes} == {None}
    assert out.missing == ["c5.xlarge/eu-west-1/on_demand", "c5.xlarge/eu-west-1/spot"]
    assert biggest_changes(out.changes)[0].change_pct is None


def test_refresh_scope():
    cats = small_catalogs()
    assert refresh_scope(cats, ["aws", "azure"]) == {
        "aws": ["eu-west-1", "us-east-1"],
        "azure": ["eastus", "westeurope"],
    }
    assert refresh_scope(cats, ["aws", "gcp"], ["us-east-1"]) == {"aws": ["us-east-1"], "gcp": []}
    with pytest.raises(ValueError, match=r"regions: \['mars-1'\]"):
        refresh_scope(cats, ["aws"], ["us-east-1", "mars-1"])


# ---------------------------------------------------------------- fetchers vs servers


def test_fetch_aws_prices_paginates_and_reads_spot_from_moto(harness, aws_server):
    table = aws_mod.fetch_aws_prices(
        aws_block(aws_server), ["m5.large", "c5.xlarge"], ["us-east-1", "eu-west-1"]
    )
    assert table["m5.large"]["us-east-1"] == Quote(on_demand=0.096, spot=MOTO_SPOT)
    assert table["m5.large"]["eu-west-1"] == Quote(on_demand=0.107, spot=MOTO_SPOT)
    assert table["c5.xlarge"]["us-east-1"] == Quote(on_demand=0.17, spot=MOTO_SPOT)
    assert table["c5.xlarge"]["eu-west-1"] == Quote(on_demand=None, spot=MOTO_SPOT)
    calls = aws_server.get_products_calls
    assert len(calls) == 5  # 4 queries + 1 follow-up page
    assert [c["NextToken"] for c in calls if c.get("NextToken")] == ["tok-1"]
    assert all(c["ServiceCode"] == "AmazonEC2" and c["MaxResults"] == 100 for c in calls)
    assert {f["Field"] for f in calls[0]["Filters"]} >= {
        "instanceType",
        "regionCode",
        "capacitystatus",
    }
    ec2 = [r for r in aws_server.requests if b"DescribeSpotPriceHistory" in r.body]
    assert len(ec2) == 2 and all(b"Linux%2FUNIX" in r.body for r in ec2)


@pytest.mark.parametrize(
    ("status", "code"), [(503, "ServiceUnavailableException"), (400, "ThrottlingException")]
)
def test_fetch_aws_prices_retries_throttling_and_5xx(
    harness, aws_server, fast_retries, status, code
):
    aws_server.fail(status, aws_error(code, "try again"), times=1)
    state = aws_mod.fetch_aws_prices(
        aws_block(aws_server), ["m5.large"], ["eu-west-1"], return_state=True
    )
    assert state.is_completed()
    assert state.result()["m5.large"]["eu-west-1"].on_demand == 0.107
    assert aws_server.faults_served == 1
    assert task_run_count(state) == 2  # the Prefect retry, not a hidden SDK retry


def test_fetch_aws_prices_does_not_retry_access_denied(harness, aws_server, fast_retries):
    aws_server.fail(403, aws_error("AccessDeniedException", "not authorized"), times=None)
    state = aws_mod.fetch_aws_prices(
        aws_block(aws_server), ["m5.large"], ["eu-west-1"], include_spot=False, return_state=True
    )
    assert state.is_failed()
    error = state.result(raise_on_failure=False)
    assert (
        isinstance(error, ClientError)
        and error.response["Error"]["Code"] == "AccessDeniedException"
    )
    assert task_run_count(state) == 1
    assert len(aws_server.requests) == 1


def test_fetch_azure_prices_follows_next_page_link(harness, azure_server):
    table = azure_mod.fetch_azure_prices(
        ["Standard_D2s_v5", "Standard_NC4as_T4_v3"],
        ["eastus", "westeurope"],
        endpoint=azure_server.url,
    )
    assert table["Standard_D2s_v5"]["eastus"] == Quote(on_demand=0.096, spot=0.0096)
    assert table["Standard_D2s_v5"]["westeurope"] == Quote(on_demand=0.11, spot=0.0121)
    assert table["Standard_NC4as_T4_v3"] == {"eastus": Quote(on_demand=0.526, spot=0.0526)}
    assert "Standard_E2s_v5" not in table
    pages = [r.path for r in azure_server.requests]
    assert any("%24skip=2" in p or "$skip=2" in p for p in pages)
    assert len(pages) >= 4  # eastus needs 3 pages of 2 items, westeurope 1
    assert all("api-version=2023-01-01-preview" in p for p in pages)


def test_fetch_azure_prices_retries_503(harness, azure_server, fast_retries):
    azure_server.fail(503, {"error": {"code": "ServiceUnavailable"}}, times=1)
    state = azure_mod.fetch_azure_prices(
        ["Standard_D2s_v5"], ["westeurope"], endpoint=azure_server.url, return_state=True
    )
    assert state.is_completed()
    assert state.result()["Standard_D2s_v5"]["westeurope"].on_demand == 0.11
    assert task_run_count(state) == 2


def test_fetch_azure_prices_does_not_retry_403(harness, azure_server, fast_retries):
    azure_server.fail(403, {"error": {"code": "Forbidden"}}, times=None)
    state = azure_mod.fetch_azure_prices(
        ["Standard_D2s_v5"], ["westeurope"], endpoint=azure_server.url, return_state=True
    )
    assert state.is_failed()
    assert isinstance(state.result(raise_on_failure=False), httpx.HTTPStatusError)
    assert task_run_count(state) == 1
    assert len(azure_server.requests) == 1


def test_fetch_gcp_prices_oauth_and_pagination(harness, gcp_server, gcp_key):
    machines = small_catalogs()["gcp"].instances
    table = gcp_mod.fetch_gcp_prices(
        gcp_block(gcp_server, gcp_key),
        machines,
        ["us-central1", "europe-west4"],
        api_endpoint=gcp_server.url,
    )
    assert table["n2-standard-4"]["us-central1"] == Quote(on_demand=N2_US, spot=N2_US_SPOT)
    assert table["n1-standard-4+1xnvidia-tesla-t4"]["us-central1"].on_demand == N1T4_US
    # the real OAuth path: a signed JWT-bearer grant for the cloud-platform scope
    claims = gcp_server.jwt_claims[0]
    assert claims["iss"] == "pricing-reader@opsflow-test.iam.gserviceaccount.com"
    assert claims["aud"] == "https://oauth2.googleapis.com/token"  # google-auth's fixed audience
    assert "cloud-platform" in claims["scope"]
    assert gcp_server.rab_lookups <= 1  # google-auth's background lookup stayed on loopback
    sku_calls = [r.path for r in gcp_server.requests if "/skus" in r.path]
    assert len(sku_calls) == 4  # 18 SKUs, 5 per page
    assert "pageToken=5" in sku_calls[1]


def test_fetch_gcp_prices_retries_503(harness, gcp_server, gcp_key, fast_retries):
    gcp_server.fail(503, google_error_body(503, "UNAVAILABLE", "try again"), times=1)
    state = gcp_mod.fetch_gcp_prices(
        gcp_block(gcp_server, gcp_key),
        small_catalogs()["gcp"].instances,
        ["us-central1"],
        api_endpoint=gcp_server.url,
        return_state=True,
    )
    assert state.is_completed()
    assert state.result()["n2-standard-4"]["us-central1"].on_demand == N2_US
    assert task_run_count(state) == 2


def test_fetch_gcp_prices_does_not_retry_403(harness, gcp_server, gcp_key, fast_retries):
    gcp_server.fail(
        403, google_error_body(403, "PERMISSION_DENIED", "billing API disabled"), times=None
    )
    state = gcp_mod.fetch_gcp_prices(
        gcp_block(gcp_server, gcp_key),
        small_catalogs()["gcp"].instances,
        ["us-central1"],
        api_endpoint=gcp_server.url,
        return_state=True,
    )
    assert state.is_failed()
    error = state.result(raise_on_failure=False)
    assert isinstance(error, gx.Forbidden) and error.code == 403  # REST maps by HTTP status
    assert task_run_count(state) == 1
    assert gcp_server.faults_served == 1


# --------------------------------------------------------------------------- flow


@pytest.fixture
def blocks(harness, aws_server, gcp_server, gcp_key):
    """Saved credential blocks pointing at the local servers; returns their names."""
    aws_block(aws_server).save("test-aws-pricing", overwrite=True)
    gcp_block(gcp_server, gcp_key).save("test-gcp-billing", overwrite=True)
    return {
        "aws_credentials_block": "test-aws-pricing",
        "gcp_credentials_block": "test-gcp-billing",
    }


def run_flow(blocks, azure_server, gcp_server, **params):
    from flows.refresh_price_catalog import CatalogRefreshResult, refresh_price_catalog

    state = refresh_price_catalog(
        **blocks,
        azure_endpoint=azure_server.url,
        gcp_billing_endpoint=gcp_server.url,
        return_state=True,
        **params,
    )
    if state.is_failed():
        return state, None
    result = state.result()
    if isinstance(result, dict):
        result = CatalogRefreshResult.model_validate(result)
    return state, result


def read_artifacts(flow_run_id):
    """The flow run's artifacts, read back from the Prefect API.

    With fastapi 0.154 the server rejects the explicit nulls that
    ``PrefectClient.read_artifacts`` sends for unused filters (HTTP 422), and an empty
    task-run filter drops flow-level artifacts, so post the filter body directly.
    """
    from prefect import get_client
    from prefect.client.schemas.objects import Artifact

    with get_client(sync_client=True) as client:
        response = client.request(
            "POST",
            "/artifacts/filter",
            json={"artifacts": {"flow_run_id": {"any_": [str(flow_run_id)]}}, "limit": 50},
        )
        return [Artifact.model_validate(a) for a in response.json()]


def test_flow_refreshes_all_providers_into_a_new_current_version(
    home, blocks, aws_server, azure_server, gcp_server
):
    before = load_catalog()
    state, result = run_flow(blocks, azure_server, gcp_server)
    assert state.is_completed()
    assert [p.status for p in result.providers] == ["refreshed"] * 3
    assert result.previous_version == before.version
    assert result.version and result.version != before.version

    current = load_catalog()
    assert current.version == result.version == current_version_dir().name
    aws, gcp, azure = (current.providers[p] for p in ("aws", "gcp", "azure"))
    price = {
        (p, i.name, r): rp
        for p, c in current.providers.items()
        for i in c.instances
        for r, rp in i.prices.items()
    }
    assert price[("aws", "m5.large", "us-east-1")] == RegionPrice(on_demand=0.096, spot=MOTO_SPOT)
    assert price[("aws", "c5.xlarge", "eu-west-1")] == RegionPrice(
        on_demand=0.18, spot=MOTO_SPOT
    )  # od kept
    assert price[("gcp", "n2-standard-4", "us-central1")] == RegionPrice(
        on_demand=N2_US, spot=N2_US_SPOT
    )
    assert price[("gcp", "n1-standard-4+1xnvidia-tesla-t4", "europe-west4")] == RegionPrice(
        on_demand=0.55, spot=0.16
    )  # not returned: kept
    assert price[("azure", "Standard_D2s_v5", "eastus")] == RegionPrice(
        on_demand=0.096, spot=0.0096
    )
    assert price[("azure", "Standard_NC4as_T4_v3", "westeurope")] == RegionPrice(
        on_demand=0.55, spot=0.06
    )
    for cat, src in (
        (aws, "AWS Price List API"),
        (gcp, "GCP Cloud Billing"),
        (azure, "Azure Retail"),
    ):
        assert cat.as_of == TODAY and cat.source.startswith(src)

    by = {p.provider: p for p in result.providers}
    assert (by["aws"].prices_updated, by["aws"].prices_missing) == (7, 1)
    assert by["aws"].missing == ["c5.xlarge/eu-west-1/on_demand"]
    assert (by["gcp"].prices_updated, by["gcp"].prices_missing) == (6, 2)
    assert (by["azure"].prices_updated, by["azure"].prices_missing) == (6, 2)
    assert result.prices_updated == 19
    assert result.biggest_changes[0].provider == "aws" and result.biggest_changes[0].price == "spot"

    artifacts = {a.key: a for a in read_artifacts(state.state_details.flow_run_id)}
    table = json.loads(artifacts["refresh-price-catalog-changes"].data)
    assert table and {"provider", "instance_type", "region", "old_usd_hour", "new_usd_hour"} <= set(
        table[0]
    )
    summary = artifacts["refresh-price-catalog-summary"].data
    assert result.version in summary and "| azure | refreshed |" in summary


def test_flow_partial_result_when_one_provider_stays_down(
    home, blocks, aws_server, azure_server, gcp_server, fast_retries
):
    azure_server.fail(500, {"error": {"code": "InternalServerError"}}, times=None)
    before = load_catalog()
    state, result = run_flow(blocks, azure_server, gcp_server)
    assert state.is_completed()
    by = {p.provider: p for p in result.providers}
    assert by["azure"].status == "failed"
    url = f"{azure_server.url}/api/retail/prices"
    assert by["azure"].reason == f"HTTPStatusError: HTTP 500 Internal Server Error from GET {url}"
    assert "\n" not in by["azure"].reason
    assert len(azure_server.requests) == 1 + 3  # first try + 3 retries
    assert by["aws"].status == by["gcp"].status == "refreshed"
    assert result.version is not None

    current = load_catalog()
    assert current.version == result.version
    assert current.providers["azure"] == before.providers["azure"]  # copied over untouched
    assert by["azure"].as_of == OLD
    assert current.providers["aws"].as_of == TODAY


def test_flow_writes_nothing_when_no_provider_refreshed(
    home, blocks, aws_server, azure_server, gcp_server, fast_retries
):
    azure_server.fail(500, {"error": {"code": "InternalServerError"}}, times=None)
    before_versions, before = versions_on_disk(), load_catalog().version
    state, result = run_flow(blocks, azure_server, gcp_server, providers=["azure"])
    assert state.is_completed()
    assert result.version is None
    assert [p.status for p in result.providers] == ["skipped", "skipped", "failed"]
    assert versions_on_disk() == before_versions and load_catalog().version == before


def test_flow_limits_to_requested_regions(home, blocks, aws_server, azure_server, gcp_server):
    state, result = run_flow(blocks, azure_server, gcp_server, regions=["us-east-1", "eastus"])
    by = {p.provider: p for p in result.providers}
    assert by["aws"].regions == ["us-east-1"] and by["azure"].regions == ["eastus"]
    assert by["gcp"].status == "skipped"
    assert not [r for r in gcp_server.requests if "/skus" in r.path]
    assert {c["Filters"][1]["Value"] for c in aws_server.get_products_calls} == {"us-east-1"}
    eu = load_catalog().providers["aws"].instances[0].prices["eu-west-1"]
    assert eu == RegionPrice(on_demand=0.1, spot=0.045)  # outside the scope: untouched


def test_flow_rejects_bad_input_before_any_outside_call(
    home, blocks, aws_server, azure_server, gcp_server
):
    state, _ = run_flow(blocks, azure_server, gcp_server, regions=["mars-north-1"])
    assert state.is_failed()
    with pytest.raises(ValueError, match="regions"):
        state.result()
    bad = {**blocks, "aws_credentials_block": "no-such-block"}
    state, _ = run_flow(bad, azure_server, gcp_server)
    with pytest.raises(ValueError, match="aws_credentials_block"):
        state.result()
    assert aws_server.requests == [] and azure_server.requests == [] and gcp_server.requests == []


@pytest.mark.parametrize("crash_in", ["os.rename", "os.fsync"])
def test_flow_write_failure_keeps_previous_version(
    home, blocks, aws_server, azure_server, gcp_server, monkeypatch, crash_in
):
    before, before_versions = load_catalog(), versions_on_disk()
    real = getattr(os, crash_in.split(".")[1])
    calls = {"n": 0}

    def crash(*args, **kwargs):
        target = str(args[0])
        if crash_in == "os.fsync":
            target = os.readlink(f"/proc/self/fd/{args[0]}")
        if "/price_catalog/versions/." not in target:  # the version being written
            return real(*args, **kwargs)  # someone else's call
        calls["n"] += 1
        if crash_in == "os.fsync" and calls["n"] < 2:  # the first provider file is written
            return real(*args, **kwargs)
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, crash_in.split(".")[1], crash)
    state, _ = run_flow(blocks, azure_server, gcp_server)
    monkeypatch.setattr(os, crash_in.split(".")[1], real)
    assert state.is_failed() and calls["n"] >= 1
    with pytest.raises(OSError, match="No space left"):
        state.result()
    assert load_catalog() == before  # CURRENT still names the previous, complete version
    assert versions_on_disk() == before_versions  # no half-written or temporary directory


def test_flow_never_leaks_secrets(
    home, blocks, aws_server, azure_server, gcp_server, gcp_key, fast_retries, caplog, capfd
):
    import logging

    from prefect import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId
    from prefect.logging.handlers import APILogHandler
    from prefect.settings import PREFECT_LOCAL_STORAGE_PATH

    aws_canary = "CANARY-aws-Zx81Qv0mTq4Ls9Jp2Rr7"
    gcp_canary = "CANARY-gcpkeyid-4f9c1e2b7a"
    aws_block(aws_server, secret=aws_canary).save("canary-aws", overwrite=True)
    gcp_block(gcp_server, gcp_key, key_id=gcp_canary).save("canary-gcp", overwrite=True)
    azure_server.fail(
        500, {"error": {"code": "InternalServerError"}}, times=None
    )  # a failure path too

    caplog.set_level(logging.DEBUG)
    names = {"aws_credentials_block": "canary-aws", "gcp_credentials_block": "canary-gcp"}
    state, result = run_flow(names, azure_server, gcp_server)
    assert state.is_completed() and result.provider("aws").status == "refreshed"
    assert result.provider("gcp").status == "refreshed"
    # the canaries were really in play: the key id signed the JWT the token server saw
    assert gcp_server.jwt_headers[-1]["kid"] == gcp_canary

    APILogHandler().flush()  # send queued logs to the API before reading them
    flow_run_id = state.state_details.flow_run_id
    with get_client(sync_client=True) as client:
        api_logs = client.read_logs(
            LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id])), limit=200, offset=0
        )
    assert api_logs  # the flow did log
    artifacts = read_artifacts(flow_run_id)
    assert {a.key for a in artifacts} >= {
        "refresh-price-catalog-changes",
        "refresh-price-catalog-summary",
    }
    out, err = capfd.readouterr()
    persisted = b"".join(
        p.read_bytes() for p in Path(PREFECT_LOCAL_STORAGE_PATH.value()).rglob("*") if p.is_file()
    )
    catalog_files = "".join(p.read_text() for p in home.rglob("*.json"))
    haystacks = {
        "result": result.model_dump_json(),
        "artifacts": json.dumps([a.model_dump(mode="json") for a in artifacts]),
        "api logs": "\n".join(log.message for log in api_logs),
        "caplog": caplog.text + "\n".join(str(r.args) for r in caplog.records),
        "stdout/stderr": out + err,
        "persisted results": persisted.decode("utf-8", "replace"),
        "catalog files": catalog_files,
    }
    # each place was really captured (a leak would have been seen)
    assert "AWS Price List" in haystacks["api logs"] and "AWS Price List" in haystacks["caplog"]
    assert "Retry 3/3" in haystacks["caplog"]  # the failure path was logged too
    assert result.version in haystacks["persisted results"]
    assert "refreshed" in haystacks["artifacts"]
    for where, text in haystacks.items():
        assert aws_canary not in text, where
        assert gcp_canary not in text, where
