"""The ``opsflow`` command: list, run and serve the registry's flows, and bridge them to MCP.

Prefect reads its settings at import, so this module configures the environment
first and imports Prefect (and the flows) only inside the commands.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import time
from pathlib import Path

import click

from opsflow import environment, local_server
from opsflow.templates_cli import templates
from tasks.common.atomic import write_text_atomic
from tasks.common.paths import data_dir


def _fail(message: str, code: int = 1) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def _use_running_serve(ephemeral: bool = False) -> local_server.ServeState | None:
    """Point this process at a running ``opsflow serve`` when no API is configured.

    With none running and ``ephemeral``, Prefect starts a temporary in-process server;
    it gets its own database so it never opens the one ``opsflow serve`` owns.
    """
    if os.environ.get("PREFECT_API_URL"):
        return None
    state = local_server.running_instance()
    if state:
        os.environ["PREFECT_API_URL"] = state.api_url
    elif ephemeral and os.environ.get("PREFECT_SERVER_DATABASE_CONNECTION_URL") == (
        environment.local_database_url()
    ):
        os.environ["PREFECT_SERVER_DATABASE_CONNECTION_URL"] = environment.ephemeral_database_url()
    return state


config_option = click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Config file of sources and schedules (default: $OPSFLOW_HOME/opsflow.toml if present).",
)


def _load_config(config_file: Path | None, validate: bool = True):
    """The config (``deployments.config``), or exit 2 with its one-line reason. ``--config``
    is exported as ``OPSFLOW_CONFIG`` so every process started from here reads the same."""
    from deployments.config import CONFIG_ENV, ConfigError, load_config

    try:
        config = load_config(config_file, validate=validate)
    except ConfigError as exc:
        _fail(str(exc), 2)
    if config.path is not None:
        os.environ[CONFIG_ENV] = str(config.path)
    return config


def _start_background_serve() -> None:
    """Start (or join) the background ``opsflow serve`` and point Prefect at its API.

    Prefect is imported by then (parameters are validated first), so its global
    settings are refreshed to pick up the new ``PREFECT_API_URL``.
    """
    try:
        state, child = local_server.ensure_serve(detached=True)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        _fail(
            f"could not start opsflow serve: {first} (see {data_dir() / 'serve.log'}); "
            "`opsflow run --ephemeral` runs without it"
        )
    if child is not None:
        click.echo(
            f"started opsflow serve in the background (pid {state.pid}, UI {state.ui_url}); "
            "`opsflow stop` stops it",
            err=True,
        )
    os.environ["PREFECT_API_URL"] = state.api_url
    from prefect.context import refresh_global_settings_context

    refresh_global_settings_context()


def _find_spec(name: str):
    """The registry entry for ``name``, importing only its flow module when possible.

    ``get_spec`` imports every flow module up to the match (seconds for the late
    ones); the entrypoint's function name is the flow name in the usual case.
    """
    from flows.registry import REGISTRY, get_spec

    wanted = name.replace("_", "-")
    for spec in REGISTRY:
        if spec.entrypoint.partition(":")[2].replace("_", "-") == wanted:
            if name in (spec.name, spec.tool_name):
                return spec
            break
    return get_spec(name)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """opsflow: cloud operations as Prefect flows, with an MCP bridge for agents."""
    environment.configure()


@cli.command("flows")
@click.option("--json", "as_json", is_flag=True, help="Print the registry as JSON.")
def flows_cmd(as_json: bool) -> None:
    """List the registry: name, read-only/destructive, schedule, description."""
    from flows.registry import REGISTRY

    rows = [
        {
            "name": s.name,
            "deployment": s.full_deployment_name,
            "mode": "destructive" if s.destructive else ("read-only" if s.read_only else "writes"),
            "schedule": s.cron or "on demand",
            "description": s.summary,
        }
        for s in REGISTRY
    ]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    width = max(len(r["name"]) for r in rows)
    for r in rows:
        click.echo(
            f"{r['name']:<{width}}  {r['mode']:<11}  {r['schedule']:<12}  {r['description']}"
        )


@cli.command("run")
@click.argument("flow_name")
@click.option("--params", "params_json", default="{}", help="Flow parameters as a JSON object.")
@click.option(
    "--ephemeral",
    is_flag=True,
    help="Start no background serve: with none running, use a temporary Prefect "
    "server for this command only (slower, leaves nothing running).",
)
def run_cmd(flow_name: str, params_json: str, ephemeral: bool) -> None:
    """Run one flow and print its result as JSON on stdout (logs go to stderr).

    With no PREFECT_API_URL and no serve running, the first run starts the background
    ``opsflow serve`` and later runs reuse it; the flow runs in this process either way.
    """
    serve_state = _use_running_serve(ephemeral)
    from flows.params import InvalidParameters, validate_parameters

    try:
        spec = _find_spec(flow_name)
    except KeyError as exc:
        _fail(exc.args[0], 2)
    try:
        params = json.loads(params_json)
    except json.JSONDecodeError as exc:
        _fail(f"--params is not valid JSON: {exc.msg} at position {exc.pos}", 2)
    try:
        validate_parameters(spec.flow, params)
    except InvalidParameters as exc:
        _fail(str(exc), 2)
    if serve_state is None and not ephemeral and not os.environ.get("PREFECT_API_URL"):
        _start_background_serve()
    state = spec.flow(**params, return_state=True)
    if not state.is_completed():
        _fail(f"flow run {state.name}: {state.message or 'no message'}")
    result = state.result()
    click.echo(result.model_dump_json(indent=2) if hasattr(result, "model_dump_json") else result)


@cli.command("serve")
@click.option(
    "--port",
    type=int,
    default=None,
    envvar="OPSFLOW_SERVE_PORT",  # exactly this port, also for a serve that `opsflow run` starts
    help="Local Prefect server port, exactly (default: PREFECT_SERVER_API_PORT if free, else 4200 "
    "if free, else any free port).",
)
@click.option("--background", is_flag=True, help="Start detached and return once ready.")
@config_option
def serve_cmd(port: int | None, background: bool, config_file: Path | None) -> None:
    """Start a local Prefect server (unless PREFECT_API_URL is set) and serve every flow,
    with the config file's parameters and schedules."""
    # Shape and secrets now; flows and parameters once Prefect may be imported (below).
    config = _load_config(config_file, validate=background)
    try:  # checked before anything starts; OPSFLOW_DATABASE_URL wins over [server]
        environment.use_config_database_url(config.server, str(config.path or "opsflow.toml"))
        environment.database_url()
    except environment.InvalidDatabaseURL as exc:
        _fail(str(exc), 2)
    if background:
        if config.path and local_server.running_instance():
            click.echo("opsflow serve is already running: `opsflow stop` first to apply --config")
        try:
            state, _ = local_server.ensure_serve(detached=True)
        except RuntimeError as exc:
            _fail(str(exc))
        click.echo(f"opsflow serve running (pid {state.pid})")
        click.echo(f"Prefect API: {state.api_url}\nPrefect UI:  {state.ui_url}")
        return
    local_server.reap_stale_server()
    try:
        lock_fd = local_server.acquire_lock()
    except local_server.AlreadyRunning as exc:
        _fail(str(exc))
    state_file = data_dir() / "serve.json"
    state_file.unlink(missing_ok=True)
    server = None

    def _terminate(signum, frame):  # noqa: ARG001
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _terminate)
    try:
        api_url = os.environ.get("PREFECT_API_URL")
        if api_url:
            ui_url = api_url.removesuffix("/").removesuffix("/api")
        else:
            click.echo("Starting local Prefect server...", err=True)
            server = local_server.LocalPrefectServer(port=port)
            try:
                server.start()
            except local_server.ServerStartError as exc:
                server = None
                _fail(str(exc))
            api_url, ui_url = server.api_url, server.ui_url
            os.environ["PREFECT_API_URL"] = api_url

        def ready() -> None:
            local_server.ServeState(
                pid=os.getpid(),
                api_url=api_url,
                ui_url=ui_url,
                server_pid=server.process.pid if server and server.process else None,
            ).write()
            click.echo(f"Prefect API: {api_url}\nPrefect UI:  {ui_url}", err=True)
            click.echo("Serving every opsflow deployment; Ctrl-C to stop.", err=True)

        config = _load_config(config_file)  # imports the flows: a bad field exits 2 here
        from deployments.serve import serve_registry

        asyncio.run(serve_registry(on_ready=ready, config=config))
    except KeyboardInterrupt:
        click.echo("Shutting down opsflow serve...", err=True)
    finally:
        state_file.unlink(missing_ok=True)
        if server is not None:
            server.stop()
        os.close(lock_fd)


@cli.command("stop")
def stop_cmd() -> None:
    """Stop the ``opsflow serve`` running for this data folder."""
    state = local_server.ServeState.read()
    if not state or not local_server.lock_is_held():
        click.echo("opsflow serve is not running")
        return
    os.kill(state.pid, signal.SIGTERM)
    deadline = time.monotonic() + 30
    while local_server.lock_is_held() and time.monotonic() < deadline:
        time.sleep(0.2)
    click.echo("stopped" if not local_server.lock_is_held() else "still stopping")


@cli.command("mcp")
@click.option(
    "--http",
    "http_addr",
    default=None,
    metavar="HOST:PORT",
    help="Serve streamable HTTP on HOST:PORT instead of stdio.",
)
@click.option(
    "--insecure-local",
    is_flag=True,
    help="Allow HTTP without OPSFLOW_MCP_TOKEN on a loopback address.",
)
def mcp_cmd(http_addr: str | None, insecure_local: bool) -> None:
    """Run the MCP bridge: one tool per flow, each call a flow run on the Prefect API."""
    from mcp_bridge.http import parse_http_address, validate_http_security

    token = os.environ.get("OPSFLOW_MCP_TOKEN") or None
    if http_addr:
        try:
            host, port = parse_http_address(http_addr)
            validate_http_security(host, token, insecure_local)
        except ValueError as exc:
            _fail(str(exc), 2)
    child = None
    if not os.environ.get("PREFECT_API_URL"):
        try:
            state, child = local_server.ensure_serve(detached=False)
        except RuntimeError as exc:
            _fail(str(exc))
        os.environ["PREFECT_API_URL"] = state.api_url
    try:
        from mcp_bridge.server import build_server

        server = build_server()
        if http_addr:
            from mcp_bridge.http import run_http

            run_http(server, host, port, token)
        else:
            server.run("stdio")
    finally:
        local_server.stop_child(child)


@cli.command("deployments")
@click.option("--check", is_flag=True, help="Exit 1 if deployments/prefect.yaml is out of date.")
@config_option
def deployments_cmd(check: bool, config_file: Path | None) -> None:
    """Render deployments/prefect.yaml from the registry and the config file (or check it)."""
    config = _load_config(config_file)
    from deployments.prefect_yaml import PREFECT_YAML, render_prefect_yaml

    text = render_prefect_yaml(config)
    current = PREFECT_YAML.read_text() if PREFECT_YAML.exists() else ""
    if check:
        if current != text:
            _fail(f"{PREFECT_YAML} disagrees with the registry; run `opsflow deployments`")
        click.echo("prefect.yaml matches the registry")
        return
    write_text_atomic(PREFECT_YAML, text)
    click.echo(f"wrote {PREFECT_YAML}")


@cli.command("demo")
def demo_cmd() -> None:
    """Run the main jobs on embedded defaults and say where to look next."""
    state, _ = local_server.ensure_serve(detached=True)
    os.environ["PREFECT_API_URL"] = state.api_url
    from opsflow.demo import run_demo  # imports Prefect: only once the API is known

    run_demo(state)


cli.add_command(templates)


def main() -> None:
    with contextlib.suppress(BrokenPipeError):
        cli(standalone_mode=True)


if __name__ == "__main__":
    main()
