"""``opsflow.toml``: where a team sets its sources and schedules once.

Per flow of the registry, default parameters (credential block names, accounts,
scopes, tables, export paths, namespaces ...) and a schedule (cron and timezone, or
``"off"``; without one the registry's cron stays). ``opsflow serve`` applies them to
the deployments it registers, ``opsflow deployments`` renders them into
``prefect.yaml``. An optional ``[server]`` table is parsed and handed on as is (for the
local Prefect server's settings). Example (the README has a complete one)::

    [flows.collect-costs]
    schedule = { cron = "0 6 * * *", timezone = "Europe/Paris" }

    [flows.collect-costs.parameters]
    aws = [{ credentials_block = "aws-payer", tag_key = "team" }]

    [flows.recommend-savings]
    schedule = "off"

Where it is read from: ``--config PATH`` (the CLI exports it as ``OPSFLOW_CONFIG`` so the
processes it starts read the same file), else ``$OPSFLOW_HOME/opsflow.toml`` when that
exists; with neither, the configuration is empty and everything is as the registry says.

Every entry is checked when loaded: the flow name against the registry, each
parameter against the flow's own parameter model (``flows.params.validate_parameters``),
the schedule with Prefect's ``CronSchedule``; a key or value that looks like a secret is
refused (``deployments.config_secrets``): the file holds block names, never secrets.
Every problem is a ``ConfigError`` whose message is one line naming the file, the flow,
the field and the reason.

``load_config(validate=False)`` reads, checks the shape and refuses secrets without
importing Prefect (so a caller can read ``[server]`` before Prefect reads its
settings); ``load_config()`` also validates against the flows.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deployments.config_secrets import find_secrets
from tasks.common.paths import data_dir

CONFIG_ENV = "OPSFLOW_CONFIG"
CONFIG_FILE = "opsflow.toml"
OFF = "off"
DEFAULT_TIMEZONE = "UTC"
_TOP_LEVEL = ("flows", "server")
_FLOW_KEYS = ("parameters", "schedule")
_SCHEDULE_KEYS = ("cron", "timezone")


class ConfigError(ValueError):
    """The config file is unusable; the message is one line naming where and why."""


@dataclass(frozen=True)
class Schedule:
    cron: str
    timezone: str = DEFAULT_TIMEZONE


@dataclass(frozen=True)
class FlowSettings:
    """What the config says for one flow.

    Attributes:
        parameters: default parameters of its deployments (JSON-compatible, as written).
        schedule: the configured schedule; None with ``schedule_set`` means ``"off"``.
        schedule_set: False when the file names no schedule (the registry's cron applies).
    """

    parameters: dict[str, Any] = field(default_factory=dict)
    schedule: Schedule | None = None
    schedule_set: bool = False


@dataclass(frozen=True)
class OpsflowConfig:
    """The loaded config file (empty when there is none)."""

    path: Path | None = None
    flows: dict[str, FlowSettings] = field(default_factory=dict)
    server: dict[str, Any] = field(default_factory=dict)
    validated: bool = False

    def for_flow(self, name: str) -> FlowSettings:
        """The settings of flow ``name`` (empty when the file does not mention it)."""
        return self.flows.get(name, FlowSettings())

    def parameters(self, name: str) -> dict[str, Any]:
        return dict(self.for_flow(name).parameters)

    def schedule(self, name: str, registry_cron: str | None) -> Schedule | None:
        """The schedule a deployment gets: the configured one, ``off``, or the registry's."""
        settings = self.for_flow(name)
        if settings.schedule_set:
            return settings.schedule
        return Schedule(registry_cron) if registry_cron else None


def config_path(explicit: str | os.PathLike | None = None) -> Path | None:
    """The file to read: ``explicit``, else ``$OPSFLOW_CONFIG``, else the home's, else None."""
    named = explicit or os.environ.get(CONFIG_ENV)
    if named:
        path = Path(named).expanduser()
        if not path.is_file():
            source = "--config" if explicit else CONFIG_ENV
            raise ConfigError(f"{source}: no such file: {path}")
        return path.resolve()
    default = data_dir() / CONFIG_FILE
    return default if default.is_file() else None


def load_config(path: str | os.PathLike | None = None, *, validate: bool = True) -> OpsflowConfig:
    """Read, check and return the config (see the module docstring for where from).

    Args:
        path: a file to read instead of ``$OPSFLOW_CONFIG`` / ``$OPSFLOW_HOME/opsflow.toml``.
        validate: also check flow names, parameters and schedules against the registry
            (imports the flows, hence Prefect); without it nothing Prefect is imported.

    Raises:
        ConfigError: one line naming the file, the flow, the field and the reason.
    """
    found = config_path(path)
    if found is None:
        return OpsflowConfig(validated=validate)
    try:
        document = tomllib.loads(found.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{found.name}: not valid TOML: {exc}") from None
    except OSError as exc:
        raise ConfigError(f"{found}: cannot be read: {exc.strerror}") from None
    return parse_config(document, found, validate=validate)


def parse_config(
    document: dict[str, Any], path: Path | None = None, *, validate: bool = True
) -> OpsflowConfig:
    """Check a parsed document (``tomllib.loads``) and turn it into an ``OpsflowConfig``."""
    where = path.name if path else CONFIG_FILE
    secrets = find_secrets(document)
    if secrets:
        raise ConfigError(
            f"{where}: {secrets[0]}; secrets belong in Prefect blocks: give the block's name "
            "(e.g. credentials_block) instead"
            + (f" ({len(secrets) - 1} more)" if len(secrets) > 1 else "")
        )
    unknown = sorted(set(document) - set(_TOP_LEVEL))
    if unknown:
        raise ConfigError(
            f"{where}: unknown table {', '.join(unknown)}; expected: {', '.join(_TOP_LEVEL)}"
        )
    server = document.get("server", {})
    if not isinstance(server, dict):
        raise ConfigError(f"{where}: server: must be a table ([server])")
    flows_doc = document.get("flows", {})
    if not isinstance(flows_doc, dict):
        raise ConfigError(f"{where}: flows: must be a table ([flows.<flow name>])")
    flows = {name: _flow_settings(where, name, entry) for name, entry in flows_doc.items()}
    config = OpsflowConfig(path=path, flows=flows, server=dict(server))
    return validate_config(config) if validate else config


def _flow_settings(where: str, name: str, entry: Any) -> FlowSettings:
    here = f"{where}: flows.{name}"
    if not isinstance(entry, dict):
        raise ConfigError(f"{here}: must be a table with parameters and/or schedule")
    unknown = sorted(set(entry) - set(_FLOW_KEYS))
    if unknown:
        raise ConfigError(
            f"{here}: unknown key {', '.join(unknown)}; expected: parameters, schedule"
        )
    parameters = entry.get("parameters", {})
    if not isinstance(parameters, dict):
        raise ConfigError(f"{here}.parameters: must be a table of parameter names")
    if "schedule" not in entry:
        return FlowSettings(parameters=_jsonable(parameters))
    return FlowSettings(
        parameters=_jsonable(parameters),
        schedule=_schedule(f"{here}.schedule", entry["schedule"]),
        schedule_set=True,
    )


def _schedule(here: str, value: Any) -> Schedule | None:
    if value == OFF:
        return None
    if not isinstance(value, dict):
        raise ConfigError(
            f'{here}: must be "off" or a table {{ cron = "0 7 * * *", timezone = "UTC" }}'
        )
    unknown = sorted(set(value) - set(_SCHEDULE_KEYS))
    if unknown:
        raise ConfigError(f"{here}: unknown key {', '.join(unknown)}; expected: cron, timezone")
    cron, timezone = value.get("cron"), value.get("timezone", DEFAULT_TIMEZONE)
    if not isinstance(cron, str) or not cron.strip():
        raise ConfigError(f'{here}.cron: required, a cron expression such as "0 7 * * *"')
    if not isinstance(timezone, str):
        raise ConfigError(f"{here}.timezone: must be an IANA time zone name such as Europe/Paris")
    return Schedule(cron=cron.strip(), timezone=timezone)


def _jsonable(value: Any) -> Any:
    """TOML dates and times as ISO strings: deployment parameters travel as JSON."""
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value


def validate_config(config: OpsflowConfig) -> OpsflowConfig:
    """Check flow names against the registry, parameters against each flow's model and
    schedules with Prefect's ``CronSchedule``; flows are keyed by flow name afterwards."""
    from prefect.client.schemas.schedules import CronSchedule
    from pydantic import ValidationError

    from flows.params import InvalidParameters, validate_parameters
    from flows.registry import REGISTRY, get_spec

    where = config.path.name if config.path else CONFIG_FILE
    flows: dict[str, FlowSettings] = {}
    for written, settings in config.flows.items():
        try:
            spec = get_spec(written)
        except KeyError:
            known = ", ".join(s.name for s in REGISTRY)
            raise ConfigError(
                f"{where}: flows.{written}: unknown flow; known flows: {known}"
            ) from None
        if spec.name in flows:
            raise ConfigError(f"{where}: flows.{written}: {spec.name} is configured twice")
        here = f"{where}: flows.{spec.name}"
        try:
            validate_parameters(spec.flow, settings.parameters, partial=True)
        except InvalidParameters as exc:
            problems = exc.problems or [("", str(exc))]
            raise ConfigError(
                "; ".join(f"{here}.parameters.{f}: {reason}" for f, reason in problems)
            ) from None
        if settings.schedule is not None:
            try:
                CronSchedule(cron=settings.schedule.cron, timezone=settings.schedule.timezone)
            except ValidationError as exc:
                err = exc.errors()[0]
                key = err["loc"][0] if err["loc"] else "cron"
                reason = str(err["msg"]).removeprefix("Value error, ")
                raise ConfigError(f"{here}.schedule.{key}: {reason}") from None
        flows[spec.name] = settings
    return OpsflowConfig(path=config.path, flows=flows, server=config.server, validated=True)
