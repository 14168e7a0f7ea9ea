"""Azure daily costs from the Cost Management Query API, normalized to FOCUS 1.2.

One scope (a subscription or a resource group) is queried for ``ActualCost`` (what is
invoiced: reservation and savings-plan purchases on the day they were bought) -> FOCUS
``BilledCost``, and ``AmortizedCost`` (purchases spread over the usage they cover) ->
``EffectiveCost``; the two are joined on the group. A group only one side has gets 0 on
the other, which is FOCUS's own rule: a commitment purchase has EffectiveCost 0 (its
cost is in the usage rows) and usage a commitment covers has BilledCost 0.

A FOCUS row here is one day x currency x ServiceName x ResourceLocation x ChargeType x
PricingModel (x one tag key's value, when asked). The Query API reference allows "up to 2
group by clauses" per query (``QueryDataset.grouping``), so the rows are not asked for in
one query with 4-5 groupings. Two 2-grouping queries joined on a shared dimension cannot
give the joint breakdown either (costs by (A, B) and by (A, C) do not say how each
(A, B) splits over C). So each cost type is read as an exact partition, with filters:

1. group by ``ChargeType`` + ``PricingModel`` (both have a handful of values);
2. for each (ChargeType, PricingModel) pair found, filter on the pair and group by
   ``ServiceName`` + ``ResourceLocation``;
3. with ``tag_key``: for each (ChargeType, PricingModel, ResourceLocation) found, filter
   on the three and group by ``ServiceName`` + the tag.

Every filter is an equality on values the parent query returned, so the children of one
parent row partition it: each cost is counted once, in exactly one final row, and the
totals equal the unsplit query's. That is checked, not assumed: per day and currency the
children must sum to their parent row (``check_partition``), else the task fails naming
the filter (a value the service cannot filter on would otherwise drop cost silently).
The price is more queries: ``1 + pairs`` per cost type (``+ triples`` with a tag), each
metered by ``throttle("azure")``, against 1 for the single big query; the alternative —
keep 4-5 groupings and fall back to 2 on a 400 — would give coarser rows (no location
or no pricing model) exactly when the limit is enforced. Resource group is not grouped
because FOCUS 1.2 has no column for it. The query has no list or negotiated price, so
ListCost and ContractedCost repeat BilledCost (as ``tasks.costs.focus_schema`` asks of
sources without them).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
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
MAX_GROUPINGS = 2  # Query API reference: "Query can have up to 2 group by clauses"
PAIR = ("ChargeType", "PricingModel")  # step 1 grouping
DETAIL = ("ServiceName", "ResourceLocation")  # step 2 grouping, under a pair filter
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


def _filter(where: Mapping[str, Any]) -> dict[str, Any]:
    """A ``QueryFilter``: one ``In`` comparison per dimension, ``and`` of two or more."""
    parts = [
        {"dimensions": {"name": name, "operator": "In", "values": ["" if v is None else str(v)]}}
        for name, v in where.items()
    ]
    return parts[0] if len(parts) == 1 else {"and": parts}


def query_definition(
    cost_type: str,
    start: date,
    end: date,
    grouping: Sequence[tuple[str, str]],
    where: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The Query API body for daily costs of the days ``[start, end)``.

    Args:
        cost_type: ``ActualCost`` or ``AmortizedCost``.
        start: first day.
        end: the day after the last day.
        grouping: ``(type, name)`` pairs, ``("Dimension", "ServiceName")`` or
            ``("TagKey", "team")``; at most ``MAX_GROUPINGS``.
        where: dimension -> the one value to keep (``dataset.filter``).

    Returns:
        A ``QueryDefinition`` in its JSON shape (``timeframe: Custom``, ``Daily``).
    """
    if len(grouping) > MAX_GROUPINGS:
        raise ValueError(f"grouping: at most {MAX_GROUPINGS} group by clauses, got {len(grouping)}")
    last = end - timedelta(days=1)
    dataset: dict[str, Any] = {
        "granularity": "Daily",
        "aggregation": {"totalCost": {"name": "Cost", "function": "Sum"}},
        "grouping": [{"type": kind, "name": name} for kind, name in grouping],
    }
    if where:
        dataset["filter"] = _filter(where)
    return {
        "type": cost_type,
        "timeframe": "Custom",
        "timePeriod": {
            "from": f"{start.isoformat()}T00:00:00Z",
            "to": f"{last.isoformat()}T23:59:59Z",
        },
        "dataset": dataset,
    }


def _dims(*names: str) -> list[tuple[str, str]]:
    return [("Dimension", name) for name in names]


def check_partition(
    parents: Iterable[Mapping[str, Any]],
    children: Iterable[Mapping[str, Any]],
    where: Mapping[str, Any],
) -> None:
    """Children (the rows of the query filtered on ``where``) must sum, per day and
    currency, to the parent rows that match ``where``.

    Raises:
        ValueError: naming the filter, the day and both sums.
    """

    def sums(rows: Iterable[Mapping[str, Any]], only: bool) -> dict[tuple, float]:
        out: dict[tuple, float] = {}
        for row in rows:
            if only and any(str(row.get(k) or "") != str(v or "") for k, v in where.items()):
                continue
            key = (str(row.get("UsageDate")), str(row.get("Currency") or ""))
            out[key] = out.get(key, 0.0) + _cost(row)
        return out

    want, got = sums(parents, True), sums(children, False)
    for key in sorted(set(want) | set(got)):
        a, b = want.get(key, 0.0), got.get(key, 0.0)
        if not math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-6):
            shown = ", ".join(f"{k}={v!r}" for k, v in where.items())
            raise ValueError(
                f"Cost Management rows filtered on {shown} sum to {b} {key[1]} on {key[0]}, "
                f"the unfiltered query says {a}: refusing a partial split"
            )


def split_query_rows(
    run: Callable[[dict[str, Any]], list[dict[str, Any]]],
    cost_type: str,
    start: date,
    end: date,
    tag_key: str | None = None,
) -> list[dict[str, Any]]:
    """One cost type's rows at the full grain, from 2-grouping queries (module docstring).

    Args:
        run: sends one query definition, returns the rows of all its pages.
        cost_type, start, end, tag_key: as for ``fetch_azure_costs``.

    Returns:
        Rows with ``UsageDate``, ``Currency``, ``Cost``, the four dimensions and, with a
        tag, ``TagKey``/``TagValue``: the same rows one 4-5-grouping query would give.
    """
    pairs = run(query_definition(cost_type, start, end, _dims(*PAIR)))
    rows: list[dict[str, Any]] = []
    for values in sorted({tuple(str(r.get(k) or "") for k in PAIR) for r in pairs}):
        where = dict(zip(PAIR, values, strict=True))
        detail = run(query_definition(cost_type, start, end, _dims(*DETAIL), where))
        check_partition(pairs, detail, where)
        rows += [{**r, **where} for r in detail]
    if not tag_key:
        return rows
    tagged: list[dict[str, Any]] = []
    triple = (*PAIR, "ResourceLocation")
    for values in sorted({tuple(str(r.get(k) or "") for k in triple) for r in rows}):
        where = dict(zip(triple, values, strict=True))
        grouping = [("Dimension", "ServiceName"), ("TagKey", tag_key)]
        detail = run(query_definition(cost_type, start, end, grouping, where))
        check_partition(rows, detail, where)
        tagged += [{**r, **where} for r in detail]
    return tagged


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
    return join_cost_rows(
        {
            t: [row for page in pages for row in result_rows(page)]
            for t, pages in pages_by_type.items()
        }
    )


def join_cost_rows(
    rows_by_type: Mapping[str, Iterable[Mapping[str, Any]]],
) -> list[dict[str, Any]]:
    """``join_cost_types`` on rows (dicts keyed by column name) instead of pages."""
    joined: dict[tuple, dict[str, Any]] = {}
    for cost_type, rows in rows_by_type.items():
        column = COST_TYPES[cost_type]
        for row in rows:
            out = joined.setdefault(
                _group_key(row),
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
    rows = {
        t: [r for page in pages for r in result_rows(page)] for t, pages in pages_by_type.items()
    }
    return focus_table(rows, scope)


def focus_table(rows_by_type: Mapping[str, Iterable[Mapping[str, Any]]], scope: str) -> pa.Table:
    """``normalize_azure_costs`` on rows (``split_query_rows``) instead of pages."""
    subscription_id, _rg = parse_scope(scope)
    source_id = f"azure-cost:{scope}"
    rows = join_cost_rows(rows_by_type)
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

    Reads ActualCost (-> BilledCost) and AmortizedCost (-> EffectiveCost), each as an
    exact partition of 2-grouping queries (module docstring), following ``nextLink``
    pages, and joins the two on the group.

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
    queries: list[int] = []  # pages per query sent

    def run(definition: dict[str, Any]) -> list[dict[str, Any]]:
        pages = list(_pages(client, scope, definition, origin))
        queries.append(len(pages))
        return [row for page in pages for row in result_rows(page)]

    rows_by_type = {t: split_query_rows(run, t, start, end, tag_key) for t in COST_TYPES}
    table = focus_table(rows_by_type, scope)
    logger.info(
        "Azure Cost Management %s: %d rows for %s to %s (%d queries, %d pages)",
        scope,
        table.num_rows,
        start,
        end - timedelta(days=1),
        len(queries),
        sum(queries),
    )
    return table
