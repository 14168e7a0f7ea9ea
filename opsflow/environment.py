"""Prefect settings opsflow applies before Prefect is imported.

Prefect reads its settings when it is first imported, so the CLI calls
``configure()`` first thing. Everything a user sets explicitly wins (setdefault).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tasks.common.paths import data_dir, prefect_home, results_dir


def local_database_url() -> str:
    return f"sqlite+aiosqlite:///{prefect_home() / 'opsflow.db'}"


def ephemeral_database_url() -> str:
    """Database of the temporary server ``opsflow run`` uses when no serve is running."""
    return f"sqlite+aiosqlite:///{prefect_home() / 'ephemeral.db'}"


DATABASE_URL_VARIABLE = "OPSFLOW_DATABASE_URL"
SUPPORTED_DRIVERS = ("postgresql+asyncpg", "sqlite+aiosqlite")


class InvalidDatabaseURL(ValueError):
    """The database URL given for the Prefect server is unusable (message names where)."""


def database_url() -> str | None:
    """The database of the Prefect server ``opsflow serve`` starts; None means SQLite.

    A team points it at PostgreSQL (``postgresql+asyncpg://user:password@host:5432/db``)
    with ``OPSFLOW_DATABASE_URL``. The URL may hold a password: show it only through
    ``mask_database_url``. Raises InvalidDatabaseURL naming the variable and the reason.
    """
    url = os.environ.get(DATABASE_URL_VARIABLE, "").strip()
    if not url:
        return None
    validate_database_url(url, DATABASE_URL_VARIABLE)
    return url


def use_config_database_url(server: Mapping[str, Any], where: str) -> None:
    """Take ``[server] database_url`` of the config file unless ``OPSFLOW_DATABASE_URL`` is set.

    The config file holds no secrets (its loader refuses a URL with a password), so such a
    URL authenticates another way (``~/.pgpass``, ``PGPASSFILE``, trust/peer). It is put in
    the environment so the server and every process started from here see the same.
    """
    url = server.get("database_url")
    if url is None or os.environ.get(DATABASE_URL_VARIABLE, "").strip():
        return
    field = f"{Path(where).name}: server.database_url"
    if not isinstance(url, str) or not url.strip():
        raise InvalidDatabaseURL(f"{field}: must be a non-empty string")
    validate_database_url(url.strip(), field)
    os.environ[DATABASE_URL_VARIABLE] = url.strip()


def validate_database_url(url: str, field: str) -> None:
    """Reject a URL Prefect's server cannot use, without echoing the URL (it may hold a secret)."""
    example = "postgresql+asyncpg://user:password@host:5432/database"
    parsed = _parse(url)
    if parsed is None:
        raise InvalidDatabaseURL(f"{field}: not a database URL; expected {example}")
    if parsed.drivername not in SUPPORTED_DRIVERS:
        raise InvalidDatabaseURL(
            f"{field}: driver {parsed.drivername!r} is not supported by the Prefect server;"
            f" use {' or '.join(SUPPORTED_DRIVERS)} ({example})"
        )
    if parsed.drivername.startswith("postgresql"):
        if not parsed.database:
            raise InvalidDatabaseURL(f"{field}: names no database; expected {example}")
        if not parsed.host and "host" not in parsed.query:
            raise InvalidDatabaseURL(f"{field}: names no host; expected {example}")


def _parse(url: str):
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(url)
    except ArgumentError:
        return None


def mask_database_url(url: str) -> str:
    """The URL with its password (and any ``password=`` query value) shown as ***."""
    parsed = _parse(url)
    if parsed is None:
        return "<not a database URL>"
    if "password" in parsed.query:
        parsed = parsed.update_query_dict({"password": "***"})
    return parsed.render_as_string(hide_password=True)


def mask_database_secrets(text: str, url: str | None) -> str:
    """``text`` with every spelling of ``url``'s password replaced by *** (logs, errors)."""
    from urllib.parse import quote

    parsed = _parse(url or "")
    if parsed is None:
        return text
    values = [parsed.password] if parsed.password else []
    query_password = parsed.query.get("password")
    values += [query_password] if isinstance(query_password, str) else list(query_password or ())
    forms = {form for v in values if v for form in (v, quote(v, safe=""), quote(v))}
    for secret in sorted(forms, key=len, reverse=True):
        text = text.replace(secret, "***")
    return text


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
