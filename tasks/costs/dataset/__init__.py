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

Where things are: ``cost_dataset`` (the ``CostDataset`` API), ``transaction`` (a replace
transaction), ``manifest`` (the manifest), ``stores`` (local folder or object store,
garbage collection), ``rows`` (schema check, partitions, windows).

Example:
    ```python
    from samples.focus_exports import bundled_export_paths
    from tasks.costs.dataset import CostDataset
    from tasks.costs.normalize import normalize_file

    ds = CostDataset("costs")
    summary = ds.replace(normalize_file(bundled_export_paths()[0]).table)
    print(summary.rows_written, [p.partition for p in ds.partitions()])
    ```
"""

from tasks.costs.dataset.cost_dataset import CostDataset, PartitionInfo
from tasks.costs.dataset.rows import conform_table
from tasks.costs.dataset.stores import ConcurrentWriteError
from tasks.costs.dataset.transaction import ReplaceTransaction, WriteSummary

__all__ = [
    "ConcurrentWriteError",
    "CostDataset",
    "PartitionInfo",
    "ReplaceTransaction",
    "WriteSummary",
    "conform_table",
]
