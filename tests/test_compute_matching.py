"""Pure matching, pricing and recommendation logic on a small hand-made catalog."""

import pytest

from tasks.pricing.catalog import Catalog, ProviderCatalog
from tasks.pricing.compute import ComputeRequest, match_options, recommend, resolve_regions
from tasks.pricing.gpu import normalize_gpu


def _catalog() -> Catalog:
    def region(id_, geo, storage=0.1):
        return {"id": id_, "name": id_, "geo": geo, "block_storage_gib_month": storage}

    aws = ProviderCatalog.model_validate(
        {
            "provider": "aws",
            "as_of": "2025-06-01",
            "source": "test",
            "regions": [region("us-east-1", "us", 0.08), region("eu-west-1", "europe", 0.088)],
            "instances": [
                {
                    "name": "m.large",
                    "family": "m",
                    "category": "general",
                    "vcpus": 2,
                    "memory_gib": 8,
                    "spot_interruption": "low",
                    "prices": {
                        "us-east-1": {"on_demand": 0.10, "spot": 0.04},
                        "eu-west-1": {"on_demand": 0.11, "spot": 0.05},
                    },
                },
                {
                    "name": "m.xlarge",
                    "family": "m",
                    "category": "general",
                    "vcpus": 4,
                    "memory_gib": 16,
                    "spot_interruption": "high",
                    "prices": {"us-east-1": {"on_demand": 0.20, "spot": 0.06}},
                },
                {
                    "name": "p.gpu",
                    "family": "p",
                    "category": "gpu",
                    "vcpus": 96,
                    "memory_gib": 1152,
                    "gpu": {"model": "nvidia-a100", "count": 8, "memory_gib": 40},
                    "prices": {"us-east-1": {"on_demand": 21.96}},
                },
            ],
        }
    )
    gcp = ProviderCatalog.model_validate(
        {
            "provider": "gcp",
            "as_of": "2025-05-01",
            "source": "test",
            "regions": [region("us-central1", "us"), region("europe-west4", "europe")],
            "instances": [
                {
                    "name": "n2-standard-4",
                    "family": "n2",
                    "category": "general",
                    "vcpus": 4,
                    "memory_gib": 16,
                    "prices": {
                        "us-central1": {"on_demand": 0.19},
                        "europe-west4": {"on_demand": 0.21},
                    },
                },
                {
                    "name": "a2-highgpu-1g",
                    "family": "a2",
                    "category": "gpu",
                    "vcpus": 12,
                    "memory_gib": 85,
                    "gpu": {"model": "nvidia-a100", "count": 1, "memory_gib": 40},
                    "prices": {"us-central1": {"on_demand": 3.67}},
                },
            ],
        }
    )
    azure = ProviderCatalog.model_validate(
        {
            "provider": "azure",
            "as_of": "2025-06-01",
            "source": "test",
            "regions": [region("eastus", "us")],
            "instances": [
                {
                    "name": "D4s_v5",
                    "family": "Dsv5",
                    "category": "general",
                    "vcpus": 4,
                    "memory_gib": 16,
                    "prices": {"eastus": {"on_demand": 0.192}},
                },
            ],
        }
    )
    return Catalog(version="test", providers={"aws": aws, "gcp": gcp, "azure": azure})


def _req(**kw) -> ComputeRequest:
    base = {"vcpus": 2, "memory_gib": 8, "providers": ["aws", "gcp", "azure"]}
    return ComputeRequest(**{**base, **kw})


def test_options_meet_or_exceed_and_are_ranked_by_monthly_cost():
    options = match_options(_catalog(), _req(vcpus=4, memory_gib=16))
    names = [o.instance_type for o in options]
    assert "m.large" not in names  # 2 vCPU < 4
    assert names[:3] == ["n2-standard-4", "D4s_v5", "m.xlarge"]
    monthly = [o.monthly_usd for o in options]
    assert monthly == sorted(monthly)
    assert options[0].monthly_usd == pytest.approx(0.19 * 730, abs=0.01)


def test_cheapest_region_only_keeps_one_row_per_type():
    options = match_options(_catalog(), _req(providers=["aws"]))
    assert [(o.instance_type, o.region) for o in options if o.instance_type == "m.large"] == [
        ("m.large", "us-east-1")
    ]
    every = match_options(_catalog(), _req(providers=["aws"], cheapest_region_only=False))
    assert {o.region for o in every if o.instance_type == "m.large"} == {"us-east-1", "eu-west-1"}


def test_gpu_machines_do_not_match_cpu_requests():
    options = match_options(_catalog(), _req(vcpus=64, memory_gib=512))
    assert options == []  # only the 8x A100 machine is that big


def test_storage_and_hours_are_priced():
    [opt, *_] = match_options(
        _catalog(), _req(providers=["aws"], storage_gib=100, hours_per_month=100)
    )
    assert opt.compute_monthly_usd == pytest.approx(10.0)
    assert opt.storage_monthly_usd == pytest.approx(8.0)
    assert opt.monthly_usd == pytest.approx(18.0)


@pytest.mark.parametrize("spelling", ["a100", "nvidia-tesla-a100", "NVIDIA A100", "p4d"])
def test_gpu_spellings_match_all_providers(spelling):
    req = _req(gpu_type=normalize_gpu(spelling), gpu_count=1)
    options = match_options(_catalog(), req)
    assert {o.instance_type for o in options} == {"a2-highgpu-1g", "p.gpu"}
    assert options[0].instance_type == "a2-highgpu-1g"


def test_gpu_count_and_memory_floors():
    assert [
        o.instance_type
        for o in match_options(_catalog(), _req(gpu_type="nvidia-a100", gpu_count=2))
    ] == ["p.gpu"]
    assert match_options(_catalog(), _req(gpu_type="nvidia-a100", gpu_memory_gib=80)) == []
    assert match_options(_catalog(), _req(gpu_type="nvidia-t4")) == []


def test_unknown_gpu_is_rejected_with_known_names():
    with pytest.raises(ValueError, match="unknown GPU type 'tpu-v5'.*nvidia-a100"):
        normalize_gpu("tpu-v5")


def test_region_id_selects_that_region_and_same_geography_elsewhere():
    allowed, notes = resolve_regions(_catalog(), "eu-west-1")
    assert allowed == {"aws": {"eu-west-1"}, "gcp": {"europe-west4"}, "azure": set()}
    assert "aws region" in notes[0]
    options = match_options(_catalog(), _req(region="europe"))
    assert {o.region for o in options} == {"eu-west-1", "europe-west4"}
    with pytest.raises(ValueError, match="unknown region"):
        resolve_regions(_catalog(), "mars-1")


def test_recommendation_explains_cheapest_and_spot_risk():
    options = match_options(_catalog(), _req(vcpus=4, memory_gib=16, spot_allowed=True))
    rec = recommend(options)
    assert rec.cheapest.instance_type == "n2-standard-4"
    assert rec.spot is not None and rec.spot.option.instance_type == "m.xlarge"
    assert rec.spot.interruption == "high"
    assert rec.option.pricing_model == "on_demand"  # high interruption risk: not recommended
    assert "interruption risk high" in rec.reason
    assert rec.spot.saving_pct == pytest.approx(100 * (1 - 0.06 / 0.19), abs=0.1)


def test_low_risk_spot_is_recommended():
    rec = recommend(match_options(_catalog(), _req(providers=["aws"], spot_allowed=True)))
    assert rec.option.pricing_model == "spot" and rec.option.instance_type == "m.large"
    assert rec.option.spot_saving_pct == pytest.approx(60.0)


def test_no_match_gives_no_recommendation():
    assert match_options(_catalog(), _req(vcpus=4096)) == []
    assert recommend([]) is None
