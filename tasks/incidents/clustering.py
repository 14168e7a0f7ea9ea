"""Group templates that mean the same thing, and name each group, without an LLM.

HDBSCAN (scikit-learn) over the templates' MiniLM embeddings with cosine distance
(``metric="cosine"``, which scikit-learn runs with the brute-force algorithm: a full
pairwise distance matrix, fine for the few thousand templates a run has), so
"connection refused to db <*>" and "could not connect to database at <*>" share a
cluster while unrelated templates do not. Around HDBSCAN:

- it never picks the root of its hierarchy, so when it finds no cluster at all (a few
  templates, one group among them) it runs again allowing a single cluster;
- its clusters are relative densities, so in a sparse corner two unrelated templates can
  pair up: a member whose most similar fellow member is below ``min_similarity``
  (cosine) is taken out again, and a cluster left smaller than ``min_cluster_size``
  dissolves;
- in small sets its density estimate can leave a close paraphrase out: a noise template
  at least ``attach_similarity`` similar to a clustered one joins that one's cluster.

Templates that fit no group stay noise (-1); each becomes a singleton cluster with its
own id (after the real clusters' ids), so every template has a cluster.

Labels: the top distinctive words of each cluster by class-based TF-IDF (c-TF-IDF, as in
BERTopic: a cluster's templates form one document; ``tf`` = a word's share of the
cluster's words, ``idf = log(1 + A / f)`` with ``A`` the average number of words per
cluster and ``f`` the word's count over all clusters), ignoring placeholders, numbers
and English stop words; plus a representative template, the member closest to the
cluster's centroid.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import sparse
from sklearn.cluster import HDBSCAN
from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS, CountVectorizer
from sklearn.metrics import davies_bouldin_score, silhouette_score

LABEL_TERMS = 3  # words in a cluster label

_PLACEHOLDER = re.compile(r"<[^<>\s]*>")
_CAMEL = re.compile(r"(?<=[a-z])(?=[A-Z])")
_WORD = re.compile(r"[A-Za-z][A-Za-z]+")
_STOP = frozenset(ENGLISH_STOP_WORDS)


@dataclass(frozen=True)
class Cluster:
    """One group of templates."""

    id: int
    label: str  # top distinctive words, e.g. "db / connection / refused"
    terms: tuple[str, ...]
    representative: str  # the member template closest to the centroid
    members: tuple[int, ...]  # positions in the clustered list
    noise: bool  # a singleton made from an HDBSCAN noise point


@dataclass(frozen=True)
class TemplateClusters:
    """Cluster of every template, and each cluster's label.

    ``labels[i]`` is the cluster id of template ``i`` (never -1); ``raw_labels`` are
    HDBSCAN's own labels (-1 = noise) for quality measures.
    """

    labels: np.ndarray
    raw_labels: np.ndarray
    clusters: dict[int, Cluster]

    def label_of(self, position: int) -> str:
        """Label of the cluster template ``position`` belongs to."""
        return self.clusters[int(self.labels[position])].label

    def by_template_id(self, template_ids: Sequence[int]) -> dict[int, tuple[int, str]]:
        """``{template_id: (cluster_id, label)}`` for ``tasks.incidents.anomaly``.

        Args:
            template_ids: the template id of each clustered text, in clustering order.
        """
        if len(template_ids) != len(self.labels):
            raise ValueError(
                f"template_ids has {len(template_ids)} ids for {len(self.labels)} templates"
            )
        return {
            int(tid): (int(cid), self.clusters[int(cid)].label)
            for tid, cid in zip(template_ids, self.labels, strict=True)
        }


def words(text: str) -> list[str]:
    """Label words of a template: lower-case words of 2+ letters, no placeholders/stop words."""
    text = _CAMEL.sub(" ", _PLACEHOLDER.sub(" ", text))
    return [w for w in (m.lower() for m in _WORD.findall(text)) if w not in _STOP]


def cluster_templates(
    embeddings: np.ndarray,
    texts: list[str],
    *,
    min_cluster_size: int = 2,
    min_samples: int | None = None,
    min_similarity: float = 0.5,
    attach_similarity: float = 0.75,
) -> TemplateClusters:
    """Cluster template embeddings with HDBSCAN (cosine) and label every cluster.

    Args:
        embeddings: ``(n, d)`` template embeddings (``TemplateEmbedder.embed``).
        texts: the ``n`` template texts, in the same order (for labels).
        min_cluster_size: smallest group HDBSCAN calls a cluster (>= 2).
        min_samples: HDBSCAN's density parameter; default ``min_cluster_size``.
        min_similarity: cosine similarity a member needs to at least one other member.
        attach_similarity: cosine similarity at which a noise template joins the cluster
            of its most similar clustered template.

    Returns:
        ``TemplateClusters``: HDBSCAN clusters keep ids ``0..k-1``; each noise template
        gets its own id from ``k`` on, in input order.

    Example:
        ```python
        from tasks.incidents.clustering import cluster_templates
        from tasks.incidents.embeddings import TemplateEmbedder

        texts = ["connection refused to db <*>", "could not connect to database at <*>",
                 "user <*> logged in"]
        result = cluster_templates(TemplateEmbedder().embed(texts), texts)
        result.labels  # array([0, 0, 1]): the paraphrases share cluster 0
        result.clusters[0].label  # e.g. "connect / database / db"
        ```
    """
    vectors = np.asarray(embeddings, dtype=np.float64)
    if vectors.ndim != 2:
        raise ValueError(f"embeddings must be 2-D (n, d), got shape {vectors.shape}")
    if len(texts) != len(vectors):
        raise ValueError(f"texts has {len(texts)} items for {len(vectors)} embeddings")
    if min_cluster_size < 2:
        raise ValueError(f"min_cluster_size must be >= 2, got {min_cluster_size}")
    if min_samples is not None and min_samples < 1:
        raise ValueError(f"min_samples must be >= 1, got {min_samples}")
    if not -1.0 <= min_similarity <= 1.0:
        raise ValueError(f"min_similarity must be in [-1, 1], got {min_similarity}")
    n = len(vectors)
    if n == 0:
        empty = np.zeros(0, dtype=np.int64)
        return TemplateClusters(labels=empty, raw_labels=empty.copy(), clusters={})
    raw = np.full(n, -1)
    if n >= max(min_cluster_size, 2):
        for single in (False, True):  # HDBSCAN never selects its root cluster unless told
            raw = HDBSCAN(
                min_cluster_size=min_cluster_size,
                min_samples=min_samples,
                metric="cosine",
                algorithm="brute",
                allow_single_cluster=single,
                copy=True,
            ).fit_predict(vectors)
            if (raw >= 0).any():
                break
    raw = _cohesive(vectors, np.asarray(raw, dtype=np.int64), min_cluster_size, min_similarity)
    raw = _attach(vectors, raw, attach_similarity)
    labels = raw.copy()
    noise = np.flatnonzero(raw < 0)
    first_singleton = int(raw.max()) + 1 if (raw >= 0).any() else 0
    labels[noise] = np.arange(first_singleton, first_singleton + len(noise))
    return TemplateClusters(
        labels=labels, raw_labels=raw, clusters=_describe(vectors, texts, labels, raw < 0)
    )


def _cohesive(vectors: np.ndarray, raw: np.ndarray, min_size: int, min_sim: float) -> np.ndarray:
    """HDBSCAN labels without members unlike every other member; ids renumbered 0..k-1."""
    unit = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    raw = raw.copy()
    changed = True
    while changed:
        changed = False
        for cid in np.unique(raw[raw >= 0]):
            members = np.flatnonzero(raw == cid)
            sims = unit[members] @ unit[members].T
            np.fill_diagonal(sims, -np.inf)
            loose = members[sims.max(axis=1) < min_sim] if len(members) > 1 else members
            if len(loose):
                raw[loose] = -1
                changed = True
            if 0 < (raw == cid).sum() < min_size:
                raw[raw == cid] = -1
                changed = True
    kept = np.unique(raw[raw >= 0])
    return np.where(raw >= 0, np.searchsorted(kept, raw), -1)


def _attach(vectors: np.ndarray, raw: np.ndarray, min_sim: float) -> np.ndarray:
    """Noise points join the cluster of their most similar clustered point, when close."""
    noise, clustered = np.flatnonzero(raw < 0), np.flatnonzero(raw >= 0)
    if not len(noise) or not len(clustered):
        return raw
    unit = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    sims = unit[noise] @ unit[clustered].T
    best = sims.argmax(axis=1)
    close = sims[np.arange(len(noise)), best] >= min_sim
    out = raw.copy()
    out[noise[close]] = raw[clustered[best[close]]]
    return out


def _describe(
    vectors: np.ndarray, texts: list[str], labels: np.ndarray, noise: np.ndarray
) -> dict[int, Cluster]:
    ids = np.unique(labels)
    row = np.searchsorted(ids, labels)
    terms = _ctfidf_terms(texts, row, len(ids))
    unit = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    out: dict[int, Cluster] = {}
    for r, cid in enumerate(ids):
        members = np.flatnonzero(row == r)
        centroid = unit[members].mean(axis=0)
        best = members[int(np.argmax(unit[members] @ centroid))]
        top = terms[r]
        label = " / ".join(top) if top else _shorten(texts[best])
        out[int(cid)] = Cluster(
            id=int(cid),
            label=label,
            terms=top,
            representative=texts[best],
            members=tuple(int(m) for m in members),
            noise=bool(noise[members[0]]),
        )
    return out


def _ctfidf_terms(texts: list[str], row: np.ndarray, n_clusters: int) -> list[tuple[str, ...]]:
    """Top ``LABEL_TERMS`` c-TF-IDF words of each cluster row (ties broken alphabetically)."""
    vectorizer = CountVectorizer(analyzer=words)
    try:
        counts = vectorizer.fit_transform(texts)  # templates x words
    except ValueError:  # no words at all (only placeholders / numbers)
        return [() for _ in range(n_clusters)]
    vocab = vectorizer.get_feature_names_out()
    member = sparse.csr_matrix(
        (np.ones(len(row)), (row, np.arange(len(row)))), shape=(n_clusters, len(row))
    )
    per_cluster = (member @ counts).toarray().astype(np.float64)  # clusters x words
    sizes = per_cluster.sum(axis=1, keepdims=True)
    tf = per_cluster / np.maximum(sizes, 1.0)
    freq = per_cluster.sum(axis=0)
    avg_words = float(sizes.mean()) or 1.0
    idf = np.log1p(avg_words / np.maximum(freq, 1.0))
    scores = tf * idf
    order = np.lexsort((np.broadcast_to(vocab, scores.shape), -scores), axis=1)
    out: list[tuple[str, ...]] = []
    for r in range(n_clusters):
        picks = [i for i in order[r, :LABEL_TERMS] if scores[r, i] > 0]
        out.append(tuple(str(vocab[i]) for i in picks))
    return out


def _shorten(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def clustering_quality(embeddings: np.ndarray, labels: np.ndarray) -> dict[str, float | None]:
    """Silhouette (cosine) and Davies-Bouldin of a clustering; noise (-1) is left out.

    Args:
        embeddings: ``(n, d)`` vectors that were clustered.
        labels: cluster of each vector; pass ``TemplateClusters.raw_labels`` to measure
            HDBSCAN's clusters (singletons made from noise would each score 0).

    Returns:
        ``{"silhouette": s, "davies_bouldin": db, "clusters": k, "noise": m}``.
        ``silhouette`` (-1..1, higher is better) and ``davies_bouldin`` (>= 0, lower is
        better; Euclidean, i.e. chordal distance on unit vectors) are None when fewer
        than 2 clusters, or as many clusters as points, remain.

    Example:
        ```python
        from samples.scenarios import generate
        from tasks.incidents.clustering import cluster_templates, clustering_quality
        from tasks.incidents.embeddings import TemplateEmbedder
        from tasks.incidents.pipeline import mine_templates

        templates = list(mine_templates(generate(["bad_rollout"], lines=5000).events)
                         .templates.values())
        vectors = TemplateEmbedder().embed(templates)
        result = cluster_templates(vectors, templates)
        clustering_quality(vectors, result.raw_labels)
        # {'silhouette': 0.41, 'davies_bouldin': 1.2, 'clusters': 17, 'noise': 9}
        ```
    """
    vectors = np.asarray(embeddings, dtype=np.float64)
    labels = np.asarray(labels)
    if vectors.ndim != 2 or len(vectors) != len(labels):
        raise ValueError(
            f"embeddings {vectors.shape} and labels ({len(labels)}) must have one row per label"
        )
    keep = labels >= 0
    kept, kept_labels = vectors[keep], labels[keep]
    k = len(np.unique(kept_labels))
    result: dict[str, float | None] = {
        "silhouette": None,
        "davies_bouldin": None,
        "clusters": k,
        "noise": int((~keep).sum()),
    }
    if 2 <= k < len(kept_labels):
        result["silhouette"] = float(silhouette_score(kept, kept_labels, metric="cosine"))
        result["davies_bouldin"] = float(davies_bouldin_score(kept, kept_labels))
    return result
