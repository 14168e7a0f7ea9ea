"""AWS costs from the Cost Explorer API, normalized to FOCUS 1.2 (``tasks.costs.focus_schema``).

Cost Explorer (``ce:GetCostAndUsage``) allows only two GroupBy keys, so a collection is
fanned out into slices, one call per (linked account, region) with a ``Filter`` on
``LINKED_ACCOUNT`` / ``REGION`` and ``GroupBy`` ``[SERVICE, TAG:<key>]`` (or ``[SERVICE,
USAGE_TYPE]`` without a tag key). ``aws_cost_slices`` lists the slices; it discovers
accounts and regions with ``ce:GetDimensionValues`` when they are not given (moto does
not implement that call, so tests answer it with a local server). Each request costs
$0.01, so the slices are worth naming explicitly for large organisations.

What Cost Explorer cannot say, and how the rows handle it:

- ListCost and ContractedCost: CE has no list or contracted price, so both are filled
  from BilledCost (UnblendedCost). EffectiveCost is AmortizedCost.
- ChargeCategory: RECORD_TYPE is not one of the two GroupBy keys, so rows are ``Usage``
  except the ``Tax`` service (``Tax``), Savings Plans fees (``Purchase``) and negative
  amounts (``Credit``: refunds and credits).
- PricingCategory and commitment columns stay null; with UnblendedCost a Savings Plan's
  covered usage is netted out of the service's cost and its fee is a ``Purchase`` row.
- ConsumedQuantity/ConsumedUnit are kept only when CE reports one unit (it says ``N/A``
  when a group mixes usage types, e.g. grouped by tag).
- CE's ``Estimated`` flag (days of the open month) is not kept: the schema has no column
  for it; collecting again after the month closes replaces those days.
- Tags: ``{tag_key: value}``, ``{}`` for untagged (CE's ``key$``), null when not grouped
  by a tag.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import date, datetime, timedelta
from typing import Any

import pyarrow as pa
from prefect_aws import AwsCredentials

from tasks.clouds.aws import aws_client
from tasks.common.rate_limits import throttle
from tasks.common.retry import cloud_api_task, task_logger
from tasks.costs.focus_schema import SCHEMA, SOURCE_COLUMN, day_start, month_bounds

CE_REGION = "us-east-1"  # Cost Explorer's one endpoint
METRICS = ("UnblendedCost", "AmortizedCost", "UsageQuantity")
PROVIDER = "AWS"

# CE SERVICE dimension values -> FOCUS 1.2 ServiceCategory; anything else is "Other".
SERVICE_CATEGORIES: dict[str, str] = {
    **dict.fromkeys(
        (
            "Amazon Elastic Compute Cloud - Compute",
            "EC2 - Other",
            "AWS Lambda",
            "Amazon EC2 Container Service",
            "Amazon Elastic Container Service",
            "Amazon Elastic Container Service for Kubernetes",
            "Amazon Elastic Kubernetes Service",
            "Amazon Lightsail",
            "Amazon WorkSpaces",
            "Savings Plans for AWS Compute usage",
        ),
        "Compute",
    ),
    **dict.fromkeys(
        (
            "Amazon Simple Storage Service",
            "Amazon Elastic File System",
            "Amazon FSx",
            "Amazon Glacier",
            "AWS Backup",
            "AWS Storage Gateway",
        ),
        "Storage",
    ),
    **dict.fromkeys(
        (
            "Amazon Relational Database Service",
            "Amazon DynamoDB",
            "Amazon ElastiCache",
            "Amazon DocumentDB (with MongoDB compatibility)",
            "Amazon Neptune",
            "Amazon Redshift",
            "Amazon MemoryDB",
            "Amazon Timestream",
        ),
        "Databases",
    ),
    **dict.fromkeys(
        (
            "Amazon Athena",
            "AWS Glue",
            "Amazon Kinesis",
            "Amazon Kinesis Firehose",
            "Amazon OpenSearch Service",
            "Amazon Elastic MapReduce",
            "Amazon QuickSight",
            "Amazon Managed Streaming for Apache Kafka",
        ),
        "Analytics",
    ),
    **dict.fromkeys(
        (
            "Amazon Virtual Private Cloud",
            "Amazon CloudFront",
            "Amazon Route 53",
            "Amazon Elastic Load Balancing",
            "Elastic Load Balancing",
            "AWS Direct Connect",
            "AWS Global Accelerator",
            "Amazon API Gateway",
            "AWS Data Transfer",
        ),
        "Networking",
    ),
    **dict.fromkeys(
        (
            "AmazonCloudWatch",
            "Amazon CloudWatch",
            "AWS CloudTrail",
            "AWS Config",
            "AWS Systems Manager",
            "AWS CloudFormation",
            "AWS Cost Explorer",
        ),
        "Management and Governance",
    ),
    **dict.fromkeys(
        (
            "AWS Key Management Service",
            "AWS Secrets Manager",
            "Amazon GuardDuty",
            "AWS WAF",
            "AWS Security Hub",
            "AWS Shield",
            "Amazon Inspector",
            "AWS Certificate Manager",
        ),
        "Security",
    ),
    **dict.fromkeys(("AWS Directory Service", "Amazon Cognito"), "Identity"),
    **dict.fromkeys(
        (
            "Amazon Simple Queue Service",
            "Amazon Simple Notification Service",
            "Amazon EventBridge",
            "CloudWatch Events",
            "AWS Step Functions",
            "Amazon MQ",
        ),
        "Integration",
    ),
    **dict.fromkeys(
        (
            "Amazon SageMaker",
            "Amazon Bedrock",
            "Amazon Rekognition",
            "Amazon Textract",
            "Amazon Comprehend",
        ),
        "AI and Machine Learning",
    ),
    **dict.fromkeys(
        ("AWS CodeBuild", "AWS CodePipeline", "AWS CodeArtifact", "AWS X-Ray"),
        "Developer Tools",
    ),
}
_CATEGORY_BY_LOWER = {k.lower(): v for k, v in SERVICE_CATEGORIES.items()}
# CE REGION values of costs that belong to no region.
NON_REGIONAL = frozenset({"global", "noregion", ""})

_USAGE_TYPE = {"Type": "DIMENSION", "Key": "USAGE_TYPE"}
_ACCOUNT = re.compile(r"^\d{12}$")
_REGION = re.compile(r"^[A-Za-z0-9-]{1,32}$")


def service_category(service: str) -> str:
    """FOCUS ServiceCategory of a Cost Explorer SERVICE value ("Other" when unknown)."""
    return _CATEGORY_BY_LOWER.get(service.strip().lower(), "Other")


def charge_category(service: str, billed_cost: float) -> str:
    """FOCUS ChargeCategory of one CE group (RECORD_TYPE is not grouped by)."""
    if service.strip().lower() == "tax":
        return "Tax"
    if service.startswith("Savings Plans for"):
        return "Purchase"
    return "Credit" if billed_cost < 0 else "Usage"


def source_id(account_id: str | None, region: str | None) -> str:
    """The ``x_SourceId`` of one slice, e.g. ``aws-ce:123456789012:us-east-1``."""
    return f"aws-ce:{account_id or 'all'}:{region or 'all'}"


def ce_filter(account_id: str | None, region: str | None) -> dict[str, Any] | None:
    """The GetCostAndUsage ``Filter`` selecting one slice (None: the whole payer)."""
    dims = [
        {"Dimensions": {"Key": key, "Values": [value], "MatchOptions": ["EQUALS"]}}
        for key, value in (("LINKED_ACCOUNT", account_id), ("REGION", region))
        if value
    ]
    if not dims:
        return None
    return dims[0] if len(dims) == 1 else {"And": dims}


def ce_group_by(tag_key: str | None) -> list[dict[str, str]]:
    """GroupBy ``[SERVICE, TAG:<tag_key>]``, or ``[SERVICE, USAGE_TYPE]`` without a tag key."""
    second = (
        {"Type": "TAG", "Key": tag_key} if tag_key else {"Type": "DIMENSION", "Key": "USAGE_TYPE"}
    )
    return [{"Type": "DIMENSION", "Key": "SERVICE"}, second]


def parse_tag_group_key(key: str, tag_key: str) -> dict[str, str]:
    """``{tag_key: value}`` from CE's ``"key$value"`` group key; ``{}`` when untagged."""
    _, sep, value = key.partition("$")
    value = value if sep else ""
    return {tag_key: value} if value else {}


def _amount(metrics: Mapping[str, Any], name: str) -> tuple[float | None, str | None]:
    metric = metrics.get(name) or {}
    try:
        return float(metric["Amount"]), metric.get("Unit")
    except (KeyError, TypeError, ValueError):
        return None, None


def ce_to_focus(
    results_by_time: Iterable[Mapping[str, Any]],
    *,
    billing_account_id: str,
    account_id: str | None = None,
    region: str | None = None,
    tag_key: str | None = None,
) -> pa.Table:
    """Map Cost Explorer ``ResultsByTime`` (DAILY, grouped) to FOCUS 1.2 rows.

    Args:
        results_by_time: ``ResultsByTime`` elements of one or more GetCostAndUsage pages
            requested with ``METRICS`` and ``ce_group_by(tag_key)``.
        billing_account_id: the payer account (FOCUS BillingAccountId).
        account_id: the linked account the slice was filtered on (SubAccountId).
        region: the region the slice was filtered on (RegionId; null for CE's
            ``global``/``NoRegion``).
        tag_key: the tag the second GroupBy key is, or None when it is USAGE_TYPE.

    Returns:
        A table with ``tasks.costs.focus_schema.SCHEMA``; one row per day and group.
        Groups without an UnblendedCost amount are skipped.

    Example:
        ```python
        from tasks.costs.aws import ce_to_focus

        results = [  # a get_cost_and_usage page's ResultsByTime, grouped by SERVICE, TAG:team
            {
                "TimePeriod": {"Start": "2026-10-01", "End": "2026-10-02"},
                "Groups": [
                    {
                        "Keys": ["Amazon Elastic Compute Cloud - Compute", "team$web"],
                        "Metrics": {
                            "UnblendedCost": {"Amount": "12.5", "Unit": "USD"},
                            "AmortizedCost": {"Amount": "10.0", "Unit": "USD"},
                            "UsageQuantity": {"Amount": "24", "Unit": "Hrs"},
                        },
                    }
                ],
            }
        ]
        table = ce_to_focus(results, billing_account_id="123456789012", tag_key="team")
        print(table.select(["ServiceName", "EffectiveCost", "Tags"]).to_pylist())
        ```
    """
    region_id = None if (region or "").lower() in NON_REGIONAL else region
    source = source_id(account_id, region)
    rows: list[dict[str, Any]] = []
    for result in results_by_time:
        day = date.fromisoformat(str(result["TimePeriod"]["Start"])[:10])
        period_start, period_end = month_bounds(day)
        for group in result.get("Groups") or []:
            keys = list(group.get("Keys") or [])
            service = keys[0] if keys else ""
            second = keys[1] if len(keys) > 1 else ""
            metrics = group.get("Metrics") or {}
            billed, currency = _amount(metrics, "UnblendedCost")
            if billed is None or not service:
                continue
            effective, _ = _amount(metrics, "AmortizedCost")
            quantity, unit = _amount(metrics, "UsageQuantity")
            category = charge_category(service, billed)
            metered = category == "Usage" and unit not in (None, "", "N/A")
            rows.append(
                {
                    "BilledCost": billed,
                    "BillingAccountId": billing_account_id,
                    "BillingCurrency": currency or "USD",
                    "BillingPeriodStart": period_start,
                    "BillingPeriodEnd": period_end,
                    "ChargeCategory": category,
                    "ChargeDescription": None if tag_key else (second or None),
                    "ChargeFrequency": "Usage-Based" if category == "Usage" else None,
                    "ChargePeriodStart": day_start(day),
                    "ChargePeriodEnd": day_start(day + timedelta(days=1)),
                    "ConsumedQuantity": quantity if metered else None,
                    "ConsumedUnit": unit if metered else None,
                    "ContractedCost": billed,
                    "EffectiveCost": effective if effective is not None else billed,
                    "InvoiceIssuerName": PROVIDER,
                    "ListCost": billed,
                    "ProviderName": PROVIDER,
                    "PublisherName": PROVIDER,
                    "RegionId": region_id,
                    "ServiceCategory": service_category(service),
                    "ServiceName": service,
                    "SkuMeter": None if tag_key else (second or None),
                    "SubAccountId": account_id,
                    "Tags": list(parse_tag_group_key(second, tag_key).items()) if tag_key else None,
                    SOURCE_COLUMN: source,
                }
            )
    return pa.Table.from_pylist(rows, schema=SCHEMA)


def _check_period(start: date, end: date) -> tuple[date, date]:
    for name, value in (("start", start), ("end", end)):
        if not isinstance(value, date):
            raise ValueError(f"{name}: must be a date, got {type(value).__name__}")
    start = start.date() if isinstance(start, datetime) else start
    end = end.date() if isinstance(end, datetime) else end
    if end <= start:
        raise ValueError(f"end: must be after start ({start.isoformat()}), got {end.isoformat()}")
    return start, end


def _check_slice(account_id: str | None, region: str | None, tag_key: str | None) -> str | None:
    if account_id is not None and not _ACCOUNT.match(account_id):
        raise ValueError(f"account_id: must be a 12-digit AWS account id, got {account_id!r}")
    if region is not None and not _REGION.match(region):
        raise ValueError(f"region: must be a region code such as 'us-east-1', got {region!r}")
    if tag_key is not None:
        tag_key = tag_key.strip()
        if not tag_key or "$" in tag_key:
            raise ValueError("tag_key: must be a non-empty tag key without '$'")
    return tag_key


def _period(start: date, end: date) -> dict[str, str]:
    return {"Start": start.isoformat(), "End": end.isoformat()}


@cloud_api_task("aws-cost-explorer")
def fetch_aws_costs(
    aws_credentials: AwsCredentials,
    start: date,
    end: date,
    *,
    account_id: str | None = None,
    region: str | None = None,
    tag_key: str | None = None,
    billing_account_id: str | None = None,
) -> pa.Table:
    """Daily AWS costs of one (account, region) slice as FOCUS 1.2 rows.

    Calls ``ce:GetCostAndUsage`` (DAILY; UnblendedCost, AmortizedCost, UsageQuantity)
    and follows ``NextPageToken``. The payer account comes from
    ``sts:GetCallerIdentity`` unless given (Cost Explorer is normally called from the
    management account). The block's ``assume_role_arn`` (prefect-aws) is honoured.

    Args:
        aws_credentials: prefect-aws ``AwsCredentials`` block; its session and
            ``aws_client_parameters`` (e.g. ``endpoint_url``) are used for every call.
        start: first day (inclusive).
        end: last day (exclusive), as Cost Explorer counts.
        account_id: linked account to filter on; None for all accounts.
        region: region to filter on (``global``/``NoRegion`` for non-regional costs);
            None for all regions.
        tag_key: group by this cost allocation tag; None groups by usage type.
        billing_account_id: payer account id; None asks STS.

    Returns:
        A ``tasks.costs.focus_schema.SCHEMA`` table (``x_SourceId`` = ``source_id(...)``).

    Example:
        ```python
        from prefect import flow
        from prefect_aws import AwsCredentials
        from tasks.costs.aws import aws_cost_slices, fetch_aws_costs

        @flow
        def aws_costs(start, end):
            creds = AwsCredentials.load("BLOCK_NAME")
            slices = aws_cost_slices(creds, start, end)
            return [fetch_aws_costs(creds, start, end, account_id=a, region=r) for a, r in slices]
        ```
    """
    start, end = _check_period(start, end)
    tag_key = _check_slice(account_id, region, tag_key)
    logger = task_logger(__name__)
    session = aws_credentials.get_boto3_session()
    if billing_account_id is None:
        sts_region = aws_credentials.region_name or CE_REGION
        sts = aws_client(aws_credentials, "sts", sts_region, session=session)
        billing_account_id = sts.get_caller_identity()["Account"]
    ce = aws_client(aws_credentials, "ce", CE_REGION, session=session)
    request: dict[str, Any] = {
        "TimePeriod": _period(start, end),
        "Granularity": "DAILY",
        "Metrics": list(METRICS),
        "GroupBy": ce_group_by(tag_key),
    }
    flt = ce_filter(account_id, region)
    if flt is not None:
        request["Filter"] = flt
    results: list[Mapping[str, Any]] = []
    pages, token = 0, None
    while True:
        throttle("aws")  # Cost Explorer's account-wide request rate, shared by all runs
        page = ce.get_cost_and_usage(**request, **({"NextPageToken": token} if token else {}))
        pages += 1
        results.extend(page.get("ResultsByTime") or [])
        token = page.get("NextPageToken")
        if not token:
            break
    table = ce_to_focus(
        results,
        billing_account_id=billing_account_id,
        account_id=account_id,
        region=region,
        tag_key=tag_key,
    )
    estimated = sum(1 for r in results if r.get("Estimated"))
    logger.info(
        "Cost Explorer %s: %d rows from %d page(s), %s..%s (%d estimated day(s))",
        source_id(account_id, region),
        table.num_rows,
        pages,
        start,
        end,
        estimated,
    )
    return table


def _dimension_values(ce: Any, dimension: str, start: date, end: date) -> list[str]:
    values: list[str] = []
    token = None
    while True:
        throttle("aws")
        page = ce.get_dimension_values(
            TimePeriod=_period(start, end),
            Dimension=dimension,
            Context="COST_AND_USAGE",
            **({"NextPageToken": token} if token else {}),
        )
        values.extend(v["Value"] for v in page.get("DimensionValues") or [] if v.get("Value"))
        token = page.get("NextPageToken")
        if not token:
            return sorted(set(values))


@cloud_api_task("aws-cost-explorer-slices")
def aws_cost_slices(
    aws_credentials: AwsCredentials,
    start: date,
    end: date,
    accounts: list[str] | None = None,
    regions: list[str] | None = None,
) -> list[tuple[str | None, str | None]]:
    """The (account, region) slices to call ``fetch_aws_costs`` with.

    Accounts and regions not given are discovered with ``ce:GetDimensionValues``
    (``LINKED_ACCOUNT`` / ``REGION`` with costs in the period; regions include CE's
    ``global`` and ``NoRegion`` so non-regional costs are not lost). An empty list, or
    nothing discovered, means "no filter" (``None``).

    Args:
        aws_credentials: prefect-aws ``AwsCredentials`` block.
        start: first day (inclusive).
        end: last day (exclusive).
        accounts: linked account ids, or None to discover them.
        regions: region codes, or None to discover them.

    Returns:
        Every (account, region) pair, accounts outermost.

    Example:
        ```python
        from datetime import date

        from prefect import flow
        from prefect_aws import AwsCredentials

        from tasks.costs.aws import aws_cost_slices

        @flow
        def aws_slices():
            creds = AwsCredentials.load("BLOCK_NAME")
            return aws_cost_slices(creds, date(2025, 6, 1), date(2025, 7, 1), regions=["us-east-1"])
            # [("111111111111", "us-east-1"), ("222222222222", "us-east-1")]
        ```
    """
    start, end = _check_period(start, end)
    for account in accounts or []:
        _check_slice(account, None, None)
    for region in regions or []:
        _check_slice(None, region, None)
    if accounts is None or regions is None:
        ce = aws_client(aws_credentials, "ce", CE_REGION)
        if accounts is None:
            accounts = _dimension_values(ce, "LINKED_ACCOUNT", start, end)
        if regions is None:
            regions = _dimension_values(ce, "REGION", start, end)
    account_list: list[str | None] = list(accounts) or [None]
    region_list: list[str | None] = list(regions) or [None]
    return [(a, r) for a in account_list for r in region_list]
