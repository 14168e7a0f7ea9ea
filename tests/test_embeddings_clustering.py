"""Template embeddings (the real MiniLM model, cached in SQLite) and HDBSCAN clustering."""

from __future__ import annotations

import sqlite3

import numpy as np
import pandas as pd
import pytest

from tasks.incidents.clustering import cluster_templates, clustering_quality, words
from tasks.incidents.embeddings import EMBEDDING_DIM, TemplateEmbedder, render_for_model
from tests.loghub import loghub_dir

# Hand-written templates: each group is one failure worded differently; the rest are
# unrelated to each other and to the groups.
GROUPS = {
    "db": [
        "connection refused to db <*>",
        "could not connect to database at <*>",
        "db connection timed out",
    ],
    "oom": [
        "OOMKilled container <*> exceeded memory limit",
        "container <*> killed: out of memory",
        "memory limit exceeded, process killed",
    ],
    "login": [
        "user <*> logged in",
        "login successful for user <*>",
        "user <*> signed in from <IP>",
    ],
    "disk": ["disk full on <PATH>", "no space left on device <PATH>"],
    "cert": ["certificate has expired for <*>", "x509: certificate expired or is not yet valid"],
}
UNRELATED = [
    "cache miss for key <*>",
    "GET <URL> returned <NUM>",
    "scheduled job <*> completed in <NUM> ms",
    "payment processed for order <*>",
]


def hand_written() -> tuple[list[str], list[str]]:
    texts, group = [], []
    for name, members in GROUPS.items():
        texts += members
        group += [name] * len(members)
    texts += UNRELATED
    group += [f"unrelated-{i}" for i in range(len(UNRELATED))]
    return texts, group


@pytest.fixture(scope="module")
def embedder(tmp_path_factory) -> TemplateEmbedder:
    return TemplateEmbedder(tmp_path_factory.mktemp("embeddings"))


# --- rendering ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("template", "rendered"),
    [
        ("connection refused to db <*>", "connection refused to db"),
        ("GET <URL> returned <NUM> after <NUM> ms", "GET url returned number after number ms"),
        ("<IP>:<NUM> <*> <*> closed", "address : number closed"),
        (
            "PacketResponder <*> for block <BLK> terminating",
            "Packet Responder for block id terminating",
        ),
        ("retry_count exceeded for <REQ_ID>", "retry count exceeded for id"),
        ("value <*> <*> <*>", "value"),
        ("<NUM> <NUM> <NUM>", "number"),
        ("<*>", "empty message"),
        ("job <CRON_NAME> done", "job cron name done"),
    ],
)
def test_render_for_model_turns_placeholders_into_words(template, rendered):
    assert render_for_model(template) == rendered


# --- embedding and its cache -----------------------------------------------------------


def test_embed_returns_unit_float32_rows_in_input_order(embedder):
    texts = ["connection refused to db <*>", "user <*> logged in", "connection refused to db <*>"]
    vectors = embedder.embed(texts)
    assert vectors.shape == (3, EMBEDDING_DIM)
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(vectors[0], vectors[2])  # duplicates: one computation
    assert float(vectors[0] @ vectors[1]) < 0.9
    # A template that renders like another shares its embedding (and its cache entry).
    same = embedder.embed(["connection refused to db <*> <*>"])
    np.testing.assert_array_equal(same[0], vectors[0])
    assert embedder.last_stats.hits == 1 and embedder.last_stats.misses == 0


def test_cache_persists_across_embedders_and_only_unseen_texts_are_computed(tmp_path):
    first = TemplateEmbedder(tmp_path)
    texts = ["disk full on <PATH>", "cache miss for key <*>", "disk full on <PATH>"]
    computed = first.embed(texts)
    assert (first.last_stats.hits, first.last_stats.misses) == (0, 2)
    assert first.cache_path.exists()

    second = TemplateEmbedder(tmp_path)  # a new run: nothing in memory
    again = second.embed(texts + ["payment processed for order <*>"])
    assert (second.last_stats.hits, second.last_stats.misses) == (2, 1)
    np.testing.assert_array_equal(again[:3], computed)

    with sqlite3.connect(second.cache_path) as conn:
        assert conn.execute("SELECT COUNT(*) FROM embeddings").fetchone()[0] == 3
    second.embed(["payment processed for order <*>"])
    assert (second.last_stats.hits, second.last_stats.misses) == (1, 0)
    assert (second.total_stats.hits, second.total_stats.misses) == (3, 1)


def test_two_embedders_writing_one_cache_at_once(tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    batches = [[f"worker {i} failed with code <NUM>" for i in range(k, k + 20)] for k in (0, 10)]
    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda b: TemplateEmbedder(tmp_path).embed(b), batches))
    reader = TemplateEmbedder(tmp_path)
    merged = reader.embed(batches[0] + batches[1][10:])
    assert (reader.last_stats.hits, reader.last_stats.misses) == (30, 0)
    np.testing.assert_allclose(merged[:20], results[0], atol=1e-6)
    np.testing.assert_allclose(merged[20:], results[1][10:], atol=1e-6)


def test_empty_input_needs_no_model_and_bad_input_is_rejected(tmp_path):
    embedder = TemplateEmbedder(tmp_path)
    out = embedder.embed([])
    assert out.shape == (0, EMBEDDING_DIM)
    assert not embedder.cache_path.exists()
    with pytest.raises(TypeError, match="texts"):
        embedder.embed(["ok", 3])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="batch_size"):
        TemplateEmbedder(tmp_path, batch_size=0)


def test_a_damaged_cache_file_is_moved_aside_and_rebuilt(tmp_path):
    embedder = TemplateEmbedder(tmp_path)
    embedder.cache_path.parent.mkdir(parents=True, exist_ok=True)
    embedder.cache_path.write_bytes(b"this is not a database" * 100)
    vectors = embedder.embed(["disk full on <PATH>"])
    assert vectors.shape == (1, EMBEDDING_DIM)
    assert embedder.last_stats.misses == 1
    assert embedder.cache_path.with_suffix(".damaged").exists()
    assert TemplateEmbedder(tmp_path).embed(["disk full on <PATH>"]).shape == (1, EMBEDDING_DIM)


# --- clustering -------------------------------------------------------------------------


def test_paraphrases_group_and_unrelated_templates_do_not(embedder):
    texts, group = hand_written()
    result = cluster_templates(embedder.embed(texts), texts)
    labels = result.labels
    assert (labels >= 0).all()
    for name, members in GROUPS.items():
        ids = {int(labels[i]) for i, g in enumerate(group) if g == name}
        assert len(ids) == 1, f"{name} paraphrases split over clusters {ids}"
        (cid,) = ids
        inside = {group[i] for i in result.clusters[cid].members}
        assert inside == {name}, f"cluster of {name} also holds {inside - {name}}"
    # The unrelated templates are not in any group's cluster, nor together.
    unrelated = [int(labels[i]) for i, g in enumerate(group) if g.startswith("unrelated")]
    group_ids = {int(labels[i]) for i, g in enumerate(group) if not g.startswith("unrelated")}
    assert len(set(unrelated)) == len(unrelated)
    assert not set(unrelated) & group_ids
    for cid in unrelated:
        assert result.clusters[cid].noise and len(result.clusters[cid].members) == 1


def test_clusters_have_readable_labels_and_a_representative(embedder):
    texts, group = hand_written()
    result = cluster_templates(embedder.embed(texts), texts)
    db = result.clusters[int(result.labels[group.index("db")])]
    assert db.representative in GROUPS["db"]
    assert set(db.terms) <= {w for t in GROUPS["db"] for w in words(t)}
    assert set(db.terms) & {"db", "database", "connection", "connect"}
    assert db.label == " / ".join(db.terms)
    for cluster in result.clusters.values():
        assert cluster.label
        assert "<" not in cluster.label and "*" not in cluster.label
        assert not set(cluster.terms) & {"to", "at", "for", "on", "the"}  # stop words
    # Distinctive, not merely frequent: "user" is in every login template, but also the
    # label of no other cluster; the OOM label does not borrow the login words.
    oom = result.clusters[int(result.labels[group.index("oom")])]
    assert not set(oom.terms) & {"user", "logged", "login"}
    mapping = result.by_template_id([100 + i for i in range(len(texts))])
    assert mapping[100] == (db.id, db.label)
    assert result.label_of(0) == db.label


def test_a_small_set_with_a_single_group_still_finds_it(embedder):
    texts = GROUPS["db"] + UNRELATED[:3]
    result = cluster_templates(embedder.embed(texts), texts)
    assert len({int(result.labels[i]) for i in range(3)}) == 1
    assert len(set(result.labels.tolist())) == 4
    loose = cluster_templates(embedder.embed(texts), texts, min_similarity=0.95)
    assert len(set(loose.labels.tolist())) == len(texts)  # nothing is that close


def test_noise_becomes_singletons_with_their_own_ids(embedder):
    texts = ["connection refused to db <*>", "could not connect to database at <*>"] + UNRELATED
    result = cluster_templates(embedder.embed(texts), texts)
    assert result.raw_labels.tolist().count(-1) == len(UNRELATED)
    assert sorted(result.clusters) == list(range(len(result.clusters)))  # ids 0..k-1
    assert len(set(result.labels.tolist())) == 1 + len(UNRELATED)
    assert result.labels[0] == result.labels[1] == 0


def test_degenerate_inputs(embedder):
    empty = cluster_templates(np.zeros((0, EMBEDDING_DIM)), [])
    assert empty.labels.shape == (0,) and empty.clusters == {}
    one = cluster_templates(embedder.embed(["disk full on <PATH>"]), ["disk full on <PATH>"])
    assert one.labels.tolist() == [0] and one.clusters[0].noise
    only_placeholders = cluster_templates(
        embedder.embed(["<*> <*>", "<NUM>"]), ["<*> <*>", "<NUM>"]
    )
    assert all(c.label for c in only_placeholders.clusters.values())
    with pytest.raises(ValueError, match="texts has 1 items for 2 embeddings"):
        cluster_templates(np.zeros((2, 4)), ["a"])
    with pytest.raises(ValueError, match="min_cluster_size"):
        cluster_templates(np.zeros((2, 4)), ["a", "b"], min_cluster_size=1)
    with pytest.raises(ValueError, match="min_similarity"):
        cluster_templates(np.zeros((2, 4)), ["a", "b"], min_similarity=2)
    with pytest.raises(ValueError, match="2-D"):
        cluster_templates(np.zeros(4), ["a"])


def test_clustering_quality(embedder):
    texts, _ = hand_written()
    vectors = embedder.embed(texts)
    result = cluster_templates(vectors, texts)
    quality = clustering_quality(vectors, result.raw_labels)
    assert quality["clusters"] == len(GROUPS)
    assert quality["noise"] == len(UNRELATED)
    assert 0.2 < quality["silhouette"] <= 1.0  # tight paraphrase groups
    assert quality["davies_bouldin"] > 0
    shuffled = np.random.default_rng(0).permutation(result.raw_labels)
    assert clustering_quality(vectors, shuffled)["silhouette"] < quality["silhouette"]
    # Degenerate: fewer than two clusters, or every point its own cluster.
    assert clustering_quality(vectors, np.zeros(len(texts), dtype=int))["silhouette"] is None
    all_noise = clustering_quality(vectors, np.full(len(texts), -1))
    assert all_noise == {
        "silhouette": None,
        "davies_bouldin": None,
        "clusters": 0,
        "noise": len(texts),
    }
    singletons = clustering_quality(vectors, np.arange(len(texts)))
    assert singletons["silhouette"] is None and singletons["davies_bouldin"] is None
    with pytest.raises(ValueError, match="one row per label"):
        clustering_quality(vectors, np.zeros(3))


def test_loghub_templates_cluster_and_every_template_is_labelled(embedder):
    systems = sorted(loghub_dir().glob("*/*_structured_corrected.csv"))
    assert len(systems) == 8
    found = {}
    for path in systems:
        texts = sorted(pd.read_csv(path)["EventTemplate"].astype(str).unique())
        result = cluster_templates(embedder.embed(texts), texts)
        assert len(result.labels) == len(texts) and (result.labels >= 0).all()
        assert all(result.label_of(i) for i in range(len(texts)))
        members = sorted(i for c in result.clusters.values() for i in c.members)
        assert members == list(range(len(texts)))
        real = [c for c in result.clusters.values() if not c.noise]
        if len(texts) >= 30:
            assert len(real) >= 3, f"{path.parent.name}: only {len(real)} clusters"
            assert len(real) < len(texts) / 2  # grouping, not one cluster per template
        found[path.parent.name] = (texts, result)
    # A known pair of HDFS templates about receiving a block share a cluster.
    texts, result = found["HDFS"]
    a = texts.index("Received block <*> src: <*> dest: <*> of size <*>")
    b = texts.index("Receiving block <*> src: <*> dest: <*>")
    assert result.labels[a] == result.labels[b]
