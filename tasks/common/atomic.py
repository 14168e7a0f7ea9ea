"""Write a file so a reader sees the old content or the new one, never half of it.

Every generated file opsflow writes (reports, charts, exported telemetry, prefect.yaml,
the serve state) goes through here: a uniquely named temporary file beside the target,
flushed and fsynced, then renamed over it. Concurrent writers never share a temp file.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike[str]) -> Iterator[IO[str]]:
    """A text file that replaces ``path`` when the block ends without an exception.

    Example:
        ```python
        with atomic_open("out.csv") as f:
            f.write("a,b\\n")
        ```
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def write_text_atomic(path: str | os.PathLike[str], text: str) -> Path:
    """Replace ``path`` with ``text`` atomically; returns the path."""
    with atomic_open(path) as handle:
        handle.write(text)
    return Path(path)
