"""The FOCUS normalizer (tasks.costs.normalize) and the sample export generator
(samples.focus_exports).

Unit tests build small tables with one kind of mess each; the bundled files are checked
against what the generator says it planted; formats (CSV, gzip CSV, Parquet) must give
the same result; hypothesis throws arbitrary messy rows at ``normalize`` and checks the
invariants the flow relies on (never raises, every row accounted for exactly once,
output always has the FOCUS 1.2 schema with no nulls in required columns).
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import threading
import time
import zipfile
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from samples import focus_exports as samples
from tasks.costs import focus_schema as fs
from tasks.costs.normalize.convert import parse_tags, parse_timestamp, resolve_columns
from tasks.costs.normalize.io import FocusReadError, read_export_batches, sniff_format
from tasks.costs.normalize.pipeline import iter_normalized, normalize, normalize_file
from tasks.costs.normalize.quarantine import QUARANTINE_SCHEMA

# A valid FOCUS 1.2 row (as text, like a CSV export); tests override single fields.
BASE = {
    "BilledCost": "10.5",
    "BillingAccountId": "111122223333",
    "BillingAccountName": "Acme",
    "BillingCurrency": "USD",
    "BillingPeriodStart": "2026-10-01T00:00:00Z",
    "BillingPeriodEnd": "2026-11-01T00:00:00Z",
    "ChargeCategory": "Usage",
    "ChargeFrequency": "Usage-Based",
    "ChargePeriodStart": "2026-10-05T00:00:00Z",
    "ChargePeriodEnd": "2026-10-06T00:00:00Z",
    "ContractedCost": "10.5",
    "EffectiveCost": "10.5",
    "InvoiceIssuerName": "Amazon Web Services, Inc.",
    "ListCost": "12.0",
    "ProviderName": "AWS",
    "PublisherName": "Amazon Web Services, Inc.",
    "ServiceCategory": "Compute",
    "ServiceName": "Amazon Elastic Compute Cloud",
    "ConsumedQuantity": "24",
    "RegionId": "us-east-1",
    "Tags": '{"team":"web"}',
}


def rows_table(*rows: dict, base: dict | None = BASE) -> pa.Table:
    """A string table of ``rows`` (each overriding ``base``); ``None`` removes a field."""
    full = [{**(base or {}), **r} for r in rows]
    names = list(dict.fromkeys(k for r in full for k in r))
    return pa.table({n: pa.array([r.get(n) for r in full], pa.string()) for n in names})


def one(**fields) -> pa.Table:
    return rows_table(fields)


def kept(table: pa.Table, column: str) -> list:
    batch = normalize(table)
    assert batch.quarantine.num_rows == 0, batch.quarantine.to_pylist()
    return batch.table.column(column).to_pylist()


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


def assert_conforms(batch) -> None:
    assert batch.table.schema.equals(fs.SCHEMA)
    assert batch.quarantine.schema.equals(QUARANTINE_SCHEMA)
    for name in fs.REQUIRED:
        assert batch.table.column(name).null_count == 0, name
    assert sum(batch.quarantine_counts().values()) == batch.quarantine.num_rows


# --- messy values -------------------------------------------------------------------------


@pytest.mark.parametrize("spelling", ["NULL", "null", "None", "", "   ", " NULL "])
def test_null_spellings_become_null(spelling):
    assert kept(one(RegionId=spelling), "RegionId") == [None]
    assert kept(one(ConsumedQuantity=spelling), "ConsumedQuantity") == [None]
    assert kept(one(Tags=spelling), "Tags") == [None]


@pytest.mark.parametrize("spelling", ["NULL", "", "None"])
def test_null_in_a_required_column_quarantines_the_row(spelling):
    batch = normalize(one(BillingAccountId=spelling))
    assert batch.table.num_rows == 0
    assert batch.quarantine_counts() == {"missing_value": 1}
    assert batch.quarantine.column("x_QuarantineReason").to_pylist() == [
        "BillingAccountId: required value is missing"
    ]


def test_numbers_with_spaces_and_exponents_parse():
    table = rows_table({"BilledCost": " 12.5 "}, {"BilledCost": "1e-3"}, {"BilledCost": "-4"})
    assert kept(table, "BilledCost") == [12.5, 0.001, -4.0]


def test_garbage_cost_is_quarantined_with_column_and_value():
    batch = normalize(rows_table({"BilledCost": "n/a"}, {"BilledCost": "3.5"}))
    assert batch.table.column("BilledCost").to_pylist() == [3.5]
    q = batch.quarantine.to_pylist()
    assert q[0]["x_SourceRow"] == 0
    assert q[0]["x_QuarantineReason"] == "BilledCost: not a number ('n/a')"
    assert json.loads(q[0]["x_RawRow"])["BilledCost"] == "n/a"
    assert batch.quarantine_counts() == {"bad_number": 1}


@pytest.mark.parametrize("value", ["nan", "inf", "-Infinity", "1,234.5", "12 EUR"])
def test_non_finite_or_formatted_costs_are_quarantined(value):
    batch = normalize(one(EffectiveCost=value))
    assert batch.quarantine_counts() == {"bad_number": 1}
    assert (
        f"EffectiveCost: not a number ('{value}')"
        in batch.quarantine["x_QuarantineReason"][0].as_py()
    )


def test_garbage_in_an_optional_number_is_nulled_and_warned():
    batch = normalize(one(ConsumedQuantity="lots"))
    assert batch.table.column("ConsumedQuantity").to_pylist() == [None]
    assert batch.warnings == {"bad_number:ConsumedQuantity": 1}


@pytest.mark.parametrize(
    "text,expected",
    [
        ("2026-10-01T00:00:00Z", utc(2026, 10, 1)),
        ("2026-10-01T00:00:00.000Z", utc(2026, 10, 1)),
        ("2026-10-01T00:00:00.0000000Z", utc(2026, 10, 1)),
        ("2026-10-01 00:00:00", utc(2026, 10, 1)),
        ("2026-10-01T02:00:00+02:00", utc(2026, 10, 1)),
        ("2026-10-01", utc(2026, 10, 1)),
        ("10/01/2026", utc(2026, 10, 1)),
        (" 2026-10-01T00:00:00Z ", utc(2026, 10, 1)),
    ],
)
def test_timestamp_styles_become_utc(text, expected):
    assert parse_timestamp(text) == expected
    assert kept(one(BillingPeriodStart=text), "BillingPeriodStart") == [expected]


def test_unreadable_timestamp_is_quarantined():
    batch = normalize(one(ChargePeriodStart="yesterday"))
    assert batch.quarantine_counts() == {"bad_timestamp": 1}
    reason = batch.quarantine["x_QuarantineReason"][0].as_py()
    assert reason == "ChargePeriodStart: not a timestamp ('yesterday')"


def test_charge_period_must_end_after_it_starts():
    batch = normalize(one(ChargePeriodEnd="2026-10-05T00:00:00Z"))
    assert batch.quarantine_counts() == {"bad_period": 1}
    assert (
        "ChargePeriodEnd: not after ChargePeriodStart"
        in batch.quarantine["x_QuarantineReason"][0].as_py()
    )


def test_tags_keys_are_trimmed_and_merged_values_stringified():
    text = '{" team ": "web", "team": "data", "cost  center": 42, "on": true, "x": null}'
    assert kept(one(Tags=text), "Tags") == [
        [("team", "data"), ("cost center", "42"), ("on", "true"), ("x", None)]
    ]


@pytest.mark.parametrize(
    "text,expected",
    [
        ('"app": "shop", "env": "prod"', [("app", "shop"), ("env", "prod")]),  # Azure style
        ("{}", []),
        ('{"nested": {"a": 1}}', [("nested", '{"a":1}')]),
    ],
)
def test_tag_variants(text, expected):
    assert parse_tags(text) == (expected, True)
    assert kept(one(Tags=text), "Tags") == [expected]


@pytest.mark.parametrize("text", ['{"team": "data", "env":', "[1, 2]", "team=web", '"x"'])
def test_invalid_tags_keep_the_row_with_null_tags_and_a_warning(text):
    batch = normalize(rows_table({"Tags": text}, {"Tags": '{"a":"b"}'}))
    assert batch.quarantine.num_rows == 0
    assert batch.table.column("Tags").to_pylist() == [None, [("a", "b")]]
    assert batch.warnings == {"invalid_tags": 1}


def test_tags_from_map_and_key_value_list_columns():
    base = rows_table({}, {}, {}).drop_columns(["Tags"])
    as_map = pa.array(
        [[(" team", "web"), ("team", "data")], None, [("env", "prod")]],
        pa.map_(pa.string(), pa.string()),
    )
    records = pa.array(
        [[{"key": "team ", "value": "web"}], [], None],
        pa.list_(pa.struct([("key", pa.string()), ("value", pa.string())])),
    )
    assert normalize(base.append_column("Tags", as_map)).table["Tags"].to_pylist() == [
        [("team", "data")],
        None,
        [("env", "prod")],
    ]
    assert normalize(base.append_column("Tags", records)).table["Tags"].to_pylist() == [
        [("team", "web")],
        [],
        None,
    ]
    sliced = base.append_column("Tags", as_map).slice(1)
    assert normalize(sliced).table["Tags"].to_pylist() == [None, [("env", "prod")]]


def test_enums_are_recased_to_the_focus_spelling():
    batch = normalize(
        one(
            ChargeCategory=" usage ",
            ChargeFrequency="USAGE_BASED",
            ChargeClass="correction",
            PricingCategory="On-Demand",  # 1.0-preview spelling
            ServiceCategory="management & governance",
            CommitmentDiscountStatus="used",
        )
    )
    row = batch.table.to_pylist()[0]
    assert (row["ChargeCategory"], row["ChargeFrequency"], row["ChargeClass"]) == (
        "Usage",
        "Usage-Based",
        "Correction",
    )
    assert row["PricingCategory"] == "Standard"
    assert row["ServiceCategory"] == "Management and Governance"
    assert row["CommitmentDiscountStatus"] == "Used"
    assert batch.warnings == {}


def test_unknown_enum_values():
    batch = normalize(
        rows_table(
            {"ServiceCategory": "Quantum"},
            {"ChargeCategory": "Discount"},
            {"ChargeClass": "Regular"},
        )
    )
    assert batch.table.column("ServiceCategory").to_pylist() == ["Other", "Compute"]
    assert batch.table.column("ChargeClass").to_pylist() == [None, None]
    assert batch.quarantine_counts() == {"bad_charge_category": 1}
    assert batch.quarantine["x_SourceRow"].to_pylist() == [1]
    assert "ChargeCategory: unknown value ('Discount'), expected one of Usage" in (
        batch.quarantine["x_QuarantineReason"][0].as_py()
    )
    assert batch.warnings == {"service_category_other": 1, "unknown_value:ChargeClass": 1}


def test_currencies_upper_cased_kept_per_row_and_validated():
    batch = normalize(
        rows_table(
            {"BillingCurrency": "eur"}, {"BillingCurrency": " usd"}, {"BillingCurrency": "EURO"}
        )
    )
    assert batch.table.column("BillingCurrency").to_pylist() == ["EUR", "USD"]
    assert batch.table.column("BilledCost").to_pylist() == [10.5, 10.5]  # no conversion
    assert batch.quarantine_counts() == {"bad_currency": 1}
    assert batch.quarantine["x_QuarantineReason"][0].as_py() == (
        "BillingCurrency: not a 3-letter currency code ('EURO')"
    )


def test_list_and_contracted_cost_filled_when_missing():
    table = rows_table(
        {"ListCost": None, "ContractedCost": None, "EffectiveCost": "7", "BilledCost": "9"},
        {"ListCost": "12", "ContractedCost": "11"},
    )
    batch = normalize(table)
    assert batch.table.column("ListCost").to_pylist() == [7.0, 12.0]
    assert batch.table.column("ContractedCost").to_pylist() == [9.0, 11.0]
    assert batch.warnings == {"filled:ListCost": 1, "filled:ContractedCost": 1}
    no_columns = one().drop_columns(["ListCost", "ContractedCost"])
    assert normalize(no_columns).table.column("ListCost").to_pylist() == [10.5]


def test_missing_billed_or_effective_cost_quarantines():
    batch = normalize(rows_table({"EffectiveCost": None}, {"BilledCost": ""}))
    assert batch.table.num_rows == 0
    assert batch.quarantine["x_QuarantineReason"].to_pylist() == [
        "EffectiveCost: required value is missing",
        "BilledCost: required value is missing",
    ]


def test_missing_required_column_quarantines_every_row_and_names_it():
    table = rows_table({}, {}).drop_columns(["ServiceName", "BillingAccountId"])
    batch = normalize(table)
    assert batch.table.num_rows == 0
    assert batch.quarantine_counts() == {"missing_column": 2}
    assert (
        batch.quarantine["x_QuarantineReason"].to_pylist()
        == [
            "BillingAccountId: required column missing from the export; "
            "ServiceName: required column missing from the export"
        ]
        * 2
    )


def test_several_problems_are_all_named_and_counted_once():
    batch = normalize(one(BilledCost="n/a", ChargeCategory="Bogus", BillingCurrency="dollars"))
    reason = batch.quarantine["x_QuarantineReason"][0].as_py()
    assert "BilledCost: not a number ('n/a')" in reason
    assert "ChargeCategory: unknown value ('Bogus')" in reason
    assert "BillingCurrency: not a 3-letter currency code ('dollars')" in reason
    assert batch.quarantine_counts() == {"bad_number": 1}


def test_extra_columns_ignored_and_missing_optional_columns_null():
    table = one(x_UsageType="BoxUsage:m5.large", SomethingNew="1").drop_columns(["RegionId"])
    batch = normalize(table)
    assert batch.table.schema.equals(fs.SCHEMA)
    assert batch.table.column("RegionId").to_pylist() == [None]
    assert batch.table.column("SkuMeter").to_pylist() == [None]


def test_column_names_trimmed_case_folded_and_aliased():
    names = ["\ufeffBilledCost", " ChargeType ", "amortizedcost", "Region", "EffectiveCost"]
    positions = resolve_columns(names)
    assert positions["BilledCost"] == 0
    assert positions["ChargeCategory"] == 1
    assert positions["EffectiveCost"] == 4  # the 1.2 spelling wins over the alias
    assert positions["RegionId"] == 3


def test_focus_1_0_preview_names_match_1_2_names():
    new = one(
        BillingAccountType="Payer",
        SubAccountType="Linked",
        InvoiceId="INV-1",
        PricingCurrency="usd",
    )
    renames = {
        "EffectiveCost": "AmortizedCost",
        "ChargeCategory": "ChargeType",
        "ChargePeriodStart": "ChargePeriodStartDate",
        "ChargePeriodEnd": "ChargePeriodEndDate",
        "BillingPeriodStart": "BillingPeriodStartDate",
        "BillingPeriodEnd": "BillingPeriodEndDate",
        "ProviderName": "Provider",
        "PublisherName": "Publisher",
        "InvoiceIssuerName": "InvoiceIssuer",
        "ConsumedQuantity": "UsageQuantity",
        "RegionId": "Region",
    }
    old = new.rename_columns([renames.get(n, n) for n in new.column_names])
    a, b = normalize(new).table, normalize(old).table
    assert a.equals(b)
    assert a.column("PricingCurrency").to_pylist() == ["USD"]
    assert a.column("InvoiceId").to_pylist() == ["INV-1"]


def test_source_id_default_and_override_and_row_offset():
    table = rows_table(
        {}, {"ProviderName": "Microsoft", "BillingAccountId": "p1"}, {"BilledCost": "x"}
    )
    batch = normalize(table, row_offset=100)
    assert batch.table.column("x_SourceId").to_pylist() == [
        "focus:aws:111122223333",
        "focus:azure:p1",
    ]
    assert batch.quarantine["x_SourceRow"].to_pylist() == [102]
    custom = normalize(table, source_id="upload:1")
    assert set(custom.table.column("x_SourceId").to_pylist()) == {"upload:1"}


def test_typed_input_columns_are_accepted():
    table = pa.table(
        {
            **{k: pa.array([v]) for k, v in BASE.items() if k not in ("BilledCost", "Tags")},
            "BilledCost": pa.array([3], pa.int64()),
            "ChargePeriodStart": pa.array([datetime(2026, 10, 5)], pa.timestamp("ns")),
            "ChargePeriodEnd": pa.array([date(2026, 10, 6)], pa.date32()),
            "ConsumedQuantity": pa.array([Decimal("1.5")], pa.decimal128(10, 2)),
            "RegionId": pa.array(["us-east-1"]).dictionary_encode(),
        }
    )
    row = normalize(table).table.to_pylist()[0]
    assert row["BilledCost"] == 3.0
    assert row["ChargePeriodStart"] == utc(2026, 10, 5)
    assert row["ChargePeriodEnd"] == utc(2026, 10, 6)
    assert row["ConsumedQuantity"] == 1.5
    assert row["RegionId"] == "us-east-1"


def test_empty_input():
    batch = normalize(one().slice(0, 0))
    assert batch.table.num_rows == 0 and batch.quarantine.num_rows == 0
    assert_conforms(batch)


# --- bundled files ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def generated() -> dict[str, pa.Table]:
    return {
        p: samples.generate_export(p, samples.SAMPLE_START, samples.SAMPLE_END)
        for p in samples.PROVIDERS
    }


@pytest.fixture(scope="module")
def bundled() -> dict[str, object]:
    paths = samples.bundled_export_paths()
    return {p: normalize_file(path) for p, path in zip(samples.PROVIDERS, paths, strict=True)}


def test_bundled_files_exist_and_are_small():
    paths = samples.bundled_export_paths()
    assert [sniff_format(p) for p in paths] == ["gzip", "csv", "parquet"]
    for path in paths:
        assert 10_000 < path.stat().st_size < 1_500_000, path


def test_bundled_files_are_what_the_generator_writes(tmp_path):
    fresh = samples.write_bundled_samples(tmp_path)
    for new, shipped in zip(fresh, samples.bundled_export_paths(), strict=True):
        if new.suffix == ".parquet":
            assert pq.read_table(new).equals(pq.read_table(shipped))
        else:
            assert new.read_bytes() == shipped.read_bytes(), shipped.name


@pytest.mark.parametrize("provider", samples.PROVIDERS)
def test_bundled_file_normalizes_as_planted(provider, bundled, generated):
    batch, plan = bundled[provider], samples.planted(generated[provider])
    assert_conforms(batch)
    assert batch.rows_in == plan["rows"]
    assert batch.quarantine["x_SourceRow"].to_pylist() == [int(r) for r in plan["bad_rows"]]
    codes = batch.reason_codes.to_pylist()
    assert codes == list(plan["bad_rows"].values())
    for code, count in plan["warnings"].items():
        assert batch.warnings.get(code) == count
    providers = {fs.provider_key(v) for v in batch.table["ProviderName"].unique().to_pylist()}
    assert providers == {provider}
    totals = batch.table.group_by("BillingCurrency").aggregate([("BilledCost", "sum")])
    got = dict(
        zip(
            totals["BillingCurrency"].to_pylist(), totals["BilledCost_sum"].to_pylist(), strict=True
        )
    )
    assert got.keys() == plan["billed_total"].keys()
    for currency, expected in plan["billed_total"].items():
        assert got[currency] == pytest.approx(expected, rel=1e-9, abs=1e-6)


def test_bundled_files_carry_the_planted_mess(bundled):
    aws, azure, gcp = bundled["aws"], bundled["azure"], bundled["gcp"]
    raw_azure = samples.bundled_export_paths()[1].read_text()
    assert 'T00:00:00Z"' in raw_azure and ' 00:00:00"' in raw_azure  # both timestamp styles
    assert set(azure.table["BillingCurrency"].to_pylist()) == {"USD", "EUR"}
    assert len(set(azure.table["SubAccountId"].to_pylist())) == 2
    assert all(s.startswith("/subscriptions/") for s in azure.table["SubAccountId"].to_pylist())
    assert aws.table["AvailabilityZone"].null_count < aws.table.num_rows
    assert azure.table["AvailabilityZone"].null_count == azure.table.num_rows
    for batch in (aws, azure, gcp):  # stray whitespace was merged away
        keys = {k for tags in batch.table["Tags"].to_pylist() if tags for k, _ in tags}
        assert keys and all(k == " ".join(k.split()) for k in keys)
    categories = set(aws.table["ChargeCategory"].to_pylist())
    assert categories == {"Usage", "Purchase", "Tax", "Credit", "Adjustment"}
    refund = aws.table.filter(pc.equal(aws.table["ChargeClass"], "Correction"))
    assert refund.num_rows == 1 and refund["BilledCost"][0].as_py() < 0
    assert aws.table.filter(pc.equal(aws.table["CommitmentDiscountStatus"], "Used")).num_rows > 0
    assert gcp.table.filter(pc.equal(gcp.table["ChargeCategory"], "Credit")).num_rows > 0


def _daily(table: pa.Table, mask) -> dict[date, float]:
    rows = table.filter(mask).group_by("ChargePeriodStart").aggregate([("EffectiveCost", "sum")])
    return {
        d.date(): c
        for d, c in zip(
            rows["ChargePeriodStart"].to_pylist(),
            rows["EffectiveCost_sum"].to_pylist(),
            strict=True,
        )
    }


def test_planted_signals(bundled):
    aws, gcp = bundled["aws"].table, bundled["gcp"].table
    ec2 = pc.equal(aws["ServiceName"], "Amazon Elastic Compute Cloud")
    runaway = _daily(
        aws,
        pc.and_(
            ec2,
            pc.and_(
                pc.equal(aws["SubAccountId"], "634567890123"),
                pc.equal(aws["RegionId"], "us-east-1"),
            ),
        ),
    )
    usual = runaway[date(2026, 11, 10)]
    for day in samples.AWS_RUNAWAY_DAYS:
        assert runaway[day] / usual == pytest.approx(4.0, rel=0.05)
    assert runaway[date(2026, 11, 14)] == pytest.approx(usual, rel=0.05)

    # The on-demand us-west-2 fleet costs the same every day (a quarantined row aside).
    baseline = list(_daily(aws, pc.and_(ec2, pc.equal(aws["RegionId"], "us-west-2"))).values())
    typical = sorted(baseline)[len(baseline) // 2]
    assert len(baseline) == 51
    assert sum(c == pytest.approx(typical, rel=1e-9) for c in baseline) >= 50

    bq = _daily(
        gcp,
        pc.and_(pc.equal(gcp["ServiceName"], "BigQuery"), pc.equal(gcp["ChargeCategory"], "Usage")),
    )
    day = samples.GCP_BIGQUERY_SPIKE_DAY
    normal = [bq[day - timedelta(days=7)], bq[day + timedelta(days=7)]]
    assert bq[day] / (sum(normal) / 2) == pytest.approx(6.0, rel=0.2)


def test_generator_is_deterministic_and_scales():
    a = samples.generate_export("aws", date(2026, 10, 1), date(2026, 10, 3), seed=7)
    b = samples.generate_export("aws", date(2026, 10, 1), date(2026, 10, 3), seed=7)
    c = samples.generate_export("aws", date(2026, 10, 1), date(2026, 10, 3), seed=8)
    assert a.equals(b) and not a.equals(c)
    big = samples.generate_export("aws", date(2026, 10, 1), date(2026, 10, 3), scale=3, messy=False)
    assert big.num_rows > 2.5 * a.num_rows
    assert samples.planted(big)["bad_rows"] == {}
    assert big.column_names == list(samples.AWS_COLUMNS)
    batch = normalize(big)
    assert batch.quarantine.num_rows == 0 and batch.warnings == {}
    with pytest.raises(ValueError, match="provider"):
        samples.generate_export("oracle", date(2026, 10, 1), date(2026, 10, 3))


# --- formats and reading ------------------------------------------------------------------


def test_csv_gzip_parquet_give_the_same_result(tmp_path, generated):
    table = generated["aws"]
    csv_path = samples.write_export(table, tmp_path / "x.csv")
    gz_path = samples.write_export(table, tmp_path / "x.csv.gz")
    pq_path = samples.write_export(table, tmp_path / "x.parquet")
    disguised = tmp_path / "export.csv"  # gzip content under a .csv name: sniffed, not guessed
    disguised.write_bytes(gz_path.read_bytes())
    results = [normalize_file(p) for p in (csv_path, gz_path, pq_path, disguised)]
    for other in results[1:]:
        assert other.table.equals(results[0].table)
        for column in ("x_SourceRow", "x_QuarantineReason"):  # x_RawRow: "" vs null differ
            assert other.quarantine[column].equals(results[0].quarantine[column])
    assert results[0].table.num_rows == table.num_rows - 3


def test_typed_parquet_matches_its_csv_rendering(tmp_path, generated):
    table = generated["gcp"]
    as_text = table.set_column(
        table.schema.get_field_index("Tags"),
        "Tags",
        pa.array(
            [json.dumps({t["key"]: t["value"] for t in tags}) for tags in table["Tags"].to_pylist()]
        ),
    ).drop_columns(["x_Credits", "x_Project"])
    csv_path = tmp_path / "gcp.csv"
    pacsv.write_csv(as_text, csv_path)
    from_parquet = normalize_file(samples.bundled_export_paths()[2])
    from_csv = normalize_file(csv_path)
    assert from_csv.table.equals(from_parquet.table)
    assert from_csv.quarantine["x_SourceRow"].equals(from_parquet.quarantine["x_SourceRow"])


def test_small_batches_give_the_same_result(generated):
    path = samples.bundled_export_paths()[0]
    whole = normalize_file(path)
    batches = list(iter_normalized(path, batch_rows=1000))
    assert len(batches) == 5
    assert all(b.rows_in <= 1000 for b in batches)
    assert pa.concat_tables([b.table for b in batches]).equals(whole.table)
    rows = [r for b in batches for r in b.quarantine["x_SourceRow"].to_pylist()]
    assert rows == [int(r) for r in samples.planted(generated["aws"])["bad_rows"]]


def test_stopping_early_ends_the_reader_thread():
    batches = iter_normalized(samples.bundled_export_paths()[0], batch_rows=100)
    assert next(batches).rows_in == 100
    batches.close()
    deadline = time.monotonic() + 5
    while any(t.name == "focus-prefetch" for t in threading.enumerate()):
        assert time.monotonic() < deadline, "prefetch thread still running"
        time.sleep(0.05)


def test_read_export_batches_reads_everything_as_strings(tmp_path):
    path = tmp_path / "x.csv"
    path.write_text("BilledCost,ChargePeriodStart\n1.5,2026-10-01\nNULL,\n")
    tables = list(read_export_batches(path, batch_rows=1))
    assert [t.num_rows for t in tables] == [1, 1]
    assert tables[0].schema.types == [pa.string(), pa.string()]
    assert tables[1].column("BilledCost").to_pylist() == [None]


def _csv_line(values) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="").writerow(values)
    return out.getvalue()


def test_malformed_csv_rows_are_quarantined_with_their_file_row(tmp_path):
    header, good = _csv_line(BASE), _csv_line(BASE.values())
    bad_cost = _csv_line({**BASE, "BilledCost": "oops"}.values())
    lines = [header, good, "too,few", good, bad_cost, good + ",extra", bad_cost]
    path = tmp_path / "ragged.csv"
    path.write_text("\n".join(lines) + "\n")
    batch = normalize_file(path)
    q = sorted(batch.quarantine.to_pylist(), key=lambda r: r["x_SourceRow"])
    assert [r["x_SourceRow"] for r in q] == [1, 3, 4, 5]
    assert q[0]["x_QuarantineReason"] == "row: has 2 fields, the header has 21"
    assert json.loads(q[0]["x_RawRow"]) == {"_line": "too,few"}
    assert q[1]["x_QuarantineReason"].startswith("BilledCost: not a number ('oops')")
    assert sorted(batch.reason_codes.to_pylist()) == sorted(
        ["malformed_row", "bad_number", "malformed_row", "bad_number"]
    )
    assert batch.table.num_rows == 2
    with pytest.raises(FocusReadError, match="ragged.csv"):
        list(read_export_batches(path))


def test_malformed_rows_across_blocks_and_batches_keep_their_file_row(tmp_path):
    good, bad = _csv_line(BASE.values()), _csv_line({**BASE, "BilledCost": "oops"}.values())
    ragged, costly = {5, 20_000, 29_990}, {7, 25_000, 29_995}
    lines = [_csv_line(BASE)]
    for i in range(30_000):  # ~8 MB: several of the reader's blocks
        lines.append("a,b" if i in ragged else bad if i in costly else good)
    path = tmp_path / "big.csv"
    path.write_text("\n".join(lines) + "\n")
    batches = list(iter_normalized(path, batch_rows=7_000))
    rows = sorted(r for b in batches for r in b.quarantine["x_SourceRow"].to_pylist())
    assert rows == sorted(ragged | costly)
    assert sum(b.table.num_rows for b in batches) == 30_000 - 6


def test_bom_and_quoted_header(tmp_path):
    path = tmp_path / "bom.csv"
    table = one()
    pacsv.write_csv(table, path)
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    assert normalize_file(path).table.num_rows == 1


@pytest.mark.parametrize(
    "content,match",
    [
        (None, "cannot open"),
        (b"", "no header"),
        (gzip.compress(b"BilledCost\n1\n" * 1000)[:-40], "cannot read gzip"),
        (b"PAR1 definitely not parquet", "cannot read parquet"),
        (b"A,B\n\xff,\xfe\n", "cannot read csv"),
    ],
)
def test_unreadable_files_raise_a_clear_error_naming_the_file(tmp_path, content, match):
    path = tmp_path / "broken-export.csv"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(FocusReadError, match=match) as info:
        list(iter_normalized(path))
    assert "broken-export.csv" in str(info.value)


def test_zip_archive_is_refused(tmp_path):
    path = tmp_path / "export.zip"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("export.csv", "BilledCost\n1\n")
    with pytest.raises(FocusReadError, match="zip"):
        list(read_export_batches(path))


# --- properties -------------------------------------------------------------------------

NULLS = st.sampled_from(["", "NULL", "null", "None", "  ", " NULL "])
JUNK = st.text(max_size=12)


def _padded(s: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.tuples(st.sampled_from(["", " ", "  ", "\t"]), s, st.sampled_from(["", " "])).map(
        lambda t: t[0] + t[1] + t[2]
    )


numbers = st.one_of(
    _padded(st.floats(-1e6, 1e6, allow_nan=False).map(repr)),
    _padded(st.integers(-(10**6), 10**6).map(str)),
    NULLS,
    st.sampled_from(["n/a", "nan", "inf", "1,5", "--1", "1e999"]),
    JUNK,
)
moments = st.datetimes(datetime(2000, 1, 1), datetime(2040, 1, 1))
timestamps = st.one_of(
    moments.map(lambda d: d.strftime("%Y-%m-%dT%H:%M:%SZ")),
    moments.map(lambda d: d.strftime("%Y-%m-%d %H:%M:%S")),
    moments.map(lambda d: d.strftime("%Y-%m-%dT%H:%M:%S+02:00")),
    moments.map(lambda d: d.strftime("%Y-%m-%d")),
    NULLS,
    JUNK,
)
tag_keys = _padded(st.sampled_from(["team", "env", "cost  center", "team "]))
tag_values = st.one_of(st.text(max_size=6), st.integers(), st.booleans(), st.none())
tags = st.one_of(
    st.dictionaries(tag_keys, tag_values, max_size=4).map(json.dumps),
    st.dictionaries(tag_keys, tag_values, max_size=3).map(lambda d: json.dumps(d)[1:-1]),
    NULLS,
    JUNK,
    st.sampled_from(['{"a":', "[1]", "{}", '{"a": {"b": [1]}}']),
)
enum_values = st.one_of(
    st.sampled_from(fs.CHARGE_CATEGORIES + fs.SERVICE_CATEGORIES).map(
        lambda v: v.upper() if len(v) % 2 else v.lower()
    ),
    NULLS,
    JUNK,
)
texts = st.one_of(_padded(st.text(min_size=1, max_size=8)), NULLS)
row = st.fixed_dictionaries(
    {
        "BilledCost": numbers,
        "EffectiveCost": numbers,
        "ListCost": numbers,
        "ConsumedQuantity": numbers,
        "ChargePeriodStart": timestamps,
        "ChargePeriodEnd": timestamps,
        "BillingPeriodStart": timestamps,
        "ChargeCategory": enum_values,
        "ServiceCategory": enum_values,
        "ChargeFrequency": enum_values,
        "BillingCurrency": st.one_of(st.sampled_from(["usd", "EUR", " gbp "]), NULLS, JUNK),
        "BillingAccountId": texts,
        "ProviderName": st.one_of(st.sampled_from(["AWS", "Microsoft", "Google Cloud"]), texts),
        "ServiceName": texts,
        "Tags": tags,
    }
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(row, max_size=25), st.booleans())
def test_normalize_never_raises_and_accounts_for_every_row(rows, drop_column):
    table = rows_table(*rows) if rows else one().slice(0, 0)
    if drop_column:
        table = table.drop_columns(["PublisherName"])
    batch = normalize(table, row_offset=5)
    assert_conforms(batch)
    assert batch.table.num_rows + batch.quarantine.num_rows == table.num_rows
    source_rows = batch.quarantine["x_SourceRow"].to_pylist()
    assert len(set(source_rows)) == len(source_rows)
    assert all(5 <= r < 5 + table.num_rows for r in source_rows)
    assert all(batch.quarantine["x_QuarantineReason"].to_pylist())
    if drop_column:
        assert batch.table.num_rows == 0
    for raw in batch.quarantine["x_RawRow"].to_pylist():
        assert isinstance(json.loads(raw), dict)


@settings(max_examples=40, deadline=None)
@given(st.lists(row, min_size=1, max_size=8))
def test_rows_are_judged_independently(rows):
    together = normalize(rows_table(*rows))
    quarantined = set(together.quarantine["x_SourceRow"].to_pylist())
    for i, r in enumerate(rows):
        alone = normalize(rows_table(r))
        assert (alone.quarantine.num_rows == 1) == (i in quarantined)
        if alone.table.num_rows:
            assert alone.table.equals(together.table.slice(i - sum(q < i for q in quarantined), 1))
