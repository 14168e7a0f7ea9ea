"""Detector ``metric_zscore`` (floor 4.0): metric series that move away from their baseline.

Robust z = (x - median) / (1.4826 MAD) over the baseline samples (mean absolute
deviation when the MAD is 0), sustained: the smallest |z| over ``metric_sustain``
consecutive samples, samples within ``metric_min_change`` of the median counting as 0
(slow drift is not news).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from tasks.incidents.anomaly.context import MAD_SCALE, Context, Draft, epoch
from tasks.telemetry.model import MetricSeries


def detect_metric_deviations(ctx: Context, metrics: Sequence[MetricSeries]) -> list[Draft]:
    tl, cfg = ctx.timeline, ctx.config
    k = cfg.metric_sustain
    parts, series_data = [], {}
    for i, series in enumerate(metrics):
        t = np.fromiter((epoch(s) for s in series.timestamps), float, len(series.timestamps))
        v = np.asarray(series.values, dtype=np.float64)
        ok = np.isfinite(v)
        order = np.argsort(t[ok], kind="stable")
        t, v = t[ok][order], v[ok][order]
        base = v[t < tl.origin]
        if len(base) < cfg.metric_min_baseline or len(v) < k:
            continue
        median = float(np.median(base))
        deviation = np.abs(base - median)
        scale = MAD_SCALE * float(np.median(deviation))
        if scale == 0:  # more than half the baseline is one value: mean absolute deviation
            scale = 1.2533 * float(deviation.mean())
        scale = max(scale, 0.01 * abs(median), 1e-9)
        z = (v - median) / scale
        # a change smaller than metric_min_change of the median is no deviation at all
        moved = np.abs(v - median) >= cfg.metric_min_change * abs(median)
        sustained = np.zeros(len(v))
        windows = np.lib.stride_tricks.sliding_window_view(np.where(moved, z, 0.0), k)
        # up: the smallest z of k samples in a row; down: the smallest -z
        sustained[k - 1 :] = np.maximum(windows.min(axis=1), -windows.max(axis=1))
        sustained = np.clip(sustained, 0.0, 1000.0)
        series_data[i] = (t, v, z, sustained, median, scale)
        parts.append(pd.DataFrame({"key": i, "w": tl.window(t), "raw": sustained}))
    if not parts:
        return []
    rows = pd.concat(parts, ignore_index=True)
    rows = rows.groupby(["key", "w"], as_index=False)["raw"].max()
    runs = ctx.runs("metric_zscore", rows[rows["raw"] > 0])
    floor = ctx.settings("metric_zscore").floor
    drafts = []
    for run in runs.itertuples(index=False):
        series = metrics[int(run.key)]
        t, v, z, sustained, median, scale = series_data[int(run.key)]
        w = tl.window(t)
        inside = np.flatnonzero((w >= run.w0) & (w <= run.w1))
        strong = inside[sustained[inside] > max(floor, cfg.hysteresis * run.thr)]
        first = max(int(strong[0]) - (k - 1), 0) if len(strong) else int(inside[0])
        last = int(strong[-1]) if len(strong) else int(inside[-1])
        peak = first + int(np.argmax(np.abs(z[first : last + 1])))
        direction = "up" if z[peak] > 0 else "down"
        unit = f" {series.unit}" if series.unit else ""
        drafts.append(
            Draft(
                kind="metric_zscore",
                detector="metric_zscore",
                key=f"{series.metric}:{series.entity}",
                source=series.source,
                entity=series.entity,
                related=list(series.related),
                start=float(t[first]),
                end=float(t[last]),
                severity="error" if run.raw >= 2 * run.thr else "warning",
                title=(
                    f"{series.metric} on {series.entity} {direction}: {v[peak]:.4g}{unit} "
                    f"(baseline median {median:.4g}, z={z[peak]:+.1f} sustained)"
                ),
                raw=float(run.raw),
                thr=float(run.thr),
                window=int(run.w0),
                evidence={
                    "metric": series.metric,
                    "baseline_median": median,
                    "baseline_scale": scale,
                    "peak_value": float(v[peak]),
                    "peak_z": float(z[peak]),
                    "raw": float(run.raw),
                    "threshold": float(run.thr),
                },
            )
        )
    return drafts
