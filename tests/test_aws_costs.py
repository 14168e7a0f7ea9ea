"""AWS Cost Explorer collection (tasks.costs.aws): the FOCUS mapping alone, then the task
against moto (results queued via /moto-api/static/ce/cost-and-usage-results) behind a
local recording proxy that also answers GetDimensionValues (moto 5.2 does not implement
it) and injects throttling / access-denied errors.

moto keeps queued results keyed by request body for the whole session, so every test
uses its own date range and consumes everything it queues.
"""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime

import pytest
from botocore.exceptions import ClientError
from prefect_aws import AwsCredentials

from tasks.common.retry import RETRIES, one_line_reason, retry_on_transient
from tasks.costs.aws import (
    aws_cost_slices,
    ce_filter,
    ce_group_by,
    ce_to_focus,
    fetch_aws_costs,
    parse_tag_group_key,
    service_category,
    source_id,
)
from tasks.costs.focus_schema import REQUIRED, SCHEMA
from tests.conftest import task_run_count
from tests.servers.aws_cost_explorer import (
    MOTO_ACCOUNT,
    CostExplorerProxy,
    ce_error,
    day,
    group,
    one_day,
    queue_ce,
)

pytestmark = pytest.mark.filterwarnings("ignore:Logger 'prefect.task_runs' attempted:UserWarning")


@pytest.fixture
def proxy(moto_url):
    dims = {
        "LINKED_ACCOUNT": ["111111111111", "222222222222", "333333333333"],
        "REGION": ["us-east-1", "global"],
    }
    with CostExplorerProxy(moto_url, dims) as server:
        yield server


@pytest.fixture
def fast_retries(monkeypatch):
    """Keep the retry count and condition, drop the waiting (the backoff is unit-tested)."""
    for t in (fetch_aws_costs, aws_cost_slices):
        monkeypatch.setattr(t, "retry_delay_seconds", 0)


def block(url: str, secret: str = "testing-secret", **extra) -> AwsCredentials:
    return AwsCredentials(
        aws_access_key_id="AKIATESTING",
        aws_secret_access_key=secret,
        region_name="us-east-1",
        aws_client_parameters={"endpoint_url": url},
        **extra,
    )


# ------------------------------------------------------------------ pure mapping


def test_ce_to_focus_tag_grouping():
    results = [
        day(
            "2025-12-31",
            "2026-01-01",
            [
                group("Amazon Elastic Compute Cloud - Compute", "team$web", "12.5", "10.25"),
                group("Amazon Simple Storage Service", "team$", "1.0", "1.0"),
                group("Tax", "team$", "2.0", "2.0"),
                group("Savings Plans for AWS Compute usage", "team$", "30", "0"),
                group("AWS Lambda", "team$web", "-3.0", "-3.0"),  # a credit
                group("Some New Service", "team$data", "0.5", "0.5"),
            ],
            estimated=True,
        )
    ]
    t = ce_to_focus(
        results,
        billing_account_id="999999999999",
        account_id="111111111111",
        region="us-east-1",
        tag_key="team",
    )
    assert t.schema.equals(SCHEMA)
    rows = t.to_pylist()
    assert len(rows) == 6
    ec2 = rows[0]
    assert (ec2["BilledCost"], ec2["EffectiveCost"], ec2["ListCost"], ec2["ContractedCost"]) == (
        12.5,
        10.25,
        12.5,
        12.5,
    )
    assert ec2["ProviderName"] == ec2["PublisherName"] == ec2["InvoiceIssuerName"] == "AWS"
    assert (ec2["BillingAccountId"], ec2["SubAccountId"]) == ("999999999999", "111111111111")
    assert ec2["ServiceName"] == "Amazon Elastic Compute Cloud - Compute"
    assert ec2["ServiceCategory"] == "Compute" and ec2["ChargeCategory"] == "Usage"
    assert ec2["RegionId"] == "us-east-1" and ec2["BillingCurrency"] == "USD"
    assert ec2["ChargePeriodStart"] == datetime(2025, 12, 31, tzinfo=UTC)
    assert ec2["ChargePeriodEnd"] == datetime(2026, 1, 1, tzinfo=UTC)
    assert ec2["BillingPeriodStart"] == datetime(2025, 12, 1, tzinfo=UTC)
    assert ec2["BillingPeriodEnd"] == datetime(2026, 1, 1, tzinfo=UTC)
    assert ec2["Tags"] == [("team", "web")]
    assert ec2["ConsumedQuantity"] is None and ec2["ConsumedUnit"] is None  # "N/A" unit
    assert ec2["x_SourceId"] == "aws-ce:111111111111:us-east-1"
    assert rows[1]["Tags"] == [] and rows[1]["ServiceCategory"] == "Storage"  # untagged
    assert rows[2]["ChargeCategory"] == "Tax" and rows[2]["ServiceCategory"] == "Other"
    assert rows[3]["ChargeCategory"] == "Purchase"
    assert rows[4]["ChargeCategory"] == "Credit"
    assert rows[5]["ServiceCategory"] == "Other"
    for row in rows:
        assert all(row[c] is not None for c in REQUIRED), row


def test_ce_to_focus_usage_type_grouping_and_non_regional_slice():
    results = [
        day(
            "2026-02-03",
            "2026-02-04",
            [
                group("Amazon Route 53", "HostedZone", "0.5", "0.5", qty="1", unit="N/A"),
                group("EC2 - Other", "USE1-EBS:VolumeUsage.gp3", "0.8", "0.8", "10", "GB-Mo"),
                {"Keys": ["Broken"], "Metrics": {}},  # no UnblendedCost: skipped
            ],
        )
    ]
    t = ce_to_focus(results, billing_account_id="999999999999", region="global")
    r53, ebs = t.to_pylist()
    assert r53["RegionId"] is None and r53["x_SourceId"] == "aws-ce:all:global"
    assert r53["SubAccountId"] is None and r53["Tags"] is None  # not grouped by a tag
    assert r53["ServiceCategory"] == "Networking"
    assert ebs["SkuMeter"] == ebs["ChargeDescription"] == "USE1-EBS:VolumeUsage.gp3"
    assert (ebs["ConsumedQuantity"], ebs["ConsumedUnit"]) == (10.0, "GB-Mo")
    assert ebs["BillingPeriodEnd"] == datetime(2026, 3, 1, tzinfo=UTC)
    assert ce_to_focus([], billing_account_id="1").num_rows == 0


def test_request_shapes():
    assert ce_filter(None, None) is None
    assert ce_filter("111111111111", None) == {
        "Dimensions": {
            "Key": "LINKED_ACCOUNT",
            "Values": ["111111111111"],
            "MatchOptions": ["EQUALS"],
        }
    }
    both = ce_filter("111111111111", "eu-west-1")
    assert [d["Dimensions"]["Key"] for d in both["And"]] == ["LINKED_ACCOUNT", "REGION"]
    assert ce_group_by("team") == [
        {"Type": "DIMENSION", "Key": "SERVICE"},
        {"Type": "TAG", "Key": "team"},
    ]
    assert ce_group_by(None)[1] == {"Type": "DIMENSION", "Key": "USAGE_TYPE"}
    assert source_id(None, None) == "aws-ce:all:all"
    assert parse_tag_group_key("env$prod$blue", "env") == {"env": "prod$blue"}
    assert parse_tag_group_key("env$", "env") == {}
    assert service_category("amazon simple storage service ") == "Storage"


# ---------------------------------------------------------------- against moto


def test_fetch_paginates_filters_and_groups(proxy, moto_url):
    page1 = {
        "ResultsByTime": [
            day("2024-03-01", "2024-03-02", [group("AWS Lambda", "team$web", "1.5", "1.5")])
        ],
        "NextPageToken": "page-2",
        "DimensionValueAttributes": [],
    }
    page2 = {
        "ResultsByTime": [
            day(
                "2024-03-02",
                "2024-03-03",
                [
                    group("AWS Lambda", "team$web", "2.5", "2.0"),
                    group("Amazon Simple Storage Service", "team$", "0.25", "0.25"),
                ],
            )
        ],
        "DimensionValueAttributes": [],
    }
    queue_ce(moto_url, [page1, page2])
    t = fetch_aws_costs.fn(
        block(proxy.url),
        date(2024, 3, 1),
        date(2024, 3, 3),
        account_id="111111111111",
        region="eu-west-1",
        tag_key=" team ",
    )
    assert t.schema.equals(SCHEMA)
    assert t.column("BilledCost").to_pylist() == [1.5, 2.5, 0.25]
    assert t.column("EffectiveCost").to_pylist() == [1.5, 2.0, 0.25]
    assert set(t.column("BillingAccountId").to_pylist()) == {MOTO_ACCOUNT}  # from STS
    assert set(t.column("x_SourceId").to_pylist()) == {"aws-ce:111111111111:eu-west-1"}
    calls = proxy.ce_calls("GetCostAndUsage")
    assert len(calls) == 2
    first, second = calls
    assert "NextPageToken" not in first and second["NextPageToken"] == "page-2"
    assert first["TimePeriod"] == {"Start": "2024-03-01", "End": "2024-03-03"}
    assert first["Granularity"] == "DAILY"
    assert first["Metrics"] == ["UnblendedCost", "AmortizedCost", "UsageQuantity"]
    assert first["GroupBy"][1] == {"Type": "TAG", "Key": "team"}
    assert first["Filter"] == ce_filter("111111111111", "eu-west-1")


def test_fetch_with_given_payer_skips_sts(proxy, moto_url):
    queue_ce(
        moto_url,
        one_day("2024-04-01", "2024-04-02", "1"),
    )
    t = fetch_aws_costs.fn(
        block(proxy.url), date(2024, 4, 1), date(2024, 4, 2), billing_account_id="444444444444"
    )
    assert t.column("BillingAccountId").to_pylist() == ["444444444444"]
    assert t.column("SkuMeter").to_pylist() == ["x"]
    assert not any(b"GetCallerIdentity" in s.body for s in proxy.requests)


def test_block_assume_role_is_used_for_sts_and_cost_explorer(proxy, moto_url, monkeypatch):
    """prefect-aws 0.7.12 AwsCredentials supports ``assume_role_arn``: the assumed role's
    account (its own moto backend) answers both calls."""
    # the block's own STS call for AssumeRole does not use aws_client_parameters; the
    # standard per-service endpoint variable points it at the proxy
    monkeypatch.setenv("AWS_ENDPOINT_URL_STS", proxy.url)
    assumed = "222233334444"
    queue_ce(
        moto_url,
        one_day("2024-05-01", "2024-05-02", "7"),
        account_id=assumed,
    )
    creds = block(
        proxy.url,
        assume_role_arn=f"arn:aws:iam::{assumed}:role/opsflow-cost-reader",
        assume_role_kwargs={"RoleSessionName": "opsflow-test"},
    )
    t = fetch_aws_costs.fn(creds, date(2024, 5, 1), date(2024, 5, 2))
    assert t.column("BillingAccountId").to_pylist() == [assumed]
    assert t.column("BilledCost").to_pylist() == [7.0]  # queued only in the assumed account
    assert any(b"Action=AssumeRole" in s.body for s in proxy.requests)
    signed = [s.headers["authorization"] for s in proxy.requests if s.headers.get("x-amz-target")]
    assert signed and all("AKIATESTING" not in a for a in signed)  # temporary credentials


def test_invalid_input_is_rejected_before_any_call(proxy):
    creds = block(proxy.url)
    cases = [
        ({"start": date(2024, 1, 2), "end": date(2024, 1, 2)}, "end: must be after start"),
        ({"account_id": "12345"}, "account_id: must be a 12-digit"),
        ({"region": "us east"}, "region: must be a region code"),
        ({"tag_key": "  "}, "tag_key: must be a non-empty"),
    ]
    for kwargs, message in cases:
        args = {"start": date(2024, 1, 1), "end": date(2024, 1, 2), **kwargs}
        with pytest.raises(ValueError, match=message):
            fetch_aws_costs.fn(creds, args.pop("start"), args.pop("end"), **args)
    with pytest.raises(ValueError, match="region: must be"):
        aws_cost_slices.fn(creds, date(2024, 1, 1), date(2024, 1, 2), [], ["bad region"])
    assert proxy.requests == []


def test_slices_discovered_with_get_dimension_values(proxy):
    slices = aws_cost_slices.fn(block(proxy.url), date(2024, 6, 1), date(2024, 7, 1))
    assert slices == [
        (a, r)
        for a in ("111111111111", "222222222222", "333333333333")
        for r in ("global", "us-east-1")
    ]
    calls = proxy.ce_calls("GetDimensionValues")
    assert [c["Dimension"] for c in calls] == ["LINKED_ACCOUNT", "LINKED_ACCOUNT", "REGION"]
    assert calls[1]["NextPageToken"] == "2"  # three accounts, two per page
    assert calls[0]["TimePeriod"] == {"Start": "2024-06-01", "End": "2024-07-01"}


def test_slices_explicit_lists_need_no_call(proxy):
    creds = block(proxy.url)
    assert aws_cost_slices.fn(
        creds, date(2024, 6, 1), date(2024, 7, 1), ["111111111111"], ["us-east-1", "global"]
    ) == [("111111111111", "us-east-1"), ("111111111111", "global")]
    assert aws_cost_slices.fn(creds, date(2024, 6, 1), date(2024, 7, 1), [], []) == [(None, None)]
    assert proxy.requests == []
    proxy.dimensions = {}
    assert aws_cost_slices.fn(creds, date(2024, 6, 1), date(2024, 7, 1), ["111111111111"]) == [
        ("111111111111", None)
    ]


# ------------------------------------------------------------------------ retries


def test_tasks_use_the_retry_policy():
    for t in (fetch_aws_costs, aws_cost_slices):
        assert t.retries == RETRIES and t.retry_condition_fn is retry_on_transient
    assert fetch_aws_costs.name == "aws-cost-explorer"


def test_throttling_is_retried(harness, proxy, moto_url, fast_retries):
    queue_ce(
        moto_url,
        one_day("2024-07-01", "2024-07-02", "3"),
    )
    proxy.fail(400, ce_error("LimitExceededException", "Rate exceeded"), times=1)
    state = fetch_aws_costs(block(proxy.url), date(2024, 7, 1), date(2024, 7, 2), return_state=True)
    assert state.is_completed()
    assert state.result().column("BilledCost").to_pylist() == [3.0]
    assert proxy.faults_served == 1
    assert task_run_count(state) == 2  # the Prefect retry, not a hidden SDK retry
    assert len(proxy.ce_calls("GetCostAndUsage")) == 2


def test_access_denied_is_not_retried_and_leaks_no_secret(
    harness, proxy, fast_retries, caplog, capfd
):
    canary = "CANARY-ce-Qw8Zr1Tx5Lp0Mv3Ns6Ky"
    proxy.fail(400, ce_error("AccessDeniedException", "not authorized"), times=None)
    with caplog.at_level(logging.DEBUG):
        state = fetch_aws_costs(
            block(proxy.url, secret=canary),
            date(2024, 8, 1),
            date(2024, 8, 2),
            return_state=True,
        )
    assert state.is_failed()
    error = state.result(raise_on_failure=False)
    assert isinstance(error, ClientError)
    assert error.response["Error"]["Code"] == "AccessDeniedException"
    assert task_run_count(state) == 1
    assert len(proxy.ce_calls("GetCostAndUsage")) == 1
    out, err = capfd.readouterr()
    seen = [caplog.text, out, err, str(error), repr(error), state.message or ""]
    seen.append(one_line_reason(error, [canary]))
    seen += [s.headers.get("authorization", "") + s.body.decode() for s in proxy.requests]
    for text in seen:
        assert canary not in text
    assert "AccessDeniedException" in one_line_reason(error, [canary])
