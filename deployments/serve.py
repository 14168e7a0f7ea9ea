"""Serve every registry deployment, with its schedule, from this process.

This is the one-machine scale: a Prefect ``Runner`` polls the API for scheduled and
triggered runs of these deployments and executes each in a subprocess. For many
machines the same deployments go to a Kubernetes work pool (``prefect.yaml``).
"""

from __future__ import annotations

import os
from collections.abc import Callable

from prefect.deployments.runner import RunnerDeployment
from prefect.runner import Runner

from flows.registry import REGISTRY

DEFAULT_RUN_LIMIT = 25
# How often the runner asks the API for runs to start. Prefect's default (10 s) is
# built for schedules; an agent waiting on a tool call feels every second of it, and
# one indexed query against a local server four times a second costs nothing.
DEFAULT_POLL_SECONDS = 0.25


async def registry_deployments() -> list[RunnerDeployment]:
    """One RunnerDeployment per registry entry, carrying its name, schedule and tags."""
    deployments = []
    for spec in REGISTRY:
        tags = ["opsflow", "read-only" if spec.read_only else "changes-world"]
        if spec.destructive:
            tags.append("destructive")
        deployments.append(
            await spec.flow.ato_deployment(
                name=spec.deployment,
                cron=spec.cron,
                tags=tags,
                description=spec.summary,
            )
        )
    return deployments


async def serve_registry(on_ready: Callable[[], None] | None = None) -> None:
    """Register every deployment, call ``on_ready``, then execute runs until cancelled."""
    limit = int(os.environ.get("OPSFLOW_RUN_LIMIT", DEFAULT_RUN_LIMIT))
    poll = float(os.environ.get("OPSFLOW_RUNNER_POLL_SECONDS", DEFAULT_POLL_SECONDS))
    runner = Runner(name="opsflow-serve", limit=limit, pause_on_shutdown=False, query_seconds=poll)
    for deployment in await registry_deployments():
        await runner.aadd_deployment(deployment)
    if on_ready is not None:
        on_ready()
    await runner.start()
