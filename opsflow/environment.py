"""Prefect settings opsflow applies before Prefect is imported.

Prefect reads its settings when it is first imported, so the CLI calls
``configure()`` first thing. Everything a user sets explicitly wins (setdefault).
"""

from __future__ import annotations

import os

from tasks.common.paths import data_dir, prefect_home, results_dir


def local_database_url() -> str:
    return f"sqlite+aiosqlite:///{prefect_home() / 'opsflow.db'}"


def ephemeral_database_url() -> str:
    """Database of the temporary server ``opsflow run`` uses when no serve is running."""
    return f"sqlite+aiosqlite:///{prefect_home() / 'ephemeral.db'}"


def configure() -> None:
    """Point Prefect at opsflow's data folder (home, database, results) unless set."""
    data_dir()
    prefect_home().mkdir(parents=True, exist_ok=True)
    results_dir().mkdir(parents=True, exist_ok=True)
    defaults = {
        "PREFECT_HOME": str(prefect_home()),
        "PREFECT_SERVER_DATABASE_CONNECTION_URL": local_database_url(),
        "PREFECT_LOCAL_STORAGE_PATH": str(results_dir()),
        "PREFECT_RESULTS_PERSIST_BY_DEFAULT": "true",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_CLI_COLORS": "false",
        "PREFECT_SERVER_LOGGING_LEVEL": "WARNING",
        # the ephemeral API (no server) is what `opsflow run` uses with nothing running
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "60",
    }
    for key, value in defaults.items():
        os.environ.setdefault(key, value)


def served_ui_settings(host: str, port: int) -> dict[str, str]:
    """Settings for a ``prefect server start`` child so its UI talks to its own API.

    The UI takes its API address from ``/ui-settings``, which Prefect 3.8 builds from
    ``PREFECT_UI_API_URL`` (else ``PREFECT_SERVER_API_HOST``/``_PORT``), not from the
    ``--port`` flag: without these, a server on any port but 4200 serves a UI that
    calls ``127.0.0.1:4200`` and shows every page blank.
    """
    base = f"http://{host}:{port}"
    return {
        "PREFECT_SERVER_API_HOST": host,
        "PREFECT_SERVER_API_PORT": str(port),
        "PREFECT_UI_API_URL": f"{base}/api",
        "PREFECT_UI_URL": base,
    }
