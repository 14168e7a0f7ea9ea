"""Detector ``isolation_forest`` (floor 0.4): windows whose mix of log templates is unusual.

An IsolationForest over the windows x log1p counts of the clusters seen in the
baseline, fitted on all windows (a forest cannot isolate a point outside the range it
was fitted on: fitted on the baseline alone it scores a log storm like the busiest
baseline window). ``raw = 2 * max(0, s - 0.5)``, ``s`` the forest's anomaly score; a
flagged window is attributed to the (up to 3) clusters whose counts deviate most
(robust z) from their baseline.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import pandas as pd

from tasks.incidents.anomaly.context import MAD_SCALE, Context, Draft, group_rows


def detect_isolation_forest(ctx: Context) -> list[Draft]:
    from sklearn.ensemble import IsolationForest

    frame, tl, cfg = ctx.frame, ctx.timeline, ctx.config
    logs = np.flatnonzero(ctx.col["tid"] >= 0)
    if not len(logs):
        return []
    sub = frame.iloc[logs]
    w = tl.window(sub["t"].to_numpy())
    codes, units = pd.factorize(sub["unit"], sort=True)
    # Columns: the clusters seen in the baseline, most frequent first. Clusters new in the
    # detection period are the new-template detector's business; as columns they would
    # make every window holding one of them trivially easy to isolate.
    base_totals = np.bincount(codes[w < 0], minlength=len(units))
    seen = np.flatnonzero(base_totals > 0)
    top = seen[np.argsort(-base_totals[seen], kind="stable")][: cfg.isolation_max_features]
    column = np.full(len(units), -1)
    column[top] = np.arange(len(top))
    kept = column[codes] >= 0
    matrix = np.zeros((tl.size, len(top)))
    np.add.at(matrix, (w[kept] - tl.first, column[codes[kept]]), 1.0)
    coverage = tl.coverage()
    usable = coverage >= 0.5
    counts = np.log1p(matrix / np.maximum(coverage, 1e-9)[:, None])
    windows = np.arange(tl.first, tl.last + 1)
    train = usable & (windows < 0)
    if (
        not len(top)
        or train.sum() < cfg.isolation_min_windows
        or not (usable & (windows >= 0)).any()
    ):
        return []
    forest = IsolationForest(
        n_estimators=cfg.isolation_trees, random_state=cfg.random_state, n_jobs=1
    ).fit(counts[usable])
    score = -forest.score_samples(counts[usable])
    raw = np.zeros(tl.size)
    raw[usable] = 2.0 * np.maximum(0.0, score - 0.5)
    rows = pd.DataFrame({"key": "windows", "w": windows, "raw": raw})
    runs = ctx.runs("isolation_forest", rows[rows["raw"] > 0])
    if runs.empty:
        return []
    median = np.median(counts[train], axis=0)
    spread = np.maximum(MAD_SCALE * np.median(np.abs(counts[train] - median), axis=0), 0.5)
    zscores = (counts - median) / spread
    by_unit = group_rows(sub, codes)
    drafts = []
    for run in runs.itertuples(index=False):
        span = slice(int(run.w0) - tl.first, int(run.w1) - tl.first + 1)
        z = zscores[span]
        peak = z[np.argmax(np.abs(z), axis=0), np.arange(z.shape[1])]
        order = [int(i) for i in np.argsort(-np.abs(peak), kind="stable")[:3] if abs(peak[i]) >= 2]
        if not order:
            order = [int(np.argmax(np.abs(peak)))]
        rising = [top[i] for i in order if peak[i] > 0]
        rows_in = np.concatenate(
            [r[(w[r] >= run.w0) & (w[r] <= run.w1)] for r in (by_unit[u] for u in rising)]
            or [np.zeros(0, dtype=np.int64)]
        )
        names = [_unit_name(ctx, str(units[top[i]])) for i in order]
        evidence: dict[str, float | str] = {
            "raw": float(run.raw),
            "threshold": float(run.thr),
            "windows": float(run.w1 - run.w0 + 1),
            "deviating": "; ".join(
                f"{name} z={peak[i]:+.1f}" for name, i in zip(names, order, strict=True)
            ),
        }
        if len(rows_in):
            info = ctx.describe(logs[rows_in])
        else:  # only drops: no events to point at; name where the missing logs came from
            base_rows = np.concatenate([by_unit[top[i]] for i in order])
            scope = Counter(sub["scope"].to_numpy()[base_rows].tolist()).most_common(1)[0][0]
            info = {
                "entity": scope,
                "related": [],
                "start": tl.origin + run.w0 * tl.width,
                "end": tl.origin + (run.w1 + 1) * tl.width,
                "severity": "warning",
                "template_id": None,
                "source": Counter(sub["source"].to_numpy()[base_rows].tolist()).most_common()[0][0],
                "event_indices": [],
            }
        direction = "more" if rising else "fewer"
        drafts.append(
            Draft(
                kind="isolation_forest",
                detector="isolation_forest",
                key=f"w{int(run.w0)}",
                title=f"Unusual log mix ({direction} {', '.join(names[:2])}) on {info['entity']}",
                raw=float(run.raw),
                thr=float(run.thr),
                window=int(run.w0),
                evidence=evidence,
                **info,
            )
        )
    return drafts


def _unit_name(ctx: Context, unit: str) -> str:
    """Readable name of a template or cluster unit ("c12" / "t7")."""
    number = int(unit[1:])
    if unit.startswith("c"):
        for cid, label in ctx.clusters.values():
            if cid == number:
                return f"[{label}]"
        return f"cluster {number}"
    return f"'{ctx.template_text(number, 60)}'"
