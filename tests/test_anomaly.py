"""The anomaly ensemble on synthetic streams: each detector fires on its injection only."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from pydantic import ValidationError

from tasks.incidents.anomaly.ensemble import AnomalyConfig, DetectorSettings, detect_signals
from tasks.incidents.anomaly.thresholds import adaptive_threshold
from tasks.incidents.signals import AnomalySignal
from tasks.telemetry.model import Event, MetricSeries

T0 = datetime(2024, 5, 1, 10, 0, tzinfo=UTC)
BASELINE_END = T0 + timedelta(minutes=60)
MINUTES = 120
TEMPLATES = {
    1: "GET /items took <NUM> ms",
    2: "request handled for user <*>",
    3: "cache timeout on key <*>",
    4: "retrying request to inventory <*>",
    5: "payment gateway rejected card <*>",
    6: "job <*> finished",
}
PODS = {"api-1": ("api", "n1"), "api-2": ("api", "n2"), "worker-1": ("worker", "n1")}


def related(pod: str) -> list[str]:
    service, node = PODS[pod]
    return [f"service:{service}", f"node:{node}", "namespace:shop"]


@dataclass
class Stream:
    """Events with their template ids, metric series, and where each injection sits."""

    rng: np.random.Generator
    templates: dict[int, str] = field(default_factory=lambda: dict(TEMPLATES))
    events: list[Event] = field(default_factory=list)
    template_ids: list[int | None] = field(default_factory=list)
    metrics: list[MetricSeries] = field(default_factory=list)
    injected: dict[str, list[int]] = field(default_factory=dict)

    def log(self, minute: float, pod: str, tid: int, severity: str = "info") -> int:
        text = self.templates[tid].replace("<NUM>", str(self.rng.integers(1, 500)))
        self.events.append(
            Event(
                timestamp=T0 + timedelta(minutes=float(minute)),
                source="kubernetes",
                entity=f"pod:{pod}",
                related=related(pod),
                severity=severity,
                message=text.replace("<*>", f"k{self.rng.integers(1000)}"),
            )
        )
        self.template_ids.append(tid)
        return len(self.events) - 1

    def other(self, minute: float, **fields) -> int:
        self.events.append(Event(timestamp=T0 + timedelta(minutes=float(minute)), **fields))
        self.template_ids.append(None)
        return len(self.events) - 1

    def inject(self, name: str, indices: list[int]) -> None:
        self.injected[name] = indices

    def signals(self, clusters=None, **config) -> list[AnomalySignal]:
        if clusters is None:
            clusters = {t: (t, f"c{t}") for t in self.templates}
        return detect_signals(
            self.events,
            self.template_ids,
            self.templates,
            clusters,
            self.metrics,
            AnomalyConfig(baseline_end=BASELINE_END, **config),
        )


def background(seed: int = 0, *, bursty: bool = False, error_rate: float = 2.0) -> Stream:
    """Two hours of steady telemetry: INFO traffic, background errors and warnings, a
    periodic job, a flaky readiness probe, a flapping alarm, an old Sentry issue, CPU."""
    s = Stream(np.random.default_rng(seed))
    rng = s.rng
    for m in range(MINUTES):
        for pod in ("api-1", "api-2"):
            for _ in range(rng.poisson(10)):
                s.log(m + rng.random(), pod, 1)
            for _ in range(rng.poisson(5)):
                s.log(m + rng.random(), pod, 2)
        for _ in range(rng.poisson(error_rate)):  # background errors at a constant rate
            s.log(m + rng.random(), "worker-1", 3, "error")
        if bursty and m < MINUTES // 2 and m % 7 == 0:  # a noisy baseline: error bursts
            for _ in range(int(rng.integers(10, 40))):
                s.log(m + rng.random(), "worker-1", 3, "error")
        for _ in range(rng.poisson(0.5)):
            s.log(m + rng.random(), "api-1", 4, "warning")
        if m % 5 == 0:
            s.log(m + rng.random(), "worker-1", 6)
        if m % 10 == 3:  # flaky healthcheck, same rate in both periods
            s.other(
                m + 0.5,
                source="kubernetes",
                kind="k8s_event",
                entity="pod:worker-1",
                related=related("worker-1"),
                severity="warning",
                message="Readiness probe failed: HTTP probe failed with statuscode: 503",
                attributes={"reason": "Unhealthy"},
            )
        if m % 15 == 7:  # a flapping alarm, same rate in both periods
            s.other(
                m + 0.2,
                source="cloudwatch",
                kind="alarm",
                entity="service:worker",
                severity="error",
                message="QueueDepth changed from OK to ALARM",
                attributes={"alarm_name": "QueueDepth", "state": "ALARM"},
            )
    for m in (20, 95):  # an old, ongoing Sentry issue seen in both periods
        s.other(
            m,
            source="sentry",
            kind="issue",
            entity="service:worker",
            severity="error",
            message="KeyError: 'session'",
            attributes={
                "issue_id": "77",
                "first_seen": (T0 - timedelta(days=3)).isoformat(),
                "substatus": "ongoing",
                "count": "500",
            },
        )
    stamps = [T0 + timedelta(seconds=15 * i) for i in range(MINUTES * 4)]
    for pod, level in (("worker-1", 20.0), ("api-1", 30.0)):
        values = level + rng.normal(0, 1, len(stamps))
        s.metrics.append(
            MetricSeries(
                source="cloudwatch",
                entity=f"pod:{pod}",
                related=related(pod),
                metric="cpu_percent",
                unit="%",
                timestamps=stamps,
                values=values.tolist(),
            )
        )
    return s


def with_incidents(seed: int = 0) -> Stream:
    """The background plus one injection per detector in the detection period."""
    s = background(seed)
    deploy = s.other(
        68,
        source="grafana",
        kind="deploy",
        entity="service:api",
        message="deploy api v2.1",
        attributes={"version": "v2.1"},
    )
    s.inject("deploy", [deploy])
    s.inject("new_template", [s.log(70 + i * 0.4, "api-2", 5, "error") for i in range(12)])
    s.inject(
        "k8s",
        [
            s.other(
                72 + i,
                source="kubernetes",
                kind="k8s_event",
                entity="pod:api-2",
                related=related("api-2"),
                severity="warning",
                message="Back-off restarting failed container api",
                attributes={"reason": "BackOff"},
            )
            for i in range(3)
        ],
    )
    regression = s.other(
        80.2,
        source="sentry",
        kind="issue",
        entity="service:api",
        severity="error",
        message="TimeoutError: upstream inventory",
        attributes={
            "issue_id": "1234",
            "first_seen": (T0 - timedelta(days=10)).isoformat(),
            "substatus": "regressed",
            "is_regression": "true",
            "count": "40",
        },
    )
    s.inject("sentry", [regression])
    alarm = s.other(
        85,
        source="cloudwatch",
        kind="alarm",
        entity="service:api",
        severity="error",
        message="HighLatency changed from OK to ALARM",
        attributes={"alarm_name": "HighLatency", "state": "ALARM"},
    )
    s.inject("alarm", [alarm])
    s.inject("spike", [s.log(90 + i * 0.05, "api-1", 4, "warning") for i in range(60)])
    # A log storm on the worker: a mix of windows the baseline never had.
    storm = [s.log(105 + i * 0.006, "worker-1", 3, "error") for i in range(150)]
    storm += [s.log(105 + i * 0.01, "worker-1", 6) for i in range(60)]
    s.inject("storm", storm)
    cpu = s.metrics[0]  # worker-1: a sustained jump at minute 100
    values = list(cpu.values)
    for i in range(100 * 4, len(values)):
        values[i] += 65
    s.metrics[0] = cpu.model_copy(update={"values": values})
    api_cpu = s.metrics[1]  # api-1: a single-sample spike and a slow 10% drift only
    values = [v + (v * 0.1 * i / len(api_cpu.values)) for i, v in enumerate(api_cpu.values)]
    values[95 * 4] += 60
    s.metrics[1] = api_cpu.model_copy(update={"values": values})
    return s


def of_kind(signals: list[AnomalySignal], kind: str) -> list[AnomalySignal]:
    return [s for s in signals if s.kind == kind]


@pytest.fixture(scope="module")
def incidents() -> tuple[Stream, list[AnomalySignal]]:
    stream = with_incidents()
    return stream, stream.signals()


# --- each detector fires on its injection ---------------------------------------------


def test_new_template_fires_on_the_new_error_of_one_pod(incidents):
    stream, signals = incidents
    (signal,) = of_kind(signals, "new_template")
    assert signal.entity == "pod:api-2"
    assert {"service:api", "node:n2"} <= set(signal.related)
    assert signal.event_indices == stream.injected["new_template"]
    assert signal.template_id == 5 and signal.template == TEMPLATES[5]
    assert (signal.cluster_id, signal.cluster_label) == (5, "c5")
    assert signal.severity == "error"
    assert signal.start == T0 + timedelta(minutes=70)
    assert "payment gateway rejected card" in signal.title


def test_frequency_spike_fires_on_the_known_template_burst(incidents):
    stream, signals = incidents
    spikes = [s for s in of_kind(signals, "frequency_spike") if s.template_id == 4]
    (signal,) = spikes
    assert signal.entity == "pod:api-1"
    injected = set(stream.injected["spike"])
    assert injected <= set(signal.event_indices)
    extra = set(signal.event_indices) - injected  # background lines of the same minutes
    assert len(extra) <= 6 and all(stream.template_ids[i] == 4 for i in extra)
    assert signal.evidence["baseline_per_window"] < 1.0
    assert T0 + timedelta(minutes=90) <= signal.start < T0 + timedelta(minutes=91)


def test_isolation_forest_fires_on_the_log_storm_window(incidents):
    stream, signals = incidents
    (signal,) = of_kind(signals, "isolation_forest")
    assert set(signal.event_indices) & set(stream.injected["storm"])
    assert T0 + timedelta(minutes=105) <= signal.start < T0 + timedelta(minutes=106)
    assert signal.entity == "pod:worker-1"
    assert "z=" in signal.evidence["deviating"]


def test_metric_zscore_fires_on_the_sustained_cpu_jump_only(incidents):
    _, signals = incidents
    (signal,) = of_kind(signals, "metric_zscore")
    assert signal.entity == "pod:worker-1"
    assert signal.evidence["metric"] == "cpu_percent"
    assert T0 + timedelta(minutes=100) <= signal.start <= T0 + timedelta(minutes=101)
    assert signal.evidence["peak_z"] > 10
    assert signal.event_indices == []
    assert abs(signal.evidence["baseline_median"] - 20) < 1


def test_sentry_regression_alarm_k8s_and_deploy(incidents):
    stream, signals = incidents
    (sentry,) = [s for s in signals if s.kind.startswith("sentry")]
    assert sentry.kind == "sentry_regression"
    assert sentry.event_indices == stream.injected["sentry"]
    assert sentry.entity == "service:api"
    (alarm,) = of_kind(signals, "alarm")
    assert alarm.event_indices == stream.injected["alarm"]
    assert "HighLatency" in alarm.title and alarm.severity == "error"
    (k8s,) = of_kind(signals, "k8s_warning")
    assert k8s.event_indices == stream.injected["k8s"]
    assert k8s.entity == "pod:api-2" and "BackOff" in k8s.title
    (deploy,) = of_kind(signals, "deploy")
    assert deploy.event_indices == stream.injected["deploy"]
    assert deploy.score == pytest.approx(0.2) and deploy.severity == "info"


def test_background_noise_is_never_behind_a_signal(incidents):
    stream, signals = incidents
    injected = {i for indices in stream.injected.values() for i in indices}
    for signal in signals:
        # A spike's window also holds the background lines of the same template.
        extra = set(signal.event_indices) - injected
        assert len(extra) <= 0.1 * len(signal.event_indices), signal.title
        assert signal.start >= BASELINE_END - timedelta(minutes=10)
        assert 0.0 <= signal.score <= 1.0
    titles = " ".join(s.title for s in signals)
    assert "Unhealthy" not in titles and "QueueDepth" not in titles and "session" not in titles
    assert len({s.id for s in signals}) == len(signals)
    assert [s.start for s in signals] == sorted(s.start for s in signals)


def test_agreeing_detectors_raise_each_others_scores(incidents):
    _, signals = incidents
    (new,) = of_kind(signals, "new_template")
    (k8s,) = of_kind(signals, "k8s_warning")
    for signal, other in ((new, "k8s_warning"), (k8s, "new_template")):
        assert other in signal.evidence["corroborated_by"]
        assert signal.score > signal.evidence["detector_score"]
    (alarm,) = of_kind(signals, "alarm")
    assert "corroborated_by" not in alarm.evidence
    assert alarm.score == pytest.approx(alarm.evidence["detector_score"], abs=1e-4)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_steady_background_gives_no_signals(seed):
    assert background(seed).signals() == []


def test_event_indices_are_positions_in_the_input_list():
    stream = with_incidents(seed=3)
    order = list(range(len(stream.events)))
    random.Random(0).shuffle(order)
    events = [stream.events[i] for i in order]
    ids = [stream.template_ids[i] for i in order]
    clusters = {t: (t, f"c{t}") for t in TEMPLATES}
    config = AnomalyConfig(baseline_end=BASELINE_END)
    signals = detect_signals(events, ids, TEMPLATES, clusters, stream.metrics, config)
    (new,) = of_kind(signals, "new_template")
    assert len(new.event_indices) == 12
    assert all(events[i].message.startswith("payment gateway rejected") for i in new.event_indices)
    (alarm,) = of_kind(signals, "alarm")
    assert events[alarm.event_indices[0]].attributes["alarm_name"] == "HighLatency"


# --- adaptive thresholds ---------------------------------------------------------------


def test_adaptive_threshold_formula():
    quiet = adaptive_threshold([0.5] * 50 + [3.0], floor=1.0, quantile=0.9, history=20)
    assert (quiet == 1.0).all()  # the floor when the history is below it
    noisy_scores = [0.5, 4.0] * 25 + [3.0]
    noisy = adaptive_threshold(noisy_scores, floor=1.0, quantile=0.9, history=20)
    assert noisy[-1] == pytest.approx(4.0) and noisy[-1] > quiet[-1]
    # Detection windows (from learn_until on) enter the history clipped at the bar, so a
    # long incident does not raise its own bar; baseline windows enter as they are.
    scores = [0.5] * 30 + [9.0] * 30
    clipped = adaptive_threshold(scores, floor=1.0, quantile=0.9, history=40, learn_until=30)
    assert (clipped[30:] == 1.0).all()
    learned = adaptive_threshold(scores, floor=1.0, quantile=0.9, history=40)
    assert learned[-1] == pytest.approx(9.0)
    # The history slides: noise older than `history` windows is forgotten.
    old_noise = adaptive_threshold([5.0] * 10 + [0.0] * 30, floor=1.0, quantile=0.9, history=20)
    assert old_noise[15] > 1.0 and old_noise[-1] == 1.0
    # Warm-up windows add nothing.
    warm = adaptive_threshold([5.0] * 10 + [0.0] * 5, floor=1.0, quantile=0.99, warmup=10)
    assert (warm == 1.0).all()


def churn(stream: Stream) -> None:
    """After the warm-up, a new error template keeps appearing in the baseline."""
    for k in range(20, 60, 3):
        stream.templates[100 + k] = f"unexpected failure {k} in <*>"
        for j in range(3):
            stream.events.append(
                Event(
                    timestamp=T0 + timedelta(minutes=k + j * 0.2),
                    source="kubernetes",
                    entity="pod:api-1",
                    related=related("api-1"),
                    severity="error",
                    message=f"unexpected failure {k} in x",
                )
            )
            stream.template_ids.append(100 + k)


def test_a_noisier_baseline_raises_the_bar():
    results, singles, storms = {}, {}, {}
    for noisy in (False, True):
        stream = background(seed=3)
        if noisy:
            churn(stream)
        single = stream.log(80, "api-1", 5, "error")  # one new error line
        stream.templates[8] = "tls handshake failed with <*>"
        storm = [stream.log(90 + i * 0.1, "api-2", 8, "error") for i in range(40)]
        signals = of_kind(stream.signals(), "new_template")
        results[noisy] = {tuple(s.event_indices): s for s in signals}
        singles[noisy], storms[noisy] = (single,), tuple(storm)
        assert tuple(storm) in results[noisy]  # a strong novelty passes either way
    assert singles[False] in results[False]  # one new error line passes a quiet baseline
    assert singles[True] not in results[True]  # not a baseline that is full of novelty
    quiet_bar = results[False][storms[False]].evidence["threshold"]
    noisy_bar = results[True][storms[True]].evidence["threshold"]
    assert quiet_bar == 1.0 and noisy_bar > quiet_bar


def test_a_burst_flags_against_a_steady_baseline_but_not_a_bursty_one():
    flagged = {}
    for bursty in (False, True):
        stream = background(seed=3, bursty=bursty)
        burst = [stream.log(100 + i * 0.03, "worker-1", 3, "error") for i in range(25)]
        spikes = of_kind(stream.signals(), "frequency_spike")
        flagged[bursty] = any(set(burst) <= set(s.event_indices) for s in spikes)
    assert flagged == {False: True, True: False}


# --- semantics, configuration and edges ----------------------------------------------------


def test_a_paraphrase_of_a_baseline_error_is_not_new_when_clustered_together():
    stream = background(seed=4)
    stream.templates[7] = "failed to reach cache for key <*>"  # paraphrase of template 3
    paraphrase = [stream.log(75 + i * 0.3, "worker-1", 7, "error") for i in range(10)]
    together = {**{t: (t, f"c{t}") for t in stream.templates}, 7: (3, "c3")}
    assert of_kind(stream.signals(clusters=together), "new_template") == []
    apart = of_kind(stream.signals(novelty_by_cluster=False), "new_template")
    assert [s.event_indices for s in apart] == [paraphrase]


def test_semantic_clusters_from_the_real_model_decide_novelty(tmp_path):
    from tasks.incidents.clustering import cluster_templates
    from tasks.incidents.embeddings import TemplateEmbedder

    texts = {
        11: "connection refused to db <*>",
        12: "could not connect to database at <*>",
        13: "payment gateway rejected card <*>",
        14: "user <*> logged in",
        15: "certificate has expired for <*>",
        16: "db connection timed out",
    }
    stream = background(seed=5)
    stream.templates.update(texts)
    for m in range(0, 60, 2):  # the db error is background in the baseline, on api-1
        stream.log(m + 0.5, "api-1", 11, "error")
    paraphrased = [stream.log(m + 0.5, "api-2", 12, "error") for m in range(62, 120, 2)]
    new = [stream.log(90 + i * 0.2, "api-2", 13, "error") for i in range(8)]
    ids = sorted(texts)
    vectors = TemplateEmbedder(tmp_path).embed([texts[i] for i in ids])
    clusters = cluster_templates(vectors, [texts[i] for i in ids]).by_template_id(ids)
    assert clusters[11][0] == clusters[12][0] != clusters[13][0]
    clusters.update({t: (100 + t, f"c{t}") for t in TEMPLATES})  # the background's own
    signals = of_kind(stream.signals(clusters=clusters), "new_template")
    assert [s.event_indices for s in signals] == [new]
    assert not any(set(paraphrased) & set(s.event_indices) for s in signals)


def test_sentry_new_issue_takes_its_error_events_and_annotations_mark_deploys():
    stream = background(seed=6)
    issue = stream.other(
        81,
        source="sentry",
        kind="issue",
        entity="service:api",
        severity="error",
        message="ZeroDivisionError: division by zero",
        attributes={"issue_id": "9", "first_seen": (T0 + timedelta(minutes=80)).isoformat()},
    )
    errors = [
        stream.other(
            80 + i,
            source="sentry",
            kind="error_event",
            entity="service:api",
            severity="error",
            message="ZeroDivisionError: division by zero",  # no issue id: matched by title
        )
        for i in range(4)
    ]
    note = {"source": "grafana", "kind": "annotation", "entity": "service:api"}
    deploy = stream.other(78, message="Deployed api 2.2 to production", **note)
    stream.other(79, message="On-call handover", **note)
    signals = stream.signals()
    (sentry,) = of_kind(signals, "sentry_new_issue")
    assert sentry.event_indices == sorted([issue, *errors])
    assert sentry.start == T0 + timedelta(minutes=80)
    assert sentry.evidence["issue"] == "9"
    assert [s.event_indices for s in of_kind(signals, "deploy")] == [[deploy]]


def test_disabled_detectors_and_custom_weights():
    stream = with_incidents(seed=1)
    off = {"alarm": DetectorSettings(weight=0, floor=1.0)}
    assert of_kind(stream.signals(detectors=off), "alarm") == []
    heavy = {"deploy": DetectorSettings(weight=0.05, floor=0.0)}
    (deploy,) = of_kind(stream.signals(detectors=heavy), "deploy")
    assert deploy.score == pytest.approx(0.05)


def test_bad_input_is_rejected_with_the_field_named():
    stream = background(seed=7)
    with pytest.raises(ValueError, match="template_ids has 1 entries"):
        detect_signals(stream.events, [None], TEMPLATES, {}, [])
    with pytest.raises(ValueError, match="baseline_end"):
        early = AnomalyConfig(baseline_end=T0 - timedelta(hours=1))
        detect_signals(stream.events, stream.template_ids, TEMPLATES, {}, [], early)
    with pytest.raises(ValidationError, match="unknown detector"):
        AnomalyConfig(detectors={"magic": DetectorSettings(weight=1, floor=0)})
    with pytest.raises(ValidationError, match="window_seconds"):
        AnomalyConfig(window_seconds=0)


def test_nothing_to_compare_gives_no_signals():
    assert detect_signals([], [], {}, {}, []) == []
    stream = background(seed=8)
    late = AnomalyConfig(baseline_end=T0 + timedelta(hours=5))
    assert detect_signals(stream.events, stream.template_ids, TEMPLATES, {}, [], late) == []
