"""Match compute requirements against the price catalog and rank the options.

Pure functions, no Prefect and no I/O: ``flows.compare_compute`` wraps them.

Example:
    ```python
    from tasks.pricing.catalog import load_catalog
    from tasks.pricing.compute import ComputeRequest, match_options, recommend

    request = ComputeRequest(vcpus=8, memory_gib=32, region="europe", providers=["aws", "gcp"])
    options = match_options(load_catalog(), request)
    print(options[0].instance_type, recommend(options).reason)
    ```
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from tasks.pricing.catalog import Catalog, InstanceType, InterruptionRisk, ProviderCatalog, Region

PricingModel = Literal["on_demand", "spot"]
GEOS = ("us", "europe", "asia")


class ComputeRequest(BaseModel):
    """A validated requirement (see ``flows.compare_compute`` for the parameters)."""

    vcpus: int
    memory_gib: float
    gpu_type: str | None = None
    gpu_count: int = 0
    gpu_memory_gib: float | None = None
    storage_gib: float = 0
    region: str | None = None
    spot_allowed: bool = False
    providers: list[str]
    hours_per_month: float = 730
    cheapest_region_only: bool = True


class ComputeOption(BaseModel):
    """One purchasable way to meet the requirement, priced for a month."""

    provider: str
    instance_type: str
    family: str
    category: str
    region: str
    region_name: str
    pricing_model: PricingModel
    vcpus: int
    memory_gib: float
    gpu_model: str | None = None
    gpu_count: float = 0
    gpu_memory_gib: float | None = None
    hourly_usd: float = Field(description="Instance price per hour")
    compute_monthly_usd: float
    storage_monthly_usd: float
    monthly_usd: float = Field(description="Compute plus block storage for hours_per_month")
    usd_per_vcpu_month: float
    usd_per_gib_month: float
    on_demand_monthly_usd: float = Field(description="Same instance and region at on-demand price")
    spot_saving_pct: float | None = None
    spot_interruption: InterruptionRisk | None = None


def resolve_regions(catalog: Catalog, region: str | None) -> tuple[dict[str, set[str]], list[str]]:
    """Which regions of each provider a region preference allows.

    A geography (``us``, ``europe``, ``asia``) selects that geography everywhere. A
    provider region id (``us-east-1``) selects exactly that region at its provider and
    the same geography at the others, so the comparison stays across clouds.

    Returns:
        (provider -> allowed region ids, notes explaining the choice)
    """
    allowed: dict[str, set[str]] = {}
    notes: list[str] = []
    if region is None:
        return {p: {r.id for r in c.regions} for p, c in catalog.providers.items()}, notes
    key = region.strip().lower()
    owner: tuple[str, Region] | None = None
    for p, c in catalog.providers.items():
        for r in c.regions:
            if r.id.lower() == key:
                owner = (p, r)
    if key in GEOS:
        geo = key
    elif owner is not None:
        geo = owner[1].geo
        notes.append(
            f"region {region!r} is a {owner[0]} region; other providers are compared in "
            f"their {geo!r} regions"
        )
    else:
        raise ValueError(f"unknown region {region!r}")
    for p, c in catalog.providers.items():
        if owner is not None and owner[0] == p:
            allowed[p] = {owner[1].id}
        else:
            allowed[p] = {r.id for r in c.regions if r.geo == geo}
    return allowed, notes


def known_regions(catalog: Catalog) -> list[str]:
    return sorted({r.id for c in catalog.providers.values() for r in c.regions})


def _meets(inst: InstanceType, req: ComputeRequest) -> bool:
    if inst.vcpus < req.vcpus or inst.memory_gib < req.memory_gib:
        return False
    if req.gpu_type is None:
        # GPUs nobody asked for are paid for all the same: not a match for a CPU workload.
        return inst.gpu is None
    gpu = inst.gpu
    if gpu is None or gpu.model != req.gpu_type or gpu.count < req.gpu_count:
        return False
    return req.gpu_memory_gib is None or gpu.memory_gib >= req.gpu_memory_gib


def _option(
    cat: ProviderCatalog,
    inst: InstanceType,
    region: Region,
    model: PricingModel,
    req: ComputeRequest,
) -> ComputeOption:
    price = inst.prices[region.id]
    hourly = price.spot if model == "spot" and price.spot is not None else price.on_demand
    compute = hourly * req.hours_per_month
    storage = req.storage_gib * region.block_storage_gib_month
    total = compute + storage
    on_demand_total = price.on_demand * req.hours_per_month + storage
    return ComputeOption(
        provider=cat.provider,
        instance_type=inst.name,
        family=inst.family,
        category=inst.category,
        region=region.id,
        region_name=region.name,
        pricing_model=model,
        vcpus=inst.vcpus,
        memory_gib=inst.memory_gib,
        gpu_model=inst.gpu.model if inst.gpu else None,
        gpu_count=inst.gpu.count if inst.gpu else 0,
        gpu_memory_gib=inst.gpu.memory_gib if inst.gpu else None,
        hourly_usd=round(hourly, 5),
        compute_monthly_usd=round(compute, 2),
        storage_monthly_usd=round(storage, 2),
        monthly_usd=round(total, 2),
        usd_per_vcpu_month=round(compute / inst.vcpus, 3),
        usd_per_gib_month=round(compute / inst.memory_gib, 3),
        on_demand_monthly_usd=round(on_demand_total, 2),
        spot_saving_pct=(
            round(100 * (1 - total / on_demand_total), 1) if model == "spot" else None
        ),
        spot_interruption=inst.spot_interruption if model == "spot" else None,
    )


def _rank_key(opt: ComputeOption) -> tuple[float, int, float, str]:
    return (opt.monthly_usd, opt.vcpus, opt.memory_gib, f"{opt.provider}:{opt.instance_type}")


def match_options(catalog: Catalog, req: ComputeRequest) -> list[ComputeOption]:
    """Every catalog option meeting or exceeding each requirement, cheapest first.

    With ``cheapest_region_only`` one row is kept per provider, instance type and
    pricing model: the cheapest allowed region.
    """
    allowed, _ = resolve_regions(catalog, req.region)
    options: list[ComputeOption] = []
    for provider in req.providers:
        cat = catalog.providers[provider]
        regions = {r.id: r for r in cat.regions if r.id in allowed.get(provider, set())}
        for inst in cat.instances:
            if not _meets(inst, req):
                continue
            for region_id, price in inst.prices.items():
                if region_id not in regions:
                    continue
                options.append(_option(cat, inst, regions[region_id], "on_demand", req))
                if req.spot_allowed and price.spot is not None:
                    options.append(_option(cat, inst, regions[region_id], "spot", req))
    if req.cheapest_region_only:
        best: dict[tuple[str, str, str], ComputeOption] = {}
        for opt in options:
            key = (opt.provider, opt.instance_type, opt.pricing_model)
            if key not in best or _rank_key(opt) < _rank_key(best[key]):
                best[key] = opt
        options = list(best.values())
    return sorted(options, key=_rank_key)


class SpotAdvice(BaseModel):
    option: ComputeOption
    saving_pct: float
    interruption: InterruptionRisk | None
    advice: str


class Recommendation(BaseModel):
    option: ComputeOption
    reason: str
    cheapest: ComputeOption
    best_price_per_vcpu: ComputeOption
    best_price_per_gib: ComputeOption
    spot: SpotAdvice | None = None


def _label(opt: ComputeOption) -> str:
    return f"{opt.provider} {opt.instance_type} in {opt.region}"


def recommend(options: list[ComputeOption]) -> Recommendation | None:
    """Pick one option and say why; None when nothing matches.

    On-demand is the default choice. A spot option is recommended instead only when
    its interruption band is low, since spot capacity can be reclaimed at short notice.
    """
    on_demand = [o for o in options if o.pricing_model == "on_demand"]
    if not on_demand:
        return None
    cheapest = on_demand[0]
    per_vcpu = min(on_demand, key=lambda o: (o.usd_per_vcpu_month, o.monthly_usd))
    per_gib = min(on_demand, key=lambda o: (o.usd_per_gib_month, o.monthly_usd))
    reason = (
        f"Cheapest on-demand option meeting every requirement: {_label(cheapest)} at "
        f"${cheapest.monthly_usd:,.2f}/month ({cheapest.vcpus} vCPU, {cheapest.memory_gib:g} GiB)."
    )
    if len(on_demand) > 1:
        runner_up = on_demand[1]
        reason += (
            f" Next: {_label(runner_up)} at ${runner_up.monthly_usd:,.2f}/month "
            f"(+{runner_up.monthly_usd - cheapest.monthly_usd:,.2f})."
        )
    if per_vcpu is not cheapest:
        reason += (
            f" Best price per vCPU: {_label(per_vcpu)} "
            f"(${per_vcpu.usd_per_vcpu_month:,.2f}/vCPU-month, {per_vcpu.vcpus} vCPU)."
        )
    if per_gib is not cheapest:
        reason += (
            f" Best price per GiB: {_label(per_gib)} "
            f"(${per_gib.usd_per_gib_month:,.2f}/GiB-month, {per_gib.memory_gib:g} GiB)."
        )
    chosen = cheapest
    spot_advice = None
    spots = [o for o in options if o.pricing_model == "spot"]
    if spots:
        spot = spots[0]
        saving = round(100 * (1 - spot.monthly_usd / cheapest.monthly_usd), 1)
        risk = spot.spot_interruption or "unknown"
        advice = (
            f"Spot {_label(spot)} costs ${spot.monthly_usd:,.2f}/month, {saving:g}% less than "
            f"the cheapest on-demand option; interruption risk {risk}. "
        )
        if spot.spot_interruption == "low":
            chosen = spot
            advice += "Recommended for workloads that checkpoint or tolerate restarts."
        else:
            advice += "Use it only for interruptible work (batch, CI, stateless replicas)."
        spot_advice = SpotAdvice(
            option=spot, saving_pct=saving, interruption=spot.spot_interruption, advice=advice
        )
        reason += " " + advice
    return Recommendation(
        option=chosen,
        reason=reason,
        cheapest=cheapest,
        best_price_per_vcpu=per_vcpu,
        best_price_per_gib=per_gib,
        spot=spot_advice,
    )
