"""The cost dataset: FOCUS 1.2 rows as Hive-partitioned Parquet, replaced atomically.

Layout, in a local folder (default ``$OPSFLOW_HOME/costs``) or at any fsspec URL::

    _manifest.json                                             the single source of truth
    provider=aws/billing_period=2026-10/<source>-<uuid>.parquet  one live file per
                                                               (partition, source)

A write stages its new files, then replaces the manifest in one step (local: temp file,
fsync, ``os.replace``; object stores: one PUT), then deletes the files it superseded and
any orphan an earlier crash left. Readers only open files the manifest lists, so a crash
at any point leaves the previous data readable and complete, and a retried write never
duplicates rows.

Concurrency: local writers hold an exclusive ``flock`` on ``_lock`` while they read,
merge and swap the manifest, so writers of other sources never lose each other's rows.
Object stores have no such lock: the collect-costs flow serializes writers with a Prefect
global concurrency limit. Within one process, writers of the same dataset (e.g. tasks in
threads) take turns on a process-local lock; a writer refuses (``ConcurrentWriteError``)
when the manifest was changed since its transaction began by anyone else, and re-reads it
right before its swap (a single PUT) to refuse if it changed in between.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import tempfile
import threading
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from urllib.request import url2pathname

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from pydantic import BaseModel, Field

from tasks.common.retry import task_logger
from tasks.costs.focus_schema import REQUIRED, SCHEMA, SOURCE_COLUMN, day_start, provider_key

MANIFEST = "_manifest.json"
LOCK = "_lock"
STAGING = "_staging"
FORMAT = "opsflow-costs/1"
ROW_GROUP_ROWS = 128 * 1024
READ_BATCH_ROWS = 64 * 1024
_DATA_FILE = re.compile(r"^provider=[^/]+/billing_period=[^/]+/[^/]+\.parquet$")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_TS_TYPE = SCHEMA.field("ChargePeriodStart").type


class ConcurrentWriteError(RuntimeError):
    """Another writer replaced the manifest of an object-store dataset meanwhile."""


_CONCURRENT = (
    "the cost dataset's manifest was changed by another writer during this write; nothing "
    "was changed, retry it. Serialize writers of an object-store dataset (the collect-costs "
    "flow uses a Prefect global concurrency limit)."
)


class WriteSummary(BaseModel):
    """What one replace transaction did."""

    rows_written: int = Field(default=0, description="New rows stored")
    rows_replaced: int = Field(default=0, description="Old rows the new ones replaced")
    rows_kept: int = Field(default=0, description="Old rows outside the window, carried over")
    partitions: list[str] = Field(
        default_factory=list, description="'provider=aws/billing_period=2026-10' touched"
    )
    sources: list[str] = Field(default_factory=list, description="Source ids touched")
    files_written: int = 0
    files_deleted: int = Field(default=0, description="Superseded and orphaned files removed")
    manifest_version: int = 0


class PartitionInfo(BaseModel):
    """One ``provider=/billing_period=`` partition as the manifest lists it."""

    partition: str
    provider: str
    billing_period: str
    rows: int
    files: int
    sources: dict[str, int] = Field(description="Source id -> rows")
    min_charge_period_start: datetime | None = None
    max_charge_period_start: datetime | None = None


# ------------------------------------------------------------------------- pure logic


def safe_name(text: str, limit: int = 80) -> str:
    """``text`` reduced to characters safe in a file or partition name."""
    return _UNSAFE.sub("_", text).strip("._-")[:limit] or "unknown"


def conform_table(table: pa.Table | pa.RecordBatch) -> pa.Table:
    """Check ``table`` against the FOCUS 1.2 ``SCHEMA`` and return it in schema order.

    Args:
        table: an arrow table or record batch with exactly the ``SCHEMA`` columns (any
            order) and types.

    Returns:
        The table with ``SCHEMA`` (column order and nullability).

    Raises:
        TypeError: not an arrow table.
        ValueError: a missing, unexpected or mistyped column, or nulls in a column FOCUS
            requires (or in ``x_SourceId``), naming the column.
    """
    if isinstance(table, pa.RecordBatch):
        table = pa.Table.from_batches([table])
    if not isinstance(table, pa.Table):
        raise TypeError(f"table: expected a pyarrow Table, got {type(table).__name__}")
    names = set(table.column_names)
    for f in SCHEMA:
        if f.name not in names:
            raise ValueError(f"table: missing column {f.name!r} ({f.type})")
    extra = [n for n in table.column_names if n not in SCHEMA.names]
    if extra:
        raise ValueError(f"table: unexpected column {extra[0]!r} (not in the FOCUS 1.2 schema)")
    if len(names) != table.num_columns:
        raise ValueError("table: duplicate column names")
    for f in SCHEMA:
        actual = table.schema.field(f.name).type
        if actual != f.type:
            raise ValueError(f"table: column {f.name!r} has type {actual}, expected {f.type}")
        if (f.name in REQUIRED or f.name == SOURCE_COLUMN) and table[f.name].null_count:
            raise ValueError(
                f"table: column {f.name!r} has {table[f.name].null_count} null value(s); "
                "it must always have a value"
            )
    if table.num_rows and pc.any(pc.equal(table[SOURCE_COLUMN], "")).as_py():
        raise ValueError(f"table: column {SOURCE_COLUMN!r} has an empty source id")
    return pa.Table.from_arrays([table[n] for n in SCHEMA.names], schema=SCHEMA)


def split_by_partition(table: pa.Table) -> Iterator[tuple[tuple[str, str], pa.Table]]:
    """Yield ``((partition, source id), rows)`` for each group in a conformed table."""
    if not table.num_rows:
        return
    names = pc.unique(table["ProviderName"]).to_pylist()
    keys = pa.array([f"provider={safe_name(provider_key(n))}" for n in names])
    provider = pc.take(keys, pc.index_in(table["ProviderName"], value_set=pa.array(names)))
    starts = pc.unique(table["BillingPeriodStart"])  # a handful of distinct months
    months = pc.strftime(starts, format="%Y-%m")
    period = pc.take(months, pc.index_in(table["BillingPeriodStart"], value_set=starts))
    part = pc.binary_join_element_wise(provider, period, "/billing_period=")
    key = pc.binary_join_element_wise(part, table[SOURCE_COLUMN], "\x1f")
    for value in pc.unique(key).to_pylist():
        partition, _, source = value.partition("\x1f")
        yield (partition, source), table.filter(pc.equal(key, value))


def _day_start(day: date | None) -> datetime | None:
    return None if day is None else day_start(day)


def _check_day(value: Any, name: str) -> date | None:
    if value is None:
        return None
    if isinstance(value, datetime) or not isinstance(value, date):
        raise TypeError(f"{name}: expected a date (a day), got {type(value).__name__}")
    return value


def _check_window(start: Any, end: Any) -> tuple[date | None, date | None]:
    start, end = _check_day(start, "start"), _check_day(end, "end")
    if start and end and start >= end:
        raise ValueError(f"start: {start} must be before end ({end}); the window is [start, end)")
    return start, end


def _check_names(values: Iterable[str] | None, name: str) -> frozenset[str] | None:
    if values is None:
        return None
    if isinstance(values, str):
        raise TypeError(f"{name}: give a list, not one string")
    out = frozenset(values)
    bad = [v for v in out if not isinstance(v, str) or not v]
    if bad:
        raise ValueError(f"{name}: {bad[0]!r} is not a non-empty string")
    return out


def _window_filter(start: datetime | None, end: datetime | None, inside: bool) -> Any:
    """A dataset expression for ChargePeriodStart in (``inside``) or out of [start, end)."""
    col = pc.field("ChargePeriodStart")
    terms = []
    if start is not None:
        terms.append(col >= pa.scalar(start, _TS_TYPE))
    if end is not None:
        terms.append(col < pa.scalar(end, _TS_TYPE))
    if not terms:
        return None if inside else pc.scalar(False)
    expr = terms[0] if len(terms) == 1 else terms[0] & terms[1]
    return expr if inside else ~expr


# ------------------------------------------------------------------------- manifest


@dataclass
class _Entry:
    """The live file of one (partition, source)."""

    partition: str
    source: str
    path: str  # relative to the dataset root
    rows: int
    min_start: datetime
    max_start: datetime

    def overlaps(self, start: datetime | None, end: datetime | None) -> bool:
        return (start is None or self.max_start >= start) and (end is None or self.min_start < end)

    def outside(self, start: datetime | None, end: datetime | None) -> bool:
        """Whether some of its rows may lie outside [start, end)."""
        return (start is not None and self.min_start < start) or (
            end is not None and self.max_start >= end
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "partition": self.partition,
            "source": self.source,
            "path": self.path,
            "rows": self.rows,
            "min_charge_period_start": self.min_start.isoformat(),
            "max_charge_period_start": self.max_start.isoformat(),
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> _Entry:
        return cls(
            d["partition"],
            d["source"],
            d["path"],
            int(d["rows"]),
            datetime.fromisoformat(d["min_charge_period_start"]),
            datetime.fromisoformat(d["max_charge_period_start"]),
        )


@dataclass
class _Manifest:
    version: int = 0
    generation: str | None = None  # changes on every swap; None before the first write
    files: dict[tuple[str, str], _Entry] = field(default_factory=dict)
    watermarks: dict[str, str] = field(default_factory=dict)

    def to_bytes(self) -> bytes:
        doc = {
            "format": FORMAT,
            "version": self.version,
            "generation": self.generation,
            "updated_at": datetime.now(UTC).isoformat(),
            "files": [self.files[k].to_json() for k in sorted(self.files)],
            "watermarks": dict(sorted(self.watermarks.items())),
        }
        return json.dumps(doc, indent=1).encode()

    @classmethod
    def from_bytes(cls, data: bytes, where: str) -> _Manifest:
        try:
            doc = json.loads(data)
            if doc.get("format") != FORMAT:
                raise ValueError(f"format {doc.get('format')!r}, expected {FORMAT!r}")
            entries = [_Entry.from_json(d) for d in doc["files"]]
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"{where}: unreadable cost dataset manifest ({exc})") from None
        return cls(
            version=int(doc["version"]),
            generation=doc.get("generation"),
            files={(e.partition, e.source): e for e in entries},
            watermarks=dict(doc.get("watermarks") or {}),
        )

    def successor(self) -> _Manifest:
        return _Manifest(
            self.version + 1, uuid.uuid4().hex, dict(self.files), dict(self.watermarks)
        )


# ------------------------------------------------------------------------- storage


class _Staging:
    """A private folder for one transaction's new files."""

    def __init__(self, path: Path, lock_fd: int | None = None):
        self.path, self._lock_fd = path, lock_fd

    def remove(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # releases the flock
            self._lock_fd = None


class _LocalStore:
    """A dataset folder on this machine: flock for writers, os.replace for the manifest."""

    def __init__(self, root: Path):
        self.root = root

    @property
    def arrow_fs(self) -> Any:
        import pyarrow.fs

        return pyarrow.fs.LocalFileSystem()

    def full(self, rel: str) -> str:
        return str(self.root / rel)

    def read_manifest(self) -> _Manifest:
        path = self.root / MANIFEST
        try:
            return _Manifest.from_bytes(path.read_bytes(), str(path))
        except FileNotFoundError:
            return _Manifest()

    def write_manifest(self, manifest: _Manifest) -> None:
        tmp = self.root / f"{MANIFEST}.tmp-{uuid.uuid4().hex}"
        try:
            with tmp.open("wb") as out:
                out.write(manifest.to_bytes())
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, self.root / MANIFEST)
        finally:
            tmp.unlink(missing_ok=True)
        dir_fd = os.open(self.root, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    @contextmanager
    def locked(self) -> Iterator[None]:
        self.root.mkdir(parents=True, exist_ok=True)
        with (self.root / LOCK).open("a+b") as handle:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)

    def staging(self) -> _Staging:
        # created under the dataset lock, so garbage collection never sees it half made
        with self.locked():
            path = self.root / STAGING / uuid.uuid4().hex
            path.mkdir(parents=True)
            fd = os.open(path / ".lock", os.O_CREAT | os.O_RDWR, 0o600)
            fcntl.flock(fd, fcntl.LOCK_EX)
        return _Staging(path, fd)

    def check_since(self, baseline: str | None, current: str | None) -> None:
        """Local writers rebase under the flock: a change since the start is fine."""

    def swap(self, manifest: _Manifest, expected: str | None) -> None:
        self.write_manifest(manifest)

    def publish(self, local: Path, rel: str) -> None:
        target = self.root / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(local, target)

    def delete(self, rel: str) -> None:
        (self.root / rel).unlink(missing_ok=True)

    def open_input(self, rel: str) -> Any:
        return (self.root / rel).open("rb")

    def data_files(self) -> set[str]:
        found = self.root.glob("provider=*/billing_period=*/*.parquet")
        return {p.relative_to(self.root).as_posix() for p in found}

    def collect_extra_garbage(self) -> None:
        """Staging folders of dead transactions and stray manifest temp files."""
        for tmp in self.root.glob(f"{MANIFEST}.tmp-*"):
            tmp.unlink(missing_ok=True)
        staging = self.root / STAGING
        for folder in staging.iterdir() if staging.is_dir() else ():
            try:
                fd = os.open(folder / ".lock", os.O_RDWR)
            except (FileNotFoundError, NotADirectoryError):
                shutil.rmtree(folder, ignore_errors=True)
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:  # a live transaction
                continue
            finally:
                os.close(fd)
            shutil.rmtree(folder, ignore_errors=True)
        for folder in self.root.glob("provider=*/billing_period=*"):
            with suppress(OSError):
                folder.rmdir()  # only when empty


# per dataset URL: the lock writers of this process take turns on, and the manifest
# generations they wrote (changes by them are not "another writer")
_WRITERS: dict[str, tuple[threading.RLock, set[str]]] = {}
_WRITERS_LOCK = threading.Lock()


class _FsspecStore:
    """A dataset in an object store (or any fsspec filesystem): single-PUT manifest swaps."""

    def __init__(self, fs: Any, root: str, url: str):
        self.fs, self.root = fs, root.rstrip("/")
        with _WRITERS_LOCK:
            self._lock, self._ours = _WRITERS.setdefault(url, (threading.RLock(), set()))

    @property
    def arrow_fs(self) -> Any:
        return self.fs

    def full(self, rel: str) -> str:
        return f"{self.root}/{rel}"

    def read_manifest(self) -> _Manifest:
        # every operation starts here: drop fsspec's listing cache, which would not know
        # files other processes wrote (pyarrow and fs.open consult it); a path only clears
        # itself and its parents, so clear it all
        self.fs.invalidate_cache()
        path = self.full(MANIFEST)
        try:
            data = self.fs.cat_file(path)
        except FileNotFoundError:
            return _Manifest()
        return _Manifest.from_bytes(data, path)

    def write_manifest(self, manifest: _Manifest) -> None:
        self.fs.pipe_file(self.full(MANIFEST), manifest.to_bytes())

    def locked(self) -> Any:
        return self._lock

    def check_since(self, baseline: str | None, current: str | None) -> None:
        """Refuse when someone outside this process replaced the manifest since ``baseline``."""
        if current != baseline and current not in self._ours:
            raise ConcurrentWriteError(_CONCURRENT)

    def swap(self, manifest: _Manifest, expected: str | None) -> None:
        """Re-read right before the single PUT; refuse if the manifest moved meanwhile."""
        if self.read_manifest().generation != expected:
            raise ConcurrentWriteError(_CONCURRENT)
        self.write_manifest(manifest)
        self._ours.add(manifest.generation)

    def staging(self) -> _Staging:
        return _Staging(Path(tempfile.mkdtemp(prefix="opsflow-costs-")))

    def publish(self, local: Path, rel: str) -> None:
        self.fs.put_file(str(local), self.full(rel))

    def delete(self, rel: str) -> None:
        with suppress(FileNotFoundError):
            self.fs.rm_file(self.full(rel))

    def open_input(self, rel: str) -> Any:
        return self.fs.open(self.full(rel), "rb")

    def data_files(self) -> set[str]:
        self.fs.invalidate_cache()
        try:
            found = self.fs.find(self.root)
        except FileNotFoundError:
            return set()
        prefix = self.root + "/"
        rels = (p[len(prefix) :] for p in found if p.startswith(prefix))
        return {r for r in rels if _DATA_FILE.match(r)}

    def collect_extra_garbage(self) -> None:
        return None


# ------------------------------------------------------------------------- writing


class _StagedFile:
    """New rows of one (partition, source), streamed into a local Parquet file."""

    def __init__(self, path: Path):
        self.path, self.rows = path, 0
        self.min_start: datetime | None = None
        self.max_start: datetime | None = None
        self._writer: pq.ParquetWriter | None = None

    def write(self, table: pa.Table) -> None:
        if not table.num_rows:
            return
        if self._writer is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._writer = pq.ParquetWriter(self.path, SCHEMA, compression="zstd")
        self._writer.write_table(table, row_group_size=ROW_GROUP_ROWS)
        self.rows += table.num_rows
        lo, hi = pc.min_max(table["ChargePeriodStart"]).values()
        lo, hi = lo.as_py(), hi.as_py()
        self.min_start = lo if self.min_start is None else min(self.min_start, lo)
        self.max_start = hi if self.max_start is None else max(self.max_start, hi)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def batches(self) -> Iterator[pa.RecordBatch]:
        if self.rows:
            yield from pq.ParquetFile(self.path).iter_batches(batch_size=READ_BATCH_ROWS)


class ReplaceTransaction:
    """One replace: ``write`` batches, then commit on a clean exit of ``replacing``."""

    def __init__(
        self,
        store: _LocalStore | _FsspecStore,
        sources: frozenset[str] | None,
        start: date | None,
        end: date | None,
    ):
        self._store, self._sources = store, sources
        self._start, self._end = _day_start(start), _day_start(end)
        self._windowed = start is not None or end is not None
        self._baseline = store.read_manifest().generation
        self._staging = store.staging()
        self._files: dict[tuple[str, str], _StagedFile] = {}
        self._watermarks: dict[str, date] = {}
        self._published: list[str] = []
        self.summary = WriteSummary()

    def write(self, table: pa.Table | pa.RecordBatch) -> None:
        """Stage a batch of FOCUS rows (any mix of sources and partitions).

        Args:
            table: rows conforming to ``tasks.costs.focus_schema.SCHEMA``.

        Raises:
            ValueError: a schema mismatch, a source not in ``sources``, or a
                ChargePeriodStart outside the window, naming the column or value.
        """
        table = conform_table(table)
        if not table.num_rows:
            return
        if self._sources is not None:
            stray = set(pc.unique(table[SOURCE_COLUMN]).to_pylist()) - self._sources
            if stray:
                raise ValueError(
                    f"table: {SOURCE_COLUMN} {sorted(stray)[0]!r} is not one of the sources "
                    "this transaction replaces"
                )
        if self._windowed:
            outside = table.filter(_window_filter(self._start, self._end, inside=False))
            if outside.num_rows:
                first = outside["ChargePeriodStart"][0].as_py().isoformat()
                raise ValueError(
                    f"table: ChargePeriodStart {first} is outside the replace window "
                    f"[{self._start and self._start.date()}, {self._end and self._end.date()})"
                )
        for key, rows in split_by_partition(table):
            staged = self._files.get(key)
            if staged is None:
                staged = self._new_file(key)
                self._files[key] = staged
            staged.write(rows)
        self.summary.rows_written += table.num_rows

    def set_watermark(self, source_id: str, day: date) -> None:
        """Record ``day`` as ``source_id``'s last fully collected day, with this commit."""
        self._watermarks[_check_source_id(source_id)] = _check_day(day, "day")

    def _new_file(self, key: tuple[str, str]) -> _StagedFile:
        partition, source = key
        name = f"{safe_name(source)}-{uuid.uuid4().hex}.parquet"
        return _StagedFile(self._staging.path / partition / name)

    def _affected(self, manifest: _Manifest) -> list[tuple[str, str]]:
        keys = set(self._files)
        if self._sources is not None:
            keys |= {
                k
                for k, e in manifest.files.items()
                if k[1] in self._sources and e.overlaps(self._start, self._end)
            }
        return sorted(keys)

    def _merge(self, old: _Entry, new: _StagedFile | None) -> tuple[_StagedFile, int]:
        """Old rows outside the window plus the new rows, in a new staged file."""
        merged = self._new_file((old.partition, old.source))
        keep = _window_filter(self._start, self._end, inside=False)
        with self._store.open_input(old.path) as handle:
            for batch in pq.ParquetFile(handle).iter_batches(batch_size=READ_BATCH_ROWS):
                merged.write(pa.Table.from_batches([batch]).filter(keep).cast(SCHEMA))
        kept = merged.rows
        for batch in new.batches() if new else ():
            merged.write(pa.Table.from_batches([batch]).cast(SCHEMA))
        merged.close()
        return merged, kept

    def _commit(self) -> None:
        logger = task_logger(__name__)
        for staged in self._files.values():
            staged.close()
        store, summary = self._store, self.summary
        with store.locked():
            manifest = store.read_manifest()
            store.check_since(self._baseline, manifest.generation)
            new = manifest.successor()
            superseded: list[str] = []
            for key in self._affected(manifest):
                old, staged = manifest.files.get(key), self._files.get(key)
                final, kept = staged, 0
                if old is not None and old.outside(self._start, self._end):
                    final, kept = self._merge(old, staged)
                if old is not None:
                    superseded.append(old.path)
                    summary.rows_replaced += old.rows - kept
                summary.rows_kept += kept
                summary.partitions.append(key[0])
                summary.sources.append(key[1])
                if final is None or not final.rows:
                    new.files.pop(key, None)
                    continue
                rel = f"{key[0]}/{final.path.name}"
                store.publish(final.path, rel)
                self._published.append(rel)
                new.files[key] = _Entry(*key, rel, final.rows, final.min_start, final.max_start)
                summary.files_written += 1
            new.watermarks.update({s: d.isoformat() for s, d in self._watermarks.items()})
            store.swap(new, expected=manifest.generation)  # the commit point
            self._published.clear()
            summary.partitions = sorted(set(summary.partitions))
            summary.sources = sorted(set(summary.sources))
            summary.manifest_version = new.version
            try:
                summary.files_deleted = _collect_garbage(store, new, superseded)
            except Exception as exc:  # the write is committed; leftovers go next time
                logger.warning("cost dataset: cleanup after the write failed: %s", exc)
        logger.info(
            "cost dataset: %d rows written, %d replaced, %d kept in %s",
            summary.rows_written,
            summary.rows_replaced,
            summary.rows_kept,
            ", ".join(summary.partitions) or "no partition",
        )

    def _abort(self) -> None:
        for staged in self._files.values():
            with suppress(Exception):
                staged.close()
        for rel in self._published:  # published but never listed: remove now or at next GC
            with suppress(Exception):
                self._store.delete(rel)
        self._published.clear()

    def _finish(self, ok: bool) -> None:
        try:
            if ok:
                self._commit()
        except BaseException:
            ok = False
            raise
        finally:
            if not ok:
                self._abort()
            self._staging.remove()


def _check_source_id(source_id: Any) -> str:
    if not isinstance(source_id, str) or not source_id:
        raise ValueError(f"source_id: {source_id!r} is not a source id (a non-empty string)")
    return source_id


def _collect_garbage(store: _LocalStore | _FsspecStore, live: _Manifest, superseded: list[str]):
    """Delete superseded files and orphans of crashed writes; returns how many."""
    listed = {e.path for e in live.files.values()}
    doomed = {p for p in superseded if p not in listed} | (store.data_files() - listed)
    for rel in sorted(doomed):
        store.delete(rel)
    store.collect_extra_garbage()
    return len(doomed)


# ------------------------------------------------------------------------- the dataset


class CostDataset:
    """The FOCUS 1.2 cost dataset: atomic, idempotent replaces and manifest-driven reads.

    Args:
        url: a local folder (path or ``file://``) or an fsspec URL (``s3://bucket/prefix``,
            ``gs://...``, ``az://container/prefix``); default ``$OPSFLOW_HOME/costs``.
        storage_options: fsspec options for a URL (keys, endpoint, token); they may hold
            secrets and are never shown (``repr`` and ``display_url`` show the URL only).

    Writers of a local dataset may run concurrently (flock). Writers of an object-store
    dataset must be serialized across processes (a Prefect global concurrency limit);
    within a process they take turns, and a foreign change raises ``ConcurrentWriteError``.

    Example:
        ```python
        ds = CostDataset()
        with ds.replacing(sources=["aws-ce:123456789012"], start=day, end=day2) as tx:
            for batch in batches:
                tx.write(batch)
        table = ds.read(providers=["aws"], start=date(2026, 10, 1))
        ```
    """

    def __init__(
        self, url: str | os.PathLike | None = None, storage_options: dict | None = None
    ) -> None:
        self._options = dict(storage_options or {})
        self._store_cache: _LocalStore | _FsspecStore | None = None
        if url is None:
            from tasks.common.paths import data_dir

            url = data_dir() / "costs"
        if isinstance(url, os.PathLike):
            url = os.fspath(url)
        if not isinstance(url, str) or not url.strip():
            raise ValueError("url: give a folder path or an fsspec URL for the cost dataset")
        scheme = urlsplit(url).scheme.lower()
        self._local: Path | None = None
        if scheme == "file":
            self._local = Path(url2pathname(urlsplit(url).path)).absolute()
        elif len(scheme) <= 1:  # a plain path (or a Windows drive letter)
            self._local = Path(url).expanduser().absolute()
        else:
            import fsspec

            try:
                fsspec.get_filesystem_class(scheme)
            except (ValueError, ImportError) as exc:
                raise ValueError(f"url: unsupported storage protocol {scheme!r} ({exc})") from None
        self._url = str(self._local) if self._local else url.rstrip("/")

    @classmethod
    def from_block(cls, block: Any, prefix: str = "costs") -> CostDataset:
        """The dataset inside a Prefect storage block, with that block's credentials.

        Args:
            block: a prefect-aws ``S3Bucket``, prefect-gcp ``GcsBucket`` or prefect-azure
                ``AzureBlobStorageContainer`` (its folder is the parent of ``prefix``).
            prefix: the dataset's folder inside the block's folder.

        Returns:
            A ``CostDataset`` at e.g. ``s3://bucket/folder/costs``.

        Example:
            ```python
            ds = CostDataset.from_block(S3Bucket.load("finops"))
            ```
        """
        from tasks.costs.exports import block_location

        url, options = block_location(block, prefix)
        return cls(url, options)

    # -- identity (never the storage options)

    @property
    def display_url(self) -> str:
        """Where the dataset is, safe to show (no credentials)."""
        return self._url

    def __repr__(self) -> str:
        return f"CostDataset({self._url!r})"

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_store_cache": None}

    def _store(self) -> _LocalStore | _FsspecStore:
        if self._store_cache is None:
            if self._local is not None:
                self._store_cache = _LocalStore(self._local)
            else:
                from tasks.costs.exports import filesystem

                fs, root = filesystem(self._url, self._options)
                self._store_cache = _FsspecStore(fs, root, self._url)
        return self._store_cache

    # -- writing

    @contextmanager
    def replacing(
        self,
        *,
        sources: Iterable[str] | None = None,
        start: date | None = None,
        end: date | None = None,
    ) -> Iterator[ReplaceTransaction]:
        """A transaction whose rows replace old rows of the same sources, atomically.

        For every (partition, source) written, and with ``sources`` for every partition
        already holding one of them: without a window the new rows replace all that
        source's rows there (a re-ingested export); with ``start``/``end`` only old rows
        with ChargePeriodStart in [start, end) are dropped and the rest kept
        (incremental collection with look-back). On an exception nothing changes.

        Args:
            sources: the source ids this write owns (rows of others are rejected).
            start: first day of the replaced window (inclusive), or None.
            end: day after the window (exclusive), or None.

        Returns:
            A context manager yielding a ``ReplaceTransaction``; ``tx.summary`` is a
            ``WriteSummary`` once the block exits.

        Example:
            ```python
            with ds.replacing() as tx:
                for batch in normalized_batches:
                    tx.write(batch)
            print(tx.summary.rows_replaced)
            ```
        """
        start, end = _check_window(start, end)
        tx = ReplaceTransaction(self._store(), _check_names(sources, "sources"), start, end)
        try:
            yield tx
        except BaseException:
            tx._finish(ok=False)
            raise
        tx._finish(ok=True)

    def replace(
        self,
        table: pa.Table,
        *,
        sources: Iterable[str] | None = None,
        start: date | None = None,
        end: date | None = None,
    ) -> WriteSummary:
        """``replacing`` for one table; see there.

        Example:
            ```python
            ds.replace(table, sources=["aws-ce:1"], start=date(2026, 10, 1), end=date(2026, 10, 8))
            ```
        """
        with self.replacing(sources=sources, start=start, end=end) as tx:
            tx.write(table)
        return tx.summary

    # -- reading

    def read(
        self,
        *,
        providers: Iterable[str] | None = None,
        start: date | None = None,
        end: date | None = None,
        columns: list[str] | None = None,
    ) -> pa.Table:
        """Rows of the live files, optionally filtered.

        Args:
            providers: provider keys (``aws``, ``azure``, ``gcp``, ...) or ProviderName
                spellings (``Microsoft``) to keep.
            start: first ChargePeriodStart day (inclusive).
            end: day after the last (exclusive).
            columns: columns to return (default all ``SCHEMA`` columns).

        Returns:
            A table with ``SCHEMA`` (or the chosen columns), no partition columns added;
            an empty one for an empty dataset.

        Example:
            ```python
            october = ds.read(start=date(2026, 10, 1), end=date(2026, 11, 1))
            ```
        """
        import pyarrow.dataset as pads

        start, end = _check_window(start, end)
        names = _check_names(providers, "providers")
        wanted = None if names is None else {safe_name(provider_key(p)) for p in names}
        if columns is not None:
            unknown = [c for c in columns if c not in SCHEMA.names]
            if unknown:
                raise ValueError(f"columns: {unknown[0]!r} is not a FOCUS 1.2 column")
        lo, hi = _day_start(start), _day_start(end)
        store = self._store()
        for attempt in range(3):
            entries = [
                e
                for e in store.read_manifest().files.values()
                if e.overlaps(lo, hi)
                and (wanted is None or e.partition.split("/")[0].split("=", 1)[1] in wanted)
            ]
            if not entries:
                empty = SCHEMA.empty_table()
                return empty.select(columns) if columns is not None else empty
            paths = [store.full(e.path) for e in sorted(entries, key=lambda e: e.path)]
            data = pads.dataset(paths, schema=SCHEMA, format="parquet", filesystem=store.arrow_fs)
            try:
                return data.to_table(columns=columns, filter=_window_filter(lo, hi, inside=True))
            except FileNotFoundError:  # a writer superseded a file meanwhile: re-read
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def partitions(self) -> list[PartitionInfo]:
        """The partitions the manifest lists, with rows per source."""
        grouped: dict[str, list[_Entry]] = {}
        for entry in self._store().read_manifest().files.values():
            grouped.setdefault(entry.partition, []).append(entry)
        out = []
        for partition, entries in sorted(grouped.items()):
            provider, period = (p.split("=", 1)[1] for p in partition.split("/"))
            out.append(
                PartitionInfo(
                    partition=partition,
                    provider=provider,
                    billing_period=period,
                    rows=sum(e.rows for e in entries),
                    files=len(entries),
                    sources={e.source: e.rows for e in sorted(entries, key=lambda e: e.source)},
                    min_charge_period_start=min(e.min_start for e in entries),
                    max_charge_period_start=max(e.max_start for e in entries),
                )
            )
        return out

    def last_charge_day(self) -> date | None:
        """The latest charge day with rows, from the manifest (no data file is opened)."""
        latest = max(
            (e.max_start for e in self._store().read_manifest().files.values()), default=None
        )
        return latest.date() if latest else None

    def row_count(self) -> int:
        """Rows in the dataset, from the manifest (no data file is opened)."""
        return sum(e.rows for e in self._store().read_manifest().files.values())

    # -- incremental state

    def watermark(self, source_id: str) -> date | None:
        """The last charge day ``source_id`` has fully collected, or None."""
        value = self._store().read_manifest().watermarks.get(_check_source_id(source_id))
        return date.fromisoformat(value) if value else None

    def set_watermark(self, source_id: str, day: date) -> None:
        """Record ``day`` as ``source_id``'s last fully collected day (one manifest swap)."""
        source_id, day = _check_source_id(source_id), _check_day(day, "day")
        store = self._store()
        with store.locked():
            manifest = store.read_manifest()
            new = manifest.successor()
            new.watermarks[source_id] = day.isoformat()
            store.swap(new, expected=manifest.generation)
