"""Sanity checks on the bundled, dated compute price catalog (tasks/price_catalog/*.json).

These test the data, not the loader: every bundled file must validate against
ProviderCatalog and look like a plausible transcription of public list prices.
"""

from __future__ import annotations

from datetime import date

import pytest

from tasks.pricing.catalog import PROVIDERS, ProviderCatalog, bundled_path, load_provider
from tasks.pricing.gpu import GPU_MODELS, normalize_gpu

CATEGORIES = {"general", "compute", "memory", "gpu"}
REQUIRED_GPUS = {
    "aws": {"nvidia-t4", "nvidia-a100", "nvidia-h100", "nvidia-v100"},
    "gcp": {"nvidia-t4", "nvidia-a100", "nvidia-h100", "nvidia-v100"},
    "azure": {"nvidia-t4", "nvidia-a100", "nvidia-h100"},
}
# USD per vCPU-hour for on-demand CPU-only instances; anything outside is a typo.
CPU_BAND = (0.005, 0.5)
# USD per GPU-hour (whole instance price / GPU count), a loose bound for typos.
GPU_BAND = (0.1, 20.0)


@pytest.fixture(scope="module", params=PROVIDERS)
def catalog(request) -> ProviderCatalog:
    return load_provider(request.param)


def test_bundled_files_validate():
    for provider in PROVIDERS:
        path = bundled_path(provider)
        assert path.is_file(), path
        cat = ProviderCatalog.model_validate_json(path.read_text())
        assert cat.provider == provider
        assert cat.currency == "USD"
        assert cat.operating_system == "linux"


def test_dated_and_sourced(catalog):
    assert catalog.as_of <= date.today()
    assert catalog.as_of.year >= 2024
    assert catalog.source.strip()
    assert "http" in catalog.source
    assert catalog.notes.strip()


def test_regions_cover_us_europe_asia(catalog):
    ids = [r.id for r in catalog.regions]
    assert len(ids) == len(set(ids))
    assert len(ids) >= 3
    assert {"us", "europe", "asia"} <= {r.geo for r in catalog.regions}
    for region in catalog.regions:
        assert region.name
        assert 0.01 <= region.block_storage_gib_month <= 0.5


def test_instance_names_unique(catalog):
    names = [i.name for i in catalog.instances]
    assert len(names) == len(set(names))
    assert 30 <= len(names) <= 80


def test_every_category_present(catalog):
    assert {i.category for i in catalog.instances} == CATEGORIES


def test_gpu_spec_matches_category(catalog):
    for inst in catalog.instances:
        if inst.category == "gpu":
            assert inst.gpu is not None, inst.name
            assert inst.gpu.model in GPU_MODELS, inst.name
            assert normalize_gpu(inst.gpu.model) == inst.gpu.model
            assert inst.gpu.count <= 16
            assert 4 <= inst.gpu.memory_gib <= 200
        else:
            assert inst.gpu is None, inst.name


def test_required_gpu_models_present(catalog):
    models = {i.gpu.model for i in catalog.instances if i.gpu}
    assert REQUIRED_GPUS[catalog.provider] <= models
    assert models & {"nvidia-a10", "nvidia-l4"}


def test_whole_gpu_offered_for_each_model(catalog):
    """Fractional GPUs (Azure NVadsA10_v5 partitions) must not be the only way to get a model."""
    by_model: dict[str, list[float]] = {}
    for inst in catalog.instances:
        if inst.gpu:
            by_model.setdefault(inst.gpu.model, []).append(inst.gpu.count)
    for model, counts in by_model.items():
        assert max(counts) >= 1, model


def test_general_purpose_priced_in_every_region(catalog):
    region_ids = {r.id for r in catalog.regions}
    for inst in catalog.instances:
        if inst.category == "general":
            assert set(inst.prices) == region_ids, inst.name


def test_every_instance_has_a_price(catalog):
    for inst in catalog.instances:
        assert inst.prices, inst.name


def test_spot_below_on_demand(catalog):
    for inst in catalog.instances:
        for region, price in inst.prices.items():
            if price.spot is not None:
                assert 0 < price.spot < price.on_demand, (inst.name, region)


def test_spot_has_interruption_band(catalog):
    for inst in catalog.instances:
        if any(p.spot is not None for p in inst.prices.values()):
            assert inst.spot_interruption in {"low", "medium", "high"}, inst.name


def test_cpu_price_per_vcpu_in_band(catalog):
    lo, hi = CPU_BAND
    for inst in catalog.instances:
        if inst.gpu is not None:
            continue
        for region, price in inst.prices.items():
            per_vcpu = price.on_demand / inst.vcpus
            assert lo <= per_vcpu <= hi, (inst.name, region, per_vcpu)


def test_gpu_price_per_gpu_in_band(catalog):
    lo, hi = GPU_BAND
    for inst in catalog.instances:
        if inst.gpu is None:
            continue
        for region, price in inst.prices.items():
            per_gpu = price.on_demand / inst.gpu.count
            assert lo <= per_gpu <= hi, (inst.name, region, per_gpu)


def test_non_us_regions_not_cheaper_than_us(catalog):
    """List prices in Europe/Asia are at or above the cheapest US region (within 1%)."""
    geo = {r.id: r.geo for r in catalog.regions}
    for inst in catalog.instances:
        us = [p.on_demand for rid, p in inst.prices.items() if geo[rid] == "us"]
        if not us:
            continue
        for rid, price in inst.prices.items():
            if geo[rid] in {"europe", "asia"}:
                assert price.on_demand >= min(us) * 0.99, (inst.name, rid)
                assert price.on_demand <= min(us) * 1.6, (inst.name, rid)


def test_memory_ratio_by_category(catalog):
    """Memory-optimized types carry more GiB per vCPU than compute-optimized ones."""
    ratios: dict[str, list[float]] = {}
    for inst in catalog.instances:
        ratios.setdefault(inst.category, []).append(inst.memory_gib / inst.vcpus)
    assert min(ratios["memory"]) > max(ratios["compute"])
    assert min(ratios["memory"]) >= max(ratios["general"])


def test_larger_sizes_cost_more_within_a_family(catalog):
    for region in catalog.regions:
        families: dict[str, list[tuple[int, float]]] = {}
        for inst in catalog.instances:
            if inst.gpu is None and region.id in inst.prices:
                families.setdefault(inst.family, []).append(
                    (inst.vcpus, inst.prices[region.id].on_demand)
                )
        for family, rows in families.items():
            rows.sort()
            prices = [p for _, p in rows]
            assert prices == sorted(prices), (family, region.id)
