"""Deterministic, realistic FOCUS cost exports for AWS, Azure and GCP.

Every flow has to do its real job without a cloud account, so opsflow ships sample
exports (``samples/data/focus_exports/``) made by this module. Each uses its cloud's own
export column set: AWS Data Exports "FOCUS 1.0 with AWS columns" (gzip CSV), Azure
Cost Management ``FocusCost`` 1.0r2 (CSV) and the Google Cloud FOCUS export (Parquet).

The data is daily and plants what the analysis must find: a runaway autoscaling group
(AWS sub-account #2, EC2 in us-east-1, ~4x on 2026-11-12 and 2026-11-13), a BigQuery
spike (~6x on 2026-11-05), a steady on-demand EC2 baseline (worth a Savings Plan),
weekday/weekend seasonality and noise. With ``messy=True`` it also plants what the
normalizer must cope with: rows it has to quarantine, literal ``NULL`` strings, padded
numbers, odd casing, mixed timestamp styles, tag keys with stray whitespace and broken
tag JSON. What was planted is recorded in the table's schema metadata
(:func:`planted`), so tests compare against the generator rather than magic numbers.

Where things are: ``constants`` (sample period, planted days), ``columns`` (each cloud's
column set), ``lines`` (a charge line), ``aws``/``azure``/``gcp`` (each cloud's charge
lines, from the tables in ``samples/data/focus_tables/``), ``grid`` (lines x days),
``render`` (each cloud's text and types), ``mess`` (the planted mess) and ``generate``
(the public functions). ``python -m samples.focus_exports`` rewrites the bundled files.

Example:
    ```python
    from samples.focus_exports import SAMPLE_END, SAMPLE_START, generate_export, planted

    table = generate_export("aws", SAMPLE_START, SAMPLE_END)
    print(table.num_rows, planted(table)["billed_total"])
    ```
"""

from samples.focus_exports.columns import AWS_COLUMNS, AZURE_COLUMNS, GCP_COLUMNS
from samples.focus_exports.constants import (
    AWS_RUNAWAY_DAYS,
    GCP_BIGQUERY_SPIKE_DAY,
    METADATA_KEY,
    PROVIDERS,
    SAMPLE_END,
    SAMPLE_FILES,
    SAMPLE_START,
)
from samples.focus_exports.generate import (
    bundled_export_paths,
    generate_export,
    planted,
    write_bundled_samples,
    write_export,
)

__all__ = [
    "AWS_COLUMNS",
    "AWS_RUNAWAY_DAYS",
    "AZURE_COLUMNS",
    "GCP_BIGQUERY_SPIKE_DAY",
    "GCP_COLUMNS",
    "METADATA_KEY",
    "PROVIDERS",
    "SAMPLE_END",
    "SAMPLE_FILES",
    "SAMPLE_START",
    "bundled_export_paths",
    "generate_export",
    "planted",
    "write_bundled_samples",
    "write_export",
]
