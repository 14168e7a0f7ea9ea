"""GCP daily costs from the Cloud Billing export in BigQuery, normalized to FOCUS 1.2.

Reads the standard (``gcp_billing_export_v1_*``) or the detailed, resource-level
(``gcp_billing_export_resource_v1_*``) usage cost table with one parameterized query
that sums cost, credits and usage per day, project, service, SKU, region, cost type
and label set (and resource, for the detailed table).

Credits (sustained/committed use discounts, free tier, promotions) are separate FOCUS
rows with ``ChargeCategory`` "Credit" and a negative cost, beside the usage they
reduce. So, as FOCUS defines them, summing ``BilledCost`` gives the invoiced amount
(cost + credits), and so does ``EffectiveCost``; the usage rows keep the gross cost,
which is what a rate or commitment analysis needs. The export's ``cost`` is already at
negotiated prices and the list price is not in every export version, so ListCost and
ContractedCost repeat BilledCost (as ``tasks.costs.focus_schema`` asks of such sources).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from datetime import date, datetime, timedelta
from typing import Any, Literal

import pyarrow as pa
from prefect_gcp import GcpCredentials

from tasks.clouds.gcp import bigquery_client
from tasks.common.rate_limits import throttle
from tasks.common.retry import cloud_api_task, task_logger
from tasks.costs.focus_schema import SCHEMA, SOURCE_COLUMN, day_start, month_bounds

ExportKind = Literal["auto", "standard", "detailed"]
DETAILED_PREFIX = "gcp_billing_export_resource_v1_"
# project.dataset.table; the table name is inlined in the SQL, so nothing that could
# end the backtick-quoted identifier (backtick, backslash, whitespace) is allowed.
TABLE_NAME = re.compile(
    r"^(?P<project>[a-z][a-z0-9-]{4,28}[a-z0-9])\.(?P<dataset>[A-Za-z0-9_]{1,1024})"
    r"\.(?P<table>[\w-]{1,1024})$"
)
PROJECT_ID = re.compile(r"^[a-z][a-z0-9-]{4,28}[a-z0-9]$")
REQUEST_TIMEOUT = 60.0  # seconds per HTTP call (jobs.query waits server-side up to this)

COST_SQL = """
SELECT
  DATE(usage_start_time) AS usage_date,
  billing_account_id,
  project.id AS project_id,
  ANY_VALUE(project.name) AS project_name,
  service.id AS service_id,
  service.description AS service_name,
  sku.id AS sku_id,
  sku.description AS sku_description,
  location.region AS region,
  invoice.month AS invoice_month,
  cost_type,
  currency,
  TO_JSON_STRING(labels) AS labels_json,
  {resource_id} AS resource_id,
  {resource_name} AS resource_name,
  SUM(cost) AS cost,
  SUM(IFNULL((SELECT SUM(c.amount) FROM UNNEST(credits) AS c), 0)) AS credits,
  SUM(usage.amount) AS usage_amount,
  usage.unit AS usage_unit
FROM `{table}`
WHERE usage_start_time >= TIMESTAMP(@start_date)
  AND usage_start_time < TIMESTAMP(@end_date)
GROUP BY usage_date, billing_account_id, project_id, service_id, service_name, sku_id,
  sku_description, region, invoice_month, cost_type, currency, labels_json, resource_id,
  resource_name, usage_unit
ORDER BY usage_date, project_id, service_name, sku_id
"""

COST_TYPES = {"regular": "Usage", "tax": "Tax", "adjustment": "Adjustment"}
# Cloud Billing service description -> FOCUS ServiceCategory; anything else is "Other".
SERVICE_CATEGORIES: dict[str, str] = {
    "Compute Engine": "Compute",
    "Kubernetes Engine": "Compute",
    "Cloud Run": "Compute",
    "Cloud Run Functions": "Compute",
    "Cloud Functions": "Compute",
    "App Engine": "Compute",
    "Batch": "Compute",
    "Cloud Storage": "Storage",
    "Filestore": "Storage",
    "Backup and DR Service": "Storage",
    "BigQuery": "Analytics",
    "BigQuery Storage API": "Analytics",
    "Dataflow": "Analytics",
    "Dataproc": "Analytics",
    "Cloud Composer": "Analytics",
    "Cloud SQL": "Databases",
    "Cloud Spanner": "Databases",
    "Cloud Bigtable": "Databases",
    "Firestore": "Databases",
    "Cloud Memorystore for Redis": "Databases",
    "AlloyDB": "Databases",
    "Networking": "Networking",
    "Cloud DNS": "Networking",
    "Cloud CDN": "Networking",
    "Cloud Load Balancing": "Networking",
    "Cloud NAT": "Networking",
    "Vertex AI": "AI and Machine Learning",
    "Gemini API": "AI and Machine Learning",
    "Cloud Vision API": "AI and Machine Learning",
    "Cloud Speech API": "AI and Machine Learning",
    "Cloud Natural Language API": "AI and Machine Learning",
    "Cloud Logging": "Management and Governance",
    "Cloud Monitoring": "Management and Governance",
    "Stackdriver Logging": "Management and Governance",
    "Stackdriver Monitoring": "Management and Governance",
    "Cloud Pub/Sub": "Integration",
    "Cloud Scheduler": "Integration",
    "Cloud Tasks": "Integration",
    "Secret Manager": "Security",
    "Cloud Key Management Service (KMS)": "Security",
    "Cloud Armor": "Security",
    "Security Command Center": "Security",
    "Identity Platform": "Identity",
    "Artifact Registry": "Developer Tools",
    "Cloud Build": "Developer Tools",
    "Container Registry Vulnerability Scanning": "Developer Tools",
}


def parse_table(table: str) -> tuple[str, str, str]:
    """Check a BigQuery table reference and return ``(project, dataset, table)``.

    Raises:
        ValueError: naming ``table`` and the expected ``project.dataset.table`` form.
    """
    match = TABLE_NAME.match(table or "")
    if not match:
        raise ValueError(
            f"table: {table!r} is not 'project.dataset.table' (project id: 6-30 lower-case "
            "letters, digits or hyphens; dataset: letters, digits, underscores; table: "
            "letters, digits, underscores, hyphens)"
        )
    return match.group("project"), match.group("dataset"), match.group("table")


def is_detailed(table: str, export: ExportKind = "auto") -> bool:
    """Whether ``table`` is the detailed (resource-level) export."""
    if export == "auto":
        return parse_table(table)[2].startswith(DETAILED_PREFIX)
    return export == "detailed"


def cost_query(table: str, export: ExportKind = "auto") -> str:
    """The SQL summing one billing export table per day and group (dates are parameters).

    Args:
        table: ``project.dataset.table``, validated here.
        export: ``standard``, ``detailed`` or ``auto`` (from the table name).

    Returns:
        SQL with ``@start_date`` and ``@end_date`` (DATE) parameters, ``[start, end)``.
    """
    parse_table(table)
    detailed = is_detailed(table, export)
    return COST_SQL.format(
        table=table,
        resource_id="resource.global_name" if detailed else "CAST(NULL AS STRING)",
        resource_name="resource.name" if detailed else "CAST(NULL AS STRING)",
    ).strip()


def _billing_month(invoice_month: Any, day: date) -> date:
    """First day of the invoice month (``"202510"``), else of the usage day's month."""
    text = str(invoice_month or "")
    if re.fullmatch(r"\d{6}", text):
        return date(int(text[:4]), int(text[4:]), 1)
    return day.replace(day=1)


def _labels(labels_json: Any) -> dict[str, str]:
    if not labels_json:
        return {}
    items = json.loads(labels_json) if isinstance(labels_json, str) else labels_json
    return {str(i["key"]): str(i.get("value") or "") for i in items or [] if i.get("key")}


def _day(value: Any) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value)[:10])


def focus_records(row: Mapping[str, Any], source_id: str) -> list[dict[str, Any]]:
    """One query result row as FOCUS 1.2 records: the cost row, plus a credit row.

    Args:
        row: a row of ``cost_query``'s result (column name -> value).
        source_id: ``x_SourceId`` of the records.

    Returns:
        ``[cost record]`` or ``[cost record, credit record]`` when credits are not 0.
    """
    day = _day(row["usage_date"])
    period = _billing_month(row.get("invoice_month"), day)
    currency = str(row.get("currency") or "").strip().upper()
    if not currency:
        raise ValueError(f"billing export row for {day} has no currency")
    service = str(row.get("service_name") or "").strip() or "Unknown"
    cost_type = str(row.get("cost_type") or "regular").lower()
    category = COST_TYPES.get(cost_type, "Adjustment")
    cost = float(row.get("cost") or 0.0)
    region = row.get("region") or None
    period_start, period_end = month_bounds(period)
    common = {
        "BillingAccountId": row.get("billing_account_id") or row.get("project_id"),
        "BillingCurrency": currency,
        "BillingPeriodStart": period_start,
        "BillingPeriodEnd": period_end,
        "ChargePeriodStart": day_start(day),
        "ChargePeriodEnd": day_start(day + timedelta(days=1)),
        "InvoiceIssuerName": "Google Cloud",
        "ProviderName": "Google Cloud",
        "PublisherName": "Google Cloud",
        "RegionId": region,
        "RegionName": region,
        "ResourceId": row.get("resource_id") or None,
        "ResourceName": row.get("resource_name") or None,
        "ServiceCategory": SERVICE_CATEGORIES.get(service, "Other"),
        "ServiceName": service,
        "SkuId": row.get("sku_id") or None,
        "SubAccountId": row.get("project_id") or None,
        "SubAccountName": row.get("project_name") or None,
        "SubAccountType": "Project" if row.get("project_id") else None,
        "Tags": _labels(row.get("labels_json")),
        SOURCE_COLUMN: source_id,
    }
    usage = category == "Usage"
    records = [
        {
            **common,
            "BilledCost": cost,
            "EffectiveCost": cost,
            "ListCost": cost,
            "ContractedCost": cost,
            "ChargeCategory": category,
            "ChargeFrequency": "Usage-Based" if usage else None,
            "ChargeDescription": row.get("sku_description") or None,
            "ConsumedQuantity": float(row["usage_amount"])
            if usage and row.get("usage_amount") is not None
            else None,
            "ConsumedUnit": (row.get("usage_unit") or None) if usage else None,
        }
    ]
    credits = float(row.get("credits") or 0.0)
    if credits:
        records.append(
            {
                **common,
                "BilledCost": credits,
                "EffectiveCost": credits,
                "ListCost": credits,
                "ContractedCost": credits,
                "ChargeCategory": "Credit",
                "ChargeDescription": f"Credits: {row.get('sku_description') or service}",
            }
        )
    return records


def normalize_gcp_costs(rows: Iterable[Mapping[str, Any]], table: str) -> pa.Table:
    """Query result rows -> a FOCUS 1.2 table (``x_SourceId`` ``gcp-billing-export:<table>``)."""
    source_id = f"gcp-billing-export:{table}"
    records = [rec for row in rows for rec in focus_records(row, source_id)]
    return pa.Table.from_pylist(records, schema=SCHEMA)


@cloud_api_task("gcp-billing-export")
def fetch_gcp_costs(
    gcp_credentials: GcpCredentials | None,
    table: str,
    start: date,
    end: date,
    *,
    export: ExportKind = "auto",
    billing_project: str | None = None,
    location: str | None = None,
    page_size: int | None = None,
    timeout_seconds: float = 300.0,
    api_endpoint: str | None = None,
) -> pa.Table:
    """Daily GCP costs for ``[start, end)`` from a billing export table, as FOCUS 1.2.

    Runs one parameterized query (BigQuery ``jobs.query``, then ``getQueryResults``
    pages) with the client's own retries off.

    Args:
        gcp_credentials: prefect-gcp ``GcpCredentials``; ``None`` uses Application Default
            Credentials.
        table: ``project.dataset.gcp_billing_export_v1_XXXXXX_XXXXXX_XXXXXX`` (or the
            ``gcp_billing_export_resource_v1_`` detailed table).
        start: first usage day to collect (UTC).
        end: the day after the last usage day to collect.
        export: ``standard``/``detailed``; ``auto`` decides from the table name.
        billing_project: project the query job runs (and is billed) in; default the
            block's project, else the table's.
        location: the dataset's location (e.g. ``US``, ``EU``); BigQuery infers it if omitted.
        page_size: rows per result page.
        timeout_seconds: longest wait for the query to finish.
        api_endpoint: BigQuery API base URL (for tests or private endpoints).

    Returns:
        A ``pa.Table`` conforming to ``focus_schema.SCHEMA``.

    Example:
        ```python
        from datetime import date
        from prefect import flow
        from prefect_gcp import GcpCredentials
        from tasks.costs.gcp import fetch_gcp_costs

        @flow
        def gcp_costs():
            creds = GcpCredentials.load("BLOCK_NAME")
            table = "my-billing.billing.gcp_billing_export_v1_01A2B3_C4D5E6_F7A8B9"
            return fetch_gcp_costs(creds, table, date(2026, 10, 1), date(2026, 11, 1))
        ```
    """
    from google.cloud import bigquery

    table_project, _dataset, _table = parse_table(table)
    if not isinstance(start, date) or not isinstance(end, date) or start >= end:
        raise ValueError(f"start: {start} must be a day before end ({end})")
    if export not in ("auto", "standard", "detailed"):
        raise ValueError(f"export: {export!r} is not 'auto', 'standard' or 'detailed'")
    if billing_project is not None and not PROJECT_ID.match(billing_project):
        raise ValueError(f"billing_project: {billing_project!r} is not a project id")
    if page_size is not None and page_size < 1:
        raise ValueError(f"page_size: {page_size} must be positive")
    logger = task_logger(__name__)
    gcp_credentials = gcp_credentials or GcpCredentials()
    project = billing_project or gcp_credentials.project or table_project
    client = bigquery_client(gcp_credentials, project, api_endpoint)
    config = bigquery.QueryJobConfig(
        query_parameters=[
            bigquery.ScalarQueryParameter("start_date", "DATE", start),
            bigquery.ScalarQueryParameter("end_date", "DATE", end),
        ]
    )
    throttle("gcp")
    rows = client.query_and_wait(
        cost_query(table, export),
        job_config=config,
        location=location,
        project=project,
        retry=None,
        job_retry=None,
        page_size=page_size,
        api_timeout=REQUEST_TIMEOUT,
        wait_timeout=timeout_seconds,
    )
    result = normalize_gcp_costs((dict(r.items()) for r in rows), table)
    logger.info(
        "GCP billing export %s: %d FOCUS rows for %s to %s",
        table,
        result.num_rows,
        start,
        end - timedelta(days=1),
    )
    return result
