"""Deterministic, realistic FOCUS cost exports for AWS, Azure and GCP.

Every flow has to do its real job without a cloud account, so opsflow ships sample
exports (``samples/data/focus_exports/``) made by this module. Each uses its cloud's own
export column set: AWS Data Exports "FOCUS 1.0 with AWS columns" (gzip CSV), Azure
Cost Management ``FocusCost`` 1.0r2 (CSV) and the Google Cloud FOCUS export (Parquet).

The data is daily and plants what the analysis must find: a runaway autoscaling group
(AWS sub-account #2, EC2 in us-east-1, ~4x on 2026-11-12 and 2026-11-13), a BigQuery
spike (~6x on 2026-11-05), a steady on-demand EC2 baseline (worth a Savings Plan),
weekday/weekend seasonality and noise. With ``messy=True`` it also plants what the
normalizer must cope with: rows it has to quarantine, literal ``NULL`` strings, padded
numbers, odd casing, mixed timestamp styles, tag keys with stray whitespace and broken
tag JSON. What was planted is recorded in the table's schema metadata
(:func:`planted`), so tests compare against the generator rather than magic numbers.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

PROVIDERS = ("aws", "azure", "gcp")
SAMPLE_START = date(2026, 10, 1)
SAMPLE_END = date(2026, 11, 20)  # inclusive
SAMPLE_FILES = {
    "aws": "aws_focus_1_0.csv.gz",
    "azure": "azure_focuscost_1_0r2.csv",
    "gcp": "gcp_focus_export.parquet",
}
METADATA_KEY = b"opsflow.planted"

# Planted signals (the analysis' tests look for them).
AWS_RUNAWAY_DAYS = (date(2026, 11, 12), date(2026, 11, 13))
GCP_BIGQUERY_SPIKE_DAY = date(2026, 11, 5)

# --- native column sets ------------------------------------------------------------------

# fmt: off
_FOCUS_1_0 = (
    "AvailabilityZone", "BilledCost", "BillingAccountId", "BillingAccountName",
    "BillingCurrency", "BillingPeriodEnd", "BillingPeriodStart", "ChargeCategory",
    "ChargeClass", "ChargeDescription", "ChargeFrequency", "ChargePeriodEnd",
    "ChargePeriodStart", "CommitmentDiscountCategory", "CommitmentDiscountId",
    "CommitmentDiscountName", "CommitmentDiscountStatus", "CommitmentDiscountType",
    "ConsumedQuantity", "ConsumedUnit", "ContractedCost", "ContractedUnitPrice",
    "EffectiveCost", "InvoiceIssuerName", "ListCost", "ListUnitPrice", "PricingCategory",
    "PricingQuantity", "PricingUnit", "ProviderName", "PublisherName", "RegionId",
    "RegionName", "ResourceId", "ResourceName", "ResourceType", "ServiceCategory",
    "ServiceName", "SkuId", "SkuPriceId", "SubAccountId", "SubAccountName", "Tags",
)
# Microsoft and Google add the account-type columns and leave out AvailabilityZone.
_FOCUS_1_0_MS_GOOGLE = tuple(
    sorted({*_FOCUS_1_0, "BillingAccountType", "SubAccountType"} - {"AvailabilityZone"})
)
# AWS Data Exports, "FOCUS 1.0 with AWS columns".
AWS_COLUMNS = (
    *_FOCUS_1_0, "x_CostCategories", "x_Discounts", "x_Operation", "x_ServiceCode",
    "x_UsageType",
)
# Azure Cost Management FocusCost 1.0r2.
AZURE_COLUMNS = (
    *_FOCUS_1_0_MS_GOOGLE,
    "x_AccountId", "x_AccountName", "x_AccountOwnerId", "x_BilledCostInUsd",
    "x_BilledUnitPrice", "x_BillingAccountId", "x_BillingAccountName", "x_BillingExchangeRate",
    "x_BillingExchangeRateDate", "x_BillingProfileId", "x_BillingProfileName",
    "x_ContractedCostInUsd", "x_CostAllocationRuleName", "x_CostCenter", "x_CustomerId",
    "x_CustomerName", "x_EffectiveCostInUsd", "x_EffectiveUnitPrice", "x_InvoiceId",
    "x_InvoiceIssuerId", "x_InvoiceSectionId", "x_InvoiceSectionName", "x_ListCostInUsd",
    "x_PartnerCreditApplied", "x_PartnerCreditRate", "x_PricingBlockSize", "x_PricingCurrency",
    "x_PricingSubcategory", "x_PricingUnitDescription", "x_PublisherCategory", "x_PublisherId",
    "x_ResellerId", "x_ResellerName", "x_ResourceGroupName", "x_ResourceType",
    "x_ServicePeriodEnd", "x_ServicePeriodStart", "x_SkuDescription", "x_SkuDetails",
    "x_SkuIsCreditEligible", "x_SkuMeterCategory", "x_SkuMeterId", "x_SkuMeterName",
    "x_SkuMeterSubcategory", "x_SkuOfferId", "x_SkuOrderId", "x_SkuOrderName",
    "x_SkuPartNumber", "x_SkuRegion", "x_SkuServiceFamily", "x_SkuTerm", "x_SkuTier",
)
# Google Cloud FOCUS export (BigQuery table gcp_billing_export_focus_<account>).
GCP_COLUMNS = (
    *_FOCUS_1_0_MS_GOOGLE, "x_Credits", "x_CostType", "x_CurrencyConversionRate",
    "x_ExportTime", "x_Location", "x_Project", "x_ServiceId",
)
# fmt: on

_TS = pa.timestamp("us", tz="UTC")
_GCP_TYPES = {
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
        _TS,
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


@dataclass
class _Line:
    """One recurring charge (a resource x SKU) that yields a row per active day.

    ``fixed`` lines (credits, tax, refunds, commitment fees) carry a set amount instead
    of price x quantity. ``covered`` is the commitment price factor of usage covered by
    a Savings Plan (billed 0, effective = list x factor).
    """

    cols: dict[str, Any]
    price: float = 0.0
    qty: float = 0.0
    pattern: str = "flat"  # fixed | flat | weekday (busier Mon-Fri) | batch (quiet weekends)
    covered: float | None = None
    days: frozenset[date] | None = None  # active days (None: every day)
    spikes: dict[date, float] = field(default_factory=dict)
    fixed: float | None = None
    kind: str = "usage"  # usage | credit | refund | tax | fee
    period: str = "day"  # day | month (the billing period)
    scalable: bool = True  # repeated by ``scale`` (resources are; monthly credits are not)


def _sid(*parts: str, n: int = 12, alphabet: str = "0123456789ABCDEFGHJKLMNPQRSTVWXZ") -> str:
    """A stable pseudo-identifier (SKU ids, instance ids) derived from ``parts``."""
    digest = hashlib.sha256("|".join(parts).encode()).digest()
    return "".join(alphabet[b % len(alphabet)] for b in digest[:n])


def _guid(*parts: str) -> str:
    h = hashlib.sha256("|".join(parts).encode()).hexdigest()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"


def _json(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"))


def _months(days: list[date]) -> list[date]:
    """The first day of each month that ``days`` covers (monthly charges post there)."""
    firsts: dict[date, date] = {}
    for d in days:
        firsts.setdefault(d.replace(day=1), d)
    return sorted(firsts.values())


# --- AWS -----------------------------------------------------------------------------------

_AWS_PAYER = ("412345678901", "Acme Corp")
_AWS_ACCOUNTS = (  # (id, name, team, env, cost center)
    ("523456789012", "acme-prod-web", "web", "prod", "cc-100"),
    ("634567890123", "acme-prod-data", "data", "prod", "cc-200"),  # sub-account #2
    ("745678901234", "acme-staging", "qa", "staging", "cc-900"),
)
_AWS_REGIONS = {  # id -> (name, usage type prefix, price factor)
    "us-east-1": ("US East (N. Virginia)", "", 1.0),
    "us-west-2": ("US West (Oregon)", "USW2-", 1.0),
    "eu-west-1": ("Europe (Ireland)", "EU-", 1.11),
    "ap-southeast-1": ("Asia Pacific (Singapore)", "APS1-", 1.2),
    "": ("", "", 1.0),
}
_AWS_SERVICES = {  # key -> (ServiceName, ServiceCategory, x_ServiceCode, ResourceId template)
    "ec2": (
        "Amazon Elastic Compute Cloud",
        "Compute",
        "AmazonEC2",
        "arn:aws:ec2:{region}:{account}:{name}",
    ),
    "s3": ("Amazon Simple Storage Service", "Storage", "AmazonS3", "arn:aws:s3:::{name}"),
    "rds": (
        "Amazon Relational Database Service",
        "Databases",
        "AmazonRDS",
        "arn:aws:rds:{region}:{account}:db:{name}",
    ),
    "lambda": (
        "AWS Lambda",
        "Compute",
        "AWSLambda",
        "arn:aws:lambda:{region}:{account}:function:{name}",
    ),
    "cloudfront": (
        "Amazon CloudFront",
        "Networking",
        "AmazonCloudFront",
        "arn:aws:cloudfront::{account}:distribution/{name}",
    ),
    "transfer": ("AWS Data Transfer", "Networking", "AWSDataTransfer", ""),
    "cloudwatch": ("Amazon CloudWatch", "Management and Governance", "AmazonCloudWatch", ""),
    "dynamodb": (
        "Amazon DynamoDB",
        "Databases",
        "AmazonDynamoDB",
        "arn:aws:dynamodb:{region}:{account}:table/{name}",
    ),
    "sp": ("Savings Plans for AWS Compute usage", "Compute", "ComputeSavingsPlans", ""),
}
_AWS_RESOURCE_TYPES = {
    "ec2": "Instance",
    "s3": "Bucket",
    "rds": "DB Instance",
    "lambda": "Function",
    "cloudfront": "Distribution",
    "dynamodb": "Table",
}
_AWS_EC2_PRICES = {"m5.large": 0.096, "m5.xlarge": 0.192, "c5.2xlarge": 0.34, "t3.medium": 0.0416}
_AWS_SP_ID = "arn:aws:savingsplans::412345678901:savingsplan/5f2c1a9e-3b7d-4e0f-9a61-0c8d2e4b7f13"
_AWS_SP_RATE = 0.72  # Compute Savings Plan price / on-demand price
_AWS_SP_INSTANCES = 4  # m5.xlarge in sub-account #1, us-east-1, fully covered

# fmt: off
# EC2 fleets: (sub-account, region, type, count, day pattern, note). Instances run 24 h/day.
_AWS_FLEETS = (
    (0, "us-east-1", "m5.xlarge", _AWS_SP_INSTANCES, "fixed", "savings-plan"),
    (0, "us-west-2", "m5.xlarge", 4, "fixed", "stray-tags"),  # the steady on-demand baseline
    (0, "eu-west-1", "c5.2xlarge", 3, "fixed", ""),
    (1, "us-east-1", "c5.2xlarge", 8, "fixed", ""),  # the ETL autoscaling group ...
    (1, "us-east-1", "c5.2xlarge", 24, "fixed", "runaway"),  # ... and its runaway days
    (1, "eu-west-1", "m5.large", 3, "batch", ""),
    (2, "ap-southeast-1", "t3.medium", 3, "weekday", "one-untagged"),
    (2, "us-east-1", "m5.large", 2, "weekday", "untagged"),
)
# Other usage: (sub-account, region, service, usage type, unit, price, quantity/day, pattern, name)
_AWS_USAGE = (
    (0, "us-east-1", "s3", "TimedStorage-ByteHrs", "GB-Mo", 0.023, 80.0, "flat", "acme-web-assets"),
    (0, "us-east-1", "s3", "Requests-Tier1", "Requests", 5e-06, 96e3, "weekday", "acme-web-assets"),
    (0, "us-west-2", "s3", "TimedStorage-ByteHrs", "GB-Mo", 0.023, 173.0, "flat", "acme-web-logs"),
    (0, "us-west-2", "s3", "Requests-Tier1", "Requests", 5e-06, 208e3, "weekday", "acme-web-logs"),
    (1, "us-east-1", "s3", "TimedStorage-ByteHrs", "GB-Mo", 0.023, 1600.0, "flat", "acme-raw"),
    (1, "us-east-1", "s3", "Requests-Tier1", "Requests", 5e-06, 1.9e6, "batch", "acme-raw"),
    (1, "us-east-1", "s3", "TimedStorage-ByteHrs", "GB-Mo", 0.023, 700.0, "flat", "acme-curated"),
    (1, "eu-west-1", "s3", "TimedStorage-ByteHrs", "GB-Mo", 0.024, 103.0, "flat", "acme-eu"),
    (2, "ap-southeast-1", "s3", "TimedStorage-ByteHrs", "GB-Mo", 0.025, 27.0, "flat", "acme-qa"),
    (0, "us-east-1", "rds", "InstanceUsage:db.r5.large", "Hrs", 0.25, 24.0, "fixed", "web-pg"),
    (0, "us-east-1", "rds", "RDS:GP3-Storage", "GB-Mo", 0.115, 16.7, "fixed", "web-pg"),
    (1, "us-east-1", "rds", "InstanceUsage:db.r5.xlarge", "Hrs", 0.5, 24.0, "fixed", "meta-pg"),
    (1, "us-east-1", "rds", "RDS:GP3-Storage", "GB-Mo", 0.115, 33.3, "fixed", "meta-pg"),
    (2, "us-east-1", "rds", "InstanceUsage:db.t3.medium", "Hrs", 0.072, 24.0, "fixed", "qa-pg"),
    (0, "us-east-1", "lambda", "Request", "Requests", 2e-07, 2.1e6, "weekday", "thumbnailer"),
    (0, "us-east-1", "lambda", "Lambda-GB-Second", "GB-Seconds", 1.667e-05, 8.4e5, "weekday",
     "thumbnailer"),
    (0, "us-east-1", "lambda", "Request", "Requests", 2e-07, 5.5e6, "weekday", "auth-edge"),
    (1, "us-east-1", "lambda", "Request", "Requests", 2e-07, 9e5, "batch", "ingest-trigger"),
    (1, "us-east-1", "lambda", "Lambda-GB-Second", "GB-Seconds", 1.667e-05, 3.6e5, "batch",
     "ingest-trigger"),
    (0, "", "cloudfront", "US-DataTransfer-Out-Bytes", "GB", 0.085, 300.0, "weekday",
     "E2QWRUHAPOMQZL"),
    (0, "", "cloudfront", "EU-DataTransfer-Out-Bytes", "GB", 0.085, 80.0, "weekday",
     "E1X5IPFRSV2K7A"),
    (0, "us-east-1", "transfer", "DataTransfer-Out-Bytes", "GB", 0.09, 110.0, "weekday", ""),
    (1, "us-east-1", "transfer", "DataTransfer-Out-Bytes", "GB", 0.09, 320.0, "batch", ""),
    (1, "eu-west-1", "transfer", "DataTransfer-Out-Bytes", "GB", 0.09, 60.0, "batch", ""),
    (2, "ap-southeast-1", "transfer", "DataTransfer-Out-Bytes", "GB", 0.12, 12.0, "weekday", ""),
    (0, "us-east-1", "cloudwatch", "CW:MetricMonitorUsage", "Metrics", 0.3, 7.3, "fixed", ""),
    (1, "us-east-1", "cloudwatch", "CW:MetricMonitorUsage", "Metrics", 0.3, 4.7, "fixed", ""),
    (0, "us-east-1", "cloudwatch", "DataProcessing-Bytes", "GB", 0.5, 12.0, "weekday", ""),
    (1, "us-east-1", "cloudwatch", "DataProcessing-Bytes", "GB", 0.5, 30.0, "batch", ""),
    (2, "us-east-1", "cloudwatch", "DataProcessing-Bytes", "GB", 0.5, 2.0, "weekday", ""),
    (0, "us-east-1", "dynamodb", "WriteRequestUnits", "WriteRequestUnits", 1.25e-06, 4.2e6,
     "weekday", "sessions"),
    (1, "us-east-1", "dynamodb", "WriteRequestUnits", "WriteRequestUnits", 1.25e-06, 9e5,
     "batch", "pipeline-state"),
)
# fmt: on


def _aws_cols(acct: int, region: str, service: str, **cols: Any) -> dict[str, Any]:
    account_id, account_name = _AWS_ACCOUNTS[acct][:2]
    name, category, code, _ = _AWS_SERVICES[service]
    base = {
        "BillingAccountId": _AWS_PAYER[0],
        "BillingAccountName": _AWS_PAYER[1],
        "BillingCurrency": "USD",
        "ChargeCategory": "Usage",
        "ChargeFrequency": "Usage-Based",
        "InvoiceIssuerName": "Amazon Web Services, Inc.",
        "PricingCategory": "Standard",
        "ProviderName": "AWS",
        "PublisherName": "Amazon Web Services, Inc.",
        "RegionId": region,
        "RegionName": _AWS_REGIONS[region][0],
        "ServiceCategory": category,
        "ServiceName": name,
        "SubAccountId": account_id,
        "SubAccountName": account_name,
        "x_CostCategories": "{}",
        "x_ServiceCode": code,
    }
    return base | cols


def _aws_tags(acct: int, *, stray: bool = False) -> str:
    _, _, team, env, cost_center = _AWS_ACCOUNTS[acct]
    if stray:  # hand-typed keys with stray whitespace, as real tag sets have
        return json.dumps({" team": team, "env ": env, "cost  center": cost_center})
    return _json({"team": team, "env": env, "cost-center": cost_center})


def _aws_usage_line(
    acct: int,
    region: str,
    service: str,
    usage_type: str,
    unit: str,
    price: float,
    qty: float,
    pattern: str,
    name: str,
    *,
    resource: str = "",
    tags: str | None = None,
    az: str = "",
    **line: Any,
) -> _Line:
    template = _AWS_SERVICES[service][3]
    resource_id = template.format(
        region=region, account=_AWS_ACCOUNTS[acct][0], name=resource or name
    )
    sku = _sid("aws", service, region, usage_type, n=16)
    cols = _aws_cols(
        acct,
        region,
        service,
        AvailabilityZone=az,
        ChargeDescription=f"${price:g} per {unit} for {usage_type} in {region or 'global'}",
        ConsumedUnit=unit,
        PricingUnit=unit,
        ResourceId=resource_id if name else "",
        ResourceName=name,
        ResourceType=_AWS_RESOURCE_TYPES.get(service, "") if name else "",
        SkuId=sku,
        SkuPriceId=f"{sku}.JRTCKXETXF.{_sid('price', sku, n=10)}",
        Tags=_aws_tags(acct) if tags is None and name else (tags or ""),
        x_Operation=usage_type.split(":")[0],
        x_UsageType=_AWS_REGIONS[region][1] + usage_type,
    )
    return _Line(cols=cols, price=price * _AWS_REGIONS[region][2], qty=qty, pattern=pattern, **line)


def _aws_lines(days: list[date]) -> list[_Line]:
    lines: list[_Line] = []
    count: dict[tuple[int, str], int] = {}
    for acct, region, itype, n, pattern, note in _AWS_FLEETS:
        for _ in range(n):
            i = count[acct, region] = count.get((acct, region), -1) + 1
            iid = "i-0" + _sid("i", str(acct), region, str(i), n=16, alphabet="0123456789abcdef")
            _, _, team, env, _ = _AWS_ACCOUNTS[acct]
            untagged = note == "untagged" or (note == "one-untagged" and i == 2)
            tags = "" if untagged else _aws_tags(acct, stray=note == "stray-tags" and i == 0)
            common = dict(
                az=f"{region}{'abc'[i % 3]}",
                tags=tags,
                days=frozenset(AWS_RUNAWAY_DAYS) if note == "runaway" else None,
            )
            hours = _aws_usage_line(
                acct,
                region,
                "ec2",
                f"BoxUsage:{itype}",
                "Hrs",
                _AWS_EC2_PRICES[itype],
                24.0,
                pattern,
                f"{team}-{env}-{i}",
                resource=f"instance/{iid}",
                **common,
            )
            if note == "savings-plan":
                hours.covered = _AWS_SP_RATE
                hours.cols.update(
                    PricingCategory="Committed",
                    CommitmentDiscountCategory="Spend",
                    CommitmentDiscountId=_AWS_SP_ID,
                    CommitmentDiscountStatus="Used",
                    CommitmentDiscountType="Compute Savings Plans",
                )
            volume = _aws_usage_line(
                acct,
                region,
                "ec2",
                "EBS:VolumeUsage.gp3",
                "GB-Mo",
                0.08,
                100 / 30,
                "fixed",
                f"{team}-{env}-{i}-root",
                resource=f"volume/vol-0{iid[3:]}",
                **common,
            )
            lines += [hours, volume]
    lines += [_aws_usage_line(*row) for row in _AWS_USAGE]

    # The Savings Plan's recurring commitment, billed daily (amortized into covered usage).
    fee = round(_AWS_SP_INSTANCES * _AWS_EC2_PRICES["m5.xlarge"] * _AWS_SP_RATE * 24, 6)
    sp = _aws_cols(
        0,
        "",
        "sp",
        ChargeCategory="Purchase",
        ChargeFrequency="Recurring",
        ChargeDescription=f"1 year No Upfront Compute Savings Plan, ${fee / 24:.3f}/hour",
        CommitmentDiscountCategory="Spend",
        CommitmentDiscountId=_AWS_SP_ID,
        CommitmentDiscountType="Compute Savings Plans",
        PricingCategory="Committed",
        PricingUnit="Hrs",
        ResourceId=_AWS_SP_ID,
        ResourceType="Savings Plan",
        SkuId=_sid("aws", "ComputeSavingsPlans", n=16),
        x_UsageType="ComputeSP:1yrNoUpfront",
    )
    lines.append(_Line(cols=sp, fixed=fee, kind="fee", scalable=False))
    for month in _months(days):
        for acct, amount in enumerate((61.4, 118.9, 9.7)):  # monthly sales tax per account
            tax = _aws_cols(
                acct,
                "",
                "ec2",
                ChargeCategory="Tax",
                ChargeFrequency="Recurring",
                ChargeDescription="Tax for product code AmazonEC2",
                PricingCategory="",
                x_UsageType="Tax:AmazonEC2",
            )
            lines.append(
                _Line(
                    cols=tax,
                    fixed=amount,
                    kind="tax",
                    period="month",
                    days=frozenset({month}),
                    scalable=False,
                )
            )
        credit = _aws_cols(
            0,
            "",
            "ec2",
            ChargeCategory="Credit",
            ChargeFrequency="One-Time",
            ChargeDescription="AWS Activate promotional credit",
            PricingCategory="",
        )
        lines.append(
            _Line(cols=credit, fixed=-250.0, kind="credit", days=frozenset({month}), scalable=False)
        )
    refund = _aws_cols(
        1,
        "us-east-1",
        "rds",
        ChargeCategory="Adjustment",
        ChargeClass="Correction",
        ChargeFrequency="One-Time",
        PricingCategory="",
        ChargeDescription="Refund: RDS instance hours billed twice on 2026-10-14",
        ResourceId="arn:aws:rds:us-east-1:634567890123:db:meta-pg",
        ResourceName="meta-pg",
        ResourceType="DB Instance",
        x_UsageType="InstanceUsage:db.r5.xlarge",
    )
    lines.append(
        _Line(
            cols=refund,
            fixed=-12.0,
            kind="refund",
            days=frozenset({date(2026, 10, 20)}),
            scalable=False,
        )
    )
    return lines


# --- Azure ---------------------------------------------------------------------------------

_AZ_ACCOUNT = "8611537b-3a4c-4e5b-9d2f-6c1e0f7a2b3d:5e8c2a1f-7b6d-4c3e-a9f8-1d2e3c4b5a69_2019-05-31"
_AZ_PROFILES = {  # FocusCost reports the MCA billing profile as the FOCUS billing account
    "USD": ("KXQP-7ZJ2-BG7-PGB", "Contoso US", "R3YT-6HNQ-PJA-PGB", "Contoso US apps"),
    "EUR": ("M4WC-2LDV-BG7-PGB", "Contoso EU", "T8QZ-1KFR-PJA-PGB", "Contoso EU apps"),
}
_AZ_SUBS = (  # (subscription GUID, name, billing currency of its profile)
    (_guid("az-sub", "prod"), "contoso-prod", "USD"),
    (_guid("az-sub", "eu"), "contoso-eu", "EUR"),
)
_AZ_REGIONS = {
    "eastus": "East US",
    "westus2": "West US 2",
    "westeurope": "West Europe",
    "northeurope": "North Europe",
}
_EUR_PER_USD = 0.92
_AZ_KINDS = {  # kind -> (ARM type, ServiceName, ServiceCategory, meter category, family,
    #                     consumed unit, pricing unit, ResourceType)
    "vm": (
        "Microsoft.Compute/virtualMachines",
        "Virtual Machines",
        "Compute",
        "Virtual Machines",
        "Compute",
        "Hours",
        "1 Hour",
        "Virtual machine",
    ),
    "vmss": (
        "Microsoft.Compute/virtualMachineScaleSets",
        "Virtual Machines",
        "Compute",
        "Virtual Machines",
        "Compute",
        "Hours",
        "1 Hour",
        "Virtual machine scale set",
    ),
    "aks": (
        "Microsoft.ContainerService/managedClusters",
        "Azure Kubernetes Service",
        "Compute",
        "Azure Kubernetes Service",
        "Compute",
        "Hours",
        "1 Hour",
        "Kubernetes service",
    ),
    "storage": (
        "Microsoft.Storage/storageAccounts",
        "Storage Accounts",
        "Storage",
        "Storage",
        "Storage",
        "GB/Month",
        "1 GB/Month",
        "Storage account",
    ),
    "sql": (
        "Microsoft.Sql/servers",
        "Azure SQL Database",
        "Databases",
        "SQL Database",
        "Databases",
        "Hours",
        "1 Hour",
        "SQL database",
    ),
    "bandwidth": (
        "Microsoft.Network/publicIPAddresses",
        "Bandwidth",
        "Networking",
        "Bandwidth",
        "Networking",
        "GB",
        "1 GB",
        "Public IP address",
    ),
}
_AKS = "mc_rg-aks-prod_aks-prod_eastus"  # the AKS node resource group
# fmt: off
# (subscription, region, resource group, kind, name, meter, USD price, quantity/day, pattern, app)
_AZ_USAGE = (
    (0, "eastus", "rg-web-prod", "vm", "vm-web-01", "D4s v5", 0.192, 24.0, "fixed", "storefront"),
    (0, "eastus", "rg-web-prod", "vm", "vm-web-02", "D4s v5", 0.192, 24.0, "fixed", "storefront"),
    (0, "westus2", "rg-data-prod", "vm", "vm-etl-01", "E8s v5", 0.504, 24.0, "batch", "etl"),
    (1, "westeurope", "rg-web-eu", "vm", "vm-web-eu-01", "D2s v5", 0.096, 24.0, "fixed", "shop"),
    (1, "northeurope", "rg-analytics-eu", "vm", "vm-jupyter-01", "D8s v5", 0.384, 24.0,
     "weekday", "notebooks"),
    (0, "eastus", _AKS, "vmss", "aks-nodepool1-vmss/0", "D4s v5", 0.192, 24.0, "fixed", "aks"),
    (0, "eastus", _AKS, "vmss", "aks-nodepool1-vmss/1", "D4s v5", 0.192, 24.0, "fixed", "aks"),
    (0, "eastus", _AKS, "vmss", "aks-nodepool1-vmss/2", "D4s v5", 0.192, 24.0, "fixed", "aks"),
    (0, "eastus", "rg-aks-prod", "aks", "aks-prod", "Standard Uptime SLA", 0.10, 24.0, "fixed",
     "aks"),
    (0, "eastus", "rg-web-prod", "storage", "stcontosoweb", "Hot LRS Data Stored", 0.0208, 60.0,
     "flat", "storefront"),
    (0, "westus2", "rg-data-prod", "storage", "stcontosolake", "Hot LRS Data Stored", 0.0208,
     866.0, "flat", "etl"),
    (1, "westeurope", "rg-web-eu", "storage", "stcontosoeu", "Hot LRS Data Stored", 0.0208, 31.7,
     "flat", "shop"),
    (1, "northeurope", "rg-analytics-eu", "storage", "stcontosonb", "Hot LRS Data Stored",
     0.0208, 13.3, "flat", "notebooks"),
    (0, "eastus", "rg-data-prod", "sql", "sql-contoso-prod/databases/orders", "vCore", 0.5044,
     48.0, "fixed", "orders"),
    (1, "westeurope", "rg-analytics-eu", "sql", "sql-contoso-eu/databases/reporting", "vCore",
     0.5044, 48.0, "fixed", "reporting"),
    (0, "eastus", "rg-web-prod", "bandwidth", "pip-web-prod", "Standard Data Transfer Out", 0.087,
     350.0, "weekday", ""),
    (1, "westeurope", "rg-web-eu", "bandwidth", "pip-web-eu", "Standard Data Transfer Out", 0.087,
     120.0, "weekday", ""),
)
# fmt: on


def _azure_line(
    sub: int,
    region: str,
    rg: str,
    kind: str,
    name: str,
    meter: str,
    usd_price: float,
    qty: float,
    pattern: str,
    app: str,
) -> _Line:
    arm_type, service, category, meter_category, family, unit, pricing_unit, rtype = _AZ_KINDS[kind]
    sub_id, sub_name, currency = _AZ_SUBS[sub]
    profile_id, profile_name, section_id, section_name = _AZ_PROFILES[currency]
    rate = 1.0 if currency == "USD" else _EUR_PER_USD
    product = _sid("az", meter_category, meter, n=12)
    series = f"{meter.split()[0][0]}sv5 Series" if kind in ("vm", "vmss") else "Standard"
    tags = ""
    if app:
        tags = _json({"app": app, "env": "prod", "owner": f"team-{app}"})
        if name == "vm-web-02":  # keys with stray whitespace (and a duplicate)
            tags = json.dumps({"app": app, " env": "prod", "owner ": f"team-{app}", "env": "prod"})
    resource_id = f"/subscriptions/{sub_id}/resourcegroups/{rg}/providers/{arm_type}/{name}"
    vm_details = _json({"ServiceType": f"Standard_{meter.replace(' ', '_')}"})
    cols = {
        "BillingAccountId": f"/providers/Microsoft.Billing/billingAccounts/{_AZ_ACCOUNT}"
        f"/billingProfiles/{profile_id}",
        "BillingAccountName": profile_name,
        "BillingAccountType": "Billing Profile",
        "BillingCurrency": currency,
        "ChargeCategory": "Usage",
        "ChargeDescription": f"{meter} - {series}",
        "ChargeFrequency": "Usage-Based",
        "ConsumedUnit": unit,
        "InvoiceIssuerName": "Microsoft",
        "PricingCategory": "Standard",
        "PricingUnit": pricing_unit,
        "ProviderName": "Microsoft",
        "PublisherName": "Microsoft",
        "RegionId": region,
        "RegionName": _AZ_REGIONS[region],
        "ResourceId": resource_id.lower(),
        "ResourceName": name.rsplit("/", 1)[-1],
        "ResourceType": rtype,
        "ServiceCategory": category,
        "ServiceName": service,
        "SkuId": f"{product}/00{product[-2:]}",
        "SkuPriceId": f"{product}/00{product[-2:]}/0001",
        "SubAccountId": f"/subscriptions/{sub_id}",
        "SubAccountName": sub_name,
        "SubAccountType": "Subscription",
        "Tags": tags,
        "x_BillingAccountId": _AZ_ACCOUNT,
        "x_BillingAccountName": "Contoso Ltd",
        "x_BillingExchangeRate": f"{rate:g}",
        "x_BillingProfileId": profile_id,
        "x_BillingProfileName": profile_name,
        "x_InvoiceSectionId": section_id,
        "x_InvoiceSectionName": section_name,
        "x_PricingBlockSize": "1",
        "x_PricingCurrency": "USD",
        "x_PricingSubcategory": "Standard",
        "x_PricingUnitDescription": pricing_unit,
        "x_PublisherCategory": "Cloud Provider",
        "x_ResourceGroupName": rg,
        "x_ResourceType": arm_type.lower(),
        "x_SkuDescription": f"{meter_category} {meter}",
        "x_SkuDetails": vm_details if kind in ("vm", "vmss") else "",
        "x_SkuIsCreditEligible": "True",
        "x_SkuMeterCategory": meter_category,
        "x_SkuMeterId": _guid("meter", meter_category, meter, region),
        "x_SkuMeterName": meter,
        "x_SkuMeterSubcategory": series,
        "x_SkuPartNumber": _sid("part", meter, n=9),
        "x_SkuRegion": _AZ_REGIONS[region],
        "x_SkuServiceFamily": family,
        "x_SkuTier": "Standard",
    }
    return _Line(cols=cols, price=usd_price * rate, qty=qty, pattern=pattern)


def _azure_lines(days: list[date]) -> list[_Line]:
    return [_azure_line(*row) for row in _AZ_USAGE]


# --- GCP -----------------------------------------------------------------------------------

_GCP_ACCOUNT = ("01A2B3-C4D5E6-F7A8B9", "Acme billing")
_GCP_PROJECTS = (  # (id, name, number, team)
    ("acme-web-prod", "Acme Web Prod", "418229311105", "web"),
    ("acme-analytics", "Acme Analytics", "771045362218", "data"),
)
_GCP_REGIONS = {"us-central1": "Iowa", "europe-west1": "Belgium", "us-east1": "South Carolina"}
_GCP_SERVICES = {  # name -> (x_ServiceId, ServiceCategory, ResourceId template, ResourceType)
    "Compute Engine": (
        "6F81-5844-456A",
        "Compute",
        "//compute.googleapis.com/projects/{project}/zones/{region}-b/instances/{name}",
        "compute.googleapis.com/Instance",
    ),
    "Cloud Storage": (
        "95FF-2EF5-5EA1",
        "Storage",
        "//storage.googleapis.com/projects/_/buckets/{name}",
        "storage.googleapis.com/Bucket",
    ),
    "BigQuery": ("24E6-581D-38E5", "Analytics", "", ""),
    "Cloud SQL": (
        "9662-B51E-5089",
        "Databases",
        "//cloudsql.googleapis.com/projects/{project}/instances/{name}",
        "sqladmin.googleapis.com/Instance",
    ),
    "Networking": ("E505-1604-58F8", "Networking", "", ""),
}
_GCP_N2 = {"core": 0.031611, "ram": 0.004237}  # USD per vCPU hour / GiB hour
# fmt: off
# Compute Engine N2 instances: (project, region, name, vCPUs, GiB, pattern)
_GCP_INSTANCES = (
    (0, "us-central1", "web-1", 4, 16, "fixed"),
    (0, "us-central1", "web-2", 4, 16, "fixed"),
    (0, "us-central1", "web-3", 4, 16, "fixed"),
    (0, "us-east1", "web-dr-1", 2, 8, "fixed"),
    (1, "europe-west1", "airflow-worker-1", 8, 32, "batch"),
    (1, "europe-west1", "airflow-worker-2", 8, 32, "batch"),
)
# Other usage: (project, region, service, SKU, unit, price, quantity/day, pattern, resource)
_GCP_USAGE = (
    (0, "us-central1", "Cloud Storage", "Standard Storage US", "gibibyte month", 0.02, 50.0,
     "flat", "acme-web-static"),
    (0, "us-central1", "Cloud Storage", "Standard Class A Operations", "count", 5e-06, 45e3,
     "weekday", "acme-web-static"),
    (1, "us-central1", "Cloud Storage", "Standard Storage US", "gibibyte month", 0.02, 1400.0,
     "flat", "acme-analytics-lake"),
    (1, "us-central1", "Cloud Storage", "Standard Class A Operations", "count", 5e-06, 1.2e6,
     "batch", "acme-analytics-lake"),
    (1, "us-central1", "BigQuery", "Analysis", "tebibyte", 6.25, 5.2, "batch", ""),
    (1, "us-central1", "BigQuery", "Active Logical Storage", "gibibyte month", 0.02, 300.0,
     "flat", ""),
    (0, "us-central1", "Cloud SQL", "Cloud SQL for PostgreSQL: vCPU", "hour", 0.0413, 96.0,
     "fixed", "web-pg"),
    (0, "us-central1", "Networking", "Network Internet Data Transfer Out", "gibibyte", 0.085,
     640.0, "weekday", ""),
    (1, "us-central1", "Networking", "Network Internet Data Transfer Out", "gibibyte", 0.085,
     85.0, "batch", ""),
)
# fmt: on


def _gcp_line(
    project: int,
    region: str,
    service: str,
    sku: str,
    unit: str | None,
    price: float,
    qty: float,
    pattern: str,
    resource: str,
    *,
    labels: list[tuple[str, str]] | None = None,
    **line: Any,
) -> _Line:
    pid, pname, pnum, team = _GCP_PROJECTS[project]
    service_id, category, template, rtype = _GCP_SERVICES[service]
    digits = _sid("gcp", service, sku, n=12, alphabet="0123456789ABCDEF")
    sku_id = f"{digits[:4]}-{digits[4:8]}-{digits[8:]}"
    if labels is None:
        labels = [("team", team), ("env", "prod")]
    cols = {
        "BillingAccountId": _GCP_ACCOUNT[0],
        "BillingAccountName": _GCP_ACCOUNT[1],
        "BillingAccountType": "Billing Account",
        "BillingCurrency": "USD",
        "ChargeCategory": "Usage",
        "ChargeDescription": sku,
        "ChargeFrequency": "Usage-Based",
        "ConsumedUnit": unit,
        "InvoiceIssuerName": "Google Cloud",
        "PricingCategory": "Standard",
        "PricingUnit": unit,
        "ProviderName": "Google Cloud",
        "PublisherName": "Google Cloud",
        "RegionId": region or None,
        "RegionName": _GCP_REGIONS.get(region),
        "ResourceId": template.format(project=pid, region=region, name=resource)
        if resource and template
        else None,
        "ResourceName": resource or None,
        "ResourceType": rtype if resource else None,
        "ServiceCategory": category,
        "ServiceName": service,
        "SkuId": sku_id,
        "SkuPriceId": f"{sku_id}-{_sid('price', sku, n=4, alphabet='0123456789ABCDEF')}",
        "SubAccountId": pid,
        "SubAccountName": pname,
        "SubAccountType": "Project",
        "Tags": [{"key": k, "value": v} for k, v in labels],
        "x_Credits": [],
        "x_CostType": "regular",
        "x_CurrencyConversionRate": 1.0,
        "x_Location": region or "global",
        "x_Project": {"id": pid, "number": pnum, "name": pname},
        "x_ServiceId": service_id,
    }
    return _Line(cols=cols, price=price, qty=qty, pattern=pattern, **line)


def _gcp_lines(days: list[date]) -> list[_Line]:
    lines: list[_Line] = []
    for project, region, name, vcpus, gib, pattern in _GCP_INSTANCES:
        labels = None
        if name == "web-3":  # label keys with stray whitespace
            labels = [("team ", "web"), (" env", "prod")]
        args = (project, region, "Compute Engine")
        lines.append(
            _gcp_line(
                *args,
                "N2 Instance Core running",
                "hour",
                _GCP_N2["core"],
                24.0 * vcpus,
                pattern,
                name,
                labels=labels,
            )
        )
        lines.append(
            _gcp_line(
                *args,
                "N2 Instance Ram running",
                "gibibyte hour",
                _GCP_N2["ram"],
                24.0 * gib,
                pattern,
                name,
                labels=labels,
            )
        )
        # Sustained use discount: a daily credit of 20% of the instance's running cost.
        sud = _gcp_line(
            *args,
            "Sustained Usage Discount",
            "hour",
            0.0,
            0.0,
            "fixed",
            name,
            labels=labels,
            kind="credit",
        )
        sud.cols.update(ChargeCategory="Credit", PricingCategory=None)
        sud.fixed = -round(0.2 * 24 * (_GCP_N2["core"] * vcpus + _GCP_N2["ram"] * gib), 6)
        lines.append(sud)
    for row in _GCP_USAGE:
        line = _gcp_line(*row)
        if row[3] == "Analysis":  # the planted BigQuery spike (~6x the service's day)
            line.spikes = {GCP_BIGQUERY_SPIKE_DAY: 6.9}
        lines.append(line)
    for month in _months(days):
        promo = _gcp_line(
            1,
            "",
            "BigQuery",
            "Promotion",
            None,
            0.0,
            0.0,
            "fixed",
            "",
            labels=[],
            fixed=-150.0,
            kind="credit",
            days=frozenset({month}),
            scalable=False,
        )
        promo.cols.update(
            ChargeCategory="Credit",
            ChargeFrequency="One-Time",
            ChargeDescription="Free trial / promotion credit",
            PricingCategory=None,
            x_CostType="adjustment",
        )
        lines.append(promo)
    return lines


_DAY_FACTORS = {  # Monday..Sunday
    "fixed": (1.0,) * 7,
    "flat": (1.0,) * 7,
    "weekday": (1.0, 1.04, 1.05, 1.03, 0.97, 0.72, 0.68),
    "batch": (1.0, 1.0, 1.02, 1.0, 1.05, 0.55, 0.5),
}
_NOISE = {"fixed": 0.0, "flat": 0.004, "weekday": 0.06, "batch": 0.05}  # day-to-day sigma


@dataclass
class _Grid:
    consts: dict[str, pa.Array]  # native constant columns, one value per row
    starts: list[date]  # charge period start per row
    ends: list[date]  # exclusive charge period end per row
    qty: np.ndarray
    list_price: np.ndarray  # nan for fixed rows
    list_cost: np.ndarray
    contracted_cost: np.ndarray
    billed: np.ndarray
    effective: np.ndarray
    kinds: list[str]


def _month_start(d: date) -> date:
    return d.replace(day=1)


def _next_month(d: date) -> date:
    return (d.replace(day=28) + timedelta(days=4)).replace(day=1)


def _grid(lines: list[_Line], days: list[date], scale: float, rng: np.random.Generator) -> _Grid:
    scalable = [ln for ln in lines if ln.scalable]
    count = max(1, round(len(scalable) * scale))
    expanded = [(scalable[i % len(scalable)], i // len(scalable)) for i in range(count)]
    expanded += [(ln, 0) for ln in lines if not ln.scalable]
    n_lines, n_days = len(expanded), len(days)

    active = np.ones((n_lines, n_days), dtype=bool)
    mult = np.ones((n_lines, n_days))
    weekday = np.array([d.weekday() for d in days])
    day_pos = {d: j for j, d in enumerate(days)}
    for i, (ln, _copy) in enumerate(expanded):
        if ln.days is not None:
            active[i] = [d in ln.days for d in days]
        mult[i] = np.asarray(_DAY_FACTORS[ln.pattern])[weekday]
        for d, factor in ln.spikes.items():
            if d in day_pos:
                mult[i, day_pos[d]] *= factor
    sigma = np.array([_NOISE[ln.pattern] for ln, _ in expanded])[:, None]
    mult *= np.exp(rng.normal(0.0, 1.0, size=(n_lines, n_days)) * sigma - sigma**2 / 2)

    day_idx, line_idx = np.nonzero(active.T)  # day-major, as the exports are written
    base_qty = np.array([ln.qty for ln, _ in expanded])
    price = np.array([ln.price for ln, _ in expanded])
    fixed = np.array([np.nan if ln.fixed is None else ln.fixed for ln, _ in expanded])
    covered = np.array([np.nan if ln.covered is None else ln.covered for ln, _ in expanded])
    kinds_by_line = [ln.kind if ln.fixed is not None else "usage" for ln, _ in expanded]

    qty = np.round(base_qty[line_idx] * mult[line_idx, day_idx], 6)
    list_cost = np.round(qty * price[line_idx], 10)
    is_fixed = ~np.isnan(fixed[line_idx])
    is_covered = ~np.isnan(covered[line_idx])
    billed = np.where(is_covered, 0.0, list_cost)
    effective = np.where(is_covered, np.round(list_cost * covered[line_idx], 10), list_cost)
    contracted = list_cost.copy()
    amount = fixed[line_idx]
    kinds = [kinds_by_line[i] for i in line_idx]
    kind_arr = np.array(kinds)
    zero_list = np.isin(kind_arr, ("credit", "refund"))
    billed = np.where(is_fixed, amount, billed)
    effective = np.where(is_fixed, np.where(kind_arr == "fee", 0.0, amount), effective)
    list_cost = np.where(is_fixed, np.where(zero_list, 0.0, amount), list_cost)
    contracted = np.where(is_fixed, np.where(zero_list, 0.0, amount), contracted)
    qty = np.where(is_fixed, np.where(kind_arr == "fee", 24.0, np.nan), qty)
    list_price = np.where(is_fixed, np.nan, price[line_idx])

    names = list(dict.fromkeys(k for ln, _ in expanded for k in ln.cols))
    consts: dict[str, pa.Array] = {}
    take = pa.array(line_idx)
    for name in names:
        values = []
        for ln, copy in expanded:
            v = ln.cols.get(name)
            if copy and name in ("ResourceId", "ResourceName") and v:
                v = f"{v}-{copy}"
            values.append(v)
        consts[name] = pa.array(values).take(take)
    starts, ends = [], []
    for j, i in zip(day_idx.tolist(), line_idx.tolist(), strict=True):
        d = days[j]
        if expanded[i][0].period == "month":
            starts.append(_month_start(d))
            ends.append(min(_next_month(d), days[-1] + timedelta(days=1)))
        else:
            starts.append(d)
            ends.append(d + timedelta(days=1))
    return _Grid(
        consts, starts, ends, qty, list_price, list_cost, contracted, billed, effective, kinds
    )


# --- rendering ----------------------------------------------------------------------------


def _num_text(values: np.ndarray) -> pa.Array:
    """Numbers as an export writes them (shortest round-trip text; empty for missing)."""
    arr = pa.array(values, mask=np.isnan(values)).cast(pa.string())
    return arr.fill_null("")


def _stamp_text(days: Iterable[date], style: Callable[[date], str]) -> pa.Array:
    cache: dict[date, str] = {}
    out = []
    for d in days:
        s = cache.get(d)
        if s is None:
            s = cache[d] = style(d)
        out.append(s)
    return pa.array(out, pa.string())


def _iso_ms(d: date) -> str:
    return f"{d.isoformat()}T00:00:00.000Z"


def _iso_z(d: date) -> str:
    return f"{d.isoformat()}T00:00:00Z"


def _iso_space(d: date) -> str:
    return f"{d.isoformat()} 00:00:00"


def _ts(days: Iterable[date]) -> pa.Array:
    return pa.array([datetime(d.year, d.month, d.day, tzinfo=UTC) for d in days], _TS)


def _render_aws(g: _Grid) -> dict[str, pa.Array]:
    cols = dict(g.consts)
    billing_starts = [_month_start(d) for d in g.starts]
    cols.update(
        BilledCost=_num_text(g.billed),
        EffectiveCost=_num_text(g.effective),
        ListCost=_num_text(g.list_cost),
        ContractedCost=_num_text(g.contracted_cost),
        ListUnitPrice=_num_text(g.list_price),
        ContractedUnitPrice=_num_text(g.list_price),
        ConsumedQuantity=_num_text(g.qty),
        PricingQuantity=_num_text(g.qty),
        ChargePeriodStart=_stamp_text(g.starts, _iso_ms),
        ChargePeriodEnd=_stamp_text(g.ends, _iso_ms),
        BillingPeriodStart=_stamp_text(billing_starts, _iso_ms),
        BillingPeriodEnd=_stamp_text((_next_month(d) for d in billing_starts), _iso_ms),
    )
    return {c: cols.get(c, pa.nulls(len(g.kinds), pa.string())).fill_null("") for c in AWS_COLUMNS}


def _render_azure(g: _Grid, mixed_styles: bool) -> dict[str, pa.Array]:
    cols = dict(g.consts)
    n = len(g.kinds)
    billing_starts = [_month_start(d) for d in g.starts]

    def stamps(days: list[date]) -> pa.Array:
        if not mixed_styles:
            return _stamp_text(days, _iso_z)
        # Exports re-run by different tooling: half the days use the zone-less style.
        return pa.array([_iso_space(d) if d.day % 2 else _iso_z(d) for d in days])

    rate = np.where(np.array(cols["BillingCurrency"].to_pylist()) == "EUR", _EUR_PER_USD, 1.0)
    cols.update(
        BilledCost=_num_text(g.billed),
        EffectiveCost=_num_text(g.effective),
        ListCost=_num_text(g.list_cost),
        ContractedCost=_num_text(g.contracted_cost),
        ListUnitPrice=_num_text(g.list_price),
        ContractedUnitPrice=_num_text(g.list_price),
        ConsumedQuantity=_num_text(g.qty),
        PricingQuantity=_num_text(g.qty),
        ChargePeriodStart=stamps(g.starts),
        ChargePeriodEnd=stamps(g.ends),
        BillingPeriodStart=stamps(billing_starts),
        BillingPeriodEnd=stamps([_next_month(d) for d in billing_starts]),
        x_ServicePeriodStart=_stamp_text(g.starts, _iso_z),
        x_ServicePeriodEnd=_stamp_text(g.ends, _iso_z),
        x_BillingExchangeRateDate=_stamp_text(billing_starts, _iso_z),
        x_BilledCostInUsd=_num_text(np.round(g.billed / rate, 10)),
        x_EffectiveCostInUsd=_num_text(np.round(g.effective / rate, 10)),
        x_ListCostInUsd=_num_text(np.round(g.list_cost / rate, 10)),
        x_ContractedCostInUsd=_num_text(np.round(g.contracted_cost / rate, 10)),
        x_BilledUnitPrice=_num_text(g.list_price),
        x_EffectiveUnitPrice=_num_text(g.list_price),
        x_InvoiceId=pa.array(
            [f"G{d.year % 100}{d.month:02d}0{1 + (d.month * 7) % 9}4471" for d in billing_starts]
        ),
    )
    return {c: cols.get(c, pa.nulls(n, pa.string())).fill_null("") for c in AZURE_COLUMNS}


def _render_gcp(g: _Grid) -> dict[str, pa.Array]:
    cols = dict(g.consts)
    billing_starts = [_month_start(d) for d in g.starts]

    def num(values: np.ndarray) -> pa.Array:
        return pa.array(values, mask=np.isnan(values))

    sud = {
        "name": "Sustained usage discount",
        "full_name": None,
        "id": "",
        "type": "SUSTAINED_USAGE_DISCOUNT",
    }
    credits = [
        [sud | {"amount": amount}] if kind == "credit" and amount > -100 else []
        for kind, amount in zip(g.kinds, g.billed.tolist(), strict=True)
    ]
    exported = [
        datetime(d.year, d.month, d.day, 7, 42, tzinfo=UTC) + timedelta(days=1) for d in g.starts
    ]
    cols.update(
        BilledCost=num(g.billed),
        EffectiveCost=num(g.effective),
        ListCost=num(g.list_cost),
        ContractedCost=num(g.contracted_cost),
        ListUnitPrice=num(g.list_price),
        ContractedUnitPrice=num(g.list_price),
        ConsumedQuantity=num(g.qty),
        PricingQuantity=num(g.qty),
        ChargePeriodStart=_ts(g.starts),
        ChargePeriodEnd=_ts(g.ends),
        BillingPeriodStart=_ts(billing_starts),
        BillingPeriodEnd=_ts(_next_month(d) for d in billing_starts),
        x_Credits=pa.array(credits, _GCP_TYPES["x_Credits"]),
        x_ExportTime=pa.array(exported, _TS),
    )
    n = len(g.kinds)
    out = {}
    for c in GCP_COLUMNS:
        typ = _GCP_TYPES.get(c, pa.string())
        out[c] = cols[c].cast(typ) if c in cols else pa.nulls(n, typ)
    return out


# --- planted mess ---------------------------------------------------------------------


class _Edits:
    """Collects cell edits and the rows they make bad, then applies them column-wise."""

    def __init__(self, columns: dict[str, pa.Array], kinds: list[str], rng: np.random.Generator):
        self.columns, self.rng = columns, rng
        self.cells: dict[str, dict[int, Any]] = {}
        self.bad: dict[int, str] = {}
        self.warnings: dict[str, int] = {}
        self._free = [i for i, k in enumerate(kinds) if k == "usage"]
        self._used: set[int] = set()

    def row(self) -> int:
        """A usage row not edited yet."""
        if len(self._used) >= len(self._free):
            raise ValueError("too few rows to plant the mess in: use more days or messy=False")
        while True:
            i = self._free[int(self.rng.integers(len(self._free)))]
            if i not in self._used:
                self._used.add(i)
                return i

    def set(self, row: int, column: str, value: Any, *, bad: str | None = None) -> None:
        self.cells.setdefault(column, {})[row] = value
        if bad:
            self.bad[row] = bad

    def map(self, row: int, column: str, fn: Callable[[Any], Any]) -> None:
        self.set(row, column, fn(self.columns[column][row].as_py()))

    def warn(self, code: str) -> None:
        self.warnings[code] = self.warnings.get(code, 0) + 1

    def apply(self) -> dict[str, pa.Array]:
        for column, cells in self.cells.items():
            arr = self.columns[column]
            values = arr.to_pylist()
            for i, v in cells.items():
                values[i] = v
            self.columns[column] = pa.array(values, arr.type)
        return self.columns


def _mess_csv(e: _Edits, provider: str) -> None:
    e.set(e.row(), "BilledCost", "n/a", bad="bad_number")
    e.set(e.row(), "ChargePeriodStart", "NULL" if provider == "azure" else "", bad="missing_value")
    e.set(e.row(), "ChargeCategory", "Discount", bad="bad_charge_category")
    for _ in range(3):  # padded numbers stay valid
        e.map(e.row(), "BilledCost", lambda v: f"  {v} ")
    for _ in range(2):
        e.map(e.row(), "ChargeCategory", str.lower)
    e.set(e.row(), "Tags", '{"team": "data", "env":', bad=None)
    e.warn("invalid_tags")
    r = e.row()
    e.set(r, "Tags", "NULL")
    e.set(r, "ResourceId", "NULL")
    if provider == "aws":
        e.set(e.row(), "AvailabilityZone", "null")
        e.map(e.row(), "ChargePeriodStart", lambda v: v.replace("T", " ").replace(".000Z", ""))
    else:
        e.set(e.row(), "BillingCurrency", "EURO", bad="bad_currency")
        e.map(e.row(), "BillingCurrency", lambda v: v.lower())


def _mess_gcp(e: _Edits) -> None:
    e.set(e.row(), "ChargePeriodStart", None, bad="missing_value")
    e.set(e.row(), "ChargeCategory", "Promotion", bad="bad_charge_category")
    e.set(e.row(), "BillingCurrency", "US$", bad="bad_currency")
    r = e.row()
    e.set(r, "ChargePeriodEnd", e.columns["ChargePeriodStart"][r].as_py(), bad="bad_period")
    e.set(e.row(), "ChargeCategory", "USAGE")
    e.set(e.row(), "ServiceCategory", "analytics")


# --- public API -----------------------------------------------------------------------------


def generate_export(
    provider: str,
    start: date,
    end: date,
    *,
    scale: float = 1.0,
    seed: int = 0,
    messy: bool = True,
) -> pa.Table:
    """A cloud's native FOCUS export for charge days ``start``..``end`` (inclusive).

    Args:
        provider: ``aws`` (FOCUS 1.0 with AWS columns), ``azure`` (FocusCost 1.0r2) or
            ``gcp`` (Google Cloud FOCUS export).
        start: first charge day.
        end: last charge day (inclusive).
        scale: multiplies the number of resources (rows per day); ``scale=130`` gives
            about a million AWS rows over the bundled 51 days.
        seed: random seed; the same arguments always give the same table.
        messy: plant bad rows (which a normalizer must quarantine) and messy-but-valid
            values (padded numbers, odd casing, ``NULL`` strings, stray tag whitespace).

    Returns:
        The export as the cloud writes it: all-string columns for the CSV exports
        (AWS, Azure), typed columns for GCP. The schema metadata key
        ``opsflow.planted`` records the planted bad rows and expected totals
        (see :func:`planted`).

    Example:
        ```python
        table = generate_export("aws", date(2026, 10, 1), date(2026, 10, 31))
        ```
    """
    if provider not in PROVIDERS:
        raise ValueError(f"provider: expected one of {PROVIDERS}, got {provider!r}")
    if end < start:
        raise ValueError(f"end: {end} is before start {start}")
    if scale <= 0:
        raise ValueError(f"scale: must be > 0, got {scale}")
    days = [start + timedelta(days=i) for i in range((end - start).days + 1)]
    rng = np.random.default_rng([seed, PROVIDERS.index(provider)])
    build = {"aws": _aws_lines, "azure": _azure_lines, "gcp": _gcp_lines}[provider]
    grid = _grid(build(days), days, scale, rng)
    if provider == "aws":
        columns = _render_aws(grid)
    elif provider == "azure":
        columns = _render_azure(grid, mixed_styles=messy)
    else:
        columns = _render_gcp(grid)

    edits = _Edits(columns, grid.kinds, np.random.default_rng([seed, 99]))
    if messy:
        _mess_gcp(edits) if provider == "gcp" else _mess_csv(edits, provider)
    columns = edits.apply()

    good = np.ones(len(grid.kinds), dtype=bool)
    good[list(edits.bad)] = False
    currencies = np.array(grid.consts["BillingCurrency"].to_pylist())
    totals = {
        cur: round(float(grid.billed[good & (currencies == cur)].sum()), 6)
        for cur in sorted(set(currencies[good].tolist()))
    }
    meta = {
        "provider": provider,
        "rows": len(grid.kinds),
        "bad_rows": {str(k): v for k, v in sorted(edits.bad.items())},
        "warnings": edits.warnings,
        "billed_total": totals,
    }
    names = list(columns)
    if provider == "azure" and messy:  # a header cell with stray whitespace
        names[names.index("ChargeDescription")] = " ChargeDescription "
    table = pa.table(list(columns.values()), names=names)
    return table.replace_schema_metadata({METADATA_KEY: json.dumps(meta).encode()})


def planted(table: pa.Table) -> dict[str, Any]:
    """What :func:`generate_export` planted, so tests need no magic numbers.

    Args:
        table: a table returned by :func:`generate_export`.

    Returns:
        ``rows``, ``bad_rows`` (row number as text -> reason code), ``warnings``
        (code -> count) and ``billed_total`` of the good rows per currency; ``{}`` for a
        table that did not come from the generator.
    """
    raw = (table.schema.metadata or {}).get(METADATA_KEY)
    return json.loads(raw) if raw else {}


def write_export(table: pa.Table, path: str | os.PathLike) -> Path:
    """Write ``table`` as CSV, gzip CSV or Parquet, chosen by the file name.

    Output is byte-for-byte reproducible (gzip header without a timestamp).

    Args:
        table: an export from :func:`generate_export`.
        path: a ``.csv``, ``.csv.gz`` or ``.parquet`` file name.

    Returns:
        ``path``.
    """
    path = Path(path)
    if path.name.endswith(".parquet"):
        pq.write_table(table, path, compression="zstd")
    elif path.name.endswith(".csv.gz"):
        with open(path, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as gz:
            pacsv.write_csv(table, gz, pacsv.WriteOptions(quoting_style="needed"))
    elif path.name.endswith(".csv"):
        pacsv.write_csv(table, path, pacsv.WriteOptions(quoting_style="needed"))
    else:
        raise ValueError(f"path: expected .csv, .csv.gz or .parquet, got {path.name!r}")
    return path


def write_bundled_samples(dest_dir: str | os.PathLike) -> list[Path]:
    """(Re)write the three bundled sample exports into ``dest_dir``.

    Args:
        dest_dir: target folder (created if missing).

    Returns:
        The written files, AWS, Azure, GCP.

    Example:
        ```python
        write_bundled_samples("samples/data/focus_exports")
        ```
    """
    dest = Path(dest_dir)
    dest.mkdir(parents=True, exist_ok=True)
    return [
        write_export(generate_export(p, SAMPLE_START, SAMPLE_END), dest / SAMPLE_FILES[p])
        for p in PROVIDERS
    ]


def bundled_export_paths() -> list[Path]:
    """Paths of the sample exports shipped inside the package (AWS, Azure, GCP).

    Example:
        ```python
        for path in bundled_export_paths():
            batch = tasks.costs.normalize.normalize_file(path)
        ```
    """
    folder = resources.files("samples") / "data" / "focus_exports"
    return [Path(str(folder / SAMPLE_FILES[p])) for p in PROVIDERS]


if __name__ == "__main__":  # pragma: no cover - regenerate the bundled files
    for written in write_bundled_samples(Path(__file__).parent / "data" / "focus_exports"):
        print(written, written.stat().st_size)
