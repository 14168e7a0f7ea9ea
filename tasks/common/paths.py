"""Where opsflow keeps its local state (Prefect database, results, catalogs).

One folder, ``$OPSFLOW_HOME`` (default ``~/.opsflow``), so a test or a demo can
point everything at a scratch directory with a single variable.
"""

from __future__ import annotations

import os
from pathlib import Path


def data_dir() -> Path:
    """Return the opsflow data folder, creating it if needed."""
    path = Path(os.environ.get("OPSFLOW_HOME") or Path.home() / ".opsflow").expanduser()
    path.mkdir(parents=True, exist_ok=True)
    return path.resolve()


def prefect_home() -> Path:
    return data_dir() / "prefect"


def results_dir() -> Path:
    return data_dir() / "results"


def catalog_dir() -> Path:
    return data_dir() / "price_catalog"


def reports_dir() -> Path:
    return data_dir() / "reports"
