"""Join anomaly signals from every source into incidents, with a timeline and a root cause.

Two signals are *close* when the later one starts within ``window`` of the earlier
one's start, or while the earlier one still lasts (a sustained metric anomaly, a
template that keeps occurring). Close signals join when they are also related:

- **entity**: they share one (two pods of a service share ``service:x``). Shared
  infrastructure (``node:``, ``host:``, ``database:``) counts only when one of the two
  signals is about it (a pod and its node), not for two pods that merely run on one node;
  broad entities (namespaces, clusters, ...) never count.
- **entity through a dependency**: one's service calls the other's (``dependencies``;
  an upstream failure causes downstream errors). A failure reaches its callers within
  moments, so this link needs the two onsets within half the window (a long-lasting
  signal does not extend it: it would bridge unrelated failures of neighbouring
  services); the timeline notes the dependency.
- **semantic**: the cosine of their embeddings is >= ``semantic_threshold``; only for
  kinds whose text someone wrote (log templates, Sentry issues, events, alarms), since
  metric and isolation-forest titles are generated and all look alike.

Grouping walks the signals in time order and adds each one to the incident(s) it links
to, so incidents grow transitively. Two guards stop one incident from chaining across a
long run: every link must itself be close (not merely the incident), and an incident's
onsets may spread over at most ``max_span`` (default three windows); a signal that would
stretch it further starts a new incident.

``deploy`` signals are context: one attaches to the incident whose signal on a shared
entity starts within ``window`` after the deploy, and never forms an incident alone.
An incident needs evidence: the noisy-OR ``1 - prod(1 - score)`` of its *independent*
scores (the best score per (source, kind), so twenty pods' memory drifts count once)
must reach ``min_incident_score`` (default 0.5): one low-score signal alone is dropped,
weak signals from different sources that corroborate each other are kept.

Confidence, root cause and title of each incident: ``tasks.incidents.root_cause``.

Example:
    ```python
    from datetime import UTC, datetime, timedelta

    from tasks.incidents.correlation import correlate
    from tasks.incidents.signals import AnomalySignal

    t0 = datetime(2024, 5, 1, 10, 0, tzinfo=UTC)

    def signal(id, kind, source, entity, minute, score):
        return AnomalySignal(id=id, kind=kind, source=source, entity=entity,
                             related=["service:checkout"], start=t0 + timedelta(minutes=minute),
                             end=t0 + timedelta(minutes=minute + 2), score=score,
                             severity="error", title=f"{kind} on {entity}")

    incidents = correlate([
        signal("a", "k8s_warning", "kubernetes", "pod:checkout-7d9f", 0, 0.9),
        signal("b", "sentry_new_issue", "sentry", "service:checkout", 1, 0.8),
    ])
    print(len(incidents), incidents[0].root_cause)  # 1 service:checkout
    ```
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta

import numpy as np

from tasks.common.times import as_utc
from tasks.incidents.root_cause import (
    INFRA_TYPES,
    confidence,
    dependency_edges,
    evidence_score,
    independent_scores,
    root_cause,
    root_cause_entity,
    title_signal,
)
from tasks.incidents.signals import AnomalySignal, Incident, JoinReason, TimelineEntry, entity_type
from tasks.telemetry.model import SEVERITY_RANK

MIN_INCIDENT_SCORE = 0.5
SPAN_WINDOWS = 3  # default max_span = SPAN_WINDOWS * window
DEPENDENCY_WINDOW = 0.5  # a dependency-only link needs onsets within this part of window
# Entities so broad that sharing them says nothing (every pod of a namespace shares it).
BROAD_ENTITY_TYPES = frozenset({"namespace", "cluster", "region", "zone", "account", "unknown"})
# Kinds whose embedding is of a message someone wrote (a log template, an issue title,
# an event or alarm); metric and isolation-forest titles are generated, so similar.
SEMANTIC_KINDS = frozenset(
    {
        "new_template",
        "frequency_spike",
        "sentry_new_issue",
        "sentry_regression",
        "alarm",
        "k8s_warning",
    }
)
_REASON_ORDER: tuple[JoinReason, ...] = ("temporal", "entity", "semantic")


@dataclass
class _Sig:
    """A signal with what grouping needs precomputed."""

    signal: AnomalySignal
    start: float
    end: float
    entities: frozenset[str]  # without broad entities
    vector: np.ndarray | None

    @property
    def id(self) -> str:
        return self.signal.id

    @property
    def is_deploy(self) -> bool:
        return self.signal.kind == "deploy"


@dataclass
class _Link:
    reasons: set[str] = field(default_factory=set)
    note: str | None = None
    similarity: float = -1.0

    def strength(self) -> tuple[int, float]:
        return len(self.reasons), self.similarity


@dataclass
class _Group:
    members: list[int]
    first_start: float
    last_start: float
    max_end: float


# ---------------------------------------------------------------------- validation


def _check(
    signals: Sequence[AnomalySignal],
    embeddings: Mapping[str, np.ndarray] | None,
    window: timedelta,
    semantic_threshold: float,
    max_span: timedelta,
    min_incident_score: float,
) -> None:
    if window <= timedelta(0):
        raise ValueError(f"window: must be positive, got {window}")
    if max_span < window:
        raise ValueError(f"max_span: must be at least window ({window}), got {max_span}")
    if not -1.0 <= semantic_threshold <= 1.0:
        raise ValueError(f"semantic_threshold: must be in [-1, 1], got {semantic_threshold}")
    if not 0.0 <= min_incident_score <= 1.0:
        raise ValueError(f"min_incident_score: must be in [0, 1], got {min_incident_score}")
    seen: set[str] = set()
    for sig in signals:
        if sig.id in seen:
            raise ValueError(f"signals: duplicate id {sig.id!r}")
        seen.add(sig.id)
    dims = {np.asarray(v).shape for v in (embeddings or {}).values()}
    if len(dims) > 1 or any(len(d) != 1 for d in dims):
        raise ValueError(f"embeddings: vectors must be 1-D and of one length, got shapes {dims}")


def _unit(vector: np.ndarray | None) -> np.ndarray | None:
    if vector is None:
        return None
    vec = np.asarray(vector, dtype=np.float64)
    norm = float(np.linalg.norm(vec))
    if not np.isfinite(norm) or norm == 0.0:
        return None
    return vec / norm


def _prepare(
    signals: Iterable[AnomalySignal], embeddings: Mapping[str, np.ndarray] | None
) -> list[_Sig]:
    out = []
    for sig in signals:
        ents = frozenset(e for e in sig.entities() if entity_type(e) not in BROAD_ENTITY_TYPES)
        out.append(
            _Sig(
                sig,
                as_utc(sig.start).timestamp(),
                max(as_utc(sig.start).timestamp(), as_utc(sig.end).timestamp()),
                ents,
                _unit((embeddings or {}).get(sig.id)),
            )
        )
    out.sort(key=lambda s: (s.start, s.id))
    return out


def _dependency_note(a: _Sig, b: _Sig, edges: Mapping[str, set[str]]) -> str | None:
    for x, y in ((a, b), (b, a)):
        for caller in sorted(x.entities):
            callee = sorted(edges.get(caller, set()) & y.entities)
            if callee:
                return f"{caller} calls {callee[0]}"
    return None


# ---------------------------------------------------------------------- linking


def _close(a: _Sig, b: _Sig, window: float) -> bool:
    """The later onset is within ``window`` of the earlier onset, or while the earlier
    signal still lasts."""
    first, later = (a, b) if (a.start, a.id) <= (b.start, b.id) else (b, a)
    return later.start - first.start <= window or later.start <= first.end


def _shared(a: _Sig, b: _Sig) -> bool:
    """A shared entity; shared infrastructure only when one signal is about it."""
    for ent in a.entities & b.entities:
        if entity_type(ent) not in INFRA_TYPES or ent in (a.signal.entity, b.signal.entity):
            return True
    return False


def _link(
    a: _Sig, b: _Sig, window: float, threshold: float, edges: Mapping[str, set[str]]
) -> _Link | None:
    """Why ``a`` and ``b`` belong together, or None."""
    if not _close(a, b, window):
        return None
    link = _Link()
    if _shared(a, b):
        link.reasons.add("entity")
    elif abs(a.start - b.start) <= window * DEPENDENCY_WINDOW and (
        note := _dependency_note(a, b, edges)
    ):
        link.reasons.add("entity")
        link.note = note
    if (
        a.signal.kind in SEMANTIC_KINDS
        and b.signal.kind in SEMANTIC_KINDS
        and a.vector is not None
        and b.vector is not None
        and a.vector.shape == b.vector.shape
    ):
        link.similarity = float(a.vector @ b.vector)
        if link.similarity >= threshold:
            link.reasons.add("semantic")
    if not link.reasons:
        return None
    link.reasons.add("temporal")
    return link


def _group(
    sigs: list[_Sig], window: float, max_span: float, threshold: float, edges
) -> list[list[int]]:
    """Greedy, time-ordered grouping with the two anti-chaining guards."""
    groups: list[_Group | None] = []
    for i, sig in enumerate(sigs):
        links: dict[int, tuple[int, float]] = {}
        for gid, group in enumerate(groups):
            if group is None or max(group.last_start + window, group.max_end) < sig.start:
                continue
            if sig.start - group.first_start > max_span:
                continue
            best = None
            for m in group.members:
                link = _link(sigs[m], sig, window, threshold, edges)
                if link is not None and (best is None or link.strength() > best):
                    best = link.strength()
            if best is not None:
                links[gid] = best
        if not links:
            groups.append(_Group([i], sig.start, sig.start, sig.end))
            continue
        ranked = sorted(links, key=lambda g: (links[g], g), reverse=True)
        home = groups[ranked[0]]
        assert home is not None
        home.members.append(i)
        home.last_start, home.max_end = sig.start, max(home.max_end, sig.end)
        for gid in ranked[1:]:
            other = groups[gid]
            assert other is not None
            first = min(home.first_start, other.first_start)
            if max(home.last_start, other.last_start) - first <= max_span:
                home.members = sorted(home.members + other.members)
                home.first_start = first
                home.last_start = max(home.last_start, other.last_start)
                home.max_end = max(home.max_end, other.max_end)
                groups[gid] = None
    return [g.members for g in groups if g is not None]


def _attach_deploys(
    deploys: list[_Sig], incidents: list[list[_Sig]], window: float
) -> list[list[_Sig]]:
    """Each deploy joins the incident with the nearest later signal on a shared entity."""
    attached: list[list[_Sig]] = [[] for _ in incidents]
    for dep in deploys:
        best: tuple[float, int] | None = None
        for k, members in enumerate(incidents):
            for m in members:
                lag = m.start - dep.start
                if lag < 0 or m.start - dep.end > window or not _shared(dep, m):
                    continue
                if best is None or (lag, k) < best:
                    best = (lag, k)
        if best is not None:
            attached[best[1]].append(dep)
    return attached


# ---------------------------------------------------------------------- per incident


def _timeline(entries: list[_Sig], window: float, threshold: float, edges) -> list[TimelineEntry]:
    out = []
    for j, sig in enumerate(entries):
        reasons: set[str] = set()
        note = None
        if j:
            for pool in (entries[:j], entries[j + 1 :]):
                for other in pool:
                    link = _link(other, sig, window, threshold, edges)
                    if link is not None:
                        reasons |= link.reasons
                        note = note or link.note
                if reasons:
                    break
        s = sig.signal
        out.append(
            TimelineEntry(
                signal_id=s.id,
                at=s.start,
                kind=s.kind,
                source=s.source,
                entity=s.entity,
                title=s.title,
                joined_by=[r for r in _REASON_ORDER if r in reasons],
                note=note,
            )
        )
    return out


def incident_id(signal_ids: Iterable[str]) -> str:
    """``inc-<12 hex>``: stable for the same set of signals."""
    digest = hashlib.sha256("\n".join(sorted(signal_ids)).encode()).hexdigest()
    return f"inc-{digest[:12]}"


def _title(main: AnomalySignal, deploys: list[AnomalySignal]) -> str:
    before = [d for d in deploys if d.start <= main.start] or deploys
    if not before:
        return main.title
    dep = before[-1].title.strip()
    if not dep or dep.lower() in main.title.lower():
        return main.title
    return f"{main.title} after {dep[0].lower()}{dep[1:]}"


def _incident(
    members: list[_Sig], deploys: list[_Sig], window: float, threshold: float, edges
) -> Incident:
    entries = sorted(members + deploys, key=lambda s: (s.start, s.id))
    timeline = _timeline(entries, window, threshold, edges)
    sigs = [s.signal for s in members]
    root = root_cause(sigs, edges)
    main = title_signal(sigs, root)
    reasons = sum(len(set(t.joined_by) - {"temporal"}) for t in timeline)
    all_sigs = [e.signal for e in entries]
    return Incident(
        id=incident_id(s.id for s in all_sigs),
        start=min(s.start for s in all_sigs),
        end=max(s.end for s in all_sigs),
        severity=max((s.severity for s in sigs), key=SEVERITY_RANK.__getitem__),
        title=_title(main, [d.signal for d in deploys]),
        entities=sorted(set().union(*(s.entities() for s in all_sigs))),
        signals=[s.id for s in all_sigs],
        timeline=timeline,
        root_cause=root_cause_entity(root) if root else None,
        root_cause_signal=root.id if root else None,
        confidence=confidence(
            independent_scores(sigs), len({s.source for s in all_sigs}), reasons, bool(deploys)
        ),
    )


def correlate(
    signals: list[AnomalySignal],
    *,
    embeddings: dict[str, np.ndarray] | None = None,
    window: timedelta = timedelta(minutes=10),
    semantic_threshold: float = 0.75,
    dependencies: dict[str, list[str]] | None = None,
    max_span: timedelta | None = None,
    min_incident_score: float = MIN_INCIDENT_SCORE,
) -> list[Incident]:
    """Group anomaly signals into incidents with timeline, root cause and confidence.

    Args:
        signals: the anomaly ensemble's output (any order; ids must be unique).
        embeddings: signal id -> vector of its template/title (normalized here); signals
            without one never join semantically.
        window: largest gap between two linked signals.
        semantic_threshold: cosine at or above which two signals are "the same failure".
        dependencies: service -> services it calls (bare or typed names).
        max_span: largest spread of onsets within one incident (default 3 windows).
        min_incident_score: least noisy-OR score of an incident's signals.

    Returns:
        Incidents ordered by start, each with ``suggestions`` empty (see
        ``tasks.incidents.remediation.suggest``).

    Raises:
        ValueError: naming the bad argument.

    Example:
        ```python
        from samples.scenarios import generate
        from tasks.incidents.correlation import correlate
        from tasks.incidents.pipeline import run_pipeline

        run = generate(["bad_rollout"], seed=7, lines=5000)
        signals = run_pipeline(run.events, run.metrics).signals
        incidents = correlate(signals, dependencies=run.dependencies)
        print([i.root_cause for i in incidents])  # ['service:checkout']
        ```
    """
    span = max_span if max_span is not None else SPAN_WINDOWS * window
    _check(signals, embeddings, window, semantic_threshold, span, min_incident_score)
    prepared = _prepare(signals, embeddings)
    known = set().union(*(s.entities for s in prepared)) if prepared else set()
    edges = dependency_edges(dependencies, known)
    win, threshold = window.total_seconds(), float(semantic_threshold)
    events = [s for s in prepared if not s.is_deploy]
    deploys = [s for s in prepared if s.is_deploy]
    groups = [
        [events[i] for i in members]
        for members in _group(events, win, span.total_seconds(), threshold, edges)
    ]
    groups = [
        g
        for g in groups
        if evidence_score(independent_scores(s.signal for s in g)) >= min_incident_score
    ]
    attached = _attach_deploys(deploys, groups, win)
    incidents = [
        _incident(g, d, win, threshold, edges) for g, d in zip(groups, attached, strict=True)
    ]
    return sorted(incidents, key=lambda inc: (as_utc(inc.start).timestamp(), inc.id))
