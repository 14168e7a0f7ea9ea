"""Adaptive thresholds: the bar each detector's raw scores must exceed, window by window.

Each detector keeps the per-window maximum of its raw scores, over the windows
processed so far in time order, and for window ``i`` sets::

    thr[i] = max(floor, Q_q(H_i))       H_i = the last ``history_windows`` entries

A baseline window enters ``H`` with its own maximum (the baseline is normal by
definition, so its noise raises the bar); a detection window enters as
``min(max_i, thr[i])``, so an incident cannot raise its own bar. Novelty detectors
(new template, Sentry, alarms, Kubernetes) add a baseline entry where a key first
appears after the first ``warmup_fraction`` of the baseline (before that, everything is
new). A candidate is flagged when ``raw > thr[i]``; a flagged key keeps its signal open
through following windows while ``raw > max(floor, hysteresis * thr)`` (gaps of up to
``merge_gap_windows`` windows are bridged), so one incident is one signal, not one per
window (``tasks.incidents.anomaly.context.Context.runs``).

Example:
    ```python
    from tasks.incidents.anomaly.thresholds import adaptive_threshold

    print(adaptive_threshold([0, 0, 9, 0, 0], floor=1.0, quantile=0.9, history=4))
    # [1.  1.  1.  7.2 6.3]: a noisy window raises the bar
    ```
"""

from __future__ import annotations

import bisect
from collections import deque
from collections.abc import Sequence

import numpy as np


def adaptive_threshold(
    window_scores: Sequence[float] | np.ndarray,
    *,
    floor: float,
    quantile: float = 0.99,
    history: int = 360,
    learn_until: int | None = None,
    warmup: int = 0,
) -> np.ndarray:
    """The bar each window's raw scores must exceed (see the module docstring).

    Args:
        window_scores: a detector's maximum raw score per window, in time order.
        floor: the bar never goes below this.
        quantile: quantile of the history that sets the bar.
        history: number of past windows kept.
        learn_until: windows before this index (the baseline) enter the history with
            their own score; later ones enter clipped at their bar. Default: all.
        warmup: windows before this index add nothing to the history.

    Returns:
        ``thr`` with one bar per window: ``max(floor, quantile of the history before it)``.

    Example:
        ```python
        from tasks.incidents.anomaly.thresholds import adaptive_threshold

        adaptive_threshold([0, 0, 9, 0, 0], floor=1.0, quantile=0.9, history=4)
        # array([1. , 1. , 1. , 7.2, 6.3]): a noisy window raises the bar
        ```
    """
    scores = np.asarray(window_scores, dtype=np.float64)
    learn_until = len(scores) if learn_until is None else learn_until
    window: deque[float] = deque()
    ordered: list[float] = []
    thr = np.empty(len(scores))
    for i, score in enumerate(scores):
        bar = floor
        if ordered:
            pos = quantile * (len(ordered) - 1)
            lo = int(pos)
            hi = min(lo + 1, len(ordered) - 1)
            bar = max(floor, ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo))
        thr[i] = bar
        if i < warmup:
            continue
        entry = float(score) if i < learn_until else min(float(score), bar)
        window.append(entry)
        bisect.insort(ordered, entry)
        if len(window) > history:
            ordered.pop(bisect.bisect_left(ordered, window.popleft()))
    return thr
