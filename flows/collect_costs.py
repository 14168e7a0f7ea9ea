"""Collect multi-cloud costs into one FOCUS 1.2 dataset and explain them.

Sources (each a retried task, fanned out per provider, account and region):
FOCUS export files (any cloud, CSV / gzip CSV / Parquet, local or remote), AWS Cost
Explorer, Azure Cost Management and the GCP billing export in BigQuery. Every row is
normalized to FOCUS 1.2 and written to a Parquet dataset partitioned by provider and
billing period; re-collecting a period replaces that source's rows for it, so runs are
idempotent. The result explains the dataset: totals, month-to-date with a forecast,
top movers, cost anomalies and commitment recommendations.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.concurrency.sync import concurrency
from prefect.context import FlowRunContext
from pydantic import AfterValidator, BaseModel, Field

from flows.credentials import load_block
from samples.focus_exports import bundled_export_paths
from tasks.common.charts import svg_data_uri
from tasks.common.paths import data_dir, demo_costs_dir, demo_dir, demo_reports_dir, reports_dir
from tasks.common.rate_limits import configure_rate_limits, ensure_limit
from tasks.common.retry import failure_reason, retry_on_transient
from tasks.common.secrets import block_secrets
from tasks.costs.analysis import CostSummary, summarize, window_start
from tasks.costs.aws import aws_cost_slices, fetch_aws_costs
from tasks.costs.azure import fetch_azure_costs
from tasks.costs.dataset import CostDataset
from tasks.costs.exports import local_export
from tasks.costs.gcp import fetch_gcp_costs
from tasks.costs.normalize.pipeline import iter_normalized
from tasks.costs.report import (
    QuarantineCsv,
    cost_chart,
    headline,
    quarantine_file_name,
    recommendation_rows,
    render_markdown,
    top_cost_rows,
    write_report_files,
)
from tasks.inventory.rules import Recommendation, commitment_as_of, recommend_commitments

TOP_COSTS_KEY = "collect-costs-top-costs"
RECOMMENDATIONS_KEY = "collect-costs-recommendations"
SUMMARY_KEY = "collect-costs-summary"
DATASET_LOCK = "opsflow-cost-dataset"  # one writer at a time per data folder
NO_SOURCE = (
    "no cost source configured: set focus_exports, aws, azure or gcp (run parameters, or "
    "[flows.collect-costs.parameters] in opsflow.toml), or samples: true for the bundled "
    "sample exports"
)


# ----------------------------------------------------------------------------- parameters


class AwsCostSource(BaseModel):
    """AWS Cost Explorer for one payer (or member) account."""

    credentials_block: str | None = Field(
        default=None, description="prefect-aws AwsCredentials block; default chain if omitted"
    )
    accounts: list[str] | None = Field(
        default=None, description="Linked account ids; every account Cost Explorer sees if omitted"
    )
    regions: list[str] | None = Field(
        default=None, description="Region codes; every region with costs if omitted"
    )
    tag_key: str | None = Field(default=None, description="Cost allocation tag to group by")


class AzureCostSource(BaseModel):
    """Azure Cost Management for one subscription or resource group."""

    scope: str = Field(description="/subscriptions/<id> or /subscriptions/<id>/resourceGroups/<rg>")
    credentials_block: str | None = Field(
        default=None,
        description="opsflow AzureCredentials block; DefaultAzureCredential if omitted",
    )
    tag_key: str | None = None


class GcpCostSource(BaseModel):
    """A Cloud Billing export table in BigQuery."""

    table: str = Field(description="project.dataset.gcp_billing_export_v1_XXXXXX (or _resource_)")
    credentials_block: str | None = Field(
        default=None, description="prefect-gcp GcpCredentials block; ADC if omitted"
    )


class ExportAccess(BaseModel):
    """How to read ``focus_exports`` that are not local files."""

    storage_block: str | None = Field(
        default=None,
        description="Prefect storage block ('s3-bucket/name', 'gcs-bucket/name', "
        "'azure-blob-storage-container/name'); relative export paths are read from it",
    )
    aws_credentials_block: str | None = Field(default=None, description="for s3:// URLs")
    gcp_credentials_block: str | None = Field(default=None, description="for gs:// URLs")
    azure_credentials_block: str | None = Field(
        default=None, description="AzureBlobStorageCredentials block for az:// URLs"
    )


def _check_currency(value: str) -> str:
    value = value.strip().upper()
    if len(value) != 3 or not value.isalpha():
        raise ValueError(f"{value!r} is not a 3-letter ISO 4217 currency code")
    return value


def _check_rates(value: dict[str, float]) -> dict[str, float]:
    bad = [k for k, v in value.items() if not v > 0]
    if bad:
        raise ValueError(f"rates must be positive (check {', '.join(sorted(bad))})")
    return {k.strip().upper() if len(k.strip()) == 3 else k: v for k, v in value.items()}


# ----------------------------------------------------------------------------- results


class SourceOutcome(BaseModel):
    """What one source contributed to this run."""

    source: str = Field(description="Export location or API source id")
    kind: Literal["focus-export", "aws-ce", "azure-cost", "gcp-billing-export"]
    status: Literal["collected", "failed", "skipped"]
    rows: int = 0
    rows_replaced: int = 0
    quarantined: int = 0
    quarantine_reasons: dict[str, int] = Field(
        default_factory=dict, description="Rejected rows per reason code (bad_number, ...)"
    )
    providers: list[str] = Field(default_factory=list)
    periods: list[str] = Field(default_factory=list, description="Billing periods written")
    window: tuple[date, date] | None = Field(
        default=None, description="Charge days collected, [start, end)"
    )
    reason: str | None = None


class QuarantineReport(BaseModel):
    rows: int = 0
    by_reason: dict[str, int] = Field(default_factory=dict)
    folder: str | None = Field(
        default=None, description="One CSV per export: source row, reason, raw values"
    )


class CostCollection(BaseModel):
    """Result of ``collect_costs``."""

    dataset: str = Field(description="Where the normalized FOCUS 1.2 rows are")
    dataset_rows: int
    sources: list[SourceOutcome]
    partial: bool = Field(description="True when a source failed; `missing` says which and why")
    missing: list[str] = Field(default_factory=list)
    quarantine: QuarantineReport
    summary: CostSummary
    recommendations: list[Recommendation] = Field(description="Largest saving first")
    report_files: list[str] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)


# ----------------------------------------------------------------------------- tasks


@task(
    name="ingest-focus-export",
    retries=2,
    retry_delay_seconds=[2, 10],
    retry_jitter_factor=0.5,
    retry_condition_fn=retry_on_transient,
    cache_policy=NO_CACHE,  # an export can change under the same name: always re-read
    persist_result=False,
)
def ingest_focus_export(
    location: str, dataset: CostDataset, access: dict[str, Any], quarantine_dir: Path
) -> SourceOutcome:
    """Normalize one FOCUS export into the dataset, streaming it batch by batch.

    The rows of each (source, billing period) the export holds replace what the dataset
    had for them, in one transaction: a re-downloaded or restated export never
    duplicates. Rows that cannot be normalized go to a quarantine CSV with the reason.
    """
    logger = get_run_logger()
    reasons: Counter[str] = Counter()
    quarantine_file = quarantine_dir / quarantine_file_name(location)
    with (
        local_export(location, **access) as path,
        dataset.replacing() as tx,
        QuarantineCsv(quarantine_file) as quarantine,
    ):
        for batch in iter_normalized(path):
            tx.write(batch.table)
            quarantine.write(batch.quarantine)
            reasons.update(batch.quarantine_counts())
    summary = tx.summary
    providers = sorted({p.split("/")[0].removeprefix("provider=") for p in summary.partitions})
    logger.info(
        "%s: %d rows into %s (%d replaced), %d quarantined",
        location,
        summary.rows_written,
        ", ".join(summary.partitions),
        summary.rows_replaced,
        sum(reasons.values()),
    )
    return SourceOutcome(
        source=location,
        kind="focus-export",
        status="collected",
        rows=summary.rows_written,
        rows_replaced=summary.rows_replaced,
        quarantined=sum(reasons.values()),
        quarantine_reasons=dict(reasons.most_common()),
        providers=providers,
        periods=sorted({p.split("billing_period=")[-1] for p in summary.partitions}),
    )


@task(name="store-api-costs", cache_policy=NO_CACHE, persist_result=False)
def store_api_costs(
    dataset: CostDataset, table: Any, source: str, kind: str, start: date, end: date
) -> SourceOutcome:
    """Replace one API source's rows for the collected days and advance its watermark."""
    with dataset.replacing(sources=[source], start=start, end=end) as tx:
        tx.write(table)
        tx.set_watermark(source, end - timedelta(days=1))  # moves only if the data lands
    summary = tx.summary
    return SourceOutcome(
        source=source,
        kind=kind,
        status="collected",
        rows=summary.rows_written,
        rows_replaced=summary.rows_replaced,
        providers=sorted({p.split("/")[0].removeprefix("provider=") for p in summary.partitions}),
        periods=sorted({p.split("billing_period=")[-1] for p in summary.partitions}),
        window=(start, end),
    )


# ----------------------------------------------------------------------------- the flow


def _window(
    dataset: CostDataset,
    source: str | None,
    start: date | None,
    end: date | None,
    lookback_days: int,
) -> tuple[date, date]:
    """Days to collect for an API source: explicit, else since its watermark minus look-back."""
    today = datetime.now(UTC).date()
    stop = end or today  # today's costs are still accruing: collected tomorrow
    if start:
        return start, stop
    mark = dataset.watermark(source) if source else None
    if mark is None:  # first run: the month before the last day, and that month so far
        last = stop - timedelta(days=1)
        return (last.replace(day=1) - timedelta(days=1)).replace(day=1), stop
    return min(mark + timedelta(days=1 - lookback_days), stop - timedelta(days=1)), stop


def _check_sources(samples: bool, **given: Any) -> None:
    """Fail before any outside call when there is nothing to collect, or samples are mixed
    with real sources (synthetic rows must never reach a real dataset)."""
    if samples:
        mixed = [name for name, value in given.items() if value]
        if mixed:
            raise ValueError(
                "samples: a sample run collects only the bundled exports into the demo "
                f"dataset; drop {', '.join(mixed)} or samples"
            )
    elif not any(given[k] for k in ("focus_exports", "aws", "azure", "gcp")):
        raise ValueError(NO_SOURCE)


def _open_dataset(dataset_url: str | None, dataset_block: str | None) -> CostDataset:
    if dataset_block:
        return CostDataset.from_block(load_block(dataset_block, "dataset_block"))
    return CostDataset(dataset_url) if dataset_url else CostDataset()


def _api_jobs(aws, azure, gcp, dataset, start, end, lookback_days, secrets):
    """Submit every API slice; yields (source id, kind, window, future)."""
    jobs = []
    for i, src in enumerate(aws):
        creds = load_block(src.credentials_block, f"aws[{i}].credentials_block", kind="aws")
        secrets += block_secrets(creds)
        lo, hi = _window(dataset, None, start, end, lookback_days)
        discovery = aws_cost_slices.submit(creds, lo, hi, src.accounts, src.regions)
        discovery.wait()
        if not discovery.state.is_completed():  # reported like any failed source
            jobs.append((f"aws-ce:{i}", "aws-ce", (lo, hi), discovery))
            continue
        for account, region in discovery.result():
            source = f"aws-ce:{account or 'all'}:{region or 'all'}"
            lo, hi = _window(dataset, source, start, end, lookback_days)
            future = fetch_aws_costs.submit(
                creds, lo, hi, account_id=account, region=region, tag_key=src.tag_key
            )
            jobs.append((source, "aws-ce", (lo, hi), future))
    for i, src in enumerate(azure):
        creds = load_block(src.credentials_block, f"azure[{i}].credentials_block", kind="azure")
        secrets += block_secrets(creds)
        source = f"azure-cost:{src.scope}"
        lo, hi = _window(dataset, source, start, end, lookback_days)
        future = fetch_azure_costs.submit(creds, src.scope, lo, hi, tag_key=src.tag_key)
        jobs.append((source, "azure-cost", (lo, hi), future))
    for i, src in enumerate(gcp):
        creds = load_block(src.credentials_block, f"gcp[{i}].credentials_block", kind="gcp")
        secrets += block_secrets(creds)
        source = f"gcp-billing-export:{src.table}"
        lo, hi = _window(dataset, source, start, end, lookback_days)
        future = fetch_gcp_costs.submit(creds, src.table, lo, hi)
        jobs.append((source, "gcp-billing-export", (lo, hi), future))
    return jobs


@flow(name="collect-costs", persist_result=True, result_serializer="json", log_prints=True)
def collect_costs(
    focus_exports: list[str] | None = None,
    aws: list[AwsCostSource] = [],  # noqa: B006
    azure: list[AzureCostSource] = [],  # noqa: B006
    gcp: list[GcpCostSource] = [],  # noqa: B006
    samples: bool = False,
    start: date | None = None,
    end: date | None = None,
    lookback_days: Annotated[int, Field(ge=0, le=62)] = 3,
    dataset_url: str | None = None,
    dataset_block: str | None = None,
    export_access: ExportAccess = ExportAccess(),  # noqa: B008
    currency: Annotated[str, AfterValidator(_check_currency)] = "USD",
    fx_rates: Annotated[dict[str, float], AfterValidator(_check_rates)] = {},  # noqa: B006
    api_rate_limits: dict[Literal["aws", "azure", "gcp"], Annotated[float, Field(gt=0)]]
    | None = None,
    analysis_days: Annotated[int, Field(ge=7, le=400)] = 62,
    anomaly_k: Annotated[float, Field(gt=0, le=20)] = 4.0,
) -> CostCollection:
    """Collect AWS, Azure and GCP costs into one FOCUS 1.2 dataset and explain them.

    Collects only the sources it is given; with none it fails at once, naming what to
    set. ``samples: true`` collects the bundled sample exports (three clouds, several
    accounts) into the demo dataset instead, so it runs without a cloud account. One
    source that stays down does not stop the others: the result is marked partial and
    names what is missing.

    Args:
        focus_exports: FOCUS export files to collect (local paths, ``https://``,
            ``s3://``, ``gs://``, ``az://`` URLs or paths in ``export_access.storage_block``);
            any mix of clouds, detected from the rows. When given, only these are collected.
        aws: Cost Explorer sources (one per payer account / credentials block).
        azure: Cost Management scopes.
        gcp: BigQuery billing export tables.
        samples: collect the bundled sample exports (synthetic AWS, Azure and GCP
            costs) into the demo dataset ``$OPSFLOW_HOME/demo/costs``, reports in
            ``$OPSFLOW_HOME/demo/reports``; never combined with real sources or
            ``dataset_url`` / ``dataset_block``.
        start: first charge day to collect from the APIs; default: the day after each
            source's last collected day minus ``lookback_days`` (first run: last month).
        end: day after the last charge day to collect; default today.
        lookback_days: days re-collected before the last collected day, because
            providers restate recent costs.
        dataset_url: where the dataset lives (path or fsspec URL); default
            ``$OPSFLOW_HOME/costs``.
        dataset_block: a Prefect storage block ('s3-bucket/finops') to hold the dataset.
        export_access: blocks used to read remote ``focus_exports``.
        currency: reporting currency of the totals.
        fx_rates: units of ``currency`` per unit of each other billing currency; costs
            in a currency without a rate are reported apart, never summed as-is.
        api_rate_limits: requests per second per provider API, shared by all runs
            through Prefect global concurrency limits (``opsflow-api-<provider>``).
        analysis_days: how many days, up to the last day with data, the summary covers.
        anomaly_k: robust z threshold (median + k * MAD) for cost anomalies.

    Returns:
        CostCollection: per-source outcomes, quarantine counts, the cost summary
        (totals, month-to-date and forecast, movers, anomalies) and recommendations.

    Example:
        ```python
        from flows.collect_costs import collect_costs
        result = collect_costs(focus_exports=["/downloads/focus-2026-10.csv.gz"])
        print(result.summary.month_to_date, result.quarantine.rows)
        ```
    """
    logger = get_run_logger()
    if start and end and start >= end:
        raise ValueError(f"start: {start} must be before end ({end})")
    _check_sources(
        samples,
        focus_exports=focus_exports,
        aws=aws,
        azure=azure,
        gcp=gcp,
        dataset_url=dataset_url,
        dataset_block=dataset_block,
    )
    secrets: list[str] = []
    exports = list(focus_exports or [])
    notes: list[str] = []
    if samples:
        dataset = CostDataset(demo_costs_dir())
        exports = [str(p) for p in bundled_export_paths()]
        notes.append(
            "Sample run: collected the bundled sample exports (AWS, Azure, GCP; synthetic "
            "data for October-November 2026) into the demo dataset."
        )
    else:
        dataset = _open_dataset(dataset_url, dataset_block)
    access = _export_access(export_access, secrets)
    ensure_limit(DATASET_LOCK, slots=1)
    if aws or azure or gcp:
        in_force = configure_rate_limits(api_rate_limits)
        notes.append(
            "API rate limits (requests/s): "
            + ", ".join(f"{p} {r:g}" for p, r in sorted(in_force.items()))
        )

    run_id = _run_id()
    quarantine_dir = (demo_dir() if samples else data_dir()) / "quarantine"
    quarantine_dir /= f"collect-costs-{run_id}"
    outcomes: list[SourceOutcome] = []
    with concurrency(DATASET_LOCK, occupy=1, timeout_seconds=3600, strict=True):
        export_futures = [
            (loc, ingest_focus_export.submit(loc, dataset, access, quarantine_dir))
            for loc in exports
        ]
        jobs = _api_jobs(aws, azure, gcp, dataset, start, end, lookback_days, secrets)
        for loc, future in export_futures:
            outcomes.append(_settle(future, loc, "focus-export", None, secrets, logger))
        for source, kind, window, future in jobs:
            fetched = _settle(future, source, kind, window, secrets, logger)
            if fetched.status == "failed":
                outcomes.append(fetched)
                continue
            stored = store_api_costs.submit(dataset, future.result(), source, kind, *window)
            outcomes.append(_settle(stored, source, kind, window, secrets, logger))

    failed = [o for o in outcomes if o.status == "failed"]
    last_day = dataset.last_charge_day()  # from the manifest: no data file is read for it
    table = dataset.read(start=window_start(last_day, analysis_days) if last_day else None)
    summary = summarize(table, currency=currency, fx_rates=fx_rates, anomaly_k=anomaly_k)
    recommendations = sorted(
        recommend_commitments(table, now=commitment_as_of(last_day)),
        key=lambda r: r.estimated_monthly_saving,
        reverse=True,
    )
    quarantine = _quarantine_report(outcomes, quarantine_dir)
    if summary.unconverted:
        notes.append(
            "Not in the totals for lack of an FX rate (set fx_rates): "
            + ", ".join(f"{v:,.2f} {k}" for k, v in summary.unconverted.items())
        )
    result = CostCollection(
        dataset=dataset.display_url,
        dataset_rows=dataset.row_count(),
        sources=outcomes,
        partial=bool(failed),
        missing=[f"{o.source}: {o.reason}" for o in failed],
        quarantine=quarantine,
        summary=summary,
        recommendations=recommendations,
        notes=notes,
    )
    result.report_files = publish_cost_artifacts(
        result, demo_reports_dir() if samples else reports_dir()
    )
    print(headline(result))
    return result


def _export_access(access: ExportAccess, secrets: list[str]) -> dict[str, Any]:
    """Load the blocks named in ``export_access`` (bad names fail before any download)."""
    loaded: dict[str, Any] = {}
    for field, kind, key in (
        ("aws_credentials_block", "aws", "aws_credentials"),
        ("gcp_credentials_block", "gcp", "gcp_credentials"),
        ("azure_credentials_block", "azure-blob", "azure_credentials"),
        ("storage_block", None, "storage_block"),
    ):
        name = getattr(access, field)
        if name:
            loaded[key] = load_block(name, f"export_access.{field}", kind=kind)
            secrets += block_secrets(loaded[key])
    return loaded


def _settle(future, source, kind, window, secrets, logger) -> SourceOutcome:
    """Wait for a source's task; a failure becomes a ``failed`` outcome with its reason."""
    future.wait()
    state = future.state
    if state.is_completed():
        value = future.result()
        if isinstance(value, SourceOutcome):
            return value
        return SourceOutcome(source=source, kind=kind, status="collected", window=window)
    reason = failure_reason(state, secrets)
    logger.warning("%s not collected: %s", source, reason)
    return SourceOutcome(source=source, kind=kind, status="failed", window=window, reason=reason)


def _run_id() -> str:
    ctx = FlowRunContext.get()
    if ctx and ctx.flow_run:
        return str(ctx.flow_run.id)[:8]
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%S")


def _quarantine_report(outcomes: list[SourceOutcome], folder: Path) -> QuarantineReport:
    by_reason: Counter[str] = Counter()
    for o in outcomes:
        by_reason.update(o.quarantine_reasons)
    return QuarantineReport(
        rows=sum(o.quarantined for o in outcomes),
        by_reason=dict(by_reason.most_common()),
        folder=str(folder) if any(folder.glob("*.csv")) else None,
    )


# ----------------------------------------------------------------------------- artifacts


@task(name="publish-cost-artifacts", cache_policy=NO_CACHE, persist_result=False)
def publish_cost_artifacts(result: CostCollection, folder: Path) -> list[str]:
    """Tables of top costs and recommendations, the markdown summary, report files."""
    s = result.summary
    create_table_artifact(
        key=TOP_COSTS_KEY,
        table=top_cost_rows(s),
        description=f"Top accounts and services ({s.currency})",
    )
    create_table_artifact(
        key=RECOMMENDATIONS_KEY,
        table=recommendation_rows(result.recommendations),
        description="Savings recommendations, largest first",
    )
    svg = cost_chart(s)
    create_markdown_artifact(
        key=SUMMARY_KEY, markdown=render_markdown(result, svg_data_uri(svg)), description="Costs"
    )
    return write_report_files(result, folder, svg)
