"""opsflow.toml: the README's example loads, every bad entry is one line naming the flow,
the field and the reason, secrets are refused, and `opsflow serve` / `opsflow deployments`
apply the file (a real serve process and a real Prefect API)."""

from __future__ import annotations

import os
import re
import subprocess
import tomllib
from pathlib import Path

import pytest
import yaml

from deployments.config import (
    CONFIG_ENV,
    ConfigError,
    Schedule,
    load_config,
    parse_config,
)
from tests.conftest import BIN, REPO, _reset_prefect_services, start_serve, stop_serve, wait_ready

README_HEADING = "## Sources and schedules: opsflow.toml"


def readme_example() -> str:
    """The first ```toml block under the README's config heading, exactly as written."""
    text = (REPO / "README.md").read_text()
    section = text[text.index(README_HEADING) :]
    match = re.search(r"```toml\n(.*?)```", section, re.S)
    assert match, "the README lost its opsflow.toml example"
    return match.group(1)


def write(tmp_path: Path, text: str, name: str = "opsflow.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def error_of(text: str, tmp_path: Path) -> str:
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path, text))
    message = str(err.value)
    assert "\n" not in message
    return message


def test_the_readme_example_loads_and_validates(tmp_path):
    config = load_config(write(tmp_path, readme_example()))
    assert config.validated
    assert set(config.flows) == {
        "collect-costs",
        "recommend-savings",
        "detect-incidents",
        "refresh-price-catalog",
    }
    costs = config.parameters("collect-costs")
    assert [s["credentials_block"] for s in costs["aws"]] == ["aws-payer"]
    assert len(costs["azure"]) == 2 and costs["gcp"][0]["credentials_block"] == "gcp-billing"
    incidents = config.parameters("detect-incidents")
    assert incidents["kubernetes"][0]["namespace"] == "shop"
    assert incidents["sentry"][0]["projects"] == ["checkout", "payments"]
    # schedules: configured (with and without a timezone), off, and the registry's default
    assert config.schedule("collect-costs", "0 7 * * *") == Schedule("0 7 * * *", "Europe/Paris")
    assert config.schedule("detect-incidents", None) == Schedule("*/15 * * * *", "UTC")
    assert config.schedule("refresh-price-catalog", "0 6 * * 1") is None
    assert config.schedule("recommend-savings", "0 8 * * 1") == Schedule("0 8 * * 1", "UTC")
    assert config.schedule("compare-compute", None) is None
    # the parameters are ones a deployment run accepts as they stand (Prefect's own check)
    from flows.params import validate_parameters
    from flows.registry import get_spec

    for name in config.flows:
        validate_parameters(get_spec(name).flow, config.parameters(name))


def test_prefect_yaml_renders_the_config_and_equals_the_committed_file_without_one(
    tmp_path, monkeypatch
):
    from deployments.prefect_yaml import PREFECT_YAML, render_prefect_yaml

    monkeypatch.setenv("OPSFLOW_HOME", str(tmp_path / "empty-home"))
    monkeypatch.delenv(CONFIG_ENV, raising=False)
    assert render_prefect_yaml(load_config()) == PREFECT_YAML.read_text(), (
        "with no config file the output must stay the registry's"
    )
    config = load_config(write(tmp_path, readme_example()))
    doc = yaml.safe_load(render_prefect_yaml(config))
    by_name = {(d["entrypoint"].split(":")[1], d["name"]): d for d in doc["deployments"]}
    costs, costs_k8s = (
        by_name[("collect_costs", "opsflow")],
        by_name[("collect_costs", "opsflow-k8s")],
    )
    assert costs["schedules"] == [{"cron": "0 7 * * *", "timezone": "Europe/Paris", "active": True}]
    assert costs_k8s["schedules"][0]["active"] is False  # nothing runs twice
    assert costs["parameters"] == costs_k8s["parameters"] == config.parameters("collect-costs")
    assert by_name[("refresh_price_catalog", "opsflow")]["schedules"] == []  # "off"
    assert by_name[("detect_incidents", "opsflow")]["schedules"][0]["cron"] == "*/15 * * * *"
    assert "parameters" not in by_name[("compare_compute", "opsflow")]


@pytest.mark.parametrize(
    ("toml", "expected"),
    [
        (
            '[flows.collect-costs.parameters]\ncurrency = "dollars"',
            "opsflow.toml: flows.collect-costs.parameters.currency: Value error, 'DOLLARS' is "
            "not a 3-letter ISO 4217 currency code",
        ),
        (
            '[flows.recommend-savings.parameters]\naws = [{ regions = "us-east-1" }]',
            "opsflow.toml: flows.recommend-savings.parameters.aws.0.regions: "
            "Input should be a valid list",
        ),
        (
            "[flows.detect-incidents.parameters]\nsince_minutes = 1",
            "flows.detect-incidents.parameters.since_minutes: Input should be greater than or "
            "equal to 5",
        ),
        (
            '[flows.detect-incidents.parameters]\nnamespace = "shop"',
            "flows.detect-incidents.parameters.namespace: unknown parameter; expected: kubernetes",
        ),
        (  # a flow with required parameters: defaults may leave them to the run ...
            "[flows.compare-compute.parameters]\nvcpus = 0",
            "flows.compare-compute.parameters.vcpus: Input should be greater than or equal to 1",
        ),
        (
            '[flows.collect-costs]\nschedule = { cron = "every day" }',
            'flows.collect-costs.schedule.cron: Invalid cron string: "every day"',
        ),
        (
            '[flows.collect-costs]\nschedule = { cron = "0 7 * * *", timezone = "Mars/Olympus" }',
            'flows.collect-costs.schedule.timezone: Invalid timezone: "Mars/Olympus"',
        ),
        (
            '[flows.collect-costs]\nschedule = "daily"',
            'flows.collect-costs.schedule: must be "off" or a table',
        ),
        (
            '[flows.collect-costs]\nschedule = { cron = "0 7 * * *", tz = "UTC" }',
            "flows.collect-costs.schedule: unknown key tz; expected: cron, timezone",
        ),
        (
            "[flows.collect-costs.paramters]\ncurrency = 'EUR'",
            "flows.collect-costs: unknown key paramters; expected: parameters, schedule",
        ),
        (
            "[flows.collect-cost.parameters]\ncurrency = 'EUR'",
            "flows.collect-cost: unknown flow; known flows: compare-compute, "
            "refresh-price-catalog, collect-costs,",
        ),
        ("[flow.collect-costs]\nschedule = 'off'", "unknown table flow; expected: flows, server"),
        ("[flows\nx = 1", "opsflow.toml: not valid TOML: "),
    ],
)
def test_a_bad_entry_is_one_line_naming_the_flow_field_and_reason(tmp_path, toml, expected):
    assert expected in error_of(toml, tmp_path)


def test_defaults_may_leave_required_parameters_to_the_run(tmp_path):
    config = load_config(write(tmp_path, '[flows.compare_compute.parameters]\nregion = "europe"'))
    assert config.parameters("compare-compute") == {"region": "europe"}  # tool name accepted
    assert "configured twice" in error_of(
        "[flows.compare_compute]\nschedule = 'off'\n[flows.compare-compute]\nschedule = 'off'",
        tmp_path,
    )


SECRET_CASES = [
    ("[flows.collect-costs.parameters.export_access]\nclient_secret = 'abc'", "client_secret"),
    ("[flows.detect-incidents.parameters]\nsentry = [{ token = 'x' }]", "sentry[0].token"),
    ("[flows.collect-costs.parameters]\napi_key = 'k'", "api_key"),
    ("[flows.collect-costs.parameters]\nawsSecretAccessKey = 'k'", "awsSecretAccessKey"),
    ("[server]\npassword = 'hunter2'", "server.password"),
    (
        "[flows.collect-costs.parameters]\ndataset_url = "
        "'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY'",
        "dataset_url: the value looks like an AWS secret access key",
    ),
    (
        "[flows.collect-costs.parameters]\nfocus_exports = ['AKIAIOSFODNN7EXAMPLE']",
        "focus_exports[0]: the value looks like an AWS access key id",
    ),
    (
        "[flows.detect-incidents.parameters]\ngrafana = [{ credentials_block = 'g', "
        "queries = [{ refId = 'A', expr = '-----BEGIN PRIVATE KEY-----\\nMIIE' }] }]",
        "grafana[0].queries[0].expr: the value looks like a private key",
    ),
    (
        "[flows.detect-incidents.parameters]\nsentry = [{ credentials_block = 's', "
        "query = 'Bearer sntrys_eyJpYXQiOjE3MDAwMDAwMDB9' }]",
        "sentry[0].query: the value looks like a bearer token",
    ),
    (
        "[server]\ndatabase_url = 'postgresql+asyncpg://prefect:s3cr3t-pw@db:5432/prefect'",
        "server.database_url: the value looks like a URL with a password",
    ),
    (
        "[flows.collect-costs.parameters]\nfocus_exports = "
        "['https://ops:s3cr3t-pw@exports.example.com/focus.csv']",
        "focus_exports[0]: the value looks like a URL with a password",
    ),
]


@pytest.mark.parametrize(("toml", "named"), SECRET_CASES)
def test_a_secret_looking_key_or_value_is_refused_naming_the_key(tmp_path, toml, named):
    message = error_of(toml, tmp_path)
    assert named in message and "secrets belong in Prefect blocks" in message
    value = tomllib.loads(toml)
    for leaf in re.findall(r"'([^']{4,})'", toml):  # the value itself is never repeated
        assert leaf not in message, value
    # refused before anything is imported or validated: also without validation
    with pytest.raises(ConfigError, match=re.escape(named)):
        parse_config(tomllib.loads(toml), validate=False)


def test_block_names_and_tag_keys_are_not_secrets(tmp_path):
    text = (
        "[flows.collect-costs.parameters]\n"
        "aws = [{ credentials_block = 'aws-token-reader', tag_key = 'team' }]\n"
        "export_access = { storage_block = 's3-bucket/keys', aws_credentials_block = 'x' }\n"
        "focus_exports = ['s3://billing/focus/2026-11/part-0.parquet', "
        "'https://exports.example.com/focus.csv?sig=public']\n"
        "[server]\ndatabase_url = 'postgresql+asyncpg://prefect@db:5432/prefect'\n"
    )
    config = load_config(write(tmp_path, text))
    assert config.server == {"database_url": "postgresql+asyncpg://prefect@db:5432/prefect"}


def test_where_the_file_is_read_from(tmp_path, monkeypatch):
    home = tmp_path / "home"
    monkeypatch.setenv("OPSFLOW_HOME", str(home))
    monkeypatch.delenv(CONFIG_ENV, raising=False)
    assert load_config().flows == {} and load_config().path is None  # nothing: registry only
    write(home, "[flows.collect-costs]\nschedule = 'off'")
    assert load_config().path == home / "opsflow.toml"
    other = write(tmp_path, "[server]\nport = 4300", "team.toml")
    monkeypatch.setenv(CONFIG_ENV, str(other))
    assert load_config(validate=False).server == {"port": 4300}
    with pytest.raises(ConfigError, match="^--config: no such file: "):
        load_config(tmp_path / "missing.toml")


def _opsflow(*args: str, home: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "OPSFLOW_HOME": str(home)}
    for key in ("PREFECT_API_URL", "PREFECT_HOME", "PREFECT_SERVER_DATABASE_CONNECTION_URL"):
        env.pop(key, None)
    env.pop("PREFECT_LOCAL_STORAGE_PATH", None)
    env.pop(CONFIG_ENV, None)
    return subprocess.run(
        [str(BIN / "opsflow"), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
    )


def test_deployments_check_with_and_without_a_config(tmp_path):
    from flows.registry import REGISTRY

    assert _opsflow("deployments", "--check", home=tmp_path / "h").returncode == 0
    example = write(tmp_path, readme_example())
    proc = _opsflow("deployments", "--check", "--config", str(example), home=tmp_path / "h")
    assert proc.returncode == 1 and "disagrees" in proc.stderr  # the config changes the file
    bad = write(tmp_path, "[flows.nope]\nschedule = 'off'", "bad.toml")
    proc = _opsflow("deployments", "--check", "--config", str(bad), home=tmp_path / "h")
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "error: bad.toml: flows.nope: unknown flow; known flows: "
        + ", ".join(spec.name for spec in REGISTRY)
    ]


def test_serve_stops_on_a_bad_field_with_one_line_and_exit_2(tmp_path):
    home = tmp_path / "h"
    bad = write(tmp_path, "[flows.collect-costs.parameters]\nlookback_days = 100")
    proc = _opsflow("serve", "--config", str(bad), home=home)
    assert proc.returncode == 2, proc.stderr[-2000:]
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
    assert errors == [
        "error: opsflow.toml: flows.collect-costs.parameters.lookback_days: "
        "Input should be less than or equal to 62"
    ]
    assert "Traceback" not in proc.stderr
    assert not (home / "serve.json").exists()  # it never served
    secret = write(tmp_path, "[flows.collect-costs.parameters]\npassword = 'x'", "s.toml")
    proc = _opsflow("serve", "--config", str(secret), home=home)
    assert proc.returncode == 2 and "s.toml: flows.collect-costs.parameters.password" in proc.stderr
    assert "Starting local Prefect server" not in proc.stderr  # refused before any server


def test_serve_applies_the_config_and_runs_collect_from_the_configured_source(tmp_path):
    """A real `opsflow serve` with $OPSFLOW_HOME/opsflow.toml: deployments carry its
    parameters and schedules; a run with no parameters of its own collects the configured
    export into the real dataset; a flow the file does not configure fails naming what to set."""
    from prefect import get_client
    from prefect.deployments import run_deployment
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from samples.focus_exports import bundled_export_paths

    home = tmp_path / "h"
    home.mkdir()
    export = next(p for p in bundled_export_paths() if "gcp" in p.name)
    local = tmp_path / "downloaded.parquet"
    local.write_bytes(export.read_bytes())
    write(
        home,
        "[flows.collect-costs]\nschedule = 'off'\n"
        f"[flows.collect-costs.parameters]\nfocus_exports = ['{local}']\n"
        "[flows.detect-incidents]\n"
        "schedule = { cron = '*/30 * * * *', timezone = 'Europe/Paris' }\n",
    )
    proc = start_serve(home)
    try:
        state = wait_ready(home, proc)
        _reset_prefect_services()
        with temporary_settings({PREFECT_API_URL: state.api_url}):
            with get_client(sync_client=True) as client:
                costs = client.read_deployment_by_name("collect-costs/opsflow")
                incidents = client.read_deployment_by_name("detect-incidents/opsflow")
                savings = client.read_deployment_by_name("recommend-savings/opsflow")
            assert costs.parameters == {"focus_exports": [str(local)]}
            assert costs.schedules == []  # "off"
            [schedule] = incidents.schedules
            assert (schedule.schedule.cron, schedule.schedule.timezone) == (
                "*/30 * * * *",
                "Europe/Paris",
            )
            assert [s.schedule.cron for s in savings.schedules] == ["0 8 * * 1"]  # registry's
            run = run_deployment("collect-costs/opsflow", timeout=300)
            assert run.state.is_completed(), run.state
            assert run.parameters == {"focus_exports": [str(local)]}
            from tasks.costs.dataset import CostDataset

            assert CostDataset(home / "costs").row_count() > 0  # the configured export landed
            failed = run_deployment("collect-resources/opsflow", timeout=300)
            assert failed.state.is_failed()
            assert "no resource source configured" in failed.state.message
            _reset_prefect_services()
    finally:
        assert stop_serve(proc) == 0
    assert not (home / "demo").exists()
