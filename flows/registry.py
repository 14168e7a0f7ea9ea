"""The one list of capability flows.

``serve``, ``deployments/prefect.yaml``, the CLI, the MCP bridge and the demo all
read ``REGISTRY``; nothing else names the set of flows.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from functools import cached_property

from prefect import Flow

DEPLOYMENT_NAME = "opsflow"


@dataclass(frozen=True)
class FlowSpec:
    """One capability: where its flow lives and how it is deployed.

    Attributes:
        entrypoint: ``module:function`` of the flow, as ``prefect deploy`` wants it.
        deployment: deployment name; the full name is ``<flow name>/<deployment>``.
        cron: default schedule, or None for on-demand only.
        read_only: True when the flow only reads the world.
        destructive: True when it creates, changes or deletes real resources (it then
            pauses for approval before applying).
    """

    entrypoint: str
    deployment: str = DEPLOYMENT_NAME
    cron: str | None = None
    read_only: bool = True
    destructive: bool = False

    @cached_property
    def flow(self) -> Flow:
        module, _, attr = self.entrypoint.partition(":")
        return getattr(importlib.import_module(module), attr)

    @property
    def name(self) -> str:
        return self.flow.name

    @property
    def tool_name(self) -> str:
        return self.name.replace("-", "_")

    @property
    def full_deployment_name(self) -> str:
        return f"{self.name}/{self.deployment}"

    @property
    def file_entrypoint(self) -> str:
        """``path/to/module.py:function`` relative to the repository root (prefect.yaml)."""
        module, _, attr = self.entrypoint.partition(":")
        return f"{module.replace('.', '/')}.py:{attr}"

    @property
    def summary(self) -> str:
        """First line of the flow docstring."""
        doc = (self.flow.description or self.flow.fn.__doc__ or "").strip()
        return doc.splitlines()[0] if doc else ""


REGISTRY: tuple[FlowSpec, ...] = (
    FlowSpec(entrypoint="flows.compare_compute:compare_compute"),
    FlowSpec(
        entrypoint="flows.refresh_price_catalog:refresh_price_catalog",
        cron="0 6 * * 1",  # weekly, Monday 06:00 UTC: list prices move rarely
        read_only=False,  # writes a new local catalog version; changes no cloud resource
    ),
    FlowSpec(
        entrypoint="flows.collect_costs:collect_costs",
        cron="0 7 * * *",  # daily: new days plus the look-back providers restate
        read_only=False,  # writes the local cost dataset; changes no cloud resource
    ),
    FlowSpec(entrypoint="flows.savings:collect_resources"),
    FlowSpec(
        entrypoint="flows.savings:recommend_savings",
        cron="0 8 * * 1",  # weekly, Monday 08:00 UTC, after the daily cost collection
    ),
    FlowSpec(entrypoint="flows.detect_incidents:detect_incidents"),
    FlowSpec(entrypoint="flows.evaluate_incidents:evaluate_incidents"),
    FlowSpec(
        entrypoint="flows.remediate:remediate",
        read_only=False,
        destructive=True,  # rollout restart/undo, scale: only after approval
    ),
)


def get_spec(name: str) -> FlowSpec:
    """Find a registry entry by flow name (``compare-compute``) or tool name."""
    for spec in REGISTRY:
        if name in (spec.name, spec.tool_name):
            return spec
    known = ", ".join(s.name for s in REGISTRY)
    raise KeyError(f"unknown flow {name!r}; known flows: {known}")
