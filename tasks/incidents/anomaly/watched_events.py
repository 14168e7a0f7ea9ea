"""Detectors ``alarm`` and ``k8s_warning`` (floor 1.0): rare-or-rising watched events.

Alarms firing (``tasks.incidents.anomaly.alarms``) and Kubernetes warnings
(``tasks.incidents.anomaly.kubernetes_warnings``), keyed by (alarm or reason, service):
``raw = 2 * f`` when the key never happened in the baseline, else
``f * min(2, -log10 P(X >= c) / 3)`` with ``c`` the detection count and X Poisson at the
baseline rate scaled to the detection length: the same rate in both periods scores ~0.
``f`` is 1 for alarms and known bad Kubernetes reasons, 0.6 for other warnings.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from tasks.incidents.anomaly.alarms import alarm_name
from tasks.incidents.anomaly.context import (
    Context,
    Draft,
    group_rows,
    log_surprise,
    poisson_tail,
    service_scope,
)
from tasks.incidents.anomaly.kubernetes_warnings import k8s_reason
from tasks.telemetry.model import SEVERITY_RANK


def watched_events(ctx: Context, detector: str) -> list[Draft]:
    """Alarms or Kubernetes warnings: rare-or-rising keys vs the baseline rate."""
    tl = ctx.timeline
    kinds = ctx.col["kind"]
    wanted = ("alarm",) if detector == "alarm" else ("k8s_event", "k8s_state")
    rows, keys, factors, names = [], [], [], []
    for row in np.flatnonzero(np.isin(kinds, wanted)):
        event = ctx.events[int(row)]
        if detector == "alarm":
            name = alarm_name(event)
            if name is None:
                continue
            factor = 1.0
        else:
            found = k8s_reason(event)
            if found is None:
                continue
            name, bad = found
            factor = 1.0 if bad else 0.6
        rows.append(row), names.append(name), factors.append(factor)
        keys.append(f"{name}|{service_scope(event)}")
    if not rows:
        return []
    table = pd.DataFrame({"key": keys, "name": names, "factor": factors, "row": rows})
    table["w"] = tl.window(ctx.col["t"][rows])
    base, det = table[table["w"] < 0], table[table["w"] >= 0]
    if det.empty:
        return []
    history = base.groupby("key").agg(w=("w", "min"), factor=("factor", "max"))
    agg = det.groupby("key").agg(w=("w", "min"), c=("w", "size"), factor=("factor", "max"))
    c_base = base.groupby("key").size().reindex(agg.index).fillna(0).to_numpy()
    expected = c_base * tl.detection_seconds / tl.baseline_seconds
    p = poisson_tail(agg["c"].to_numpy(), expected)
    factor = agg["factor"].to_numpy()
    raw = np.where(c_base == 0, 2.0 * factor, factor * np.minimum(2.0, log_surprise(p) / 3.0))
    candidates = pd.DataFrame(
        {
            "key": np.concatenate([history.index.to_numpy(), agg.index.to_numpy()]),
            "w": np.concatenate([history["w"].to_numpy(), agg["w"].to_numpy()]),
            "raw": np.concatenate([2.0 * history["factor"].to_numpy(), raw]),
        }
    )
    runs = ctx.runs(detector, candidates, warmup=ctx.warmup)
    by_key = group_rows(det, det["key"])
    stats = agg.assign(c_base=c_base, expected=expected)
    drafts = []
    for run in runs.itertuples(index=False):
        members = by_key[run.key]
        name = det["name"].iat[members[0]]
        c_b = float(stats.at[run.key, "c_base"])
        seen = "new" if c_b == 0 else f"{float(stats.at[run.key, 'expected']):.1f} expected"
        for part in ctx.bursts(det["row"].to_numpy()[members]):
            info = ctx.describe(part, scope_fallback=run.key.split("|")[-1])
            n = len(part)
            if detector == "alarm":
                title = f"Alarm {name} firing on {info['entity']} ({n}x, {seen})"
                info["severity"] = max(info["severity"], "error", key=SEVERITY_RANK.get)
            else:
                title = f"{name} on {info['entity']} ({n} events, {seen})"
                info["severity"] = max(info["severity"], "warning", key=SEVERITY_RANK.get)
            info["template_id"] = None
            drafts.append(
                Draft(
                    kind=detector,
                    detector=detector,
                    key=str(run.key),
                    title=title,
                    raw=float(run.raw),
                    thr=float(run.thr),
                    window=ctx.window_of(part),
                    evidence={
                        "name": str(name),
                        "count": float(n),
                        "baseline_count": c_b,
                        "raw": float(run.raw),
                        "threshold": float(run.thr),
                    },
                    **info,
                )
            )
    return drafts
