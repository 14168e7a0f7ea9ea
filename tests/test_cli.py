"""The `opsflow` command as a user runs it: a real process, stdout JSON, one-line errors."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from tests.conftest import BIN, REPO


def opsflow(*args: str, home=None, timeout: float = 240) -> subprocess.CompletedProcess:
    env = {**os.environ}
    if home is not None:
        env["OPSFLOW_HOME"] = str(home)
    env.pop("PREFECT_API_URL", None)
    return subprocess.run(
        [str(BIN / "opsflow"), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
    )


def test_flows_lists_the_registry():
    from flows.registry import REGISTRY

    proc = opsflow("flows")
    assert proc.returncode == 0, proc.stderr
    for spec in REGISTRY:
        line = next(ln for ln in proc.stdout.splitlines() if ln.startswith(spec.name))
        assert ("read-only" in line) == (spec.read_only and not spec.destructive)
        assert (spec.cron or "on demand") in line
        assert spec.summary[:30] in line
    rows = json.loads(opsflow("flows", "--json").stdout)
    assert [r["name"] for r in rows] == [s.name for s in REGISTRY]


def test_run_prints_the_result_as_json_on_stdout(serve):
    proc = opsflow(
        "run",
        "compare-compute",
        "--params",
        json.dumps({"vcpus": 8, "memory_gib": 32, "gpu": None, "region": "europe"}),
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)  # stdout is only the result
    assert result["request"]["vcpus"] == 8
    assert result["options"], result
    assert all(
        o["region"]
        in {
            "eu-west-1",
            "europe-west4",
            "westeurope",
            "eu-central-1",
            "europe-west1",
            "northeurope",
            "francecentral",
            "uksouth",
            "germanywestcentral",
            "europe-west3",
            "eu-west-2",
            "swedencentral",
        }
        or "eu" in o["region"]
        for o in result["options"]
    )
    assert "Cheapest" in result["recommendation"]["reason"]
    assert "Finished in state Completed" in proc.stderr  # logs went to stderr


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"vcpus": -1, "memory_gib": 4}, "vcpus"),
        ({"vcpus": 2}, "memory_gib"),
        ({"vcpus": 2, "memory_gib": 4, "providers": ["ibm"]}, "providers"),
        ({"vcpus": 2, "memory_gib": 4, "gpu": {"type": "voodoo2"}}, "gpu.type"),
        ({"vcpus": 2, "memory_gib": 4, "region": "mars-north-1"}, "region"),
        ({"vcpus": 2, "memory_gib": 4, "colour": "blue"}, "colour"),
    ],
)
def test_invalid_parameters_exit_non_zero_naming_the_field(params, field):
    proc = opsflow("run", "compare-compute", "--params", json.dumps(params))
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert field in lines[0]
    assert proc.stdout == ""


def test_bad_json_and_unknown_flow_are_one_line_errors():
    proc = opsflow("run", "compare-compute", "--params", "{vcpus: 2")
    assert proc.returncode == 2 and "not valid JSON" in proc.stderr
    proc = opsflow("run", "no-such-flow")
    assert proc.returncode == 2 and "known flows" in proc.stderr


def test_failed_run_exits_non_zero_with_the_failure(tmp_path):
    # A corrupt catalog version makes the flow fail at run time, not at validation.
    bad = tmp_path / "price_catalog" / "versions" / "broken"
    bad.mkdir(parents=True)
    for provider in ("aws", "gcp", "azure"):
        (bad / f"{provider}.json").write_text('{"provider": "aws", "half written')
    (tmp_path / "price_catalog" / "CURRENT").write_text("broken")
    proc = opsflow(
        "run", "compare-compute", "--params", '{"vcpus": 2, "memory_gib": 4}', home=tmp_path
    )
    assert proc.returncode == 1
    [line] = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
    assert line.startswith("error: flow run Failed: ")
    assert "ValidationError" in line or "JSON" in line
    assert "Traceback" not in line
    assert proc.stdout == ""


def test_run_collect_costs_on_a_downloaded_export(tmp_path):
    """What a person does with an export they downloaded: exactly that file, result JSON."""
    from samples.focus_exports import bundled_export_paths

    export = next(p for p in bundled_export_paths() if "azure" in p.name)
    local = tmp_path / "downloaded-focus.csv"
    local.write_bytes(export.read_bytes())
    params = {"focus_exports": [str(local)], "fx_rates": {"EUR": 1.08}}
    proc = opsflow("run", "collect-costs", "--params", json.dumps(params), home=tmp_path / "h")
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout)
    assert [s["source"] for s in result["sources"]] == [str(local)]
    assert [p["key"] for p in result["summary"]["by_provider"]] == ["azure"]
    assert result["summary"]["unconverted"] == {}  # EUR converted with the given rate
    assert result["quarantine"]["rows"] > 0
    assert (tmp_path / "h" / "costs" / "_manifest.json").exists()
