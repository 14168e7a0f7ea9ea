"""The Cloud Billing export tables in BigQuery, as Google documents them.

Field names, types and modes of the standard usage cost table
(``gcp_billing_export_v1_<BILLING_ACCOUNT_ID>``) and the detailed one
(``gcp_billing_export_resource_v1_<BILLING_ACCOUNT_ID>``: every standard field plus
``resource`` and ``price``), from Google's "Structure of Standard data export" and
"Structure of Detailed data export" pages (Cloud Billing docs), in the REST API's
``TableSchema`` shape. Struct-typed fields are ``RECORD``; ``labels``, ``system_labels``,
``project.labels``, ``project.ancestors``, ``credits`` and ``tags`` repeat.

``tests.servers.bigquery`` builds real tables from these schemas (DuckDB) and runs the
query it is sent on them, so a column or field the export does not have, or a function
applied to the wrong type, fails as it would on BigQuery.
"""

from __future__ import annotations

from typing import Any


def _f(name: str, type_: str, mode: str = "NULLABLE", fields: list | None = None) -> dict:
    out: dict[str, Any] = {"name": name, "type": type_, "mode": mode}
    if fields is not None:
        out["fields"] = fields
    return out


def _s(name: str) -> dict:
    return _f(name, "STRING")


def _record(name: str, *fields: dict, repeated: bool = False) -> dict:
    return _f(name, "RECORD", "REPEATED" if repeated else "NULLABLE", list(fields))


def _key_value(name: str) -> dict:
    return _record(name, _s("key"), _s("value"), repeated=True)


STANDARD: list[dict] = [
    _s("billing_account_id"),
    _record("service", _s("id"), _s("description")),
    _record("sku", _s("id"), _s("description")),
    _f("usage_start_time", "TIMESTAMP"),
    _f("usage_end_time", "TIMESTAMP"),
    _record(
        "project",
        _s("id"),
        _s("number"),
        _s("name"),
        _key_value("labels"),
        _s("ancestry_numbers"),
        _record("ancestors", _s("resource_name"), _s("display_name"), repeated=True),
    ),
    _key_value("labels"),
    _key_value("system_labels"),
    _record("location", _s("location"), _s("country"), _s("region"), _s("zone")),
    _f("export_time", "TIMESTAMP"),
    _f("cost", "FLOAT"),
    _s("currency"),
    _f("currency_conversion_rate", "FLOAT"),
    _record(
        "usage",
        _f("amount", "FLOAT"),
        _s("unit"),
        _f("amount_in_pricing_units", "FLOAT"),
        _s("pricing_unit"),
    ),
    _record(
        "credits",
        _s("name"),
        _f("amount", "FLOAT"),
        _s("full_name"),
        _s("id"),
        _s("type"),
        repeated=True,
    ),
    _record("invoice", _s("month"), _s("publisher_type")),
    _s("cost_type"),
    _record("adjustment_info", _s("id"), _s("description"), _s("mode"), _s("type")),
    _record(
        "tags", _s("key"), _s("value"), _f("inherited", "BOOLEAN"), _s("namespace"), repeated=True
    ),
    _f("cost_at_list", "FLOAT"),
    _s("transaction_type"),
    _s("seller_name"),
    _record("subscription", _s("instance_id")),
]

DETAILED: list[dict] = [
    *STANDARD,
    _record("resource", _s("name"), _s("global_name")),
    _record(
        "price",
        _f("effective_price", "NUMERIC"),
        _f("tier_start_amount", "NUMERIC"),
        _s("unit"),
        _f("pricing_unit_quantity", "NUMERIC"),
    ),
]


def schema_for(table_name: str) -> list[dict]:
    """The documented schema of a billing export table, from its name."""
    if table_name.startswith("gcp_billing_export_resource_v1_"):
        return DETAILED
    if table_name.startswith("gcp_billing_export_v1_"):
        return STANDARD
    raise ValueError(f"{table_name} is not a billing export table name")
