"""The cost dataset: idempotent and windowed replaces, reads, atomicity under injected
failures and real crashes, concurrent writers in two processes, and the same core
behaviour on S3 through the moto server (s3fs storage options and an S3Bucket block).
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import pickle
import threading
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from tasks.costs.dataset import stores, transaction
from tasks.costs.dataset.cost_dataset import CostDataset
from tasks.costs.dataset.rows import conform_table
from tasks.costs.dataset.stores import ConcurrentWriteError
from tasks.costs.focus_schema import SCHEMA, SOURCE_COLUMN

OCT = [date(2026, 10, d) for d in range(1, 32)]
NOV = [date(2026, 11, d) for d in range(1, 31)]
CANARY = "CANARY-aws-secret-5b1e0c"
MOTO_KEY = "AKIADATASETTEST"

# values for the columns FOCUS requires; every other column is null
_REQUIRED_VALUES = {
    "BillingAccountId": "123456789012",
    "BillingCurrency": "USD",
    "ChargeCategory": "Usage",
    "ServiceCategory": "Compute",
    "ServiceName": "Amazon Elastic Compute Cloud",
}


def _midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def make_rows(
    source: str,
    days: list[date],
    cost: float = 1.0,
    provider: str = "AWS",
    per_day: int = 1,
    billing_period: date | None = None,
) -> pa.Table:
    """SCHEMA-conformant rows: ``per_day`` rows per charge day, nulls in optional columns."""
    charge = [_midnight(d) for d in days for _ in range(per_day)]
    n = len(charge)
    period = [_midnight(billing_period or d.replace(day=1)) for d in days for _ in range(per_day)]
    next_month = [(p.replace(day=28) + timedelta(days=4)).replace(day=1) for p in period]
    values = {
        **{k: [v] * n for k, v in _REQUIRED_VALUES.items()},
        "BilledCost": [cost] * n,
        "EffectiveCost": [cost] * n,
        "ListCost": [cost] * n,
        "ContractedCost": [cost] * n,
        "BillingPeriodStart": period,
        "BillingPeriodEnd": next_month,
        "ChargePeriodStart": charge,
        "ChargePeriodEnd": [c + timedelta(days=1) for c in charge],
        "InvoiceIssuerName": [provider] * n,
        "ProviderName": [provider] * n,
        "PublisherName": [provider] * n,
        SOURCE_COLUMN: [source] * n,
    }
    columns = [
        pa.array(values[f.name], f.type) if f.name in values else pa.nulls(n, f.type)
        for f in SCHEMA
    ]
    return pa.Table.from_arrays(columns, schema=SCHEMA)


def by_day(table: pa.Table, source: str | None = None) -> dict[date, float]:
    """Charge day -> summed BilledCost (optionally of one source)."""
    if source is not None:
        table = table.filter(pc.equal(table[SOURCE_COLUMN], source))
    out: dict[date, float] = {}
    for ts, cost in zip(
        table["ChargePeriodStart"].to_pylist(), table["BilledCost"].to_pylist(), strict=True
    ):
        out[ts.date()] = out.get(ts.date(), 0.0) + cost
    return out


def manifest_of(root: Path) -> dict:
    return json.loads((root / "_manifest.json").read_text())


def data_files(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*.parquet")}


def listed_files(root: Path) -> set[str]:
    return {f["path"] for f in manifest_of(root)["files"]}


def assert_same_rows(a: pa.Table, b: pa.Table) -> None:
    keys = [("ChargePeriodStart", "ascending"), (SOURCE_COLUMN, "ascending")]
    assert a.sort_by(keys).equals(b.sort_by(keys))


@pytest.fixture
def root(tmp_path) -> Path:
    return tmp_path / "costs"


@pytest.fixture
def ds(root) -> CostDataset:
    return CostDataset(root)


# ------------------------------------------------------------------- replace semantics


def test_replacing_the_same_period_twice_does_not_duplicate(ds, root):
    first = ds.replace(make_rows("aws-ce:123456789012", OCT, per_day=3))
    assert (first.rows_written, first.rows_replaced, first.files_written) == (93, 0, 1)
    second = ds.replace(make_rows("aws-ce:123456789012", OCT, per_day=3, cost=2.0))
    assert (second.rows_written, second.rows_replaced) == (93, 93)
    table = ds.read()
    assert table.num_rows == 93
    assert set(by_day(table).values()) == {6.0}  # only the second write's rows
    assert second.partitions == ["provider=aws/billing_period=2026-10"]
    assert data_files(root) == listed_files(root)  # the superseded file is gone
    assert len(data_files(root)) == 1
    assert ds.row_count() == 93


def test_window_replace_keeps_rows_outside_the_window(ds, root):
    source = "aws-ce:123456789012"
    ds.replace(make_rows(source, OCT + NOV[:10]))  # two partitions
    restated = make_rows(source, OCT[27:] + NOV[:3], cost=5.0)  # Oct 28 - Nov 3
    summary = ds.replace(restated, sources=[source], start=OCT[27], end=NOV[3])
    assert summary.rows_written == 7
    assert summary.rows_replaced == 7
    assert summary.rows_kept == 27 + 7  # Oct 1-27 and Nov 4-10 carried over
    assert summary.partitions == [
        "provider=aws/billing_period=2026-10",
        "provider=aws/billing_period=2026-11",
    ]
    costs = by_day(ds.read())
    assert len(costs) == 41
    assert all(costs[d] == 5.0 for d in OCT[27:] + NOV[:3])
    assert all(costs[d] == 1.0 for d in OCT[:27] + NOV[3:10])
    assert data_files(root) == listed_files(root)


def test_window_replace_with_sources_drops_rows_no_longer_reported(ds):
    source = "azure-cost:/subscriptions/s1"
    ds.replace(make_rows(source, OCT[:10], provider="Microsoft"))
    # the API now reports nothing for Oct 5-7 (e.g. a restated credit): an empty table
    summary = ds.replace(make_rows(source, []), sources=[source], start=OCT[4], end=OCT[7])
    assert (summary.rows_written, summary.rows_replaced, summary.rows_kept) == (0, 3, 7)
    assert sorted(by_day(ds.read())) == OCT[:4] + OCT[7:10]
    # a window holding none of the source's rows rewrites nothing
    untouched = ds.replace(make_rows(source, []), sources=[source], start=NOV[0], end=NOV[5])
    assert (untouched.files_written, untouched.partitions) == (0, [])


def test_whole_export_replacement_per_partition_and_per_source(ds):
    ds.replace(make_rows("focus:aws:payer", OCT + NOV))
    # re-ingesting an export that only holds November replaces November only ...
    ds.replace(make_rows("focus:aws:payer", NOV, cost=3.0))
    costs = by_day(ds.read())
    assert all(costs[d] == 1.0 for d in OCT) and all(costs[d] == 3.0 for d in NOV)
    # ... while naming the source replaces all of its rows, every partition
    summary = ds.replace(
        make_rows("focus:aws:payer", NOV[:2], cost=4.0), sources=["focus:aws:payer"]
    )
    assert summary.rows_replaced == 31 + 30
    assert by_day(ds.read()) == {NOV[0]: 4.0, NOV[1]: 4.0}
    assert [p.partition for p in ds.partitions()] == ["provider=aws/billing_period=2026-11"]


def test_two_sources_in_one_partition_are_independent(ds):
    a, b = "aws-ce:111111111111", "aws-ce:222222222222"
    ds.replace(make_rows(a, OCT[:5], cost=1.0))
    ds.replace(make_rows(b, OCT[:5], cost=10.0))
    ds.replace(make_rows(a, OCT[:3], cost=2.0))  # replaces a's rows only
    table = ds.read()
    assert by_day(table, a) == {d: 2.0 for d in OCT[:3]}
    assert by_day(table, b) == {d: 10.0 for d in OCT[:5]}
    (info,) = ds.partitions()
    assert info.partition == "provider=aws/billing_period=2026-10"
    assert (info.provider, info.billing_period, info.rows, info.files) == ("aws", "2026-10", 8, 2)
    assert info.sources == {a: 3, b: 5}
    assert info.min_charge_period_start == _midnight(OCT[0])
    assert info.max_charge_period_start == _midnight(OCT[4])


def test_one_transaction_many_batches_mixed_sources_and_partitions(ds, root):
    with ds.replacing() as tx:
        tx.write(make_rows("aws-ce:1", OCT[:10]))
        tx.write(make_rows("focus:azure:ba-1", OCT[:10], provider="Microsoft"))
        tx.write(make_rows("aws-ce:1", OCT[10:] + NOV[:2]).to_batches()[0])  # a RecordBatch
        tx.write(make_rows("gcp-billing-export:p.d.t", NOV[:5], provider="Google Cloud"))
    assert tx.summary.rows_written == 10 + 10 + 23 + 5
    assert tx.summary.sources == ["aws-ce:1", "focus:azure:ba-1", "gcp-billing-export:p.d.t"]
    assert sorted(listed_files(root)) == sorted(data_files(root))
    assert {p.partition: p.sources for p in ds.partitions()} == {
        "provider=aws/billing_period=2026-10": {"aws-ce:1": 31},
        "provider=aws/billing_period=2026-11": {"aws-ce:1": 2},
        "provider=azure/billing_period=2026-10": {"focus:azure:ba-1": 10},
        "provider=gcp/billing_period=2026-11": {"gcp-billing-export:p.d.t": 5},
    }


def test_layout_partitions_and_file_names(ds, root):
    source = "focus:azure:billing/Account 7"  # unsafe in a file name
    # a charge on Oct 31 billed in the November period lands in billing_period=2026-11
    ds.replace(make_rows(source, [OCT[30]], provider="Microsoft", billing_period=NOV[0]))
    (entry,) = manifest_of(root)["files"]
    assert entry["source"] == source  # verbatim in the manifest
    partition, name = entry["path"].rsplit("/", 1)
    assert partition == "provider=azure/billing_period=2026-11"
    stem = name.removesuffix(".parquet")
    assert stem.startswith("focus_azure_billing_Account_7-")
    assert uuid.UUID(stem.rsplit("-", 1)[1])  # the write uuid
    assert (root / entry["path"]).is_file()
    assert entry["rows"] == 1
    assert entry["min_charge_period_start"] == "2026-10-31T00:00:00+00:00"


# ------------------------------------------------------------------------------ reads


def test_read_filters_and_columns(ds):
    ds.replace(make_rows("aws-ce:1", OCT + NOV[:5]))
    ds.replace(make_rows("focus:azure:x", OCT[:5], provider="Microsoft", cost=7.0))
    assert ds.read().num_rows == 31 + 5 + 5
    azure = ds.read(providers=["azure"])
    assert set(azure["ProviderName"].to_pylist()) == {"Microsoft"} and azure.num_rows == 5
    assert ds.read(providers=["Microsoft"]).equals(azure)
    window = ds.read(start=OCT[29], end=NOV[2])  # [Oct 30, Nov 3)
    assert sorted(by_day(window)) == [OCT[29], OCT[30], NOV[0], NOV[1]]
    assert ds.read(start=NOV[4]).num_rows == 1
    assert ds.read(end=OCT[1]).num_rows == 2  # Oct 1, both sources
    picked = ds.read(columns=["ChargePeriodStart", "BilledCost"], providers=["aws"])
    assert picked.column_names == ["ChargePeriodStart", "BilledCost"]
    full = ds.read()
    assert full.schema == SCHEMA  # no provider / billing_period columns added
    with pytest.raises(ValueError, match="columns: 'provider' is not a FOCUS 1.2 column"):
        ds.read(columns=["provider"])


def test_empty_dataset_reads_as_an_empty_schema_table(tmp_path):
    ds = CostDataset(tmp_path / "never-written")
    assert ds.read().schema == SCHEMA and ds.read().num_rows == 0
    assert ds.read(columns=["BilledCost"]).column_names == ["BilledCost"]
    assert ds.partitions() == [] and ds.row_count() == 0 and ds.watermark("x") is None
    assert not (tmp_path / "never-written").exists()  # reading creates nothing


def test_default_location_is_the_data_folder(monkeypatch, tmp_path):
    monkeypatch.setenv("OPSFLOW_HOME", str(tmp_path / "home"))
    ds = CostDataset()
    assert ds.display_url == str((tmp_path / "home" / "costs").resolve())
    ds.replace(make_rows("aws-ce:1", OCT[:2]))
    assert (tmp_path / "home" / "costs" / "_manifest.json").is_file()
    assert CostDataset(f"file://{tmp_path}/home/costs").read().num_rows == 2


# ------------------------------------------------------------------------- validation


def test_tables_must_conform_to_the_schema(ds, root):
    good = make_rows("aws-ce:1", OCT[:2])
    with pytest.raises(ValueError, match="missing column 'BilledCost'"):
        ds.replace(good.drop_columns(["BilledCost"]))
    with pytest.raises(ValueError, match="unexpected column 'cost'"):
        ds.replace(good.append_column("cost", pa.array([1.0, 2.0])))
    bad_type = good.set_column(1, "BilledCost", pa.array(["1", "2"]))
    with pytest.raises(ValueError, match="column 'BilledCost' has type string, expected double"):
        ds.replace(bad_type)
    idx = SCHEMA.get_field_index("ServiceName")
    nulls = good.set_column(idx, SCHEMA.field(idx), pa.array([None, "EC2"], pa.string()))
    with pytest.raises(ValueError, match="column 'ServiceName' has 1 null value"):
        ds.replace(nulls)
    idx = SCHEMA.get_field_index(SOURCE_COLUMN)
    no_source = good.set_column(idx, SCHEMA.field(idx), pa.array(["", "x"]))
    with pytest.raises(ValueError, match="empty source id"):
        ds.replace(no_source)
    with pytest.raises(TypeError, match="table: expected a pyarrow Table"):
        ds.replace({"BilledCost": [1.0]})
    # columns in another order are fine
    assert conform_table(good.select(list(reversed(SCHEMA.names)))).schema == SCHEMA
    assert not (root / "_manifest.json").exists()  # nothing was written
    # so is a table whose fields are all nullable (pa.table from columns): stored as SCHEMA
    loose = pa.table({name: good[name] for name in SCHEMA.names})
    assert loose.schema != SCHEMA
    ds.replace(loose)
    assert ds.read().schema == SCHEMA and ds.read().num_rows == 2


def test_sources_and_window_are_checked(ds, root):
    rows = make_rows("aws-ce:1", OCT[:5])
    with pytest.raises(ValueError, match="x_SourceId 'aws-ce:1' is not one of the sources"):
        ds.replace(rows, sources=["aws-ce:2"])
    with pytest.raises(ValueError, match=r"ChargePeriodStart 2026-10-01.* outside the replace"):
        ds.replace(rows, start=OCT[2], end=OCT[10])
    with pytest.raises(ValueError, match="start: 2026-10-05 must be before end"):
        ds.replace(rows, start=OCT[4], end=OCT[4])
    with pytest.raises(TypeError, match="start: expected a date"):
        ds.replace(rows, start=datetime(2026, 10, 1, tzinfo=UTC))
    with pytest.raises(TypeError, match="sources: give a list"):
        ds.replace(rows, sources="aws-ce:1")
    with pytest.raises(ValueError, match="source_id"):
        ds.set_watermark("", OCT[0])
    assert not (root / "_manifest.json").exists()


# ----------------------------------------------------------------- atomicity, failures


def test_a_bad_batch_mid_transaction_changes_nothing(ds, root):
    ds.replace(make_rows("aws-ce:1", OCT))
    before, files = ds.read(), data_files(root)
    with pytest.raises(ValueError, match="missing column"), ds.replacing() as tx:
        tx.write(make_rows("aws-ce:1", OCT, cost=9.0))  # staged ...
        tx.write(make_rows("aws-ce:1", OCT).drop_columns(["ListCost"]))  # ... then a bad one
    assert_same_rows(ds.read(), before)
    assert data_files(root) == files
    assert list((root / "_staging").iterdir()) == []  # the staged file was removed


def test_failure_while_writing_a_data_file(ds, root, monkeypatch):
    ds.replace(make_rows("aws-ce:1", OCT))
    before, files = ds.read(), data_files(root)
    real_write, calls = transaction.StagedFile.write, []

    def disk_full_on_second_write(self, table):
        calls.append(table.num_rows)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        real_write(self, table)

    monkeypatch.setattr(transaction.StagedFile, "write", disk_full_on_second_write)
    with pytest.raises(OSError, match="No space left"), ds.replacing() as tx:
        tx.write(make_rows("aws-ce:1", OCT[:15], cost=9.0))
        tx.write(make_rows("aws-ce:1", OCT[15:], cost=9.0))
    monkeypatch.undo()
    assert_same_rows(ds.read(), before)
    assert data_files(root) == files
    summary = ds.replace(make_rows("aws-ce:1", OCT, cost=9.0))  # the retry
    assert summary.rows_replaced == 31
    assert by_day(ds.read()) == {d: 9.0 for d in OCT}


def test_failure_at_the_manifest_swap(ds, root, monkeypatch):
    ds.replace(make_rows("aws-ce:1", OCT))
    ds.set_watermark("aws-ce:1", OCT[-1])
    before, files, manifest = ds.read(), data_files(root), manifest_of(root)

    def swap_fails(self, new_manifest):
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(stores.LocalStore, "write_manifest", swap_fails)
    with (
        pytest.raises(OSError, match="Input/output error"),
        ds.replacing(sources=["aws-ce:1"], start=OCT[20], end=NOV[0]) as tx,
    ):
        tx.write(make_rows("aws-ce:1", OCT[20:], cost=9.0))
        tx.set_watermark("aws-ce:1", NOV[0])
    monkeypatch.undo()
    assert_same_rows(ds.read(), before)
    assert data_files(root) == files  # the published merge file was taken back
    assert manifest_of(root) == manifest
    assert ds.watermark("aws-ce:1") == OCT[-1]  # the watermark moves only with its data
    with ds.replacing(sources=["aws-ce:1"], start=OCT[20], end=NOV[0]) as tx:  # the retry
        tx.write(make_rows("aws-ce:1", OCT[20:], cost=9.0))
        tx.set_watermark("aws-ce:1", NOV[0])
    costs = by_day(ds.read())
    assert len(costs) == 31 and ds.read().num_rows == 31
    assert costs[OCT[0]] == 1.0 and costs[OCT[25]] == 9.0
    assert ds.watermark("aws-ce:1") == NOV[0]


def _crash_inside_the_transaction(root: str) -> None:
    """Killed while staging (no cleanup runs): a half-written file stays in _staging."""
    with CostDataset(root).replacing() as tx:
        tx.write(make_rows("aws-ce:1", OCT, cost=9.0))
        os._exit(3)


def _crash_at_the_swap(root: str) -> None:
    """Killed at the commit point: new files are published but the manifest is the old one."""

    def killed(self, manifest):
        os._exit(4)

    stores.LocalStore.write_manifest = killed
    CostDataset(root).replace(make_rows("aws-ce:1", OCT, cost=9.0))


@pytest.mark.parametrize(
    ("crash", "code"), [(_crash_inside_the_transaction, 3), (_crash_at_the_swap, 4)]
)
def test_a_crashed_writer_leaves_previous_data_and_its_orphans_are_collected(ds, root, crash, code):
    ds.replace(make_rows("aws-ce:1", OCT))
    ds.replace(make_rows("aws-ce:2", OCT[:3]))
    before, live = ds.read(), listed_files(root)
    process = multiprocessing.get_context("spawn").Process(target=crash, args=(str(root),))
    process.start()
    process.join(120)
    assert process.exitcode == code
    leftovers = {p for p in root.rglob("*.parquet")} - {root / p for p in live}
    assert leftovers  # the crash left files behind ...
    assert_same_rows(ds.read(), before)  # ... that no reader sees
    summary = ds.replace(make_rows("aws-ce:2", OCT[:3], cost=2.0))  # the next good write
    # the superseded file, plus the published orphan of a crash at the swap (a crash while
    # staging leaves its files in _staging, removed with the dead transaction's folder)
    assert summary.files_deleted == (2 if crash is _crash_at_the_swap else 1)
    assert not any(p.exists() for p in leftovers)
    assert data_files(root) == listed_files(root)
    assert list((root / "_staging").iterdir()) == []
    assert by_day(ds.read(), "aws-ce:1") == {d: 1.0 for d in OCT}  # no duplicates
    assert not list(root.glob("._manifest.json.*.part"))  # no manifest temp file


# ------------------------------------------------------------------------ concurrency


def _concurrent_writer(root: str, source: str, rounds: int, barrier) -> None:
    ds = CostDataset(root)
    barrier.wait(60)
    for i in range(rounds):
        ds.replace(make_rows(source, OCT[:10], per_day=5, cost=float(i + 1)))


def test_concurrent_writers_in_two_processes_keep_each_others_rows(ds, root):
    rounds = 15
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(2)
    writers = [
        ctx.Process(target=_concurrent_writer, args=(str(root), src, rounds, barrier))
        for src in ("aws-ce:111111111111", "aws-ce:222222222222")
    ]
    for w in writers:
        w.start()
    for w in writers:
        w.join(180)
    assert [w.exitcode for w in writers] == [0, 0]
    table = ds.read()
    assert table.num_rows == 2 * 50
    for source in ("aws-ce:111111111111", "aws-ce:222222222222"):
        assert by_day(table, source) == {d: 5.0 * rounds for d in OCT[:10]}
    assert manifest_of(root)["version"] == 2 * rounds
    assert data_files(root) == listed_files(root)


def test_a_transaction_open_while_another_commits_keeps_both(ds, root):
    ds.replace(make_rows("aws-ce:1", OCT[:5]))
    with ds.replacing() as tx:
        tx.write(make_rows("aws-ce:1", OCT[:5], cost=3.0))
        CostDataset(root).replace(make_rows("aws-ce:2", OCT[:5], cost=7.0))  # commits first
    table = ds.read()
    assert by_day(table, "aws-ce:1") == {d: 3.0 for d in OCT[:5]}
    assert by_day(table, "aws-ce:2") == {d: 7.0 for d in OCT[:5]}
    assert data_files(root) == listed_files(root)


# ------------------------------------------------------------------ incremental state


def test_watermarks(ds, root):
    assert ds.watermark("aws-ce:1") is None
    ds.set_watermark("aws-ce:1", OCT[9])
    ds.set_watermark("gcp-billing-export:p.d.t", OCT[3])
    assert ds.watermark("aws-ce:1") == OCT[9]
    assert manifest_of(root)["watermarks"] == {
        "aws-ce:1": "2026-10-10",
        "gcp-billing-export:p.d.t": "2026-10-04",
    }
    with pytest.raises(RuntimeError), ds.replacing() as tx:
        tx.set_watermark("aws-ce:1", OCT[20])
        raise RuntimeError("collection failed")
    assert ds.watermark("aws-ce:1") == OCT[9]
    with pytest.raises(TypeError, match="day: expected a date"):
        ds.set_watermark("aws-ce:1", "2026-10-10")


def test_dataset_pickles_without_its_filesystem(ds):
    ds.replace(make_rows("aws-ce:1", OCT[:2]))
    again = pickle.loads(pickle.dumps(ds))
    assert again.read().num_rows == 2 and again.display_url == ds.display_url


# -------------------------------------------------------------------------------- S3


@pytest.fixture
def s3(moto_url):
    import boto3

    client = boto3.client(
        "s3",
        endpoint_url=moto_url,
        aws_access_key_id=MOTO_KEY,
        aws_secret_access_key="x",
        region_name="us-east-1",
    )
    bucket = f"finops-{uuid.uuid4().hex[:10]}"
    client.create_bucket(Bucket=bucket)
    client.bucket = bucket
    return client


def s3_keys(s3) -> set[str]:
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=s3.bucket)
    return {o["Key"] for page in pages for o in page.get("Contents", [])}


def s3_manifest(s3) -> dict:
    body = s3.get_object(Bucket=s3.bucket, Key="team/costs/_manifest.json")["Body"].read()
    return json.loads(body)


@pytest.fixture(params=["s3fs-storage-options", "s3bucket-block"])
def s3_ds(request, s3, moto_url) -> CostDataset:
    if request.param == "s3fs-storage-options":
        return CostDataset(
            f"s3://{s3.bucket}/team/costs",
            storage_options={
                "key": MOTO_KEY,
                "secret": CANARY,
                "client_kwargs": {"endpoint_url": moto_url, "region_name": "us-east-1"},
            },
        )
    from prefect_aws import AwsCredentials
    from prefect_aws.s3 import S3Bucket

    credentials = AwsCredentials(
        aws_access_key_id=MOTO_KEY,
        aws_secret_access_key=CANARY,
        region_name="us-east-1",
        aws_client_parameters={"endpoint_url": moto_url},
    )
    return CostDataset.from_block(
        S3Bucket(bucket_name=s3.bucket, bucket_folder="team", credentials=credentials)
    )


def test_s3_core_behaviour(s3_ds, s3):
    assert s3_ds.display_url == f"s3://{s3.bucket}/team/costs"
    source = "aws-ce:123456789012"
    s3_ds.replace(make_rows(source, OCT + NOV[:5], per_day=2))
    s3_ds.replace(make_rows(source, OCT + NOV[:5], per_day=2))  # same period again
    assert s3_ds.read().num_rows == 2 * 36
    s3_ds.replace(make_rows("focus:azure:ba", OCT[:4], provider="Microsoft", cost=4.0))
    summary = s3_ds.replace(
        make_rows(source, OCT[29:] + NOV[:2], cost=9.0), sources=[source], start=OCT[29], end=NOV[2]
    )
    assert (summary.rows_written, summary.rows_replaced, summary.rows_kept) == (
        4,
        8,
        29 * 2 + 3 * 2,
    )
    aws = by_day(s3_ds.read(providers=["aws"]))
    assert aws[OCT[0]] == 2.0 and aws[OCT[29]] == 9.0 and aws[NOV[1]] == 9.0 and aws[NOV[4]] == 2.0
    assert by_day(s3_ds.read(providers=["azure"])) == {d: 4.0 for d in OCT[:4]}
    assert s3_ds.read(start=NOV[0], end=NOV[2]).num_rows == 2
    s3_ds.set_watermark(source, NOV[1])
    assert s3_ds.watermark(source) == NOV[1]
    manifest = s3_manifest(s3)
    listed = {"team/costs/" + f["path"] for f in manifest["files"]}
    assert s3_keys(s3) == listed | {"team/costs/_manifest.json"}  # nothing else left behind
    assert {f["partition"] for f in manifest["files"]} == {
        "provider=aws/billing_period=2026-10",
        "provider=aws/billing_period=2026-11",
        "provider=azure/billing_period=2026-10",
    }


def test_s3_failure_at_the_manifest_put_keeps_previous_data(s3_ds, s3, monkeypatch):
    s3_ds.replace(make_rows("aws-ce:1", OCT))
    before, keys = s3_ds.read(), s3_keys(s3)

    def put_fails(self, manifest):
        raise ConnectionResetError("connection reset during PUT")

    monkeypatch.setattr(stores.FsspecStore, "write_manifest", put_fails)
    with pytest.raises(ConnectionResetError):
        s3_ds.replace(make_rows("aws-ce:1", OCT, cost=5.0))
    monkeypatch.undo()
    assert_same_rows(s3_ds.read(), before)
    assert s3_keys(s3) == keys  # the uploaded file was removed again
    s3_ds.replace(make_rows("aws-ce:1", OCT, cost=5.0))  # the retry
    assert by_day(s3_ds.read()) == {d: 5.0 for d in OCT}


def _foreign_writer(dataset: CostDataset) -> None:
    dataset.replace(make_rows("aws-ce:2", OCT[:5], cost=7.0))


def test_s3_writer_refuses_when_another_process_changed_the_manifest(s3_ds, s3):
    s3_ds.replace(make_rows("aws-ce:1", OCT[:5]))
    other = multiprocessing.get_context("spawn").Process(target=_foreign_writer, args=(s3_ds,))
    with (
        pytest.raises(ConcurrentWriteError, match="changed by another writer"),
        s3_ds.replacing() as tx,
    ):
        tx.write(make_rows("aws-ce:1", OCT[:5], cost=3.0))
        other.start()  # commits while this transaction is open
        other.join(120)
        assert other.exitcode == 0
    table = s3_ds.read()
    assert by_day(table, "aws-ce:1") == {d: 1.0 for d in OCT[:5]}  # this write refused
    assert by_day(table, "aws-ce:2") == {d: 7.0 for d in OCT[:5]}  # the other one kept
    listed = {"team/costs/" + f["path"] for f in s3_manifest(s3)["files"]}
    assert s3_keys(s3) == listed | {"team/costs/_manifest.json"}  # nothing uploaded, left


def test_s3_writers_in_threads_of_one_process_take_turns(s3_ds, s3):
    errors: list[BaseException] = []

    def writer(source: str) -> None:
        try:
            for i in range(4):
                with s3_ds.replacing() as tx:
                    tx.write(make_rows(source, OCT[:3], cost=float(i + 1)))
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(f"aws-ce:{n}",)) for n in (1, 2, 3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert errors == []
    table = s3_ds.read()
    for n in (1, 2, 3):
        assert by_day(table, f"aws-ce:{n}") == {d: 4.0 for d in OCT[:3]}
    assert s3_manifest(s3)["version"] == 12


def test_s3_orphans_are_collected_by_the_next_write(s3_ds, s3):
    s3_ds.replace(make_rows("aws-ce:1", OCT[:5]))
    orphan = "team/costs/provider=aws/billing_period=2026-10/aws-ce_1-deadbeef.parquet"
    s3.put_object(Bucket=s3.bucket, Key=orphan, Body=b"half a parquet file")
    s3.put_object(Bucket=s3.bucket, Key="team/costs/README.md", Body=b"not ours to delete")
    assert s3_ds.read().num_rows == 5  # never read: not in the manifest
    summary = s3_ds.replace(make_rows("aws-ce:2", OCT[:5]))
    assert summary.files_deleted == 1
    assert orphan not in s3_keys(s3) and "team/costs/README.md" in s3_keys(s3)


def test_s3_secret_never_shown(s3, moto_url, caplog):
    from prefect_aws import AwsCredentials
    from prefect_aws.s3 import S3Bucket

    caplog.set_level(logging.DEBUG)
    credentials = AwsCredentials(
        aws_access_key_id=MOTO_KEY,
        aws_secret_access_key=CANARY,
        region_name="us-east-1",
        aws_client_parameters={"endpoint_url": moto_url},
    )
    good = CostDataset.from_block(S3Bucket(bucket_name=s3.bucket, credentials=credentials))
    good.replace(make_rows("aws-ce:1", OCT[:2]))
    assert good.read().num_rows == 2
    missing = CostDataset.from_block(
        S3Bucket(bucket_name="no-such-bucket-" + uuid.uuid4().hex[:6], credentials=credentials)
    )
    for shown in (repr(good), good.display_url, repr(missing)):
        assert CANARY not in shown
    with pytest.raises(FileNotFoundError) as info:
        missing.replace(make_rows("aws-ce:1", OCT[:2]))
    assert "bucket does not exist" in str(info.value)
    assert CANARY not in str(info.value) and CANARY not in repr(info.value)
    assert CANARY not in caplog.text
