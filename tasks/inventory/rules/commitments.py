"""Commitment recommendations from FOCUS cost rows: steady on-demand compute spend.

Per provider and account, the daily on-demand compute spend of a look-back window
(``on_demand_compute_daily``) that is steady enough (``commitment_for``) becomes a 1-year
commitment sized at the 10th percentile of daily spend, so it is fully used on about 90%
of days: an AWS Compute Savings Plan, an Azure savings plan or a GCP flexible CUD
(``COMMITMENT_PLANS``, typical published discounts, not quotes). ``commitment_as_of``
judges a dataset on its own last days rather than the wall clock's.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Literal

import pyarrow as pa
import pyarrow.compute as pc

from tasks.costs.focus_schema import day_start, provider_key
from tasks.inventory.model import HOURS_PER_MONTH
from tasks.inventory.rules.recommendation import Recommendation, judged_at, money, rec_id

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
    amount = lambda v: money(v, currency)  # noqa: E731
    if plan.basis == "discounted":
        action = (
            f"Buy a {plan.name} with a commitment of {amount(billed_hourly)}/hour "
            f"(covers about {amount(covered_hourly)}/hour of current on-demand compute)."
        )
    else:
        action = (
            f"Buy a {plan.name} for {amount(covered_hourly)}/hour of on-demand-equivalent "
            f"spend (billed about {amount(billed_hourly)}/hour)."
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
            f"On-demand compute spend over {len(values)} days: mean {amount(mean)}/day, "
            f"10th percentile {amount(p10)}/day, coefficient of variation {cv:.2f}. "
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
        from tasks.costs.dataset import CostDataset
        from tasks.inventory.rules.commitments import commitment_as_of, recommend_commitments

        dataset = CostDataset()  # $OPSFLOW_HOME/costs, filled by collect-costs
        last_day = dataset.last_charge_day()
        if last_day:
            recs = recommend_commitments(dataset.read(), now=commitment_as_of(last_day))
            print([(r.provider, r.account, r.estimated_monthly_saving) for r in recs])
        ```
    """
    if lookback_days < 1:
        raise ValueError(f"lookback_days: must be at least 1, got {lookback_days}")
    end = judged_at(now).date()
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
