"""What every anomaly detector shares: the timeline, the event table, drafts and runs.

``Timeline`` cuts time into windows aligned on the end of the baseline (window 0 is the
first of the detection period, negative windows are the baseline). ``event_table`` turns
the events into one row each (time, kind, severity, entity, service scope, source,
template and unit). A detector turns candidate rows (key, window, raw score) into runs
with ``Context.runs`` (adaptive bar, hysteresis, merged gaps) and each run into a
``Draft`` with ``Context.describe``; the ensemble (``tasks.incidents.anomaly.ensemble``)
scores the drafts and turns them into ``AnomalySignal`` objects.

Example:
    ```python
    from datetime import UTC, datetime

    from tasks.incidents.anomaly.context import Timeline, epoch

    origin = epoch(datetime(2024, 5, 1, 11, 0, tzinfo=UTC))
    timeline = Timeline(origin=origin, width=60.0, t_min=origin - 3600, t_max=origin + 3599)
    print(timeline.first, timeline.last, timeline.baseline_windows)  # -60 59 60
    ```
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from scipy.special import gammainc

from tasks.common.times import as_utc
from tasks.incidents.anomaly.thresholds import adaptive_threshold
from tasks.incidents.signals import SignalKind
from tasks.telemetry.model import SEVERITY_RANK, Event

if TYPE_CHECKING:
    from tasks.incidents.anomaly.ensemble import AnomalyConfig, DetectorSettings

SEVERITY_FACTOR = np.array([0.3, 0.5, 0.8, 1.0, 1.0])  # by SEVERITY_RANK
SEVERITY_NAMES = ("debug", "info", "warning", "error", "critical")
MAD_SCALE = 1.4826  # MAD -> standard deviation for normal data
MAX_RAW = 50.0  # cap on -log10 p and z style raw scores


def epoch(moment: datetime) -> float:
    """Epoch seconds; a naive datetime is taken as UTC."""
    return as_utc(moment).timestamp()


def utc(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, tz=UTC)


@dataclass(frozen=True)
class Timeline:
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


def service_scope(event: Event) -> str:
    """The service an event belongs to (its entity when it names no service)."""
    if event.entity.startswith("service:"):
        return event.entity
    for item in event.related:
        if item.startswith("service:"):
            return item
    return event.entity


def event_table(
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
            "t": np.fromiter((epoch(e.timestamp) for e in events), float, len(events)),
            "kind": [e.kind for e in events],
            "sev": np.fromiter((SEVERITY_RANK[e.severity] for e in events), np.int64, len(events)),
            "entity": [e.entity for e in events],
            "scope": [service_scope(e) for e in events],
            "source": [e.source for e in events],
            "tid": tids,
            "unit": units,
        }
    )


@dataclass
class Draft:
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
class Context:
    events: Sequence[Event]
    frame: pd.DataFrame
    templates: dict[int, str]
    clusters: dict[int, tuple[int, str]]
    timeline: Timeline
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


def severity_factor(rank: np.ndarray) -> np.ndarray:
    return SEVERITY_FACTOR[np.asarray(rank, dtype=np.int64)]


def poisson_tail(count: np.ndarray, mean: np.ndarray) -> np.ndarray:
    """P(X >= count) for X ~ Poisson(mean); real-valued counts (quasi-Poisson scaling)."""
    count = np.asarray(count, dtype=np.float64)
    mean = np.maximum(np.asarray(mean, dtype=np.float64), 1e-12)
    return np.where(count <= 0, 1.0, gammainc(np.maximum(count, 1e-12), mean))


def log_surprise(p: np.ndarray) -> np.ndarray:
    return np.minimum(-np.log10(np.maximum(p, 1e-300)), MAX_RAW)


def group_rows(frame: pd.DataFrame, key: pd.Series | np.ndarray) -> dict:
    """``{key: frame row positions}``."""
    return pd.Series(np.arange(len(frame))).groupby(np.asarray(key)).indices


def first_value(attributes: dict[str, str], keys: Sequence[str]) -> str | None:
    for key in keys:
        value = attributes.get(key)
        if value not in (None, ""):
            return value
    return None
