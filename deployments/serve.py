"""Serve every registry deployment, with its schedule, from this process.

This is the one-machine scale: a Prefect ``Runner`` polls the API for scheduled and
triggered runs of these deployments and executes each in a subprocess. For many
machines the same deployments go to a Kubernetes work pool (``prefect.yaml``).
The config file (``deployments/config.py``) gives each deployment its default
parameters and, where it says so, a schedule other than the registry's.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from prefect.client.schemas.schedules import CronSchedule
from prefect.deployments.runner import RunnerDeployment
from prefect.runner import Runner

from deployments.config import OpsflowConfig, load_config
from flows.registry import REGISTRY

DEFAULT_RUN_LIMIT = 25
# How often the runner asks the API for runs to start. Prefect's default (10 s) is
# built for schedules; an agent waiting on a tool call feels every second of it, and
# one indexed query against a local server four times a second costs nothing.
DEFAULT_POLL_SECONDS = 0.25


async def registry_deployments(config: OpsflowConfig | None = None) -> list[RunnerDeployment]:
    """One RunnerDeployment per registry entry: name, tags, and the schedule and default
    parameters of the config (``load_config()`` when not given; the registry's cron when
    the config names no schedule)."""
    config = config if config is not None else load_config()
    deployments = []
    for spec in REGISTRY:
        tags = ["opsflow", "read-only" if spec.read_only else "changes-world"]
        if spec.destructive:
            tags.append("destructive")
        schedule = config.schedule(spec.name, spec.cron)
        deployments.append(
            await spec.flow.ato_deployment(
                name=spec.deployment,
                schedules=(
                    [CronSchedule(cron=schedule.cron, timezone=schedule.timezone)]
                    if schedule
                    else []
                ),
                parameters=config.parameters(spec.name),
                tags=tags,
                description=spec.summary,
            )
        )
    return deployments


async def serve_registry(
    on_ready: Callable[[], None] | None = None, config: OpsflowConfig | None = None
) -> None:
    """Register every deployment (with ``config``'s parameters and schedules), call
    ``on_ready``, then execute runs until cancelled."""
    limit = int(os.environ.get("OPSFLOW_RUN_LIMIT", DEFAULT_RUN_LIMIT))
    poll = float(os.environ.get("OPSFLOW_RUNNER_POLL_SECONDS", DEFAULT_POLL_SECONDS))
    runner = Runner(name="opsflow-serve", limit=limit, pause_on_shutdown=False, query_seconds=poll)
    for deployment in await registry_deployments(config):
        await runner.aadd_deployment(deployment)
    if on_ready is not None:
        on_ready()
    await runner.start()
