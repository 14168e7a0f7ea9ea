"""Azure Cost Management and GCP billing-export collectors: mapping to FOCUS 1.2 on the
documented shapes, and the tasks end to end with the real SDKs against local servers.

Servers (127.0.0.1): an HTTPS Azure Resource Manager + Entra ID token endpoint
(tests/servers/azure_arm.py, certificate from a trustme CA), a BigQuery REST API
(tests/servers/bigquery.py) and the Google OAuth token endpoint of
tests/servers/gcp_catalog.py.
"""

from __future__ import annotations

import json
import logging
import random
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from azure.core.exceptions import ClientAuthenticationError, HttpResponseError
from google.api_core import exceptions as gx

from blocks.azure import AzureCredentials
from tasks.common.retry import RETRIES, is_transient
from tasks.costs import azure as az
from tasks.costs import gcp as gc
from tasks.costs.focus_schema import REQUIRED, SCHEMA, SOURCE_COLUMN, provider_key
from tests.conftest import task_run_count
from tests.retries import assert_backoff_with_jitter, shrink_waits
from tests.servers import gcp_billing_export as export_schema
from tests.servers.azure_arm import AzureArmServer, arm_error
from tests.servers.bigquery import BigQueryServer, google_error
from tests.servers.gcp_catalog import GcpCatalogServer, service_account_info

pytestmark = pytest.mark.filterwarnings("ignore:Logger 'prefect.task_runs' attempted:UserWarning")

SUB = "6f1c2b3a-0d4e-4f5a-9b8c-7d6e5f4a3b2c"
SCOPE = f"/subscriptions/{SUB}"
RG_SCOPE = f"{SCOPE}/resourceGroups/web-rg"
TENANT, CLIENT = "72f988bf-86f1-41af-91ab-2d7cd011db47", "0a1b2c3d-4e5f-6789-abcd-ef0123456789"
SECRET = "local-test-secret-value"
TABLE = "acme-billing.billing_export.gcp_billing_export_v1_01A2B3_C4D5E6_F7A8B9"
DETAILED = "acme-billing.billing_export.gcp_billing_export_resource_v1_01A2B3_C4D5E6_F7A8B9"


def cost_row(day, service, cost, *, charge="Usage", pricing="OnDemand", loc="eastus", **extra):
    return {
        "UsageDate": int(day.strftime("%Y%m%d")),
        "ServiceName": service,
        "ResourceLocation": loc,
        "ChargeType": charge,
        "PricingModel": pricing,
        "Currency": "EUR",
        "Cost": cost,
        **extra,
    }


D1, D2, D3 = date(2026, 10, 30), date(2026, 10, 31), date(2026, 11, 1)
ACTUAL = [
    cost_row(D1, "Virtual Machines", 12.5, TagKey="team", TagValue="web"),
    cost_row(D1, "Storage", 3.0, TagKey="team", TagValue="data"),
    # a one-year reservation bought on D2: invoiced that day, amortized over its term
    cost_row(D2, "Virtual Machines", 876.0, charge="Purchase", pricing="Reservation"),
    # usage the reservation covers: 0 invoiced
    cost_row(D2, "Virtual Machines", 0.0, pricing="Reservation", TagKey="team", TagValue="web"),
    cost_row(D3, "Bandwidth", 1.25, loc="Unassigned"),
    cost_row(D3, "Mystery Service", 0.5),
]
AMORTIZED = [
    cost_row(D1, "Virtual Machines", 12.5, TagKey="team", TagValue="web"),
    cost_row(D1, "Storage", 3.0, TagKey="team", TagValue="data"),
    cost_row(D2, "Virtual Machines", 2.4, pricing="Reservation", TagKey="team", TagValue="web"),
    cost_row(D3, "Bandwidth", 1.25, loc="Unassigned"),
    cost_row(D3, "Mystery Service", 0.5),
]


# ----------------------------------------------------------------------- fixtures


@pytest.fixture
def azure_server(ca, trust_local_ca):
    rows = {"ActualCost": ACTUAL, "AmortizedCost": AMORTIZED}
    with AzureArmServer(
        ca, tenant_id=TENANT, client_id=CLIENT, client_secret=SECRET, cost_rows=rows, page_size=2
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


def gcp_block(oauth: GcpCatalogServer, key, key_id: str = "test-key-id"):
    from prefect_gcp import GcpCredentials

    return GcpCredentials(service_account_info=service_account_info(key, oauth.token_uri, key_id))


def bq_row(day, service, cost, credits=0.0, **extra):
    row = {
        "usage_date": day,
        "billing_account_id": "01A2B3-C4D5E6-F7A8B9",
        "project_id": "shop-prod-42",
        "project_name": "Shop production",
        "service_id": "6F81-5844-456A",
        "service_name": service,
        "sku_id": "CP-N2-CORE",
        "sku_description": "N2 Instance Core running in Americas",
        "region": "us-central1",
        "invoice_month": day.strftime("%Y%m"),
        "cost_type": "regular",
        "currency": "USD",
        "labels_json": json.dumps([{"key": "team", "value": "shop"}]),
        "resource_id": None,
        "resource_name": None,
        "cost": cost,
        "credits": credits,
        "usage_amount": 86400.0,
        "usage_unit": "seconds",
    }
    return {**row, **extra}


BQ_ROWS = [
    bq_row(D1, "Compute Engine", 40.0, -10.0),
    bq_row(D1, "Cloud Storage", 2.5, sku_id="ST-STD", usage_unit="byte-seconds"),
    bq_row(D2, "Compute Engine", 40.0, -10.0),
    bq_row(D2, "BigQuery", 7.0, invoice_month="202611"),
    bq_row(D3, "Compute Engine", 41.0, -10.5),
]


def export_rows(row: dict, *, detailed: bool = False) -> list[dict]:
    """Two hourly billing-export rows (the documented nested form) that the cost query
    must sum back into the result row ``row`` (a ``bq_row``): cost, usage and credits
    split in halves, the second half's credits as two entries."""
    day = row["usage_date"]
    out = []
    for hour, credits in ((1, [row["credits"] / 2]), (13, [row["credits"] / 4] * 2)):
        start = datetime(day.year, day.month, day.day, hour, tzinfo=UTC)
        raw = {
            "billing_account_id": row["billing_account_id"],
            "service": {"id": row["service_id"], "description": row["service_name"]},
            "sku": {"id": row["sku_id"], "description": row["sku_description"]},
            "usage_start_time": start,
            "usage_end_time": start + timedelta(hours=1),
            "project": {
                "id": row["project_id"],
                "number": "874100234567",
                "name": row["project_name"],
                "labels": [{"key": "env", "value": "prod"}],
                "ancestry_numbers": "/123456789/874100234567/",
                "ancestors": [{"resource_name": "organizations/123456789", "display_name": "acme"}],
            },
            "labels": json.loads(row["labels_json"]),
            "system_labels": [{"key": "compute.googleapis.com/machine_spec", "value": "n2-4"}],
            "location": {"location": row["region"], "country": "US", "region": row["region"]},
            "export_time": start + timedelta(hours=5),
            "cost": row["cost"] / 2,
            "currency": row["currency"],
            "currency_conversion_rate": 1.0,
            "usage": {
                "amount": row["usage_amount"] / 2 if row["usage_amount"] is not None else None,
                "unit": row["usage_unit"],
                "amount_in_pricing_units": 12.0,
                "pricing_unit": "hour",
            },
            "credits": [
                {"name": "Sustained use discount", "amount": c, "type": "SUSTAINED_USAGE_DISCOUNT"}
                for c in credits
                if c
            ],
            "invoice": {"month": row["invoice_month"], "publisher_type": "GOOGLE"},
            "cost_type": row["cost_type"],
            "tags": [{"key": "env", "value": "prod", "inherited": True, "namespace": "123"}],
            "cost_at_list": row["cost"] / 2,
            "transaction_type": "GOOGLE",
        }
        if detailed:
            raw["resource"] = {"name": row["resource_name"], "global_name": row["resource_id"]}
            raw["price"] = {"effective_price": Decimal("0.031611"), "unit": "hour"}
        out.append(raw)
    return out


# what the cost query must return for [D1, D3 + 1 day): BQ_ROWS; and rows around it
BQ_START, BQ_END = D1, D3 + timedelta(days=1)
SPAN = (BQ_START, BQ_END)
OUTSIDE = [bq_row(D1 - timedelta(days=1), "Compute Engine", 99.0), bq_row(BQ_END, "BigQuery", 99.0)]
DETAILED_ROWS = [
    bq_row(D1, "Compute Engine", 30.0, resource_name="web-1", resource_id="//compute/x/web-1"),
    bq_row(D1, "Compute Engine", 10.0, resource_name="web-2", resource_id="//compute/x/web-2"),
]


@pytest.fixture
def bq_server(oauth):
    tables = {
        TABLE: (export_schema.STANDARD, [r for b in BQ_ROWS + OUTSIDE for r in export_rows(b)]),
        DETAILED: (
            export_schema.DETAILED,
            [r for b in DETAILED_ROWS for r in export_rows(b, detailed=True)],
        ),
    }
    with BigQueryServer(oauth.tokens, tables, page_size=2) as server:
        yield server


@pytest.fixture
def fast_retries(monkeypatch):
    """Keep the retry count and condition, drop the waiting."""
    for t in (az.fetch_azure_costs, gc.fetch_gcp_costs):
        monkeypatch.setattr(t, "retry_delay_seconds", 0)


def jobs_query_calls(server: BigQueryServer) -> list:
    return [
        r
        for r in server.requests
        if r.method == "POST" and r.path.split("?")[0].endswith("/queries")
    ]


def assert_focus(table: pa.Table) -> None:
    assert table.schema == SCHEMA  # same names, order, types and nullability
    for name in REQUIRED:
        assert table.column(name).null_count == 0, name


# ------------------------------------------------------------------- Azure: pure


@pytest.mark.parametrize(
    ("scope", "expected"),
    [
        (SCOPE, (SUB, None)),
        (RG_SCOPE, (SUB, "web-rg")),
        (f"/subscriptions/{SUB.upper()}/resourcegroups/My_RG(1).x", (SUB, "My_RG(1).x")),
    ],
)
def test_parse_scope_accepts_subscription_and_resource_group(scope, expected):
    assert az.parse_scope(scope) == expected


@pytest.mark.parametrize(
    "scope",
    [
        f"subscriptions/{SUB}",  # no leading slash
        f"{SCOPE}/",
        "/subscriptions/not-a-guid",
        f"{SCOPE}/resourceGroups/",
        f"{SCOPE}/resourceGroups/ends-with-dot.",
        f"{SCOPE}/resourceGroups/a/b",
        "/providers/Microsoft.Billing/billingAccounts/123",
        "",
    ],
)
def test_parse_scope_rejects_other_strings_naming_the_parameter(scope):
    with pytest.raises(ValueError, match=r"^scope: .*'/subscriptions/<subscription id>'"):
        az.parse_scope(scope)


def test_query_definition_custom_daily_grouped_and_filtered():
    grouping = [("Dimension", "ServiceName"), ("TagKey", "team")]
    where = {"ChargeType": "Usage", "PricingModel": "OnDemand"}
    body = az.query_definition(
        "AmortizedCost", date(2026, 10, 1), date(2026, 11, 1), grouping, where
    )
    assert body["type"] == "AmortizedCost" and body["timeframe"] == "Custom"
    assert body["timePeriod"] == {"from": "2026-10-01T00:00:00Z", "to": "2026-10-31T23:59:59Z"}
    assert body["dataset"]["granularity"] == "Daily"
    assert body["dataset"]["aggregation"] == {"totalCost": {"name": "Cost", "function": "Sum"}}
    assert body["dataset"]["grouping"] == [
        {"type": "Dimension", "name": "ServiceName"},
        {"type": "TagKey", "name": "team"},
    ]
    # the documented QueryFilter: "and" of 2 or more, each a dimension "In" comparison
    assert body["dataset"]["filter"] == {
        "and": [
            {"dimensions": {"name": "ChargeType", "operator": "In", "values": ["Usage"]}},
            {"dimensions": {"name": "PricingModel", "operator": "In", "values": ["OnDemand"]}},
        ]
    }
    one = az.query_definition("ActualCost", D1, D2, grouping, {"ChargeType": "Usage"})
    assert one["dataset"]["filter"] == {
        "dimensions": {"name": "ChargeType", "operator": "In", "values": ["Usage"]}
    }
    assert "filter" not in az.query_definition("ActualCost", D1, D2, grouping)["dataset"]
    with pytest.raises(ValueError, match="^grouping: at most 2"):
        az.query_definition("ActualCost", D1, D2, [("Dimension", d) for d in az.DIMENSIONS])


def _page(rows, columns=("Cost", "UsageDate", "ServiceName", "ChargeType", "Currency")):
    """A QueryResult page in the documented JSON shape."""
    return {
        "id": "x",
        "properties": {
            "nextLink": None,
            "columns": [{"name": c, "type": "String"} for c in columns],
            "rows": [[r.get(c) for c in columns] for r in rows],
        },
    }


def test_join_actual_and_amortized_on_the_group():
    joined = az.join_cost_types(
        {"ActualCost": [_page(ACTUAL[:2]), _page(ACTUAL[2:])], "AmortizedCost": [_page(AMORTIZED)]}
    )
    by = {(r["UsageDate"], r["ServiceName"], r["ChargeType"]): r for r in joined}
    assert len(joined) == 6  # the D2 covered usage is one group, not one per cost type
    purchase = by[(20261031, "Virtual Machines", "Purchase")]
    assert (purchase["BilledCost"], purchase["EffectiveCost"]) == (876.0, 0.0)
    covered = by[(20261031, "Virtual Machines", "Usage")]
    assert (covered["BilledCost"], covered["EffectiveCost"]) == (0.0, 2.4)
    assert by[(20261030, "Storage", "Usage")]["EffectiveCost"] == 3.0


def test_result_rows_reads_properties_or_the_page():
    page = _page([cost_row(D1, "Storage", 1.0)])
    assert az.result_rows(page) == az.result_rows(page["properties"])
    assert az.result_rows(page)[0]["ServiceName"] == "Storage"
    assert az.result_rows({"properties": {"columns": [], "rows": []}}) == []


def test_focus_record_maps_charge_pricing_service_region_and_periods():
    src = f"azure-cost:{SCOPE}"
    row = {
        **cost_row(D2, "Virtual Machines", 0, charge="Refund", pricing="SavingsPlan"),
        "BilledCost": -50.0,
        "EffectiveCost": 0.0,
        "TagKey": "team",
        "TagValue": "web",
    }
    rec = az.focus_record(row, SUB, src)
    assert rec["ChargeCategory"] == "Purchase" and rec["ChargeClass"] == "Correction"
    assert rec["PricingCategory"] == "Committed" and rec["ServiceCategory"] == "Compute"
    assert rec["ListCost"] == rec["ContractedCost"] == rec["BilledCost"] == -50.0
    assert rec["ChargePeriodStart"] == datetime(2026, 10, 31, tzinfo=UTC)
    assert rec["ChargePeriodEnd"] == datetime(2026, 11, 1, tzinfo=UTC)
    assert rec["BillingPeriodStart"] == datetime(2026, 10, 1, tzinfo=UTC)
    assert rec["BillingPeriodEnd"] == datetime(2026, 11, 1, tzinfo=UTC)
    assert rec["BillingAccountId"] == rec["SubAccountId"] == SUB
    assert rec["Tags"] == {"team": "web"} and rec["BillingCurrency"] == "EUR"
    assert rec["ProviderName"] == rec["PublisherName"] == rec["InvoiceIssuerName"] == "Microsoft"
    assert provider_key(rec["ProviderName"]) == "azure"
    assert rec[SOURCE_COLUMN] == src

    def one(**kw):
        return az.focus_record({**row, **kw}, SUB, src)

    assert one(ChargeType="UnusedReservation")["ChargeCategory"] == "Usage"
    assert one(ChargeType="RoundingAdjustment")["ChargeCategory"] == "Adjustment"
    assert one(PricingModel="Spot")["PricingCategory"] == "Dynamic"
    assert one(PricingModel="OnDemand")["PricingCategory"] == "Standard"
    assert one(ServiceName="Brand New Thing")["ServiceCategory"] == "Other"
    unassigned = one(ResourceLocation="Unassigned")
    assert unassigned["RegionId"] is None and unassigned["RegionName"] is None
    assert one(ResourceLocation="WestEurope")["RegionId"] == "westeurope"
    display = one(ResourceLocation="EU West")
    assert (display["RegionId"], display["RegionName"]) == (None, "EU West")
    assert one(TagValue="")["Tags"] == {}
    # Monthly/ISO forms of the date column
    assert one(UsageDate="2026-10-31T00:00:00")["ChargePeriodStart"].day == 31
    with pytest.raises(ValueError, match="Currency"):
        one(Currency=None)


def test_join_accepts_the_other_documented_cost_column_names():
    page = _page(
        [{"PreTaxCost": 4.0, "UsageDate": 20261030, "ServiceName": "Storage", "Currency": "USD"}],
        columns=("PreTaxCost", "UsageDate", "ServiceName", "Currency"),
    )
    (row,) = az.join_cost_types({"ActualCost": [page], "AmortizedCost": [page]})
    assert row["BilledCost"] == row["EffectiveCost"] == 4.0


def test_normalize_azure_costs_conforms_exactly_to_the_focus_schema():
    table = az.normalize_azure_costs(
        {"ActualCost": [_page(ACTUAL)], "AmortizedCost": [_page(AMORTIZED)]}, RG_SCOPE
    )
    assert_focus(table)
    assert table.num_rows == 6
    assert set(table.column(SOURCE_COLUMN).to_pylist()) == {f"azure-cost:{RG_SCOPE}"}
    assert pc.sum(table.column("BilledCost")).as_py() == pytest.approx(12.5 + 3 + 876 + 1.25 + 0.5)
    empty = az.normalize_azure_costs({"ActualCost": [], "AmortizedCost": []}, SCOPE)
    assert empty.schema == SCHEMA and empty.num_rows == 0


def test_azure_retry_classification():
    def http_error(status):
        error = HttpResponseError(message=f"HTTP {status}")
        error.status_code = status
        return error

    from azure.core.exceptions import ServiceRequestError, ServiceResponseError
    from azure.identity import CredentialUnavailableError

    assert is_transient(http_error(429)) and is_transient(http_error(503))
    assert not is_transient(http_error(400)) and not is_transient(http_error(403))
    assert not is_transient(ClientAuthenticationError("bad secret"))
    assert not is_transient(CredentialUnavailableError("no identity"))
    assert is_transient(ServiceRequestError("refused"))
    assert is_transient(ServiceResponseError("reset"))
    assert is_transient(gx.ServiceUnavailable("down"))  # falls back to tasks.common.retry
    assert not is_transient(ValueError("bad"))


# --------------------------------------------------------------- Azure: end to end


def test_fetch_azure_costs_queries_both_cost_types_and_follows_next_link(harness, azure_server):
    table = az.fetch_azure_costs(
        azure_block(azure_server), RG_SCOPE, date(2026, 10, 30), date(2026, 11, 2), tag_key="team"
    )
    assert_focus(table)
    # the request bodies: at most 2 groupings each; per cost type first the
    # (ChargeType, PricingModel) split, then one query per pair, then (with a tag) one per
    # (pair, location); each nextLink gets the same body again
    bodies = [b for _p, b in azure_server.queries]
    paths = [p for p, _b in azure_server.queries]
    assert all(len(b["dataset"]["grouping"]) <= 2 for b in bodies)
    n_actual = sum(b["type"] == "ActualCost" for b in bodies)
    assert [b["type"] for b in bodies] == ["ActualCost"] * n_actual + ["AmortizedCost"] * (
        len(bodies) - n_actual
    )
    firsts = [b for p, b in azure_server.queries if "$skiptoken" not in p]
    for cost_type in ("ActualCost", "AmortizedCost"):
        mine = [b for b in firsts if b["type"] == cost_type]
        assert mine[0]["dataset"]["grouping"] == [
            {"type": "Dimension", "name": "ChargeType"},
            {"type": "Dimension", "name": "PricingModel"},
        ]
        assert "filter" not in mine[0]["dataset"]
        assert all("filter" in b["dataset"] for b in mine[1:])
    assert sum(b["type"] == "ActualCost" for b in firsts) == 1 + 3 + 4  # 3 pairs, 4 triples
    assert sum(b["type"] == "AmortizedCost" for b in firsts) == 1 + 2 + 3
    for body in bodies:
        assert body["timeframe"] == "Custom"
        assert body["timePeriod"] == {"from": "2026-10-30T00:00:00Z", "to": "2026-11-01T23:59:59Z"}
        assert body["dataset"]["granularity"] == "Daily"
    assert {"type": "TagKey", "name": "team"} in bodies[-1]["dataset"]["grouping"]
    assert all(p.startswith(f"{RG_SCOPE}/providers/Microsoft.CostManagement/query?") for p in paths)
    assert paths[1].endswith("$skiptoken=2") and bodies[1] == bodies[0]  # 4 pair rows, 2 pages
    # the Entra ID client-credentials grant for the Resource Manager scope
    assert azure_server.token_forms[0]["scope"] == f"{azure_server.url}/.default"
    assert azure_server.token_forms[0]["grant_type"] == "client_credentials"
    # the joined rows
    rows = {
        (
            r["ChargePeriodStart"].date(),
            r["ServiceName"],
            r["ChargeCategory"],
            r["PricingCategory"],
        ): r
        for r in table.to_pylist()
    }
    assert len(rows) == table.num_rows == 6
    web = rows[(D1, "Virtual Machines", "Usage", "Standard")]
    assert (web["BilledCost"], web["EffectiveCost"], dict(web["Tags"])) == (
        12.5,
        12.5,
        {"team": "web"},
    )
    purchase = rows[(D2, "Virtual Machines", "Purchase", "Committed")]
    assert (purchase["BilledCost"], purchase["EffectiveCost"]) == (876.0, 0.0)
    covered = rows[(D2, "Virtual Machines", "Usage", "Committed")]
    assert (covered["BilledCost"], covered["EffectiveCost"]) == (0.0, 2.4)
    assert rows[(D3, "Mystery Service", "Usage", "Standard")]["ServiceCategory"] == "Other"
    assert rows[(D3, "Bandwidth", "Usage", "Standard")]["RegionId"] is None
    assert max(table.column("BillingPeriodStart").to_pylist()) == datetime(2026, 11, 1, tzinfo=UTC)
    assert pc.sum(table.column("EffectiveCost")).as_py() == pytest.approx(12.5 + 3 + 2.4 + 1.75)


def test_fetch_azure_costs_subscription_scope_path(harness, azure_server):
    az.fetch_azure_costs(azure_block(azure_server), SCOPE, D1, D2)
    path, body = azure_server.queries[0]
    assert path.startswith(f"{SCOPE}/providers/Microsoft.CostManagement/query?api-version=")
    assert body["timePeriod"]["to"] == "2026-10-30T23:59:59Z"  # end is exclusive
    assert all(g["type"] == "Dimension" for g in body["dataset"]["grouping"])


def test_fetch_azure_costs_retries_429_once_at_the_task_level(harness, azure_server, fast_retries):
    azure_server.fail(
        429, arm_error("TooManyRequests", "Too many requests"), headers={"Retry-After": "1"}
    )
    state = az.fetch_azure_costs(azure_block(azure_server), SCOPE, D1, D2, return_state=True)
    assert state.is_completed() and state.result().num_rows > 0
    assert azure_server.faults_served == 1
    assert task_run_count(state) == 2  # the Prefect retry...
    # ...and no SDK retry: first attempt = 1 request (429); second = 2 + 2 queries
    assert len(azure_server.api_requests()) == 1 + 4


def test_fetch_azure_costs_retries_503_then_fails_after_the_last_retry(
    harness, azure_server, fast_retries
):
    azure_server.fail(503, arm_error("ServiceUnavailable", "try later"), times=None)
    state = az.fetch_azure_costs(azure_block(azure_server), SCOPE, D1, D2, return_state=True)
    assert state.is_failed()
    assert isinstance(state.result(raise_on_failure=False), HttpResponseError)
    assert task_run_count(state) == RETRIES + 1
    assert len(azure_server.api_requests()) == RETRIES + 1  # one request per attempt


@pytest.mark.parametrize(
    ("status", "code"), [(401, "InvalidAuthenticationToken"), (403, "AuthorizationFailed")]
)
def test_fetch_azure_costs_does_not_retry_auth_errors(
    harness, azure_server, fast_retries, status, code
):
    azure_server.fail(status, arm_error(code, "no access to scope"), times=None)
    state = az.fetch_azure_costs(azure_block(azure_server), SCOPE, D1, D2, return_state=True)
    assert state.is_failed()
    error = state.result(raise_on_failure=False)
    assert isinstance(error, HttpResponseError) and error.status_code == status
    assert task_run_count(state) == 1
    assert len(azure_server.api_requests()) == 1


def test_fetch_azure_costs_refuses_a_next_link_to_another_host(ca, trust_local_ca):
    rows = {"ActualCost": ACTUAL, "AmortizedCost": AMORTIZED}
    with AzureArmServer(
        ca,
        tenant_id=TENANT,
        client_id=CLIENT,
        client_secret=SECRET,
        cost_rows=rows,
        page_size=2,
        next_link_base="https://collector.example.net",
    ) as server:
        with pytest.raises(ValueError, match="nextLink points outside"):
            az.fetch_azure_costs.fn(azure_block(server), SCOPE, D1, date(2026, 11, 2))
        assert len(server.queries) == 1  # the bearer token never went to the other host


@pytest.mark.parametrize(
    ("args", "kwargs", "field"),
    [
        ((f"subscriptions/{SUB}", D1, D2), {}, "scope"),
        ((SCOPE, D2, D1), {}, "start"),
        ((SCOPE, D1, D1), {}, "start"),
        ((SCOPE, D1, D2), {"tag_key": "a/b"}, "tag_key"),
    ],
)
def test_fetch_azure_costs_rejects_bad_input_before_any_call(azure_server, args, kwargs, field):
    with pytest.raises(ValueError, match=f"^{field}: "):
        az.fetch_azure_costs.fn(azure_block(azure_server), *args, **kwargs)
    assert azure_server.requests == []


def test_azure_costs_never_leak_the_client_secret(
    harness, azure_server, fast_retries, caplog, capfd
):
    canary = "CANARY-azure-Qm81Zx0vTq4Ls9Jp2Rr7"
    azure_server.client_secret = canary
    caplog.set_level(logging.DEBUG)
    ok = az.fetch_azure_costs(azure_block(azure_server, canary), SCOPE, D1, D2, return_state=True)
    assert ok.is_completed()
    # the canary really was the secret the token endpoint checked
    assert azure_server.token_forms and len(azure_server.queries) == 4
    bad = az.fetch_azure_costs(
        azure_block(azure_server, canary + "-wrong"), SCOPE, D1, D2, return_state=True
    )
    assert bad.is_failed()
    error = bad.result(raise_on_failure=False)
    assert isinstance(error, ClientAuthenticationError) and "AADSTS7000215" in str(error)
    assert task_run_count(bad) == 1  # a wrong secret is not retried
    out, err = capfd.readouterr()
    haystacks = {
        "result": ok.result().to_pandas().to_csv(),
        "exception": f"{error!s} {error!r} {error.message}",
        "logs": caplog.text + "\n".join(str(r.args) for r in caplog.records),
        "stdout/stderr": out + err,
        "block repr": repr(azure_block(azure_server, canary)),
    }
    assert "Azure Cost Management /subscriptions" in caplog.text  # task logs were captured
    assert "AADSTS7000215" in caplog.text  # and so was the failure
    for where, text in haystacks.items():
        assert canary not in text, where


# ------------------------------------------- Azure: the 2-grouping limit (issue 9, item 9)


def generated_costs(seed: int, n: int = 400) -> list[dict]:
    """Cost rows at the finest grain whose dimensions overlap in every way, so that any
    join of 2-dimension marginals would misplace cost."""
    rng = random.Random(seed)
    combos = [
        ("Usage", "OnDemand"),
        ("Usage", "Reservation"),
        ("Usage", "Spot"),
        ("Purchase", "Reservation"),
        ("Refund", "SavingsPlan"),
        ("UnusedReservation", "Reservation"),
    ]
    services = ["Virtual Machines", "Storage", "Bandwidth", "SQL Database", "Key Vault"]
    out = []
    for _ in range(n):
        charge, pricing = rng.choice(combos)
        team = rng.choice(["web", "data", None])
        cost = round(rng.uniform(0, 80), 4) * (-1 if charge == "Refund" else 1)
        tags = {"TagKey": "team", "TagValue": team} if team else {}
        out.append(
            cost_row(
                rng.choice([D1, D2, D3]),
                rng.choice(services),
                cost,
                charge=charge,
                pricing=pricing,
                loc=rng.choice(["eastus", "westeurope", "Unassigned"]),
                **tags,
            )
        )
    return out


GENERATED = {"ActualCost": generated_costs(11), "AmortizedCost": generated_costs(12)}


def _records(table: pa.Table) -> list[tuple]:
    rows = []
    for r in table.to_pylist():
        r["Tags"] = tuple(sorted(dict(r["Tags"] or {}).items()))
        rows.append(tuple((k, round(v, 6) if isinstance(v, float) else v) for k, v in r.items()))
    return sorted(rows, key=repr)


def test_a_query_with_more_than_two_groupings_is_refused_like_the_service(ca, trust_local_ca):
    from azure.mgmt.costmanagement.models import QueryDefinition

    body = az.query_definition("ActualCost", D1, D2, [("Dimension", "ServiceName")])
    body["dataset"]["grouping"] += [{"type": "Dimension", "name": n} for n in az.DIMENSIONS[1:]]
    with AzureArmServer(
        ca, tenant_id=TENANT, client_id=CLIENT, client_secret=SECRET, cost_rows=GENERATED
    ) as server:
        client = azure_block(server).get_cost_management_client()
        with pytest.raises(HttpResponseError) as refused:
            client.query.usage(SCOPE.lstrip("/"), QueryDefinition(body))
    assert refused.value.status_code == 400 and refused.value.error.code == "BadRequest"
    assert "up to 2 group by clauses" in refused.value.error.message


@pytest.mark.parametrize("tag_key", [None, "team"])
def test_split_queries_give_the_rows_and_totals_of_the_single_big_query(
    ca, trust_local_ca, tag_key
):
    """The same data through the one 4-5-grouping query (a server that accepts it) and
    through fetch_azure_costs' 2-grouping queries (a server enforcing the documented
    limit): the same FOCUS records, and totals equal to the data's own sums."""
    end = date(2026, 11, 2)
    grouping = [{"type": "Dimension", "name": n} for n in az.DIMENSIONS]
    if tag_key:
        grouping.append({"type": "TagKey", "name": tag_key})
    kw = dict(tenant_id=TENANT, client_id=CLIENT, client_secret=SECRET, cost_rows=GENERATED)
    with AzureArmServer(ca, max_groupings=5, page_size=50, **kw) as lenient:
        client = azure_block(lenient).get_cost_management_client()
        pages = {}
        for cost_type in az.COST_TYPES:
            body = az.query_definition(cost_type, D1, end, [])
            body["dataset"]["grouping"] = grouping
            pages[cost_type] = list(az._pages(client, SCOPE, body, lenient.url))
        big = az.normalize_azure_costs(pages, SCOPE)
    with AzureArmServer(ca, page_size=50, **kw) as strict:
        split = az.fetch_azure_costs.fn(azure_block(strict), SCOPE, D1, end, tag_key=tag_key)
        sent = [b for _p, b in strict.queries]
    assert all(len(b["dataset"]["grouping"]) <= 2 for b in sent) and len(sent) > 2
    assert_focus(split)
    assert big.num_rows == split.num_rows > 100
    assert _records(split) == _records(big)
    for column, cost_type in (("BilledCost", "ActualCost"), ("EffectiveCost", "AmortizedCost")):
        truth = sum(r["Cost"] for r in GENERATED[cost_type])
        assert pc.sum(split.column(column)).as_py() == pytest.approx(truth, abs=1e-6)
    if tag_key:
        tagged = [r for r in split.to_pylist() if r["Tags"]]
        assert {dict(r["Tags"])["team"] for r in tagged} == {"web", "data"}


def test_a_split_that_does_not_add_up_is_refused():
    """If the filtered rows do not sum to their parent (a value the service cannot filter
    on), the collection fails rather than dropping cost."""
    pair = {"UsageDate": 20261030, "ChargeType": "Usage", "PricingModel": "OnDemand"}
    answers = iter(
        [
            [{**pair, "Currency": "EUR", "Cost": 10.0}],
            [
                {
                    "UsageDate": 20261030,
                    "ServiceName": "Storage",
                    "ResourceLocation": "eastus",
                    "Currency": "EUR",
                    "Cost": 7.5,
                },
            ],
        ]
    )
    with pytest.raises(ValueError, match=r"ChargeType='Usage', PricingModel='OnDemand' sum to 7.5"):
        az.split_query_rows(lambda _body: next(answers), "ActualCost", D1, D2)
    answers = iter(
        [
            [{**pair, "Currency": "EUR", "Cost": 10.0}],
            [
                {
                    "UsageDate": 20261030,
                    "ServiceName": s,
                    "ResourceLocation": "eastus",
                    "Currency": "EUR",
                    "Cost": c,
                }
                for s, c in (("Storage", 7.5), ("Bandwidth", 2.5))
            ],
        ]
    )
    rows = az.split_query_rows(lambda _body: next(answers), "ActualCost", D1, D2)
    assert [(r["ServiceName"], r["ChargeType"], r["Cost"]) for r in rows] == [
        ("Storage", "Usage", 7.5),
        ("Bandwidth", "Usage", 2.5),
    ]


# --------------------------------------------------------------------- GCP: pure


@pytest.mark.parametrize(
    "table",
    [
        "acme-billing.billing_export",  # no table
        "acme-billing.billing_export.t.x",
        "Acme-Billing.billing_export.gcp_billing_export_v1_X",  # upper-case project
        "acme-billing.billing export.gcp_billing_export_v1_X",
        "acme-billing.billing_export.t` WHERE 1=1; --",  # would escape the backticks
        "acme-billing.billing_export.t\nUNION",
        "",
    ],
)
def test_parse_table_rejects_malformed_or_unsafe_names(table):
    with pytest.raises(ValueError, match=r"^table: .*'project.dataset.table'"):
        gc.parse_table(table)


def test_cost_query_standard_and_detailed():
    assert gc.parse_table(TABLE) == (
        "acme-billing",
        "billing_export",
        "gcp_billing_export_v1_01A2B3_C4D5E6_F7A8B9",
    )
    standard, detailed = gc.cost_query(TABLE), gc.cost_query(DETAILED)
    assert f"FROM `{TABLE}`" in standard and f"FROM `{DETAILED}`" in detailed
    for sql in (standard, detailed):
        assert "@start_date" in sql and "@end_date" in sql
        assert "UNNEST(credits)" in sql and "GROUP BY" in sql
    assert "resource.name" not in standard and "resource.name AS resource_name" in detailed
    assert "resource.global_name" in gc.cost_query(TABLE, export="detailed")
    assert "resource.name" not in gc.cost_query(DETAILED, export="standard")


def test_focus_records_split_credits_and_map_the_export():
    src = f"gcp-billing-export:{TABLE}"
    usage, credit = gc.focus_records(bq_row(D1, "Compute Engine", 40.0, -10.0), src)
    assert usage["ChargeCategory"] == "Usage" and credit["ChargeCategory"] == "Credit"
    assert usage["BilledCost"] == usage["EffectiveCost"] == usage["ListCost"] == 40.0
    assert credit["BilledCost"] == credit["EffectiveCost"] == credit["ContractedCost"] == -10.0
    assert usage["ConsumedQuantity"] == 86400.0 and usage["ConsumedUnit"] == "seconds"
    assert credit.get("ConsumedQuantity") is None
    for rec in (usage, credit):
        assert rec["SubAccountId"] == "shop-prod-42" and rec["ServiceCategory"] == "Compute"
        assert rec["BillingAccountId"] == "01A2B3-C4D5E6-F7A8B9"
        assert rec["Tags"] == {"team": "shop"} and rec["RegionId"] == "us-central1"
        assert rec["ChargePeriodStart"] == datetime(2026, 10, 30, tzinfo=UTC)
        assert provider_key(rec["ProviderName"]) == "gcp" and rec[SOURCE_COLUMN] == src
    # usage on the last day of October invoiced in November: the invoice month rules
    (late,) = gc.focus_records(bq_row(D2, "BigQuery", 7.0, invoice_month="202611"), src)
    assert late["BillingPeriodStart"] == datetime(2026, 11, 1, tzinfo=UTC)
    assert late["BillingPeriodEnd"] == datetime(2026, 12, 1, tzinfo=UTC)
    assert late["ChargePeriodStart"] == datetime(2026, 10, 31, tzinfo=UTC)
    assert late["ServiceCategory"] == "Analytics"
    (tax,) = gc.focus_records(bq_row(D1, "Invoice", 3.0, cost_type="tax", usage_amount=None), src)
    assert tax["ChargeCategory"] == "Tax" and tax["ConsumedQuantity"] is None
    assert tax["ServiceCategory"] == "Other"
    (detail,) = gc.focus_records(
        bq_row(D1, "Compute Engine", 1.0, resource_name="web-1", resource_id="//compute/x/web-1"),
        src,
    )
    assert (detail["ResourceName"], detail["ResourceId"]) == ("web-1", "//compute/x/web-1")
    (no_labels,) = gc.focus_records(bq_row(D1, "Cloud Storage", 1.0, labels_json="[]"), src)
    assert no_labels["Tags"] == {}
    with pytest.raises(ValueError, match="currency"):
        gc.focus_records(bq_row(D1, "Cloud Storage", 1.0, currency=None), src)


def test_normalize_gcp_costs_conforms_and_sums_to_the_invoice():
    table = gc.normalize_gcp_costs(BQ_ROWS, TABLE)
    assert_focus(table)
    assert table.num_rows == len(BQ_ROWS) + 3  # three rows carry credits
    invoice = sum(r["cost"] + r["credits"] for r in BQ_ROWS)
    assert pc.sum(table.column("BilledCost")).as_py() == pytest.approx(invoice)
    assert pc.sum(table.column("EffectiveCost")).as_py() == pytest.approx(invoice)
    assert gc.normalize_gcp_costs([], TABLE).schema == SCHEMA


# ------------------------------------------------------------------ GCP: end to end


def test_fetch_gcp_costs_sends_parameterized_sql_and_pages(harness, oauth, gcp_key, bq_server):
    """The query runs on a table built from the documented export schema (DuckDB, see
    tests/servers/bigquery.py): it must read existing columns and fields with the right
    types, filter the dates and sum the hourly rows, credits included, per day and group."""
    table = gc.fetch_gcp_costs(
        gcp_block(oauth, gcp_key),
        TABLE,
        BQ_START,
        BQ_END,
        location="US",
        api_endpoint=bq_server.url,
    )
    assert_focus(table)
    (query,) = bq_server.queries
    assert f"FROM `{TABLE}`" in query["query"]
    assert query["useLegacySql"] is False and query["parameterMode"] == "NAMED"
    params = {
        p["name"]: (p["parameterType"]["type"], p["parameterValue"]["value"])
        for p in query["queryParameters"]
    }
    assert params == {"start_date": ("DATE", "2026-10-30"), "end_date": ("DATE", "2026-11-02")}
    assert query["location"] == "US"
    # 5 result rows (of 14 export rows), 2 per page: inline, then pageToken 2 and 4
    pages = [r.path for r in bq_server.api_requests() if "/queries/" in r.path]
    assert [p for p in pages if "pageToken=" in p] and all("/queries/job_" in p for p in pages)
    assert {t for p in pages for t in ("2", "4") if f"pageToken={t}&" in p} == {"2", "4"}
    # the same FOCUS rows as from the expected sums, row for row
    order = ["ChargePeriodStart", "ServiceName", "SkuId", "ChargeCategory"]
    expected = gc.normalize_gcp_costs(BQ_ROWS, TABLE)
    assert table.num_rows == 5 + 3
    assert (
        table.sort_by([(c, "ascending") for c in order]).to_pylist()
        == expected.sort_by([(c, "ascending") for c in order]).to_pylist()
    )
    invoice = sum(r["cost"] + r["credits"] for r in BQ_ROWS)  # 99.0 rows are outside
    assert pc.sum(table.column("BilledCost")).as_py() == pytest.approx(invoice)
    assert set(table.column(SOURCE_COLUMN).to_pylist()) == {f"gcp-billing-export:{TABLE}"}
    # the service-account JWT grant went to the local token endpoint
    assert oauth.jwt_claims[0]["iss"].endswith("iam.gserviceaccount.com")


def test_fetch_gcp_costs_uses_the_detailed_query_for_resource_tables(
    harness, oauth, gcp_key, bq_server
):
    table = gc.fetch_gcp_costs(
        gcp_block(oauth, gcp_key), DETAILED, D1, D2, api_endpoint=bq_server.url
    )
    usage = sorted(
        (r["ResourceId"], r["ResourceName"], r["BilledCost"])
        for r in table.to_pylist()
        if r["ChargeCategory"] == "Usage"
    )
    assert usage == [("//compute/x/web-1", "web-1", 30.0), ("//compute/x/web-2", "web-2", 10.0)]


@pytest.mark.parametrize(
    ("sql", "status", "says"),
    [
        (f"SELECT cost_at_lst FROM `{TABLE}`", 400, "cost_at_lst"),  # no such column
        (f"SELECT invoice.mnth FROM `{TABLE}`", 400, "mnth"),  # no such field
        (f"SELECT resource.name FROM `{TABLE}`", 400, "resource"),  # detailed export only
        (f"SELECT SUM(currency) FROM `{TABLE}`", 400, "sum"),  # STRING is not summed
        (f"SELECT c.amt FROM `{TABLE}`, UNNEST(credits) AS c", 400, "amt"),
        (
            "SELECT cost FROM `acme-billing.billing_export.gcp_billing_export_v1_X`",
            404,
            "Not found",
        ),
    ],
)
def test_the_bigquery_stand_in_refuses_what_the_export_does_not_have(
    oauth, gcp_key, bq_server, sql, status, says
):
    from tasks.clouds.gcp import bigquery_client

    client = bigquery_client(gcp_block(oauth, gcp_key), "acme-billing", bq_server.url)
    with pytest.raises(gx.GoogleAPICallError) as info:
        client.query_and_wait(sql, retry=None, job_retry=None)
    assert info.value.code == status and says.lower() in str(info.value).lower()
    # while the query it is given runs, on both tables
    assert bq_server.run_sql(gc.cost_query(DETAILED), {"start_date": D1, "end_date": D2})[1]


def test_a_detailed_query_on_a_standard_table_is_refused(oauth, gcp_key, bq_server):
    with pytest.raises(gx.BadRequest, match="resource"):
        gc.fetch_gcp_costs.fn(
            gcp_block(oauth, gcp_key), TABLE, D1, D2, export="detailed", api_endpoint=bq_server.url
        )


@pytest.mark.parametrize(("status", "reason"), [(503, "backendError"), (429, "rateLimitExceeded")])
def test_fetch_gcp_costs_retries_throttling_and_5xx(
    harness, oauth, gcp_key, bq_server, fast_retries, status, reason
):
    bq_server.fail(status, google_error(status, "UNAVAILABLE", "try again", reason), times=1)
    state = gc.fetch_gcp_costs(
        gcp_block(oauth, gcp_key),
        TABLE,
        BQ_START,
        BQ_END,
        api_endpoint=bq_server.url,
        return_state=True,
    )
    assert state.is_completed() and state.result().num_rows == 8
    assert bq_server.faults_served == 1
    assert task_run_count(state) == 2
    assert len(jobs_query_calls(bq_server)) == 2  # one jobs.query per attempt: no SDK retry


@pytest.mark.parametrize(
    ("status", "error_type"), [(403, gx.Forbidden), (401, gx.Unauthorized), (400, gx.BadRequest)]
)
def test_fetch_gcp_costs_does_not_retry_auth_or_bad_requests(
    harness, oauth, gcp_key, bq_server, fast_retries, status, error_type
):
    bq_server.fail(
        status, google_error(status, "PERMISSION_DENIED", "no", "accessDenied"), times=None
    )
    state = gc.fetch_gcp_costs(
        gcp_block(oauth, gcp_key),
        TABLE,
        BQ_START,
        BQ_END,
        api_endpoint=bq_server.url,
        return_state=True,
    )
    assert state.is_failed()
    assert isinstance(state.result(raise_on_failure=False), error_type)
    assert task_run_count(state) == 1
    # on a 401 google-auth's AuthorizedSession gets a new token and resends (at most twice:
    # max_refresh_attempts=2); nothing else resends, and the task does not retry
    tokens = [r for r in oauth.requests if r.path == "/token"]
    assert len(jobs_query_calls(bq_server)) == len(tokens) == (3 if status == 401 else 1)


@pytest.mark.parametrize(
    ("args", "kwargs", "field"),
    [
        (("acme-billing.billing_export", D1, D2), {}, "table"),
        (("p.d.t`; DROP TABLE x", D1, D2), {}, "table"),
        ((TABLE, D2, D1), {}, "start"),
        ((TABLE, D1, D2), {"export": "full"}, "export"),
        ((TABLE, D1, D2), {"billing_project": "Bad Project"}, "billing_project"),
        ((TABLE, D1, D2), {"page_size": 0}, "page_size"),
    ],
)
def test_fetch_gcp_costs_rejects_bad_input_before_any_call(
    oauth, gcp_key, bq_server, args, kwargs, field
):
    with pytest.raises(ValueError, match=f"^{field}: "):
        gc.fetch_gcp_costs.fn(
            gcp_block(oauth, gcp_key), *args, api_endpoint=bq_server.url, **kwargs
        )
    assert bq_server.requests == [] and oauth.requests == []


def test_gcp_costs_never_leak_the_private_key(
    harness, oauth, gcp_key, bq_server, fast_retries, caplog, capfd
):
    canary = "CANARY-gcpkeyid-9d1e7a4c2b"
    info = service_account_info(gcp_key, oauth.token_uri, canary)
    pem_lines = [ln for ln in info["private_key"].splitlines() if ln and "-----" not in ln]
    caplog.set_level(logging.DEBUG)
    block = gcp_block(oauth, gcp_key, key_id=canary)
    ok = gc.fetch_gcp_costs(block, TABLE, *SPAN, api_endpoint=bq_server.url, return_state=True)
    assert ok.is_completed()
    assert oauth.jwt_headers[-1]["kid"] == canary  # the canary really signed the grant
    bq_server.fail(403, google_error(403, "PERMISSION_DENIED", "no", "accessDenied"), times=None)
    bad = gc.fetch_gcp_costs(block, TABLE, *SPAN, api_endpoint=bq_server.url, return_state=True)
    error = bad.result(raise_on_failure=False)
    assert isinstance(error, gx.Forbidden)
    out, err = capfd.readouterr()
    haystacks = {
        "result": ok.result().to_pandas().to_csv(),
        "exception": f"{error!s} {error!r}",
        "logs": caplog.text + "\n".join(str(r.args) for r in caplog.records),
        "stdout/stderr": out + err,
    }
    assert "GCP billing export" in caplog.text and "Forbidden" in caplog.text
    for where, text in haystacks.items():
        assert canary not in text, where
        assert not [ln for ln in pem_lines if ln in text], where


# ------------------------------------------------------------- both: retry spacing


@pytest.mark.parametrize("provider", ["azure", "gcp"])
def test_cost_tasks_retry_with_growing_jittered_waits(
    harness, request, monkeypatch, oauth, gcp_key, provider
):
    """A service that answers 503 three times, then serves: the task succeeds on its 4th
    attempt, after waits that grow and vary (observed, see tests/retries.py)."""
    if provider == "azure":
        server = request.getfixturevalue("azure_server")
        server.fail(503, arm_error("ServiceUnavailable", "try later"), times=3)
        task, args = az.fetch_azure_costs, (azure_block(server), SCOPE, D1, D2)
        kwargs = {}
    else:
        server = request.getfixturevalue("bq_server")
        server.fail(503, google_error(503, "UNAVAILABLE", "try again", "backendError"), times=3)
        task, args = gc.fetch_gcp_costs, (gcp_block(oauth, gcp_key), TABLE, *SPAN)
        kwargs = {"api_endpoint": server.url}
    shrink_waits(monkeypatch, task)
    state = task(*args, return_state=True, **kwargs)
    assert state.is_completed(), state
    assert server.faults_served == 3
    # attempts 1-3 each stopped at their first (failed) request; attempt 4 starts after
    assert_backoff_with_jitter(state, [r.at for r in server.api_requests()[:4]])
