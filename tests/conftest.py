"""Shared fixtures. The environment is set before Prefect is imported anywhere."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
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


def free_port() -> int:
    """A port nobody listens on now, never Prefect's default 4200."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port != 4200:
            return port


# Servers opsflow starts prefer PREFECT_SERVER_API_PORT to 4200: the tests never contend
# for 4200 with whatever else runs on the machine.
os.environ["PREFECT_SERVER_API_PORT"] = str(free_port())

from opsflow import environment  # noqa: E402

environment.configure()

import pytest  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


@pytest.fixture(scope="session")
def harness():
    """A temporary Prefect API for flow tests (prefect_test_harness).

    Its server subprocess inherits stdout/stderr at start: they go to a
    ``prefect-server.log`` that the server-log check reads like any other.
    """
    from prefect.testing.utilities import prefect_test_harness

    with contextlib.ExitStack() as stack:
        with _child_output_to(_HOME / "harness" / SERVER_LOG_NAME):
            stack.enter_context(prefect_test_harness(server_startup_timeout=120))
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


def start_serve(
    home: Path, extra_env: dict | None = None, args: tuple[str, ...] = ()
) -> subprocess.Popen:
    env = {**os.environ, "OPSFLOW_HOME": str(home), **(extra_env or {})}
    env.pop("PREFECT_API_URL", None)
    env.pop("PREFECT_HOME", None)
    env.pop("PREFECT_SERVER_DATABASE_CONNECTION_URL", None)
    env.pop("PREFECT_LOCAL_STORAGE_PATH", None)
    log = open(home / "serve-test.log", "ab")  # noqa: SIM115
    return subprocess.Popen(
        [str(BIN / "opsflow"), "serve", *args],
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


@contextlib.contextmanager
def _client_of(state):
    from prefect.settings import PREFECT_API_URL, PREFECT_UI_URL, temporary_settings

    _reset_prefect_services()
    with temporary_settings({PREFECT_API_URL: state.api_url, PREFECT_UI_URL: state.ui_url}):
        yield state
        _reset_prefect_services()


@pytest.fixture
def serve_api(serve):
    """Point this test's Prefect client at the `opsflow serve` API."""
    with _client_of(serve) as state:
        yield state


@pytest.fixture(scope="session")
def serve_elsewhere(tmp_path_factory):
    """A second `opsflow serve` in its own data folder, on a free port that is not 4200.

    For what the shared ``serve`` must not get (a schedule of a few seconds) and for
    the UI on a non-default port.
    """
    home = tmp_path_factory.mktemp("serve-elsewhere")
    proc = start_serve(home, args=("--port", str(free_port())))
    state = wait_ready(home, proc)
    yield state
    stop_serve(proc)


@pytest.fixture
def serve_elsewhere_api(serve_elsewhere):
    """Point this test's Prefect client at ``serve_elsewhere``."""
    with _client_of(serve_elsewhere) as state:
        yield state


# --- Prefect server logs ---------------------------------------------------------
# Every Prefect server the tests start writes a ``prefect-server.log``: `opsflow serve`
# under its OPSFLOW_HOME (the session's, or a test's tmp_path), the harness under
# $OPSFLOW_HOME/harness. After each test, whatever those logs gained is read, and an
# ERROR or a traceback fails the test: a server that breaks at run time (a scheduler
# that fails every loop) often still answers /health.

SERVER_LOG_NAME = "prefect-server.log"
_LOG_PROBLEM = re.compile(r"\b(ERROR|CRITICAL)\b|Traceback \(most recent call last\)")


# One benign kind of report: SQLite was busy ("database is locked") under concurrent
# writers. Prefect retries it (the task-run recorder keeps the events, a client retries a
# refused state change); it is SQLite's write lock, the reason a team's server belongs on
# PostgreSQL, not an incompatibility. Any other error or traceback is a problem.
_RECORD_START = re.compile(r"^\d{2}:\d{2}:\d{2}\.\d{3} \| ")
SQLITE_BUSY = "(sqlite3.OperationalError) database is locked"
_EXCEPTION_LINE = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception): ")


def _record_end(lines: list[str], i: int) -> int:
    """Index of the last line of the log record that starts at line ``i``."""
    return next(
        (j - 1 for j in range(i + 1, len(lines)) if _RECORD_START.match(lines[j])), len(lines) - 1
    )


def _sqlite_busy(lines: list[str], i: int) -> bool:
    """Is line ``i`` an ERROR record whose traceback ends in SQLite being busy?"""
    if not (_RECORD_START.match(lines[i]) and "| ERROR" in lines[i]):
        return False
    body = lines[i + 1 : _record_end(lines, i) + 1]
    causes = [line for line in body if _EXCEPTION_LINE.match(line)]  # the chain's exceptions
    return any(SQLITE_BUSY in line for line in causes) and all(
        line.rstrip().endswith("database is locked") for line in causes
    )


def server_log_problems(text: str, context: int = 25) -> list[str]:
    """The passages of a server log that report an error or a traceback."""
    lines = text.splitlines()
    passages, end = [], -1
    for i, line in enumerate(lines):
        if i > end and _sqlite_busy(lines, i):
            end = _record_end(lines, i)
            continue
        if i > end and _LOG_PROBLEM.search(line):
            end = i + context
            passages.append("\n".join(lines[i : end + 1]))
    return passages


class ServerLogWatch:
    """Finds every Prefect server log under ``roots`` and reads what each gained."""

    def __init__(self, roots: list[Path]):
        self.roots = roots
        self.offsets: dict[Path, int] = {}

    def logs(self) -> list[Path]:
        found = set()
        for root in self.roots:
            for depth in range(4):  # root/, root/<test>/, root/<test>/<home>/, ...
                pattern = "/".join(["*"] * depth + [SERVER_LOG_NAME])
                found.update(p.resolve() for p in root.glob(pattern))  # pytest's *current links
        return sorted(found)

    def new_problems(self) -> dict[Path, list[str]]:
        problems = {}
        for path in self.logs():
            start = self.offsets.get(path, 0)
            with open(path, "rb") as f:
                f.seek(start)
                data = f.read()
            cut = data.rfind(b"\n") + 1  # a line still being written is read next time
            self.offsets[path] = start + cut
            found = server_log_problems(data[:cut].decode(errors="replace"))
            if found:
                problems[path] = found
        return problems


@pytest.fixture(scope="session")
def server_log_watch(tmp_path_factory) -> ServerLogWatch:
    return ServerLogWatch([_HOME, tmp_path_factory.getbasetemp()])


def _fail_on_server_errors(watch: ServerLogWatch, when: str) -> None:
    problems = watch.new_problems()
    if problems:
        report = "\n\n".join(f"{path}:\n" + "\n...\n".join(p) for path, p in problems.items())
        pytest.fail(f"a Prefect server logged an error {when}\n{report}", pytrace=False)


@pytest.fixture(scope="session", autouse=True)
def _server_logs_clean_at_exit(server_log_watch):
    """Set up before, so torn down after, the session's servers: reads their shutdown."""
    yield
    _fail_on_server_errors(server_log_watch, "while the session's servers stopped")


@pytest.fixture(autouse=True)
def _server_logs_stay_clean(request, server_log_watch):
    yield
    if request.node.get_closest_marker("server_errors_expected"):
        server_log_watch.new_problems()  # a test that makes a server fail on purpose
        return
    _fail_on_server_errors(server_log_watch, "during this test")


@contextlib.contextmanager
def _child_output_to(path: Path):
    """Point fds 1 and 2 at ``path`` while a child that inherits them is started."""
    path.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for f in (fd, *saved):
            os.close(f)
