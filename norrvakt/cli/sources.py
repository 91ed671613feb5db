"""`norrvakt sources …`: the source types Norrvakt understands, and checking a mapping file."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from norrvakt.cli.common import err, settings_of


@click.group("sources")
def sources() -> None:
    """Source types: built-in parsers and mapping files (docs/sources.md)."""


@sources.command("list")
@click.pass_context
def sources_list(ctx: click.Context) -> None:
    """The mapped source types in use (built-in and from mapping_dirs)."""
    from norrvakt.parsers.mapped import BUILTIN_DIR, load_mappings

    settings = settings_of(ctx, existing_data_dir=False)  # built-in and configured mappings only
    mappings, problems = load_mappings([BUILTIN_DIR, *settings.mapping_paths()])
    table = Table(title="mapped source types")
    for col in ("id", "title", "dataset", "file"):
        table.add_column(col)
    for m in mappings:
        table.add_row(m.id, m.title, m.dataset, m.path)
    Console().print(table)
    for p in problems:
        err.print(f"[red]{p}[/red]")
    sys.exit(1 if problems else 0)


@sources.command("check")
@click.argument("mapping_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--sample", "samples", multiple=True, help="A sample line to parse with it (repeatable).")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["syslog", "json", "text", "hec"]),
    default="syslog",
    help="How the sample arrives.",
)
def sources_check(mapping_file: Path, samples: tuple[str, ...], fmt: str) -> None:
    """Validate a mapping file and show what it makes of sample lines."""
    from norrvakt.event import RawRecord, now_us
    from norrvakt.parsers import parse_record
    from norrvakt.parsers.mapped import BUILTIN_DIR, MappingError, load_mapping
    from norrvakt.parsers.mapped import sources as active

    try:
        mapping = load_mapping(mapping_file)
    except MappingError as exc:
        err.print(f"[red]{exc}[/red]")
        sys.exit(2)
    err.print(f"[green]{mapping_file}: valid mapping {mapping.id!r} → {mapping.dataset}[/green]")
    active.use([BUILTIN_DIR, mapping_file.parent])
    failed = False
    for line in samples:
        event = parse_record(
            RawRecord("lulea", "check", now_us(), "127.0.0.1:0", line.encode(), fmt, "Europe/Stockholm")
        )
        claimed = event.ecs.get("event.module") == mapping.id
        failed = failed or not claimed
        err.print(
            ("[green]claimed[/green]" if claimed else "[red]NOT claimed by this mapping[/red]")
            + f": {line[:80]}"
        )
        click.echo(
            json.dumps(
                {"ecs": event.ecs, "fields": event.fields, "message": event.message},
                ensure_ascii=False,
                indent=2,
            )
        )
    sys.exit(1 if failed else 0)


COMMANDS = [sources]
