"""Savings rules over one inventory, the same for every cloud: right-size, idle, tagging.

``recommend_resources`` reads priced ``Resource`` objects (``tasks.pricing.resource_prices``):

- rightsize: a running instance whose CPU average AND peak (p95, else maximum) stayed
  under the thresholds, over at least ``MIN_COVERAGE`` of the window's hourly
  datapoints, moves to the largest smaller size of its catalog family. No metrics, too
  few datapoints, GPU types, no smaller size or no price: no recommendation.
- idle: instances stopped longer than ``stopped_days`` (saving: the disks and addresses
  still billed for them), unattached volumes, unassociated public IPs and NAT gateways
  that sent ~nothing (``NAT_IDLE_BYTES``) over the whole window.
- tagging: resources missing a required tag (keys compared trimmed, case-insensitive;
  a blank value counts as missing).

Commitments are judged on cost rows instead (``tasks.inventory.rules.commitments``), and
scores from both (``tasks.inventory.rules.scores``). A saving is claimed only from known
prices: an unknown price gives a recommendation with ``estimated_monthly_saving`` 0 and
says so, never an invented figure.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta

from tasks.inventory.model import HOURS_PER_MONTH, Resource
from tasks.inventory.rules.recommendation import Recommendation, Risk, judged_at, money, rec_id
from tasks.pricing.catalog import Catalog, load_catalog
from tasks.pricing.resource_prices import catalog_price

MIN_COVERAGE = 0.5  # share of the window's hourly CPU datapoints a rightsizing needs
MAX_PROJECTED_PEAK = 90.0  # CPU % the peak may reach on the smaller size
NAT_IDLE_BYTES = 100 * 1024**2  # bytes sent over the whole window that still count as idle


def _label(r: Resource) -> str:
    return f"{r.name} ({r.id})" if r.name and r.name != r.id else r.id


def _costing(r: Resource) -> str:
    """' costing $X/month (note)' when the resource's price is known, else ''."""
    if r.monthly_cost is None:
        return ""
    note = f" ({r.price_note})" if r.price_note else ""
    return f" costing {money(r.monthly_cost)}/month{note}"


def _monthly(hourly: float) -> float:
    return round(hourly * HOURS_PER_MONTH, 2)


def rightsize(
    r: Resource, catalog: Catalog, cpu_avg_threshold: float, cpu_peak_threshold: float
) -> Recommendation | None:
    """The rightsizing recommendation for one resource, or None (see module docstring)."""
    if r.kind != "instance" or r.state != "running":
        return None
    cpu = r.metrics.get("cpu_percent")
    if cpu is None or cpu.datapoints == 0 or cpu.average is None:
        return None
    peak = cpu.p95 if cpu.p95 is not None else cpu.maximum
    coverage = min(1.0, cpu.datapoints / (cpu.period_days * 24))
    if peak is None or coverage < MIN_COVERAGE:
        return None
    if not (cpu.average < cpu_avg_threshold and peak < cpu_peak_threshold):
        return None
    pcat = catalog.providers.get(r.provider)
    current = pcat.instance(r.type) if pcat else None
    if pcat is None or current is None or current.category == "gpu":
        return None  # GPU work is not measured by CPU
    if r.hourly_price is not None:
        current_hourly, note = r.hourly_price, r.price_note
    else:
        found = catalog_price(catalog, r.provider, r.type, r.region)
        if found is None:
            return None
        current_hourly, note = found.hourly, found.note
    smaller = []
    for inst in pcat.instances:
        if inst.family == current.family and inst.vcpus < current.vcpus:
            price = catalog_price(catalog, r.provider, inst.name, r.region)
            if price is not None:
                smaller.append((inst, price))
    if not smaller:
        return None
    target, target_price = max(smaller, key=lambda c: (c[0].vcpus, -c[1].hourly))
    projected = peak * current.vcpus / target.vcpus
    saving = _monthly(current_hourly) - _monthly(target_price.hourly)
    if projected > MAX_PROJECTED_PEAK or saving <= 0:
        return None
    risk: Risk = "low" if projected < 50 else "medium" if projected < 75 else "high"
    peak_name = "p95" if cpu.p95 is not None else "max"
    notes = [n for n in (note, target_price.note) if n]
    reason = (
        f"CPU avg {cpu.average:.1f}%, p95 {_pct(cpu.p95)}, max {_pct(cpu.maximum)} over "
        f"{cpu.period_days} days ({cpu.datapoints} datapoints); {target.name} has "
        f"{target.vcpus} vCPUs vs {current.vcpus}, so the {peak_name} would be about "
        f"{projected:.0f}%. Memory was not measured: {target.memory_gib:g} GiB vs "
        f"{current.memory_gib:g} GiB."
    ) + "".join(f" Price {n}." for n in notes)
    return Recommendation(
        id=rec_id("rightsize", r.provider, r.account, r.id),
        kind="rightsize",
        provider=r.provider,
        account=r.account,
        region=r.region,
        resource_id=r.id,
        resource_type=r.type,
        title=f"Right-size {_label(r)}: {r.type} -> {target.name}",
        action=f"Resize {r.type} -> {target.name} ({r.id}; needs a stop and start)",
        current_monthly_cost=_monthly(current_hourly),
        estimated_monthly_cost=_monthly(target_price.hourly),
        estimated_monthly_saving=round(saving, 2),
        risk=risk,
        confidence=round(0.9 * coverage, 2),  # at most 0.9: CPU only, memory unmeasured
        reason=reason,
    )


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f}%"


def _known_cost(items: Iterable[Resource]) -> tuple[float | None, list[Resource]]:
    """Sum of known monthly costs (None when none is known) and the unpriced items."""
    items = list(items)
    known = [i.monthly_cost for i in items if i.monthly_cost is not None]
    return (round(sum(known), 2) if known else None), [i for i in items if i.monthly_cost is None]


def _idle(
    r: Resource,
    *,
    title: str,
    action: str,
    reason: str,
    current: float | None,
    risk: Risk,
    confidence: float,
    unpriced: Sequence[Resource] = (),
) -> Recommendation:
    if current is None:
        reason += " Price unknown: no saving claimed."
    elif unpriced:
        reason += f" Not counted (price unknown): {', '.join(u.id for u in unpriced)}."
    return Recommendation(
        id=rec_id("idle", r.provider, r.account, r.id),
        kind="idle",
        provider=r.provider,
        account=r.account,
        region=r.region,
        resource_id=r.id,
        resource_type=r.type,
        title=title,
        action=action,
        current_monthly_cost=round(current, 2) if current is not None else None,
        estimated_monthly_cost=0.0 if current is not None else None,
        estimated_monthly_saving=round(current or 0.0, 2),
        risk=risk,
        confidence=confidence,
        reason=reason,
    )


def idle(
    r: Resource,
    attached: Sequence[Resource],
    now: datetime,
    stopped_days: float,
) -> Recommendation | None:
    """The idle-resource recommendation for one resource, or None.

    Args:
        r: the resource.
        attached: volumes and addresses attached to ``r`` (for a stopped instance).
        now: the time the rules judge at.
        stopped_days: an instance stopped longer than this is idle.
    """
    if r.kind == "instance" and r.state == "stopped" and r.state_since is not None:
        days = (now - r.state_since).total_seconds() / 86400
        if days <= stopped_days:
            return None
        cost, unpriced = _known_cost(attached)
        volumes = [a.id for a in attached if a.kind == "volume"]
        addresses = [a.id for a in attached if a.kind == "address"]
        steps = [f"Snapshot {', '.join(volumes)}"] if volumes else []
        steps.append(f"terminate {r.id}" if steps else f"Terminate {r.id}")
        if addresses:
            steps.append(f"release {', '.join(addresses)}")
        billed = ", ".join(f"{a.id} {money(a.monthly_cost)}/month" for a in attached)
        return _idle(
            r,
            title=f"Terminate {_label(r)}: stopped {days:.0f} days",
            action=", then ".join(steps) + ".",
            reason=(
                f"Stopped since {r.state_since:%Y-%m-%d} ({days:.0f} days, threshold "
                f"{stopped_days:g}); compute is not billed but "
                + (
                    f"its disks/addresses are: {billed}."
                    if attached
                    else "no disk or address attached to it is in the inventory."
                )
                + " Snapshot storage is billed after termination and is not subtracted."
            ),
            current=cost if attached else 0.0,
            risk="medium",
            confidence=0.8,
            unpriced=unpriced,
        )
    if r.kind == "volume" and r.attached_to is None and r.state != "in-use":
        size = f"{r.size_gib:g} GiB " if r.size_gib is not None else ""
        return _idle(
            r,
            title=f"Delete unattached volume {_label(r)}",
            action=f"Snapshot {r.id}, then delete it.",
            reason=f"Unattached {size}{r.type} volume{_costing(r)}.",
            current=r.monthly_cost,
            risk="low",
            confidence=0.9,
        )
    if r.kind == "address" and r.attached_to is None:
        return _idle(
            r,
            title=f"Release unused public IP {_label(r)}",
            action=f"Release {r.id}" + (f" ({r.name})" if r.name and r.name != r.id else "") + ".",
            reason=(
                f"Not associated with any instance or interface{_costing(r)}. A released "
                "address cannot be recovered."
            ),
            current=r.monthly_cost,
            risk="low",
            confidence=0.9,
        )
    if r.kind == "nat_gateway" and r.state in ("available", "running"):
        sent = r.metrics.get("bytes_out_to_destination")
        if sent is None or sent.datapoints == 0 or sent.average is None:
            return None
        window = timedelta(days=sent.period_days)
        if r.created is not None and now - r.created < window:
            return None  # younger than the window: its idle period is not yet known
        total = sent.average * sent.datapoints
        if total >= NAT_IDLE_BYTES:
            return None
        coverage = min(1.0, sent.datapoints / (sent.period_days * 24))
        return _idle(
            r,
            title=f"Delete idle NAT gateway {_label(r)}",
            action=f"Delete NAT gateway {r.id} and release its public IP.",
            reason=(
                f"{total / 1024**2:.2f} MiB sent to destinations over {sent.period_days} days "
                f"({sent.datapoints} hourly datapoints, busiest hour {sent.maximum or 0:.0f} "
                f"bytes); routes through it lose internet egress. Gateway{_costing(r)}."
            ),
            current=r.monthly_cost,
            risk="medium",
            confidence=round(0.5 + 0.45 * coverage, 2),
        )
    return None


def missing_tags(r: Resource, required_tags: Sequence[str]) -> list[str]:
    """Required tag keys ``r`` lacks (trimmed, case-insensitive; blank values count)."""
    present = {k.strip().lower() for k, v in r.tags.items() if str(v).strip()}
    wanted = list(dict.fromkeys(t.strip().lower() for t in required_tags if t.strip()))
    return [t for t in wanted if t not in present]


def tagging(r: Resource, required_tags: Sequence[str]) -> Recommendation | None:
    """The tagging recommendation for one resource, or None when it has every tag."""
    missing = missing_tags(r, required_tags)
    if not missing:
        return None
    has = ", ".join(sorted(r.tags)) or "none"
    return Recommendation(
        id=rec_id("tagging", r.provider, r.account, r.id),
        kind="tagging",
        provider=r.provider,
        account=r.account,
        region=r.region,
        resource_id=r.id,
        resource_type=r.type,
        title=f"Tag {_label(r)}: missing {', '.join(missing)}",
        action=f"Add tags {', '.join(missing)} to {r.id}.",
        current_monthly_cost=r.monthly_cost,
        estimated_monthly_cost=r.monthly_cost,
        estimated_monthly_saving=0.0,
        risk="low",
        confidence=1.0,
        reason=f"Missing required tags {', '.join(missing)} (has: {has}); untagged cost "
        "cannot be allocated to an owner.",
    )


def _check_thresholds(cpu_avg: float, cpu_peak: float, stopped_days: float) -> None:
    if not 0 < cpu_avg <= 100:
        raise ValueError(f"cpu_avg_threshold: must be in (0, 100], got {cpu_avg}")
    if not 0 < cpu_peak <= 100:
        raise ValueError(f"cpu_peak_threshold: must be in (0, 100], got {cpu_peak}")
    if stopped_days < 0:
        raise ValueError(f"stopped_days: must not be negative, got {stopped_days}")


def recommend_resources(
    resources: list[Resource],
    *,
    required_tags: Sequence[str] = ("owner", "team", "env"),
    cpu_avg_threshold: float = 10.0,
    cpu_peak_threshold: float = 40.0,
    stopped_days: float = 7,
    now: datetime | None = None,
    catalog: Catalog | None = None,
) -> list[Recommendation]:
    """Rightsizing, idle-resource and tagging recommendations for an inventory.

    Args:
        resources: priced resources (``tasks.pricing.resource_prices.price_resources``) of any
            cloud; unpriced ones still get recommendations, without a claimed saving.
        required_tags: tag keys every resource must carry.
        cpu_avg_threshold: rightsize when average CPU % is below this ...
        cpu_peak_threshold: ... and peak CPU % (p95, else maximum) is below this.
        stopped_days: an instance stopped longer than this is idle.
        now: the time to judge "stopped for" and NAT age at (default: now, UTC).
        catalog: price catalog for smaller sizes (default ``load_catalog()``).

    Returns:
        Recommendations, largest monthly saving first.

    Example:
        ```python
        from tasks.inventory.model import Resource
        from tasks.inventory.rules.resources import recommend_resources
        from tasks.pricing.resource_prices import price_resources

        volume = Resource(
            id="vol-0abc", provider="aws", account="123456789012", region="us-east-1",
            kind="volume", type="gp3", state="available", size_gib=100, tags={"team": "data"},
        )
        recs = recommend_resources(price_resources([volume]), required_tags=["team"])
        print(recs[0].action, recs[0].estimated_monthly_saving)  # Snapshot vol-0abc, ... 8.0
        ```
    """
    _check_thresholds(cpu_avg_threshold, cpu_peak_threshold, stopped_days)
    when = judged_at(now)
    catalog = catalog or load_catalog()
    attached: dict[tuple[str, str, str], list[Resource]] = defaultdict(list)
    for r in resources:
        if r.attached_to and r.kind in ("volume", "address"):
            attached[(r.provider, r.account, r.attached_to)].append(r)
    out: list[Recommendation] = []
    for r in resources:
        found = (
            rightsize(r, catalog, cpu_avg_threshold, cpu_peak_threshold),
            idle(r, attached.get((r.provider, r.account, r.id), []), when, stopped_days),
            tagging(r, required_tags),
        )
        out += [rec for rec in found if rec is not None]
    return sorted(out, key=lambda x: (-x.estimated_monthly_saving, x.kind, x.id))
