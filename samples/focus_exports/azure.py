"""Azure charge lines: Cost Management ``FocusCost`` 1.0r2 of one MCA billing account.

Two billing profiles (USD and EUR), virtual machines, AKS, storage accounts, Azure SQL and
bandwidth. The tables are in ``samples/data/focus_tables/azure.json``.

Example:
    ```python
    from datetime import date

    from samples.focus_exports.azure import azure_lines

    lines = azure_lines([date(2026, 10, 1)])
    print(len(lines), lines[0].cols["BillingCurrency"])
    ```
"""

from __future__ import annotations

import json
from datetime import date

from samples.datafiles import load_json
from samples.focus_exports.lines import ChargeLine, compact_json, stable_guid, stable_id

_DATA = load_json("focus_tables", "azure.json")
_AZ_ACCOUNT = _DATA["billing_account"]
# currency -> [profile id, name, invoice section id, name]; FocusCost reports the MCA billing
# profile as the FOCUS billing account
_AZ_PROFILES = _DATA["profiles"]
# (subscription GUID, name, billing currency of its profile)
_AZ_SUBS = [(stable_guid("az-sub", key), name, cur) for key, name, cur in _DATA["subscriptions"]]
_AZ_REGIONS = _DATA["regions"]
EUR_PER_USD = _DATA["eur_per_usd"]
# kind -> [ARM type, ServiceName, ServiceCategory, meter category, family, consumed unit,
# pricing unit, ResourceType]
_AZ_KINDS = _DATA["kinds"]
# [subscription, region, resource group, kind, name, meter, USD price, quantity/day, pattern, app]
_AZ_USAGE = _DATA["usage"]


def _azure_line(
    sub: int,
    region: str,
    rg: str,
    kind: str,
    name: str,
    meter: str,
    usd_price: float,
    qty: float,
    pattern: str,
    app: str,
) -> ChargeLine:
    arm_type, service, category, meter_category, family, unit, pricing_unit, rtype = _AZ_KINDS[kind]
    sub_id, sub_name, currency = _AZ_SUBS[sub]
    profile_id, profile_name, section_id, section_name = _AZ_PROFILES[currency]
    rate = 1.0 if currency == "USD" else EUR_PER_USD
    product = stable_id("az", meter_category, meter, n=12)
    series = f"{meter.split()[0][0]}sv5 Series" if kind in ("vm", "vmss") else "Standard"
    tags = ""
    if app:
        tags = compact_json({"app": app, "env": "prod", "owner": f"team-{app}"})
        if name == "vm-web-02":  # keys with stray whitespace (and a duplicate)
            tags = json.dumps({"app": app, " env": "prod", "owner ": f"team-{app}", "env": "prod"})
    resource_id = f"/subscriptions/{sub_id}/resourcegroups/{rg}/providers/{arm_type}/{name}"
    vm_details = compact_json({"ServiceType": f"Standard_{meter.replace(' ', '_')}"})
    cols = {
        "BillingAccountId": f"/providers/Microsoft.Billing/billingAccounts/{_AZ_ACCOUNT}"
        f"/billingProfiles/{profile_id}",
        "BillingAccountName": profile_name,
        "BillingAccountType": "Billing Profile",
        "BillingCurrency": currency,
        "ChargeCategory": "Usage",
        "ChargeDescription": f"{meter} - {series}",
        "ChargeFrequency": "Usage-Based",
        "ConsumedUnit": unit,
        "InvoiceIssuerName": "Microsoft",
        "PricingCategory": "Standard",
        "PricingUnit": pricing_unit,
        "ProviderName": "Microsoft",
        "PublisherName": "Microsoft",
        "RegionId": region,
        "RegionName": _AZ_REGIONS[region],
        "ResourceId": resource_id.lower(),
        "ResourceName": name.rsplit("/", 1)[-1],
        "ResourceType": rtype,
        "ServiceCategory": category,
        "ServiceName": service,
        "SkuId": f"{product}/00{product[-2:]}",
        "SkuPriceId": f"{product}/00{product[-2:]}/0001",
        "SubAccountId": f"/subscriptions/{sub_id}",
        "SubAccountName": sub_name,
        "SubAccountType": "Subscription",
        "Tags": tags,
        "x_BillingAccountId": _AZ_ACCOUNT,
        "x_BillingAccountName": "Contoso Ltd",
        "x_BillingExchangeRate": f"{rate:g}",
        "x_BillingProfileId": profile_id,
        "x_BillingProfileName": profile_name,
        "x_InvoiceSectionId": section_id,
        "x_InvoiceSectionName": section_name,
        "x_PricingBlockSize": "1",
        "x_PricingCurrency": "USD",
        "x_PricingSubcategory": "Standard",
        "x_PricingUnitDescription": pricing_unit,
        "x_PublisherCategory": "Cloud Provider",
        "x_ResourceGroupName": rg,
        "x_ResourceType": arm_type.lower(),
        "x_SkuDescription": f"{meter_category} {meter}",
        "x_SkuDetails": vm_details if kind in ("vm", "vmss") else "",
        "x_SkuIsCreditEligible": "True",
        "x_SkuMeterCategory": meter_category,
        "x_SkuMeterId": stable_guid("meter", meter_category, meter, region),
        "x_SkuMeterName": meter,
        "x_SkuMeterSubcategory": series,
        "x_SkuPartNumber": stable_id("part", meter, n=9),
        "x_SkuRegion": _AZ_REGIONS[region],
        "x_SkuServiceFamily": family,
        "x_SkuTier": "Standard",
    }
    return ChargeLine(cols=cols, price=usd_price * rate, qty=qty, pattern=pattern)


def azure_lines(days: list[date]) -> list[ChargeLine]:
    return [_azure_line(*row) for row in _AZ_USAGE]
