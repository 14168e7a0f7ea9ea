"""refresh_price_catalog: refresh the compute price catalog from the providers' price APIs."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any, Literal

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect_gcp import GcpCredentials
from pydantic import BaseModel, Field

from flows.credentials import load_block
from tasks.common.retry import failure_reason, one_line_reason
from tasks.common.secrets import block_secrets
from tasks.pricing.aws import AWS_SOURCE, fetch_aws_prices
from tasks.pricing.azure import AZURE_RETAIL_ENDPOINT, AZURE_SOURCE, fetch_azure_prices
from tasks.pricing.catalog import (
    PROVIDERS,
    Provider,
    ProviderCatalog,
    load_catalog,
    write_catalog_version,
)
from tasks.pricing.gcp import GCP_BILLING_ENDPOINT, GCP_SOURCE, fetch_gcp_prices
from tasks.pricing.prices import PriceChange, biggest_changes, merge_prices, refresh_scope

CHANGES_ARTIFACT_KEY = "refresh-price-catalog-changes"
SUMMARY_ARTIFACT_KEY = "refresh-price-catalog-summary"
MAX_MISSING_LISTED = 50
MAX_CHANGES_LISTED = 25


class ProviderRefresh(BaseModel):
    """How one provider's refresh went."""

    provider: Provider
    status: Literal["refreshed", "failed", "skipped"]
    reason: str | None = Field(
        default=None, description="Why it failed or was skipped (one line, no secrets)"
    )
    regions: list[str] = Field(default_factory=list, description="Regions asked for")
    instance_types: int = Field(default=0, description="Catalog instance types asked for")
    prices_updated: int = Field(default=0, description="Prices that came back and were set")
    prices_changed: int = Field(default=0, description="Of those, prices whose value changed")
    prices_missing: int = Field(
        default=0, description="Catalog prices the API did not return (previous value kept)"
    )
    missing: list[str] = Field(
        default_factory=list,
        description=f"First {MAX_MISSING_LISTED} missing prices as 'instance/region/price'",
    )
    as_of: date | None = Field(default=None, description="as_of of this provider in the catalog")
    source: str | None = Field(default=None, description="source of this provider in the catalog")


class CatalogRefreshResult(BaseModel):
    """What ``refresh_price_catalog`` did."""

    version: str | None = Field(
        description="The new current catalog version, or None when nothing was refreshed"
    )
    previous_version: str = Field(description="The version the refresh started from")
    providers: list[ProviderRefresh]
    prices_updated: int
    prices_changed: int
    prices_missing: int
    biggest_changes: list[PriceChange] = Field(
        description=f"Up to {MAX_CHANGES_LISTED} changes with the largest relative move"
    )

    def provider(self, name: str) -> ProviderRefresh:
        """The entry for provider ``name``."""
        for entry in self.providers:
            if entry.provider == name:
                return entry
        raise KeyError(name)


def _summary_markdown(result: CatalogRefreshResult) -> str:
    lines = ["# Price catalog refresh", ""]
    if result.version:
        lines.append(f"New catalog version **{result.version}** (was `{result.previous_version}`).")
    else:
        lines.append(
            f"No provider was refreshed; the catalog stays at `{result.previous_version}`."
        )
    lines += [
        "",
        "| provider | status | regions | prices updated | changed | not returned (kept) | note |",
        "|---|---|---:|---:|---:|---:|---|",
    ]
    for p in result.providers:
        note = (p.reason or p.source or "").replace("|", "/")
        lines.append(
            f"| {p.provider} | {p.status} | {len(p.regions)} | {p.prices_updated} | "
            f"{p.prices_changed} | {p.prices_missing} | {note} |"
        )
    if result.biggest_changes:
        lines += ["", "## Biggest changes", ""]
        for c in result.biggest_changes[:10]:
            move = f"{c.change_pct:+.1f}%" if c.change_pct is not None else "new"
            old = f"${c.old:.4f}" if c.old is not None else "-"
            what = f"{c.provider} {c.instance_type} {c.region} {c.price}"
            lines.append(f"- {what}: {old} -> ${c.new:.4f} ({move})")
    missing = [(p.provider, m) for p in result.providers for m in p.missing[:10]]
    if missing:
        lines += ["", "## Not returned by the API (previous price kept)", ""]
        lines += [f"- {prov}: {m}" for prov, m in missing]
    return "\n".join(lines) + "\n"


@flow(name="refresh-price-catalog", persist_result=True, result_serializer="json")
def refresh_price_catalog(
    providers: list[Provider] = list(PROVIDERS),  # noqa: B006
    regions: list[str] | None = None,
    aws_credentials_block: str | None = None,
    gcp_credentials_block: str | None = None,
    azure_endpoint: str = AZURE_RETAIL_ENDPOINT,
    gcp_billing_endpoint: str = GCP_BILLING_ENDPOINT,
) -> CatalogRefreshResult:
    """Refresh on-demand and spot prices in the compute price catalog from AWS, GCP and Azure APIs.

    Starts from the current catalog, asks each provider's price API for the instance
    types and regions the catalog knows, replaces the prices that came back, keeps the
    previous price for the rest, and writes one new catalog version atomically. A
    provider whose API stays down after retries is reported as failed and keeps its
    previous prices; the others still land. Nothing is written when no provider was
    refreshed.

    Args:
        providers: which providers to refresh (``aws``, ``gcp``, ``azure``).
        regions: region ids to limit the refresh to (e.g. ``us-east-1``, ``eastus``,
            ``us-central1``); every catalog region when omitted.
        aws_credentials_block: name of a prefect-aws ``AwsCredentials`` block; the
            default boto3 credential chain when omitted.
        gcp_credentials_block: name of a prefect-gcp ``GcpCredentials`` block;
            Application Default Credentials when omitted.
        azure_endpoint: base URL of the Azure Retail Prices API (public, no credentials).
        gcp_billing_endpoint: base URL of the Cloud Billing Catalog API (AWS endpoints,
            by contrast, come from the AWS block's ``aws_client_parameters``).

    Returns:
        A ``CatalogRefreshResult``: the new version (or None), each provider's status
        with counts of updated and missing prices, and the biggest price changes.

    Example:
        ```python
        from flows.refresh_price_catalog import refresh_price_catalog

        result = refresh_price_catalog(
            providers=["aws", "azure"], regions=["us-east-1", "eastus"],
            aws_credentials_block="prod-pricing",
        )
        print(result.version, [(p.provider, p.status) for p in result.providers])
        ```
    """
    logger = get_run_logger()
    selected = list(dict.fromkeys(providers))
    if not selected:
        raise ValueError("providers: choose at least one of aws, gcp, azure")

    current = load_catalog()
    scope = refresh_scope(current.providers, selected, regions)
    today = datetime.now(UTC).date()
    outcome: dict[str, ProviderRefresh] = {}
    for p in PROVIDERS:
        if p not in selected:
            outcome[p] = ProviderRefresh(provider=p, status="skipped", reason="not requested")
        elif not scope[p] or not current.providers[p].instances:
            outcome[p] = ProviderRefresh(
                provider=p,
                status="skipped",
                regions=scope[p],
                reason="none of the requested regions is in this provider's catalog"
                if not scope[p]
                else "the catalog has no instance types for this provider",
            )
    todo = [p for p in selected if p not in outcome]

    # Resolve block names first: a wrong name is bad input, rejected before any cloud call.
    aws_creds = (
        load_block(aws_credentials_block, "aws_credentials_block", kind="aws")
        if "aws" in todo
        else None
    )
    gcp_creds = (
        load_block(gcp_credentials_block, "gcp_credentials_block", kind="gcp")
        if "gcp" in todo and gcp_credentials_block
        else None
    )
    secrets = block_secrets(aws_creds) + block_secrets(gcp_creds)

    futures: dict[str, Any] = {}
    for p in todo:
        cat = current.providers[p]
        names = [i.name for i in cat.instances]
        if p == "aws":
            futures[p] = fetch_aws_prices.submit(aws_creds, names, scope[p])
        elif p == "azure":
            futures[p] = fetch_azure_prices.submit(names, scope[p], endpoint=azure_endpoint)
        else:
            if gcp_creds is None:
                try:
                    gcp_creds = GcpCredentials()  # Application Default Credentials
                except Exception as exc:
                    outcome[p] = ProviderRefresh(
                        provider=p,
                        status="failed",
                        regions=scope[p],
                        instance_types=len(names),
                        reason="no GCP credentials (set gcp_credentials_block): "
                        + one_line_reason(exc, secrets),
                    )
                    continue
            futures[p] = fetch_gcp_prices.submit(
                gcp_creds, list(cat.instances), scope[p], api_endpoint=gcp_billing_endpoint
            )

    sources = {"aws": AWS_SOURCE, "gcp": GCP_SOURCE, "azure": AZURE_SOURCE}
    new_catalogs: dict[str, ProviderCatalog] = dict(current.providers)
    changes: list[PriceChange] = []
    for p, future in futures.items():
        cat = current.providers[p]
        base = {"provider": p, "regions": scope[p], "instance_types": len(cat.instances)}
        future.wait()
        state = future.state
        if not state.is_completed():
            reason = failure_reason(state, secrets)
            logger.warning("%s prices not refreshed: %s", p, reason)
            outcome[p] = ProviderRefresh(status="failed", reason=reason, **base)
            continue
        merged = merge_prices(cat, future.result(), scope[p], source=sources[p], as_of=today)
        if merged.prices_updated == 0:
            reason = (
                f"the API returned no prices for the {len(cat.instances)} instance types "
                f"in {len(scope[p])} region(s); previous prices kept"
            )
            logger.warning("%s prices not refreshed: %s", p, reason)
            outcome[p] = ProviderRefresh(
                status="failed", reason=reason, prices_missing=merged.prices_missing, **base
            )
            continue
        new_catalogs[p] = merged.catalog
        changes += merged.changes
        outcome[p] = ProviderRefresh(
            status="refreshed",
            prices_updated=merged.prices_updated,
            prices_changed=merged.prices_changed,
            prices_missing=merged.prices_missing,
            missing=merged.missing[:MAX_MISSING_LISTED],
            as_of=merged.catalog.as_of,
            source=merged.catalog.source,
            **base,
        )

    for p, entry in outcome.items():
        if entry.status != "refreshed":
            entry.as_of = current.providers[p].as_of
            entry.source = current.providers[p].source

    refreshed = [p for p in PROVIDERS if outcome[p].status == "refreshed"]
    version = write_catalog_version(new_catalogs) if refreshed else None
    if version:
        logger.info(
            "price catalog version %s is current (refreshed: %s)", version, ", ".join(refreshed)
        )
    else:
        logger.warning("no provider refreshed; catalog %s unchanged", current.version)

    entries = [outcome[p] for p in PROVIDERS]
    result = CatalogRefreshResult(
        version=version,
        previous_version=current.version,
        providers=entries,
        prices_updated=sum(e.prices_updated for e in entries),
        prices_changed=sum(e.prices_changed for e in entries),
        prices_missing=sum(e.prices_missing for e in entries),
        biggest_changes=biggest_changes(changes, MAX_CHANGES_LISTED),
    )
    create_table_artifact(
        key=CHANGES_ARTIFACT_KEY,
        table=[
            {
                "provider": c.provider,
                "instance_type": c.instance_type,
                "region": c.region,
                "price": c.price,
                "old_usd_hour": c.old,
                "new_usd_hour": c.new,
                "change_pct": c.change_pct,
            }
            for c in result.biggest_changes
        ],
        description="Biggest hourly price changes in this catalog refresh (USD, Linux)",
    )
    create_markdown_artifact(
        key=SUMMARY_ARTIFACT_KEY,
        markdown=_summary_markdown(result),
        description="Price catalog refresh summary",
    )
    return result
