"""The synthetic incident scenarios (samples.scenarios) and the evaluation metrics
(tasks.incidents.evaluation): metrics on hand-built predicted/true sets with known answers, then
the generator's determinism, sizes, ground truth and files, and the metrics on a
generated run.
"""

from __future__ import annotations

import csv
import json
import re
from collections import Counter
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from samples.scenarios import SCENARIO_NAMES, SCENARIOS, generate, load_truth, write_scenario
from tasks.incidents.evaluation import Report, evaluate, signal_labels
from tasks.incidents.ground_truth import GroundTruth, TrueIncident
from tasks.incidents.signals import AnomalySignal, Incident
from tasks.telemetry.model import SEVERITY_RANK, Event

T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


# --------------------------------------------------------------------------- hand-built sets


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def make_truth() -> GroundTruth:
    """Events 0-9 are incident A (payments), 20-29 incident B (a node); the rest noise."""
    a = TrueIncident(
        id="A",
        scenario="db_connection_exhaustion",
        root_cause_entity="service:payments",
        start=at(0),
        end=at(10),
        event_indices=set(range(10)),
        metric_keys={("service:payments", "latency_p99_ms")},
    )
    b = TrueIncident(
        id="B",
        scenario="noisy_neighbour_cpu",
        root_cause_entity="node:ip-10-0-2-47",
        start=at(30),
        end=at(40),
        event_indices=set(range(20, 30)),
        metric_keys={("node:ip-10-0-2-47", "cpu_percent")},
    )
    return GroundTruth(
        incidents=[a, b],
        start=at(-60),
        end=at(60),
        baseline_end=at(-1),
        n_events=40,
        seed=0,
        scenarios=["db_connection_exhaustion", "noisy_neighbour_cpu"],
    )


def sig(
    sid: str,
    indices=(),
    entity: str = "pod:payments-1",
    related=("service:payments",),
    start: float = 1,
    end: float = 2,
    **kw,
) -> AnomalySignal:
    return AnomalySignal(
        id=sid,
        kind=kw.pop("kind", "new_template"),
        source="kubernetes",
        entity=entity,
        related=list(related),
        start=at(start),
        end=at(end),
        score=0.8,
        title=kw.pop("title", sid),
        event_indices=list(indices),
        **kw,
    )


def inc(iid: str, signal_ids: list[str], root: str | None = None, rc_signal: str | None = None):
    return Incident(
        id=iid,
        start=at(0),
        end=at(5),
        severity="error",
        title=iid,
        entities=[],
        signals=signal_ids,
        timeline=[],
        root_cause=root,
        root_cause_signal=rc_signal,
        confidence=0.5,
    )


@pytest.fixture()
def truth() -> GroundTruth:
    return make_truth()


@pytest.fixture()
def signals() -> list[AnomalySignal]:
    node = {"entity": "pod:checkout-1", "related": ("service:checkout", "node:ip-10-0-2-47")}
    return [
        sig("a1", range(0, 5)),
        sig("a2", range(5, 10), entity="pod:inventory-1", related=("service:inventory",)),
        sig("b1", range(20, 25), start=31, end=32, **node),
        sig("b2", range(25, 30), start=33, end=34, entity="node:ip-10-0-2-47", related=()),
        sig("n1", range(10, 15), entity="pod:frontend-1", related=("service:frontend",)),
    ]


def test_perfect_prediction_scores_one_everywhere(truth, signals):
    predicted = [
        inc("P1", ["a1", "a2"], root="service:payments", rc_signal="a1"),
        inc("P2", ["b1", "b2"], root="node:ip-10-0-2-47", rc_signal="b2"),
    ]
    score = evaluate(predicted, signals, truth)
    assert (score.precision, score.recall, score.f1) == (1.0, 1.0, 1.0)
    assert (score.pairwise_precision, score.pairwise_recall) == (1.0, 1.0)
    assert score.root_cause_accuracy == 1.0
    assert [m.matched for m in score.matches] == ["A", "B"]
    assert [m.purity for m in score.matches] == [1.0, 1.0]
    assert score.noise_signals == 1 and score.signals == 5
    assert score.missed == [] and score.split_true == 0 and score.merged_predicted == 0


def test_split_incident_keeps_correlation_scores_but_loses_pairwise_recall(truth, signals):
    predicted = [
        inc("P1", ["a1"], root="service:payments"),
        inc("P2", ["a2"], root="service:payments"),
        inc("P3", ["b1", "b2"], root="node:ip-10-0-2-47"),
    ]
    score = evaluate(predicted, signals, truth)
    assert (score.precision, score.recall) == (1.0, 1.0)
    assert score.split_true == 1
    # truly together: (a1,a2) and (b1,b2); put together: only (b1,b2)
    assert score.pair_together_true == 2 and score.pair_together_predicted == 1
    assert score.pairwise_precision == 1.0 and score.pairwise_recall == 0.5
    assert score.root_cause_total == 3 and score.root_cause_accuracy == 1.0


def test_merged_incident_costs_recall_and_pairwise_precision(truth, signals):
    predicted = [inc("P1", ["a1", "a2", "b1"], root="service:payments")]
    score = evaluate(predicted, signals, truth)
    assert score.matches[0].matched == "A"  # 2 of its 3 labeled signals
    assert score.matches[0].purity == pytest.approx(2 / 3)
    assert (score.precision, score.recall) == (1.0, 0.5)
    assert score.f1 == pytest.approx(2 / 3)
    assert score.missed == ["B"] and score.merged_predicted == 1
    # pairs made: (a1,a2) right, (a1,b1) and (a2,b1) wrong
    assert score.pairwise_precision == pytest.approx(1 / 3)
    assert score.pairwise_recall == 0.5


def test_merged_tie_goes_to_the_earlier_true_incident(truth, signals):
    score = evaluate([inc("P1", ["b1", "b2", "a1", "a2"])], signals, truth)
    assert score.matches[0].matched == "A"


def test_noise_only_incident_is_a_false_positive(truth, signals):
    predicted = [
        inc("P1", ["a1", "a2"], root="service:payments"),
        inc("P2", ["b1", "b2"], root="node:ip-10-0-2-47"),
        inc("P3", ["n1"], root="service:frontend"),
    ]
    score = evaluate(predicted, signals, truth)
    assert score.matches[2].matched is None and score.matches[2].root_cause_correct is None
    assert score.precision == pytest.approx(2 / 3) and score.recall == 1.0
    assert score.f1 == pytest.approx(0.8)
    assert score.root_cause_total == 2  # only matched incidents count


def test_wrong_root_cause_and_the_pod_of_the_true_service(truth, signals):
    predicted = [
        inc("P1", ["a1", "a2"], root="service:inventory", rc_signal="a2"),  # wrong service
        inc("P2", ["b1", "b2"], root="node:ip-10-0-2-47"),
    ]
    score = evaluate(predicted, signals, truth)
    assert [m.root_cause_correct for m in score.matches] == [False, True]
    assert score.root_cause_accuracy == 0.5
    # a pod of the true service is accepted (the signal says the pod belongs to payments)
    pod = [inc("P1", ["a1", "a2"], root="pod:payments-1", rc_signal="a1")]
    assert evaluate(pod, signals, truth).root_cause_accuracy == 1.0
    # ... also without a root-cause signal, from the incident's signal about that pod
    assert (
        evaluate([inc("P1", ["a1", "a2"], root="pod:payments-1")], signals, truth)
        .matches[0]
        .root_cause_correct
    )
    # a pod of another service is not, nor is a pod on the true node, nor no root cause
    other = [inc("P1", ["a1", "a2"], root="pod:inventory-1", rc_signal="a2")]
    assert evaluate(other, signals, truth).root_cause_accuracy == 0.0
    on_node = [inc("P2", ["b1", "b2"], root="pod:checkout-1", rc_signal="b1")]
    assert evaluate(on_node, signals, truth).root_cause_accuracy == 0.0
    assert evaluate([inc("P1", ["a1"])], signals, truth).root_cause_accuracy == 0.0


def test_nothing_predicted_and_unknown_signal_ids(truth, signals):
    empty = evaluate([], signals, truth)
    assert (empty.precision, empty.recall, empty.f1) == (0.0, 0.0, 0.0)
    assert empty.pairwise_precision is None and empty.root_cause_accuracy is None
    assert empty.missed == ["A", "B"]
    score = evaluate([inc("P1", ["a1", "ghost"])], signals, truth)
    assert score.unknown_signal_ids == 1 and score.matches[0].signals == 1


def test_signal_labels_by_majority_with_ties_to_the_incident(truth):
    labels = signal_labels(
        [
            sig("mostly_a", [0, 1, 10]),
            sig("tie", [0, 10]),
            sig("mostly_noise", [10, 11, 0]),
            sig("a_and_b", [0, 20, 21]),
        ],
        truth,
    )
    assert labels == {"mostly_a": "A", "tie": "A", "mostly_noise": None, "a_and_b": "B"}


def test_metric_signals_map_through_metric_keys_and_time(truth):
    kw = {"kind": "metric_zscore", "entity": "service:payments", "related": ()}
    labels = signal_labels(
        [
            sig("m_evidence", start=3, end=6, evidence={"metric": "latency_p99_ms"}, **kw),
            sig("metric_zscore:service:payments:latency_p99_ms", start=9, end=11, **kw),
            sig("m_late", start=20, end=25, evidence={"metric": "latency_p99_ms"}, **kw),
            sig("m_other_metric", start=3, end=6, evidence={"metric": "request_rate"}, **kw),
            sig(
                "m_other_entity",
                start=3,
                end=6,
                evidence={"metric": "latency_p99_ms"},
                kind="metric_zscore",
                entity="service:checkout",
                related=(),
            ),
            sig(
                "node cpu_percent high",
                start=31,
                end=35,
                kind="metric_zscore",
                entity="pod:checkout-1",
                related=("node:ip-10-0-2-47",),
            ),
        ],
        truth,
    )
    assert labels == {
        "m_evidence": "A",
        "metric_zscore:service:payments:latency_p99_ms": "A",
        "m_late": None,
        "m_other_metric": None,
        "m_other_entity": None,
        "node cpu_percent high": "B",
    }


def test_report_micro_averages_and_renders(truth, signals):
    good = evaluate(
        [inc("P1", ["a1", "a2"], root="service:payments"), inc("P2", ["b1", "b2"], root="x:y")],
        signals,
        truth,
    )
    noisy = evaluate(
        [inc("P1", ["a1", "a2"], root="service:payments"), inc("P3", ["n1"])], signals, truth
    )
    report = Report()
    report.add(good, name="run-1", clustering={"silhouette": 0.41, "davies_bouldin": 1.2})
    report.add(noisy, name="run-2", clustering={"silhouette": 0.21, "davies_bouldin": None})
    overall = report.overall()
    # micro: 3 of 4 predicted incidents matched, 3 of 4 true incidents found, 2 of 3 roots
    assert overall.predicted_incidents == 4 and overall.matched_predicted == 3
    assert (overall.precision, overall.recall) == (0.75, 0.75)
    assert overall.root_cause_accuracy == pytest.approx(2 / 3)
    assert overall.clustering == {"silhouette": pytest.approx(0.31), "davies_bouldin": 1.2}
    rows = report.rows()
    assert [r["scenario"] for r in rows] == ["run-1", "run-2", "overall"]
    assert rows[1]["precision"] == 0.5 and rows[1]["recall"] == 0.5
    markdown = report.to_markdown().splitlines()
    assert markdown[0].startswith("| scenario | true | pred | precision | recall | F1")
    assert markdown[2] == (
        "| run-1 | 2 | 2 | 1.00 | 1.00 | 1.00 | 1.00 | 1.00 | 0.50 | 0.410 | 1.200 |"
    )
    assert markdown[3].endswith("| 0.210 | - |") and markdown[4].startswith("| **overall** |")
    text = report.to_text().splitlines()
    assert text[0].split()[:3] == ["scenario", "true", "pred"] and len(text) == 6
    assert text[-1].split()[:5] == ["overall", "4", "4", "0.75", "0.75"]


# --------------------------------------------------------------------------- the generator


@pytest.fixture(scope="module")
def full_run():
    return generate(None, seed=11)


def test_generation_is_deterministic_for_a_seed():
    one = generate(["bad_rollout", "upstream_timeouts"], seed=5, lines=3_000)
    two = generate(["bad_rollout", "upstream_timeouts"], seed=5, lines=3_000)
    other = generate(["bad_rollout", "upstream_timeouts"], seed=6, lines=3_000)
    assert one.events == two.events and one.metrics == two.metrics
    assert one.truth.labels()  # the cached lookup must not make equal truths differ
    assert one.truth == two.truth
    assert [e.message for e in one.events[:200]] != [e.message for e in other.events[:200]]


def test_sizes_layout_and_order(full_run):
    run, truth = full_run, full_run.truth
    assert abs(len(run.events) - 20_000) < 0.1 * 20_000
    assert truth.n_events == len(run.events)
    stamps = [e.timestamp for e in run.events]
    assert stamps == sorted(stamps) and stamps[0] >= truth.start and stamps[-1] <= truth.end
    # the baseline is the first half; six 25-minute slots make a 150-minute incident period
    assert truth.baseline_end - truth.start == truth.end - truth.baseline_end
    assert truth.end - truth.start == timedelta(minutes=300)
    assert [i.scenario for i in truth.incidents] == list(SCENARIO_NAMES)
    assert run.dependencies["checkout"] == ["payments", "inventory"]
    assert {m.source for m in run.metrics} >= {"grafana", "kubernetes", "cloudwatch"}
    assert {e.source for e in run.events} == {"kubernetes", "sentry", "cloudwatch", "grafana"}
    for series in run.metrics:
        assert len(series.values) == len(series.timestamps) > 0
    small = generate(["bad_rollout"], seed=1, lines=5_000)
    assert abs(len(small.events) - 5_000) < 0.1 * 5_000


def test_incidents_follow_each_other_after_the_baseline(full_run):
    truth = full_run.truth
    spans = [(i.start, i.end) for i in truth.incidents]
    assert spans[0][0] >= truth.baseline_end
    for (_s1, e1), (s2, _e2) in zip(spans, spans[1:], strict=False):
        assert s2 - e1 > timedelta(minutes=5)  # apart in time


def test_baseline_has_no_incident_events_and_noise_runs_through_incidents(full_run):
    run, truth = full_run, full_run.truth
    labels = truth.labels()
    assert all(run.events[i].timestamp >= truth.baseline_end for i in labels)
    for true in truth.incidents:
        during = [
            i
            for i, e in enumerate(run.events)
            if true.start <= e.timestamp <= true.end
            and i not in labels
            and SEVERITY_RANK[e.severity] >= SEVERITY_RANK["warning"]
        ]
        assert len(during) >= 10, true.id

    # the same kinds of noise errors in the baseline as in the incident period
    def noise_errors(first, last):
        return Counter(
            e.message.split(" ")[0][:4]
            for i, e in enumerate(run.events)
            if first <= e.timestamp < last and i not in labels and e.severity == "error"
        )

    assert noise_errors(truth.start, truth.baseline_end)
    assert noise_errors(truth.baseline_end, truth.end)


@pytest.mark.parametrize("name", SCENARIO_NAMES)
def test_each_scenario_truth_points_at_its_own_events_and_metrics(name):
    run = generate([name], seed=2, lines=6_000)
    (true,) = run.truth.incidents
    assert true.scenario == name and true.id == f"T1-{name}"
    assert re.fullmatch(r"(service|node):[\w.-]+", true.root_cause_entity)
    events = [run.events[i] for i in sorted(true.event_indices)]
    assert len(events) >= 30
    pattern = SCENARIOS[name].marker_pattern()
    strays = [e.message for e in events if not pattern.search(e.message)]
    assert strays == []
    # solvable: evidence in two sources at least, the root cause among the touched entities
    assert len({e.source for e in events}) >= 2
    assert true.root_cause_entity in true.entities
    assert all(true.start <= e.timestamp <= true.end for e in events)
    assert sum(SEVERITY_RANK[e.severity] >= 2 for e in events) >= 10
    # every metric key names a series that really moved during the incident
    series = {(m.entity, m.metric): m for m in run.metrics}
    assert true.metric_keys
    for key in true.metric_keys:
        values = np.array(series[key].values)
        stamps = series[key].timestamps
        inside = np.array([true.start <= s <= true.end for s in stamps])
        base = values[np.array([s < run.truth.baseline_end for s in stamps])]
        if base.size == 0:  # a series born with the incident (the batch job's pod)
            assert values[inside].max() > 1000
            continue
        mad = np.median(np.abs(base - np.median(base))) or 1e-9
        assert np.abs(values[inside] - np.median(base)).max() / mad > 8, key


def test_one_failure_is_worded_differently_across_services_and_sources():
    run = generate(["upstream_timeouts"], seed=4, lines=6_000)
    (true,) = run.truth.incidents
    messages = " ".join(run.events[i].message for i in true.event_indices)
    wordings = ["Read timed out", "timeout of 10000ms exceeded", "upstream timed out"]
    assert all(w in messages for w in [*wordings, "CircuitBreaker", "Retry"])
    styles = {
        "json": any(run.events[i].message.startswith("{") for i in true.event_indices),
        "logfmt-or-gunicorn": re.search(r"level=\w+ msg=|\] \[CRITICAL\]", messages) is not None,
        "spring": " --- [checkout] " in messages,
        "nginx": 'HTTP/1.1" 50' in messages,
    }
    assert all(styles.values()), styles


def test_overlap_runs_two_incidents_at_once_on_different_entities():
    run = generate(["bad_rollout", "noisy_neighbour_cpu"], seed=3, lines=4_000, overlap=True)
    first, second = run.truth.incidents
    assert first.start < second.start < first.end
    assert first.root_cause_entity != second.root_cause_entity
    twice = generate(["memory_leak_oom"], seed=3, lines=4_000, overlap=True).truth.incidents
    assert len(twice) == 2 and twice[0].root_cause_entity != twice[1].root_cause_entity
    with pytest.raises(ValueError, match="overlap"):
        generate(["db_connection_exhaustion"], overlap=True, lines=2_000)


def test_noise_level_scales_unrelated_errors():
    def noise_count(level: float) -> int:
        run = generate(["bad_rollout"], seed=8, lines=6_000, noise=level)
        labels = run.truth.labels()
        return sum(
            1
            for i, e in enumerate(run.events)
            if i not in labels and SEVERITY_RANK[e.severity] >= SEVERITY_RANK["warning"]
        )

    assert noise_count(0) < noise_count(1) < noise_count(3)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"names": ["bad_rollout", "meteor_strike"]}, "names"),
        ({"names": []}, "names"),
        ({"names": "bad_rollout"}, "names"),
        ({"lines": 10}, "lines"),
        ({"noise": -1}, "noise"),
        ({"seed": "7"}, "seed"),
        ({"start": "yesterday"}, "start"),
    ],
)
def test_bad_arguments_are_rejected_naming_the_field(kwargs, field):
    names = kwargs.pop("names", ["bad_rollout"])
    with pytest.raises(ValueError, match=f"^{field}:"):
        generate(names, **kwargs)


def test_start_is_honoured_and_naive_means_utc():
    run = generate(["certificate_expiry"], seed=1, lines=2_000, start=datetime(2027, 1, 5, 8))
    assert run.truth.start == datetime(2027, 1, 5, 8, tzinfo=UTC)
    assert run.events[0].timestamp.tzinfo is not None


def test_hundred_thousand_lines():
    run = generate(None, seed=21, lines=100_000)
    assert abs(len(run.events) - 100_000) < 10_000
    labels = run.truth.labels()
    assert len(labels) == sum(len(i.event_indices) for i in run.truth.incidents)
    assert max(labels) < len(run.events)


# --------------------------------------------------------------------------- files


def test_write_scenario_round_trips(tmp_path):
    run = generate(["bad_rollout", "certificate_expiry"], seed=9, lines=2_000)
    paths = write_scenario(run, tmp_path / "out")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "events.jsonl",
        "metrics.csv",
        "truth.json",
    ]
    lines = paths.events.read_text().splitlines()
    assert len(lines) == len(run.events)
    first = json.loads(lines[0])
    assert list(first) == [
        "timestamp",
        "source",
        "kind",
        "entity",
        "related",
        "severity",
        "message",
        "attributes",
    ]
    assert first["timestamp"].endswith("Z")
    assert [Event.model_validate_json(x) for x in lines] == run.events
    with paths.metrics.open() as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == ["timestamp", "entity", "metric", "value"]
    assert len(rows) == sum(len(m.values) for m in run.metrics)
    by_key = {(m.entity, m.metric): m for m in run.metrics}
    row = rows[-1]
    series = by_key[(row["entity"], row["metric"])]
    assert float(row["value"]) == series.values[-1]
    assert datetime.fromisoformat(row["timestamp"]) == series.timestamps[-1]
    truth = load_truth(paths.truth)
    assert truth == run.truth
    assert truth.label_of(min(run.truth.incidents[0].event_indices)) == "T1-bad_rollout"
    # written again over itself: still three files, no temp files left behind
    write_scenario(run, tmp_path / "out")
    assert len(list((tmp_path / "out").iterdir())) == 3


def test_load_truth_rejects_other_files(tmp_path):
    bad = tmp_path / "truth.json"
    bad.write_text(json.dumps({"incidents": "none"}))
    with pytest.raises(ValueError, match="truth.json: not a ground-truth file"):
        load_truth(bad)
    with pytest.raises(FileNotFoundError):
        load_truth(tmp_path / "missing.json")


# --------------------------------------------------------------------------- on a generated run


def _oracle(run):
    """Signals a perfect detector would emit (one per incident x source and per moved
    metric, plus one from the background errors of the incident period) and incidents that
    group them right, with the true root cause."""
    truth, signals, incidents = run.truth, [], []
    for true in truth.incidents:
        ids = []
        by_source: dict[str, list[int]] = {}
        for i in sorted(true.event_indices):
            by_source.setdefault(run.events[i].source, []).append(i)
        for source, indices in by_source.items():
            e = run.events[indices[0]]
            sid = f"{true.id}:{source}"
            signals.append(
                AnomalySignal(
                    id=sid,
                    kind="new_template",
                    source=source,
                    entity=e.entity,
                    related=e.related,
                    start=e.timestamp,
                    end=e.timestamp,
                    score=0.9,
                    title=e.message[:80],
                    event_indices=indices,
                )
            )
            ids.append(sid)
        for entity, metric in sorted(true.metric_keys):
            sid = f"{true.id}:metric_zscore:{entity}:{metric}"
            signals.append(
                AnomalySignal(
                    id=sid,
                    kind="metric_zscore",
                    source="grafana",
                    entity=entity,
                    start=true.start,
                    end=true.end,
                    score=0.7,
                    title=f"{metric} high",
                    evidence={"metric": metric},
                )
            )
            ids.append(sid)
        incidents.append(
            Incident(
                id=f"P-{true.id}",
                start=true.start,
                end=true.end,
                severity="error",
                title=true.id,
                entities=true.entities,
                signals=ids,
                timeline=[],
                root_cause=true.root_cause_entity,
                confidence=0.9,
            )
        )
    labels = truth.labels()
    noise = [
        i
        for i, e in enumerate(run.events)
        if i not in labels and e.timestamp >= truth.baseline_end and e.severity == "error"
    ]
    signals.append(
        AnomalySignal(
            id="noise",
            kind="frequency_spike",
            source="kubernetes",
            entity=run.events[noise[0]].entity,
            start=run.events[noise[0]].timestamp,
            end=run.events[noise[-1]].timestamp,
            score=0.3,
            title="noise",
            event_indices=noise,
        )
    )
    return signals, incidents


def test_oracle_detector_on_a_generated_run_scores_perfectly_and_noise_costs_precision(full_run):
    signals, incidents = _oracle(full_run)
    labels = signal_labels(signals, full_run.truth)
    assert labels["noise"] is None
    assert all(labels[s] == s.split(":")[0] for s in labels if s.startswith("T"))
    score = evaluate(incidents, signals, full_run.truth)
    assert (score.precision, score.recall, score.root_cause_accuracy) == (1.0, 1.0, 1.0)
    assert score.pairwise_precision == 1.0 and score.pairwise_recall == 1.0
    noise_incident = Incident(
        id="P-noise",
        start=full_run.truth.baseline_end,
        end=full_run.truth.end,
        severity="error",
        title="noise",
        entities=[],
        signals=["noise"],
        timeline=[],
        root_cause=None,
        confidence=0.2,
    )
    with_noise = evaluate([*incidents, noise_incident], signals, full_run.truth, name="demo")
    assert with_noise.precision == pytest.approx(6 / 7) and with_noise.recall == 1.0
    report = Report()
    report.add(score, name="oracle")
    report.add(with_noise)
    assert report.overall().precision == pytest.approx(12 / 13)
    assert "| **overall** |" in report.to_markdown()
