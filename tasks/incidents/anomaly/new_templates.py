"""Detector ``new_template`` (floor 1.0): log templates never seen in the baseline.

A (unit, service) never seen in the baseline, reported per entity (pod) and per burst
(``burst_gap_seconds`` of quiet splits a signal);
``raw = sev * (1 + min(1, log1p(n) / log1p(50)))`` for ``n`` events of the highest
severity ``sev`` among them. Paraphrases of a baseline message share its cluster, so
they are not new. Where a (unit, service) first appears after the baseline's warm-up,
it enters the threshold history (novelty in the baseline is noise that raises the bar).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from tasks.incidents.anomaly.context import Context, Draft, group_rows, severity_factor


def detect_new_templates(ctx: Context) -> list[Draft]:
    frame = ctx.frame
    logs = np.flatnonzero(ctx.col["tid"] >= 0)
    if not len(logs):
        return []
    sub = frame.iloc[logs]
    w = ctx.timeline.window(sub["t"].to_numpy())
    novelty = (sub["unit"] + "|" + sub["scope"]).to_numpy()
    baseline = w < 0
    seen = pd.unique(novelty[baseline])
    # Baseline history: where each (unit, scope) first appeared.
    sev = sub["sev"].to_numpy()
    first = pd.DataFrame({"key": novelty[baseline], "w": w[baseline], "sev": sev[baseline]})
    hist = first.groupby("key").agg(w=("w", "min"), n=("w", "size"), sev=("sev", "max"))
    hist_raw = _new_template_raw(hist["sev"].to_numpy(), hist["n"].to_numpy())
    # Detection candidates: per (unit, entity), where (unit, scope) is new.
    new = (~baseline) & ~pd.Index(novelty).isin(seen)
    cand = pd.DataFrame(
        {
            "key": (sub["unit"] + "|" + sub["entity"]).to_numpy()[new],
            "w": w[new],
            "sev": sev[new],
            "row": logs[new],
        }
    )
    if cand.empty:
        return []
    agg = cand.groupby("key").agg(w=("w", "min"), n=("w", "size"), sev=("sev", "max"))
    rows = pd.DataFrame(
        {
            "key": np.concatenate([hist.index.to_numpy(), agg.index.to_numpy()]).astype(object),
            "w": np.concatenate([hist["w"].to_numpy(), agg["w"].to_numpy()]),
            "raw": np.concatenate(
                [hist_raw, _new_template_raw(agg["sev"].to_numpy(), agg["n"].to_numpy())]
            ),
        }
    )
    runs = ctx.runs("new_template", rows, warmup=ctx.warmup)
    members = group_rows(cand, cand["key"])
    drafts = []
    for run in runs.itertuples(index=False):
        for part in ctx.bursts(cand["row"].to_numpy()[members[run.key]]):
            info = ctx.describe(part)
            n = len(part)
            text = ctx.template_text(info["template_id"])
            drafts.append(
                Draft(
                    kind="new_template",
                    detector="new_template",
                    key=str(run.key),
                    title=f"New log template on {info['entity']} ({n}x): {text}",
                    raw=float(run.raw),
                    thr=float(run.thr),
                    window=ctx.window_of(part),
                    evidence={
                        "count": float(n),
                        "raw": float(run.raw),
                        "threshold": float(run.thr),
                    },
                    **info,
                )
            )
    return drafts


def _new_template_raw(sev: np.ndarray, n: np.ndarray) -> np.ndarray:
    volume = np.minimum(1.0, np.log1p(n) / math.log1p(50))
    return severity_factor(sev) * (1.0 + volume)
