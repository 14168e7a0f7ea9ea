"""A local Azure Retail Prices API (``GET /api/retail/prices``).

Understands the OData ``$filter`` subset opsflow sends (``field eq 'value'`` clauses
joined by ``and``, alternatives for one field joined by ``or``), pages with ``$skip``
and answers with ``Items`` / ``NextPageLink`` / ``Count`` like the real API.
"""

from __future__ import annotations

import re
from collections import defaultdict
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from tests.servers import LocalServer, Seen, json_response

# $filter field -> item field (the filter says priceType, the items say type)
FILTER_FIELDS = {"priceType": "type"}
_EQ = re.compile(r"(\w+) eq '((?:[^']|'')*)'")

SERIES = {
    "Standard_D2s_v5": ("Dsv5", "D2s v5"),
    "Standard_D4s_v5": ("Dsv5", "D4s v5"),
    "Standard_NC4as_T4_v3": ("NCasT4_v3", "NC4as T4 v3"),
}


def vm_item(
    arm_sku: str,
    region: str,
    price: float,
    *,
    spot: bool = False,
    windows: bool = False,
    low_priority: bool = False,
    price_type: str = "Consumption",
    effective: str = "2025-05-01T00:00:00Z",
) -> dict[str, Any]:
    """A retail price item shaped like the real Virtual Machines ones."""
    series, short = SERIES.get(
        arm_sku, ("Misc", arm_sku.removeprefix("Standard_").replace("_", " "))
    )
    suffix = " Spot" if spot else (" Low Priority" if low_priority else "")
    product = f"Virtual Machines {series} Series" + (" Windows" if windows else "")
    return {
        "currencyCode": "USD",
        "tierMinimumUnits": 0.0,
        "retailPrice": price,
        "unitPrice": price,
        "armRegionName": region,
        "location": {"eastus": "US East", "westeurope": "EU West"}.get(region, region),
        "effectiveStartDate": effective,
        "meterId": f"meter-{arm_sku}-{region}-{suffix.strip() or 'std'}-{windows}",
        "meterName": short + suffix,
        "productId": "DZH318Z0BQ4L",
        "skuId": "DZH318Z0BQ4L/00TG",
        "productName": product,
        "skuName": short + suffix,
        "serviceName": "Virtual Machines",
        "serviceId": "DZH313Z7MMC8",
        "serviceFamily": "Compute",
        "unitOfMeasure": "1 Hour",
        "type": price_type,
        "isPrimaryMeterRegion": True,
        "armSkuName": arm_sku,
    }


def parse_filter(text: str) -> dict[str, set[str]]:
    """``a eq 'x' and (b eq 'y' or b eq 'z')`` -> ``{"a": {"x"}, "b": {"y", "z"}}``."""
    wanted: dict[str, set[str]] = defaultdict(set)
    for field, value in _EQ.findall(text):
        wanted[field].add(value.replace("''", "'"))
    return dict(wanted)


class AzureRetailServer(LocalServer):
    def __init__(self, items: list[dict[str, Any]], page_size: int = 100) -> None:
        super().__init__()
        self.items = items
        self.page_size = page_size

    def handle(self, seen: Seen):
        parts = urlsplit(seen.path)
        if seen.method != "GET" or parts.path != "/api/retail/prices":
            return json_response({"error": {"code": "NotFound", "message": parts.path}}, 404)
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        if not query.get("api-version"):
            return json_response({"error": {"code": "BadRequest", "message": "api-version"}}, 400)
        wanted = parse_filter(query.get("$filter", ""))
        matches = [
            item
            for item in self.items
            if all(str(item.get(FILTER_FIELDS.get(f, f))) in vals for f, vals in wanted.items())
        ]
        skip = int(query.get("$skip", "0"))
        page = matches[skip : skip + self.page_size]
        next_link = None
        if skip + self.page_size < len(matches):
            next_query = {**query, "$skip": str(skip + self.page_size)}
            next_link = f"{self.url}/api/retail/prices?{urlencode(next_query)}"
        return json_response(
            {
                "BillingCurrency": "USD",
                "CustomerEntityId": "Default",
                "CustomerEntityType": "Retail",
                "Items": page,
                "NextPageLink": next_link,
                "Count": len(page),
            }
        )
