"""Confidence, root cause and title of one incident, and the dependency graph they use.

Confidence (in [0, 1], never lower when evidence is added)::

    evidence = 1 - prod(1 - best score per (source, kind))
    sources  = 1 - 0.5 ** (distinct sources - 1)
    links    = 1 - 0.7 ** (entity + semantic join reasons over the timeline)
    deploy   = 1 if a deploy is attached else 0
    confidence = evidence * (0.55 + 0.20 * sources + 0.15 * links + 0.10 * deploy)

Root cause: the earliest signal on the most upstream entity. A signal is about its
entity and, for a pod or container, its service. Entity A is upstream of B when B
depends on A, directly or transitively: through ``dependencies`` (caller -> callee) and
through the signals themselves (a pod or container depends on the node, host or
database in its ``related``; these edges apply with or without ``dependencies``). The
root-cause signal is one whose entities depend on no other affected entity, with the
most affected dependents, then the earliest start; with no such structure it is simply
the earliest signal. ``root_cause`` names the service when that signal is about a
pod/container of exactly one service (the evaluation accepts a service or its pod),
otherwise the signal's entity.

Title: the most informative signal's: the highest score, preferring a signal about
the root cause among those within 0.05 of it, followed by "after <deploy>" when a
deploy precedes it on the timeline.

Example:
    ```python
    from tasks.incidents.root_cause import confidence, dependency_edges

    print(confidence([0.9], 1, 0, False))  # 0.495
    print(dependency_edges({"checkout": ["postgres"]}, ["database:postgres"]))
    # {'service:checkout': {'database:postgres'}}
    ```
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from tasks.common.times import as_utc
from tasks.incidents.signals import AnomalySignal, entity_name, entity_type
from tasks.telemetry.model import SEVERITY_RANK

TITLE_SCORE_TOLERANCE = 0.05
# Infrastructure a pod/container runs on or uses: upstream of it.
INFRA_TYPES = frozenset({"node", "host", "database"})
WORKLOAD_TYPES = frozenset({"pod", "container"})


def dependency_edges(
    dependencies: Mapping[str, Sequence[str]] | None, known_entities: Iterable[str] = ()
) -> dict[str, set[str]]:
    """Caller -> callees as full entity keys.

    Args:
        dependencies: service -> services it calls; names may be bare (``"payments"``)
            or typed (``"database:postgres"``).
        known_entities: entities seen in the signals; a bare name resolves to the known
            entity of that name (preferring a service), else to ``"service:<name>"``.

    Returns:
        ``{"service:checkout": {"service:payments"}, ...}``.

    Example:
        ```python
        from tasks.incidents.root_cause import dependency_edges

        dependency_edges({"checkout": ["postgres"]}, ["database:postgres"])
        # {'service:checkout': {'database:postgres'}}
        ```
    """
    by_name: dict[str, str] = {}
    for ent in sorted(known_entities, key=lambda e: (entity_type(e) != "service", e)):
        by_name.setdefault(entity_name(ent), ent)

    def resolve(name: str) -> str:
        if ":" in name:
            return name
        return by_name.get(name, f"service:{name}")

    edges: dict[str, set[str]] = {}
    for caller, callees in (dependencies or {}).items():
        if isinstance(callees, str):
            raise ValueError(f"dependencies: {caller!r} must map to a list of names")
        edges.setdefault(resolve(caller), set()).update(resolve(c) for c in callees)
    return edges


def evidence_score(scores: Iterable[float]) -> float:
    """Noisy-OR of signal scores: ``1 - prod(1 - score)``."""
    return 1.0 - float(np.prod([1.0 - min(max(s, 0.0), 1.0) for s in scores]))


def independent_scores(signals: Iterable[AnomalySignal]) -> list[float]:
    """The best score per (source, kind): twenty pods' memory drifts are one piece of
    evidence, not twenty. Deploys are context, not evidence."""
    best: dict[tuple[str, str], float] = {}
    for sig in signals:
        if sig.kind != "deploy":
            key = (sig.source, sig.kind)
            best[key] = max(best.get(key, 0.0), sig.score)
    return [best[k] for k in sorted(best)]


def confidence(
    scores: Sequence[float], sources: int, join_reasons: int, deploy_attached: bool
) -> float:
    """The incident confidence formula (see the module docstring).

    Args:
        scores: independent evidence (``independent_scores`` of the incident).
        sources: number of distinct sources on the timeline.
        join_reasons: entity + semantic join reasons summed over the timeline.
        deploy_attached: whether a deploy signal is on the timeline.

    Returns:
        A value in [0, 1] that never decreases when any argument grows.

    Example:
        ```python
        from tasks.incidents.root_cause import confidence

        confidence([0.9], 1, 0, False)  # 0.495
        ```
    """
    e = evidence_score(scores)
    support = (
        0.55
        + 0.20 * (1.0 - 0.5 ** max(sources - 1, 0))
        + 0.15 * (1.0 - 0.7**join_reasons)
        + 0.10 * float(deploy_attached)
    )
    return round(min(1.0, e * support), 4)


def _subjects(sig: AnomalySignal) -> set[str]:
    """What a signal is about: its entity, plus the service of a pod/container."""
    subjects = {sig.entity}
    if entity_type(sig.entity) in WORKLOAD_TYPES:
        subjects |= {e for e in sig.related if entity_type(e) == "service"}
    return subjects


def _closure(starts: set[str], edges: Mapping[str, set[str]]) -> set[str]:
    seen: set[str] = set()
    todo = list(starts)
    while todo:
        for nxt in edges.get(todo.pop(), ()):
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def root_cause(
    signals: Sequence[AnomalySignal], dependencies: Mapping[str, set[str]] | None = None
) -> AnomalySignal | None:
    """The earliest signal on the most upstream entity (see the module docstring).

    Args:
        signals: one incident's signals (deploys are ignored).
        dependencies: caller -> callees as full entity keys (``dependency_edges``).

    Returns:
        The root-cause signal, or None when there are only deploys.

    Example:
        ```python
        from datetime import UTC, datetime, timedelta

        from tasks.incidents.root_cause import dependency_edges, root_cause
        from tasks.incidents.signals import AnomalySignal

        t0 = datetime(2024, 5, 1, 10, 0, tzinfo=UTC)
        signals = [
            AnomalySignal(id=f"s{i}", kind="new_template", source="kubernetes",
                          entity=f"service:{name}", start=t0 + timedelta(minutes=i),
                          end=t0 + timedelta(minutes=i), score=0.9, severity="error",
                          title=f"errors on {name}")
            for i, name in enumerate(["checkout", "payments"])
        ]
        print(root_cause(signals, dependency_edges({"checkout": ["payments"]})).entity)
        # service:payments (checkout calls it)
        ```
    """
    cands = sorted((s for s in signals if s.kind != "deploy"), key=lambda s: (s.start, s.id))
    if not cands:
        return None
    edges: dict[str, set[str]] = {k: set(v) for k, v in (dependencies or {}).items()}
    for sig in cands:  # a pod/container depends on the node / database it runs on / uses
        if entity_type(sig.entity) in WORKLOAD_TYPES:
            infra = {e for e in sig.related if entity_type(e) in INFRA_TYPES}
            for subject in _subjects(sig):
                edges.setdefault(subject, set()).update(infra)
    subjects = [_subjects(s) for s in cands]
    ups = [_closure(sub, edges) - sub for sub in subjects]

    def rank(i: int) -> tuple[int, int, float]:
        mine = subjects[i]
        depends_on_other = any(ups[i] & subjects[j] for j in range(len(cands)) if j != i)
        dependents = sum(1 for j in range(len(cands)) if j != i and ups[j] & mine)
        return (0 if depends_on_other else 1, dependents, -as_utc(cands[i].start).timestamp())

    best = max(range(len(cands)), key=lambda i: (rank(i), -i))
    return cands[best]


def root_cause_entity(signal: AnomalySignal) -> str:
    """The service of a pod/container signal when it has exactly one, else its entity."""
    if entity_type(signal.entity) in WORKLOAD_TYPES:
        services = sorted(e for e in signal.related if entity_type(e) == "service")
        if len(services) == 1:
            return services[0]
    return signal.entity


def title_signal(
    signals: Sequence[AnomalySignal], root: AnomalySignal | None = None
) -> AnomalySignal:
    """The most informative signal: the highest score; among those within
    ``TITLE_SCORE_TOLERANCE`` of it, one about the root cause first."""
    top = max(s.score for s in signals)
    about_root = _subjects(root) if root is not None else set()
    return max(
        (s for s in signals if s.score >= top - TITLE_SCORE_TOLERANCE),
        key=lambda s: (
            bool(_subjects(s) & about_root),
            s.score,
            SEVERITY_RANK[s.severity],
            -as_utc(s.start).timestamp(),
        ),
    )
