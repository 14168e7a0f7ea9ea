"""The day grid: charge lines x days become rows with quantities, prices and costs.

Day patterns (weekday seasonality, quiet weekends), day-to-day noise, spikes, active days,
monthly billing periods and ``scale`` copies of the scalable lines.

Example:
    ```python
    from datetime import date

    import numpy as np

    from samples.focus_exports.grid import build_grid
    from samples.focus_exports.lines import ChargeLine

    days = [date(2026, 10, 1), date(2026, 10, 2)]
    line = ChargeLine(cols={}, price=0.5, qty=24.0)
    grid = build_grid([line], days, 1.0, np.random.default_rng(0))
    print(grid.billed)
    ```
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np
import pyarrow as pa

from samples.focus_exports.lines import ChargeLine

_DAY_FACTORS = {  # Monday..Sunday
    "fixed": (1.0,) * 7,
    "flat": (1.0,) * 7,
    "weekday": (1.0, 1.04, 1.05, 1.03, 0.97, 0.72, 0.68),
    "batch": (1.0, 1.0, 1.02, 1.0, 1.05, 0.55, 0.5),
}
_NOISE = {"fixed": 0.0, "flat": 0.004, "weekday": 0.06, "batch": 0.05}  # day-to-day sigma


@dataclass
class Grid:
    consts: dict[str, pa.Array]  # native constant columns, one value per row
    starts: list[date]  # charge period start per row
    ends: list[date]  # exclusive charge period end per row
    qty: np.ndarray
    list_price: np.ndarray  # nan for fixed rows
    list_cost: np.ndarray
    contracted_cost: np.ndarray
    billed: np.ndarray
    effective: np.ndarray
    kinds: list[str]


def month_start(d: date) -> date:
    return d.replace(day=1)


def next_month(d: date) -> date:
    return (d.replace(day=28) + timedelta(days=4)).replace(day=1)


def build_grid(
    lines: list[ChargeLine], days: list[date], scale: float, rng: np.random.Generator
) -> Grid:
    scalable = [ln for ln in lines if ln.scalable]
    count = max(1, round(len(scalable) * scale))
    expanded = [(scalable[i % len(scalable)], i // len(scalable)) for i in range(count)]
    expanded += [(ln, 0) for ln in lines if not ln.scalable]
    n_lines, n_days = len(expanded), len(days)

    active = np.ones((n_lines, n_days), dtype=bool)
    mult = np.ones((n_lines, n_days))
    weekday = np.array([d.weekday() for d in days])
    day_pos = {d: j for j, d in enumerate(days)}
    for i, (ln, _copy) in enumerate(expanded):
        if ln.days is not None:
            active[i] = [d in ln.days for d in days]
        mult[i] = np.asarray(_DAY_FACTORS[ln.pattern])[weekday]
        for d, factor in ln.spikes.items():
            if d in day_pos:
                mult[i, day_pos[d]] *= factor
    sigma = np.array([_NOISE[ln.pattern] for ln, _ in expanded])[:, None]
    mult *= np.exp(rng.normal(0.0, 1.0, size=(n_lines, n_days)) * sigma - sigma**2 / 2)

    day_idx, line_idx = np.nonzero(active.T)  # day-major, as the exports are written
    base_qty = np.array([ln.qty for ln, _ in expanded])
    price = np.array([ln.price for ln, _ in expanded])
    fixed = np.array([np.nan if ln.fixed is None else ln.fixed for ln, _ in expanded])
    covered = np.array([np.nan if ln.covered is None else ln.covered for ln, _ in expanded])
    kinds_by_line = [ln.kind if ln.fixed is not None else "usage" for ln, _ in expanded]

    qty = np.round(base_qty[line_idx] * mult[line_idx, day_idx], 6)
    list_cost = np.round(qty * price[line_idx], 10)
    is_fixed = ~np.isnan(fixed[line_idx])
    is_covered = ~np.isnan(covered[line_idx])
    billed = np.where(is_covered, 0.0, list_cost)
    effective = np.where(is_covered, np.round(list_cost * covered[line_idx], 10), list_cost)
    contracted = list_cost.copy()
    amount = fixed[line_idx]
    kinds = [kinds_by_line[i] for i in line_idx]
    kind_arr = np.array(kinds)
    zero_list = np.isin(kind_arr, ("credit", "refund"))
    billed = np.where(is_fixed, amount, billed)
    effective = np.where(is_fixed, np.where(kind_arr == "fee", 0.0, amount), effective)
    list_cost = np.where(is_fixed, np.where(zero_list, 0.0, amount), list_cost)
    contracted = np.where(is_fixed, np.where(zero_list, 0.0, amount), contracted)
    qty = np.where(is_fixed, np.where(kind_arr == "fee", 24.0, np.nan), qty)
    list_price = np.where(is_fixed, np.nan, price[line_idx])

    names = list(dict.fromkeys(k for ln, _ in expanded for k in ln.cols))
    consts: dict[str, pa.Array] = {}
    take = pa.array(line_idx)
    for name in names:
        values = []
        for ln, copy in expanded:
            v = ln.cols.get(name)
            if copy and name in ("ResourceId", "ResourceName") and v:
                v = f"{v}-{copy}"
            values.append(v)
        consts[name] = pa.array(values).take(take)
    starts, ends = [], []
    for j, i in zip(day_idx.tolist(), line_idx.tolist(), strict=True):
        d = days[j]
        if expanded[i][0].period == "month":
            starts.append(month_start(d))
            ends.append(min(next_month(d), days[-1] + timedelta(days=1)))
        else:
            starts.append(d)
            ends.append(d + timedelta(days=1))
    return Grid(
        consts, starts, ends, qty, list_price, list_cost, contracted, billed, effective, kinds
    )
