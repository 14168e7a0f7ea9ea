"""Resource inventory across clouds and the savings it points at.

``collect-resources`` lists instances, volumes, public addresses and NAT gateways in
every configured AWS region, Azure subscription and GCP project, with 14 days of CPU
and network statistics where the cloud has them, priced from the compute catalog.
``recommend-savings`` runs it as a subflow and turns the inventory (plus the cost
dataset, for commitments) into recommendations ranked by monthly saving.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE
from pydantic import BaseModel, Field

from flows.credentials import load_block
from samples.inventory import SOURCE_NAME, sample_inventory, snapshot_time
from tasks.common.paths import demo_costs_dir
from tasks.common.retry import failure_reason
from tasks.common.secrets import block_secrets
from tasks.costs.dataset import CostDataset
from tasks.inventory.aws import collect_aws_resources
from tasks.inventory.azure import collect_azure_resources
from tasks.inventory.gcp import collect_gcp_resources
from tasks.inventory.model import Resource
from tasks.inventory.rules.commitments import commitment_as_of, recommend_commitments
from tasks.inventory.rules.recommendation import Recommendation
from tasks.inventory.rules.resources import recommend_resources
from tasks.inventory.rules.scores import optimization_scores
from tasks.pricing.resource_prices import price_resources

INVENTORY_KEY = "collect-resources-inventory"
RECOMMENDATIONS_KEY = "recommend-savings-recommendations"
SUMMARY_KEY = "recommend-savings-summary"
COMMITMENT_LOOKBACK_DAYS = 30  # days of on-demand compute spend a commitment is judged on


def _check_sources(flow_name: str, samples: bool, **given: Any) -> None:
    """Fail before any outside call when no source is set, or samples are mixed with real
    sources (a synthetic inventory must never be reported as a real one)."""
    if samples:
        mixed = [name for name, value in given.items() if value]
        if mixed:
            raise ValueError(
                "samples: a sample run uses only the bundled inventory (and the demo cost "
                f"dataset); drop {', '.join(mixed)} or samples"
            )
    elif not any(given[k] for k in ("aws", "azure", "gcp")):
        raise ValueError(
            "no resource source configured: set aws, azure or gcp (run parameters, or "
            f"[flows.{flow_name}.parameters] in opsflow.toml), or samples: true for the "
            "bundled sample inventory"
        )


class AwsResourceSource(BaseModel):
    credentials_block: str | None = Field(
        default=None, description="prefect-aws AwsCredentials block; default chain if omitted"
    )
    regions: list[str] = Field(min_length=1, description="Regions to list, e.g. us-east-1")


class AzureResourceSource(BaseModel):
    subscription_id: str = Field(min_length=1)
    credentials_block: str | None = Field(
        default=None,
        description="opsflow AzureCredentials block; DefaultAzureCredential if omitted",
    )


class GcpResourceSource(BaseModel):
    project: str = Field(min_length=1)
    credentials_block: str | None = Field(
        default=None, description="prefect-gcp GcpCredentials block; ADC if omitted"
    )


class InventorySource(BaseModel):
    source: str
    status: Literal["collected", "failed"]
    resources: int = 0
    reason: str | None = None


class ResourceInventory(BaseModel):
    """Result of ``collect_resources``."""

    collected_at: datetime
    as_of: datetime = Field(
        description="When the resources were in this state: now for a live collection, "
        "the snapshot time for the bundled sample"
    )
    resources: list[Resource]
    sources: list[InventorySource]
    partial: bool
    missing: list[str] = Field(default_factory=list)
    monthly_cost: float = Field(description="Sum of the priced resources' monthly cost (USD)")
    unpriced: int = Field(description="Resources with no known price (not counted above)")
    notes: list[str] = Field(default_factory=list)


class SavingsReport(BaseModel):
    """Result of ``recommend_savings``."""

    resources: int
    monthly_cost: float
    recommendations: list[Recommendation] = Field(description="Largest saving first")
    estimated_monthly_saving: float
    by_kind: dict[str, float] = Field(description="Monthly saving per recommendation kind")
    scores: dict[str, int] = Field(description="Optimization score 0-100 per resource id")
    partial: bool
    missing: list[str] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)


@task(name="price-resources", cache_policy=NO_CACHE, persist_result=False)
def price_inventory(resources: list[Resource]) -> list[Resource]:
    """Hourly and monthly prices from the catalog, in one place for every cloud."""
    return price_resources(resources)


@flow(name="collect-resources", persist_result=True, result_serializer="json")
def collect_resources(
    aws: list[AwsResourceSource] = [],  # noqa: B006
    azure: list[AzureResourceSource] = [],  # noqa: B006
    gcp: list[GcpResourceSource] = [],  # noqa: B006
    samples: bool = False,
    metrics_days: Annotated[int, Field(ge=1, le=63)] = 14,
) -> ResourceInventory:
    """List instances, volumes, addresses and NAT gateways across AWS, Azure and GCP.

    Each region, subscription and project is its own retried task; one that stays down
    makes the result partial (``missing`` says which and why) while the others land.
    With no source it fails at once, naming what to set; ``samples: true`` returns the
    bundled sample inventory instead.

    Args:
        aws: AWS credentials and regions (EC2, EBS, Elastic IPs, NAT gateways, CloudWatch).
        azure: subscriptions (VMs and managed disks).
        gcp: projects (Compute Engine instances and persistent disks).
        samples: use the bundled sample inventory (synthetic; never combined with sources).
        metrics_days: days of CPU/network statistics for running instances (AWS).

    Returns:
        ResourceInventory: the priced resources, per-source status and totals.

    Example:
        ```python
        from flows.savings import collect_resources

        inv = collect_resources(aws=[{"credentials_block": "prod", "regions": ["us-east-1"]}])
        print(len(inv.resources), inv.monthly_cost)
        ```
    """
    logger = get_run_logger()
    _check_sources("collect-resources", samples, aws=aws, azure=azure, gcp=gcp)
    secrets: list[str] = []
    jobs: list[tuple[str, Any]] = []
    notes: list[str] = []
    for i, src in enumerate(aws):
        creds = load_block(src.credentials_block, f"aws[{i}].credentials_block", kind="aws")
        secrets += block_secrets(creds)
        for region in src.regions:
            future = collect_aws_resources.submit(creds, region, metrics_days=metrics_days)
            jobs.append((f"aws:{region}", future))
    for i, src in enumerate(azure):
        creds = load_block(src.credentials_block, f"azure[{i}].credentials_block", kind="azure")
        secrets += block_secrets(creds)
        jobs.append(
            (
                f"azure:{src.subscription_id}",
                collect_azure_resources.submit(creds, src.subscription_id),
            )
        )
    for i, src in enumerate(gcp):
        creds = load_block(src.credentials_block, f"gcp[{i}].credentials_block", kind="gcp")
        secrets += block_secrets(creds)
        jobs.append((f"gcp:{src.project}", collect_gcp_resources.submit(creds, src.project)))

    found: list[Resource] = []
    sources: list[InventorySource] = []
    collected_at = as_of = datetime.now(UTC)
    if samples:
        found = sample_inventory()
        as_of = snapshot_time()
        sources.append(
            InventorySource(source=SOURCE_NAME, status="collected", resources=len(found))
        )
        notes.append("Sample run: the bundled sample inventory was used.")
    for name, future in jobs:
        future.wait()
        if future.state.is_completed():
            got = future.result()
            found += got
            sources.append(InventorySource(source=name, status="collected", resources=len(got)))
            continue
        reason = failure_reason(future.state, secrets)
        logger.warning("%s not collected: %s", name, reason)
        sources.append(InventorySource(source=name, status="failed", reason=reason))
    priced = price_inventory(found)
    failed = [s for s in sources if s.status == "failed"]
    inventory = ResourceInventory(
        collected_at=collected_at,
        as_of=as_of,
        resources=priced,
        sources=sources,
        partial=bool(failed),
        missing=[f"{s.source}: {s.reason}" for s in failed],
        monthly_cost=round(sum(r.monthly_cost or 0 for r in priced), 2),
        unpriced=sum(1 for r in priced if r.monthly_cost is None),
        notes=notes,
    )
    create_table_artifact(
        key=INVENTORY_KEY,
        table=[
            {
                "provider": r.provider,
                "account": r.account,
                "region": r.region,
                "kind": r.kind,
                "type": r.type,
                "id": r.id,
                "state": r.state,
                "monthly_cost": r.monthly_cost,
                "cpu_avg": (
                    r.metrics.get("cpu_percent").average if "cpu_percent" in r.metrics else None
                ),
            }
            for r in priced
        ],
        description="Resource inventory",
    )
    return inventory


def render_markdown(report: SavingsReport, top: int = 15) -> str:
    lines = [
        "# Savings recommendations",
        "",
        f"{report.resources} resources costing about **${report.monthly_cost:,.2f}/month**; "
        f"{len(report.recommendations)} recommendations could save about "
        f"**${report.estimated_monthly_saving:,.2f}/month**.",
        "",
    ]
    if report.partial:
        lines += ["**Partial inventory.** Missing:", ""] + [f"- {m}" for m in report.missing] + [""]
    if report.by_kind:
        lines += ["| kind | monthly saving |", "|---|---:|"]
        lines += [f"| {k} | ${v:,.2f} |" for k, v in report.by_kind.items()] + [""]
    lines += [
        "| # | recommendation | saving/month | risk | confidence | action |",
        "|---:|---|---:|---|---:|---|",
    ]
    for i, r in enumerate(report.recommendations[:top], 1):
        lines.append(
            f"| {i} | {r.title} | ${r.estimated_monthly_saving:,.2f} | {r.risk} | "
            f"{r.confidence:.0%} | {r.action.replace('|', '/')} |"
        )
    worst = sorted(report.scores.items(), key=lambda kv: kv[1])[:5]
    if worst:
        lines += ["", "## Lowest optimization scores", ""]
        lines += [f"- `{rid}`: {score}/100" for rid, score in worst]
    lines += [""] + [f"- {n}" for n in report.notes]
    return "\n".join(lines) + "\n"


@flow(name="recommend-savings", persist_result=True, result_serializer="json", log_prints=True)
def recommend_savings(
    aws: list[AwsResourceSource] = [],  # noqa: B006
    azure: list[AzureResourceSource] = [],  # noqa: B006
    gcp: list[GcpResourceSource] = [],  # noqa: B006
    required_tags: list[str] = ["owner", "team", "env"],  # noqa: B006
    cpu_avg_threshold: Annotated[float, Field(gt=0, lt=100)] = 10.0,
    cpu_peak_threshold: Annotated[float, Field(gt=0, le=100)] = 40.0,
    stopped_days: Annotated[int, Field(ge=1, le=365)] = 7,
    metrics_days: Annotated[int, Field(ge=1, le=63)] = 14,
    include_commitments: bool = True,
    dataset_url: str | None = None,
    samples: bool = False,
) -> SavingsReport:
    """Rank right-sizing, idle-resource, commitment and tagging savings across clouds.

    Collects the inventory (``collect-resources`` as a subflow), applies the rules of
    ``tasks.inventory.rules.resources`` and, when the cost dataset has data, estimates
    commitments from steady on-demand compute spend. Nothing is changed: every
    recommendation carries the exact action, its risk and the evidence, for a person to
    apply.

    Args:
        aws: AWS credentials and regions.
        azure: Azure subscriptions.
        gcp: GCP projects.
        required_tags: tag keys every resource must carry for cost ownership.
        cpu_avg_threshold: right-size when average CPU % is below this ...
        cpu_peak_threshold: ... and peak (p95) CPU % is below this.
        stopped_days: an instance stopped longer than this is idle.
        metrics_days: look-back window of the CPU statistics.
        include_commitments: also read the cost dataset for commitment estimates.
        dataset_url: cost dataset location (default ``$OPSFLOW_HOME/costs``).
        samples: use the bundled sample inventory and, for commitments, the demo cost
            dataset (``$OPSFLOW_HOME/demo/costs``, filled by ``collect-costs`` with
            ``samples: true``); never combined with sources or ``dataset_url``.

    Returns:
        SavingsReport with recommendations ranked by monthly saving and per-resource
        optimization scores.

    Example:
        ```python
        from flows.savings import recommend_savings

        report = recommend_savings(aws=[{"regions": ["us-east-1", "eu-west-1"]}])
        print(report.estimated_monthly_saving)
        ```
    """
    _check_sources(
        "recommend-savings", samples, aws=aws, azure=azure, gcp=gcp, dataset_url=dataset_url
    )
    inventory = collect_resources(
        aws=aws, azure=azure, gcp=gcp, samples=samples, metrics_days=metrics_days
    )
    recs = recommend_resources(
        inventory.resources,
        required_tags=required_tags,
        cpu_avg_threshold=cpu_avg_threshold,
        cpu_peak_threshold=cpu_peak_threshold,
        stopped_days=stopped_days,
        now=inventory.as_of,
    )
    notes = list(inventory.notes)
    if include_commitments:
        dataset = CostDataset(demo_costs_dir() if samples else dataset_url)
        last_day = dataset.last_charge_day()
        if last_day:
            costs = dataset.read(start=last_day - timedelta(days=COMMITMENT_LOOKBACK_DAYS))
            recs += recommend_commitments(
                costs, lookback_days=COMMITMENT_LOOKBACK_DAYS, now=commitment_as_of(last_day)
            )
        else:
            notes.append(
                "The demo cost dataset is empty: run collect-costs with samples: true for "
                "commitment estimates."
                if samples
                else "The cost dataset is empty: run collect-costs for commitment estimates."
            )
    recs.sort(key=lambda r: r.estimated_monthly_saving, reverse=True)
    by_kind: dict[str, float] = {}
    for r in recs:
        by_kind[r.kind] = round(by_kind.get(r.kind, 0.0) + r.estimated_monthly_saving, 2)
    report = SavingsReport(
        resources=len(inventory.resources),
        monthly_cost=inventory.monthly_cost,
        recommendations=recs,
        estimated_monthly_saving=round(sum(r.estimated_monthly_saving for r in recs), 2),
        by_kind=by_kind,
        scores=optimization_scores(inventory.resources, recs),
        partial=inventory.partial,
        missing=inventory.missing,
        notes=notes,
    )
    create_table_artifact(
        key=RECOMMENDATIONS_KEY,
        table=[
            {
                "kind": r.kind,
                "title": r.title,
                "provider": r.provider,
                "resource": r.resource_id,
                "monthly_saving": r.estimated_monthly_saving,
                "risk": r.risk,
                "confidence": r.confidence,
                "action": r.action,
                "reason": r.reason,
            }
            for r in recs
        ],
        description="Savings recommendations, largest first",
    )
    create_markdown_artifact(key=SUMMARY_KEY, markdown=render_markdown(report))
    print(
        f"{report.resources} resources, {len(recs)} recommendations, "
        f"~${report.estimated_monthly_saving:,.2f}/month"
    )
    return report
