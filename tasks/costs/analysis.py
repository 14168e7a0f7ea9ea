"""What the normalized cost rows say: totals, month-to-date, forecast, movers, anomalies.

Pure pandas over FOCUS 1.2 rows (``tasks.costs.focus_schema``), so every number in a
``collect-costs`` result can be tested without Prefect or a cloud. Costs are
``EffectiveCost`` (amortized: what the usage really cost, commitments spread over the
days they cover) unless a field says ``billed``. Rows in another currency than the
reporting one are converted with the given FX rates; rows without a rate are kept out
of the converted totals and reported, never silently summed as if they were dollars.
"""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pandas as pd
import pyarrow as pa
from pydantic import BaseModel, Field

from tasks.costs.focus_schema import provider_key

ANALYSIS_COLUMNS = [
    "BilledCost",
    "EffectiveCost",
    "BillingCurrency",
    "ChargePeriodStart",
    "ChargeCategory",
    "ProviderName",
    "BillingAccountId",
    "BillingAccountName",
    "SubAccountId",
    "SubAccountName",
    "ServiceName",
    "RegionId",
]
MAD_SCALE = 1.4826  # makes the MAD a consistent estimate of the standard deviation


class CostTotal(BaseModel):
    """Cost of one group (a provider, account, service, region or day)."""

    key: str
    provider: str | None = None
    effective_cost: float
    billed_cost: float


class DailyCost(BaseModel):
    day: date
    provider: str
    effective_cost: float


class MonthToDate(BaseModel):
    """Spend of the month holding ``as_of`` and a straight-line forecast to its end."""

    month: str = Field(description="YYYY-MM")
    as_of: date = Field(description="Last charge day with data")
    days_elapsed: int
    days_in_month: int
    effective_cost: float
    forecast_month_end: float = Field(
        description="Month-to-date plus the mean of the last 7 days for each remaining day"
    )
    by_provider: dict[str, float]
    forecast_by_provider: dict[str, float]


class Mover(BaseModel):
    """A service whose spend changed most between two equal windows."""

    provider: str
    service: str
    previous: float
    current: float
    change: float
    change_pct: float | None


class CostAnomaly(BaseModel):
    """A day whose spend jumped beyond the robust baseline of the days before it."""

    day: date
    provider: str
    account: str
    service: str
    cost: float
    baseline: float = Field(description="Median daily cost over the baseline window")
    jump: float = Field(description="cost - baseline")
    jump_pct: float | None
    score: float = Field(description="Robust z-score: (cost - median) / (1.4826 * MAD)")


class CostSummary(BaseModel):
    currency: str
    rows: int
    first_day: date | None
    last_day: date | None
    effective_cost: float
    billed_cost: float
    by_provider: list[CostTotal]
    by_account: list[CostTotal]
    by_service: list[CostTotal]
    by_region: list[CostTotal]
    daily: list[DailyCost]
    month_to_date: MonthToDate | None
    top_movers: list[Mover]
    anomalies: list[CostAnomaly]
    unconverted: dict[str, float] = Field(
        default_factory=dict,
        description="Cost per currency left out of the totals for lack of an FX rate",
    )


def to_frame(table: pa.Table) -> pd.DataFrame:
    """The analysis columns of FOCUS rows as a DataFrame, with ``provider`` and ``day``."""
    cols = [c for c in ANALYSIS_COLUMNS if c in table.column_names]
    df = table.select(cols).to_pandas()
    for c in ANALYSIS_COLUMNS:
        if c not in df:
            df[c] = None
    providers = {name: provider_key(name) for name in df["ProviderName"].dropna().unique()}
    df["provider"] = df["ProviderName"].map(providers).fillna("unknown")
    df["day"] = pd.to_datetime(df["ChargePeriodStart"], utc=True).dt.tz_convert(None).dt.floor("D")
    account = df["SubAccountId"].where(df["SubAccountId"].notna(), df["BillingAccountId"])
    df["account"] = account.fillna("unknown").astype(str)
    df["ServiceName"] = df["ServiceName"].fillna("unknown")
    df["RegionId"] = df["RegionId"].fillna("global")
    return df


def convert_currency(
    df: pd.DataFrame, currency: str, fx_rates: dict[str, float]
) -> tuple[pd.DataFrame, dict[str, float]]:
    """Rows converted to ``currency`` and the effective cost per currency left out.

    Args:
        df: frame from :func:`to_frame`.
        currency: reporting currency (ISO 4217).
        fx_rates: units of ``currency`` per one unit of another currency.

    Returns:
        ``(converted rows, {currency: effective cost not converted})``.
    """
    rates = {currency: 1.0, **{k.upper(): float(v) for k, v in fx_rates.items()}}
    rate = df["BillingCurrency"].str.upper().map(rates).astype("float64")
    missing = df[rate.isna()]
    unconverted = {
        str(k): round(float(v), 2)
        for k, v in missing.groupby(missing["BillingCurrency"].fillna("unknown"))["EffectiveCost"]
        .sum()
        .items()
    }
    out = df[rate.notna()].copy()
    for col in ("BilledCost", "EffectiveCost"):
        out[col] = out[col] * rate[rate.notna()]
    return out, unconverted


def _totals(df: pd.DataFrame, by: list[str], label) -> list[CostTotal]:
    if df.empty:
        return []
    g = df.groupby(by, dropna=False)[["EffectiveCost", "BilledCost"]].sum()
    g = g.sort_values("EffectiveCost", ascending=False)
    return [
        CostTotal(
            key=label(idx if isinstance(idx, tuple) else (idx,)),
            provider=(idx[0] if isinstance(idx, tuple) else idx) if by[0] == "provider" else None,
            effective_cost=round(float(row.EffectiveCost), 2),
            billed_cost=round(float(row.BilledCost), 2),
        )
        for idx, row in g.iterrows()
    ]


def daily_by_provider(df: pd.DataFrame) -> pd.DataFrame:
    """Days x providers matrix of effective cost (missing days filled with 0)."""
    if df.empty:
        return pd.DataFrame()
    pivot = df.pivot_table(index="day", columns="provider", values="EffectiveCost", aggfunc="sum")
    days = pd.date_range(pivot.index.min(), pivot.index.max(), freq="D")
    return pivot.reindex(days).fillna(0.0)


def month_to_date(df: pd.DataFrame) -> MonthToDate | None:
    """Spend of the last month with data, and a forecast to its end.

    The forecast adds, for each day left in the month, the mean daily cost of the last
    seven days with data: simple, and honest about recent run-rate changes.
    """
    daily = daily_by_provider(df)
    if daily.empty:
        return None
    as_of = daily.index.max()
    start = as_of.replace(day=1)
    days_in_month = (start + pd.offsets.MonthEnd(0)).day
    month = daily[daily.index >= start]
    remaining = days_in_month - as_of.day
    recent = daily[daily.index > as_of - pd.Timedelta(days=7)].mean()
    mtd = month.sum()
    forecast = mtd + recent * remaining
    return MonthToDate(
        month=start.strftime("%Y-%m"),
        as_of=as_of.date(),
        days_elapsed=as_of.day,
        days_in_month=days_in_month,
        effective_cost=round(float(mtd.sum()), 2),
        forecast_month_end=round(float(forecast.sum()), 2),
        by_provider={p: round(float(v), 2) for p, v in mtd.items()},
        forecast_by_provider={p: round(float(v), 2) for p, v in forecast.items()},
    )


def top_movers(df: pd.DataFrame, window_days: int = 7, limit: int = 10) -> list[Mover]:
    """Services whose spend changed most between the last two ``window_days`` windows."""
    if df.empty:
        return []
    last = df["day"].max()
    current_start = last - pd.Timedelta(days=window_days - 1)
    previous_start = current_start - pd.Timedelta(days=window_days)
    key = ["provider", "ServiceName"]
    cur = df[df["day"] >= current_start].groupby(key)["EffectiveCost"].sum()
    prev_rows = df[(df["day"] >= previous_start) & (df["day"] < current_start)]
    prev = prev_rows.groupby(key)["EffectiveCost"].sum()
    both = pd.concat([prev.rename("previous"), cur.rename("current")], axis=1).fillna(0.0)
    both["change"] = both["current"] - both["previous"]
    both = both.reindex(both["change"].abs().sort_values(ascending=False).index).head(limit)
    return [
        Mover(
            provider=prov,
            service=svc,
            previous=round(float(r.previous), 2),
            current=round(float(r.current), 2),
            change=round(float(r.change), 2),
            change_pct=round(100 * r.change / r.previous, 1) if r.previous > 0 else None,
        )
        for (prov, svc), r in both.iterrows()
        if round(float(r.change), 2) != 0
    ]


def detect_anomalies(
    df: pd.DataFrame,
    *,
    k: float = 4.0,
    baseline_days: int = 14,
    min_baseline_days: int = 7,
    min_jump: float = 10.0,
    min_jump_pct: float = 25.0,
    since: date | None = None,
) -> list[CostAnomaly]:
    """Days whose usage spend for a (provider, account, service) left its robust baseline.

    For each day, the baseline is the ``baseline_days`` before it (not the day itself):
    a day is anomalous when ``cost > median + k * 1.4826 * MAD`` and the jump is both
    at least ``min_jump`` and ``min_jump_pct`` percent of the median, so a flat series
    with a tiny MAD does not flag cents. Median and MAD ignore the spike they look for,
    unlike mean and standard deviation.

    Args:
        df: frame from :func:`to_frame` (only ``ChargeCategory == "Usage"`` rows count).
        k: how many robust standard deviations count as a jump.
        baseline_days: trailing window length.
        min_baseline_days: fewer days of history than this -> no verdict for that day.
        min_jump: smallest absolute jump reported, in the reporting currency.
        min_jump_pct: smallest jump reported, as a percentage of the baseline median.
        since: only report days on or after this day.

    Returns:
        Anomalies, largest jump first.
    """
    usage = df[df["ChargeCategory"] == "Usage"]
    if usage.empty:
        return []
    series = usage.groupby(["provider", "account", "ServiceName", "day"])["EffectiveCost"].sum()
    found: list[CostAnomaly] = []
    for (prov, account, service), s in series.groupby(level=[0, 1, 2]):
        s = s.droplevel([0, 1, 2])
        s = s.reindex(pd.date_range(s.index.min(), s.index.max(), freq="D"), fill_value=0.0)
        values = s.to_numpy()
        for i in range(min_baseline_days, len(values)):
            day = s.index[i].date()
            if since and day < since:
                continue
            window = values[max(0, i - baseline_days) : i]
            median = float(np.median(window))
            mad = MAD_SCALE * float(np.median(np.abs(window - median)))
            cost = float(values[i])
            jump = cost - median
            threshold = median + k * mad
            if cost <= threshold or jump < min_jump or jump < median * min_jump_pct / 100:
                continue
            score = jump / mad if mad > 0 else float("inf")
            found.append(
                CostAnomaly(
                    day=day,
                    provider=prov,
                    account=account,
                    service=service,
                    cost=round(cost, 2),
                    baseline=round(median, 2),
                    jump=round(jump, 2),
                    jump_pct=round(100 * jump / median, 1) if median > 0 else None,
                    score=round(min(score, 999.0), 1),
                )
            )
    return sorted(found, key=lambda a: a.jump, reverse=True)


def summarize(
    table: pa.Table,
    *,
    currency: str = "USD",
    fx_rates: dict[str, float] | None = None,
    anomaly_k: float = 4.0,
    anomaly_days: int = 30,
    top: int = 10,
) -> CostSummary:
    """Every figure a ``collect-costs`` result shows, from FOCUS rows.

    Args:
        table: FOCUS 1.2 rows (any subset of columns holding ``ANALYSIS_COLUMNS``).
        currency: reporting currency.
        fx_rates: units of ``currency`` per unit of each other billing currency.
        anomaly_k: robust z threshold for cost anomalies.
        anomaly_days: report anomalies on the last this many days with data.
        top: how many groups each breakdown keeps.

    Returns:
        A ``CostSummary``.

    Example:
        ```python
        from samples.focus_exports import bundled_export_paths
        from tasks.costs.analysis import summarize
        from tasks.costs.normalize import normalize_file

        summary = summarize(normalize_file(bundled_export_paths()[0]).table)
        print(summary.effective_cost, summary.month_to_date.forecast_month_end)
        ```
    """
    df, unconverted = convert_currency(to_frame(table), currency.upper(), fx_rates or {})
    last = df["day"].max() if not df.empty else None
    since = (last - pd.Timedelta(days=anomaly_days - 1)).date() if last is not None else None
    daily = daily_by_provider(df)
    return CostSummary(
        currency=currency.upper(),
        rows=len(df),
        first_day=df["day"].min().date() if not df.empty else None,
        last_day=last.date() if last is not None else None,
        effective_cost=round(float(df["EffectiveCost"].sum()), 2),
        billed_cost=round(float(df["BilledCost"].sum()), 2),
        by_provider=_totals(df, ["provider"], lambda k: k[0]),
        by_account=_totals(df, ["provider", "account"], lambda k: f"{k[0]}:{k[1]}")[:top],
        by_service=_totals(df, ["provider", "ServiceName"], lambda k: f"{k[0]}:{k[1]}")[:top],
        by_region=_totals(df, ["provider", "RegionId"], lambda k: f"{k[0]}:{k[1]}")[:top],
        daily=[
            DailyCost(day=d.date(), provider=p, effective_cost=round(float(v), 2))
            for d, row in daily.iterrows()
            for p, v in row.items()
        ],
        month_to_date=month_to_date(df),
        top_movers=top_movers(df, limit=top),
        anomalies=detect_anomalies(df, k=anomaly_k, since=since),
        unconverted=unconverted,
    )


def window_start(last_day: date, days: int) -> date:
    """First day of a ``days``-long window ending on ``last_day``."""
    return last_day - timedelta(days=days - 1)
