"""Score detected incidents against a generated scenario's ground truth.

``evaluate_incidents`` runs the detector on runs from ``samples.scenarios`` and needs
numbers that say whether it found the planted incidents, kept them apart, did not
invent others and named the right root cause. How the numbers are made:

- **Signal labels.** A signal's true label is the true incident holding the most of its
  ``event_indices``; noise (None) counts as a candidate too, and a tie between an incident
  and noise goes to the incident (the signal carries that incident's evidence). A signal
  with no events (a metric signal) takes the true incident that moved one of its series,
  ``(entity, metric)`` in ``metric_keys`` with the entity among the signal's entities,
  and whose span overlaps the signal's (with :data:`METRIC_SLACK`). The metric name comes
  from ``evidence["metric"]``, else from a metric name of the truth appearing in the
  signal's id or title; when none can be found the entity alone decides.
- **Incident matching.** A predicted incident matches the true incident that holds the
  most of its labeled (non-noise) signals (ties: the earlier true incident). One with
  only noise signals matches nothing: a false positive.
- **Correlation precision** = matched predicted incidents / predicted incidents;
  **recall** = true incidents matched by at least one predicted incident / true
  incidents; F1 their harmonic mean. A split true incident (two predicted incidents both
  matching it) costs nothing here, and a merge (one predicted incident holding two true
  ones) costs the recall of the absorbed one: the **pairwise** figures show both.
  With nothing predicted, precision is 1 when there was nothing to find and 0 otherwise;
  with nothing to find, recall is 1.
- **Pairwise signal precision/recall**: over signal pairs, "put together" (same
  predicted incident) against "truly together" (same true label, noise never together).
  None when a denominator is 0.
- **Root cause top-1 accuracy** over matched predicted incidents: the predicted
  ``root_cause`` equals the true root-cause entity, or the true root cause is a service
  and the predicted one is a pod/container of it (the true service is among the entities
  of the root-cause signal, or in ``related`` of a signal of the incident about the
  predicted entity). A node is never "of" a service, so a node root cause must be named
  exactly.

:class:`Report` collects scores per scenario (with the clustering figures of
``tasks.incidents.clustering.clustering_quality`` when given) and micro-averages them over
incidents (summed counts, then ratios), rendered as markdown or plain text.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from datetime import timedelta

from pydantic import BaseModel, Field

from tasks.incidents.ground_truth import GroundTruth, TrueIncident
from tasks.incidents.signals import AnomalySignal, Incident

METRIC_SLACK = timedelta(minutes=2)  # a metric signal may start/end this far outside a truth span
_OWNED_BY_SERVICE = ("pod:", "container:")


class IncidentMatch(BaseModel):
    """How one predicted incident fared."""

    incident_id: str
    matched: str | None = Field(description="True incident id, None = false positive")
    signals: int
    labeled_signals: int = Field(description="Its signals that belong to some true incident")
    purity: float | None = Field(description="Share of its signals that belong to the match")
    root_cause: str | None
    true_root_cause: str | None = None
    root_cause_correct: bool | None = Field(default=None, description="None when unmatched")


class ScenarioScore(BaseModel):
    """Correlation, pairwise and root-cause figures for one run (or summed over runs)."""

    name: str = ""
    true_incidents: int
    predicted_incidents: int
    matched_predicted: int = Field(description="Predicted incidents that match a true one")
    detected_true: int = Field(description="True incidents matched by at least one prediction")
    precision: float
    recall: float
    f1: float
    pair_together_predicted: int
    pair_together_true: int
    pair_together_both: int
    pairwise_precision: float | None
    pairwise_recall: float | None
    root_cause_correct: int
    root_cause_total: int
    root_cause_accuracy: float | None
    signals: int
    noise_signals: int
    split_true: int = Field(description="True incidents matched by more than one prediction")
    merged_predicted: int = Field(description="Predictions holding signals of 2+ true incidents")
    unknown_signal_ids: int = Field(description="Incident signal ids not in the signal list")
    missed: list[str] = Field(default_factory=list, description="True incidents not found")
    matches: list[IncidentMatch] = Field(default_factory=list)
    clustering: dict[str, float | None] | None = Field(
        default=None, description="silhouette / davies_bouldin of the template clustering"
    )


def _ratio(num: int, den: int) -> float | None:
    return num / den if den else None


def _f1(p: float, r: float) -> float:
    return 2 * p * r / (p + r) if p + r else 0.0


def _pairs(n: int) -> int:
    return n * (n - 1) // 2


def _signal_metric(signal: AnomalySignal, known: set[str]) -> str | None:
    """The metric a signal is about: ``evidence["metric"]``, else a known name in id/title."""
    named = signal.evidence.get("metric")
    if isinstance(named, str) and named:
        return named
    text = f"{signal.id} {signal.title} {signal.template or ''}"
    found = [m for m in known if m in text]
    return max(found, key=len) if found else None


def _metric_label(signal: AnomalySignal, truth: GroundTruth) -> str | None:
    known = {m for inc in truth.incidents for _e, m in inc.metric_keys}
    metric, entities = _signal_metric(signal, known), signal.entities()
    best: tuple[float, TrueIncident] | None = None
    for inc in truth.incidents:
        if not any(e in entities and (metric is None or m == metric) for e, m in inc.metric_keys):
            continue
        overlap = min(signal.end, inc.end + METRIC_SLACK) - max(
            signal.start, inc.start - METRIC_SLACK
        )
        seconds = overlap.total_seconds()
        if seconds < 0:
            continue
        if best is None or seconds > best[0] or (seconds == best[0] and inc.start < best[1].start):
            best = (seconds, inc)
    return best[1].id if best else None


def signal_labels(signals: Iterable[AnomalySignal], truth: GroundTruth) -> dict[str, str | None]:
    """Signal id -> the true incident it belongs to (None = noise); see the module notes.

    Example:
        ```python
        from samples.scenarios import generate
        from tasks.incidents.evaluation import signal_labels
        from tasks.incidents.pipeline import run_pipeline

        run = generate(["bad_rollout"], seed=7, lines=5000)
        signals = run_pipeline(run.events, run.metrics, dependencies=run.dependencies).signals
        print(sorted({label for label in signal_labels(signals, run.truth).values() if label}))
        # ['T1-bad_rollout']
        ```
    """
    start_of = {inc.id: inc.start for inc in truth.incidents}
    labels: dict[str, str | None] = {}
    for signal in signals:
        if not signal.event_indices:
            labels[signal.id] = _metric_label(signal, truth)
            continue
        votes = Counter(truth.label_of(i) for i in signal.event_indices)
        top = max(votes.values())
        winners = [label for label, n in votes.items() if n == top and label is not None]
        labels[signal.id] = min(winners, key=lambda x: start_of[x]) if winners else None
    return labels


def _root_cause_ok(incident: Incident, truth_root: str, by_id: Mapping[str, AnomalySignal]) -> bool:
    predicted = incident.root_cause
    if predicted is None:
        return False
    if predicted == truth_root:
        return True
    if not truth_root.startswith("service:") or not predicted.startswith(_OWNED_BY_SERVICE):
        return False
    owners: set[str] = set()
    rc_signal = by_id.get(incident.root_cause_signal or "")
    if rc_signal is not None:
        owners |= rc_signal.entities()
    for sid in incident.signals:
        signal = by_id.get(sid)
        if signal is not None and signal.entity == predicted:
            owners.update(signal.related)
    return truth_root in owners


def evaluate(
    incidents: list[Incident],
    signals: list[AnomalySignal],
    truth: GroundTruth,
    *,
    name: str | None = None,
    clustering: Mapping[str, float | None] | None = None,
) -> ScenarioScore:
    """Score one run's predicted incidents (and the signals behind them) against its truth.

    Args:
        incidents: What correlation produced.
        signals: Every signal of the run (incidents refer to them by id; signals in no
            incident still count for the pairwise recall).
        truth: The run's :class:`samples.scenarios.GroundTruth`.
        name: Row name in a :class:`Report` (default: the truth's scenario names).
        clustering: ``clustering_quality`` figures to carry along, if any.

    Returns:
        A :class:`ScenarioScore`.

    Example:
        ```python
        from samples.scenarios import generate
        from tasks.incidents.evaluation import evaluate
        from tasks.incidents.pipeline import run_pipeline

        run = generate(["bad_rollout"], seed=7, lines=5000)
        result = run_pipeline(run.events, run.metrics, dependencies=run.dependencies)
        score = evaluate(result.incidents, result.signals, run.truth)
        print(score.precision, score.recall, score.root_cause_accuracy)  # 1.0 1.0 1.0
        ```
    """
    by_id = {s.id: s for s in signals}
    labels = signal_labels(signals, truth)
    truths = {inc.id: inc for inc in truth.incidents}
    matches: list[IncidentMatch] = []
    matched_by: Counter[str] = Counter()
    unknown = together_pred = together_both = merged = 0
    for incident in incidents:
        known = [sid for sid in incident.signals if sid in by_id]
        unknown += len(incident.signals) - len(known)
        votes = Counter(labels[sid] for sid in known)
        together_pred += _pairs(len(known))
        together_both += sum(_pairs(n) for label, n in votes.items() if label is not None)
        real = {label: n for label, n in votes.items() if label is not None}
        merged += len(real) > 1
        match = None
        if real:
            top = max(real.values())
            match = min((x for x, n in real.items() if n == top), key=lambda x: truths[x].start)
            matched_by[match] += 1
        true_root = truths[match].root_cause_entity if match else None
        matches.append(
            IncidentMatch(
                incident_id=incident.id,
                matched=match,
                signals=len(known),
                labeled_signals=sum(real.values()),
                purity=_ratio(real[match], len(known)) if match else None,
                root_cause=incident.root_cause,
                true_root_cause=true_root,
                root_cause_correct=_root_cause_ok(incident, true_root, by_id) if match else None,
            )
        )
    per_truth = Counter(label for label in labels.values() if label is not None)
    return _score(
        name=name if name is not None else "+".join(dict.fromkeys(truth.scenarios)),
        true_incidents=len(truths),
        predicted_incidents=len(incidents),
        matched_predicted=sum(m.matched is not None for m in matches),
        detected_true=len(matched_by),
        pair_together_predicted=together_pred,
        pair_together_true=sum(_pairs(n) for n in per_truth.values()),
        pair_together_both=together_both,
        root_cause_correct=sum(bool(m.root_cause_correct) for m in matches),
        root_cause_total=sum(m.matched is not None for m in matches),
        signals=len(labels),
        noise_signals=sum(label is None for label in labels.values()),
        split_true=sum(n > 1 for n in matched_by.values()),
        merged_predicted=merged,
        unknown_signal_ids=unknown,
        missed=[t for t in truths if t not in matched_by],
        matches=matches,
        clustering=dict(clustering) if clustering is not None else None,
    )


def _score(**counts) -> ScenarioScore:
    """A ScenarioScore from its counts (the ratios follow from them)."""
    true_n, pred_n = counts["true_incidents"], counts["predicted_incidents"]
    empty = 1.0 if true_n == 0 else 0.0  # nothing predicted: right only if nothing to find
    precision = counts["matched_predicted"] / pred_n if pred_n else empty
    recall = counts["detected_true"] / true_n if true_n else 1.0
    return ScenarioScore(
        precision=precision,
        recall=recall,
        f1=_f1(precision, recall),
        pairwise_precision=_ratio(counts["pair_together_both"], counts["pair_together_predicted"]),
        pairwise_recall=_ratio(counts["pair_together_both"], counts["pair_together_true"]),
        root_cause_accuracy=_ratio(counts["root_cause_correct"], counts["root_cause_total"]),
        **counts,
    )


_SUMMED = (
    "true_incidents", "predicted_incidents", "matched_predicted", "detected_true",
    "pair_together_predicted", "pair_together_true", "pair_together_both", "root_cause_correct",
    "root_cause_total", "signals", "noise_signals", "split_true", "merged_predicted",
    "unknown_signal_ids",
)  # fmt: skip
_COLUMNS = (  # (header, field, format)
    ("scenario", "name", "{}"),
    ("true", "true_incidents", "{}"),
    ("pred", "predicted_incidents", "{}"),
    ("precision", "precision", "{:.2f}"),
    ("recall", "recall", "{:.2f}"),
    ("F1", "f1", "{:.2f}"),
    ("pair P", "pairwise_precision", "{:.2f}"),
    ("pair R", "pairwise_recall", "{:.2f}"),
    ("root cause", "root_cause_accuracy", "{:.2f}"),
    ("silhouette", "silhouette", "{:.3f}"),
    ("Davies-Bouldin", "davies_bouldin", "{:.3f}"),
)


class Report(BaseModel):
    """Scores of several runs, their micro-average, and a table of both."""

    scores: list[ScenarioScore] = Field(default_factory=list)

    def add(
        self,
        score: ScenarioScore,
        *,
        name: str | None = None,
        clustering: Mapping[str, float | None] | None = None,
    ) -> ScenarioScore:
        """Add one run's score (renamed / with clustering figures when given)."""
        update: dict = {}
        if name is not None:
            update["name"] = name
        if clustering is not None:
            update["clustering"] = dict(clustering)
        score = score.model_copy(update=update) if update else score
        self.scores.append(score)
        return score

    def overall(self) -> ScenarioScore:
        """Micro-average over incidents: counts summed over runs, ratios from the sums.

        The clustering figures are the plain mean over the runs that have them.
        """
        counts = {f: sum(getattr(s, f) for s in self.scores) for f in _SUMMED}
        missed = [m for s in self.scores for m in s.missed]
        clustering = None
        figures = [s.clustering for s in self.scores if s.clustering]
        if figures:
            clustering = {}
            for key in dict.fromkeys(k for fig in figures for k in fig):
                values = [fig[key] for fig in figures if fig.get(key) is not None]
                clustering[key] = sum(values) / len(values) if values else None
        return _score(name="overall", missed=missed, clustering=clustering, **counts)

    def rows(self) -> list[dict[str, object]]:
        """One dict per run plus the overall row (for a table artifact)."""
        rows = []
        for score in [*self.scores, self.overall()]:
            row = {}
            for header, fld, _fmt in _COLUMNS:
                row[header] = _value(score, fld)
            rows.append(row)
        return rows

    def _cells(self) -> list[list[str]]:
        return [
            [
                "-" if v is None else fmt.format(v)
                for (_h, _f, fmt), v in zip(_COLUMNS, row.values(), strict=True)
            ]
            for row in self.rows()
        ]

    def to_markdown(self) -> str:
        """A markdown table: one row per run, then the micro-averaged overall row in bold."""
        headers = [h for h, _f, _fmt in _COLUMNS]
        cells = self._cells()
        lines = [
            "| " + " | ".join(headers) + " |",
            "|" + "|".join(":--" if i == 0 else "--:" for i in range(len(headers))) + "|",
        ]
        for i, row in enumerate(cells):
            if i == len(cells) - 1:
                row = [f"**{c}**" for c in row]
            lines.append("| " + " | ".join(row) + " |")
        return "\n".join(lines) + "\n"

    def to_text(self) -> str:
        """The same table as aligned plain text."""
        headers = [h for h, _f, _fmt in _COLUMNS]
        cells = self._cells()
        widths = [max(len(x) for x in col) for col in zip(headers, *cells, strict=True)]

        def line(row: list[str]) -> str:
            first = row[0].ljust(widths[0])
            rest = (c.rjust(w) for c, w in zip(row[1:], widths[1:], strict=True))
            return "  ".join([first, *rest]).rstrip()

        rule = "  ".join("-" * w for w in widths)
        body = [line(r) for r in cells]
        return "\n".join([line(headers), rule, *body[:-1], rule, body[-1]]) + "\n"


def _value(score: ScenarioScore, fld: str) -> object:
    if fld in ("silhouette", "davies_bouldin"):
        return (score.clustering or {}).get(fld)
    return getattr(score, fld)
