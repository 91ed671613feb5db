"""The `norrvakt` command group; each command group lives in a module of its own beside it.

Thin: parses options and calls the library.

Commands that read or write the data directory go through the HTTP API when a server owns
the directory, and open it themselves otherwise.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

import click

from norrvakt import __version__
from norrvakt.cli.common import err


class _Norrvakt(click.Group):
    """The command group; a data directory that cannot be opened — another process owns it,
    or its journal has lost its state database — is a message and exit 1 in every command,
    not a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        from norrvakt.node.runtime import DataDirError

        try:
            return super().invoke(ctx)
        except DataDirError as exc:
            err.print(f"[red]{exc}[/red]")
            sys.exit(1)


@click.group(cls=_Norrvakt)
@click.version_option(__version__, prog_name="norrvakt")
@click.option(
    "--config",
    "-c",
    type=click.Path(dir_okay=False, path_type=Path),
    envvar="NORRVAKT_CONFIG",
    help="TOML settings file (default: built-in defaults).",
)
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    envvar="NORRVAKT_DATA_DIR",
    help="Data directory (overrides data_dir in the settings).",
)
@click.option("--log-level", default=None, help="debug | info | warning | error")
@click.pass_context
def main(ctx: click.Context, config: Path | None, data_dir: Path | None, log_level: str | None) -> None:
    """Norrvakt — central log management and threat detection for the Norrbotten municipalities."""
    ctx.ensure_object(dict)
    ctx.obj["config"] = config
    ctx.obj["data_dir"] = str(data_dir) if data_dir else None
    logging.basicConfig(
        level=(log_level or "info").upper(),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


def _register() -> None:
    from norrvakt.cli import (
        alerts,
        cluster,
        config,
        directory,
        followup,
        ingest,
        integrity,
        m365,
        reports,
        retention,
        rules_content,
        rules_live,
        saved,
        search,
        serve,
        sources,
        tokens,
        users,
    )
    from norrvakt.detect.cli import hunt, rules

    for module in (
        serve,
        ingest,
        search,
        saved,
        config,
        tokens,
        integrity,
        retention,
        sources,
        users,
        alerts,
        followup,
        reports,
        cluster,
        m365,
        directory,
    ):
        for command in module.COMMANDS:
            main.add_command(command)
    main.add_command(hunt, "hunt")
    rules_content.attach(rules)  # norrvakt rules update | import | versions | use | diff
    rules_live.attach(rules)  # norrvakt rules live
    main.add_command(rules, "rules")


_register()
