"""tasks.common.atomic: the one atomic file writer (temp file beside the target, fsync,
rename, folder fsync), its failure paths, and the helpers the cost dataset, the export
downloads and the quarantine CSVs use."""

from __future__ import annotations

import os

import pytest

from tasks.common.atomic import (
    atomic_directory,
    atomic_open,
    atomic_path,
    publish_file,
    temp_files,
    write_bytes_atomic,
    write_text_atomic,
)


def test_text_and_bytes_replace_the_target_and_leave_no_temp_file(tmp_path):
    target = tmp_path / "sub" / "report.md"
    write_text_atomic(target, "one\n")
    write_text_atomic(target, "two\n")
    assert target.read_text() == "two\n"
    write_bytes_atomic(target, b"\x00three")
    assert target.read_bytes() == b"\x00three"
    assert sorted(p.name for p in target.parent.iterdir()) == ["report.md"]


def test_a_failed_write_keeps_the_old_content(tmp_path):
    target = tmp_path / "rows.csv"
    write_text_atomic(target, "old")
    with pytest.raises(RuntimeError), atomic_open(target) as f:
        f.write("half")
        assert temp_files(target)  # the temp file is beside the target meanwhile
        raise RuntimeError("disk gone")
    assert target.read_text() == "old"
    assert temp_files(target) == []


def test_files_get_the_permissions_open_would_give(tmp_path):
    umask = os.umask(0o022)
    try:
        write_text_atomic(tmp_path / "a.txt", "x")
    finally:
        os.umask(umask)
    assert (tmp_path / "a.txt").stat().st_mode & 0o777 == 0o644


def test_atomic_open_refuses_other_modes(tmp_path):
    with pytest.raises(ValueError, match="mode"), atomic_open(tmp_path / "x", "a"):
        pass


def test_atomic_path_publishes_what_the_writer_wrote_or_nothing_if_it_removed_it(tmp_path):
    target = tmp_path / "download.bin"
    with atomic_path(target) as temp:
        assert temp.parent == tmp_path and temp.exists() and not target.exists()
        temp.write_bytes(b"data")
    assert target.read_bytes() == b"data"
    with atomic_path(target) as temp:
        temp.unlink()  # nothing to write
    assert target.read_bytes() == b"data"
    assert list(tmp_path.iterdir()) == [target]


def test_publish_file_moves_a_finished_file_into_a_new_folder(tmp_path):
    staged = tmp_path / "staging" / "part.parquet"
    staged.parent.mkdir()
    staged.write_bytes(b"PAR1")
    out = publish_file(staged, tmp_path / "provider=aws" / "part.parquet")
    assert out.read_bytes() == b"PAR1" and not staged.exists()


def test_atomic_directory_appears_whole_or_not_at_all(tmp_path):
    target = tmp_path / "versions" / "v1"
    with atomic_directory(target) as folder:
        (folder / "aws.json").write_text("{}")
        (folder / "sub").mkdir()
        (folder / "sub" / "gcp.json").write_text("[]")
        assert not target.exists()
    assert (target / "aws.json").read_text() == "{}"
    assert (target / "sub" / "gcp.json").read_text() == "[]"
    with pytest.raises(KeyError), atomic_directory(tmp_path / "versions" / "v2") as folder:
        (folder / "aws.json").write_text("{}")
        raise KeyError("validation failed")
    assert sorted(p.name for p in (tmp_path / "versions").iterdir()) == ["v1"]
