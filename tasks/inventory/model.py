"""One resource model for every cloud's inventory (``collect_resources``).

The AWS, Azure and GCP collectors (``tasks.inventory.aws``, ``tasks.inventory.azure``,
``tasks.inventory.gcp``) each map their API shapes into :class:`Resource`; the
recommendation rules (``tasks.inventory.rules``) only ever see this model, so a rule is
written once for all three clouds.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

ResourceKind = Literal["instance", "volume", "address", "nat_gateway"]
# Normalized lifecycle state. "stopped" means not billed for compute (AWS stopped, Azure
# deallocated, GCP TERMINATED); "running" is billed.
ResourceState = Literal[
    "running", "stopped", "pending", "stopping", "terminated", "available", "in-use", "unknown"
]


class MetricSummary(BaseModel):
    """Statistics of one metric over the look-back window (``None`` when no datapoints)."""

    name: str = Field(description="cpu_percent, network_in_bytes, network_out_bytes, ...")
    period_days: int = Field(ge=1)
    datapoints: int = Field(ge=0, description="How many samples the statistics come from")
    average: float | None = None
    p95: float | None = None
    maximum: float | None = None


class Resource(BaseModel):
    """A billable cloud resource, as every recommendation rule sees it."""

    id: str = Field(description="Provider resource id (instance id, disk ARM id, self link, ...)")
    provider: Literal["aws", "azure", "gcp"]
    account: str = Field(description="AWS account, Azure subscription or GCP project")
    region: str
    zone: str | None = None
    kind: ResourceKind
    type: str = Field(description="Instance type / VM size / machine type / disk type")
    name: str | None = None
    state: ResourceState = "unknown"
    state_since: datetime | None = Field(
        default=None, description="When the resource entered its current state, if known"
    )
    size_gib: float | None = Field(default=None, description="Volume size")
    attached_to: str | None = Field(
        default=None, description="Instance a volume/address is attached to; None = unattached"
    )
    created: datetime | None = Field(default=None, description="Launch or creation time")
    tags: dict[str, str] = Field(default_factory=dict)
    hourly_price: float | None = Field(
        default=None, description="On-demand USD/hour from the price catalog, when known"
    )
    monthly_cost: float | None = Field(
        default=None, description="Estimated USD/month at the current state (730 h)"
    )
    price_note: str | None = Field(
        default=None,
        description="Caveat on the price (borrowed from another region, extras not included)",
    )
    metrics: dict[str, MetricSummary] = Field(default_factory=dict)


HOURS_PER_MONTH = 730.0
