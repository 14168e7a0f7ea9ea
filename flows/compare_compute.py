"""Compare compute prices across AWS, GCP and Azure for one requirement."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Annotated

from prefect import flow, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from pydantic import AfterValidator, BaseModel, Field, field_validator

from tasks.pricing.catalog import PROVIDERS, Provider, load_catalog, load_price_catalog
from tasks.pricing.compute import (
    GEOS,
    ComputeOption,
    ComputeRequest,
    Recommendation,
    known_regions,
    match_options,
    recommend,
    resolve_regions,
)
from tasks.pricing.gpu import normalize_gpu

TABLE_KEY = "compare-compute-options"
SUMMARY_KEY = "compare-compute-summary"


class GpuRequirement(BaseModel):
    """GPUs the machine needs. ``type`` takes any provider's spelling (a100, nvidia-tesla-a100)."""

    type: str = Field(description="GPU model, e.g. nvidia-t4, nvidia-l4, nvidia-a10g, nvidia-a100")
    count: int = Field(default=1, ge=1, le=16)
    min_memory_gib: float | None = Field(default=None, gt=0, description="Per-GPU memory floor")

    @field_validator("type")
    @classmethod
    def _known_type(cls, value: str) -> str:
        return normalize_gpu(value)


def _check_region(value: str | None) -> str | None:
    if value is None:
        return None
    regions = known_regions(load_catalog())
    if value.strip().lower() not in {*GEOS, *(r.lower() for r in regions)}:
        raise ValueError(
            f"unknown region {value!r}; use a geography ({', '.join(GEOS)}) "
            f"or a catalog region id ({', '.join(regions)})"
        )
    return value.strip()


def _check_providers(value: list[str]) -> list[str]:
    if not value:
        raise ValueError("name at least one provider")
    return list(dict.fromkeys(value))


class ComputeComparison(BaseModel):
    """Result of ``compare_compute``: options ranked by monthly cost and a recommendation."""

    request: ComputeRequest
    catalog_version: str
    catalog_as_of: date
    catalog_age_days: int
    options_found: int
    options: list[ComputeOption] = Field(description="Cheapest first, at most max_options")
    recommendation: Recommendation | None
    notes: list[str] = Field(default_factory=list)


def render_markdown(result: ComputeComparison) -> str:
    req = result.request
    need = f"{req.vcpus} vCPU, {req.memory_gib:g} GiB"
    if req.gpu_type:
        need += f", {req.gpu_count}x {req.gpu_type}"
    if req.storage_gib:
        need += f", {req.storage_gib:g} GiB storage"
    lines = [
        "# Compute comparison",
        "",
        f"**Requirement:** {need}; {req.hours_per_month:g} h/month; providers "
        f"{', '.join(req.providers)}; region {req.region or 'any'}; "
        f"spot {'allowed' if req.spot_allowed else 'not allowed'}.",
        "",
        f"**Catalog:** version `{result.catalog_version}`, prices as of "
        f"{result.catalog_as_of} ({result.catalog_age_days} days old).",
        "",
    ]
    rec = result.recommendation
    if rec is None:
        lines += ["**No option meets the requirement.**", ""]
    else:
        lines += ["## Recommendation", "", rec.reason, ""]
        top = result.options[:10]
        peak = max(o.monthly_usd for o in top)
        lines += ["## Monthly cost, top options", "", "```"]
        for o in top:
            bar = "#" * max(1, round(40 * o.monthly_usd / peak))
            label = f"{o.provider} {o.instance_type} ({o.pricing_model})"
            lines.append(f"{label[:42]:<42} {bar:<40} ${o.monthly_usd:,.0f}")
        lines += ["```", ""]
    for note in result.notes:
        lines.append(f"- {note}")
    return "\n".join(lines)


def _table_rows(options: list[ComputeOption]) -> list[dict]:
    return [
        {
            "rank": i + 1,
            "provider": o.provider,
            "instance_type": o.instance_type,
            "region": o.region,
            "pricing": o.pricing_model,
            "vcpus": o.vcpus,
            "memory_gib": o.memory_gib,
            "gpu": f"{o.gpu_count:g}x {o.gpu_model}" if o.gpu_model else "",
            "hourly_usd": o.hourly_usd,
            "monthly_usd": o.monthly_usd,
            "spot_interruption": o.spot_interruption or "",
        }
        for i, o in enumerate(options)
    ]


@task(name="publish-compute-artifacts")
def publish_artifacts(result: ComputeComparison) -> list[str]:
    """Publish the ranked table and the markdown summary to the Prefect UI."""
    create_table_artifact(
        key=TABLE_KEY,
        table=_table_rows(result.options),
        description="Compute options meeting the requirement, cheapest first",
    )
    create_markdown_artifact(
        key=SUMMARY_KEY, markdown=render_markdown(result), description="Recommendation"
    )
    return [TABLE_KEY, SUMMARY_KEY]


@flow(name="compare-compute", persist_result=True, result_serializer="json", log_prints=True)
def compare_compute(
    vcpus: Annotated[int, Field(ge=1, le=1024, description="vCPUs needed")],
    memory_gib: Annotated[float, Field(gt=0, le=32768, description="Memory needed, GiB")],
    gpu: GpuRequirement | None = None,
    storage_gib: Annotated[float, Field(ge=0, le=1_000_000, description="Block storage, GiB")] = 0,
    region: Annotated[
        str | None,
        AfterValidator(_check_region),
        Field(description="Geography (us, europe, asia) or a provider region id (us-east-1)"),
    ] = None,
    spot_allowed: bool = False,
    providers: Annotated[list[Provider], AfterValidator(_check_providers)] = list(PROVIDERS),  # noqa: B006
    hours_per_month: Annotated[float, Field(gt=0, le=744)] = 730,
    cheapest_region_only: bool = True,
    max_options: Annotated[int, Field(ge=1, le=500)] = 20,
) -> ComputeComparison:
    """Compare compute options across AWS, GCP and Azure and recommend the cheapest fit.

    Every catalog instance type that meets or exceeds each requirement is priced for a
    month (compute plus block storage), ranked by monthly cost and explained.

    Args:
        vcpus: vCPUs needed.
        memory_gib: memory needed in GiB.
        gpu: GPU type and count, any provider's spelling (``a100``, ``nvidia-tesla-t4``).
        storage_gib: block storage to add at each provider's SSD volume price.
        region: a geography (``us``, ``europe``, ``asia``) or a provider region id.
        spot_allowed: also price spot/preemptible capacity, with interruption risk.
        providers: subset of ``aws``, ``gcp``, ``azure``.
        hours_per_month: hours the machine runs per month (730 = always on).
        cheapest_region_only: keep one row per instance type, its cheapest region.
        max_options: how many ranked options to return.

    Returns:
        ComputeComparison with the ranked options and the recommendation.

    Example:
        ```python
        from flows.compare_compute import compare_compute

        result = compare_compute(vcpus=8, memory_gib=32, spot_allowed=True)
        print(result.recommendation.reason)
        ```
    """
    catalog = load_price_catalog()
    request = ComputeRequest(
        vcpus=vcpus,
        memory_gib=memory_gib,
        gpu_type=gpu.type if gpu else None,
        gpu_count=gpu.count if gpu else 0,
        gpu_memory_gib=gpu.min_memory_gib if gpu else None,
        storage_gib=storage_gib,
        region=region,
        spot_allowed=spot_allowed,
        providers=list(providers),
        hours_per_month=hours_per_month,
        cheapest_region_only=cheapest_region_only,
    )
    options = match_options(catalog, request)
    _, notes = resolve_regions(catalog, region)
    for provider in request.providers:
        if not any(o.provider == provider for o in options):
            notes.append(f"{provider}: no instance type in the catalog meets the requirement")
    as_of = catalog.as_of()
    result = ComputeComparison(
        request=request,
        catalog_version=catalog.version,
        catalog_as_of=as_of,
        catalog_age_days=(datetime.now(UTC).date() - as_of).days,
        options_found=len(options),
        options=options[:max_options],
        recommendation=recommend(options),
        notes=notes,
    )
    publish_artifacts(result)
    if result.recommendation:
        print(result.recommendation.reason)
    else:
        print("No catalog option meets the requirement.")
    return result
