"""`norrvakt config …`: check a settings file, list every setting and its default."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from norrvakt.cli.common import err
from norrvakt.config import ConfigError, load_settings, settings_table


@click.group()
def config() -> None:
    """Check settings and list the defaults."""


@config.command("check")
@click.argument("path", type=click.Path(path_type=Path), required=False)
@click.pass_context
def config_check(ctx: click.Context, path: Path | None) -> None:
    """Validate a settings file; every problem is reported at once."""
    try:
        load_settings(path or ctx.obj.get("config"))
    except ConfigError as exc:
        err.print(f"[red]{exc}[/red]")
        sys.exit(2)
    err.print("[green]settings are valid[/green]")


@config.command("defaults")
@click.option("--format", "fmt", type=click.Choice(["table", "markdown"]), default="table")
def config_defaults(fmt: str) -> None:
    """Every setting with its default and what it does."""
    rows = settings_table()
    if fmt == "markdown":
        out = io.StringIO()
        out.write("| setting | default | meaning |\n|---|---|---|\n")
        for key, default, doc in rows:
            out.write(f"| `{key}` | `{default}` | {doc} |\n")
        click.echo(out.getvalue(), nl=False)
        return
    table = Table()
    for c in ("setting", "default", "meaning"):
        table.add_column(c, overflow="fold")
    for row in rows:
        table.add_row(*row)
    Console().print(table)


COMMANDS = [config]
