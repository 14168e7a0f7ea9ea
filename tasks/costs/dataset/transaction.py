"""One replace transaction of the cost dataset: new rows are staged into Parquet files
per (partition, source), merged with the old rows they keep, published, and committed by
one manifest swap; on any failure nothing a reader sees changes.

Example:
    ```python
    from samples.focus_exports import bundled_export_paths
    from tasks.costs.dataset import CostDataset
    from tasks.costs.normalize import iter_normalized

    with CostDataset("costs").replacing() as tx:  # a ReplaceTransaction
        for batch in iter_normalized(bundled_export_paths()[0]):
            tx.write(batch.table)
    print(tx.summary)
    ```
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import suppress
from datetime import date, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from pydantic import BaseModel, Field

from tasks.common.retry import task_logger
from tasks.costs.dataset.manifest import Entry, Manifest
from tasks.costs.dataset.rows import (
    check_day,
    check_source_id,
    conform_table,
    day_start_or_none,
    safe_name,
    split_by_partition,
    window_filter,
)
from tasks.costs.dataset.stores import Store, collect_garbage
from tasks.costs.focus_schema import SCHEMA, SOURCE_COLUMN

ROW_GROUP_ROWS = 128 * 1024
READ_BATCH_ROWS = 64 * 1024


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


class StagedFile:
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
        store: Store,
        sources: frozenset[str] | None,
        start: date | None,
        end: date | None,
    ):
        self._store, self._sources = store, sources
        self._start, self._end = day_start_or_none(start), day_start_or_none(end)
        self._windowed = start is not None or end is not None
        self._baseline = store.read_manifest().generation
        self._staging = store.staging()
        self._files: dict[tuple[str, str], StagedFile] = {}
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
            outside = table.filter(window_filter(self._start, self._end, inside=False))
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
        self._watermarks[check_source_id(source_id)] = check_day(day, "day")

    def _new_file(self, key: tuple[str, str]) -> StagedFile:
        partition, source = key
        name = f"{safe_name(source)}-{uuid.uuid4().hex}.parquet"
        return StagedFile(self._staging.path / partition / name)

    def _affected(self, manifest: Manifest) -> list[tuple[str, str]]:
        keys = set(self._files)
        if self._sources is not None:
            keys |= {
                k
                for k, e in manifest.files.items()
                if k[1] in self._sources and e.overlaps(self._start, self._end)
            }
        return sorted(keys)

    def _merge(self, old: Entry, new: StagedFile | None) -> tuple[StagedFile, int]:
        """Old rows outside the window plus the new rows, in a new staged file."""
        merged = self._new_file((old.partition, old.source))
        keep = window_filter(self._start, self._end, inside=False)
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
                new.files[key] = Entry(*key, rel, final.rows, final.min_start, final.max_start)
                summary.files_written += 1
            new.watermarks.update({s: d.isoformat() for s, d in self._watermarks.items()})
            store.swap(new, expected=manifest.generation)  # the commit point
            self._published.clear()
            summary.partitions = sorted(set(summary.partitions))
            summary.sources = sorted(set(summary.sources))
            summary.manifest_version = new.version
            try:
                summary.files_deleted = collect_garbage(store, new, superseded)
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
