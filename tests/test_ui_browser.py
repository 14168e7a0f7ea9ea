"""The Prefect UI of `opsflow serve` works on a port other than 4200 (issue 9, item 2).

The UI asks ``/ui-settings`` where the API is; Prefect builds the answer from its
settings, not from ``--port``. A real headless Chromium renders an artifact page and
the artifact's own heading must be in the DOM: with a wrong API address every page
shows "Can't connect to Server API" instead.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from urllib.parse import urlsplit

import httpx
import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-quic",
    "--no-first-run",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]


def test_ui_settings_name_the_served_api(serve_elsewhere):
    port = urlsplit(serve_elsewhere.ui_url).port
    assert port != 4200  # the fixture's whole point
    settings = httpx.get(f"{serve_elsewhere.ui_url}/ui-settings", timeout=10).json()
    assert settings["api_url"] == f"http://127.0.0.1:{port}/api"
    assert httpx.get(f"{settings['api_url']}/health", timeout=10).json() is True


@pytest.fixture(scope="module")
def summary_artifact(serve_elsewhere):
    """A compare-compute run on ``serve_elsewhere``; its markdown summary artifact."""
    from prefect.client.schemas.filters import ArtifactFilter, FlowRunFilter
    from prefect.deployments import run_deployment
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from flows.compare_compute import SUMMARY_KEY

    with temporary_settings({PREFECT_API_URL: serve_elsewhere.api_url}):
        run = run_deployment(
            "compare-compute/opsflow", parameters={"vcpus": 6, "memory_gib": 11}, timeout=240
        )
        assert run.state.is_completed(), run.state
        from prefect import get_client

        with get_client(sync_client=True) as client:
            [artifact] = client.read_artifacts(
                artifact_filter=ArtifactFilter(key={"any_": [SUMMARY_KEY]}),
                flow_run_filter=FlowRunFilter(id={"any_": [run.id]}),
            )
    return artifact


def render(url: str, tmp_path) -> str:
    """The DOM Chromium builds for ``url`` once the page's scripts have run."""
    if CHROMIUM is None:
        pytest.fail("chromium is not installed (apt-get install -y chromium; .ci/run does)")
    proc = subprocess.run(
        [
            CHROMIUM,
            *CHROMIUM_FLAGS,
            f"--user-data-dir={tmp_path / 'chromium-profile'}",
            "--virtual-time-budget=20000",
            "--dump-dom",
            url,
        ],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


@pytest.mark.parametrize("ui_base", ["", "/v2"], ids=["ui-v1", "ui-v2"])
def test_artifact_page_renders_on_a_non_default_port(
    serve_elsewhere, summary_artifact, ui_base, tmp_path
):
    assert urlsplit(serve_elsewhere.ui_url).port != 4200
    url = f"{serve_elsewhere.ui_url}{ui_base}/artifacts/artifact/{summary_artifact.id}"
    dom = render(url, tmp_path)
    assert "Can't connect to Server API" not in dom
    # the artifact's own markdown, rendered: its heading and this run's requirement
    assert re.search(r"<h1[^>]*>\s*Compute comparison\s*</h1>", dom), dom[-3000:]
    assert "6 vCPU, 11 GiB" in dom
