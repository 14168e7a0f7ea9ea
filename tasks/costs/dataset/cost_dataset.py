"""``CostDataset``: the FOCUS 1.2 cost dataset's API (replace, read, partitions,
watermarks), over a local folder or an fsspec URL.

Example:
    ```python
    from datetime import date

    from samples.focus_exports import bundled_export_paths
    from tasks.costs.dataset import CostDataset
    from tasks.costs.normalize import normalize_file

    ds = CostDataset("costs")
    for path in bundled_export_paths():
        ds.replace(normalize_file(path).table)
    print(ds.row_count(), ds.last_charge_day())
    print(ds.read(providers=["aws"], start=date(2026, 10, 1)).num_rows)
    ```
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import date, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from urllib.request import url2pathname

import pyarrow as pa
from pydantic import BaseModel, Field

from tasks.costs.dataset.manifest import Entry
from tasks.costs.dataset.rows import (
    check_day,
    check_names,
    check_source_id,
    check_window,
    day_start_or_none,
    safe_name,
    window_filter,
)
from tasks.costs.dataset.stores import FsspecStore, LocalStore, Store
from tasks.costs.dataset.transaction import ReplaceTransaction, WriteSummary
from tasks.costs.focus_schema import SCHEMA, provider_key


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
        from datetime import date

        from samples.focus_exports import bundled_export_paths
        from tasks.costs.dataset import CostDataset
        from tasks.costs.normalize import iter_normalized

        ds = CostDataset("costs")  # default: $OPSFLOW_HOME/costs
        with ds.replacing() as tx:
            for batch in iter_normalized(bundled_export_paths()[0]):
                tx.write(batch.table)
        table = ds.read(providers=["aws"], start=date(2026, 10, 1))
        print(tx.summary.rows_written, table.num_rows)
        ```
    """

    def __init__(
        self, url: str | os.PathLike | None = None, storage_options: dict | None = None
    ) -> None:
        self._options = dict(storage_options or {})
        self._store_cache: Store | None = None
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
            from prefect_aws.s3 import S3Bucket

            from tasks.costs.dataset import CostDataset

            ds = CostDataset.from_block(S3Bucket.load("finops"))
            print(ds.display_url, ds.row_count())
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

    def _store(self) -> Store:
        if self._store_cache is None:
            if self._local is not None:
                self._store_cache = LocalStore(self._local)
            else:
                from tasks.costs.exports import filesystem

                fs, root = filesystem(self._url, self._options)
                self._store_cache = FsspecStore(fs, root, self._url)
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
            from samples.focus_exports import bundled_export_paths
            from tasks.costs.dataset import CostDataset
            from tasks.costs.normalize import iter_normalized

            ds = CostDataset("costs")
            with ds.replacing() as tx:  # again: the export's rows replace their old copy
                for batch in iter_normalized(bundled_export_paths()[1]):
                    tx.write(batch.table)
            print(tx.summary.rows_written, tx.summary.rows_replaced)
            ```
        """
        start, end = check_window(start, end)
        tx = ReplaceTransaction(self._store(), check_names(sources, "sources"), start, end)
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
            from datetime import date

            import pyarrow.compute as pc

            from samples.focus_exports import bundled_export_paths
            from tasks.costs.dataset import CostDataset
            from tasks.costs.normalize import normalize_file

            table = normalize_file(bundled_export_paths()[0]).table
            start = table["ChargePeriodStart"]
            week = table.filter(pc.and_(pc.equal(pc.month(start), 10), pc.less(pc.day(start), 8)))
            sources = pc.unique(week["x_SourceId"]).to_pylist()
            summary = CostDataset("costs").replace(
                week, sources=sources, start=date(2026, 10, 1), end=date(2026, 10, 8)
            )
            print(summary.rows_written, summary.rows_kept)
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
            from datetime import date

            from tasks.costs.dataset import CostDataset

            ds = CostDataset("costs")
            october = ds.read(start=date(2026, 10, 1), end=date(2026, 11, 1))
            print(october.num_rows, ds.partitions())
            ```
        """
        import pyarrow.dataset as pads

        start, end = check_window(start, end)
        names = check_names(providers, "providers")
        wanted = None if names is None else {safe_name(provider_key(p)) for p in names}
        if columns is not None:
            unknown = [c for c in columns if c not in SCHEMA.names]
            if unknown:
                raise ValueError(f"columns: {unknown[0]!r} is not a FOCUS 1.2 column")
        lo, hi = day_start_or_none(start), day_start_or_none(end)
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
                return data.to_table(columns=columns, filter=window_filter(lo, hi, inside=True))
            except FileNotFoundError:  # a writer superseded a file meanwhile: re-read
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def partitions(self) -> list[PartitionInfo]:
        """The partitions the manifest lists, with rows per source."""
        grouped: dict[str, list[Entry]] = {}
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
        value = self._store().read_manifest().watermarks.get(check_source_id(source_id))
        return date.fromisoformat(value) if value else None

    def set_watermark(self, source_id: str, day: date) -> None:
        """Record ``day`` as ``source_id``'s last fully collected day (one manifest swap)."""
        source_id, day = check_source_id(source_id), check_day(day, "day")
        store = self._store()
        with store.locked():
            manifest = store.read_manifest()
            new = manifest.successor()
            new.watermarks[source_id] = day.isoformat()
            store.swap(new, expected=manifest.generation)
