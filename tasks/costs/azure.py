"""Azure daily costs from the Cost Management Query API, normalized to FOCUS 1.2.

One scope (a subscription or a resource group) is queried twice for the same days and
groups: ``ActualCost`` (what is invoiced: reservation and savings-plan purchases on the
day they were bought) gives ``BilledCost``, ``AmortizedCost`` (purchases spread over
the usage they cover) gives ``EffectiveCost``; the two are joined on the group. A group
only one side has gets 0 on the other, which is FOCUS's own rule: a commitment
purchase has EffectiveCost 0 (its cost is in the usage rows) and usage a commitment
covers has BilledCost 0.

Groups: ServiceName, ResourceLocation, ChargeType, PricingModel and, when asked, one
tag key. The API reference says "up to 2 group by clauses", but the service accepts
more and Microsoft's own tools (Cost analysis, azure-cost-cli) send more; resource
group is not grouped because FOCUS 1.2 has no column for it. The query has no list or
negotiated price, so ListCost and ContractedCost repeat BilledCost (as
``tasks.costs.focus_schema`` asks of sources without them).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from datetime import date, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import pyarrow as pa

from blocks.azure import AzureCredentials
from tasks.common.rate_limits import throttle
from tasks.common.retry import cloud_api_task, task_logger
from tasks.costs.focus_schema import SCHEMA, SOURCE_COLUMN, day_start, month_bounds

SUBSCRIPTION_SCOPE = re.compile(
    r"^/subscriptions/(?P<sub>[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12})"
    r"(?:/resourceGroups/(?P<rg>[-\w._()]{0,89}[-\w_()]))?$",
    re.IGNORECASE,
)
DIMENSIONS = ("ServiceName", "ResourceLocation", "ChargeType", "PricingModel")
COST_TYPES = {"ActualCost": "BilledCost", "AmortizedCost": "EffectiveCost"}
_COST_COLUMNS = ("Cost", "PreTaxCost", "totalCost", "CostUSD", "PreTaxCostUSD")
_TAG_KEY = re.compile(r"^[^<>%&\\?/]{1,512}$")  # Azure's own tag-name rule

# ChargeType -> (FOCUS ChargeCategory, ChargeClass). Unused commitment hours are usage
# of the commitment; a refund corrects an earlier purchase (FOCUS ChargeClass).
CHARGE_TYPES: dict[str, tuple[str, str | None]] = {
    "usage": ("Usage", None),
    "unusedreservation": ("Usage", None),
    "unusedsavingsplan": ("Usage", None),
    "purchase": ("Purchase", None),
    "refund": ("Purchase", "Correction"),
    "tax": ("Tax", None),
    "roundingadjustment": ("Adjustment", None),
    "adjustment": ("Adjustment", None),
    "credit": ("Credit", None),
}
PRICING_MODELS = {
    "ondemand": "Standard",
    "spot": "Dynamic",
    "reservation": "Committed",
    "savingsplan": "Committed",
}
# Azure ServiceName -> FOCUS ServiceCategory; anything else is "Other".
SERVICE_CATEGORIES: dict[str, str] = {
    "Virtual Machines": "Compute",
    "Virtual Machine Scale Sets": "Compute",
    "Azure Kubernetes Service": "Compute",
    "Container Instances": "Compute",
    "Azure Container Apps": "Compute",
    "Functions": "Compute",
    "Azure App Service": "Web",
    "Storage": "Storage",
    "Backup": "Storage",
    "Azure NetApp Files": "Storage",
    "Bandwidth": "Networking",
    "Virtual Network": "Networking",
    "Load Balancer": "Networking",
    "Application Gateway": "Networking",
    "Azure DNS": "Networking",
    "Azure Front Door Service": "Networking",
    "Content Delivery Network": "Networking",
    "VPN Gateway": "Networking",
    "ExpressRoute": "Networking",
    "NAT Gateway": "Networking",
    "SQL Database": "Databases",
    "SQL Managed Instance": "Databases",
    "Azure Cosmos DB": "Databases",
    "Azure Database for PostgreSQL": "Databases",
    "Azure Database for MySQL": "Databases",
    "Redis Cache": "Databases",
    "Azure Synapse Analytics": "Analytics",
    "Azure Data Factory v2": "Analytics",
    "Azure Databricks": "Analytics",
    "Event Hubs": "Analytics",
    "Azure Machine Learning": "AI and Machine Learning",
    "Cognitive Services": "AI and Machine Learning",
    "Azure OpenAI Service": "AI and Machine Learning",
    "Foundry Models": "AI and Machine Learning",
    "Azure Monitor": "Management and Governance",
    "Log Analytics": "Management and Governance",
    "Insight and Analytics": "Management and Governance",
    "Automation": "Management and Governance",
    "Key Vault": "Security",
    "Microsoft Defender for Cloud": "Security",
    "Azure Firewall": "Security",
    "Microsoft Entra ID": "Identity",
    "Service Bus": "Integration",
    "Logic Apps": "Integration",
    "API Management": "Integration",
    "Event Grid": "Integration",
    "IoT Hub": "Internet of Things",
    "Container Registry": "Developer Tools",
    "Azure DevOps": "Developer Tools",
}
_NOT_A_REGION = {"", "global", "unassigned", "unknown", "intercontinental"}


# ------------------------------------------------------------------------- retries


# ------------------------------------------------------------------- the request


def parse_scope(scope: str) -> tuple[str, str | None]:
    """Check a Cost Management scope and return ``(subscription_id, resource_group)``.

    Args:
        scope: ``/subscriptions/<id>`` or ``/subscriptions/<id>/resourceGroups/<rg>``.

    Raises:
        ValueError: naming ``scope`` and the expected forms.
    """
    match = SUBSCRIPTION_SCOPE.match(scope or "")
    if not match:
        raise ValueError(
            f"scope: {scope!r} is not '/subscriptions/<subscription id>' or "
            "'/subscriptions/<subscription id>/resourceGroups/<resource group>'"
        )
    return match.group("sub").lower(), match.group("rg")


def query_definition(
    cost_type: str, start: date, end: date, tag_key: str | None = None
) -> dict[str, Any]:
    """The Query API body for daily costs of the days ``[start, end)``.

    Args:
        cost_type: ``ActualCost`` or ``AmortizedCost``.
        start: first day.
        end: the day after the last day.
        tag_key: a tag to group by (its values become FOCUS ``Tags``).

    Returns:
        A ``QueryDefinition`` in its JSON shape (``timeframe: Custom``, ``Daily``).
    """
    grouping = [{"type": "Dimension", "name": name} for name in DIMENSIONS]
    if tag_key:
        grouping.append({"type": "TagKey", "name": tag_key})
    last = end - timedelta(days=1)
    return {
        "type": cost_type,
        "timeframe": "Custom",
        "timePeriod": {
            "from": f"{start.isoformat()}T00:00:00Z",
            "to": f"{last.isoformat()}T23:59:59Z",
        },
        "dataset": {
            "granularity": "Daily",
            "aggregation": {"totalCost": {"name": "Cost", "function": "Sum"}},
            "grouping": grouping,
        },
    }


# ------------------------------------------------------------------- the response


def result_rows(result: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The rows of one Query API page as dicts keyed by column name.

    Args:
        result: a ``QueryResult`` in its JSON shape (``{"properties": {"columns": [...],
            "rows": [[...]], "nextLink": ...}}``) or just its ``properties``.
    """
    props = result.get("properties", result) or {}
    names = [c["name"] for c in props.get("columns") or []]
    return [dict(zip(names, row, strict=False)) for row in props.get("rows") or []]


def _usage_day(value: Any) -> date:
    """``20250301`` (Daily) or ``"2025-03-01T00:00:00"`` -> the day."""
    text = str(value).strip()
    if re.fullmatch(r"\d{8}", text.split(".")[0]):
        text = text.split(".")[0]
        return date(int(text[:4]), int(text[4:6]), int(text[6:]))
    return datetime.fromisoformat(text.replace("Z", "+00:00")).date()


def _cost(row: Mapping[str, Any]) -> float:
    for name in _COST_COLUMNS:
        if row.get(name) is not None:
            return float(row[name])
    raise ValueError(f"no cost column ({', '.join(_COST_COLUMNS)}) in {sorted(row)}")


def _group_key(row: Mapping[str, Any]) -> tuple:
    return tuple(sorted((k, str(v)) for k, v in row.items() if k not in _COST_COLUMNS))


def join_cost_types(
    pages_by_type: Mapping[str, Iterable[Mapping[str, Any]]],
) -> list[dict[str, Any]]:
    """Join ActualCost and AmortizedCost rows on their group (day, currency, dimensions).

    Args:
        pages_by_type: ``{"ActualCost": [page, ...], "AmortizedCost": [page, ...]}``.

    Returns:
        One dict per group with the group's columns plus ``BilledCost`` and
        ``EffectiveCost`` (0.0 where one side has no row).
    """
    joined: dict[tuple, dict[str, Any]] = {}
    for cost_type, pages in pages_by_type.items():
        column = COST_TYPES[cost_type]
        for page in pages:
            for row in result_rows(page):
                key = _group_key(row)
                out = joined.setdefault(
                    key,
                    {
                        **{k: v for k, v in row.items() if k not in _COST_COLUMNS},
                        "BilledCost": 0.0,
                        "EffectiveCost": 0.0,
                    },
                )
                out[column] += _cost(row)
    return list(joined.values())


def focus_record(row: Mapping[str, Any], subscription_id: str, source_id: str) -> dict[str, Any]:
    """One joined Query API row as a FOCUS 1.2 record.

    Args:
        row: from ``join_cost_types`` (``UsageDate``, ``Currency``, the dimensions,
            ``TagKey``/``TagValue`` when grouped by a tag, ``BilledCost``, ``EffectiveCost``).
        subscription_id: the scope's subscription (BillingAccountId and SubAccountId).
        source_id: ``x_SourceId`` of the row.
    """
    day = _usage_day(row["UsageDate"])
    period_start, period_end = month_bounds(day)
    charge_type = str(row.get("ChargeType") or "Usage")
    category, charge_class = CHARGE_TYPES.get(charge_type.lower(), ("Usage", None))
    service = str(row.get("ServiceName") or "").strip() or "Unassigned"
    location = str(row.get("ResourceLocation") or "").strip()
    # ARM names ("eastus") are region ids; display names ("US East") only region names
    arm_name = re.fullmatch(r"[a-z0-9]+", location.lower())
    region = location.lower() if arm_name and location.lower() not in _NOT_A_REGION else None
    tag_key, tag_value = row.get("TagKey"), row.get("TagValue")
    currency = str(row.get("Currency") or "").strip().upper()
    if not currency:
        raise ValueError(f"Cost Management row for {day} has no Currency column value")
    billed = float(row["BilledCost"])
    return {
        "BilledCost": billed,
        "EffectiveCost": float(row["EffectiveCost"]),
        "ListCost": billed,
        "ContractedCost": billed,
        "BillingAccountId": subscription_id,
        "BillingCurrency": currency,
        "BillingPeriodStart": period_start,
        "BillingPeriodEnd": period_end,
        "ChargePeriodStart": day_start(day),
        "ChargePeriodEnd": day_start(day + timedelta(days=1)),
        "ChargeCategory": category,
        "ChargeClass": charge_class,
        "ChargeFrequency": "Usage-Based" if category == "Usage" else None,
        "ChargeDescription": f"{service} {charge_type}".strip(),
        "InvoiceIssuerName": "Microsoft",
        "ProviderName": "Microsoft",
        "PublisherName": "Microsoft",
        "PricingCategory": PRICING_MODELS.get(str(row.get("PricingModel") or "").lower()),
        "RegionId": region,
        "RegionName": location if location.lower() not in _NOT_A_REGION else None,
        "ServiceCategory": SERVICE_CATEGORIES.get(service, "Other"),
        "ServiceName": service,
        "SubAccountId": subscription_id,
        "SubAccountType": "Subscription",
        "Tags": {str(tag_key): str(tag_value)} if tag_key and tag_value else {},
        SOURCE_COLUMN: source_id,
    }


def normalize_azure_costs(
    pages_by_type: Mapping[str, Iterable[Mapping[str, Any]]], scope: str
) -> pa.Table:
    """Query API pages for both cost types -> a FOCUS 1.2 table.

    Args:
        pages_by_type: ``{"ActualCost": [page, ...], "AmortizedCost": [page, ...]}``,
            each page a ``QueryResult`` in its JSON shape.
        scope: the queried scope; ``x_SourceId`` is ``azure-cost:<scope>``.

    Returns:
        A table conforming to ``focus_schema.SCHEMA``, one row per day and group.
    """
    subscription_id, _rg = parse_scope(scope)
    source_id = f"azure-cost:{scope}"
    rows = join_cost_types(pages_by_type)
    records = [focus_record(r, subscription_id, source_id) for r in rows]
    return pa.Table.from_pylist(records, schema=SCHEMA)  # absent columns are null


# ----------------------------------------------------------------------- the task


def _pages(client: Any, scope: str, definition: dict[str, Any], origin: str) -> Iterator[dict]:
    """Every page of one query, POSTing the same body to each ``nextLink``."""
    from azure.core.rest import HttpRequest
    from azure.mgmt.costmanagement.models import QueryDefinition

    throttle("azure")  # Cost Management meters queries per tenant, across all runs
    page = client.query.usage(scope.lstrip("/"), QueryDefinition(definition))
    page = page.as_dict() if page is not None else {}
    while True:
        yield page
        next_link = (page.get("properties") or {}).get("nextLink")
        if not next_link:
            return
        parts = urlsplit(next_link)
        if f"{parts.scheme}://{parts.netloc}" != origin:  # never send the token elsewhere
            raise ValueError(f"nextLink points outside {origin}: {parts.netloc!r}")
        throttle("azure")
        response = client.send_request(HttpRequest("POST", next_link, json=definition))
        response.raise_for_status()
        page = response.json()


@cloud_api_task("azure-cost-management")
def fetch_azure_costs(
    azure_credentials: AzureCredentials | None,
    scope: str,
    start: date,
    end: date,
    *,
    tag_key: str | None = None,
) -> pa.Table:
    """Daily Azure costs of one scope for ``[start, end)``, as FOCUS 1.2 rows.

    Queries Cost Management twice (ActualCost -> BilledCost, AmortizedCost ->
    EffectiveCost), following ``nextLink`` pages, and joins the two on the group.

    Args:
        azure_credentials: ``AzureCredentials`` block; ``None`` uses
            ``DefaultAzureCredential``.
        scope: ``/subscriptions/<id>`` or ``/subscriptions/<id>/resourceGroups/<rg>``.
        start: first day to collect.
        end: the day after the last day to collect.
        tag_key: a tag to group by; its value lands in ``Tags``.

    Returns:
        A ``pa.Table`` conforming to ``focus_schema.SCHEMA``; ``x_SourceId`` is
        ``azure-cost:<scope>``.

    Example:
        ```python
        from datetime import date
        from prefect import flow
        from blocks.azure import AzureCredentials
        from tasks.costs.azure import fetch_azure_costs

        @flow
        def azure_costs():
            creds = AzureCredentials.load("BLOCK_NAME")
            scope = "/subscriptions/00000000-0000-0000-0000-000000000000"
            return fetch_azure_costs(creds, scope, date(2026, 10, 1), date(2026, 11, 1))
        ```
    """
    parse_scope(scope)
    if not isinstance(start, date) or not isinstance(end, date) or start >= end:
        raise ValueError(f"start: {start} must be a day before end ({end})")
    if tag_key is not None and not _TAG_KEY.match(tag_key):
        raise ValueError(f"tag_key: {tag_key!r} is not a valid Azure tag name")
    logger = task_logger(__name__)
    azure_credentials = azure_credentials or AzureCredentials()
    client = azure_credentials.get_cost_management_client()
    origin = azure_credentials.resource_manager_url
    pages_by_type: dict[str, list[dict]] = {}
    for cost_type in COST_TYPES:
        definition = query_definition(cost_type, start, end, tag_key)
        pages_by_type[cost_type] = list(_pages(client, scope, definition, origin))
    table = normalize_azure_costs(pages_by_type, scope)
    logger.info(
        "Azure Cost Management %s: %d rows for %s to %s (%s pages)",
        scope,
        table.num_rows,
        start,
        end - timedelta(days=1),
        "+".join(str(len(p)) for p in pages_by_type.values()),
    )
    return table
