"""Commitment recommendations (tasks.inventory.rules.commitments) on synthetic daily FOCUS
series: steady, spiky, short and gappy spend, which rows count, per provider and account,
thresholds and bad input. Pure logic: no servers, no Prefect."""

from __future__ import annotations

import statistics
from datetime import UTC, date, datetime, timedelta

import pyarrow as pa
import pytest

from tasks.costs.focus_schema import SCHEMA
from tasks.inventory.rules.commitments import COMMITMENT_PLANS, recommend_commitments

END = date(2026, 6, 15)


def focus_rows(
    provider,
    account,
    daily: dict[date, float],
    *,
    sub_account=True,
    category="Compute",
    charge="Usage",
    pricing=None,
    commitment=None,
):
    day = lambda d: datetime(d.year, d.month, d.day, tzinfo=UTC)  # noqa: E731
    return [
        {
            "BilledCost": cost,
            "EffectiveCost": cost,
            "ListCost": cost,
            "ContractedCost": cost,
            "BillingAccountId": "payer-" + account,
            "SubAccountId": account if sub_account else None,
            "BillingCurrency": "USD",
            "BillingPeriodStart": day(d.replace(day=1)),
            "BillingPeriodEnd": day(d.replace(day=28)),
            "ChargePeriodStart": day(d),
            "ChargePeriodEnd": day(d + timedelta(days=1)),
            "ChargeCategory": charge,
            "PricingCategory": pricing,
            "CommitmentDiscountId": commitment,
            "InvoiceIssuerName": provider,
            "ProviderName": provider,
            "PublisherName": provider,
            "ServiceCategory": category,
            "ServiceName": "compute",
        }
        for d, cost in daily.items()
    ]


def series(values, end=END):
    """Consecutive days ending the day before ``end``."""
    start = end - timedelta(days=len(values))
    return {start + timedelta(days=i): v for i, v in enumerate(values)}


def table(*row_lists):
    return pa.Table.from_pylist([r for rows in row_lists for r in rows], schema=SCHEMA)


NOW_C = datetime(2026, 6, 15, 8, tzinfo=UTC)
STEADY = [100.0] * 27 + [90.0] * 3  # p10 (inclusive) = 99.0, CV ~ 0.03


def test_commitment_on_steady_series_aws():
    (rec,) = recommend_commitments(table(focus_rows("AWS", "111", series(STEADY))), now=NOW_C)
    assert statistics.quantiles(STEADY, n=10, method="inclusive")[0] == pytest.approx(99.0)
    covered = 99.0 / 24
    assert rec.kind == "commitment" and rec.provider == "aws" and rec.account == "111"
    assert rec.estimated_monthly_saving == pytest.approx(round(covered * 730 * 0.28, 2))
    assert f"${covered * 0.72:,.2f}/hour" in rec.action  # the Savings Plan commitment
    assert f"${covered:,.2f}/hour" in rec.action
    assert "Compute Savings Plan" in rec.action
    mean = statistics.fmean(STEADY)
    assert rec.current_monthly_cost == pytest.approx(round(mean / 24 * 730, 2))
    assert rec.risk == "low" and rec.confidence > 0.9
    assert rec.resource_id is None and rec.region is None


def test_commitment_spiky_short_and_gappy_series_get_none():
    spiky = [10.0, 200.0] * 15
    assert recommend_commitments(table(focus_rows("AWS", "1", series(spiky))), now=NOW_C) == []
    short = [100.0] * 10
    assert recommend_commitments(table(focus_rows("AWS", "1", series(short))), now=NOW_C) == []
    gappy = series([100.0] * 30)
    for d in list(gappy)[10:16]:
        del gappy[d]  # six days without rows inside the span count as 0
    assert recommend_commitments(table(focus_rows("AWS", "1", gappy)), now=NOW_C) == []


def test_commitment_counts_only_on_demand_compute_usage_in_the_window():
    noise = series([5000.0, 0.0] * 15)
    old = {END - timedelta(days=60 + i): 9999.0 * (i % 2) for i in range(20)}
    rows = table(
        focus_rows("AWS", "1", series(STEADY)),
        focus_rows("AWS", "1", noise, category="Storage"),
        focus_rows("AWS", "1", noise, charge="Purchase"),
        focus_rows("AWS", "1", noise, pricing="Committed"),
        focus_rows("AWS", "1", noise, commitment="arn:aws:savingsplans::1:savingsplan/x"),
        focus_rows("AWS", "1", old),  # before the 30-day window
        focus_rows("AWS", "1", {END: 5000.0}),  # today: partial, after the window
    )
    (rec,) = recommend_commitments(rows, now=NOW_C)
    assert rec.estimated_monthly_saving == pytest.approx(round(99.0 / 24 * 730 * 0.28, 2))


def test_commitment_per_provider_and_account():
    rows = table(
        focus_rows("AWS", "1", series(STEADY)),
        focus_rows("Amazon Web Services", "1", series([10.0] * 30)),  # same provider key
        focus_rows("Microsoft", "sub-1", series([48.0] * 30)),
        focus_rows("Google Cloud", "proj-1", series([24.0] * 30), sub_account=False),
        focus_rows("AWS", "2", series([10.0, 200.0] * 15)),
    )
    recs = {(r.provider, r.account): r for r in recommend_commitments(rows, now=NOW_C)}
    assert set(recs) == {("aws", "1"), ("azure", "sub-1"), ("gcp", "payer-proj-1")}
    assert recs[("aws", "1")].estimated_monthly_saving == pytest.approx(
        round(109.0 / 24 * 730 * 0.28, 2)
    )
    azure = recs[("azure", "sub-1")]
    assert azure.estimated_monthly_saving == pytest.approx(2.0 * 730 * 0.30)
    assert "$1.40/hour" in azure.action  # 2.00 x (1 - 0.30)
    gcp = recs[("gcp", "payer-proj-1")]
    assert gcp.action.startswith(
        f"Buy a {COMMITMENT_PLANS['gcp'].name} for $1.00/hour of on-demand-equivalent spend"
    )
    assert gcp.estimated_monthly_saving == pytest.approx(730 * 0.28)


def test_commitment_thresholds_are_parameters():
    wobbly = [100.0, 60.0] * 15  # CV = 0.25
    rows = table(focus_rows("AWS", "1", series(wobbly)))
    assert recommend_commitments(rows, now=NOW_C) == []
    (rec,) = recommend_commitments(rows, now=NOW_C, max_cv=0.3)
    assert rec.risk == "medium"
    assert recommend_commitments(rows, now=NOW_C, lookback_days=10, max_cv=0.3) == []


def test_commitment_rejects_bad_input():
    with pytest.raises(ValueError, match="lookback_days"):
        recommend_commitments(SCHEMA.empty_table(), lookback_days=0)
    with pytest.raises(ValueError, match="ServiceCategory"):
        recommend_commitments(SCHEMA.empty_table().drop_columns(["ServiceCategory"]))
    assert recommend_commitments(SCHEMA.empty_table(), now=NOW_C) == []
