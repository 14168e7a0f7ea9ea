"""The cost dataset's manifest, ``_manifest.json``: the single source of truth of which
data file holds each (partition, source), with its rows and ChargePeriodStart range, and
every API source's watermark. A write changes the dataset by replacing it in one step.

Example:
    ```python
    from datetime import UTC, datetime

    from tasks.costs.dataset.manifest import Entry, Manifest

    start = datetime(2026, 10, 1, tzinfo=UTC)
    key = ("provider=aws/billing_period=2026-10", "aws-ce:1")
    entry = Entry(*key, f"{key[0]}/aws-ce_1-0.parquet", 31, start, start)
    manifest = Manifest().successor()
    manifest.files[key] = entry
    print(Manifest.from_bytes(manifest.to_bytes(), "example").files[key].rows)
    ```
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

MANIFEST = "_manifest.json"
FORMAT = "opsflow-costs/1"


@dataclass
class Entry:
    """The live file of one (partition, source)."""

    partition: str
    source: str
    path: str  # relative to the dataset root
    rows: int
    min_start: datetime
    max_start: datetime

    def overlaps(self, start: datetime | None, end: datetime | None) -> bool:
        return (start is None or self.max_start >= start) and (end is None or self.min_start < end)

    def outside(self, start: datetime | None, end: datetime | None) -> bool:
        """Whether some of its rows may lie outside [start, end)."""
        return (start is not None and self.min_start < start) or (
            end is not None and self.max_start >= end
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "partition": self.partition,
            "source": self.source,
            "path": self.path,
            "rows": self.rows,
            "min_charge_period_start": self.min_start.isoformat(),
            "max_charge_period_start": self.max_start.isoformat(),
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Entry:
        return cls(
            d["partition"],
            d["source"],
            d["path"],
            int(d["rows"]),
            datetime.fromisoformat(d["min_charge_period_start"]),
            datetime.fromisoformat(d["max_charge_period_start"]),
        )


@dataclass
class Manifest:
    version: int = 0
    generation: str | None = None  # changes on every swap; None before the first write
    files: dict[tuple[str, str], Entry] = field(default_factory=dict)
    watermarks: dict[str, str] = field(default_factory=dict)

    def to_bytes(self) -> bytes:
        doc = {
            "format": FORMAT,
            "version": self.version,
            "generation": self.generation,
            "updated_at": datetime.now(UTC).isoformat(),
            "files": [self.files[k].to_json() for k in sorted(self.files)],
            "watermarks": dict(sorted(self.watermarks.items())),
        }
        return json.dumps(doc, indent=1).encode()

    @classmethod
    def from_bytes(cls, data: bytes, where: str) -> Manifest:
        try:
            doc = json.loads(data)
            if doc.get("format") != FORMAT:
                raise ValueError(f"format {doc.get('format')!r}, expected {FORMAT!r}")
            entries = [Entry.from_json(d) for d in doc["files"]]
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"{where}: unreadable cost dataset manifest ({exc})") from None
        return cls(
            version=int(doc["version"]),
            generation=doc.get("generation"),
            files={(e.partition, e.source): e for e in entries},
            watermarks=dict(doc.get("watermarks") or {}),
        )

    def successor(self) -> Manifest:
        return Manifest(self.version + 1, uuid.uuid4().hex, dict(self.files), dict(self.watermarks))
