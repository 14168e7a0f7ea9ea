"""Write a file so a reader sees the old content or the new one, never half of it.

Every file opsflow writes (reports, charts, exported telemetry, prefect.yaml, the serve
state, the cost dataset's manifest and data files, downloaded exports, quarantine CSVs)
goes through here: a uniquely named temporary file beside the target
(``.<name>.<random>.part``), written, fsynced, renamed over the target with
``os.replace``, and the folder fsynced so that the rename survives a power cut.
Concurrent writers never share a temp file. Temp files are created like ``open()``
creates files (mode ``0o666`` less the umask).

- ``atomic_open`` / ``write_text_atomic`` / ``write_bytes_atomic``: write the content here.
- ``atomic_path``: a temp path for writers that need a file name (a download, a Parquet
  writer); it replaces the target when the block ends.
- ``publish_file``: move a file finished elsewhere on the same filesystem onto its target.
- ``atomic_directory``: fill a temp folder, then rename it into place as a whole.
- ``temp_files``: what an interrupted write of a target left behind, for cleanup.

Example:
    ```python
    from pathlib import Path

    from tasks.common.atomic import atomic_open, write_text_atomic

    out = Path("out")
    write_text_atomic(out / "report.md", "# Report\\n")
    with atomic_open(out / "rows.csv") as f:
        f.write("a,b\\n1,2\\n")
    print((out / "rows.csv").read_text())
    ```
"""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

TEMP_SUFFIX = ".part"


def _fsync(path: str | os.PathLike[str]) -> None:
    """Flush a file's data, or a folder's entries (a rename, a new file), to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _temp_name(path: Path) -> str:
    return f".{path.name}.{uuid.uuid4().hex[:12]}{TEMP_SUFFIX}"


def temp_files(path: str | os.PathLike[str]) -> list[Path]:
    """The temp files that interrupted atomic writes of ``path`` left beside it."""
    path = Path(path)
    return sorted(path.parent.glob(f".{path.name}.*{TEMP_SUFFIX}"))


def publish_file(source: str | os.PathLike[str], target: str | os.PathLike[str]) -> Path:
    """Move the finished file ``source`` onto ``target`` atomically, durably.

    ``source`` is fsynced, renamed over ``target`` (same filesystem) and ``target``'s
    folder (created if missing) fsynced.

    Returns:
        ``target`` as a ``Path``.

    Example:
        ```python
        from pathlib import Path

        from tasks.common.atomic import publish_file

        staged = Path("staging/part-1.csv")
        staged.parent.mkdir(exist_ok=True)
        staged.write_text("a\\n1\\n")
        print(publish_file(staged, "data/part-1.csv").read_text())
        ```
    """
    source, target = Path(source), Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    _fsync(source)
    os.replace(source, target)
    _fsync(target.parent)
    return target


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """A temporary file beside ``path``, which replaces ``path`` when the block ends.

    For writers that want a file name rather than a handle. The temp file exists (empty)
    when the block starts. On a clean exit it is published with ``publish_file``; if the
    block removed it, ``path`` is left as it was (a writer with nothing to write). On an
    exception it is removed and ``path`` is untouched.

    Example:
        ```python
        import pyarrow as pa
        import pyarrow.parquet as pq

        from tasks.common.atomic import atomic_path

        with atomic_path("costs.parquet") as temp:
            pq.write_table(pa.table({"cost": [1.5, 2.0]}), temp)
        print(pq.read_table("costs.parquet").num_rows)
        ```
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        temp = path.parent / _temp_name(path)
        try:
            os.close(os.open(temp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
            break
        except FileExistsError:  # pragma: no cover - 48 random bits collided
            continue
    try:
        yield temp
        if temp.exists():
            publish_file(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike[str], mode: str = "w") -> Iterator[IO[Any]]:
    """A file that replaces ``path`` when the block ends without an exception.

    Args:
        path: the file to replace (its folder is created if missing).
        mode: ``"w"`` for text (UTF-8, newlines as written) or ``"wb"`` for bytes.

    Example:
        ```python
        from tasks.common.atomic import atomic_open

        with atomic_open("out.csv") as f:
            f.write("a,b\\n")
        ```
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"mode: 'w' or 'wb', got {mode!r}")
    with atomic_path(path) as temp:
        text = {"encoding": "utf-8", "newline": ""} if mode == "w" else {}
        with temp.open(mode, **text) as handle:
            yield handle


def write_text_atomic(path: str | os.PathLike[str], text: str) -> Path:
    """Replace ``path`` with ``text`` (UTF-8) atomically; returns the path."""
    with atomic_open(path) as handle:
        handle.write(text)
    return Path(path)


def write_bytes_atomic(path: str | os.PathLike[str], data: bytes) -> Path:
    """Replace ``path`` with ``data`` atomically; returns the path."""
    with atomic_open(path, "wb") as handle:
        handle.write(data)
    return Path(path)


@contextlib.contextmanager
def atomic_directory(path: str | os.PathLike[str]) -> Iterator[Path]:
    """A temporary folder beside ``path`` that becomes ``path`` when the block ends.

    Fill the yielded folder; on a clean exit every file in it and the folder itself are
    fsynced, it is renamed to ``path`` (which must not exist, or be an empty folder) and
    the parent fsynced. On an exception the folder is removed and ``path`` untouched.

    Example:
        ```python
        from tasks.common.atomic import atomic_directory

        with atomic_directory("versions/v2") as folder:
            (folder / "aws.json").write_text("{}")
        ```
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.parent / _temp_name(path)
    temp.mkdir()
    try:
        yield temp
        for item in sorted(temp.rglob("*")):  # files and sub-folders
            _fsync(item)
        _fsync(temp)
        os.rename(temp, path)
        _fsync(path.parent)
    except BaseException:
        shutil.rmtree(temp, ignore_errors=True)
        raise
