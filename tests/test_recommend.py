"""Pricing (tasks.pricing.resource_prices) and the resource rules and scores
(tasks.inventory.rules.resources, .scores): every rule at and around its thresholds, unknown
prices and scores; commitments are in test_commitments.py. Pure logic: no servers, no Prefect."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tasks.inventory.model import MetricSummary, Resource
from tasks.inventory.rules.recommendation import Recommendation
from tasks.inventory.rules.resources import NAT_IDLE_BYTES, missing_tags, recommend_resources
from tasks.inventory.rules.scores import optimization_scores
from tasks.pricing.catalog import (
    PROVIDERS,
    Catalog,
    GpuSpec,
    InstanceType,
    ProviderCatalog,
    Region,
    RegionPrice,
    load_provider,
)
from tasks.pricing.resource_prices import (
    GCP_UNUSED_ADDRESS_HOURLY,
    catalog_price,
    price_resources,
    region_geo,
    volume_gib_month,
)

NOW = datetime(2026, 6, 15, 12, tzinfo=UTC)
ALL_TAGS = {"owner": "a@example.com", "team": "web", "env": "prod"}


# ----------------------------------------------------------------------- catalogs


def _region(id_: str, geo: str, storage: float) -> Region:
    return Region(id=id_, name=id_, geo=geo, block_storage_gib_month=storage)


def _inst(name, family, vcpus, prices, gpu=None) -> InstanceType:
    return InstanceType(
        name=name,
        family=family,
        category="gpu" if gpu else "general",
        vcpus=vcpus,
        memory_gib=vcpus * 4,
        gpu=gpu,
        prices={r: RegionPrice(on_demand=p) for r, p in prices.items()},
    )


def small_catalog() -> Catalog:
    """m-family sizes 2/4/8/16 vCPU in us-east-1 and eu-west-1 (m.xlarge: US only), a GPU
    family, and empty Azure/GCP catalogs."""
    t4 = GpuSpec(model="nvidia-t4", count=1, memory_gib=16)
    aws = ProviderCatalog(
        provider="aws",
        as_of=date(2026, 1, 1),
        source="test",
        regions=[
            _region("us-east-1", "us", 0.08),
            _region("us-west-2", "us", 0.08),
            _region("eu-west-1", "europe", 0.088),
        ],
        instances=[
            _inst("m.large", "m", 2, {"us-east-1": 0.1, "eu-west-1": 0.11}),
            _inst("m.xlarge", "m", 4, {"us-east-1": 0.2}),
            _inst("m.2xlarge", "m", 8, {"us-east-1": 0.4, "eu-west-1": 0.44}),
            _inst("m.4xlarge", "m", 16, {"us-east-1": 0.8, "eu-west-1": 0.88}),
            _inst("g.xlarge", "g", 4, {"us-east-1": 0.5}, gpu=t4),
            _inst("g.2xlarge", "g", 8, {"us-east-1": 0.75}, gpu=t4),
        ],
    )
    empty = {
        p: ProviderCatalog(
            provider=p,
            as_of=date(2026, 1, 1),
            source="test",
            regions=[_region(r, "us", 0.1)],
            instances=[],
        )
        for p, r in (("azure", "eastus"), ("gcp", "us-central1"))
    }
    return Catalog(version="test", providers={"aws": aws, **empty})


@pytest.fixture(scope="module")
def bundled() -> Catalog:
    return Catalog(version="bundled", providers={p: load_provider(p) for p in PROVIDERS})


# ---------------------------------------------------------------------- resources


def cpu(avg, p95=None, maximum=None, datapoints=336, days=14) -> dict[str, MetricSummary]:
    return {
        "cpu_percent": MetricSummary(
            name="cpu_percent",
            period_days=days,
            datapoints=datapoints,
            average=avg,
            p95=p95,
            maximum=maximum,
        )
    }


def instance(id_="i-1", type_="m.2xlarge", state="running", region="us-east-1", **kw) -> Resource:
    kw.setdefault("tags", dict(ALL_TAGS))
    return Resource(
        id=id_,
        provider=kw.pop("provider", "aws"),
        account=kw.pop("account", "111122223333"),
        region=region,
        kind="instance",
        type=type_,
        state=state,
        **kw,
    )


def volume(id_="vol-1", attached_to=None, size=100, type_="gp3", **kw) -> Resource:
    kw.setdefault("tags", dict(ALL_TAGS))
    return Resource(
        id=id_,
        provider=kw.pop("provider", "aws"),
        account=kw.pop("account", "111122223333"),
        region=kw.pop("region", "us-east-1"),
        kind="volume",
        type=type_,
        state="in-use" if attached_to else "available",
        size_gib=size,
        attached_to=attached_to,
        **kw,
    )


def address(id_="eipalloc-1", attached_to=None, provider="aws", **kw) -> Resource:
    kw.setdefault("tags", dict(ALL_TAGS))
    return Resource(
        id=id_,
        provider=provider,
        account="111122223333",
        region="us-east-1",
        kind="address",
        type="elastic-ip",
        state="in-use" if attached_to else "available",
        attached_to=attached_to,
        **kw,
    )


def nat(id_="nat-1", bytes_avg=0.0, datapoints=336, created=NOW - timedelta(days=60), **kw):
    metrics = {}
    if datapoints is not None:
        metrics["bytes_out_to_destination"] = MetricSummary(
            name="bytes_out_to_destination",
            period_days=14,
            datapoints=datapoints,
            average=bytes_avg if datapoints else None,
            p95=bytes_avg if datapoints else None,
            maximum=bytes_avg if datapoints else None,
        )
    kw.setdefault("tags", dict(ALL_TAGS))
    return Resource(
        id=id_,
        provider=kw.pop("provider", "aws"),
        account="111122223333",
        region="eu-west-1",
        kind="nat_gateway",
        type="nat-public",
        state="available",
        created=created,
        metrics=metrics,
        **kw,
    )


def recs_for(resources, **kw):
    kw.setdefault("catalog", small_catalog())
    kw.setdefault("now", NOW)
    priced = price_resources(resources, catalog=kw["catalog"])
    return recommend_resources(priced, **kw)


def only(recs, kind):
    found = [r for r in recs if r.kind == kind]
    assert len(found) <= 1, found
    return found[0] if found else None


# ------------------------------------------------------------------------ pricing


@pytest.mark.parametrize(
    ("region", "geo"),
    [
        ("us-east-1", "us"),
        ("ca-central-1", "us"),
        ("eastus2", "us"),
        ("northamerica-northeast1", "us"),
        ("eu-central-1", "europe"),
        ("germanywestcentral", "europe"),
        ("austriaeast", "europe"),
        ("uksouth", "europe"),
        ("europe-west3", "europe"),
        ("ap-south-1", "asia"),
        ("australiaeast", "asia"),
        ("japanwest", "asia"),
        ("asia-southeast1", "asia"),
        ("sa-east-1", "other"),
        ("me-central1", "other"),
        ("brazilsouth", "other"),
    ],
)
def test_region_geo(region, geo):
    assert region_geo(region) == geo


def test_price_instances_by_state_and_type():
    cat = small_catalog()
    running, stopped, pending, unknown_state, unknown_type = price_resources(
        [
            instance("a"),
            instance("b", state="stopped"),
            instance("c", state="pending"),
            instance("d", state="unknown"),
            instance("e", type_="z.huge"),
        ],
        catalog=cat,
    )
    assert (running.hourly_price, running.monthly_cost, running.price_note) == (0.4, 292.0, None)
    assert (stopped.hourly_price, stopped.monthly_cost) == (0.4, 0.0)  # compute not billed
    assert pending.monthly_cost == 292.0
    assert (unknown_state.hourly_price, unknown_state.monthly_cost) == (0.4, None)
    assert (unknown_type.hourly_price, unknown_type.monthly_cost) == (None, None)  # never 0


def test_price_missing_region_borrows_same_geo_price_and_marks_it():
    cat = small_catalog()
    central, sao_paulo, oregon = price_resources(
        [
            instance("a", region="eu-central-1"),
            instance("b", region="sa-east-1"),
            instance("c", type_="m.xlarge", region="us-west-2"),
        ],
        catalog=cat,
    )
    assert central.hourly_price == 0.44
    assert "eu-west-1" in central.price_note and "eu-central-1" in central.price_note
    assert central.price_note.startswith("approximate")
    assert (sao_paulo.hourly_price, sao_paulo.monthly_cost) == (None, None)  # no "other" region
    # us-west-2 is a catalog region without an m.xlarge price: first US region with one
    assert oregon.hourly_price == 0.2 and "us-east-1" in oregon.price_note
    found = catalog_price(cat, "aws", "m.xlarge", "eu-west-1")
    assert found is None  # europe has no m.xlarge price anywhere


def test_price_volumes_per_gib_month_with_regional_ratio():
    cat = small_catalog()
    gp3, gp3_eu, io2, premium, pd_ssd, unknown, no_size, far = price_resources(
        [
            volume("v1", size=100, type_="gp3"),
            volume("v2", size=100, type_="gp3", region="eu-west-1"),
            volume("v3", size=200, type_="io2"),
            volume("v4", size=128, type_="premium_lrs", provider="azure", region="eastus"),
            volume("v5", size=10, type_="pd-ssd", provider="gcp", region="us-central1"),
            volume("v6", size=100, type_="gp9"),
            volume("v7", size=None, type_="gp3"),
            volume("v8", size=100, type_="sc1", region="ap-south-1"),
        ],
        catalog=cat,
    )
    assert gp3.monthly_cost == 8.0 and gp3.hourly_price == round(8.0 / 730, 6)
    assert "IOPS" in gp3.price_note  # extras not included, said so
    assert gp3_eu.monthly_cost == pytest.approx(8.8)  # 0.08 x 0.088/0.08
    assert io2.monthly_cost == 25.0 and "provisioned IOPS" in io2.price_note
    assert premium.monthly_cost == pytest.approx(128 * 0.154)  # type matched case-insensitively
    assert pd_ssd.monthly_cost == pytest.approx(1.7)
    assert (unknown.monthly_cost, unknown.hourly_price) == (None, None)
    assert no_size.monthly_cost is None
    assert far.monthly_cost == pytest.approx(1.5) and "approximate" in far.price_note
    assert volume_gib_month(cat, "gcp", "pd-standard", "us-central1") == (0.04, None)


def test_price_addresses_and_nat_gateways():
    cat = small_catalog()
    eip, gcp_used, gcp_unused, aws_nat, gcp_nat = price_resources(
        [
            address(),
            address("ip-1", attached_to="vm-1", provider="gcp"),
            address("ip-2", provider="gcp"),
            nat(),
            nat("nat-2", provider="gcp"),
        ],
        catalog=cat,
    )
    assert (eip.hourly_price, eip.monthly_cost) == (0.005, 3.65)
    assert gcp_used.monthly_cost == 3.65
    assert gcp_unused.hourly_price == GCP_UNUSED_ADDRESS_HOURLY == 0.01
    assert (aws_nat.hourly_price, aws_nat.monthly_cost) == (0.045, 32.85)
    assert "per GB processed" in aws_nat.price_note
    assert (gcp_nat.hourly_price, gcp_nat.monthly_cost) == (None, None)


def test_price_resources_returns_copies(bundled):
    original = instance(type_="m7i.2xlarge")
    (priced,) = price_resources([original], catalog=bundled)
    assert original.hourly_price is None and priced.hourly_price == 0.4032


# --------------------------------------------------------------------- rightsize


def test_rightsize_to_largest_smaller_size_with_prices_and_evidence():
    recs = recs_for([instance(metrics=cpu(3.1, p95=7.9, maximum=12.0))])
    rec = only(recs, "rightsize")
    assert rec.action.startswith("Resize m.2xlarge -> m.xlarge")
    assert (rec.current_monthly_cost, rec.estimated_monthly_cost) == (292.0, 146.0)
    assert rec.estimated_monthly_saving == 146.0
    assert rec.resource_id == "i-1" and rec.resource_type == "m.2xlarge"
    assert "CPU avg 3.1%, p95 7.9%, max 12.0% over 14 days (336 datapoints)" in rec.reason
    assert rec.risk == "low"  # p95 7.9% x 8/4 = 16%
    assert rec.confidence == 0.9


@pytest.mark.parametrize(
    ("avg", "p95", "expected"),
    [
        (9.99, 39.99, True),  # just under both
        (10.0, 20.0, False),  # average at the threshold
        (5.0, 40.0, False),  # peak at the threshold
        (10.01, 5.0, False),
        (5.0, 40.01, False),
    ],
)
def test_rightsize_thresholds(avg, p95, expected):
    rec = only(recs_for([instance(metrics=cpu(avg, p95=p95, maximum=p95))]), "rightsize")
    assert (rec is not None) is expected


def test_rightsize_custom_thresholds_and_peak_from_maximum_without_p95():
    res = instance(metrics=cpu(12.0, p95=None, maximum=30.0))
    assert only(recs_for([res]), "rightsize") is None
    rec = only(recs_for([res], cpu_avg_threshold=15, cpu_peak_threshold=35), "rightsize")
    assert rec is not None and "p95 n/a, max 30.0%" in rec.reason
    assert rec.risk == "medium"  # max 30% x 8/4 = 60%


def test_rightsize_needs_metrics_and_enough_datapoints():
    assert only(recs_for([instance()]), "rightsize") is None  # no metrics: never guess
    assert only(recs_for([instance(metrics=cpu(None, datapoints=0))]), "rightsize") is None
    low = instance(metrics=cpu(2.0, p95=5.0, datapoints=167))  # < 50% of 336 hourly points
    assert only(recs_for([low]), "rightsize") is None
    half = only(recs_for([instance(metrics=cpu(2.0, p95=5.0, datapoints=168))]), "rightsize")
    assert half is not None and half.confidence == 0.45  # 0.9 x coverage 0.5


def test_rightsize_skips_smallest_gpu_unknown_stopped_and_unpriced():
    cases = [
        instance(type_="m.large", metrics=cpu(1.0, p95=2.0)),  # nothing smaller
        instance(type_="g.2xlarge", metrics=cpu(1.0, p95=2.0)),  # GPU work is not CPU
        instance(type_="z.huge", metrics=cpu(1.0, p95=2.0)),  # not in the catalog
        instance(state="stopped", metrics=cpu(1.0, p95=2.0)),
        instance(region="sa-east-1", metrics=cpu(1.0, p95=2.0)),  # no price in the geo
    ]
    for res in cases:
        assert only(recs_for([res]), "rightsize") is None, res


def test_rightsize_skips_missing_size_and_limits_projected_peak():
    # eu-west-1 has no m.xlarge: m.2xlarge (8) -> m.large (2) multiplies the peak by 4
    ok = instance(region="eu-west-1", metrics=cpu(2.0, p95=20.0))
    rec = only(recs_for([ok]), "rightsize")
    assert rec.action.startswith("Resize m.2xlarge -> m.large")
    assert rec.risk == "high"  # 80%
    assert rec.estimated_monthly_saving == pytest.approx((0.44 - 0.11) * 730)
    too_hot = instance(region="eu-west-1", metrics=cpu(2.0, p95=23.0))  # 92% > 90%
    assert only(recs_for([too_hot]), "rightsize") is None


def test_rightsize_uses_catalog_when_resource_is_unpriced():
    res = instance(metrics=cpu(2.0, p95=5.0))
    rec = only(recommend_resources([res], catalog=small_catalog(), now=NOW), "rightsize")
    assert rec.estimated_monthly_saving == 146.0


def test_rightsize_with_bundled_catalog(bundled):
    res = instance(type_="m7i.4xlarge", metrics=cpu(4.2, p95=9.8, maximum=17.0))
    rec = only(recs_for([res], catalog=bundled), "rightsize")
    assert rec.action.startswith("Resize m7i.4xlarge -> m7i.2xlarge")
    assert rec.estimated_monthly_saving == pytest.approx((0.8064 - 0.4032) * 730, abs=0.01)


# --------------------------------------------------------------------------- idle


def test_stopped_instance_saving_is_what_stays_billed():
    since = NOW - timedelta(days=8)
    recs = recs_for(
        [
            instance("i-9", state="stopped", state_since=since),
            volume("vol-a", attached_to="i-9", size=100),  # $8
            volume("vol-b", attached_to="i-9", size=50, type_="gp2"),  # $5
            address("eip-a", attached_to="i-9"),  # $3.65
            volume("vol-x", attached_to="i-9", account="999999999999"),  # other account
            volume("vol-c", attached_to="i-other"),
        ]
    )
    rec = next(r for r in recs if r.kind == "idle" and r.resource_id == "i-9")
    assert rec.estimated_monthly_saving == pytest.approx(16.65)
    assert rec.current_monthly_cost == pytest.approx(16.65) and rec.estimated_monthly_cost == 0
    assert rec.action == "Snapshot vol-a, vol-b, then terminate i-9, then release eip-a."
    assert "8 days" in rec.reason and "vol-x" not in rec.reason
    assert rec.risk == "medium"
    assert [r.resource_id for r in recs if r.kind == "idle"] == ["i-9"]  # attached: not idle


@pytest.mark.parametrize(
    ("days", "expected"), [(7.01, True), (7.0, False), (6.0, False), (None, False)]
)
def test_stopped_instance_threshold(days, expected):
    since = None if days is None else NOW - timedelta(days=days)
    res = instance(state="stopped", state_since=since)
    assert (only(recs_for([res]), "idle") is not None) is expected
    assert (only(recs_for([res], stopped_days=3), "idle") is not None) is (days is not None)


def test_stopped_instance_with_unpriced_disk_claims_only_known_costs():
    res = [
        instance("i-9", state="stopped", state_since=NOW - timedelta(days=30)),
        volume("vol-a", attached_to="i-9", size=100),
        volume("vol-q", attached_to="i-9", type_="mystery"),
    ]
    rec = only(recs_for(res), "idle")
    assert rec.estimated_monthly_saving == 8.0
    assert "Not counted (price unknown): vol-q" in rec.reason
    alone = only(recs_for([res[0], res[2]]), "idle")
    assert alone.estimated_monthly_saving == 0.0 and alone.current_monthly_cost is None
    assert "no saving claimed" in alone.reason


def test_unattached_volume_and_unknown_price():
    rec = only(recs_for([volume("vol-u", size=1000, type_="gp2")]), "idle")
    assert rec.estimated_monthly_saving == 100.0
    assert rec.action == "Snapshot vol-u, then delete it."
    assert rec.risk == "low" and "1000 GiB gp2" in rec.reason
    unknown = only(recs_for([volume("vol-q", type_="mystery")]), "idle")
    assert unknown.estimated_monthly_saving == 0.0 and unknown.current_monthly_cost is None
    assert "no saving claimed" in unknown.reason
    assert only(recs_for([volume("vol-in", attached_to="i-1")]), "idle") is None


def test_unassociated_address():
    rec = only(recs_for([address("eipalloc-9", name="203.0.113.9")]), "idle")
    assert rec.estimated_monthly_saving == 3.65
    assert rec.action == "Release eipalloc-9 (203.0.113.9)."
    assert only(recs_for([address(attached_to="i-1")]), "idle") is None


def test_idle_nat_gateway():
    per_hour_limit = NAT_IDLE_BYTES / 336
    rec = only(recs_for([nat(bytes_avg=per_hour_limit * 0.99)]), "idle")
    assert rec is not None and rec.estimated_monthly_saving == 32.85
    assert rec.action == "Delete NAT gateway nat-1 and release its public IP."
    assert rec.confidence == 0.95 and "336 hourly datapoints" in rec.reason
    assert only(recs_for([nat(bytes_avg=per_hour_limit * 1.01)]), "idle") is None  # in use
    assert only(recs_for([nat(datapoints=None)]), "idle") is None  # no metric: never guess
    assert only(recs_for([nat(datapoints=0)]), "idle") is None
    young = nat(created=NOW - timedelta(days=3))
    assert only(recs_for([young]), "idle") is None  # not idle for the whole window yet


# ------------------------------------------------------------------------ tagging


def test_tagging_case_insensitive_trimmed_and_blank_values():
    res = instance(tags={" Owner ": "x", "TEAM": "web", "env": "  "})
    assert missing_tags(res, ["owner", "team", "env"]) == ["env"]
    assert missing_tags(res, [" OWNER", "owner", "Team"]) == []
    rec = only(recs_for([res]), "tagging")
    assert rec.title.endswith("missing env") and rec.action == "Add tags env to i-1."
    assert rec.estimated_monthly_saving == 0 and rec.current_monthly_cost == 292.0
    assert only(recs_for([instance()]), "tagging") is None
    assert only(recs_for([instance(tags={})], required_tags=[]), "tagging") is None


def test_recommendations_are_ranked_and_ids_stable():
    res = [
        instance("i-1", metrics=cpu(2.0, p95=5.0), tags={}),
        volume("vol-1", size=10),
        volume("vol-2", size=1000),
    ]
    recs = recs_for(res)
    savings = [r.estimated_monthly_saving for r in recs]
    assert savings == sorted(savings, reverse=True)
    assert recs[0].kind == "rightsize" and recs[-1].kind == "tagging"
    assert [r.id for r in recs] == [r.id for r in recs_for(res)]
    assert len({r.id for r in recs}) == len(recs)


def test_invalid_thresholds_are_rejected():
    with pytest.raises(ValueError, match="cpu_avg_threshold"):
        recommend_resources([], cpu_avg_threshold=0, catalog=small_catalog())
    with pytest.raises(ValueError, match="stopped_days"):
        recommend_resources([], stopped_days=-1, catalog=small_catalog())
    with pytest.raises(ValueError):
        Recommendation(
            id="x",
            kind="idle",
            provider="aws",
            account="1",
            title="t",
            action="a",
            estimated_monthly_saving=-1,
            risk="low",
            confidence=0.5,
            reason="r",
        )


# ------------------------------------------------------------------------- scores


def _rec(resource_id, saving, current, kind="idle") -> Recommendation:
    return Recommendation(
        id=f"{kind}-{resource_id}-{saving}",
        kind=kind,
        provider="aws",
        account="1",
        resource_id=resource_id,
        title="t",
        action="a",
        current_monthly_cost=current,
        estimated_monthly_saving=saving,
        risk="low",
        confidence=1,
        reason="r",
    )


def test_scores_formula():
    res = [instance("a"), instance("b"), instance("c"), instance("d")]
    scores = optimization_scores(
        res,
        [
            _rec("b", 0, 100, kind="tagging"),
            _rec("c", 50, 100, kind="rightsize"),
            _rec("d", 100, 100),
            _rec("d", 0, 100, kind="tagging"),
            _rec("zz", 100, 100),  # not in the inventory
            _rec(None, 100, 100, kind="commitment"),
        ],
    )
    assert scores == {"a": 100, "b": 90, "c": 50, "d": 0}


@given(
    current=st.floats(min_value=1, max_value=10_000),
    small=st.floats(min_value=0, max_value=1),
    extra=st.floats(min_value=0, max_value=1),
)
def test_scores_are_monotone(current, small, extra):
    res = [instance("a")]
    low = _rec("a", current * small, current)
    high = _rec("a", current * min(1.0, small + extra), current)
    base = optimization_scores(res, [low])["a"]
    assert optimization_scores(res, [high])["a"] <= base  # larger saving, lower score
    assert optimization_scores(res, [low, _rec("a", 0, current, "tagging")])["a"] < base or (
        base == 0
    )  # one more recommendation, lower score
    assert 0 <= base <= 100


def test_scores_on_recommended_inventory():
    res = price_resources(
        [instance("i-ok"), volume("vol-u", size=100), instance("i-tag", tags={})],
        catalog=small_catalog(),
    )
    scores = optimization_scores(res, recommend_resources(res, catalog=small_catalog(), now=NOW))
    assert scores == {"i-ok": 100, "vol-u": 10, "i-tag": 90}
