"""A throw-away PostgreSQL cluster for tests and benchmarks (Debian's ``postgresql``).

``LocalPostgres`` runs ``initdb`` + ``pg_ctl`` in a temporary folder, listens on a
free loopback port (and a unix socket in that folder), and is stopped and removed on
exit. ``initdb`` refuses to run as root, so as root every server command runs as the
``postgres`` user (``runuser``) and the folder belongs to it. Missing binaries fail
loudly: CI installs them (``.ci/run``), a test must not silently skip.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path
from urllib.parse import quote

import pytest

SUPERUSER = "postgres"


def pg_bindir() -> Path | None:
    """PostgreSQL's server binaries: ``$PG_BINDIR``, Debian's newest version, or PATH."""
    if os.environ.get("PG_BINDIR"):
        return Path(os.environ["PG_BINDIR"])
    versions = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0,
    )
    if versions:
        return Path(versions[-1]).parent
    found = shutil.which("initdb")
    return Path(found).parent if found else None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LocalPostgres:
    """One PostgreSQL cluster in a temp folder: ``with LocalPostgres() as pg: ...``."""

    def __init__(self) -> None:
        bindir = pg_bindir()
        if bindir is None or not (bindir / "initdb").exists():
            raise RuntimeError(
                "PostgreSQL server binaries not found (looked in $PG_BINDIR, "
                "/usr/lib/postgresql/*/bin and PATH): install Debian's package with "
                "`apt-get install -y postgresql` (.ci/run does)"
            )
        self.bindir = bindir
        self.as_root = os.geteuid() == 0
        self.root = Path(tempfile.mkdtemp(prefix="opsflow-pg-"))
        self.data = self.root / "data"
        self.port = 0
        if self.as_root:
            shutil.chown(self.root, user=SUPERUSER, group=SUPERUSER)

    # -- server commands, as the postgres user when we are root -------------------------
    def _cmd(self, *args: str) -> list[str]:
        prefix = ["runuser", "-u", SUPERUSER, "--"] if self.as_root else []
        return [*prefix, *args]

    def _run(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        proc = subprocess.run(
            self._cmd(*args), capture_output=True, text=True, timeout=timeout, cwd=self.root
        )
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(args[:2])} failed: {proc.stdout}{proc.stderr}")
        return proc

    def start(self) -> LocalPostgres:
        self._run(
            str(self.bindir / "initdb"),
            "-D",
            str(self.data),
            "-U",
            SUPERUSER,
            "--auth-local=trust",  # the socket is in our own 0700 folder
            "--auth-host=scram-sha-256",  # TCP needs the password in the URL
            "--encoding=UTF8",
            "--no-instructions",
        )
        last_error = None
        for _ in range(5):  # a free port can be taken between the check and the bind
            self.port = _free_port()
            options = (
                f"-c listen_addresses=127.0.0.1 -c port={self.port} "
                f"-c unix_socket_directories={self.root} -c max_connections=200 "
                "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
            )
            try:
                self._run(
                    str(self.bindir / "pg_ctl"),
                    "-D",
                    str(self.data),
                    "-l",
                    str(self.root / "postgres.log"),
                    "-o",
                    options,
                    "-w",
                    "-t",
                    "60",
                    "start",
                )
                return self
            except RuntimeError as exc:
                last_error = exc
        raise RuntimeError(f"PostgreSQL did not start: {last_error}\n{self.log()}")

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
                self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "fast", "stop")
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> LocalPostgres:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc) -> None:
        self.stop()

    def log(self) -> str:
        path = self.root / "postgres.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""

    # -- SQL through psql on the unix socket (superuser, trust) ------------------------
    def psql(self, sql: str, database: str = "postgres") -> str:
        """Run ``sql`` and return the unaligned, tuples-only output."""
        return self._run(
            str(self.bindir / "psql"),
            "-h",
            str(self.root),
            "-p",
            str(self.port),
            "-U",
            SUPERUSER,
            "-d",
            database,
            "-v",
            "ON_ERROR_STOP=1",
            "-At",
            "-c",
            sql,
        ).stdout.strip()

    def create_database(self, name: str, user: str, password: str) -> str:
        """A database owned by a new login role; returns its ``postgresql+asyncpg`` URL."""
        literal = password.replace("'", "''")
        self.psql(f"CREATE ROLE \"{user}\" LOGIN PASSWORD '{literal}'")
        self.psql(f'CREATE DATABASE "{name}" OWNER "{user}"')
        return (
            f"postgresql+asyncpg://{quote(user, safe='')}:{quote(password, safe='')}"
            f"@127.0.0.1:{self.port}/{quote(name, safe='')}"
        )


@pytest.fixture(scope="module")
def postgres():
    """A running local PostgreSQL cluster for this test module; fails if not installed."""
    try:
        server = LocalPostgres()
    except RuntimeError as exc:
        pytest.fail(str(exc), pytrace=False)
    with server:
        yield server
