"""Where opsflow keeps its local state (Prefect database, results, catalogs).

One folder, ``$OPSFLOW_HOME`` (default ``~/.opsflow``), so a test or a demo can
point everything at a scratch directory with a single variable. Sample runs (the demo)
write under ``$OPSFLOW_HOME/demo`` only, never into the real dataset or reports.
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


def costs_dir() -> Path:
    """The default cost dataset (``CostDataset()``: what configured collect-costs runs write)."""
    return data_dir() / "costs"


def demo_dir() -> Path:
    """Everything a sample run writes: synthetic data never lands next to the real data."""
    return data_dir() / "demo"


def demo_costs_dir() -> Path:
    """The cost dataset of sample runs (``samples: true``)."""
    return demo_dir() / "costs"


def demo_reports_dir() -> Path:
    """Report files of sample runs and of the demo."""
    return demo_dir() / "reports"
