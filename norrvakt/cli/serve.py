"""`norrvakt serve`: the node — pipeline, listeners, detection and the web console."""

from __future__ import annotations

import asyncio
import logging
import sys
from typing import Any

import click

from norrvakt.cli.common import err
from norrvakt.config import ConfigError, load_settings


@click.command()
@click.option(
    "--demo", is_flag=True, help="Generate realistic traffic for all tenants, attack stories included."
)
@click.option("--host", default=None, help="Address of the web/API server (overrides server.host).")
@click.option("--port", type=int, default=None, help="Port of the web/API server (overrides server.port).")
@click.pass_context
def serve(ctx: click.Context, demo: bool, host: str | None, port: int | None) -> None:
    """Run the pipeline, the listeners and the web console."""
    overrides: dict[str, Any] = {}
    if host:
        overrides["server.host"] = host
    if port:
        overrides["server.port"] = port
    if ctx.obj.get("data_dir"):
        overrides["data_dir"] = ctx.obj["data_dir"]
    try:
        settings = load_settings(ctx.obj.get("config"), overrides)
    except ConfigError as exc:
        err.print(f"[red]{exc}[/red]")
        sys.exit(2)
    from norrvakt.node.server import serve as run_server

    logging.getLogger().setLevel(settings.log_level.upper())
    try:  # a data directory that cannot be opened is reported by the command group (_Norrvakt)
        asyncio.run(run_server(settings, demo=demo))
    except KeyboardInterrupt:
        pass


COMMANDS = [serve]
