"""Savings rules over the shared inventory and cost rows, the same for every cloud.

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

``recommend_commitments`` reads FOCUS rows: steady on-demand compute spend becomes a
1-year commitment sized at the 10th percentile of daily spend.

A saving is claimed only from known prices: an unknown price gives a recommendation
with ``estimated_monthly_saving`` 0 and says so, never an invented figure.
"""

from __future__ import annotations

import hashlib
import statistics
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Literal

import pyarrow as pa
import pyarrow.compute as pc
from pydantic import BaseModel, Field

from tasks.costs.focus_schema import day_start, provider_key
from tasks.inventory.model import HOURS_PER_MONTH, Resource
from tasks.pricing.catalog import Catalog, load_catalog
from tasks.pricing.resource_prices import catalog_price

Kind = Literal["rightsize", "idle", "commitment", "tagging"]
Risk = Literal["low", "medium", "high"]

MIN_COVERAGE = 0.5  # share of the window's hourly CPU datapoints a rightsizing needs
MAX_PROJECTED_PEAK = 90.0  # CPU % the peak may reach on the smaller size
NAT_IDLE_BYTES = 100 * 1024**2  # bytes sent over the whole window that still count as idle
DEFAULT_MAX_CV = 0.25  # daily spend steadier than this (std / mean) is commitment-worthy
DEFAULT_MIN_DAYS = 14  # days of spend a commitment estimate needs
MIN_COMMIT_HOURLY = 0.01  # USD/hour of on-demand spend below which a commitment is noise


@dataclass(frozen=True)
class CommitmentPlan:
    """A 1-year commitment product and its documented typical discount (an estimate)."""

    name: str
    discount: float
    # "discounted": the purchase is stated in $/hour at the discounted rate (AWS Savings
    # Plans, Azure savings plan); "on_demand": in $/hour of on-demand-equivalent spend
    # (GCP spend-based flexible CUDs).
    basis: Literal["discounted", "on_demand"]
    resource_type: str


# Discounts are typical 1-year figures versus on-demand for general-purpose Linux VMs
# (AWS Savings Plans pricing page, Azure savings plan / reservations pages, GCP
# committed use discounts page); real rates vary by family and region.
COMMITMENT_PLANS: dict[str, CommitmentPlan] = {
    "aws": CommitmentPlan(
        "1-year no-upfront Compute Savings Plan", 0.28, "discounted", "compute-savings-plan"
    ),
    "azure": CommitmentPlan(
        "1-year Azure savings plan for compute (or reservation)",
        0.30,
        "discounted",
        "azure-savings-plan",
    ),
    "gcp": CommitmentPlan(
        "1-year Compute flexible committed use discount", 0.28, "on_demand", "flexible-cud"
    ),
}


class Recommendation(BaseModel):
    """One savings opportunity with the exact action and the evidence behind it."""

    id: str = Field(description="Stable id: kind + hash of provider, account and resource")
    kind: Kind
    provider: Literal["aws", "azure", "gcp"]
    account: str
    region: str | None = None
    resource_id: str | None = None
    resource_type: str | None = None
    title: str
    action: str = Field(description="Exact, human-actionable step")
    currency: str = Field(default="USD", description="Currency of the three amounts below")
    current_monthly_cost: float | None = Field(default=None, description="Per month now")
    estimated_monthly_cost: float | None = Field(default=None, description="Per month after")
    estimated_monthly_saving: float = Field(ge=0, description="Per month; 0 when unknown")
    risk: Risk
    confidence: float = Field(ge=0, le=1)
    reason: str = Field(description="The evidence")


def rec_id(kind: str, *parts: str) -> str:
    """A stable recommendation id from its kind and identifying parts."""
    digest = hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:16]
    return f"{kind}-{digest}"


def _money(value: float | None, currency: str = "USD") -> str:
    if value is None:
        return "unknown"
    return f"${value:,.2f}" if currency == "USD" else f"{value:,.2f} {currency}"


def _label(r: Resource) -> str:
    return f"{r.name} ({r.id})" if r.name and r.name != r.id else r.id


def _costing(r: Resource) -> str:
    """' costing $X/month (note)' when the resource's price is known, else ''."""
    if r.monthly_cost is None:
        return ""
    note = f" ({r.price_note})" if r.price_note else ""
    return f" costing {_money(r.monthly_cost)}/month{note}"


def _monthly(hourly: float) -> float:
    return round(hourly * HOURS_PER_MONTH, 2)


# ---------------------------------------------------------------------------- rules


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
    current = next((i for i in pcat.instances if i.name == r.type), None) if pcat else None
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
        billed = ", ".join(f"{a.id} {_money(a.monthly_cost)}/month" for a in attached)
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


def _now(now: datetime | None) -> datetime:
    if now is None:
        return datetime.now(UTC)
    return now.replace(tzinfo=UTC) if now.tzinfo is None else now


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
        recs = recommend_resources(price_resources(inventory), required_tags=["team"])
        recs[0].action  # "Resize m7i.4xlarge -> m7i.2xlarge (...)"
        ```
    """
    _check_thresholds(cpu_avg_threshold, cpu_peak_threshold, stopped_days)
    when = _now(now)
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


# ---------------------------------------------------------------------- commitments


def _column(table: pa.Table, name: str, length: int) -> pa.ChunkedArray | pa.Array:
    if name in table.column_names:
        return table[name]
    return pa.nulls(length, pa.string())


def on_demand_compute_daily(
    costs: pa.Table, start: date, end: date
) -> dict[tuple[str, str, str], dict[date, float]]:
    """Daily on-demand compute spend per (provider key, account, currency).

    Rows counted: ServiceCategory ``Compute``, ChargeCategory ``Usage``, PricingCategory
    ``Standard`` or null, no CommitmentDiscountId, ChargePeriodStart in ``[start, end)``.
    The account is SubAccountId, else BillingAccountId; the amount is BilledCost.
    """
    required = ("ProviderName", "BillingAccountId", "ChargePeriodStart", "BilledCost")
    required += ("ServiceCategory", "ChargeCategory")
    missing = [c for c in required if c not in costs.column_names]
    if missing:
        raise ValueError(f"costs: missing FOCUS columns {missing}")
    n = costs.num_rows
    ts = pc.cast(costs["ChargePeriodStart"], pa.timestamp("us", tz="UTC"))
    lo = pa.scalar(datetime(start.year, start.month, start.day, tzinfo=UTC), ts.type)
    hi = pa.scalar(datetime(end.year, end.month, end.day, tzinfo=UTC), ts.type)
    pricing = _column(costs, "PricingCategory", n)
    commitment = _column(costs, "CommitmentDiscountId", n)
    mask = pc.and_kleene(
        pc.and_kleene(
            pc.equal(costs["ServiceCategory"], "Compute"),
            pc.equal(costs["ChargeCategory"], "Usage"),
        ),
        pc.and_kleene(
            pc.or_kleene(pc.is_null(pricing), pc.equal(pricing, "Standard")),
            pc.or_kleene(pc.is_null(commitment), pc.equal(commitment, "")),
        ),
    )
    mask = pc.and_kleene(mask, pc.and_kleene(pc.greater_equal(ts, lo), pc.less(ts, hi)))
    mask = pc.fill_null(mask, False)
    account = pc.coalesce(_column(costs, "SubAccountId", n), costs["BillingAccountId"])
    currency = pc.fill_null(_column(costs, "BillingCurrency", n), "USD")
    small = pa.table(
        {
            "provider": costs["ProviderName"],
            "account": account,
            "currency": currency,
            "day": pc.cast(ts, pa.date32()),
            "cost": costs["BilledCost"],
        }
    ).filter(mask)
    grouped = small.group_by(["provider", "account", "currency", "day"]).aggregate(
        [("cost", "sum")]
    )
    out: dict[tuple[str, str, str], dict[date, float]] = defaultdict(dict)
    for row in grouped.to_pylist():
        key = (provider_key(row["provider"]), row["account"] or "unknown", row["currency"])
        out[key][row["day"]] = out[key].get(row["day"], 0.0) + (row["cost_sum"] or 0.0)
    return dict(out)


def commitment_for(
    provider: str,
    account: str,
    daily: dict[date, float],
    *,
    lookback_days: int,
    currency: str = "USD",
    max_cv: float = DEFAULT_MAX_CV,
    min_days: int = DEFAULT_MIN_DAYS,
) -> Recommendation | None:
    """A commitment recommendation from one account's daily on-demand compute spend.

    Days between the first and last day with spend and without rows count as 0. The
    series must span ``min_days`` days, have a positive mean and a coefficient of
    variation (population std / mean) below ``max_cv``. The commitment covers the 10th
    percentile of daily spend, so it is fully used on about 90% of days.
    """
    plan = COMMITMENT_PLANS.get(provider)
    if plan is None or not daily:
        return None
    first, last = min(daily), max(daily)
    days = [first + timedelta(days=i) for i in range((last - first).days + 1)]
    values = [daily.get(d, 0.0) for d in days]
    mean = statistics.fmean(values)
    if len(values) < min_days or mean <= 0:
        return None
    cv = statistics.pstdev(values) / mean
    if cv >= max_cv:
        return None
    p10 = statistics.quantiles(values, n=10, method="inclusive")[0]
    covered_hourly = p10 / 24
    if covered_hourly < MIN_COMMIT_HOURLY:
        return None
    billed_hourly = covered_hourly * (1 - plan.discount)
    saving = round(covered_hourly * HOURS_PER_MONTH * plan.discount, 2)
    current = round(mean / 24 * HOURS_PER_MONTH, 2)
    money = lambda v: _money(v, currency)  # noqa: E731
    if plan.basis == "discounted":
        action = (
            f"Buy a {plan.name} with a commitment of {money(billed_hourly)}/hour "
            f"(covers about {money(covered_hourly)}/hour of current on-demand compute)."
        )
    else:
        action = (
            f"Buy a {plan.name} for {money(covered_hourly)}/hour of on-demand-equivalent "
            f"spend (billed about {money(billed_hourly)}/hour)."
        )
    return Recommendation(
        id=rec_id("commitment", provider, account, currency),
        kind="commitment",
        provider=provider,  # type: ignore[arg-type]
        account=account,
        resource_type=plan.resource_type,
        currency=currency,
        title=f"Commit to steady compute spend in {provider} account {account}",
        action=action,
        current_monthly_cost=current,
        estimated_monthly_cost=round(current - saving, 2),
        estimated_monthly_saving=saving,
        risk="low" if cv < max_cv / 2 else "medium",
        confidence=round(min(1.0, len(values) / lookback_days) * (1 - cv), 2),
        reason=(
            f"On-demand compute spend over {len(values)} days: mean {money(mean)}/day, "
            f"10th percentile {money(p10)}/day, coefficient of variation {cv:.2f}. "
            f"The {plan.discount:.0%} discount is a typical published figure for this "
            "plan, not a quote; check the provider's own recommendation before buying."
        ),
    )


def commitment_as_of(last_day: date | None) -> datetime | None:
    """Judge commitments on the data's last days, not the wall clock's.

    A dataset collected up to an earlier day (an export analysed later, a source behind)
    still shows its steady spend; for a current dataset this is today.
    """
    return day_start(last_day + timedelta(days=1)) if last_day else None


def recommend_commitments(
    costs: pa.Table,
    *,
    lookback_days: int = 30,
    now: datetime | None = None,
    max_cv: float = DEFAULT_MAX_CV,
    min_days: int = DEFAULT_MIN_DAYS,
) -> list[Recommendation]:
    """Commitment recommendations from FOCUS cost rows (``tasks.costs.focus_schema.SCHEMA``).

    Per provider and account, the daily on-demand compute spend of the last
    ``lookback_days`` full days before ``now`` (see ``on_demand_compute_daily``); a
    steady series (see ``commitment_for``) gets a 1-year commitment of its 10th
    percentile: AWS Compute Savings Plan (~28%), Azure savings plan/reservation (~30%),
    GCP flexible CUD (~28%). The saving is the covered on-demand spend x the discount.

    Args:
        costs: FOCUS rows (daily granularity; a row counts on its ChargePeriodStart day).
        lookback_days: days of history to judge.
        now: end of the window, exclusive of its own (partial) day; default now, UTC.
        max_cv: steadiness threshold (coefficient of variation of daily spend).
        min_days: days of data needed.

    Returns:
        Recommendations, largest saving first.

    Example:
        ```python
        recommend_commitments(CostDataset().read(), lookback_days=30)
        ```
    """
    if lookback_days < 1:
        raise ValueError(f"lookback_days: must be at least 1, got {lookback_days}")
    end = _now(now).date()
    series = on_demand_compute_daily(costs, end - timedelta(days=lookback_days), end)
    out = []
    for (provider, account, currency), daily in sorted(series.items()):
        rec = commitment_for(
            provider,
            account,
            daily,
            lookback_days=lookback_days,
            currency=currency,
            max_cv=max_cv,
            min_days=min_days,
        )
        if rec is not None:
            out.append(rec)
    return sorted(out, key=lambda x: -x.estimated_monthly_saving)


# --------------------------------------------------------------------------- scores


def optimization_scores(
    resources: Iterable[Resource], recommendations: Iterable[Recommendation]
) -> dict[str, int]:
    """Optimization score per resource id: 100 = nothing to improve, 0 = all waste.

    Each recommendation on a resource subtracts ``10 + 80 x share`` points, where
    ``share`` is its monthly saving over the resource's current monthly cost (capped at
    1; 0 when the cost is unknown or zero). So a missing tag costs 10 points, halving an
    instance's cost 50, an idle resource 90; the score is ``max(0, 100 - total)``,
    rounded. More recommendations, or larger savings, always mean a lower score.
    Recommendations without a resource (commitments) score no resource.

    Example:
        ```python
        optimization_scores(resources, recommend_resources(resources))["vol-0abc"]  # 10
        ```
    """
    penalty: dict[str, float] = {r.id: 0.0 for r in resources}
    for rec in recommendations:
        if rec.resource_id not in penalty:
            continue
        current = rec.current_monthly_cost
        share = min(1.0, rec.estimated_monthly_saving / current) if current else 0.0
        penalty[rec.resource_id] += 10 + 80 * share
    return {rid: max(0, round(100 - p)) for rid, p in penalty.items()}
