"""The ensemble: ``AnomalyConfig``, every detector's drafts combined, ``detect_signals``.

A flagged candidate's detector score is ``weight * (1 - 2 ** -(raw / thr))`` (0.5 *
weight at the bar, approaching the weight far above it). Signals of different detectors
that share an entity (namespaces aside) and overlap in time (within one window)
corroborate each other by noisy-OR:
``score = 1 - (1 - own) * prod_k (1 - corroboration * best_k)`` with ``best_k`` the best
own score of detector ``k``. Deploys get the fixed low score ``weight``
(``tasks.incidents.anomaly.deploys``).

The detectors, one module each in ``tasks.incidents.anomaly``, and the thresholds
(``thresholds``) are described in their modules.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from datetime import datetime

import numpy as np
from pydantic import BaseModel, Field, field_validator

from tasks.incidents.anomaly.context import Context, Draft, Timeline, epoch, event_table, utc
from tasks.incidents.anomaly.deploys import detect_deploys
from tasks.incidents.anomaly.isolation_forest import detect_isolation_forest
from tasks.incidents.anomaly.metric_deviations import detect_metric_deviations
from tasks.incidents.anomaly.new_templates import detect_new_templates
from tasks.incidents.anomaly.sentry_issues import detect_sentry_issues
from tasks.incidents.anomaly.spikes import detect_frequency_spikes
from tasks.incidents.anomaly.watched_events import watched_events
from tasks.incidents.signals import AnomalySignal
from tasks.telemetry.model import Event, MetricSeries

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


def _corroborating_entities(draft: Draft) -> set[str]:
    return {
        e for e in (draft.entity, *draft.related) if not e.startswith(("namespace:", "unknown:"))
    }


def _ensemble(drafts: list[Draft], config: AnomalyConfig) -> list[float]:
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
        from samples.scenarios import generate
        from tasks.incidents.anomaly.ensemble import AnomalyConfig, detect_signals
        from tasks.incidents.pipeline import mine_templates

        run = generate(["bad_rollout"], seed=7, lines=5000)
        mined = mine_templates(run.events)
        signals = detect_signals(run.events, mined.template_ids, mined.templates, {},
                                 run.metrics, AnomalyConfig(window_seconds=60))
        print([(s.kind, s.entity, round(s.score, 2)) for s in signals][:2])
        # [('deploy', 'service:checkout', 0.2), ('metric_zscore', 'service:checkout', 0.94)]
        ```
    """
    config = config or AnomalyConfig()
    if len(template_ids) != len(events):
        raise ValueError(
            f"template_ids has {len(template_ids)} entries for {len(events)} events; "
            "give one per event (None for non-log events)"
        )
    frame = event_table(events, template_ids, clusters, config.novelty_by_cluster)
    stamps = [frame["t"].to_numpy()]
    stamps += [np.fromiter((epoch(s) for s in m.timestamps), float) for m in metrics]
    stamps = np.concatenate(stamps) if stamps else np.zeros(0)
    if not len(stamps):
        return []
    t_min, t_max = float(stamps.min()), float(stamps.max())
    if config.baseline_end is not None:
        origin = epoch(config.baseline_end)
        if origin <= t_min:
            raise ValueError(
                f"config.baseline_end {config.baseline_end.isoformat()} is not after the first "
                f"event ({utc(t_min).isoformat()}): there is no baseline to compare with"
            )
    else:
        origin = t_min + config.baseline_fraction * (t_max - t_min)
    if origin > t_max or t_max <= t_min:
        return []
    ctx = Context(
        events=events,
        frame=frame,
        templates=templates,
        clusters=clusters,
        timeline=Timeline(origin=origin, width=config.window_seconds, t_min=t_min, t_max=t_max),
        config=config,
    )
    steps = {
        "new_template": lambda: detect_new_templates(ctx),
        "frequency_spike": lambda: detect_frequency_spikes(ctx),
        "isolation_forest": lambda: detect_isolation_forest(ctx),
        "metric_zscore": lambda: detect_metric_deviations(ctx, metrics),
        "sentry": lambda: detect_sentry_issues(ctx),
        "alarm": lambda: watched_events(ctx, "alarm"),
        "k8s_warning": lambda: watched_events(ctx, "k8s_warning"),
        "deploy": lambda: detect_deploys(ctx),
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


def _signal(ctx: Context, draft: Draft, score: float) -> AnomalySignal:
    cluster = ctx.clusters.get(draft.template_id) if draft.template_id is not None else None
    evidence = {k: (v if isinstance(v, str) else float(v)) for k, v in draft.evidence.items()}
    evidence["detector_score"] = round(draft.own, 4)
    return AnomalySignal(
        id=f"{draft.kind}:{draft.key.replace('|', ':')}@{draft.window}",
        kind=draft.kind,
        source=draft.source,
        entity=draft.entity,
        related=draft.related,
        start=utc(draft.start),
        end=utc(max(draft.end, draft.start)),
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
