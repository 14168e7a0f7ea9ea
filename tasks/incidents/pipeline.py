"""The incident pipeline's steps, composed in one place for every caller.

``detect_incidents`` runs each step as a Prefect task (so the UI shows where time
goes), ``evaluate_incidents`` runs the same steps on generated scenarios, and
``benchmarks/detect_incidents.py`` times them; all three call these functions, so
there is one pipeline, not three.

Steps: mask + mine templates (log events only) -> embed the unique templates (cached)
-> cluster them (HDBSCAN) -> anomaly ensemble -> correlation -> remediation suggestions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

import numpy as np

from tasks.incidents.anomaly.ensemble import AnomalyConfig, detect_signals
from tasks.incidents.clustering import TemplateClusters, cluster_templates, clustering_quality
from tasks.incidents.correlation import correlate
from tasks.incidents.embeddings import TemplateEmbedder
from tasks.incidents.remediation import suggest
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
) -> PipelineResult:
    """Every step, in order, without Prefect (evaluation and benchmarks).

    Example:
        ```python
        from samples.scenarios import generate
        s = generate(["bad_rollout"], seed=7)
        result = run_pipeline(s.events, s.metrics, dependencies=s.dependencies)
        [i.title for i in result.incidents]
        ```
    """
    embedder = embedder or TemplateEmbedder()
    mined = mine_templates(events)
    space = embed_and_cluster(mined.templates, embedder)
    signals = detect_signals(
        events, mined.template_ids, mined.templates, space.by_template_id(), metrics, config
    )
    vectors = signal_embeddings(signals, space, embedder)
    incidents = correlate_and_suggest(signals, vectors, window=window, dependencies=dependencies)
    return PipelineResult(mined=mined, space=space, signals=signals, incidents=incidents)
