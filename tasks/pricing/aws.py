"""AWS EC2 prices: on-demand from the Price List API, spot from EC2 spot price history.

Everything goes through a prefect-aws ``AwsCredentials`` block: its session (keys,
profile or assumed role) and its ``aws_client_parameters`` (endpoint override,
botocore config). The parsing functions are plain functions so they can be tested
without AWS or Prefect.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

from prefect_aws import AwsCredentials

from tasks.clouds.aws import aws_client
from tasks.common.retry import cloud_api_task, task_logger
from tasks.pricing.prices import PriceTable, Quote

PRICING_REGION = "us-east-1"  # the Price List API endpoint used for every region
AWS_SOURCE = (
    "AWS Price List API (pricing:GetProducts, AmazonEC2, Linux, shared tenancy, on-demand) "
    "and EC2 DescribeSpotPriceHistory (Linux/UNIX, latest price averaged across AZs)"
)
# Product attributes every on-demand Linux price must have (also sent as TERM_MATCH filters).
LINUX_ON_DEMAND_ATTRIBUTES = {
    "operatingSystem": "Linux",
    "tenancy": "Shared",
    "preInstalledSw": "NA",
    "capacitystatus": "Used",
}


def pricing_filters(instance_type: str, region: str) -> list[dict[str, str]]:
    """GetProducts filters for one instance type's Linux on-demand price in one region.

    Args:
        instance_type: EC2 instance type, e.g. ``m5.large``.
        region: region code, e.g. ``us-east-1``.

    Returns:
        A list of ``TERM_MATCH`` filters.
    """
    terms = {"instanceType": instance_type, "regionCode": region, **LINUX_ON_DEMAND_ATTRIBUTES}
    return [{"Type": "TERM_MATCH", "Field": k, "Value": v} for k, v in terms.items()]


def parse_price_list_item(item: str | Mapping[str, Any]) -> tuple[str, str, float] | None:
    """Read one Price List product document.

    Args:
        item: one element of ``GetProducts``' ``PriceList`` (a JSON string) or its
            decoded dict.

    Returns:
        ``(instance_type, region_code, usd_per_hour)`` for a Linux, shared-tenancy,
        on-demand hourly price above zero; ``None`` for anything else (other OS,
        reserved-only, capacity reservations, zero prices, ...).
    """
    doc = json.loads(item) if isinstance(item, str | bytes) else item
    attrs = (doc.get("product") or {}).get("attributes") or {}
    if any(attrs.get(k) != v for k, v in LINUX_ON_DEMAND_ATTRIBUTES.items()):
        return None
    if attrs.get("operation", "RunInstances") != "RunInstances":
        return None
    if attrs.get("marketoption", "OnDemand") != "OnDemand":
        return None
    instance_type, region = attrs.get("instanceType"), attrs.get("regionCode")
    if not instance_type or not region:
        return None
    best: float | None = None
    for term in ((doc.get("terms") or {}).get("OnDemand") or {}).values():
        for dim in (term.get("priceDimensions") or {}).values():
            if dim.get("unit") not in ("Hrs", "Hours", "Hour"):
                continue
            try:
                usd = float((dim.get("pricePerUnit") or {}).get("USD", "nan"))
            except ValueError:
                continue
            if usd > 0 and (best is None or usd < best):
                best = usd
    return (instance_type, region, best) if best is not None else None


def parse_on_demand_prices(
    price_list: Iterable[str | Mapping[str, Any]],
) -> dict[tuple[str, str], float]:
    """Map ``(instance_type, region)`` to the hourly USD price from Price List documents.

    Args:
        price_list: ``PriceList`` elements from one or more ``GetProducts`` pages.

    Returns:
        The lowest positive on-demand price per instance type and region.
    """
    out: dict[tuple[str, str], float] = {}
    for item in price_list:
        parsed = parse_price_list_item(item)
        if parsed is None:
            continue
        itype, region, usd = parsed
        if (itype, region) not in out or usd < out[(itype, region)]:
            out[(itype, region)] = usd
    return out


def parse_spot_price_history(records: Iterable[Mapping[str, Any]]) -> dict[str, float]:
    """Latest Linux spot price per instance type, averaged across availability zones.

    Args:
        records: ``SpotPriceHistory`` elements (``InstanceType``, ``AvailabilityZone``,
            ``ProductDescription``, ``SpotPrice``, ``Timestamp``).

    Returns:
        Instance type -> mean over AZs of each AZ's most recent price (USD/hour).
    """
    latest: dict[tuple[str, str], tuple[Any, float]] = {}
    for rec in records:
        if not str(rec.get("ProductDescription", "")).startswith("Linux/UNIX"):
            continue
        try:
            price = float(rec["SpotPrice"])
        except (KeyError, TypeError, ValueError):
            continue
        if price <= 0:
            continue
        key = (rec["InstanceType"], rec.get("AvailabilityZone", ""))
        stamp = rec.get("Timestamp")
        stamp = stamp.isoformat() if isinstance(stamp, datetime) else str(stamp or "")
        if key not in latest or stamp > latest[key][0]:
            latest[key] = (stamp, price)
    per_type: dict[str, list[float]] = defaultdict(list)
    for (itype, _az), (_stamp, price) in latest.items():
        per_type[itype].append(price)
    return {t: round(sum(p) / len(p), 6) for t, p in per_type.items()}


def _get_products(client: Any, instance_type: str, region: str, page_size: int) -> list[str]:
    items: list[str] = []
    pages = client.get_paginator("get_products").paginate(
        ServiceCode="AmazonEC2",
        Filters=pricing_filters(instance_type, region),
        FormatVersion="aws_v1",
        PaginationConfig={"PageSize": page_size},
    )
    for page in pages:
        items.extend(page.get("PriceList", []))
    return items


def _spot_prices(client: Any, instance_types: list[str]) -> dict[str, float]:
    pages = client.get_paginator("describe_spot_price_history").paginate(
        InstanceTypes=instance_types,
        ProductDescriptions=["Linux/UNIX"],
        StartTime=datetime.now(UTC),
    )
    records: list[Mapping[str, Any]] = []
    for page in pages:
        records.extend(page.get("SpotPriceHistory", []))
    return parse_spot_price_history(records)


@cloud_api_task("fetch-aws-prices")
def fetch_aws_prices(
    aws_credentials: AwsCredentials,
    instance_types: list[str],
    regions: list[str],
    include_spot: bool = True,
    page_size: int = 100,
    max_workers: int = 8,
) -> PriceTable:
    """Fetch Linux on-demand and spot hourly prices for EC2 instance types.

    On-demand prices come from the AWS Price List API (``pricing:GetProducts`` in
    us-east-1, one filtered query per instance type and region, following
    ``NextToken``); spot prices from ``ec2:DescribeSpotPriceHistory`` in each region
    (latest price per availability zone, averaged).

    Args:
        aws_credentials: prefect-aws ``AwsCredentials`` block; its session and
            ``aws_client_parameters`` (e.g. ``endpoint_url``) are used for every call.
        instance_types: EC2 instance types, e.g. ``["m5.large", "g5.xlarge"]``.
        regions: region codes, e.g. ``["us-east-1", "eu-west-1"]``.
        include_spot: also fetch spot prices.
        page_size: ``MaxResults`` per ``GetProducts`` page.
        max_workers: concurrent ``GetProducts`` queries.

    Returns:
        Instance type -> region -> ``Quote``; pairs the APIs did not price are absent.

    Example:
        ```python
        from prefect import flow
        from prefect_aws import AwsCredentials
        from tasks.pricing.aws import fetch_aws_prices

        @flow
        def aws_prices():
            creds = AwsCredentials.load("BLOCK_NAME")
            return fetch_aws_prices(creds, ["m5.large"], ["us-east-1"])
        ```
    """
    logger = task_logger(__name__)
    session = aws_credentials.get_boto3_session()
    pricing = aws_client(aws_credentials, "pricing", PRICING_REGION, session=session)
    pairs = [(t, r) for r in regions for t in instance_types]
    table: PriceTable = defaultdict(dict)
    with ThreadPoolExecutor(max_workers=max(1, max_workers)) as pool:
        futures = [pool.submit(_get_products, pricing, t, r, page_size) for t, r in pairs]
        try:
            items = [item for fut in futures for item in fut.result()]
        except BaseException:
            for fut in futures:
                fut.cancel()
            raise
    on_demand = parse_on_demand_prices(items)
    wanted = set(pairs)
    for (itype, region), usd in on_demand.items():
        if (itype, region) in wanted:
            table[itype][region] = Quote(on_demand=usd)
    logger.info("AWS Price List: %d of %d on-demand prices found", len(on_demand), len(pairs))

    if include_spot:
        found = 0
        for region in regions:
            ec2 = aws_client(aws_credentials, "ec2", region, session=session)
            for itype, usd in _spot_prices(ec2, list(instance_types)).items():
                if itype not in instance_types:
                    continue
                quote = table[itype].get(region, Quote())
                table[itype][region] = quote.model_copy(update={"spot": usd})
                found += 1
        logger.info("EC2 spot price history: %d spot prices found", found)
    return dict(table)
