"""Where a cost dataset lives: a local folder (``LocalStore``: ``flock`` for writers,
atomic manifest replace) or any fsspec filesystem (``FsspecStore``: single-PUT manifest
swaps, refused when another writer moved the manifest), and the garbage collection of
files no manifest lists.

Example:
    ```python
    from pathlib import Path

    from tasks.costs.dataset.stores import LocalStore, collect_garbage

    store = LocalStore(Path("costs").absolute())
    with store.locked():
        manifest = store.read_manifest()
        print(manifest.version, collect_garbage(store, manifest, []))
    ```
"""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import tempfile
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from tasks.common.atomic import publish_file, temp_files, write_bytes_atomic
from tasks.costs.dataset.manifest import MANIFEST, Manifest

LOCK = "_lock"
STAGING = "_staging"
_DATA_FILE = re.compile(r"^provider=[^/]+/billing_period=[^/]+/[^/]+\.parquet$")


class ConcurrentWriteError(RuntimeError):
    """Another writer replaced the manifest of an object-store dataset meanwhile."""


_CONCURRENT = (
    "the cost dataset's manifest was changed by another writer during this write; nothing "
    "was changed, retry it. Serialize writers of an object-store dataset (the collect-costs "
    "flow uses a Prefect global concurrency limit)."
)


class Staging:
    """A private folder for one transaction's new files."""

    def __init__(self, path: Path, lock_fd: int | None = None):
        self.path, self._lock_fd = path, lock_fd

    def remove(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # releases the flock
            self._lock_fd = None


class LocalStore:
    """A dataset folder on this machine: flock for writers, an atomic manifest replace."""

    def __init__(self, root: Path):
        self.root = root

    @property
    def arrow_fs(self) -> Any:
        import pyarrow.fs

        return pyarrow.fs.LocalFileSystem()

    def full(self, rel: str) -> str:
        return str(self.root / rel)

    def read_manifest(self) -> Manifest:
        path = self.root / MANIFEST
        try:
            return Manifest.from_bytes(path.read_bytes(), str(path))
        except FileNotFoundError:
            return Manifest()

    def write_manifest(self, manifest: Manifest) -> None:
        write_bytes_atomic(self.root / MANIFEST, manifest.to_bytes())  # fsynced, with the folder

    @contextmanager
    def locked(self) -> Iterator[None]:
        self.root.mkdir(parents=True, exist_ok=True)
        with (self.root / LOCK).open("a+b") as handle:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)

    def staging(self) -> Staging:
        # created under the dataset lock, so garbage collection never sees it half made
        with self.locked():
            path = self.root / STAGING / uuid.uuid4().hex
            path.mkdir(parents=True)
            fd = os.open(path / ".lock", os.O_CREAT | os.O_RDWR, 0o600)
            fcntl.flock(fd, fcntl.LOCK_EX)
        return Staging(path, fd)

    def check_since(self, baseline: str | None, current: str | None) -> None:
        """Local writers rebase under the flock: a change since the start is fine."""

    def swap(self, manifest: Manifest, expected: str | None) -> None:
        self.write_manifest(manifest)

    def publish(self, local: Path, rel: str) -> None:
        publish_file(local, self.root / rel)  # durable before the manifest lists it

    def delete(self, rel: str) -> None:
        (self.root / rel).unlink(missing_ok=True)

    def open_input(self, rel: str) -> Any:
        return (self.root / rel).open("rb")

    def data_files(self) -> set[str]:
        found = self.root.glob("provider=*/billing_period=*/*.parquet")
        return {p.relative_to(self.root).as_posix() for p in found}

    def collect_extra_garbage(self) -> None:
        """Staging folders of dead transactions and stray manifest temp files."""
        # temp files of interrupted manifest writes (and their older "<name>.tmp-*" names)
        for tmp in [*temp_files(self.root / MANIFEST), *self.root.glob(f"{MANIFEST}.tmp-*")]:
            tmp.unlink(missing_ok=True)
        staging = self.root / STAGING
        for folder in staging.iterdir() if staging.is_dir() else ():
            try:
                fd = os.open(folder / ".lock", os.O_RDWR)
            except (FileNotFoundError, NotADirectoryError):
                shutil.rmtree(folder, ignore_errors=True)
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:  # a live transaction
                continue
            finally:
                os.close(fd)
            shutil.rmtree(folder, ignore_errors=True)
        for folder in self.root.glob("provider=*/billing_period=*"):
            with suppress(OSError):
                folder.rmdir()  # only when empty


# per dataset URL: the lock writers of this process take turns on, and the manifest
# generations they wrote (changes by them are not "another writer")
_WRITERS: dict[str, tuple[threading.RLock, set[str]]] = {}
_WRITERS_LOCK = threading.Lock()


class FsspecStore:
    """A dataset in an object store (or any fsspec filesystem): single-PUT manifest swaps."""

    def __init__(self, fs: Any, root: str, url: str):
        self.fs, self.root = fs, root.rstrip("/")
        with _WRITERS_LOCK:
            self._lock, self._ours = _WRITERS.setdefault(url, (threading.RLock(), set()))

    @property
    def arrow_fs(self) -> Any:
        return self.fs

    def full(self, rel: str) -> str:
        return f"{self.root}/{rel}"

    def read_manifest(self) -> Manifest:
        # every operation starts here: drop fsspec's listing cache, which would not know
        # files other processes wrote (pyarrow and fs.open consult it); a path only clears
        # itself and its parents, so clear it all
        self.fs.invalidate_cache()
        path = self.full(MANIFEST)
        try:
            data = self.fs.cat_file(path)
        except FileNotFoundError:
            return Manifest()
        return Manifest.from_bytes(data, path)

    def write_manifest(self, manifest: Manifest) -> None:
        self.fs.pipe_file(self.full(MANIFEST), manifest.to_bytes())

    def locked(self) -> Any:
        return self._lock

    def check_since(self, baseline: str | None, current: str | None) -> None:
        """Refuse when someone outside this process replaced the manifest since ``baseline``."""
        if current != baseline and current not in self._ours:
            raise ConcurrentWriteError(_CONCURRENT)

    def swap(self, manifest: Manifest, expected: str | None) -> None:
        """Re-read right before the single PUT; refuse if the manifest moved meanwhile."""
        if self.read_manifest().generation != expected:
            raise ConcurrentWriteError(_CONCURRENT)
        self.write_manifest(manifest)
        self._ours.add(manifest.generation)

    def staging(self) -> Staging:
        return Staging(Path(tempfile.mkdtemp(prefix="opsflow-costs-")))

    def publish(self, local: Path, rel: str) -> None:
        self.fs.put_file(str(local), self.full(rel))

    def delete(self, rel: str) -> None:
        with suppress(FileNotFoundError):
            self.fs.rm_file(self.full(rel))

    def open_input(self, rel: str) -> Any:
        return self.fs.open(self.full(rel), "rb")

    def data_files(self) -> set[str]:
        self.fs.invalidate_cache()
        try:
            found = self.fs.find(self.root)
        except FileNotFoundError:
            return set()
        prefix = self.root + "/"
        rels = (p[len(prefix) :] for p in found if p.startswith(prefix))
        return {r for r in rels if _DATA_FILE.match(r)}

    def collect_extra_garbage(self) -> None:
        return None


Store = LocalStore | FsspecStore


def collect_garbage(store: Store, live: Manifest, superseded: list[str]):
    """Delete superseded files and orphans of crashed writes; returns how many."""
    listed = {e.path for e in live.files.values()}
    doomed = {p for p in superseded if p not in listed} | (store.data_files() - listed)
    for rel in sorted(doomed):
        store.delete(rel)
    store.collect_extra_garbage()
    return len(doomed)
