"""GCP charge lines: the Google Cloud FOCUS export of one billing account and two projects.

Compute Engine N2 instances (with daily sustained-use-discount credits), Cloud Storage,
BigQuery (with the planted spike and a monthly promotion credit), Cloud SQL and networking.
The tables are in ``samples/data/focus_tables/gcp.json``.

Example:
    ```python
    from datetime import date

    from samples.focus_exports.gcp import gcp_lines

    lines = gcp_lines([date(2026, 11, 5)])
    print(len(lines), {line.cols["ServiceName"] for line in lines})
    ```
"""

from __future__ import annotations

from datetime import date
from typing import Any

from samples.datafiles import load_json
from samples.focus_exports.constants import GCP_BIGQUERY_SPIKE_DAY
from samples.focus_exports.lines import ChargeLine, month_firsts, stable_id

_DATA = load_json("focus_tables", "gcp.json")
_GCP_ACCOUNT = _DATA["billing_account"]  # [id, name]
_GCP_PROJECTS = _DATA["projects"]  # [id, name, number, team]
_GCP_REGIONS = _DATA["regions"]
# name -> [x_ServiceId, ServiceCategory, ResourceId template, ResourceType]
_GCP_SERVICES = _DATA["services"]
_GCP_N2 = _DATA["n2_prices"]  # USD per vCPU hour / GiB hour
# Compute Engine N2 instances: [project, region, name, vCPUs, GiB, pattern]
_GCP_INSTANCES = _DATA["instances"]
# Other usage: [project, region, service, SKU, unit, price, quantity/day, pattern, resource]
_GCP_USAGE = _DATA["usage"]


def _gcp_line(
    project: int,
    region: str,
    service: str,
    sku: str,
    unit: str | None,
    price: float,
    qty: float,
    pattern: str,
    resource: str,
    *,
    labels: list[tuple[str, str]] | None = None,
    **line: Any,
) -> ChargeLine:
    pid, pname, pnum, team = _GCP_PROJECTS[project]
    service_id, category, template, rtype = _GCP_SERVICES[service]
    digits = stable_id("gcp", service, sku, n=12, alphabet="0123456789ABCDEF")
    sku_id = f"{digits[:4]}-{digits[4:8]}-{digits[8:]}"
    if labels is None:
        labels = [("team", team), ("env", "prod")]
    cols = {
        "BillingAccountId": _GCP_ACCOUNT[0],
        "BillingAccountName": _GCP_ACCOUNT[1],
        "BillingAccountType": "Billing Account",
        "BillingCurrency": "USD",
        "ChargeCategory": "Usage",
        "ChargeDescription": sku,
        "ChargeFrequency": "Usage-Based",
        "ConsumedUnit": unit,
        "InvoiceIssuerName": "Google Cloud",
        "PricingCategory": "Standard",
        "PricingUnit": unit,
        "ProviderName": "Google Cloud",
        "PublisherName": "Google Cloud",
        "RegionId": region or None,
        "RegionName": _GCP_REGIONS.get(region),
        "ResourceId": template.format(project=pid, region=region, name=resource)
        if resource and template
        else None,
        "ResourceName": resource or None,
        "ResourceType": rtype if resource else None,
        "ServiceCategory": category,
        "ServiceName": service,
        "SkuId": sku_id,
        "SkuPriceId": f"{sku_id}-{stable_id('price', sku, n=4, alphabet='0123456789ABCDEF')}",
        "SubAccountId": pid,
        "SubAccountName": pname,
        "SubAccountType": "Project",
        "Tags": [{"key": k, "value": v} for k, v in labels],
        "x_Credits": [],
        "x_CostType": "regular",
        "x_CurrencyConversionRate": 1.0,
        "x_Location": region or "global",
        "x_Project": {"id": pid, "number": pnum, "name": pname},
        "x_ServiceId": service_id,
    }
    return ChargeLine(cols=cols, price=price, qty=qty, pattern=pattern, **line)


def gcp_lines(days: list[date]) -> list[ChargeLine]:
    lines: list[ChargeLine] = []
    for project, region, name, vcpus, gib, pattern in _GCP_INSTANCES:
        labels = None
        if name == "web-3":  # label keys with stray whitespace
            labels = [("team ", "web"), (" env", "prod")]
        args = (project, region, "Compute Engine")
        lines.append(
            _gcp_line(
                *args,
                "N2 Instance Core running",
                "hour",
                _GCP_N2["core"],
                24.0 * vcpus,
                pattern,
                name,
                labels=labels,
            )
        )
        lines.append(
            _gcp_line(
                *args,
                "N2 Instance Ram running",
                "gibibyte hour",
                _GCP_N2["ram"],
                24.0 * gib,
                pattern,
                name,
                labels=labels,
            )
        )
        # Sustained use discount: a daily credit of 20% of the instance's running cost.
        sud = _gcp_line(
            *args,
            "Sustained Usage Discount",
            "hour",
            0.0,
            0.0,
            "fixed",
            name,
            labels=labels,
            kind="credit",
        )
        sud.cols.update(ChargeCategory="Credit", PricingCategory=None)
        sud.fixed = -round(0.2 * 24 * (_GCP_N2["core"] * vcpus + _GCP_N2["ram"] * gib), 6)
        lines.append(sud)
    for row in _GCP_USAGE:
        line = _gcp_line(*row)
        if row[3] == "Analysis":  # the planted BigQuery spike (~6x the service's day)
            line.spikes = {GCP_BIGQUERY_SPIKE_DAY: 6.9}
        lines.append(line)
    for month in month_firsts(days):
        promo = _gcp_line(
            1,
            "",
            "BigQuery",
            "Promotion",
            None,
            0.0,
            0.0,
            "fixed",
            "",
            labels=[],
            fixed=-150.0,
            kind="credit",
            days=frozenset({month}),
            scalable=False,
        )
        promo.cols.update(
            ChargeCategory="Credit",
            ChargeFrequency="One-Time",
            ChargeDescription="Free trial / promotion credit",
            PricingCategory=None,
            x_CostType="adjustment",
        )
        lines.append(promo)
    return lines
