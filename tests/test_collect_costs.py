"""The collect-costs flow end to end under a real Prefect API: bundled exports, explicit
exports, AWS Cost Explorer through moto, incremental windows, partial results, rate
limits and secrets."""

from __future__ import annotations

import json
import logging
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pyarrow.compute as pc
import pytest

from flows.collect_costs import (
    NO_SOURCE,
    RECOMMENDATIONS_KEY,
    SUMMARY_KEY,
    TOP_COSTS_KEY,
    CostCollection,
    collect_costs,
)
from samples.focus_exports import bundled_export_paths
from tasks.costs.dataset import CostDataset
from tasks.costs.normalize.quarantine import QUARANTINE_CODES
from tests.servers.aws_cost_explorer import CostExplorerProxy, day, group, queue_ce

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

CANARY = "canary-Zq81-never-print-this"


@pytest.fixture
def home(tmp_path, monkeypatch):
    """A fresh data folder per test, so datasets and reports start empty."""
    monkeypatch.setenv("OPSFLOW_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


@pytest.fixture
def fast_retries(monkeypatch):
    from tasks.costs.aws import aws_cost_slices, fetch_aws_costs
    from tasks.costs.azure import fetch_azure_costs

    for t in (fetch_aws_costs, aws_cost_slices, fetch_azure_costs):
        monkeypatch.setattr(t, "retry_delay_seconds", 0)


def artifacts(keys: list[str]) -> dict[str, object]:
    from prefect import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    with get_client(sync_client=True) as client:
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=keys))
        )
    return {a.key: a.data for a in found}


def test_bundled_exports_land_once_and_are_explained(harness, home):
    first = collect_costs(samples=True)
    assert isinstance(first, CostCollection)
    assert not first.partial, first.missing
    # a sample run lands in the demo dataset only: nothing in the real one
    assert first.dataset == str(home / "demo" / "costs")
    assert (home / "demo" / "costs" / "_manifest.json").exists()
    assert not (home / "costs").exists() and not (home / "reports").exists()
    assert not (home / "quarantine").exists()
    assert CostDataset().row_count() == 0
    assert {o.kind for o in first.sources} == {"focus-export"}
    assert len(first.sources) == len(bundled_export_paths()) == 3
    assert {p.key for p in first.summary.by_provider} == {"aws", "azure", "gcp"}
    assert first.dataset_rows == sum(o.rows for o in first.sources) > 1000
    q = first.quarantine
    assert q.rows == sum(o.quarantined for o in first.sources) > 0
    assert sum(q.by_reason.values()) == q.rows
    assert set(q.by_reason) <= set(QUARANTINE_CODES)
    assert len(list(Path(q.folder).glob("*.csv"))) == 3
    assert Path(q.folder).is_relative_to(home / "demo" / "quarantine")
    # Planted signals: runaway EC2 autoscaling and a BigQuery spike.
    spikes = {(a.provider, a.day) for a in first.summary.anomalies}
    assert ("aws", date(2026, 11, 12)) in spikes
    assert ("gcp", date(2026, 11, 5)) in spikes
    assert any(r.kind == "commitment" for r in first.recommendations)
    mtd = first.summary.month_to_date
    assert mtd.month == "2026-11" and mtd.forecast_month_end > mtd.effective_cost
    assert first.summary.unconverted  # the EUR billing profile is not summed as dollars

    second = collect_costs(samples=True)
    assert second.dataset_rows == first.dataset_rows  # nothing duplicated
    assert sum(o.rows_replaced for o in second.sources) == first.dataset_rows
    assert second.summary.effective_cost == first.summary.effective_cost

    shown = artifacts([TOP_COSTS_KEY, RECOMMENDATIONS_KEY, SUMMARY_KEY])
    assert set(shown) == {TOP_COSTS_KEY, RECOMMENDATIONS_KEY, SUMMARY_KEY}
    assert "data:image/svg+xml;base64," in shown[SUMMARY_KEY]
    assert "Cost anomalies" in shown[SUMMARY_KEY]
    report, chart = (
        (home / "demo" / "reports" / "collect-costs.md"),
        (home / "demo" / "reports" / "collect-costs-daily.svg"),
    )
    assert report.exists() and chart.read_text().startswith("<svg")
    assert second.report_files == [str(report), str(chart)]
    assert not (home / "costs").exists() and not (home / "reports").exists()


def test_nothing_configured_fails_fast_and_writes_nothing(harness, home):
    """A scheduled run with no source (a stock serve) must not invent data anywhere."""
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    state = collect_costs(return_state=True)
    assert state.is_failed()
    assert NO_SOURCE in state.message and "samples: true" in state.message
    with pytest.raises(ValueError) as err:
        state.result()
    assert str(err.value) == NO_SOURCE and "\n" not in NO_SOURCE
    assert "focus_exports" in NO_SOURCE and "[flows.collect-costs.parameters]" in NO_SOURCE
    assert not (home / "costs").exists()
    assert not (home / "demo").exists() and not (home / "reports").exists()
    assert not (home / "quarantine").exists()
    from prefect import get_client

    with get_client(sync_client=True) as client:
        published = client.read_artifacts(
            artifact_filter=ArtifactFilter(
                flow_run_id=ArtifactFilterFlowRunId(any_=[state.state_details.flow_run_id])
            )
        )
    assert [a.key for a in published if a.type] == []  # no table, no markdown
    # an empty list of exports is nothing to collect too
    with pytest.raises(ValueError, match="no cost source configured"):
        collect_costs(focus_exports=[])


def test_samples_are_never_mixed_with_real_sources_or_datasets(harness, home):
    with pytest.raises(ValueError, match="^samples: .*drop aws or samples$"):
        collect_costs(samples=True, aws=[{"credentials_block": "payer"}])
    with pytest.raises(ValueError, match="drop dataset_url or samples"):
        collect_costs(samples=True, dataset_url=str(home / "costs"))
    assert not (home / "costs").exists() and not (home / "demo").exists()


def test_explicit_exports_only_and_fx_rates(harness, home):
    gcp_export = [p for p in bundled_export_paths() if "gcp" in p.name]
    result = collect_costs(focus_exports=[str(p) for p in gcp_export], fx_rates={"EUR": 1.1})
    assert [p.key for p in result.summary.by_provider] == ["gcp"]
    assert result.sources[0].providers == ["gcp"]


def test_bad_export_makes_a_partial_result_and_others_land(harness, home):
    good = [str(p) for p in bundled_export_paths() if "gcp" in p.name]
    missing = str(home / "no-such-export.csv")
    result = collect_costs(focus_exports=good + [missing])
    assert result.partial
    assert len(result.missing) == 1 and "no-such-export.csv" in result.missing[0]
    statuses = {o.source: o.status for o in result.sources}
    assert statuses == {good[0]: "collected", missing: "failed"}
    assert result.dataset_rows > 0


# --------------------------------------------------------------------- AWS through moto


@pytest.fixture
def ce_proxy(moto_url):
    with CostExplorerProxy(moto_url) as server:
        yield server


def save_aws_block(url: str, name: str, secret: str = "testing-secret") -> str:
    from prefect_aws import AwsCredentials

    AwsCredentials(
        aws_access_key_id="AKIATESTING",
        aws_secret_access_key=secret,
        region_name="us-east-1",
        aws_client_parameters={"endpoint_url": url},
    ).save(name, overwrite=True)
    return name


def ce_days(first: date, days: int, amount: float) -> dict:
    return {
        "ResultsByTime": [
            day(
                str(first + timedelta(days=i)),
                str(first + timedelta(days=i + 1)),
                [
                    group(
                        "Amazon Elastic Compute Cloud - Compute",
                        "team$web",
                        str(amount),
                        str(amount),
                    ),
                    group("Amazon Simple Storage Service", "team$", "1.25", "1.25"),
                ],
            )
            for i in range(days)
        ],
        "DimensionValueAttributes": [],
    }


def test_aws_cost_explorer_end_to_end_and_incremental(harness, home, ce_proxy, moto_url):
    from prefect import get_client

    block = save_aws_block(ce_proxy.url, "moto-ce")
    source = {
        "credentials_block": block,
        "accounts": ["111111111111"],
        "regions": ["us-east-1"],
        "tag_key": "team",
    }
    queue_ce(moto_url, [ce_days(date(2023, 5, 1), 4, 10.0)])
    first = collect_costs(
        aws=[source], start=date(2023, 5, 1), end=date(2023, 5, 5), api_rate_limits={"aws": 20}
    )
    assert not first.partial, first.missing
    (outcome,) = first.sources
    assert outcome.source == "aws-ce:111111111111:us-east-1" and outcome.status == "collected"
    assert outcome.rows == 8 and outcome.window == (date(2023, 5, 1), date(2023, 5, 5))
    assert first.summary.effective_cost == pytest.approx(4 * 11.25)
    dataset = CostDataset()
    assert dataset.watermark(outcome.source) == date(2023, 5, 4)
    tags = dataset.read().column("Tags").to_pylist()
    assert [("team", "web")] in tags

    # Incremental: no start -> from the watermark minus 2 look-back days; restated costs
    # replace the overlapping days, older days stay, nothing is duplicated.
    queue_ce(moto_url, [ce_days(date(2023, 5, 3), 4, 20.0)])
    second = collect_costs(aws=[source], end=date(2023, 5, 7), lookback_days=2)
    assert second.sources[0].window == (date(2023, 5, 3), date(2023, 5, 7))
    request = ce_proxy.ce_calls("GetCostAndUsage")[-1]
    assert request["TimePeriod"] == {"Start": "2023-05-03", "End": "2023-05-07"}
    table = CostDataset().read()
    per_day = {}
    for start, cost in zip(
        table.column("ChargePeriodStart").to_pylist(),
        table.column("EffectiveCost").to_pylist(),
        strict=True,
    ):
        per_day[start.date()] = per_day.get(start.date(), 0) + cost
    assert per_day == {
        date(2023, 5, 1): 11.25,
        date(2023, 5, 2): 11.25,
        date(2023, 5, 3): 21.25,
        date(2023, 5, 4): 21.25,
        date(2023, 5, 5): 21.25,
        date(2023, 5, 6): 21.25,
    }
    assert CostDataset().watermark(outcome.source) == date(2023, 5, 6)
    assert pc.max(table.column("ChargePeriodStart")).as_py() < datetime(2023, 5, 7, tzinfo=UTC)

    # The provider-wide rate limit is a real, active Prefect global concurrency limit.
    with get_client(sync_client=True) as client:
        limit = client.read_global_concurrency_limit_by_name("opsflow-api-aws")
    assert limit.active and limit.slot_decay_per_second == 20


def test_a_source_that_stays_down_is_named_and_its_secret_never_shown(
    harness, home, ce_proxy, moto_url, fast_retries, caplog
):
    from blocks.azure import AzureCredentials

    AzureCredentials(
        tenant_id="00000000-0000-0000-0000-000000000001",
        client_id="00000000-0000-0000-0000-000000000002",
        client_secret=CANARY,
        authority_host="https://127.0.0.1:9",  # nothing listens: connection refused
        resource_manager_url="https://127.0.0.1:9",
    ).save("unreachable", overwrite=True)
    block = save_aws_block(ce_proxy.url, "moto-ce-2", secret=CANARY + "-aws")
    queue_ce(moto_url, [ce_days(date(2023, 6, 1), 2, 5.0)])
    caplog.set_level(logging.DEBUG)
    result = collect_costs(
        aws=[{"credentials_block": block, "accounts": ["111111111111"], "regions": ["us-east-1"]}],
        azure=[
            {
                "scope": "/subscriptions/00000000-0000-0000-0000-0000000000aa",
                "credentials_block": "unreachable",
            }
        ],
        start=date(2023, 6, 1),
        end=date(2023, 6, 3),
    )
    assert result.partial
    statuses = {o.kind: o.status for o in result.sources}
    assert statuses == {"aws-ce": "collected", "azure-cost": "failed"}
    assert result.missing[0].startswith("azure-cost:/subscriptions/")
    assert result.summary.effective_cost == pytest.approx(2 * 6.25)
    dumped = result.model_dump_json()
    shown = json.dumps(artifacts([TOP_COSTS_KEY, RECOMMENDATIONS_KEY, SUMMARY_KEY]))
    for text in (dumped, shown, caplog.text, (home / "reports" / "collect-costs.md").read_text()):
        assert CANARY not in text


def test_bad_parameters_are_rejected_before_any_call(harness, home):
    from flows.params import InvalidParameters, validate_parameters

    with pytest.raises(InvalidParameters, match="currency"):
        validate_parameters(collect_costs, {"currency": "dollars"})
    with pytest.raises(InvalidParameters, match="fx_rates"):
        validate_parameters(collect_costs, {"fx_rates": {"EUR": -1}})
    with pytest.raises(ValueError, match="start"):
        collect_costs(start=date(2024, 2, 1), end=date(2024, 1, 1), focus_exports=[])
    with pytest.raises(ValueError, match="aws\\[0\\].credentials_block"):
        collect_costs(aws=[{"credentials_block": "no-such-block"}])


def test_exports_and_dataset_in_s3_through_blocks(harness, home, moto_url):
    """An export read from s3:// with an AwsCredentials block, the dataset kept in an
    S3 bucket through a prefect-aws S3Bucket storage block (both on the moto server)."""
    import boto3
    from prefect_aws import AwsCredentials, S3Bucket

    creds = AwsCredentials(
        aws_access_key_id="AKIATESTING",
        aws_secret_access_key="testing",
        region_name="us-east-1",
        aws_client_parameters={"endpoint_url": moto_url},
    )
    creds.save("moto-s3", overwrite=True)
    S3Bucket(bucket_name="finops-costs", credentials=creds).save("finops", overwrite=True)
    s3 = boto3.client(
        "s3",
        endpoint_url=moto_url,
        region_name="us-east-1",
        aws_access_key_id="AKIATESTING",
        aws_secret_access_key="testing",
    )
    for bucket in ("finops-exports", "finops-costs"):
        s3.create_bucket(Bucket=bucket)
    gcp_export = next(p for p in bundled_export_paths() if "gcp" in p.name)
    s3.upload_file(str(gcp_export), "finops-exports", "focus/2026-11/export.parquet")

    params = {
        "focus_exports": ["s3://finops-exports/focus/2026-11/export.parquet"],
        "export_access": {"aws_credentials_block": "moto-s3"},
        "dataset_block": "s3-bucket/finops",
    }
    first = collect_costs(**params)
    assert not first.partial, first.missing
    assert first.dataset == "s3://finops-costs/costs"
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket="finops-costs")["Contents"]}
    assert "costs/_manifest.json" in keys
    assert any(k.startswith("costs/provider=gcp/billing_period=2026-11/") for k in keys)
    second = collect_costs(**params)
    assert second.dataset_rows == first.dataset_rows == first.sources[0].rows
    assert not (home / "costs").exists()  # nothing went to the local default
