"""Price an inventory: the one place that puts a USD figure on a ``Resource``, for every cloud.

Collectors (``tasks.inventory.aws``, ``tasks.inventory.azure``, ``tasks.inventory.gcp``)
leave ``hourly_price`` empty; ``price_resources`` fills ``hourly_price`` (on-demand list
price while billed) and ``monthly_cost`` (at the current state, 730 h) from

- instances: the bundled / refreshed compute catalog (``tasks.pricing.catalog``). A region the
  catalog does not carry takes the price of the first catalog region of the same
  geography that prices the type, and says so in ``price_note``;
- volumes: ``VOLUME_GIB_MONTH`` below, scaled by the catalog's regional block-storage
  ratio when the region is in the catalog;
- public IPv4 addresses and NAT gateways: ``ADDRESS_HOURLY`` / ``NAT_HOURLY`` below.

A type we have no price for stays ``None``: an unknown price is never a zero.
"""

from __future__ import annotations

from typing import NamedTuple

from tasks.inventory.model import HOURS_PER_MONTH, Resource
from tasks.pricing.catalog import Catalog, load_catalog

# USD per GiB-month, list prices in the reference region (AWS us-east-1, Azure eastus,
# GCP us-central1), capacity only.
# AWS: https://aws.amazon.com/ebs/pricing/ (io1/io2 provisioned IOPS, gp3 IOPS above
#   3,000 and throughput above 125 MiB/s, and magnetic I/O requests are billed on top).
# Azure: https://azure.microsoft.com/pricing/details/managed-disks/ . Managed disks are
#   billed per size tier (S10/E10/P10 = 128 GiB: $5.89 / $9.60 / $19.71 a month); the
#   per-GiB rate here is the 128 GiB tier divided by 128, so small disks are under-, and
#   disks between tiers slightly over-estimated. Standard HDD/SSD transactions extra.
# GCP: https://cloud.google.com/compute/disks-image-pricing (zonal persistent disk).
VOLUME_GIB_MONTH: dict[str, dict[str, float]] = {
    "aws": {
        "gp2": 0.10,
        "gp3": 0.08,
        "io1": 0.125,
        "io2": 0.125,
        "st1": 0.045,
        "sc1": 0.015,
        "standard": 0.05,
    },
    "azure": {"standard_lrs": 0.046, "standardssd_lrs": 0.075, "premium_lrs": 0.154},
    "gcp": {"pd-standard": 0.04, "pd-balanced": 0.10, "pd-ssd": 0.17},
}
# The region VOLUME_GIB_MONTH is quoted for; other catalog regions scale by the ratio of
# their ``block_storage_gib_month`` to this region's.
VOLUME_REFERENCE_REGION = {"aws": "us-east-1", "azure": "eastus", "gcp": "us-central1"}
VOLUME_NOTES = {
    ("aws", "io1"): "provisioned IOPS billed on top",
    ("aws", "io2"): "provisioned IOPS billed on top",
    ("aws", "gp3"): "IOPS above 3,000 and throughput above 125 MiB/s billed on top",
    ("aws", "standard"): "I/O requests billed on top",
}

# Public IPv4, USD/hour. AWS: every public IPv4 address, in use or idle, since 2024-02
# (https://aws.amazon.com/vpc/pricing/). Azure: Standard static public IP
# (https://azure.microsoft.com/pricing/details/ip-addresses/). GCP: external IP in use
# $0.005, reserved static IP not in use $0.01 (https://cloud.google.com/vpc/network-pricing).
ADDRESS_HOURLY = {"aws": 0.005, "azure": 0.005, "gcp": 0.005}
GCP_UNUSED_ADDRESS_HOURLY = 0.01

# NAT gateway, USD/hour, plus $0.045 per GB processed (not in monthly_cost: it depends on
# traffic). AWS: https://aws.amazon.com/vpc/pricing/ ; Azure:
# https://azure.microsoft.com/pricing/details/azure-nat-gateway/ . GCP Cloud NAT bills per
# VM using the gateway (https://cloud.google.com/nat/pricing), which the inventory does
# not know, so it stays unpriced.
NAT_HOURLY = {"aws": 0.045, "azure": 0.045}
NAT_NOTE = "plus $0.045 per GB processed, not included"

# Instance states billed for compute, and states that are not.
BILLED_STATES = frozenset({"running", "pending", "stopping"})
UNBILLED_STATES = frozenset({"stopped", "terminated"})


class CatalogPrice(NamedTuple):
    """An on-demand hourly price and where it came from."""

    hourly: float
    region: str  # the catalog region the price is from
    note: str | None  # set when the price is borrowed from another region


# Region id prefixes / words -> catalog geography. Checked in order: "australiaeast" and
# "austriaeast" contain "us", so Asia-Pacific and European words come first.
_GEO_WORDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "asia",
        (
            "ap-",
            "asia",
            "japan",
            "korea",
            "india",
            "indonesia",
            "malaysia",
            "taiwan",
            "australia",
            "newzealand",
            "singapore",
        ),
    ),
    (
        "europe",
        (
            "eu-",
            "europe",
            "uk",
            "france",
            "germany",
            "sweden",
            "switzerland",
            "norway",
            "poland",
            "italy",
            "spain",
            "austria",
            "belgium",
            "denmark",
            "finland",
            "netherlands",
            "ireland",
        ),
    ),
    ("us", ("us", "ca-", "canada", "northamerica", "mx-", "mexico")),
)


def region_geo(region: str) -> str:
    """The catalog geography (``us``/``europe``/``asia``/``other``) of any cloud region id.

    Example:
        ```python
        from tasks.pricing.resource_prices import region_geo

        print(region_geo("eu-central-1"), region_geo("japanwest"))  # europe asia
        ```
    """
    key = region.strip().lower()
    for geo, words in _GEO_WORDS:
        if any(key.startswith(w) if w.endswith("-") else w in key for w in words):
            return geo
    return "other"


def catalog_price(
    catalog: Catalog, provider: str, instance_type: str, region: str
) -> CatalogPrice | None:
    """On-demand hourly price of one instance type in one region from the catalog.

    Args:
        catalog: the price catalog (``tasks.pricing.catalog.load_catalog()``).
        provider: ``aws``, ``azure`` or ``gcp``.
        instance_type: instance type / VM size / machine type, as the catalog names it.
        region: region id.

    Returns:
        The price, or, when the catalog has no price in ``region``, the price in the
        first catalog region of the same geography that has one (with a ``note``);
        ``None`` when the type is not in the catalog or nothing in the geography prices it.
    """
    pcat = catalog.providers.get(provider)
    if pcat is None:
        return None
    inst = pcat.instance(instance_type)
    if inst is None:
        return None
    if region in inst.prices:
        return CatalogPrice(inst.prices[region].on_demand, region, None)
    geo = region_geo(region)
    for other in pcat.regions:
        if other.geo == geo and other.id in inst.prices:
            note = (
                f"approximate: {other.id} price; the catalog has no {instance_type} price "
                f"in {region}"
            )
            return CatalogPrice(inst.prices[other.id].on_demand, other.id, note)
    return None


def volume_gib_month(
    catalog: Catalog, provider: str, disk_type: str, region: str
) -> tuple[float, str | None] | None:
    """USD per GiB-month of a disk type in a region, with a note; None when unknown."""
    base = VOLUME_GIB_MONTH.get(provider, {}).get(disk_type.strip().lower())
    if base is None:
        return None
    notes = [VOLUME_NOTES.get((provider, disk_type.strip().lower()))]
    pcat = catalog.providers.get(provider)
    regions = {r.id: r for r in pcat.regions} if pcat else {}
    ref = regions.get(VOLUME_REFERENCE_REGION[provider])
    if region in regions and ref is not None:
        rate = base * regions[region].block_storage_gib_month / ref.block_storage_gib_month
    else:
        rate = base
        if region != VOLUME_REFERENCE_REGION[provider]:
            notes.append(f"approximate: {VOLUME_REFERENCE_REGION[provider]} price")
    note = "; ".join(n for n in notes if n) or None
    return round(rate, 6), note


def _price_one(r: Resource, catalog: Catalog) -> dict[str, object]:
    """The ``hourly_price``/``monthly_cost``/``price_note`` update for one resource."""
    hourly: float | None = None
    monthly: float | None = None
    note: str | None = None
    if r.kind == "instance":
        found = catalog_price(catalog, r.provider, r.type, r.region)
        if found is not None:
            hourly, note = found.hourly, found.note
            if r.state in BILLED_STATES:
                monthly = hourly * HOURS_PER_MONTH
            elif r.state in UNBILLED_STATES:
                monthly = 0.0  # compute only; its disks and addresses are priced on their own
    elif r.kind == "volume":
        rate = volume_gib_month(catalog, r.provider, r.type, r.region)
        if rate is not None and r.size_gib is not None:
            monthly = rate[0] * r.size_gib
            hourly, note = monthly / HOURS_PER_MONTH, rate[1]
    elif r.kind == "address":
        hourly = ADDRESS_HOURLY.get(r.provider)
        if r.provider == "gcp" and r.attached_to is None:
            hourly = GCP_UNUSED_ADDRESS_HOURLY
        monthly = hourly * HOURS_PER_MONTH if hourly is not None else None
    elif r.kind == "nat_gateway":
        hourly = NAT_HOURLY.get(r.provider)
        if hourly is not None:
            monthly, note = hourly * HOURS_PER_MONTH, NAT_NOTE
        else:
            note = "Cloud NAT is billed per VM using it; not priced"
    return {
        "hourly_price": round(hourly, 6) if hourly is not None else None,
        "monthly_cost": round(monthly, 4) if monthly is not None else None,
        "price_note": note,
    }


def price_resources(resources: list[Resource], catalog: Catalog | None = None) -> list[Resource]:
    """Fill ``hourly_price``, ``monthly_cost`` and ``price_note`` on every resource.

    Args:
        resources: inventory from any cloud's collector.
        catalog: price catalog; the current one (``load_catalog()``) when omitted.

    Returns:
        New ``Resource`` objects (the inputs are not changed). A stopped instance keeps
        its catalog ``hourly_price`` but costs 0 for compute; a type without a known
        price keeps ``None``.

    Example:
        ```python
        from prefect import flow
        from prefect_aws import AwsCredentials

        from tasks.inventory.aws import collect_aws_resources
        from tasks.pricing.resource_prices import price_resources


        @flow
        def aws_monthly_cost() -> float:
            inventory = collect_aws_resources(AwsCredentials.load("BLOCK_NAME"), "us-east-1")
            return sum(r.monthly_cost or 0 for r in price_resources(inventory))
        ```
    """
    catalog = catalog or load_catalog()
    return [r.model_copy(update=_price_one(r, catalog)) for r in resources]
