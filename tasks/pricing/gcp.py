"""GCP Compute Engine prices from the Cloud Billing Catalog API.

GCP does not price machine types directly: a VM costs its vCPUs times the family's
per-core SKU plus its memory (GiB) times the family's per-GiB RAM SKU, plus any GPUs
("N2 Instance Core running in Americas", "N2 Instance Ram running in Americas",
"Nvidia Tesla T4 GPU running in Americas"; spot SKUs have usage type
``Preemptible``). ``list_skus`` on the Compute Engine service returns them all; the
pure functions below pick the rates and price each catalog machine type.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any, Literal

from google.cloud.billing_v1 import Sku
from prefect_gcp import GcpCredentials

from tasks.clouds.gcp import BILLING_ENDPOINT, catalog_client
from tasks.common.retry import cloud_api_task, task_logger
from tasks.pricing.catalog import InstanceType
from tasks.pricing.gpu import normalize_gpu
from tasks.pricing.prices import PriceTable, Quote

GCP_BILLING_ENDPOINT = BILLING_ENDPOINT
COMPUTE_ENGINE_SERVICE = "services/6F81-5844-456A"
GCP_SOURCE = (
    "GCP Cloud Billing Catalog API (Compute Engine SKUs: vCPU x core rate + GiB x RAM rate "
    "+ GPUs; spot = Preemptible SKUs)"
)
# Shared-core machines are billed as a fraction of a vCPU; the per-core formula does not apply.
SHARED_CORE = frozenset({"e2-micro", "e2-small", "e2-medium", "f1-micro", "g1-small"})
_EXCLUDED_WORDS = (
    "Custom",
    "Sole Tenancy",
    "Premium",
    "Extended",
    "Commitment",
    "Reserved",
    "Reservation",
    "Virtual Workstation",
    "DWS",
    "Flex",
)
_PREFIXES = ("Spot Preemptible ", "Preemptible ")
_CORE_RAM = re.compile(r"^(?P<fam>.+?) (?:Instance )?(?P<kind>Core|Ram) running in (?P<where>.+)$")
_GPU = re.compile(
    r"^Nvidia (?P<gpu>.+?) GPU (?:attached to Spot Preemptible VMs )?running in (?P<where>.+)$"
)
_FAMILY_TOKEN = re.compile(r"^[a-z]\d+[a-z]*$")
_FAMILY_WORDS = {"compute optimized": "c2", "memory-optimized": "m1", "memory optimized": "m1"}

Usage = Literal["OnDemand", "Preemptible"]
# ("core", family) | ("ram", family) | ("gpu", canonical gpu, "80gb" or "")
Component = tuple[str, ...]


def unit_price(sku: Mapping[str, Any]) -> float | None:
    """USD per usage unit of a SKU: the last tier of its first pricing info."""
    infos = sku.get("pricingInfo") or []
    if not infos:
        return None
    rates = (infos[0].get("pricingExpression") or {}).get("tieredRates") or []
    if not rates:
        return None
    money = rates[-1].get("unitPrice") or {}
    if money.get("currencyCode", "USD") != "USD":
        return None
    return int(money.get("units") or 0) + int(money.get("nanos") or 0) / 1e9


def _family(words: str) -> str | None:
    lowered = words.strip().lower()
    if lowered in _FAMILY_WORDS:
        return _FAMILY_WORDS[lowered]
    token = lowered.split(" ")[0]
    return token if _FAMILY_TOKEN.match(token) else None


def classify_sku(sku: Mapping[str, Any]) -> tuple[Component, Usage] | None:
    """What a Compute Engine SKU prices, if it is a core, RAM or GPU hourly rate.

    Args:
        sku: one SKU in the API's JSON shape (``description``, ``category.usageType``,
            ``pricingInfo``, ``serviceRegions``).

    Returns:
        ``(component, usage)`` such as ``(("core", "n2"), "OnDemand")``,
        ``(("ram", "n2d"), "Preemptible")`` or ``(("gpu", "nvidia-t4", ""), "OnDemand")``;
        ``None`` for commitments, custom/sole-tenant/extended memory, licences, disks, ...
    """
    usage = (sku.get("category") or {}).get("usageType")
    if usage not in ("OnDemand", "Preemptible"):
        return None
    desc = str(sku.get("description", "")).strip()
    if any(word in desc for word in _EXCLUDED_WORDS):
        return None
    for prefix in _PREFIXES:
        if desc.startswith(prefix):
            desc = desc[len(prefix) :]
    unit = ((sku.get("pricingInfo") or [{}])[0].get("pricingExpression") or {}).get("usageUnit")
    gpu = _GPU.match(desc)
    if gpu:
        if unit not in (None, "", "h"):
            return None
        name = gpu.group("gpu")
        try:
            canonical = normalize_gpu(name)
        except ValueError:
            return None
        return ("gpu", canonical, "80gb" if "80gb" in name.lower().replace(" ", "") else ""), usage
    match = _CORE_RAM.match(desc)
    if not match:
        return None
    family = _family(match.group("fam"))
    if family is None:
        return None
    kind = match.group("kind").lower()
    if unit not in (None, "", "h" if kind == "core" else "GiBy.h"):
        return None
    return (kind, family), usage


RateTable = dict[tuple[Component, Usage], dict[str, float]]


def build_rate_table(
    skus: Iterable[Mapping[str, Any]], regions: Iterable[str] | None = None
) -> RateTable:
    """Collect core/RAM/GPU hourly rates per region from Compute Engine SKUs.

    When two SKUs price the same component in the same region, the one naming fewer
    regions (the more specific one) wins.

    Args:
        skus: SKUs in the API's JSON shape.
        regions: keep only these region ids (all when None).

    Returns:
        ``(component, usage)`` -> region -> USD per unit (vCPU-hour, GiB-hour, GPU-hour).
    """
    keep = set(regions) if regions is not None else None
    best: dict[tuple[Component, Usage], dict[str, tuple[int, float]]] = {}
    for sku in skus:
        classified = classify_sku(sku)
        if classified is None:
            continue
        price = unit_price(sku)
        if price is None or price <= 0:
            continue
        sku_regions = list(sku.get("serviceRegions") or [])
        for region in sku_regions:
            if keep is not None and region not in keep:
                continue
            slot = best.setdefault(classified, {})
            if region not in slot or len(sku_regions) < slot[region][0]:
                slot[region] = (len(sku_regions), price)
    return {key: {r: p for r, (_n, p) in by_region.items()} for key, by_region in best.items()}


def machine_family(instance_name: str) -> str:
    """``n2-standard-4`` -> ``n2``."""
    return instance_name.split("-")[0].lower()


def machine_price(inst: InstanceType, region: str, usage: Usage, rates: RateTable) -> float | None:
    """Hourly USD price of one machine type in one region, or None if a rate is missing.

    Args:
        inst: the catalog entry (name, vCPUs, memory, GPUs).
        region: region id, e.g. ``us-central1``.
        usage: ``OnDemand`` or ``Preemptible`` (spot).
        rates: from ``build_rate_table``.

    Returns:
        ``vcpus x core + memory_gib x ram (+ gpus x gpu rate)``, rounded to 6 places.
    """
    if inst.name.lower() in SHARED_CORE:
        return None
    family = machine_family(inst.name)
    core = rates.get((("core", family), usage), {}).get(region)
    ram = rates.get((("ram", family), usage), {}).get(region)
    if core is None or ram is None:
        return None
    total = inst.vcpus * core + inst.memory_gib * ram
    if inst.gpu is not None:
        try:
            canonical = normalize_gpu(inst.gpu.model)
        except ValueError:
            return None
        order = ("80gb", "") if inst.gpu.memory_gib >= 70 else ("", "80gb")
        gpu_rate = None
        for tag in order:
            gpu_rate = rates.get((("gpu", canonical, tag), usage), {}).get(region)
            if gpu_rate is not None:
                break
        if gpu_rate is None:
            return None
        total += inst.gpu.count * gpu_rate
    return round(total, 6)


def price_instances(
    instances: Iterable[InstanceType], regions: Iterable[str], rates: RateTable
) -> PriceTable:
    """Price every machine type in every region from a rate table.

    Args:
        instances: catalog entries.
        regions: region ids.
        rates: from ``build_rate_table``.

    Returns:
        Machine type -> region -> ``Quote``; pairs without an on-demand price are absent.
    """
    table: PriceTable = {}
    for inst in instances:
        for region in regions:
            on_demand = machine_price(inst, region, "OnDemand", rates)
            if on_demand is None:
                continue
            spot = machine_price(inst, region, "Preemptible", rates)
            table.setdefault(inst.name, {})[region] = Quote(on_demand=on_demand, spot=spot)
    return table


@cloud_api_task("fetch-gcp-prices")
def fetch_gcp_prices(
    gcp_credentials: GcpCredentials,
    instances: list[InstanceType],
    regions: list[str],
    api_endpoint: str = GCP_BILLING_ENDPOINT,
    timeout_seconds: float = 60.0,
    page_size: int | None = None,
) -> PriceTable:
    """Fetch on-demand and spot hourly prices for Compute Engine machine types.

    Lists every Compute Engine SKU (``services/6F81-5844-456A``), keeps the per-core,
    per-GiB RAM and per-GPU hourly rates, and prices each machine type from its
    vCPUs, memory and GPUs.

    Args:
        gcp_credentials: prefect-gcp ``GcpCredentials`` block.
        instances: catalog machine types (name, vCPUs, memory, GPUs), e.g. the
            ``instances`` of the GCP ``ProviderCatalog``.
        regions: region ids, e.g. ``["us-central1", "europe-west4"]``.
        api_endpoint: the Cloud Billing API base URL (override for tests).
        timeout_seconds: per-request timeout.
        page_size: SKUs per page to ask for (the server's default when None).

    Returns:
        Machine type -> region -> ``Quote``; pairs without all rates are absent.

    Example:
        ```python
        from prefect import flow
        from prefect_gcp import GcpCredentials
        from tasks.pricing.catalog import load_catalog
        from tasks.pricing.gcp import fetch_gcp_prices

        @flow
        def gcp_prices():
            creds = GcpCredentials.load("BLOCK_NAME")
            machines = load_catalog().providers["gcp"].instances
            return fetch_gcp_prices(creds, machines, ["us-central1"])
        ```
    """
    logger = task_logger(__name__)
    client = catalog_client(gcp_credentials, api_endpoint)
    request: dict[str, Any] = {"parent": COMPUTE_ENGINE_SERVICE, "currency_code": "USD"}
    if page_size:
        request["page_size"] = page_size
    pager = client.list_skus(request=request, retry=None, timeout=timeout_seconds)
    skus = [Sku.to_dict(s, preserving_proto_field_name=False) for s in pager]
    rates = build_rate_table(skus, regions)
    table = price_instances(instances, regions, rates)
    logger.info(
        "GCP Billing Catalog: %d SKUs read, %d machine/region prices computed",
        len(skus),
        sum(len(v) for v in table.values()),
    )
    return table
