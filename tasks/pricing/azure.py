"""Azure VM prices from the public Azure Retail Prices API (no credentials needed).

``GET {endpoint}/api/retail/prices?api-version=...&$filter=...`` returns pages of
price items; ``NextPageLink`` points at the next page until it is null. Linux
pay-as-you-go and spot prices are kept; Windows and Low Priority meters are not.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import httpx

from tasks.common.retry import cloud_api_task, task_logger
from tasks.pricing.prices import PriceTable, Quote

AZURE_RETAIL_ENDPOINT = "https://prices.azure.com"
AZURE_API_VERSION = "2023-01-01-preview"
AZURE_SOURCE = "Azure Retail Prices API (serviceName 'Virtual Machines', Consumption, Linux)"
SKUS_PER_QUERY = 15  # armSkuName clauses per $filter, keeps URLs short


def _quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def retail_filter(region: str, sku_names: Iterable[str] = ()) -> str:
    """The OData ``$filter`` for VM consumption prices in one region.

    Args:
        region: ARM region name, e.g. ``eastus``.
        sku_names: ARM SKU names to restrict to, e.g. ``["Standard_D2s_v5"]``.

    Returns:
        A filter string such as ``serviceName eq 'Virtual Machines' and armRegionName
        eq 'eastus' and priceType eq 'Consumption' and (armSkuName eq 'X' or ...)``.
    """
    clauses = [
        "serviceName eq 'Virtual Machines'",
        f"armRegionName eq {_quote(region)}",
        "priceType eq 'Consumption'",
    ]
    skus = list(sku_names)
    if skus:
        clauses.append("(" + " or ".join(f"armSkuName eq {_quote(s)}" for s in skus) + ")")
    return " and ".join(clauses)


def classify_item(item: Mapping[str, Any]) -> tuple[str, str, str, float] | None:
    """Read one retail price item.

    Args:
        item: one element of the API's ``Items``.

    Returns:
        ``(arm_sku_name, arm_region, "on_demand" | "spot", usd_per_hour)`` for a Linux
        hourly consumption price above zero in USD; ``None`` for Windows, Low Priority,
        reservations, DevTest, other units or currencies.
    """
    if item.get("type", "Consumption") != "Consumption":
        return None
    if item.get("currencyCode", "USD") != "USD":
        return None
    if item.get("unitOfMeasure") != "1 Hour":
        return None
    product = str(item.get("productName", ""))
    sku_name = str(item.get("skuName", ""))
    meter = str(item.get("meterName", ""))
    if "Windows" in product or sku_name.endswith("Low Priority") or meter.endswith("Low Priority"):
        return None
    sku, region = item.get("armSkuName"), item.get("armRegionName")
    if not sku or not region:
        return None
    try:
        price = float(item.get("retailPrice", 0))
    except (TypeError, ValueError):
        return None
    if price <= 0:
        return None
    kind = "spot" if sku_name.endswith(" Spot") or meter.endswith(" Spot") else "on_demand"
    return str(sku), str(region), kind, price


def parse_retail_items(items: Iterable[Mapping[str, Any]]) -> PriceTable:
    """Turn retail price items into quotes.

    When several items price the same SKU, region and kind, the one with the latest
    ``effectiveStartDate`` wins (ties: the lower price).

    Args:
        items: ``Items`` from one or more pages.

    Returns:
        ARM SKU name -> region -> ``Quote``.
    """
    best: dict[tuple[str, str, str], tuple[str, float]] = {}
    for item in items:
        parsed = classify_item(item)
        if parsed is None:
            continue
        sku, region, kind, price = parsed
        start = str(item.get("effectiveStartDate", ""))
        key = (sku, region, kind)
        if key not in best or (start, -price) > (best[key][0], -best[key][1]):
            best[key] = (start, price)
    table: PriceTable = {}
    for (sku, region, kind), (_start, price) in best.items():
        quote = table.setdefault(sku, {}).setdefault(region, Quote())
        setattr(quote, kind, price)
    return table


def iter_retail_items(
    client: httpx.Client, endpoint: str, region: str, sku_names: list[str]
) -> Iterator[dict[str, Any]]:
    """Yield every item for one filter, following ``NextPageLink`` until it is null."""
    url: str | None = f"{endpoint.rstrip('/')}/api/retail/prices"
    params: dict[str, str] | None = {
        "api-version": AZURE_API_VERSION,  # prices are in USD unless currencyCode is set
        "$filter": retail_filter(region, sku_names),
    }
    while url:
        response = client.get(url, params=params)
        response.raise_for_status()
        body = response.json()
        yield from body.get("Items", [])
        url = body.get("NextPageLink") or None
        params = None  # the next link already carries the query


@cloud_api_task("fetch-azure-prices")
def fetch_azure_prices(
    instance_types: list[str],
    regions: list[str],
    endpoint: str = AZURE_RETAIL_ENDPOINT,
    timeout_seconds: float = 30.0,
) -> PriceTable:
    """Fetch Linux pay-as-you-go and spot hourly prices for Azure VM sizes.

    Args:
        instance_types: ARM SKU names, e.g. ``["Standard_D2s_v5", "Standard_NC4as_T4_v3"]``.
        regions: ARM region names, e.g. ``["eastus", "westeurope"]``.
        endpoint: the Retail Prices API base URL (override for tests or a proxy).
        timeout_seconds: per-request timeout.

    Returns:
        ARM SKU name -> region -> ``Quote``; SKUs the API did not price are absent.

    Example:
        ```python
        from prefect import flow
        from tasks.pricing.azure import fetch_azure_prices

        @flow
        def azure_prices():
            return fetch_azure_prices(["Standard_D2s_v5"], ["eastus"])
        ```
    """
    logger = task_logger(__name__)
    wanted = {name.lower(): name for name in instance_types}  # ARM names match case-blind
    items: list[dict[str, Any]] = []
    timeout = httpx.Timeout(timeout_seconds, connect=min(10.0, timeout_seconds))
    skus = sorted(set(instance_types))
    with httpx.Client(timeout=timeout, headers={"Accept": "application/json"}) as client:
        for region in regions:
            for i in range(0, len(skus), SKUS_PER_QUERY):
                items.extend(
                    iter_retail_items(client, endpoint, region, skus[i : i + SKUS_PER_QUERY])
                )
    table: PriceTable = {}
    for sku, by_region in parse_retail_items(items).items():
        name = wanted.get(sku.lower())
        if name is None:
            continue
        for region, quote in by_region.items():
            if region in regions:
                table.setdefault(name, {})[region] = quote
    found = sum(len(v) for v in table.values())
    logger.info("Azure Retail Prices: %d items read, %d SKU/region prices found", len(items), found)
    return table
