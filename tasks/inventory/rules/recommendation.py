"""The result every savings rule returns, and the helpers the rules share.

A ``Recommendation`` names one savings opportunity (right-size, idle, commitment or
tagging), the exact action, its risk and the evidence. Its ``id`` is stable across runs
(``rec_id``: the kind and a hash of what identifies it), so a report can be compared with
the last one. A saving is claimed only from known prices: an unknown price gives
``estimated_monthly_saving`` 0 and says so, never an invented figure.

Example:
    ```python
    from tasks.inventory.rules.recommendation import money, rec_id

    print(rec_id("idle", "aws", "123456789012", "vol-0abc"))  # idle-<16 hex>, same every run
    print(money(1234.5), money(None), money(9.5, "EUR"))  # $1,234.50 unknown 9.50 EUR
    ```
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, Field

Kind = Literal["rightsize", "idle", "commitment", "tagging"]
Risk = Literal["low", "medium", "high"]


class Recommendation(BaseModel):
    """One savings opportunity with the exact action and the evidence behind it."""

    id: str = Field(description="Stable id: kind + hash of provider, account and resource")
    kind: Kind
    provider: Literal["aws", "azure", "gcp"]
    account: str
    region: str | None = None
    resource_id: str | None = None
    resource_type: str | None = None
    title: str
    action: str = Field(description="Exact, human-actionable step")
    currency: str = Field(default="USD", description="Currency of the three amounts below")
    current_monthly_cost: float | None = Field(default=None, description="Per month now")
    estimated_monthly_cost: float | None = Field(default=None, description="Per month after")
    estimated_monthly_saving: float = Field(ge=0, description="Per month; 0 when unknown")
    risk: Risk
    confidence: float = Field(ge=0, le=1)
    reason: str = Field(description="The evidence")


def rec_id(kind: str, *parts: str) -> str:
    """A stable recommendation id from its kind and identifying parts."""
    digest = hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:16]
    return f"{kind}-{digest}"


def money(value: float | None, currency: str = "USD") -> str:
    """``$1,234.50`` (USD), ``1,234.50 EUR`` (other currencies) or ``unknown`` (None)."""
    if value is None:
        return "unknown"
    return f"${value:,.2f}" if currency == "USD" else f"{value:,.2f} {currency}"


def judged_at(now: datetime | None) -> datetime:
    """The time a rule judges at: ``now`` (naive means UTC), else the current time in UTC."""
    if now is None:
        return datetime.now(UTC)
    return now.replace(tzinfo=UTC) if now.tzinfo is None else now
