"""Where the shared Loghub-2k data is: ``$OPSFLOW_LOGHUB_DIR``, else
``../shared/data/loghub-2k`` beside the repository root (CI lays ``shared/`` there).

Tests that measure on it fail, not skip, when it is missing: a run without the data
would otherwise pass without having measured anything.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DEFAULT = REPO.parent / "shared" / "data" / "loghub-2k"


def loghub_dir() -> Path:
    """The Loghub-2k folder (one sub-folder per system); fails the test when absent."""
    override = os.environ.get("OPSFLOW_LOGHUB_DIR")
    path = Path(override) if override else DEFAULT
    if not path.is_dir():
        how = "OPSFLOW_LOGHUB_DIR" if override else f"../shared beside {REPO}"
        pytest.fail(f"Loghub-2k data not found at {path} (from {how}); set OPSFLOW_LOGHUB_DIR")
    return path
