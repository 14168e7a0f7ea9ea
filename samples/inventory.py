"""The bundled three-cloud inventory (``samples/data/inventory.json``) with planted waste.

A frozen snapshot: ``collect-resources`` returns it when no source is configured, with
``as_of`` set to the snapshot's own time so the rules judge it as of that moment.
"""

from __future__ import annotations

import functools
import json
from datetime import datetime
from importlib import resources

from tasks.inventory.model import Resource

SOURCE_NAME = "bundled sample"


@functools.cache
def _document() -> dict:
    return json.loads((resources.files("samples") / "data" / "inventory.json").read_text())


def sample_inventory() -> list[Resource]:
    """The bundled resources (AWS, Azure, GCP).

    Example:
        ```python
        from samples.inventory import sample_inventory

        print(len(sample_inventory()))
        ```
    """
    return [Resource.model_validate(r) for r in _document()["resources"]]


def snapshot_time() -> datetime:
    """When the bundled inventory was taken."""
    return datetime.fromisoformat(_document()["snapshot"])
