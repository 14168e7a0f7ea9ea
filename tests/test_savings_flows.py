"""collect-resources and recommend-savings under a real Prefect API: the bundled sample
inventory, and a live AWS account on the moto server (EC2, EBS, EIP, CloudWatch)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import boto3
import pytest

from flows.savings import (
    INVENTORY_KEY,
    RECOMMENDATIONS_KEY,
    SUMMARY_KEY,
    SavingsReport,
    collect_resources,
    recommend_savings,
)
from samples.inventory import sample_inventory

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

REGION = "ap-northeast-1"  # no other test creates resources here on the shared moto server


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("OPSFLOW_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def test_sample_inventory_recommendations(harness, home):
    report = recommend_savings(samples=True)
    assert isinstance(report, SavingsReport)
    assert report.resources == len(sample_inventory()) and not report.partial
    kinds = {r.kind for r in report.recommendations}
    assert {"rightsize", "idle", "tagging"} <= kinds
    savings = [r.estimated_monthly_saving for r in report.recommendations]
    assert savings == sorted(savings, reverse=True)  # largest saving first
    titles = " ".join(r.title for r in report.recommendations)
    assert "m7i.4xlarge -> m7i.2xlarge" in titles  # checkout-api at 4% CPU
    assert "eipalloc-0a1b2c3d4e5f00001" in titles  # the unassociated Elastic IP
    assert "nat-0a1b2c3d4e5f00001" in titles  # the NAT gateway that sends nothing
    assert report.estimated_monthly_saving == pytest.approx(sum(savings), abs=0.05)
    assert report.by_kind["rightsize"] > 0
    # the busy search indexer has nothing to fix; the untagged idle bastion scores low
    assert report.scores["i-0a1b2c3d4e5f60003"] == 100
    assert report.scores["i-0a1b2c3d4e5f60008"] < 100
    assert any("demo cost dataset is empty" in n for n in report.notes)
    assert not (home / "costs").exists()  # reading the demo dataset never creates the real one

    from prefect import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    keys = [INVENTORY_KEY, RECOMMENDATIONS_KEY, SUMMARY_KEY]
    with get_client(sync_client=True) as client:
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=keys))
        )
    assert {a.key for a in found} == set(keys)


def test_a_sample_run_reads_commitments_from_the_demo_dataset_only(harness, home):
    """Real costs in the default dataset never mix with the sample inventory, and the
    demo dataset's costs never reach a real run."""
    from flows.collect_costs import collect_costs
    from samples.focus_exports import bundled_export_paths

    aws_export = next(str(p) for p in bundled_export_paths() if "aws" in p.name)
    real = collect_costs(focus_exports=[aws_export])  # the default dataset: AWS only
    assert real.dataset == str(home / "costs") and real.dataset_rows > 0
    before = recommend_savings(samples=True)  # the demo dataset is still empty
    assert not [r for r in before.recommendations if r.kind == "commitment"]
    assert any("demo cost dataset is empty" in n for n in before.notes)
    collect_costs(samples=True)  # the demo dataset: three clouds
    report = recommend_savings(samples=True)
    committed = {r.provider for r in report.recommendations if r.kind == "commitment"}
    assert committed == {"aws", "azure", "gcp"}  # from the demo dataset, not the real one


def test_nothing_configured_fails_fast_naming_what_to_set(harness, home):
    for flow, name in (
        (collect_resources, "collect-resources"),
        (recommend_savings, "recommend-savings"),
    ):
        state = flow(return_state=True)
        assert state.is_failed()
        assert (
            "no resource source configured: set aws, azure or gcp (run parameters, or "
            f"[flows.{name}.parameters] in opsflow.toml), or samples: true"
        ) in state.message
    assert not (home / "costs").exists() and not (home / "demo").exists()
    with pytest.raises(ValueError, match="drop aws or samples"):
        recommend_savings(samples=True, aws=[{"regions": [REGION]}])
    with pytest.raises(ValueError, match="drop dataset_url or samples"):
        recommend_savings(samples=True, dataset_url=str(home / "costs"))


@pytest.fixture(scope="module")
def aws_world(moto_url):
    kw = dict(
        endpoint_url=moto_url,
        region_name=REGION,
        aws_access_key_id="AKIATESTING",
        aws_secret_access_key="testing",
    )
    ec2, cw = boto3.client("ec2", **kw), boto3.client("cloudwatch", **kw)
    image = ec2.describe_images()["Images"][0]["ImageId"]
    idle = ec2.run_instances(
        ImageId=image,
        MinCount=1,
        MaxCount=1,
        InstanceType="m7i.2xlarge",
        TagSpecifications=[
            {
                "ResourceType": "instance",
                "Tags": [
                    {"Key": k, "Value": v}
                    for k, v in {"owner": "o", "team": "t", "env": "e"}.items()
                ],
            }
        ],
    )["Instances"][0]["InstanceId"]
    loose = ec2.create_volume(Size=300, AvailabilityZone=f"{REGION}a", VolumeType="gp3")["VolumeId"]
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    cw.put_metric_data(
        Namespace="AWS/EC2",
        MetricData=[
            {
                "MetricName": "CPUUtilization",
                "Dimensions": [{"Name": "InstanceId", "Value": idle}],
                "Timestamp": now - timedelta(hours=h, minutes=-20),
                "Value": 3.0,
            }
            for h in range(1, 25)
        ],
    )
    return {"idle": idle, "loose": loose}


def test_live_aws_inventory_and_a_region_that_fails(
    harness, home, aws_world, moto_url, monkeypatch
):
    from prefect_aws import AwsCredentials

    from tasks.inventory.aws import collect_aws_resources

    monkeypatch.setattr(collect_aws_resources, "retry_delay_seconds", 0)
    AwsCredentials(
        aws_access_key_id="AKIATESTING",
        aws_secret_access_key="testing",
        region_name=REGION,
        aws_client_parameters={"endpoint_url": moto_url},
    ).save("moto-inventory", overwrite=True)
    AwsCredentials(
        aws_access_key_id="AKIATESTING",
        aws_secret_access_key="testing",
        region_name=REGION,
        aws_client_parameters={"endpoint_url": "http://127.0.0.1:9"},  # refused
    ).save("unreachable", overwrite=True)
    inventory = collect_resources(
        aws=[
            {"credentials_block": "moto-inventory", "regions": [REGION]},
            {"credentials_block": "unreachable", "regions": ["us-east-1"]},
        ],
        metrics_days=1,
    )
    assert inventory.partial and inventory.missing[0].startswith("aws:us-east-1")
    ids = {r.id for r in inventory.resources}
    assert {aws_world["idle"], aws_world["loose"]} <= ids

    report = recommend_savings(
        aws=[{"credentials_block": "moto-inventory", "regions": [REGION]}],
        metrics_days=1,
        include_commitments=False,
    )
    by_resource = {(r.kind, r.resource_id): r for r in report.recommendations}
    resize = by_resource[("rightsize", aws_world["idle"])]
    assert "m7i.2xlarge -> m7i.xlarge" in resize.action
    assert resize.estimated_monthly_saving > 0
    loose = by_resource[("idle", aws_world["loose"])]
    assert loose.estimated_monthly_saving == pytest.approx(loose.current_monthly_cost)


def test_bad_source_parameters_are_named(harness, home):
    from flows.params import InvalidParameters, validate_parameters

    with pytest.raises(InvalidParameters, match="regions"):
        validate_parameters(collect_resources, {"aws": [{"regions": []}]})
    with pytest.raises(ValueError, match="azure\\[0\\].credentials_block"):
        collect_resources(azure=[{"subscription_id": "x", "credentials_block": "missing"}])
