"""Rendering a grid as each cloud writes its export: CSV text (AWS, Azure) or typed
Parquet columns (GCP), with each cloud's timestamp and number styles.

Example:
    ```python
    from datetime import date

    import numpy as np

    from samples.focus_exports.aws import aws_lines
    from samples.focus_exports.grid import build_grid
    from samples.focus_exports.render import render_aws

    days = [date(2026, 10, 1)]
    columns = render_aws(build_grid(aws_lines(days), days, 1.0, np.random.default_rng(0)))
    print(columns["BilledCost"][:3])
    ```
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import UTC, date, datetime, timedelta

import numpy as np
import pyarrow as pa

from samples.focus_exports.azure import EUR_PER_USD
from samples.focus_exports.columns import AWS_COLUMNS, AZURE_COLUMNS, GCP_COLUMNS, GCP_TYPES, TS
from samples.focus_exports.grid import Grid, month_start, next_month


def _num_text(values: np.ndarray) -> pa.Array:
    """Numbers as an export writes them (shortest round-trip text; empty for missing)."""
    arr = pa.array(values, mask=np.isnan(values)).cast(pa.string())
    return arr.fill_null("")


def _stamp_text(days: Iterable[date], style: Callable[[date], str]) -> pa.Array:
    cache: dict[date, str] = {}
    out = []
    for d in days:
        s = cache.get(d)
        if s is None:
            s = cache[d] = style(d)
        out.append(s)
    return pa.array(out, pa.string())


def _iso_ms(d: date) -> str:
    return f"{d.isoformat()}T00:00:00.000Z"


def _iso_z(d: date) -> str:
    return f"{d.isoformat()}T00:00:00Z"


def _iso_space(d: date) -> str:
    return f"{d.isoformat()} 00:00:00"


def _ts(days: Iterable[date]) -> pa.Array:
    return pa.array([datetime(d.year, d.month, d.day, tzinfo=UTC) for d in days], TS)


def _amounts_and_periods(
    g: Grid,
    num: Callable[[np.ndarray], pa.Array],
    stamp: Callable[[list[date]], pa.Array],
) -> dict[str, pa.Array]:
    """The cost, unit price, quantity and period columns every export has, in its styles."""
    billing_starts = [month_start(d) for d in g.starts]
    return {
        "BilledCost": num(g.billed),
        "EffectiveCost": num(g.effective),
        "ListCost": num(g.list_cost),
        "ContractedCost": num(g.contracted_cost),
        "ListUnitPrice": num(g.list_price),
        "ContractedUnitPrice": num(g.list_price),
        "ConsumedQuantity": num(g.qty),
        "PricingQuantity": num(g.qty),
        "ChargePeriodStart": stamp(g.starts),
        "ChargePeriodEnd": stamp(g.ends),
        "BillingPeriodStart": stamp(billing_starts),
        "BillingPeriodEnd": stamp([next_month(d) for d in billing_starts]),
    }


def render_aws(g: Grid) -> dict[str, pa.Array]:
    cols = dict(g.consts)
    cols.update(_amounts_and_periods(g, _num_text, lambda days: _stamp_text(days, _iso_ms)))
    return {c: cols.get(c, pa.nulls(len(g.kinds), pa.string())).fill_null("") for c in AWS_COLUMNS}


def render_azure(g: Grid, mixed_styles: bool) -> dict[str, pa.Array]:
    cols = dict(g.consts)
    n = len(g.kinds)
    billing_starts = [month_start(d) for d in g.starts]

    def stamps(days: list[date]) -> pa.Array:
        if not mixed_styles:
            return _stamp_text(days, _iso_z)
        # Exports re-run by different tooling: half the days use the zone-less style.
        return pa.array([_iso_space(d) if d.day % 2 else _iso_z(d) for d in days])

    rate = np.where(np.array(cols["BillingCurrency"].to_pylist()) == "EUR", EUR_PER_USD, 1.0)
    cols.update(
        _amounts_and_periods(g, _num_text, stamps),
        x_ServicePeriodStart=_stamp_text(g.starts, _iso_z),
        x_ServicePeriodEnd=_stamp_text(g.ends, _iso_z),
        x_BillingExchangeRateDate=_stamp_text(billing_starts, _iso_z),
        x_BilledCostInUsd=_num_text(np.round(g.billed / rate, 10)),
        x_EffectiveCostInUsd=_num_text(np.round(g.effective / rate, 10)),
        x_ListCostInUsd=_num_text(np.round(g.list_cost / rate, 10)),
        x_ContractedCostInUsd=_num_text(np.round(g.contracted_cost / rate, 10)),
        x_BilledUnitPrice=_num_text(g.list_price),
        x_EffectiveUnitPrice=_num_text(g.list_price),
        x_InvoiceId=pa.array(
            [f"G{d.year % 100}{d.month:02d}0{1 + (d.month * 7) % 9}4471" for d in billing_starts]
        ),
    )
    return {c: cols.get(c, pa.nulls(n, pa.string())).fill_null("") for c in AZURE_COLUMNS}


def render_gcp(g: Grid) -> dict[str, pa.Array]:
    cols = dict(g.consts)

    def num(values: np.ndarray) -> pa.Array:
        return pa.array(values, mask=np.isnan(values))

    sud = {
        "name": "Sustained usage discount",
        "full_name": None,
        "id": "",
        "type": "SUSTAINED_USAGE_DISCOUNT",
    }
    credits = [
        [sud | {"amount": amount}] if kind == "credit" and amount > -100 else []
        for kind, amount in zip(g.kinds, g.billed.tolist(), strict=True)
    ]
    exported = [
        datetime(d.year, d.month, d.day, 7, 42, tzinfo=UTC) + timedelta(days=1) for d in g.starts
    ]
    cols.update(
        _amounts_and_periods(g, num, _ts),
        x_Credits=pa.array(credits, GCP_TYPES["x_Credits"]),
        x_ExportTime=pa.array(exported, TS),
    )
    n = len(g.kinds)
    out = {}
    for c in GCP_COLUMNS:
        typ = GCP_TYPES.get(c, pa.string())
        out[c] = cols[c].cast(typ) if c in cols else pa.nulls(n, typ)
    return out
