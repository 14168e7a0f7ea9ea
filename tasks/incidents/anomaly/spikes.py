"""Detector ``frequency_spike`` (floor 5.0): a known template far more frequent than usual.

Per (unit, service, severity) count ``c`` in a window vs the baseline's mean per window:
``raw = sev * -log10 P(X >= c)``, X quasi-Poisson (mean and counts divided by the
baseline's dispersion var/mean, at least 1), needing ``c >= spike_min_count`` and
``c >= spike_min_ratio * mean``. Severity is in the key because masking hides status
codes: an access log's ERROR lines can spike alone. Templates new in the detection
period are left to the new-template detector.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from tasks.incidents.anomaly.context import (
    Context,
    Draft,
    group_rows,
    log_surprise,
    poisson_tail,
    severity_factor,
)


def detect_frequency_spikes(ctx: Context) -> list[Draft]:
    frame, tl, cfg = ctx.frame, ctx.timeline, ctx.config
    logs = np.flatnonzero(ctx.col["tid"] >= 0)
    nb = tl.baseline_windows
    if not len(logs) or nb < 1:
        return []
    sub = frame.iloc[logs]
    w = tl.window(sub["t"].to_numpy())
    # Counted per cluster (paraphrases and near-duplicate templates add up) and severity: a
    # masked access-log template hides the status code, but its ERROR lines spiking is news
    # even when its INFO lines are steady.
    novelty = (sub["unit"] + "|" + sub["scope"]).to_numpy()
    key = (sub["unit"] + "|" + sub["scope"] + "|" + sub["sev"].astype(str)).to_numpy()
    known = pd.unique(novelty[w < 0])
    counts = (
        pd.DataFrame({"key": key, "w": w, "sev": sub["sev"].to_numpy(), "novel": novelty})
        .groupby(["key", "w"], sort=False)
        .agg(c=("sev", "size"), sev=("sev", "max"), novel=("novel", "first"))
        .reset_index()
    )
    counts["c2"] = counts["c"] ** 2
    base = counts[counts["w"] < 0].groupby("key")[["c", "c2"]].sum()
    base.columns = ["s1", "s2"]
    stats = counts[["key"]].join(base, on="key").fillna(0.0)
    mean = stats["s1"].to_numpy() / nb
    var = np.maximum(stats["s2"].to_numpy() / nb - mean**2, 0.0)
    dispersion = np.where(mean > 0, np.maximum(1.0, var / np.maximum(mean, 1e-12)), 1.0)
    mean_eff = np.maximum(mean, 0.5 / nb)
    c = counts["c"].to_numpy().astype(np.float64)
    p = poisson_tail(c / dispersion, mean_eff / dispersion)
    raw = severity_factor(counts["sev"].to_numpy()) * log_surprise(p)
    eligible = (c >= cfg.spike_min_count) & (c >= cfg.spike_min_ratio * mean_eff)
    eligible &= counts["novel"].isin(known).to_numpy()  # new ones: the new-template detector
    counts["raw"] = np.where(eligible, raw, 0.0)
    counts["mean"] = mean_eff
    counts["dispersion"] = dispersion
    runs = ctx.runs("frequency_spike", counts[counts["raw"] > 0][["key", "w", "raw"]])
    if runs.empty:
        return []
    members = group_rows(sub, key)
    per_key = counts.drop_duplicates("key").set_index("key")
    drafts = []
    for run in runs.itertuples(index=False):
        rows = members[run.key]
        rows = rows[(w[rows] >= run.w0) & (w[rows] <= run.w1)]
        scope = run.key.split("|")[1]
        info = ctx.describe(logs[rows], scope_fallback=scope)
        n = len(rows)
        windows = int(run.w1 - run.w0 + 1)
        rate = float(per_key.at[run.key, "mean"])
        text = ctx.template_text(info["template_id"])
        per_window = n / windows
        drafts.append(
            Draft(
                kind="frequency_spike",
                detector="frequency_spike",
                key=str(run.key),
                title=(
                    f"Log spike on {info['entity']}: {per_window:.0f}/window vs "
                    f"{rate:.2g} in the baseline ({per_window / rate:.0f}x): {text}"
                ),
                raw=float(run.raw),
                thr=float(run.thr),
                window=int(run.w0),
                evidence={
                    "count": float(n),
                    "windows": float(windows),
                    "baseline_per_window": rate,
                    "dispersion": float(per_key.at[run.key, "dispersion"]),
                    "raw": float(run.raw),
                    "threshold": float(run.thr),
                },
                **info,
            )
        )
    return drafts
