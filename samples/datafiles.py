"""The data files bundled under ``samples/data/`` (message catalogues, price tables).

Example:
    ```python
    from samples.datafiles import load_json

    catalogue = load_json("scenarios", "background.json")
    print(sorted(catalogue))
    ```
"""

from __future__ import annotations

import json
from importlib import resources
from typing import Any


def load_json(*parts: str) -> Any:
    """Parse ``samples/data/<parts...>``."""
    path = resources.files("samples") / "data"
    for part in parts:
        path = path / part
    return json.loads(path.read_text(encoding="utf-8"))
