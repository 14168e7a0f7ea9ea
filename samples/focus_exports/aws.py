"""AWS charge lines: "FOCUS 1.0 with AWS columns" of a payer with three linked accounts.

EC2 fleets (one of them covered by a Compute Savings Plan, one the runaway autoscaling
group of sub-account #2), S3, RDS, Lambda, CloudFront, data transfer, CloudWatch and
DynamoDB usage, the plan's daily fee, monthly tax and credits, and a refund. The tables are
in ``samples/data/focus_tables/aws.json``.

Example:
    ```python
    from datetime import date

    from samples.focus_exports.aws import aws_lines

    lines = aws_lines([date(2026, 10, 1), date(2026, 10, 2)])
    print(len(lines), lines[0].cols["ServiceName"])
    ```
"""

from __future__ import annotations

import json
from datetime import date
from typing import Any

from samples.datafiles import load_json
from samples.focus_exports.constants import AWS_RUNAWAY_DAYS
from samples.focus_exports.lines import ChargeLine, compact_json, month_firsts, stable_id

_DATA = load_json("focus_tables", "aws.json")
_AWS_PAYER = _DATA["payer"]  # [id, name]
_AWS_ACCOUNTS = _DATA["accounts"]  # [id, name, team, env, cost center]
_AWS_REGIONS = _DATA["regions"]  # id -> [name, usage type prefix, price factor]
# key -> [ServiceName, ServiceCategory, x_ServiceCode, ResourceId template]
_AWS_SERVICES = _DATA["services"]
_AWS_RESOURCE_TYPES = _DATA["resource_types"]
_AWS_EC2_PRICES = _DATA["ec2_prices"]
_AWS_SP_ID = _DATA["savings_plan_id"]
_AWS_SP_RATE = _DATA["savings_plan_rate"]  # Compute Savings Plan price / on-demand price
# EC2 fleets: [sub-account, region, type, count, day pattern, note]. Instances run 24 h/day.
_AWS_FLEETS = _DATA["fleets"]
# m5.xlarge in sub-account #1, us-east-1, fully covered by the plan
_AWS_SP_INSTANCES = next(fleet[3] for fleet in _AWS_FLEETS if fleet[5] == "savings-plan")
# Other usage: [sub-account, region, service, usage type, unit, price, quantity/day, pattern, name]
_AWS_USAGE = _DATA["usage"]


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
    return compact_json({"team": team, "env": env, "cost-center": cost_center})


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
) -> ChargeLine:
    template = _AWS_SERVICES[service][3]
    resource_id = template.format(
        region=region, account=_AWS_ACCOUNTS[acct][0], name=resource or name
    )
    sku = stable_id("aws", service, region, usage_type, n=16)
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
        SkuPriceId=f"{sku}.JRTCKXETXF.{stable_id('price', sku, n=10)}",
        Tags=_aws_tags(acct) if tags is None and name else (tags or ""),
        x_Operation=usage_type.split(":")[0],
        x_UsageType=_AWS_REGIONS[region][1] + usage_type,
    )
    return ChargeLine(
        cols=cols, price=price * _AWS_REGIONS[region][2], qty=qty, pattern=pattern, **line
    )


def aws_lines(days: list[date]) -> list[ChargeLine]:
    lines: list[ChargeLine] = []
    count: dict[tuple[int, str], int] = {}
    for acct, region, itype, n, pattern, note in _AWS_FLEETS:
        for _ in range(n):
            i = count[acct, region] = count.get((acct, region), -1) + 1
            iid = "i-0" + stable_id(
                "i", str(acct), region, str(i), n=16, alphabet="0123456789abcdef"
            )
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
        SkuId=stable_id("aws", "ComputeSavingsPlans", n=16),
        x_UsageType="ComputeSP:1yrNoUpfront",
    )
    lines.append(ChargeLine(cols=sp, fixed=fee, kind="fee", scalable=False))
    for month in month_firsts(days):
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
                ChargeLine(
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
            ChargeLine(
                cols=credit, fixed=-250.0, kind="credit", days=frozenset({month}), scalable=False
            )
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
        ChargeLine(
            cols=refund,
            fixed=-12.0,
            kind="refund",
            days=frozenset({date(2026, 10, 20)}),
            scalable=False,
        )
    )
    return lines
