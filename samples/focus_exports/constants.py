"""What the bundled sample exports cover and what they plant.

Example:
    ```python
    from samples.focus_exports.constants import AWS_RUNAWAY_DAYS, SAMPLE_END, SAMPLE_START

    print(SAMPLE_START, SAMPLE_END, AWS_RUNAWAY_DAYS)
    ```
"""

from __future__ import annotations

from datetime import date

PROVIDERS = ("aws", "azure", "gcp")
SAMPLE_START = date(2026, 10, 1)
SAMPLE_END = date(2026, 11, 20)  # inclusive
SAMPLE_FILES = {
    "aws": "aws_focus_1_0.csv.gz",
    "azure": "azure_focuscost_1_0r2.csv",
    "gcp": "gcp_focus_export.parquet",
}
METADATA_KEY = b"opsflow.planted"

# Planted signals (the analysis' tests look for them).
AWS_RUNAWAY_DAYS = (date(2026, 11, 12), date(2026, 11, 13))
GCP_BIGQUERY_SPIKE_DAY = date(2026, 11, 5)
