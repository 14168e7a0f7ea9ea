"""The incident pipeline, composed once (``run_pipeline``) for every caller.

Steps: mask + mine templates (log events only) -> embed the unique templates (cached)
-> cluster them (HDBSCAN) -> anomaly ensemble -> correlation -> remediation suggestions.

``run_pipeline`` holds the order of the steps and how each one's output feeds the next.
``detect_incidents`` runs it with each step wrapped in a Prefect task (a
``PipelineSteps`` of tasks, so the UI shows where time goes), ``evaluate_incidents``
runs it on generated scenarios and ``benchmarks/detect_incidents.py`` times it, both
with the plain functions: one pipeline, not three.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

import numpy as np

from tasks.incidents.anomaly.ensemble import AnomalyConfig, detect_signals
from tasks.incidents.clustering import TemplateClusters, cluster_templates, clustering_quality
from tasks.incidents.correlation import correlate
from tasks.incidents.embeddings import TemplateEmbedder
from tasks.incidents.remediation.ranking import suggest
from tasks.incidents.signals import AnomalySignal, Incident
from tasks.incidents.templates import TemplateMiner
from tasks.telemetry.model import Event, MetricSeries


@dataclass
class MinedTemplates:
    """Template of every event (None for non-log events) and the final template texts."""

    template_ids: list[int | None]
    templates: dict[int, str]
    log_lines: int


@dataclass
class TemplateSpace:
    """Embeddings and clusters of the unique templates, in ``ids`` order."""

    ids: list[int]
    embeddings: np.ndarray
    clusters: TemplateClusters
    quality: dict[str, float | None] = field(default_factory=dict)

    def by_template_id(self) -> dict[int, tuple[int, str]]:
        return self.clusters.by_template_id(self.ids)


def mine_templates(events: list[Event], miner: TemplateMiner | None = None) -> MinedTemplates:
    """Group the log events' messages into templates, streaming, in one pass.

    Template ids are resolved at the end, because a template can be merged into another
    as more lines arrive.
    """
    miner = miner or TemplateMiner()
    raw: list[int | None] = []
    lines = 0
    for event in events:
        if event.kind == "log":
            raw.append(miner.add(event.message)[0])
            lines += 1
        else:
            raw.append(None)
    final = [None if tid is None else miner.resolve(tid) for tid in raw]
    live = {tid for tid in final if tid is not None}
    templates = {tid: text for tid, text in miner.templates().items() if tid in live}
    return MinedTemplates(template_ids=final, templates=templates, log_lines=lines)


def embed_and_cluster(
    templates: dict[int, str], embedder: TemplateEmbedder, *, min_cluster_size: int = 2
) -> TemplateSpace:
    """Embed each unique template once (cache across runs) and cluster them."""
    ids = sorted(templates)
    texts = [templates[i] for i in ids]
    vectors = embedder.embed(texts) if texts else np.zeros((0, 384), dtype=np.float32)
    clusters = cluster_templates(vectors, texts, min_cluster_size=min_cluster_size)
    quality = clustering_quality(vectors, clusters.raw_labels) if len(ids) > 2 else {}
    return TemplateSpace(ids=ids, embeddings=vectors, clusters=clusters, quality=quality)


def signal_embeddings(
    signals: list[AnomalySignal], space: TemplateSpace, embedder: TemplateEmbedder
) -> dict[str, np.ndarray]:
    """A vector per signal: its template's, else its title's (for semantic joins)."""
    position = {tid: i for i, tid in enumerate(space.ids)}
    vectors: dict[str, np.ndarray] = {}
    untemplated = []
    for s in signals:
        if s.template_id is not None and s.template_id in position:
            vectors[s.id] = space.embeddings[position[s.template_id]]
        else:
            untemplated.append(s)
    if untemplated:
        titles = embedder.embed([s.title for s in untemplated])
        vectors.update({s.id: v for s, v in zip(untemplated, titles, strict=True)})
    return vectors


def correlate_and_suggest(
    signals: list[AnomalySignal],
    vectors: dict[str, np.ndarray],
    *,
    window: timedelta,
    dependencies: dict[str, list[str]] | None,
) -> list[Incident]:
    """Join signals into incidents and attach the rule library's suggestions."""
    incidents = correlate(signals, embeddings=vectors, window=window, dependencies=dependencies)
    for incident in incidents:
        incident.suggestions = suggest(incident, signals)
    return incidents


def score_anomalies(
    events: list[Event],
    mined: MinedTemplates,
    space: TemplateSpace,
    metrics: list[MetricSeries],
    config: AnomalyConfig,
) -> list[AnomalySignal]:
    """The anomaly ensemble over the mined templates and their clusters."""
    return detect_signals(
        events, mined.template_ids, mined.templates, space.by_template_id(), metrics, config
    )


def correlate_signals(
    signals: list[AnomalySignal],
    space: TemplateSpace,
    embedder: TemplateEmbedder,
    window: timedelta,
    dependencies: dict[str, list[str]] | None,
) -> list[Incident]:
    """Signal vectors (template or title), incidents, remediation suggestions."""
    vectors = signal_embeddings(signals, space, embedder)
    return correlate_and_suggest(signals, vectors, window=window, dependencies=dependencies)


@dataclass(frozen=True)
class PipelineSteps:
    """How each step of ``run_pipeline`` is called: the plain functions by default.

    A flow passes Prefect tasks with the same signatures (``flows/detect_incidents.py``),
    so that each step is a task run; the order and wiring stay in ``run_pipeline``.
    """

    mine: Callable[[list[Event]], MinedTemplates] = mine_templates
    embed_and_cluster: Callable[[dict[int, str], TemplateEmbedder], TemplateSpace] = (
        embed_and_cluster
    )
    score: Callable[..., list[AnomalySignal]] = score_anomalies
    correlate: Callable[..., list[Incident]] = correlate_signals


@dataclass
class PipelineResult:
    mined: MinedTemplates
    space: TemplateSpace
    signals: list[AnomalySignal]
    incidents: list[Incident]


def run_pipeline(
    events: list[Event],
    metrics: list[MetricSeries],
    *,
    config: AnomalyConfig | None = None,
    window: timedelta = timedelta(minutes=10),
    dependencies: dict[str, list[str]] | None = None,
    embedder: TemplateEmbedder | None = None,
    steps: PipelineSteps = PipelineSteps(),
) -> PipelineResult:
    """Every step, in order: templates, embeddings and clusters, anomalies, incidents.

    Args:
        events: the run's events (any order).
        metrics: metric series of the same period.
        config: the anomaly ensemble's windows, baseline and detectors
            (default ``AnomalyConfig()``).
        window: the correlation window.
        dependencies: service -> services it calls (root cause: most upstream).
        embedder: template embedder (default ``TemplateEmbedder()``, its cache on disk).
        steps: how each step is called (default: plain functions, no Prefect).

    Returns:
        The mined templates, the template space, the signals and the incidents (with
        suggestions).

    Example:
        ```python
        from samples.scenarios import generate
        from tasks.incidents.pipeline import run_pipeline

        s = generate(["bad_rollout"], seed=7, lines=5000)
        result = run_pipeline(s.events, s.metrics, dependencies=s.dependencies)
        print([i.root_cause for i in result.incidents])  # ['service:checkout']
        ```
    """
    embedder = embedder or TemplateEmbedder()
    mined = steps.mine(events)
    space = steps.embed_and_cluster(mined.templates, embedder)
    signals = steps.score(events, mined, space, metrics, config or AnomalyConfig())
    incidents = steps.correlate(signals, space, embedder, window, dependencies)
    return PipelineResult(mined=mined, space=space, signals=signals, incidents=incidents)
