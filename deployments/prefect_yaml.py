"""Render ``deployments/prefect.yaml`` from the registry, so the two never disagree.

``opsflow deployments`` writes it, ``opsflow deployments --check`` (and a test)
fails when someone edits one without the other. ``prefect deploy --all`` reads it.
With a config file (``deployments/config.py``) each deployment also carries the
file's parameters and schedule; without one the output is the registry's alone.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from deployments.config import OpsflowConfig
from flows.registry import REGISTRY

PREFECT_YAML = Path(__file__).with_name("prefect.yaml")
PROCESS_POOL = "opsflow-process"
KUBERNETES_POOL = "opsflow-kubernetes"
KUBERNETES_SUFFIX = "-k8s"

HEADER = """\
# Generated from flows/registry.py by `opsflow deployments`; do not edit by hand.
#
# One machine:  prefect work-pool create opsflow-process --type process
#               prefect worker start --pool opsflow-process
# Many:         prefect work-pool create opsflow-kubernetes --type kubernetes
#               (run the prefect-kubernetes worker in the cluster; one Job per flow run)
# Then, from the repository root:
#               OPSFLOW_GIT_REPOSITORY=https://... prefect deploy --all \\
#                   --prefect-file deployments/prefect.yaml
# Each flow gets `<flow>/opsflow` on the process pool (schedule active) and
# `<flow>/opsflow-k8s` on the Kubernetes pool (same schedule, inactive until you
# move scheduled work to the cluster, so nothing runs twice).
"""


CONFIG_NOTE = """\
# Parameters and schedules of the flows named in the config file (opsflow.toml) are
# rendered in; schedules it turns "off" have none.
"""


def _deployment(spec, pool: str, suffix: str, schedule_active: bool, config: OpsflowConfig) -> dict:
    tags = ["opsflow", "read-only" if spec.read_only else "changes-world"]
    if spec.destructive:
        tags.append("destructive")
    schedule = config.schedule(spec.name, spec.cron)
    dep: dict = {
        "name": f"{spec.deployment}{suffix}",
        "entrypoint": spec.file_entrypoint,
        "description": spec.summary,
        "tags": tags,
        "schedules": (
            [{"cron": schedule.cron, "timezone": schedule.timezone, "active": schedule_active}]
            if schedule
            else []
        ),
        "work_pool": {"name": pool, "job_variables": {}},
    }
    parameters = config.parameters(spec.name)
    if parameters:
        dep["parameters"] = parameters
    if pool == KUBERNETES_POOL:
        dep["work_pool"]["job_variables"] = {
            "image": "{{ $OPSFLOW_IMAGE }}",
            "env": {
                # results must live where the bridge can read them back
                "PREFECT_DEFAULT_RESULT_STORAGE_BLOCK": "{{ $OPSFLOW_RESULT_STORAGE_BLOCK }}",
                "PREFECT_RESULTS_PERSIST_BY_DEFAULT": "true",
            },
        }
    return dep


def render_prefect_yaml(config: OpsflowConfig | None = None) -> str:
    """The file's text: the registry's deployments, with ``config``'s parameters and
    schedules when given (None: the registry alone, what the repository commits)."""
    config = config or OpsflowConfig()
    doc = {
        "name": "opsflow",
        "prefect-version": "3.8.8",
        "pull": [
            {
                "prefect.deployments.steps.git_clone": {
                    "id": "clone",
                    "repository": "{{ $OPSFLOW_GIT_REPOSITORY }}",
                    "branch": "main",
                }
            },
            {
                "prefect.deployments.steps.run_shell_script": {
                    "directory": "{{ clone.directory }}",
                    "script": "pip install --constraint constraints.txt .",
                    "stream_output": False,
                }
            },
        ],
        "deployments": [
            _deployment(spec, pool, suffix, active, config)
            for spec in REGISTRY
            for pool, suffix, active in (
                (PROCESS_POOL, "", True),
                (KUBERNETES_POOL, KUBERNETES_SUFFIX, False),
            )
        ],
    }
    header = HEADER + (CONFIG_NOTE if config.flows else "")
    return header + yaml.safe_dump(doc, sort_keys=False, width=100)
