"""Shared fixtures. The environment is set before Prefect is imported anywhere."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# Each test session gets its own data folder; nothing touches ~/.opsflow.
_HOME = Path(tempfile.mkdtemp(prefix="opsflow-test-"))
os.environ["OPSFLOW_HOME"] = str(_HOME)
os.environ.pop("PREFECT_API_URL", None)
os.environ.setdefault("HF_HUB_OFFLINE", "1")
# Credential chains must never probe cloud metadata addresses from a test machine.
os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")
os.environ.setdefault("NO_GCE_CHECK", "True")

from opsflow import environment  # noqa: E402

environment.configure()

import pytest  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


@pytest.fixture(scope="session")
def harness():
    """A temporary Prefect API for flow tests (prefect_test_harness)."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture(scope="session")
def moto_url():
    """One moto server (all AWS services) on loopback for the whole session."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture(scope="session")
def ca():
    """A local certificate authority (trustme) for HTTPS test servers (Azure SDKs)."""
    import trustme

    return trustme.CA()


@pytest.fixture
def trust_local_ca(ca, tmp_path, monkeypatch):
    """requests (under azure-core and msal) trusts the local CA, and only it."""
    bundle = tmp_path / "local-ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(bundle))


@pytest.fixture(scope="session")
def gcp_key():
    """An RSA key for a test service account (its public half verifies the JWT grant)."""
    from tests.servers.gcp_catalog import new_rsa_key

    return new_rsa_key()


@pytest.fixture
def oauth(gcp_key, monkeypatch):
    """Google's token endpoint (service-account JWT grant) on loopback."""
    from tests.servers.gcp_catalog import GcpCatalogServer

    with GcpCatalogServer([], gcp_key.public_key()) as server:
        # google-auth's Regional Access Boundary lookup goes here instead of Google.
        from google.auth import _regional_access_boundary_utils as rab

        monkeypatch.setattr(rab, "get_service_account_rab_endpoint", server.rab_endpoint)
        yield server


@pytest.fixture(scope="session")
def opsflow_home() -> Path:
    return _HOME


def task_run_count(state, timeout: float = 30) -> int:
    """The task run's run count as the API records it (1 + retries).

    Task runs reach the API as events, asynchronously: flush them, then wait (bounded)
    until the run's final state is recorded; fail the test if it never is (a count read
    from a run still in another state would be a guess).
    """
    from prefect import get_client
    from prefect.events.worker import EventsWorker
    from prefect.exceptions import ObjectNotFound

    EventsWorker.drain_all(timeout=10)
    deadline = time.monotonic() + timeout
    run = None
    with get_client(sync_client=True) as client:
        while True:
            try:
                run = client.read_task_run(state.state_details.task_run_id)
                if run.state_type == state.type:
                    return run.run_count
            except ObjectNotFound:
                pass
            if time.monotonic() > deadline:
                seen = "no task run" if run is None else f"state {run.state_type.value}"
                pytest.fail(
                    f"task run {state.state_details.task_run_id}: the API shows {seen} after "
                    f"{timeout:g} s, never the final {state.type.value}"
                )
            time.sleep(0.2)


def start_serve(home: Path, extra_env: dict | None = None) -> subprocess.Popen:
    env = {**os.environ, "OPSFLOW_HOME": str(home), **(extra_env or {})}
    env.pop("PREFECT_API_URL", None)
    env.pop("PREFECT_HOME", None)
    env.pop("PREFECT_SERVER_DATABASE_CONNECTION_URL", None)
    env.pop("PREFECT_LOCAL_STORAGE_PATH", None)
    log = open(home / "serve-test.log", "ab")  # noqa: SIM115
    return subprocess.Popen(
        [str(BIN / "opsflow"), "serve"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        cwd=REPO,
    )


def wait_ready(home: Path, proc: subprocess.Popen, timeout: float = 180):
    from opsflow import local_server

    old = os.environ["OPSFLOW_HOME"]
    os.environ["OPSFLOW_HOME"] = str(home)
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            state = local_server.running_instance()
            if state:
                return state
            if proc.poll() is not None:
                raise RuntimeError((home / "serve-test.log").read_text()[-3000:])
            time.sleep(0.3)
        raise TimeoutError((home / "serve-test.log").read_text()[-3000:])
    finally:
        os.environ["OPSFLOW_HOME"] = old


def stop_serve(proc: subprocess.Popen, timeout: float = 60) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    return proc.wait(timeout=timeout)


@pytest.fixture(scope="session")
def serve(opsflow_home):
    """A real `opsflow serve` (local Prefect server + runner) sharing the session's data folder."""
    proc = start_serve(opsflow_home)
    state = wait_ready(opsflow_home, proc)
    yield state
    stop_serve(proc)


def _reset_prefect_services() -> None:
    """Flush and stop Prefect's process-wide events and logs workers.

    They are singletons that bind the API URL when first used, so a test that switches
    APIs would otherwise send task-run events to the previous test's server.
    """
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    EventsWorker.drain_all(timeout=10)
    APILogWorker.drain_all(timeout=10)


@pytest.fixture
def serve_api(serve):
    """Point this test's Prefect client at the `opsflow serve` API."""
    from prefect.settings import PREFECT_API_URL, PREFECT_UI_URL, temporary_settings

    _reset_prefect_services()
    with temporary_settings({PREFECT_API_URL: serve.api_url, PREFECT_UI_URL: serve.ui_url}):
        yield serve
        _reset_prefect_services()
