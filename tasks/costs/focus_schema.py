"""The one cost schema every source normalizes into: FOCUS 1.2 (https://focus.finops.org).

Defined once here and read by the normalizer (``tasks.costs.normalize``), the API collectors
(``tasks.costs.aws``, ``tasks.costs.azure``, ``tasks.costs.gcp``), the dataset
(``tasks.costs.dataset``) and the analysis (``tasks.costs.analysis``). Columns are in spec
order; ``REQUIRED`` are the ones FOCUS 1.2 says must never be null, so a row missing one
of them is quarantined rather than stored. Costs are float64 (as the clouds' own Parquet
exports carry them), timestamps are UTC microseconds and ``Tags`` is a string map.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pyarrow as pa

FOCUS_VERSION = "1.2"

_STR = pa.string()
_NUM = pa.float64()
_TS = pa.timestamp("us", tz="UTC")
_TAGS = pa.map_(pa.string(), pa.string())

# (column, arrow type) in FOCUS 1.2 column order.
COLUMNS: tuple[tuple[str, pa.DataType], ...] = (
    ("AvailabilityZone", _STR),
    ("BilledCost", _NUM),
    ("BillingAccountId", _STR),
    ("BillingAccountName", _STR),
    ("BillingAccountType", _STR),
    ("BillingCurrency", _STR),
    ("BillingPeriodEnd", _TS),
    ("BillingPeriodStart", _TS),
    ("CapacityReservationId", _STR),
    ("CapacityReservationStatus", _STR),
    ("ChargeCategory", _STR),
    ("ChargeClass", _STR),
    ("ChargeDescription", _STR),
    ("ChargeFrequency", _STR),
    ("ChargePeriodEnd", _TS),
    ("ChargePeriodStart", _TS),
    ("CommitmentDiscountCategory", _STR),
    ("CommitmentDiscountId", _STR),
    ("CommitmentDiscountName", _STR),
    ("CommitmentDiscountQuantity", _NUM),
    ("CommitmentDiscountStatus", _STR),
    ("CommitmentDiscountType", _STR),
    ("CommitmentDiscountUnit", _STR),
    ("ConsumedQuantity", _NUM),
    ("ConsumedUnit", _STR),
    ("ContractedCost", _NUM),
    ("ContractedUnitPrice", _NUM),
    ("EffectiveCost", _NUM),
    ("InvoiceId", _STR),
    ("InvoiceIssuerName", _STR),
    ("ListCost", _NUM),
    ("ListUnitPrice", _NUM),
    ("PricingCategory", _STR),
    ("PricingCurrency", _STR),
    ("PricingCurrencyContractedUnitPrice", _NUM),
    ("PricingCurrencyEffectiveCost", _NUM),
    ("PricingCurrencyListUnitPrice", _NUM),
    ("PricingQuantity", _NUM),
    ("PricingUnit", _STR),
    ("ProviderName", _STR),
    ("PublisherName", _STR),
    ("RegionId", _STR),
    ("RegionName", _STR),
    ("ResourceId", _STR),
    ("ResourceName", _STR),
    ("ResourceType", _STR),
    ("ServiceCategory", _STR),
    ("ServiceName", _STR),
    ("ServiceSubcategory", _STR),
    ("SkuId", _STR),
    ("SkuMeter", _STR),
    ("SkuPriceDetails", _STR),  # JSON text
    ("SkuPriceId", _STR),
    ("SubAccountId", _STR),
    ("SubAccountName", _STR),
    ("SubAccountType", _STR),
    ("Tags", _TAGS),
)

# opsflow's own columns (FOCUS reserves the ``x_`` prefix for these).
SOURCE_COLUMN = "x_SourceId"  # which collector produced the row, e.g. "aws-ce:123456789012"
EXTENSION_COLUMNS: tuple[tuple[str, pa.DataType], ...] = ((SOURCE_COLUMN, _STR),)

COLUMN_NAMES: tuple[str, ...] = tuple(name for name, _ in COLUMNS)
COLUMN_TYPES: dict[str, pa.DataType] = dict(COLUMNS + EXTENSION_COLUMNS)
COST_COLUMNS = ("BilledCost", "EffectiveCost", "ListCost", "ContractedCost")
TIMESTAMP_COLUMNS = tuple(n for n, t in COLUMNS if t == _TS)
NUMERIC_COLUMNS = tuple(n for n, t in COLUMNS if t == _NUM)

# FOCUS 1.2 columns that must not be null. Sources without a list or contracted figure
# get them filled: the API collectors copy BilledCost; the export normalizer fills a null
# ListCost from EffectiveCost and a null ContractedCost from BilledCost (tasks.costs.normalize).
REQUIRED: frozenset[str] = frozenset(
    {
        "BilledCost",
        "BillingAccountId",
        "BillingCurrency",
        "BillingPeriodEnd",
        "BillingPeriodStart",
        "ChargeCategory",
        "ChargePeriodEnd",
        "ChargePeriodStart",
        "ContractedCost",
        "EffectiveCost",
        "InvoiceIssuerName",
        "ListCost",
        "ProviderName",
        "PublisherName",
        "ServiceCategory",
        "ServiceName",
    }
)

SCHEMA = pa.schema(
    [pa.field(name, typ, nullable=name not in REQUIRED) for name, typ in COLUMNS]
    + [pa.field(name, typ) for name, typ in EXTENSION_COLUMNS]
)

# Allowed values (FOCUS 1.2). Values are matched case-insensitively and re-cased.
CHARGE_CATEGORIES = ("Usage", "Purchase", "Tax", "Credit", "Adjustment")
CHARGE_CLASSES = ("Correction",)
CHARGE_FREQUENCIES = ("One-Time", "Recurring", "Usage-Based")
PRICING_CATEGORIES = ("Standard", "Dynamic", "Committed", "Other")
COMMITMENT_DISCOUNT_CATEGORIES = ("Spend", "Usage")
COMMITMENT_DISCOUNT_STATUSES = ("Used", "Unused")
SERVICE_CATEGORIES = (
    "AI and Machine Learning",
    "Analytics",
    "Business Applications",
    "Compute",
    "Databases",
    "Developer Tools",
    "Multicloud",
    "Identity",
    "Integration",
    "Internet of Things",
    "Management and Governance",
    "Media",
    "Migration",
    "Mobile",
    "Networking",
    "Security",
    "Storage",
    "Web",
    "Other",
)

# Older FOCUS names (0.5, 1.0-preview, 1.0) and common export spellings -> 1.2 names.
COLUMN_ALIASES: dict[str, str] = {
    "AmortizedCost": "EffectiveCost",
    "ChargeType": "ChargeCategory",
    "ChargeSubcategory": "ChargeClass",
    "UsageQuantity": "ConsumedQuantity",
    "UsageUnit": "ConsumedUnit",
    "Region": "RegionId",
    "ChargePeriodStartDate": "ChargePeriodStart",
    "ChargePeriodEndDate": "ChargePeriodEnd",
    "BillingPeriodStartDate": "BillingPeriodStart",
    "BillingPeriodEndDate": "BillingPeriodEnd",
    "Provider": "ProviderName",
    "Publisher": "PublisherName",
    "InvoiceIssuer": "InvoiceIssuerName",
    "ServiceProviderName": "ProviderName",  # FOCUS 1.3 rename, read back for safety
}

# ProviderName (as the clouds write it) -> dataset partition / result key.
PROVIDER_KEYS: dict[str, str] = {
    "aws": "aws",
    "amazon web services": "aws",
    "amazon": "aws",
    "microsoft": "azure",
    "microsoft azure": "azure",
    "azure": "azure",
    "google": "gcp",
    "google cloud": "gcp",
    "google cloud platform": "gcp",
    "gcp": "gcp",
}


def provider_key(provider_name: str | None) -> str:
    """The short provider key (``aws``/``azure``/``gcp``) for a FOCUS ``ProviderName``.

    Unknown providers keep a lower-cased, dash-joined form of their name, so a fourth
    cloud or a SaaS export still gets its own partition.

    Example:
        ```python
        from tasks.costs.focus_schema import provider_key

        print(provider_key("Microsoft"))  # azure
        ```
    """
    if not provider_name:
        return "unknown"
    name = " ".join(provider_name.split()).lower()
    return PROVIDER_KEYS.get(name, "-".join(name.split()) or "unknown")


def day_start(day: date) -> datetime:
    """Midnight UTC of ``day``: how every collector writes a daily ChargePeriodStart."""
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def month_bounds(day: date) -> tuple[datetime, datetime]:
    """``(BillingPeriodStart, BillingPeriodEnd)`` of the calendar month holding ``day``."""
    first = day.replace(day=1)
    return day_start(first), day_start((first + timedelta(days=32)).replace(day=1))


def empty_table() -> pa.Table:
    """A zero-row table with the normalized schema."""
    return SCHEMA.empty_table()
