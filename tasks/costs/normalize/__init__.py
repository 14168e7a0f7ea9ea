"""Read the clouds' native FOCUS exports and normalize every row into FOCUS 1.2.

AWS Data Exports (FOCUS 1.0/1.2), Azure ``FocusCost`` and the Google Cloud FOCUS export
all claim FOCUS but differ in version, column names, timestamp styles, casing, tag
encoding and null spellings, and real files carry a few broken rows. This package
turns any of them (CSV, gzip CSV or Parquet) into tables with exactly
``tasks.costs.focus_schema.SCHEMA``. A row that cannot be stored faithfully is never dropped
silently and never fails the run: it goes to the batch's ``quarantine`` table with the
reason and its original values.

It is built for volume (a million rows in a few seconds on two cores): the file is
streamed in bounded batches by Arrow's CSV/Parquet readers, every column is converted
with vectorized ``pyarrow.compute`` kernels, and the little Python there is (timestamp
and tag parsing, enum re-casing) runs once per *distinct* value, never per row.

Decisions worth knowing:

- ``NULL``, ``Null``, ``null``, ``None``, ``NONE``, ``none`` and empty or blank text
  (surrounding whitespace ignored) are null everywhere.
- Timestamps without a zone are UTC; dates are midnight UTC.
- ``Tags`` is a JSON object (Azure's brace-less ``"k": "v", ...`` form too), a map or
  a list of ``{key, value}`` records. Keys are trimmed and inner whitespace runs
  collapsed; keys that then collide are merged, the later value winning. Non-string
  values are stringified (JSON text). Tags that cannot be read keep the row, with
  null tags and an ``invalid_tags`` warning: a bad tag must not hide a cost.
- Cost columns (``BilledCost``, ``EffectiveCost``, ``ListCost``, ``ContractedCost``)
  that hold text other than a number quarantine the row; other numeric columns
  become null with a ``bad_number:<column>`` warning.
- Null ``ListCost`` is filled from ``EffectiveCost`` and null ``ContractedCost`` from
  ``BilledCost`` (FOCUS 1.0-preview exports lack both), counted as ``filled:<column>``
  warnings.
- Unknown ``ChargeCategory`` quarantines the row; unknown ``ServiceCategory`` becomes
  ``Other``; unknown values of the other enum columns become null (all warned).
- ``BillingCurrency`` must be a three-letter code (upper-cased); rows keep their own
  currency, nothing is converted.

Where things are:

- ``pipeline``: the entry points, ``normalize`` (one table), ``iter_normalized`` (stream
  a file) and ``normalize_file`` (a small file at once), and ``NormalizedBatch``.
- ``io``: format sniffing, batched CSV / gzip CSV / Parquet reading, the prefetch thread.
- ``convert``: column names and every column's conversion to its FOCUS 1.2 type.
- ``quarantine``: rejected rows, their reasons and reason codes.

Example:
    ```python
    from samples.focus_exports import bundled_export_paths
    from tasks.costs.normalize import normalize_file

    batch = normalize_file(bundled_export_paths()[0])
    print(batch.table.num_rows, batch.quarantine_counts())
    ```
"""

from tasks.costs.normalize.convert import (
    NULL_SPELLINGS,
    parse_tags,
    parse_timestamp,
    resolve_columns,
)
from tasks.costs.normalize.io import (
    DEFAULT_BATCH_ROWS,
    FocusReadError,
    read_export_batches,
    sniff_format,
)
from tasks.costs.normalize.pipeline import (
    NORMALIZE_BATCH_ROWS,
    NormalizedBatch,
    iter_normalized,
    merge_batches,
    normalize,
    normalize_file,
)
from tasks.costs.normalize.quarantine import QUARANTINE_CODES, QUARANTINE_SCHEMA

__all__ = [
    "DEFAULT_BATCH_ROWS",
    "NORMALIZE_BATCH_ROWS",
    "NULL_SPELLINGS",
    "QUARANTINE_CODES",
    "QUARANTINE_SCHEMA",
    "FocusReadError",
    "NormalizedBatch",
    "iter_normalized",
    "merge_batches",
    "normalize",
    "normalize_file",
    "parse_tags",
    "parse_timestamp",
    "read_export_batches",
    "resolve_columns",
    "sniff_format",
]
