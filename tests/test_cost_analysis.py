"""Cost analysis on FOCUS rows: totals, currency, month-to-date, movers, anomalies, chart."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pyarrow as pa
import pytest

from tasks.common.charts import line_chart_svg, svg_data_uri
from tasks.costs.analysis import detect_anomalies, summarize, to_frame
from tasks.costs.focus_schema import SCHEMA


def rows_table(rows: list[dict]) -> pa.Table:
    """SCHEMA-conformant table; unspecified columns null, required ones defaulted."""
    defaults = {
        "BillingAccountId": "payer",
        "BillingCurrency": "USD",
        "ChargeCategory": "Usage",
        "InvoiceIssuerName": "AWS",
        "ProviderName": "AWS",
        "PublisherName": "AWS",
        "ServiceCategory": "Compute",
        "ServiceName": "Amazon EC2",
        "x_SourceId": "test",
    }
    full = []
    for r in rows:
        day = r.pop("day")
        start = datetime(day.year, day.month, day.day, tzinfo=UTC)
        cost = r.pop("cost")
        row = {
            **defaults,
            "BilledCost": cost,
            "EffectiveCost": cost,
            "ListCost": cost,
            "ContractedCost": cost,
            "ChargePeriodStart": start,
            "ChargePeriodEnd": start + timedelta(days=1),
            "BillingPeriodStart": start.replace(day=1),
            "BillingPeriodEnd": (start.replace(day=28) + timedelta(days=4)).replace(day=1),
            **r,
        }
        full.append(row)
    return pa.Table.from_pylist(full, schema=SCHEMA)


def series(values, start=date(2026, 10, 1), **extra) -> list[dict]:
    return [{"day": start + timedelta(days=i), "cost": v, **extra} for i, v in enumerate(values)]


def test_totals_by_provider_account_service_region():
    rows = series([10.0] * 3, SubAccountId="111", RegionId="us-east-1")
    rows += series(
        [5.0] * 3,
        ProviderName="Microsoft",
        PublisherName="Microsoft",
        InvoiceIssuerName="Microsoft",
        SubAccountId="/subscriptions/abc",
        ServiceName="Virtual Machines",
        RegionId="eastus",
    )
    s = summarize(rows_table(rows))
    assert [(t.key, t.effective_cost) for t in s.by_provider] == [("aws", 30.0), ("azure", 15.0)]
    assert s.by_account[0].key == "aws:111"
    assert {t.key for t in s.by_service} == {"aws:Amazon EC2", "azure:Virtual Machines"}
    assert {t.key for t in s.by_region} == {"aws:us-east-1", "azure:eastus"}
    assert s.effective_cost == 45.0 and s.rows == 6
    assert s.first_day == date(2026, 10, 1) and s.last_day == date(2026, 10, 3)


def test_other_currency_needs_a_rate_and_is_never_summed_as_dollars():
    rows = series([100.0] * 2) + series([50.0] * 2, BillingCurrency="EUR")
    s = summarize(rows_table(rows))
    assert s.effective_cost == 200.0
    assert s.unconverted == {"EUR": 100.0}
    converted = summarize(
        rows_table(series([100.0] * 2) + series([50.0] * 2, BillingCurrency="EUR")),
        fx_rates={"eur": 1.1},
    )
    assert converted.effective_cost == pytest.approx(310.0)
    assert converted.unconverted == {}


def test_month_to_date_and_forecast_use_the_recent_run_rate():
    # 1..20 November: 10/day for 13 days, then 20/day for the last 7 days.
    values = [10.0] * 13 + [20.0] * 7
    s = summarize(rows_table(series(values, start=date(2026, 11, 1))))
    m = s.month_to_date
    assert m.month == "2026-11" and m.as_of == date(2026, 11, 20)
    assert m.days_elapsed == 20 and m.days_in_month == 30
    assert m.effective_cost == 270.0
    assert m.forecast_month_end == pytest.approx(270.0 + 10 * 20.0)


def test_top_movers_rank_by_absolute_change():
    flat = series([10.0] * 14, ServiceName="Amazon S3")
    growing = series([10.0] * 7 + [30.0] * 7, ServiceName="Amazon EC2")
    s = summarize(rows_table(flat + growing))
    assert s.top_movers[0].service == "Amazon EC2"
    assert s.top_movers[0].change == 140.0 and s.top_movers[0].change_pct == 200.0
    assert all(m.service != "Amazon S3" for m in s.top_movers)  # no change, not a mover


def test_anomaly_is_the_spike_day_with_its_jump():
    values = [100.0 + (i % 3) for i in range(20)]
    values[15] = 400.0
    found = detect_anomalies(to_frame(rows_table(series(values, SubAccountId="222"))))
    assert len(found) == 1
    a = found[0]
    assert a.day == date(2026, 10, 16) and a.account == "222" and a.service == "Amazon EC2"
    assert a.baseline == pytest.approx(101.0) and a.jump == pytest.approx(299.0)
    assert a.score > 4


def test_small_or_early_jumps_are_not_anomalies():
    # A cents-level jump on a flat series, and a spike before 7 days of history.
    values = [1.0] * 10
    values[9] = 1.5
    early = [100.0, 100.0, 900.0] + [100.0] * 10
    df = to_frame(rows_table(series(values) + series(early, ServiceName="Amazon RDS")))
    assert detect_anomalies(df) == []


def test_credits_do_not_count_as_usage_anomalies():
    rows = series([100.0] * 15)
    rows += [{"day": date(2026, 10, 12), "cost": -500.0, "ChargeCategory": "Credit"}]
    s = summarize(rows_table(rows))
    assert s.anomalies == []
    assert s.effective_cost == 1000.0


def test_empty_table_gives_an_empty_summary():
    s = summarize(SCHEMA.empty_table())
    assert s.rows == 0 and s.month_to_date is None and s.anomalies == [] and s.daily == []


def test_chart_has_a_line_per_provider_and_marks():
    svg = line_chart_svg(
        {
            "aws": [(date(2026, 10, 1), 10.0), (date(2026, 10, 2), 30.0)],
            "gcp": [(date(2026, 10, 1), 5.0)],
        },
        title="Daily <cost>",
        unit="$",
        marks=[(date(2026, 10, 2), "aws spike")],
    )
    assert svg.count("<polyline") == 2
    assert "Daily &lt;cost&gt;" in svg and "aws spike" in svg and "$50" in svg
    assert svg_data_uri(svg).startswith("data:image/svg+xml;base64,")
    assert "no data" in line_chart_svg({}, title="empty")
