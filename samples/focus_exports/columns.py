"""The native column sets of each cloud's FOCUS export, and the Parquet types of GCP's.

The names are in ``samples/data/focus_tables/columns.json``.

Example:
    ```python
    from samples.focus_exports.columns import AWS_COLUMNS, AZURE_COLUMNS, GCP_COLUMNS

    print(len(AWS_COLUMNS), len(AZURE_COLUMNS), len(GCP_COLUMNS))
    ```
"""

from __future__ import annotations

import pyarrow as pa

from samples.datafiles import load_json

_DATA = load_json("focus_tables", "columns.json")
_FOCUS_1_0 = tuple(_DATA["focus_1_0"])
# Microsoft and Google add the account-type columns and leave out AvailabilityZone.
_FOCUS_1_0_MS_GOOGLE = tuple(
    sorted({*_FOCUS_1_0, "BillingAccountType", "SubAccountType"} - {"AvailabilityZone"})
)
# AWS Data Exports, "FOCUS 1.0 with AWS columns".
AWS_COLUMNS = (*_FOCUS_1_0, *_DATA["aws_extra"])
# Azure Cost Management FocusCost 1.0r2.
AZURE_COLUMNS = (*_FOCUS_1_0_MS_GOOGLE, *_DATA["azure_extra"])
# Google Cloud FOCUS export (BigQuery table gcp_billing_export_focus_<account>).
GCP_COLUMNS = (*_FOCUS_1_0_MS_GOOGLE, *_DATA["gcp_extra"])

TS = pa.timestamp("us", tz="UTC")
GCP_TYPES = {
    **dict.fromkeys(
        (
            "BilledCost",
            "ConsumedQuantity",
            "ContractedCost",
            "ContractedUnitPrice",
            "EffectiveCost",
            "ListCost",
            "ListUnitPrice",
            "PricingQuantity",
            "x_CurrencyConversionRate",
        ),
        pa.float64(),
    ),
    **dict.fromkeys(
        (
            "BillingPeriodEnd",
            "BillingPeriodStart",
            "ChargePeriodEnd",
            "ChargePeriodStart",
            "x_ExportTime",
        ),
        TS,
    ),
    "Tags": pa.list_(pa.struct([("key", pa.string()), ("value", pa.string())])),
    "x_Credits": pa.list_(
        pa.struct(
            [
                ("name", pa.string()),
                ("amount", pa.float64()),
                ("full_name", pa.string()),
                ("id", pa.string()),
                ("type", pa.string()),
            ]
        )
    ),
    "x_Project": pa.struct([("id", pa.string()), ("number", pa.string()), ("name", pa.string())]),
}
