"""The anomaly ensemble: events and metric series in, ``AnomalySignal`` objects out.

Time is cut into windows of ``window_seconds`` aligned on ``baseline_end`` (default:
halfway through the data's time span). Windows before it are the baseline (what normal
looks like, background errors included); signals are only reported for the detection
period after it. A log event's "unit" is its template's cluster (``clusters``; the
template itself when unclustered) and its "service" the ``service:`` entity among its
entity and ``related`` (else its entity). Each detector scores candidates in its own
raw unit, with a floor the raw score must always exceed:

- ``new_template`` (floor 1.0): a (unit, service) never seen in the baseline, reported
  per entity (pod) and per burst (``burst_gap_seconds`` of quiet splits a signal);
  ``raw = sev * (1 + min(1, log1p(n) / log1p(50)))`` for ``n`` events of the highest
  severity ``sev`` among them. Paraphrases of a baseline message share its cluster, so
  they are not new.
- ``frequency_spike`` (floor 5.0): per (unit, service, severity) count ``c`` in a window
  vs the baseline's mean per window: ``raw = sev * -log10 P(X >= c)``, X quasi-Poisson
  (mean and counts divided by the baseline's dispersion var/mean, at least 1), needing
  ``c >= spike_min_count`` and ``c >= spike_min_ratio * mean``. Severity is in the key
  because masking hides status codes: an access log's ERROR lines can spike alone.
- ``isolation_forest`` (floor 0.4): an IsolationForest over the windows x log1p counts
  of the clusters seen in the baseline, fitted on all windows (a forest cannot isolate a
  point outside the range it was fitted on: fitted on the baseline alone it scores a log
  storm like the busiest baseline window). ``raw = 2 * max(0, s - 0.5)``, ``s`` the
  forest's anomaly score; a flagged window is attributed to the (up to 3) clusters
  whose counts deviate most (robust z) from their baseline.
- ``metric_zscore`` (floor 4.0): robust z = (x - median) / (1.4826 MAD) over the
  baseline samples (mean absolute deviation when the MAD is 0), sustained: the smallest
  |z| over ``metric_sustain`` consecutive samples, samples within ``metric_min_change``
  of the median counting as 0 (slow drift is not news).
- ``sentry`` (floor 0.5): an ``issue`` first seen in the detection period
  (``sentry_new_issue``) or regressed (``sentry_regression``):
  ``raw = sev * (1 + 0.5 * min(1, log1p(count) / log1p(100)))``; its ``error_event``
  events (same issue id, or same title and entity) are its evidence.
- ``alarm`` and ``k8s_warning`` (floor 1.0): alarms firing, and Kubernetes Warning
  events and bad pod/node states (``BAD_K8S_REASONS`` weigh ``f = 1``, other warnings
  0.6), keyed by (alarm or reason, service): ``raw = 2 * f`` when the key never
  happened in the baseline, else ``f * min(2, -log10 P(X >= c) / 3)`` with ``c`` the
  detection count and X Poisson at the baseline rate scaled to the detection length:
  the same rate in both periods scores ~0.

``sev`` weighs severity: debug 0.3, info 0.5, warning 0.8, error and critical 1.0; so a
new INFO template never passes the new-template floor and INFO spikes need more
evidence than ERROR ones.

Adaptive thresholds. Each detector keeps the per-window maximum of its raw scores, over
the windows processed so far in time order, and for window ``i`` sets::

    thr[i] = max(floor, Q_q(H_i))       H_i = the last ``history_windows`` entries

A baseline window enters ``H`` with its own maximum (the baseline is normal by
definition, so its noise raises the bar); a detection window enters as
``min(max_i, thr[i])``, so an incident cannot raise its own bar. Novelty detectors
(new template, Sentry, alarms, Kubernetes) add a baseline entry where a key first
appears after the first ``warmup_fraction`` of the baseline (before that, everything is
new). A candidate is flagged when ``raw > thr[i]``; a flagged key keeps its signal open
through following windows while ``raw > max(floor, hysteresis * thr)`` (gaps of up to
``merge_gap_windows`` windows are bridged), so one incident is one signal, not one per
window.

Ensemble. A flagged candidate's detector score is ``weight * (1 - 2 ** -(raw / thr))``
(0.5 * weight at the bar, approaching the weight far above it). Signals of different
detectors that share an entity (namespaces aside) and overlap in time (within one
window) corroborate each other by noisy-OR:
``score = 1 - (1 - own) * prod_k (1 - corroboration * best_k)`` with ``best_k`` the best
own score of detector ``k``. Deploys (``deploy`` events, and annotations that mention a
deploy, release or rollout), from ``deploy_lookback_seconds`` before ``baseline_end`` on,
become ``deploy`` signals with the fixed low score ``weight``: context for correlation
and remediation.

Attributes read from events (the sources in ``tasks.telemetry.kubernetes``/``sentry``/
``cloudwatch``/``grafana`` map into these; first match wins): Sentry issue id
``issue_id``/``issueId``/``issue``/``group_id``/``id``, ``firstSeen``/``first_seen``,
``substatus`` (``regressed``), ``isRegression``/``is_regression``, ``count``; alarm state
``state``/``new_state``/``newState``/``StateValue``/``status`` (ALARM, alerting, firing;
without one, an ``alarm`` event of severity error or worse counts), alarm name
``alarm_name``/``AlarmName``/``alert_name``/``alertname``/``alarm``/``rule``/``name``;
Kubernetes ``reason`` (or ``state``/``waiting_reason``/``terminated_reason``), node
conditions as ``condition`` + ``condition_status``/``status``.
"""

from __future__ import annotations

import bisect
import logging
import math
import re
from collections import Counter, deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np
import pandas as pd
from pydantic import BaseModel, Field, field_validator
from scipy.special import gammainc

from tasks.common.times import parse_time_or_none
from tasks.incidents.signals import AnomalySignal, SignalKind
from tasks.telemetry.model import SEVERITY_RANK, Event, MetricSeries

DETECTORS = (
    "new_template",
    "frequency_spike",
    "isolation_forest",
    "metric_zscore",
    "sentry",
    "alarm",
    "k8s_warning",
    "deploy",
)
_log = logging.getLogger(__name__)
SEVERITY_FACTOR = np.array([0.3, 0.5, 0.8, 1.0, 1.0])  # by SEVERITY_RANK
SEVERITY_NAMES = ("debug", "info", "warning", "error", "critical")
MAD_SCALE = 1.4826  # MAD -> standard deviation for normal data
MAX_RAW = 50.0  # cap on -log10 p and z style raw scores
BAD_K8S_REASONS = frozenset(
    r.lower()
    for r in (
        "BackOff",
        "CrashLoopBackOff",
        "OOMKilled",
        "OOMKilling",
        "SystemOOM",
        "Unhealthy",
        "FailedScheduling",
        "Evicted",
        "Evicting",
        "NodeNotReady",
        "NotReady",
        "NodeStatusUnknown",
        "ImagePullBackOff",
        "ErrImagePull",
        "InvalidImageName",
        "CreateContainerError",
        "CreateContainerConfigError",
        "RunContainerError",
        "ContainerCannotRun",
        "FailedMount",
        "FailedAttachVolume",
        "FailedCreatePodSandBox",
        "FailedKillPod",
        "BackoffLimitExceeded",
        "DeadlineExceeded",
        "Error",
        "Failed",
        "NodeHasDiskPressure",
        "NodeHasInsufficientMemory",
        "NodeHasInsufficientPID",
        "DiskPressure",
        "MemoryPressure",
        "PIDPressure",
        "NetworkUnavailable",
        "Rebooted",
    )
)
_NODE_PRESSURE = {"memorypressure", "diskpressure", "pidpressure", "networkunavailable"}
_ISSUE_ID_KEYS = ("issue_id", "issueId", "issue", "group_id", "id")
_FIRST_SEEN_KEYS = ("firstSeen", "first_seen")
_REGRESSION_KEYS = ("isRegression", "is_regression")
_ALARM_STATE_KEYS = ("state", "new_state", "newState", "StateValue", "status")
_ALARM_NAME_KEYS = ("alarm_name", "AlarmName", "alert_name", "alertname", "alarm", "rule", "name")
_REASON_KEYS = ("reason", "state", "waiting_reason", "terminated_reason")
_FIRING = {"alarm", "alerting", "firing"}
_TRUE = {"true", "1", "yes"}
_DEPLOY_WORDS = re.compile(r"\b(deploy\w*|release\w*|rollout\w*|rolled out|rolling update)\b", re.I)


class DetectorSettings(BaseModel):
    """Weight of a detector in the ensemble and the raw score it must always exceed."""

    weight: float = Field(ge=0, le=1)
    floor: float = Field(ge=0, description="Raw score a candidate must exceed at least")


DEFAULT_DETECTORS: dict[str, DetectorSettings] = {
    "new_template": DetectorSettings(weight=0.9, floor=1.0),
    "frequency_spike": DetectorSettings(weight=0.8, floor=5.0),
    "isolation_forest": DetectorSettings(weight=0.5, floor=0.4),
    "metric_zscore": DetectorSettings(weight=0.8, floor=4.0),
    "sentry": DetectorSettings(weight=0.9, floor=0.5),
    "alarm": DetectorSettings(weight=1.0, floor=1.0),
    "k8s_warning": DetectorSettings(weight=0.9, floor=1.0),
    "deploy": DetectorSettings(weight=0.2, floor=0.0),
}


class AnomalyConfig(BaseModel):
    """How the ensemble cuts time, learns its baseline and weighs its detectors."""

    window_seconds: float = Field(60.0, gt=0, description="Width of one time window")
    baseline_end: datetime | None = Field(
        None, description="End of the baseline; default: halfway through the data's span"
    )
    baseline_fraction: float = Field(
        0.5, gt=0, lt=1, description="Share of the span used as baseline without baseline_end"
    )
    quantile: float = Field(0.99, gt=0, lt=1, description="Quantile of the score history")
    history_windows: int = Field(360, ge=1, description="Windows of score history kept")
    warmup_fraction: float = Field(
        0.25, ge=0, lt=1, description="Leading share of the baseline where novelty is not noise"
    )
    hysteresis: float = Field(
        0.5, gt=0, le=1, description="A flagged key stays open while raw > hysteresis * thr"
    )
    merge_gap_windows: int = Field(1, ge=0, description="Quiet windows bridged inside one signal")
    detectors: dict[str, DetectorSettings] = Field(default_factory=lambda: dict(DEFAULT_DETECTORS))
    spike_min_count: int = Field(5, ge=1)
    spike_min_ratio: float = Field(3.0, ge=1)
    metric_sustain: int = Field(3, ge=1, description="Consecutive samples a deviation must last")
    metric_min_baseline: int = Field(5, ge=2, description="Baseline samples a series needs")
    isolation_trees: int = Field(100, ge=10)
    isolation_max_features: int = Field(200, ge=1, description="Most frequent clusters used")
    isolation_min_windows: int = Field(8, ge=2, description="Baseline windows the forest needs")
    novelty_by_cluster: bool = Field(
        True, description="A template is new only if its cluster is new (paraphrases are not)"
    )
    burst_gap_seconds: float = Field(
        300.0, gt=0, description="A novel key quiet this long starts a new signal when it returns"
    )
    metric_min_change: float = Field(
        0.2, ge=0, description="Relative change from the baseline median a metric needs"
    )
    deploy_lookback_seconds: float = Field(
        600.0, ge=0, description="Deploys this long before baseline_end are reported too"
    )
    corroboration: float = Field(0.5, ge=0, le=1)
    random_state: int = 0

    @field_validator("detectors", mode="before")
    @classmethod
    def _merge_defaults(cls, value):
        if value is None:
            return dict(DEFAULT_DETECTORS)
        unknown = sorted(set(value) - set(DETECTORS))
        if unknown:
            raise ValueError(f"unknown detector(s) {unknown}; known: {list(DETECTORS)}")
        return {**DEFAULT_DETECTORS, **value}


# --- adaptive threshold ------------------------------------------------------------------


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


# --- time and event table ----------------------------------------------------------------


def _epoch(moment: datetime) -> float:
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def _utc(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, tz=UTC)


@dataclass(frozen=True)
class _Timeline:
    origin: float  # baseline_end, epoch seconds
    width: float
    t_min: float
    t_max: float

    @property
    def first(self) -> int:
        return math.floor((self.t_min - self.origin) / self.width)

    @property
    def last(self) -> int:
        return math.floor((self.t_max - self.origin) / self.width)

    @property
    def size(self) -> int:
        return self.last - self.first + 1

    @property
    def baseline_windows(self) -> int:
        return -self.first

    @property
    def baseline_seconds(self) -> float:
        return max(self.origin - self.t_min, self.width)

    @property
    def detection_seconds(self) -> float:
        return max(self.t_max - self.origin, self.width)

    def window(self, t: np.ndarray) -> np.ndarray:
        return np.floor((np.asarray(t, dtype=np.float64) - self.origin) / self.width).astype(
            np.int64
        )

    def coverage(self) -> np.ndarray:
        """Share of each window inside the data's span (first and last may be partial)."""
        starts = self.origin + np.arange(self.first, self.last + 1) * self.width
        inside = np.minimum(starts + self.width, self.t_max + 1e-9) - np.maximum(starts, self.t_min)
        return np.clip(inside / self.width, 0.0, 1.0)


def _scope(event: Event) -> str:
    """The service an event belongs to (its entity when it names no service)."""
    if event.entity.startswith("service:"):
        return event.entity
    for item in event.related:
        if item.startswith("service:"):
            return item
    return event.entity


def _event_table(
    events: Sequence[Event],
    template_ids: Sequence[int | None],
    clusters: dict[int, tuple[int, str]],
    by_cluster: bool,
) -> pd.DataFrame:
    tids = np.array([-1 if t is None else int(t) for t in template_ids], dtype=np.int64)
    units = [
        "" if t < 0 else (f"c{clusters[t][0]}" if by_cluster and t in clusters else f"t{t}")
        for t in tids.tolist()
    ]
    return pd.DataFrame(
        {
            "t": np.fromiter((_epoch(e.timestamp) for e in events), float, len(events)),
            "kind": [e.kind for e in events],
            "sev": np.fromiter((SEVERITY_RANK[e.severity] for e in events), np.int64, len(events)),
            "entity": [e.entity for e in events],
            "scope": [_scope(e) for e in events],
            "source": [e.source for e in events],
            "tid": tids,
            "unit": units,
        }
    )


# --- candidates, thresholds and runs -----------------------------------------------------


@dataclass
class _Draft:
    """A flagged candidate before the ensemble turns it into an AnomalySignal."""

    kind: SignalKind
    detector: str
    key: str
    source: str
    entity: str
    related: list[str]
    start: float
    end: float
    raw: float
    thr: float
    severity: str
    title: str
    window: int
    event_indices: list[int] = field(default_factory=list)
    template_id: int | None = None
    evidence: dict[str, float | str] = field(default_factory=dict)
    own: float = 0.0


@dataclass
class _Context:
    events: Sequence[Event]
    frame: pd.DataFrame
    templates: dict[int, str]
    clusters: dict[int, tuple[int, str]]
    timeline: _Timeline
    config: AnomalyConfig
    col: dict[str, np.ndarray] = field(init=False)

    def __post_init__(self) -> None:
        # numpy views of the table's columns, converted once (pandas keeps strings in Arrow)
        self.col = {name: self.frame[name].to_numpy() for name in self.frame.columns}

    def settings(self, detector: str) -> DetectorSettings:
        return self.config.detectors[detector]

    @property
    def warmup(self) -> int:
        """Leading baseline windows whose novelties are not history (everything is new)."""
        return int(math.ceil(self.config.warmup_fraction * self.timeline.baseline_windows))

    def thresholds(self, detector: str, w: np.ndarray, raw: np.ndarray, warmup: int = 0):
        """Per-window bars from candidate rows (window index, raw) of one detector."""
        tl = self.timeline
        peaks = np.zeros(tl.size)
        if len(w):
            np.maximum.at(peaks, np.asarray(w) - tl.first, np.asarray(raw, dtype=np.float64))
        return adaptive_threshold(
            peaks,
            floor=self.settings(detector).floor,
            quantile=self.config.quantile,
            history=self.config.history_windows,
            learn_until=tl.baseline_windows,
            warmup=warmup,
        )

    def runs(self, detector: str, rows: pd.DataFrame, warmup: int = 0) -> pd.DataFrame:
        """Flag rows (``key``, ``w``, ``raw``) and join each key's flagged windows into runs.

        Returns one row per run: key, w0, w1, raw (max), ratio (max raw/thr over the
        windows above the bar), thr (the bar at that window).
        """
        columns = ["key", "w0", "w1", "raw", "ratio", "thr"]
        if rows.empty:
            return pd.DataFrame(columns=columns)
        tl = self.timeline
        rows = rows.assign(w=np.clip(rows["w"].to_numpy(), tl.first, tl.last))
        thr = self.thresholds(detector, rows["w"].to_numpy(), rows["raw"].to_numpy(), warmup)
        det = rows[rows["w"] >= 0].reset_index(drop=True)
        if det.empty:
            return pd.DataFrame(columns=columns)
        det["thr"] = thr[det["w"].to_numpy() - tl.first]
        floor = self.settings(detector).floor
        det["hot"] = det["raw"] > det["thr"]
        warm = det["raw"] > np.maximum(floor, self.config.hysteresis * det["thr"])
        det = det[warm | det["hot"]].sort_values(["key", "w"], kind="stable")
        if det.empty:
            return pd.DataFrame(columns=columns)
        gap = det["w"].diff().fillna(0) > 1 + self.config.merge_gap_windows
        det["run"] = ((det["key"] != det["key"].shift()) | gap).cumsum()
        det["ratio"] = np.where(det["hot"], det["raw"] / det["thr"], 0.0)
        grouped = det.groupby("run", sort=False)
        best = det.loc[grouped["ratio"].idxmax()]
        out = pd.DataFrame(
            {
                "key": best["key"].to_numpy(),
                "w0": grouped["w"].min().to_numpy(),
                "w1": grouped["w"].max().to_numpy(),
                "raw": grouped["raw"].max().to_numpy(),
                "ratio": best["ratio"].to_numpy(),
                "thr": best["thr"].to_numpy(),
            }
        )
        return out[out["ratio"] > 0].reset_index(drop=True)

    # --- describing the events behind a signal ----------------------------------------

    def describe(self, rows: np.ndarray, scope_fallback: str | None = None) -> dict:
        """Entity, related, time span, severity and main template of frame rows."""
        col = self.col
        counts = Counter(col["entity"][rows].tolist())
        entity, top = counts.most_common(1)[0]
        scopes = set(col["scope"][rows].tolist())
        if scope_fallback and top < 0.5 * len(rows):  # spread over many pods: the service
            entity = scope_fallback
        related: set[str] = set()
        for pos in np.unique(rows).tolist():
            if len(related) > 50:
                break
            related.update(self.events[pos].related)
        related.update(scopes)
        related.update(e for e in counts if e != entity)
        related.discard(entity)
        tids = col["tid"][rows]
        tids = tids[tids >= 0]
        template_id = int(Counter(tids.tolist()).most_common(1)[0][0]) if len(tids) else None
        times = col["t"][rows]
        return {
            "entity": entity,
            "related": sorted(related)[:50],
            "start": float(times.min()),
            "end": float(times.max()),
            "severity": SEVERITY_NAMES[int(col["sev"][rows].max())],
            "template_id": template_id,
            "source": Counter(col["source"][rows].tolist()).most_common(1)[0][0],
            "event_indices": sorted(int(p) for p in rows),
        }

    def bursts(self, rows: np.ndarray) -> list[np.ndarray]:
        """Frame rows split where the events pause longer than ``burst_gap_seconds``."""
        rows = np.asarray(rows)
        rows = rows[np.argsort(self.col["t"][rows], kind="stable")]
        gaps = np.diff(self.col["t"][rows]) > self.config.burst_gap_seconds
        return np.split(rows, np.flatnonzero(gaps) + 1)

    def window_of(self, rows: np.ndarray) -> int:
        return int(self.timeline.window(self.col["t"][rows[:1]])[0])

    def template_text(self, template_id: int | None, limit: int = 120) -> str:
        text = self.templates.get(template_id, "") if template_id is not None else ""
        return text if len(text) <= limit else text[: limit - 1] + "…"


def _severity_factor(rank: np.ndarray) -> np.ndarray:
    return SEVERITY_FACTOR[np.asarray(rank, dtype=np.int64)]


def _poisson_tail(count: np.ndarray, mean: np.ndarray) -> np.ndarray:
    """P(X >= count) for X ~ Poisson(mean); real-valued counts (quasi-Poisson scaling)."""
    count = np.asarray(count, dtype=np.float64)
    mean = np.maximum(np.asarray(mean, dtype=np.float64), 1e-12)
    return np.where(count <= 0, 1.0, gammainc(np.maximum(count, 1e-12), mean))


def _log_surprise(p: np.ndarray) -> np.ndarray:
    return np.minimum(-np.log10(np.maximum(p, 1e-300)), MAX_RAW)


def _group_rows(frame: pd.DataFrame, key: pd.Series | np.ndarray) -> dict:
    """``{key: frame row positions}``."""
    return pd.Series(np.arange(len(frame))).groupby(np.asarray(key)).indices


# --- 1. new templates --------------------------------------------------------------------


def _new_templates(ctx: _Context) -> list[_Draft]:
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
    members = _group_rows(cand, cand["key"])
    drafts = []
    for run in runs.itertuples(index=False):
        for part in ctx.bursts(cand["row"].to_numpy()[members[run.key]]):
            info = ctx.describe(part)
            n = len(part)
            text = ctx.template_text(info["template_id"])
            drafts.append(
                _Draft(
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
    return _severity_factor(sev) * (1.0 + volume)


# --- 2. frequency spikes -----------------------------------------------------------------


def _frequency_spikes(ctx: _Context) -> list[_Draft]:
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
    p = _poisson_tail(c / dispersion, mean_eff / dispersion)
    raw = _severity_factor(counts["sev"].to_numpy()) * _log_surprise(p)
    eligible = (c >= cfg.spike_min_count) & (c >= cfg.spike_min_ratio * mean_eff)
    eligible &= counts["novel"].isin(known).to_numpy()  # new ones: the new-template detector
    counts["raw"] = np.where(eligible, raw, 0.0)
    counts["mean"] = mean_eff
    counts["dispersion"] = dispersion
    runs = ctx.runs("frequency_spike", counts[counts["raw"] > 0][["key", "w", "raw"]])
    if runs.empty:
        return []
    members = _group_rows(sub, key)
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
            _Draft(
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


# --- 3. isolation forest -----------------------------------------------------------------


def _isolation_forest(ctx: _Context) -> list[_Draft]:
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
    by_unit = _group_rows(sub, codes)
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
            _Draft(
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


def _unit_name(ctx: _Context, unit: str) -> str:
    """Readable name of a template or cluster unit ("c12" / "t7")."""
    number = int(unit[1:])
    if unit.startswith("c"):
        for cid, label in ctx.clusters.values():
            if cid == number:
                return f"[{label}]"
        return f"cluster {number}"
    return f"'{ctx.template_text(number, 60)}'"


# --- 4. metrics --------------------------------------------------------------------------


def _metric_deviations(ctx: _Context, metrics: Sequence[MetricSeries]) -> list[_Draft]:
    tl, cfg = ctx.timeline, ctx.config
    k = cfg.metric_sustain
    parts, series_data = [], {}
    for i, series in enumerate(metrics):
        t = np.fromiter((_epoch(s) for s in series.timestamps), float, len(series.timestamps))
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
            _Draft(
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


# --- 5. Sentry ---------------------------------------------------------------------------


def _first(attributes: dict[str, str], keys: Sequence[str]) -> str | None:
    for key in keys:
        value = attributes.get(key)
        if value not in (None, ""):
            return value
    return None


def _epoch_or_nan(value: str | None) -> float:
    stamp = parse_time_or_none(value)
    return math.nan if stamp is None else _epoch(stamp)


def _sentry(ctx: _Context) -> list[_Draft]:
    tl = ctx.timeline
    kinds = ctx.col["kind"]
    rows = np.flatnonzero((kinds == "issue") | (kinds == "error_event"))
    if not len(rows):
        return []
    found = [ctx.events[int(p)] for p in rows]
    # Error events without an issue id belong to the issue with their title on their entity.
    by_title = {
        (e.entity, e.message): _first(e.attributes, _ISSUE_ID_KEYS) or f"{e.entity}: {e.message}"
        for e in found
        if e.kind == "issue"
    }
    records = []
    for event in found:
        attrs = event.attributes
        is_issue = event.kind == "issue"
        regressed = is_issue and (
            (attrs.get("substatus") or "").lower() == "regressed"
            or (_first(attrs, _REGRESSION_KEYS) or "").lower() in _TRUE
        )
        count = _first(attrs, ("count",)) if is_issue else None
        records.append(
            (
                _first(attrs, _ISSUE_ID_KEYS)
                or by_title.get((event.entity, event.message))
                or f"{event.entity}: {event.message}",
                is_issue,
                _epoch_or_nan(_first(attrs, _FIRST_SEEN_KEYS)) if is_issue else math.nan,
                regressed,
                float(count) if count and count.replace(".", "", 1).isdigit() else 0.0,
            )
        )
    table = pd.DataFrame(records, columns=["key", "issue", "first_seen", "regressed", "count"])
    table["row"] = rows
    table["t"] = ctx.col["t"][rows]
    table["sev"] = ctx.col["sev"][rows]
    per = table.groupby("key").agg(
        first_seen=("first_seen", "min"),
        t_first=("t", "min"),
        count=("count", "max"),
        sev=("sev", "max"),
        issue=("issue", "any"),
    )
    per = per[per["issue"]]  # error events alone do not say whether an issue is new
    first_seen = per["first_seen"].fillna(per["t_first"]).to_numpy()
    regress = table[table["regressed"]].groupby("key")["t"].min()
    origin = tl.origin
    cand_t, cand_key, cand_kind = [], [], []
    for key, fs in zip(per.index, first_seen, strict=True):
        t_reg = regress.get(key)
        if t_reg is not None and t_reg >= origin:
            cand_t.append(t_reg), cand_key.append(key), cand_kind.append("sentry_regression")
        elif fs >= origin:
            cand_t.append(fs), cand_key.append(key), cand_kind.append("sentry_new_issue")
        elif t_reg is not None:  # baseline regression: history
            cand_t.append(t_reg), cand_key.append(key), cand_kind.append("history")
        else:  # first seen in the baseline: history
            cand_t.append(fs), cand_key.append(key), cand_kind.append("history")
    w = tl.window(np.asarray(cand_t, dtype=np.float64))
    det_counts = table[table["t"] >= origin].groupby("key").size()
    count = np.maximum(per["count"].to_numpy(), det_counts.reindex(per.index).fillna(0).to_numpy())
    raw = _severity_factor(per["sev"].to_numpy()) * (
        1.0 + 0.5 * np.minimum(1.0, np.log1p(count) / math.log1p(100))
    )
    candidates = pd.DataFrame({"key": cand_key, "w": w, "raw": raw})
    runs = ctx.runs("sentry", candidates[candidates["w"] >= tl.first], warmup=ctx.warmup)
    if runs.empty:
        return []
    kind_of = dict(zip(cand_key, cand_kind, strict=True))
    by_key = _group_rows(table, table["key"])
    t_all = table["t"].to_numpy()
    drafts = []
    for run in runs.itertuples(index=False):
        members = by_key[run.key]
        members = members[t_all[members] >= origin]
        info = ctx.describe(table["row"].to_numpy()[members])
        kind = kind_of[run.key]
        issue_rows = [r for r in members if table["issue"].iat[r]]
        message = ctx.events[int(table["row"].iat[issue_rows[0]])].message
        label = "Sentry regression" if kind == "sentry_regression" else "New Sentry issue"
        evidence: dict[str, float | str] = {
            "issue": str(run.key),
            "count": float(count[per.index.get_loc(run.key)]),
            "raw": float(run.raw),
            "threshold": float(run.thr),
        }
        fs = first_seen[per.index.get_loc(run.key)]
        if np.isfinite(fs):
            evidence["first_seen"] = _utc(float(fs)).isoformat()
            if kind == "sentry_new_issue":
                info["start"] = min(info["start"], float(fs))
        info["template_id"] = None
        drafts.append(
            _Draft(
                kind=kind,
                detector="sentry",
                key=str(run.key),
                title=f"{label} on {info['entity']}: {message[:120]}",
                raw=float(run.raw),
                thr=float(run.thr),
                window=int(run.w0),
                evidence=evidence,
                **info,
            )
        )
    return drafts


# --- 6. alarms and Kubernetes warnings ---------------------------------------------------


def _k8s_reason(event: Event) -> tuple[str, bool] | None:
    """(reason, is a known bad reason) of a Kubernetes event/state worth watching."""
    attrs = event.attributes
    condition = (attrs.get("condition") or "").lower()
    status = (attrs.get("condition_status") or attrs.get("status") or "").lower()
    if condition == "ready" and status in {"false", "unknown"}:
        return "NodeNotReady", True
    if condition in _NODE_PRESSURE and status == "true":
        return attrs["condition"], True
    reason = _first(attrs, _REASON_KEYS)
    if reason and reason.lower() in BAD_K8S_REASONS:
        return reason, True
    if event.kind == "k8s_event" and SEVERITY_RANK[event.severity] >= SEVERITY_RANK["warning"]:
        return reason or "Warning", False
    return None


def _alarm_name(event: Event) -> str | None:
    """The alarm's name when the event says it is firing, else None."""
    attrs = event.attributes
    state = _first(attrs, _ALARM_STATE_KEYS)
    firing = (
        state.lower() in _FIRING
        if state is not None
        else SEVERITY_RANK[event.severity] >= SEVERITY_RANK["error"]
    )
    return (_first(attrs, _ALARM_NAME_KEYS) or event.message[:80]) if firing else None


def _watched_events(ctx: _Context, detector: str) -> list[_Draft]:
    """Alarms or Kubernetes warnings: rare-or-rising keys vs the baseline rate."""
    tl = ctx.timeline
    kinds = ctx.col["kind"]
    wanted = ("alarm",) if detector == "alarm" else ("k8s_event", "k8s_state")
    rows, keys, factors, names = [], [], [], []
    for row in np.flatnonzero(np.isin(kinds, wanted)):
        event = ctx.events[int(row)]
        if detector == "alarm":
            name = _alarm_name(event)
            if name is None:
                continue
            factor = 1.0
        else:
            found = _k8s_reason(event)
            if found is None:
                continue
            name, bad = found
            factor = 1.0 if bad else 0.6
        rows.append(row), names.append(name), factors.append(factor)
        keys.append(f"{name}|{_scope(event)}")
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
    p = _poisson_tail(agg["c"].to_numpy(), expected)
    factor = agg["factor"].to_numpy()
    raw = np.where(c_base == 0, 2.0 * factor, factor * np.minimum(2.0, _log_surprise(p) / 3.0))
    candidates = pd.DataFrame(
        {
            "key": np.concatenate([history.index.to_numpy(), agg.index.to_numpy()]),
            "w": np.concatenate([history["w"].to_numpy(), agg["w"].to_numpy()]),
            "raw": np.concatenate([2.0 * history["factor"].to_numpy(), raw]),
        }
    )
    runs = ctx.runs(detector, candidates, warmup=ctx.warmup)
    by_key = _group_rows(det, det["key"])
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
                _Draft(
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


# --- deploys -----------------------------------------------------------------------------


def _deploys(ctx: _Context) -> list[_Draft]:
    tl = ctx.timeline
    since = tl.origin - ctx.config.deploy_lookback_seconds
    kinds, times = ctx.col["kind"], ctx.col["t"]
    drafts = []
    for row in np.flatnonzero(np.isin(kinds, ("deploy", "annotation")) & (times >= since)):
        event = ctx.events[int(row)]
        if event.kind == "annotation" and not _DEPLOY_WORDS.search(
            f"{event.message} {event.attributes.get('tags', '')}"
        ):
            continue
        info = ctx.describe(np.array([row]))
        info.update(template_id=None, severity="info")
        drafts.append(
            _Draft(
                kind="deploy",
                detector="deploy",
                key=str(int(row)),
                title=f"Deploy on {event.entity}: {event.message[:120]}",
                raw=1.0,
                thr=1.0,
                window=int(tl.window(np.array([times[row]]))[0]),
                evidence={k: str(v) for k, v in list(event.attributes.items())[:10]},
                **info,
            )
        )
    return drafts


# --- ensemble ----------------------------------------------------------------------------


def _corroborating_entities(draft: _Draft) -> set[str]:
    return {
        e for e in (draft.entity, *draft.related) if not e.startswith(("namespace:", "unknown:"))
    }


def _ensemble(drafts: list[_Draft], config: AnomalyConfig) -> list[float]:
    """Final score of each draft: own detector score, raised by other detectors' agreement."""
    for draft in drafts:
        weight = config.detectors[draft.detector].weight
        if draft.detector == "deploy":
            draft.own = weight
        else:
            draft.own = weight * (1.0 - 2.0 ** -(draft.raw / max(draft.thr, 1e-12)))
    by_entity: dict[str, list[int]] = {}
    for i, draft in enumerate(drafts):
        if draft.detector != "deploy":
            for entity in _corroborating_entities(draft):
                by_entity.setdefault(entity, []).append(i)
    margin = config.window_seconds
    scores = []
    for draft in drafts:
        if draft.detector == "deploy":
            scores.append(draft.own)
            continue
        best: dict[str, float] = {}
        for entity in _corroborating_entities(draft):
            for j in by_entity.get(entity, ()):
                other = drafts[j]
                if other.detector == draft.detector:
                    continue
                if other.start <= draft.end + margin and other.end >= draft.start - margin:
                    best[other.detector] = max(best.get(other.detector, 0.0), other.own)
        rest = 1.0 - draft.own
        for value in best.values():
            rest *= 1.0 - config.corroboration * value
        if best:
            draft.evidence["corroborated_by"] = ",".join(sorted(best))
        scores.append(min(1.0, max(0.0, 1.0 - rest)))
    return scores


# --- entry point -------------------------------------------------------------------------


def detect_signals(
    events: Sequence[Event],
    template_ids: Sequence[int | None],
    templates: dict[int, str],
    clusters: dict[int, tuple[int, str]],
    metrics: Sequence[MetricSeries] = (),
    config: AnomalyConfig | None = None,
) -> list[AnomalySignal]:
    """Run every detector and return the detection period's anomaly signals.

    Args:
        events: the run's events (any order), as mapped by the telemetry sources.
        template_ids: template id of each event (``tasks.incidents.templates``), None for events
            that are not log lines; same length as ``events``.
        templates: template id -> template text.
        clusters: template id -> (cluster id, cluster label)
            (``TemplateClusters.by_template_id``); templates missing here are their own unit.
        metrics: metric series of the same period.
        config: windows, baseline, weights and floors; defaults to ``AnomalyConfig()``.

    Returns:
        Signals after ``baseline_end`` (deploys from ``deploy_lookback_seconds`` before
        it), earliest first; ``event_indices`` are positions in ``events``.

    Example:
        ```python
        signals = detect_signals(events, ids, miner.templates(), clusters.by_template_id(tids),
                                 metrics, AnomalyConfig(window_seconds=60))
        [(s.kind, s.entity, round(s.score, 2)) for s in signals]
        # [('deploy', 'service:checkout', 0.2), ('k8s_warning', 'pod:checkout-7d9f', 0.93), ...]
        ```
    """
    config = config or AnomalyConfig()
    if len(template_ids) != len(events):
        raise ValueError(
            f"template_ids has {len(template_ids)} entries for {len(events)} events; "
            "give one per event (None for non-log events)"
        )
    frame = _event_table(events, template_ids, clusters, config.novelty_by_cluster)
    stamps = [frame["t"].to_numpy()]
    stamps += [np.fromiter((_epoch(s) for s in m.timestamps), float) for m in metrics]
    stamps = np.concatenate(stamps) if stamps else np.zeros(0)
    if not len(stamps):
        return []
    t_min, t_max = float(stamps.min()), float(stamps.max())
    if config.baseline_end is not None:
        origin = _epoch(config.baseline_end)
        if origin <= t_min:
            raise ValueError(
                f"config.baseline_end {config.baseline_end.isoformat()} is not after the first "
                f"event ({_utc(t_min).isoformat()}): there is no baseline to compare with"
            )
    else:
        origin = t_min + config.baseline_fraction * (t_max - t_min)
    if origin > t_max or t_max <= t_min:
        return []
    ctx = _Context(
        events=events,
        frame=frame,
        templates=templates,
        clusters=clusters,
        timeline=_Timeline(origin=origin, width=config.window_seconds, t_min=t_min, t_max=t_max),
        config=config,
    )
    steps = {
        "new_template": lambda: _new_templates(ctx),
        "frequency_spike": lambda: _frequency_spikes(ctx),
        "isolation_forest": lambda: _isolation_forest(ctx),
        "metric_zscore": lambda: _metric_deviations(ctx, metrics),
        "sentry": lambda: _sentry(ctx),
        "alarm": lambda: _watched_events(ctx, "alarm"),
        "k8s_warning": lambda: _watched_events(ctx, "k8s_warning"),
        "deploy": lambda: _deploys(ctx),
    }
    drafts = [d for name, run in steps.items() if config.detectors[name].weight > 0 for d in run()]
    scores = _ensemble(drafts, config)
    signals = [_signal(ctx, draft, score) for draft, score in zip(drafts, scores, strict=True)]
    seen: Counter[str] = Counter()
    for signal in signals:  # ids stay unique even if two series share metric and entity
        seen[signal.id] += 1
        if seen[signal.id] > 1:
            signal.id = f"{signal.id}#{seen[signal.id]}"
    signals.sort(key=lambda s: (s.start, -s.score, s.id))
    _log.info("%d anomaly signals: %s", len(signals), dict(Counter(s.kind for s in signals)))
    return signals


def _signal(ctx: _Context, draft: _Draft, score: float) -> AnomalySignal:
    cluster = ctx.clusters.get(draft.template_id) if draft.template_id is not None else None
    evidence = {k: (v if isinstance(v, str) else float(v)) for k, v in draft.evidence.items()}
    evidence["detector_score"] = round(draft.own, 4)
    return AnomalySignal(
        id=f"{draft.kind}:{draft.key.replace('|', ':')}@{draft.window}",
        kind=draft.kind,
        source=draft.source,
        entity=draft.entity,
        related=draft.related,
        start=_utc(draft.start),
        end=_utc(max(draft.end, draft.start)),
        score=round(score, 4),
        severity=draft.severity,
        title=draft.title,
        template_id=draft.template_id,
        template=ctx.templates.get(draft.template_id) if draft.template_id is not None else None,
        cluster_id=cluster[0] if cluster else None,
        cluster_label=cluster[1] if cluster else None,
        evidence=evidence,
        event_indices=draft.event_indices,
    )
