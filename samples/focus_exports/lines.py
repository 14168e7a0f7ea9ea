"""Charge lines: one recurring charge (a resource x SKU) that yields a row per active day,
and the stable identifiers the providers' lines are built with.

Example:
    ```python
    from samples.focus_exports.lines import ChargeLine, stable_id

    line = ChargeLine(cols={"SkuId": stable_id("aws", "ec2", n=16)}, price=0.192, qty=24.0)
    print(line.cols, line.pattern)
    ```
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import date
from typing import Any


@dataclass
class ChargeLine:
    """One recurring charge (a resource x SKU) that yields a row per active day.

    ``fixed`` lines (credits, tax, refunds, commitment fees) carry a set amount instead
    of price x quantity. ``covered`` is the commitment price factor of usage covered by
    a Savings Plan (billed 0, effective = list x factor).
    """

    cols: dict[str, Any]
    price: float = 0.0
    qty: float = 0.0
    pattern: str = "flat"  # fixed | flat | weekday (busier Mon-Fri) | batch (quiet weekends)
    covered: float | None = None
    days: frozenset[date] | None = None  # active days (None: every day)
    spikes: dict[date, float] = field(default_factory=dict)
    fixed: float | None = None
    kind: str = "usage"  # usage | credit | refund | tax | fee
    period: str = "day"  # day | month (the billing period)
    scalable: bool = True  # repeated by ``scale`` (resources are; monthly credits are not)


def stable_id(*parts: str, n: int = 12, alphabet: str = "0123456789ABCDEFGHJKLMNPQRSTVWXZ") -> str:
    """A stable pseudo-identifier (SKU ids, instance ids) derived from ``parts``."""
    digest = hashlib.sha256("|".join(parts).encode()).digest()
    return "".join(alphabet[b % len(alphabet)] for b in digest[:n])


def stable_guid(*parts: str) -> str:
    h = hashlib.sha256("|".join(parts).encode()).hexdigest()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"


def compact_json(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"))


def month_firsts(days: list[date]) -> list[date]:
    """The first day of each month that ``days`` covers (monthly charges post there)."""
    firsts: dict[date, date] = {}
    for d in days:
        firsts.setdefault(d.replace(day=1), d)
    return sorted(firsts.values())
