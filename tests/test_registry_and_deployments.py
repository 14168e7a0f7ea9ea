"""The registry is the one list: prefect.yaml, serve and the bridge all agree with it."""

import yaml

from deployments.prefect_yaml import (
    KUBERNETES_POOL,
    KUBERNETES_SUFFIX,
    PREFECT_YAML,
    PROCESS_POOL,
    render_prefect_yaml,
)
from flows.registry import REGISTRY, get_spec


def test_prefect_yaml_is_rendered_from_the_registry():
    assert PREFECT_YAML.read_text() == render_prefect_yaml(), (
        "deployments/prefect.yaml is stale: run `opsflow deployments`"
    )


def test_prefect_yaml_defines_every_registry_deployment_on_both_pools():
    doc = yaml.safe_load(PREFECT_YAML.read_text())
    by_key = {(d["entrypoint"], d["name"]): d for d in doc["deployments"]}
    assert len(by_key) == 2 * len(REGISTRY)
    for spec in REGISTRY:
        local = by_key[(spec.file_entrypoint, spec.deployment)]
        k8s = by_key[(spec.file_entrypoint, spec.deployment + KUBERNETES_SUFFIX)]
        assert local["work_pool"]["name"] == PROCESS_POOL
        assert k8s["work_pool"]["name"] == KUBERNETES_POOL
        crons = [s["cron"] for s in local["schedules"]]
        assert crons == ([spec.cron] if spec.cron else [])
        assert [s["active"] for s in k8s["schedules"]] == [False] * len(crons)
        assert ("destructive" in local["tags"]) == spec.destructive
    # code is pulled with git_clone, then installed with the pinned constraints
    steps = [next(iter(step)) for step in doc["pull"]]
    assert steps[0] == "prefect.deployments.steps.git_clone"


def test_entrypoints_resolve_to_flows_with_pydantic_results():
    import inspect
    import typing

    from pydantic import BaseModel

    for spec in REGISTRY:
        path, _, attr = spec.file_entrypoint.partition(":")
        assert path.endswith(".py") and attr
        ret = typing.get_type_hints(spec.flow.fn)["return"]
        assert inspect.isclass(ret) and issubclass(ret, BaseModel), spec.name
        assert spec.summary, f"{spec.name} needs a docstring"
        assert not (spec.read_only and spec.destructive)


def test_get_spec_accepts_flow_and_tool_names():
    assert get_spec("compare-compute") is get_spec("compare_compute")
    try:
        get_spec("nope")
    except KeyError as exc:
        assert "known flows" in exc.args[0]
    else:
        raise AssertionError("unknown flow accepted")


def test_prefect_deploy_all_accepts_prefect_yaml(harness):
    """`prefect deploy --all` registers every deployment on its pool with its schedule."""
    import os
    import subprocess

    from prefect.client.orchestration import get_client
    from prefect.settings import get_current_settings

    from tests.conftest import BIN, REPO

    env = {
        **os.environ,
        "PREFECT_API_URL": str(get_current_settings().api.url),
        "OPSFLOW_GIT_REPOSITORY": "https://example.com/opsflow.git",
        "OPSFLOW_IMAGE": "python:3.11-slim",
        "OPSFLOW_RESULT_STORAGE_BLOCK": "s3-bucket/opsflow-results",
    }
    for pool, kind in ((PROCESS_POOL, "process"), (KUBERNETES_POOL, "kubernetes")):
        subprocess.run(
            [str(BIN / "prefect"), "work-pool", "create", pool, "--type", kind, "--overwrite"],
            env=env,
            check=True,
            capture_output=True,
            timeout=120,
        )
    proc = subprocess.run(
        [
            str(BIN / "prefect"),
            "--no-prompt",
            "deploy",
            "--all",
            "--prefect-file",
            "deployments/prefect.yaml",
        ],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    with get_client(sync_client=True) as client:
        for spec in REGISTRY:
            local = client.read_deployment_by_name(spec.full_deployment_name)
            k8s = client.read_deployment_by_name(spec.full_deployment_name + KUBERNETES_SUFFIX)
            assert local.work_pool_name == PROCESS_POOL
            assert k8s.work_pool_name == KUBERNETES_POOL
            assert k8s.job_variables["image"] == "python:3.11-slim"
            crons = [s.schedule.cron for s in local.schedules]
            assert crons == ([spec.cron] if spec.cron else [])
            assert [s.active for s in k8s.schedules] == [False] * len(crons)
            assert local.pull_steps[0]["prefect.deployments.steps.git_clone"]["repository"] == (
                "https://example.com/opsflow.git"
            )
