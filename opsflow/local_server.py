"""Start, find and stop the local Prefect server that ``opsflow serve`` owns.

One ``opsflow serve`` per data folder: it holds an exclusive ``flock`` on
``serve.lock`` for its whole life and records its addresses in ``serve.json``. A
second one finds the lock taken and says so instead of opening the same SQLite
database twice. The server runs in its own process group and gets SIGTERM when
its parent dies (``PR_SET_PDEATHSIG``), so no orphan outlives ``opsflow serve``.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx

from opsflow import environment
from tasks.common.atomic import write_text_atomic
from tasks.common.paths import data_dir

DEFAULT_PORT = 4200
HEALTH_TIMEOUT_SECONDS = 120.0
READY_TIMEOUT_SECONDS = 180.0


class AlreadyRunning(RuntimeError):
    """Another ``opsflow serve`` holds this data folder."""


class ServerStartError(RuntimeError):
    """The Prefect server opsflow started is not the one answering on its port."""


@dataclass
class ServeState:
    pid: int
    api_url: str
    ui_url: str
    server_pid: int | None = None

    @classmethod
    def read(cls) -> ServeState | None:
        path = data_dir() / "serve.json"
        try:
            return cls(**json.loads(path.read_text()))
        except (OSError, ValueError, TypeError):
            return None

    def write(self) -> None:
        write_text_atomic(data_dir() / "serve.json", json.dumps(asdict(self)))


def _lock_path() -> Path:
    return data_dir() / "serve.lock"


def acquire_lock() -> int:
    """Take the serve lock, or raise AlreadyRunning naming the holder."""
    fd = os.open(_lock_path(), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        state = ServeState.read()
        where = f" (pid {state.pid}, API {state.api_url})" if state else ""
        raise AlreadyRunning(f"opsflow serve is already running for {data_dir()}{where}") from None
    return fd


def lock_is_held() -> bool:
    fd = os.open(_lock_path(), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


def is_healthy(api_url: str, timeout: float = 2.0) -> bool:
    try:
        return httpx.get(f"{api_url}/health", timeout=timeout).status_code == 200
    except httpx.HTTPError:
        return False


def running_instance() -> ServeState | None:
    """The live ``opsflow serve`` of this data folder, if one is up and healthy."""
    state = ServeState.read()
    if state and lock_is_held() and is_healthy(state.api_url):
        return state
    return None


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def preferred_port() -> int:
    """``PREFECT_SERVER_API_PORT`` (what ``prefect server start`` defaults to), else 4200."""
    value = os.environ.get("PREFECT_SERVER_API_PORT", "")
    return int(value) if value.isdigit() and 0 < int(value) < 65536 else DEFAULT_PORT


def pick_port(preferred: int = DEFAULT_PORT) -> int:
    if _port_free(preferred):
        return preferred
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _listening_inodes(port: int) -> set[str] | None:
    """Socket inodes listening on ``port`` (IPv4 and IPv6), or None without /proc."""
    inodes: set[str] = set()
    found_table = False
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        found_table = True
        for line in lines:
            fields = line.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if state == "0A" and int(local.rsplit(":", 1)[1], 16) == port:  # 0A: LISTEN
                inodes.add(inode)
    return inodes if found_table else None


def _process_group(pgid: int) -> list[int]:
    """Pids whose process group is ``pgid`` (the server and anything it spawned)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()  # after "pid (comm)": state ppid pgrp ...
        if int(fields[2]) == pgid:
            pids.append(int(entry.name))
    return pids


def owns_listening_socket(pgid: int, port: int) -> bool:
    """True when a process of group ``pgid`` holds the socket listening on ``port``.

    Linux only (/proc); elsewhere the check cannot be made and a live child is trusted.
    """
    inodes = _listening_inodes(port)
    if inodes is None:
        return True
    targets = {f"socket:[{inode}]" for inode in inodes}
    for pid in _process_group(pgid):
        with contextlib.suppress(OSError):
            for fd in os.listdir(f"/proc/{pid}/fd"):
                with contextlib.suppress(OSError):
                    if os.readlink(f"/proc/{pid}/fd/{fd}") in targets:
                        return True
    return False


def _die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _kill_group(pid: int, timeout: float = 15.0) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.killpg(pid, 0)
        except (ProcessLookupError, PermissionError):
            return
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def reap_stale_server() -> None:
    """Stop a server left behind by an ``opsflow serve`` that was killed with SIGKILL."""
    state = ServeState.read()
    if state and state.server_pid and not lock_is_held():
        _kill_group(state.server_pid)


class LocalPrefectServer:
    """A ``prefect server start`` child process on 127.0.0.1 with opsflow's SQLite database.

    ``environment.database_url()`` (``OPSFLOW_DATABASE_URL``) points it at PostgreSQL instead.
    """

    def __init__(self, port: int | None = None, log_path: Path | None = None):
        self.port = port or pick_port(preferred_port())
        self.log_path = log_path or data_dir() / "prefect-server.log"
        self.process: subprocess.Popen | None = None

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api"

    @property
    def ui_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> LocalPrefectServer:
        prefect_bin = Path(sys.executable).with_name("prefect")
        cmd = [str(prefect_bin), "server", "start", "--host", "127.0.0.1", "--port", str(self.port)]
        env = {**os.environ}
        env.pop("PREFECT_API_URL", None)  # the server must not talk to itself as a client
        database = environment.database_url()
        if database:  # a team's PostgreSQL instead of the SQLite file under PREFECT_HOME
            env["PREFECT_SERVER_DATABASE_CONNECTION_URL"] = database
            masked = environment.mask_database_url(database)
            print(f"Prefect server database: {masked}", file=sys.stderr, flush=True)
        env.update(environment.served_ui_settings("127.0.0.1", self.port))
        log = open(self.log_path, "ab")  # noqa: SIM115 - owned by the child process
        self.process = subprocess.Popen(
            cmd,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=_die_with_parent,  # noqa: PLW1509
        )
        log.close()
        self._wait_healthy()
        return self

    def _wait_healthy(self) -> None:
        """Wait until the server this object started answers; a foreign one is an error.

        The port was free when it was picked, but another process may have bound it
        since: a healthy answer counts only when our child owns the listening socket.
        """
        deadline = time.monotonic() + HEALTH_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                if not _port_free(self.port) and not owns_listening_socket(
                    self.process.pid, self.port
                ):
                    message = self._foreign_message("exited")
                    self.process = None
                    raise ServerStartError(message)
                tail = self.log_path.read_text(errors="replace")[-2000:]
                tail = environment.mask_database_secrets(tail, environment.database_url())
                raise RuntimeError(f"Prefect server exited during start-up:\n{tail}")
            if is_healthy(self.api_url, timeout=1.0):
                if self.process is None or owns_listening_socket(self.process.pid, self.port):
                    return
                message = self._foreign_message("was stopped")
                self.stop()
                raise ServerStartError(message)
            time.sleep(0.25)
        self.stop()
        raise RuntimeError(f"Prefect server not healthy after {HEALTH_TIMEOUT_SECONDS:.0f}s")

    def _foreign_message(self, what: str) -> str:
        pid = self.process.pid if self.process else "?"
        return (
            f"127.0.0.1:{self.port} is held by another process, not by the Prefect server "
            f"opsflow started (pid {pid}, which {what}); choose another port with --port"
        )

    def stop(self) -> None:
        if self.process is None:
            return
        _kill_group(self.process.pid)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=5)
        self.process = None


def wait_for_serve(child: subprocess.Popen | None) -> ServeState:
    """Wait until this data folder's ``opsflow serve`` is up, or ``child`` died."""
    deadline = time.monotonic() + READY_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        state = running_instance()
        if state:
            return state
        if child is not None and child.poll() is not None and not lock_is_held():
            log = data_dir() / "serve.log"
            tail = log.read_text(errors="replace")[-1500:] if log.exists() else ""
            raise RuntimeError(f"opsflow serve exited with code {child.returncode}\n{tail}")
        time.sleep(0.3)
    raise RuntimeError(f"opsflow serve was not ready after {READY_TIMEOUT_SECONDS:.0f}s")


def spawn_serve(detached: bool) -> subprocess.Popen:
    """Start ``opsflow serve`` as a child (dies with us) or detached (outlives us)."""
    log = open(data_dir() / "serve.log", "ab")  # noqa: SIM115 - handed to the child
    kwargs: dict = {"start_new_session": True}
    if not detached:
        kwargs["preexec_fn"] = _die_with_parent
    proc = subprocess.Popen(
        [sys.executable, "-m", "opsflow", "serve"],
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        **kwargs,
    )
    log.close()
    return proc


def ensure_serve(detached: bool = False) -> tuple[ServeState, subprocess.Popen | None]:
    """Reuse the running ``opsflow serve`` or start one; returns it and the child we started."""
    state = running_instance()
    if state:
        return state, None
    child = spawn_serve(detached)
    try:
        return wait_for_serve(child), child
    except BaseException:
        stop_child(child)
        raise


def stop_child(child: subprocess.Popen | None) -> None:
    """SIGTERM a serve we started and wait for its clean shutdown."""
    if child is None or child.poll() is not None:
        return
    child.send_signal(signal.SIGTERM)
    try:
        child.wait(timeout=30)
    except subprocess.TimeoutExpired:
        child.kill()
