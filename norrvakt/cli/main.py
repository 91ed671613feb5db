"""The `norrvakt` command. Thin: parses options and calls the library.

Commands that read or write the data directory go through the HTTP API when a server owns
the directory, and open it themselves otherwise.
"""

from __future__ import annotations

import asyncio
import collections
import csv
import io
import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from norrvakt import __version__
from norrvakt.config import ConfigError, Settings, load_settings, settings_table

err = Console(stderr=True)


def _settings(ctx: click.Context, *, existing_data_dir: bool = True) -> Settings:
    """The settings; exits 2 when the data directory does not exist, unless the command makes
    it (``existing_data_dir=False``: `serve`, `import`) or needs none (`sources`). Opening a
    missing directory would create a stray one (a mistyped --data-dir) or end in a traceback."""
    obj: dict[str, Any] = ctx.obj
    if "settings" not in obj:
        overrides: dict[str, Any] = {}
        if obj.get("data_dir"):
            overrides["data_dir"] = obj["data_dir"]
        try:
            obj["settings"] = load_settings(obj.get("config"), overrides)
        except ConfigError as exc:
            err.print(f"[red]{exc}[/red]")
            sys.exit(2)
    settings: Settings = obj["settings"]
    if existing_data_dir and not settings.data_path.is_dir():
        from rich.markup import escape

        err.print(
            f"[red]no Norrvakt data directory at {escape(str(settings.data_path))} "
            "(run `norrvakt serve` first or pass --data-dir)[/red]"
        )
        sys.exit(2)
    return settings


class _Norrvakt(click.Group):
    """The command group; a data directory that cannot be opened — another process owns it,
    or its journal has lost its state database — is a message and exit 1 in every command,
    not a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        from norrvakt.runtime import DataDirError

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


# -- serve --------------------------------------------------------------------------------


@main.command()
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
    from norrvakt.server import serve as run_server

    logging.getLogger().setLevel(settings.log_level.upper())
    try:  # a data directory that cannot be opened is reported by the command group (_Norrvakt)
        asyncio.run(run_server(settings, demo=demo))
    except KeyboardInterrupt:
        pass


# -- import -------------------------------------------------------------------------------


@main.command("import")
@click.option("--tenant", "-t", required=True, help="Tenant the records belong to.")
@click.option(
    "--format", "fmt", type=click.Choice(["auto", "evtx", "jsonl", "text"]), default="auto", show_default=True
)
@click.option("--source", default="import", show_default=True, help="Source id shown on the events.")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.pass_context
def import_cmd(ctx: click.Context, tenant: str, fmt: str, source: str, paths: tuple[Path, ...]) -> None:
    """Import EVTX, JSONL or text log files (directories are searched recursively)."""
    from norrvakt.client import ServerClient
    from norrvakt.importer import ImportResult, encode_items, file_batches
    from norrvakt.tenant_ids import TenantIdError, exact_tenant

    settings = _settings(ctx, existing_data_dir=False)  # an import may be the first use
    try:
        exact_tenant(tenant, settings.tenants, what="--tenant")
    except TenantIdError as exc:
        err.print(f"[red]{exc}[/red]")
        sys.exit(2)
    files = _expand(paths)
    result = ImportResult()
    started = time.monotonic()
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=False,
    )
    file_task = progress.add_task("files", total=len(files))
    unit_task = progress.add_task("", total=None)

    def on_file(path: Path, total: int) -> None:
        progress.update(unit_task, description=path.name[:48], total=total or None, completed=0)

    client = ServerClient.for_data_dir(settings.data_path)
    batches = file_batches(files, tenant, source, fmt, settings.timezone, result, on_file)
    last_path: Path | None = None
    with progress:
        if client is not None:
            # Small files are sent together: one request (and one journal commit) per ~2000 records.
            pending: list[Any] = []
            for path, batch in batches:
                if last_path is not None and path != last_path:
                    progress.advance(file_task)
                last_path = path
                pending.extend(batch)
                if len(pending) >= 2000:
                    client.request(
                        "POST",
                        "/api/import",
                        params={"tenant": tenant, "source": source},
                        content=encode_items(pending),
                    )
                    pending = []
                progress.update(unit_task, completed=batch[-1].progress)
            if pending:
                client.request(
                    "POST",
                    "/api/import",
                    params={"tenant": tenant, "source": source},
                    content=encode_items(pending),
                )
            client.request("GET", "/api/import/wait", params={"timeout": 600}, timeout=700)
        else:
            asyncio.run(_import_local(settings, batches, progress, file_task, unit_task))
        progress.update(file_task, completed=len(files))
    result.seconds = time.monotonic() - started
    _print_import_summary(result)
    sys.exit(0)


async def _import_local(
    settings: Settings, batches: Any, progress: Progress, file_task: Any, unit_task: Any
) -> None:
    from norrvakt.importer import items_to_events
    from norrvakt.runtime import open_runtime

    runtime = open_runtime(settings)
    await runtime.start(with_sources=False)
    try:
        last_path = None
        # Several batches in flight, so one fsync (group commit) covers many small files.
        in_flight: collections.deque[asyncio.Future[None]] = collections.deque()
        for path, batch in batches:
            if last_path is not None and path != last_path:
                progress.advance(file_task)
            last_path = path
            in_flight.append(runtime.pipeline.commit_nowait(items_to_events(runtime.pipeline, batch)))
            while len(in_flight) > 16:
                await in_flight.popleft()
            await asyncio.sleep(0)  # let the commit loop run
            progress.update(unit_task, completed=batch[-1].progress)
        for fut in in_flight:
            await fut
        await runtime.indexer.wait_caught_up(timeout=600)
    finally:
        await runtime.close()


def _expand(paths: tuple[Path, ...]) -> list[Path]:
    """Named files as given; from directories, the files that look like logs (by extension)."""
    from norrvakt.sources.files import is_log_file_name

    files: list[Path] = []
    skipped: list[Path] = []
    for p in paths:
        if not p.is_dir():
            files.append(p)
            continue
        for f in sorted(p.rglob("*")):
            if f.is_file() and not f.name.startswith("."):
                (files if is_log_file_name(f.name) else skipped).append(f)
    if skipped:
        names = ", ".join(f.name for f in skipped[:5]) + (" …" if len(skipped) > 5 else "")
        err.print(
            f"skipping {len(skipped)} file(s) that are not log files by name: {names} "
            "(name a file explicitly to import it anyway)"
        )
    return files


def _print_import_summary(result: Any) -> None:
    colour = "yellow" if result.errors else "green"
    err.print(
        f"[{colour}]imported {result.records} records from {result.files} file(s) in {result.seconds:.2f} s "
        f"({result.records / max(result.seconds, 1e-9):,.0f}/s, searchable); "
        f"{result.errors} problem(s) kept as pipeline_error events[/{colour}]"
    )
    for problem in result.problems:
        err.print(f"  [yellow]•[/yellow] {problem}")


# -- search -------------------------------------------------------------------------------


@main.command()
@click.argument("query", default="")
@click.option("--tenant", "-t", default=None, help="Tenant(s), comma-separated (default: all you may read).")
@click.option("--since", default=None, help="Start: 15m, 2h, 7d, now-1h or an ISO time.")
@click.option("--until", default=None, help="End: same forms as --since.")
@click.option("--limit", default=50, show_default=True, type=int)
@click.option("--offset", default=0, show_default=True, type=int)
@click.option(
    "--format", "fmt", type=click.Choice(["table", "json", "ndjson"]), default="table", show_default=True
)
@click.pass_context
def search(
    ctx: click.Context,
    query: str,
    tenant: str | None,
    since: str | None,
    until: str | None,
    limit: int,
    offset: int,
    fmt: str,
) -> None:
    """Search events.

    Example: `norrvakt search 'event.code:4625 source.ip:10.0.0.0/8 | stats count by user.name'`."""
    from norrvakt.client import ApiError, ServerClient

    settings = _settings(ctx)
    params = {"q": query, "limit": limit, "offset": offset}
    for key, value in (("tenant", tenant), ("since", since), ("until", until)):
        if value:
            params[key] = value
    client = ServerClient.for_data_dir(settings.data_path)
    try:
        if client is not None:
            result = client.request("GET", "/api/search", params=params)
        else:
            result = _search_local(settings, query, tenant, since, until, limit, offset)
    except ApiError as exc:
        err.print(f"[red]{exc.detail}[/red]")
        sys.exit(2)
    except ValueError as exc:  # QueryError is a ValueError with position
        err.print(f"[red]{exc}[/red]")
        sys.exit(2)
    _print_search(result, fmt)


def _search_local(
    settings: Settings,
    query: str,
    tenant: str | None,
    since: str | None,
    until: str | None,
    limit: int,
    offset: int,
) -> dict[str, Any]:
    from norrvakt.search import run_search
    from norrvakt.store.clickhouse import StoreConfig

    # No server: read the store directly. The local operator is trusted with every tenant.
    tenants = list(settings.tenants)
    if tenant:
        wanted = [t.strip() for t in tenant.split(",")]
        unknown = [t for t in wanted if t not in tenants]
        if unknown:
            raise ValueError(f"unknown tenant(s): {', '.join(unknown)}")
        tenants = wanted
    from norrvakt.audit import audit_event
    from norrvakt.journal.log import JournalConfig
    from norrvakt.runtime import acquire_lock

    lock = acquire_lock(settings.data_path)  # searches are audited, so this process journals too
    store = StoreConfig(
        dsn=settings.store_dsn(),
        database=settings.store.database,
        retention_days=settings.store.retention_days,
    ).build()
    try:
        result = run_search(store, tenants, query, since=since, until=until, limit=limit, offset=offset)
        journal = JournalConfig(settings.data_path / "journal").build()
        actor = f"local:{os.environ.get('USER', 'unknown')}"
        details = {"query": query, "tenants": ",".join(tenants), "hits": str(result["total"]), "via": "cli"}
        journal.append_and_commit([audit_event(actor, "search", details=details)])
        journal.close()
        return result
    finally:
        store.close()
        lock.close()


def _print_search(result: dict[str, Any], fmt: str) -> None:
    rows: list[dict[str, Any]] = result.get("rows", [])
    if fmt == "json":
        click.echo(json.dumps(result, ensure_ascii=False, indent=2))
        return
    if fmt == "ndjson":
        for row in rows:
            click.echo(json.dumps(row, ensure_ascii=False))
        return
    console = Console()
    if result.get("kind") == "stats":
        table = Table(show_lines=False)
        columns = result.get("columns") or (list(rows[0]) if rows else [])
        for c in columns:
            table.add_column(c)
        for row in rows:
            table.add_row(*(str(row.get(c, "")) for c in columns))
        console.print(table)
        return
    table = Table(show_lines=False)
    for c in ("@timestamp", "tenant", "host.name", "event.code", "user.name", "source.ip", "message"):
        table.add_column(c, overflow="fold", max_width=80 if c == "message" else None)
    for row in rows:
        ecs = row.get("ecs", {})
        table.add_row(
            str(row.get("@timestamp", "")),
            str(row.get("tenant", "")),
            ecs.get("host.name", ""),
            ecs.get("event.code", ""),
            ecs.get("user.name", ""),
            ecs.get("source.ip", ""),
            str(row.get("message", "")),
        )
    console.print(table)
    err.print(f"{len(rows)} of {result.get('total', len(rows))} event(s)")


# -- config -------------------------------------------------------------------------------


@main.group()
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


# -- tokens -------------------------------------------------------------------------------


@main.group()
def tokens() -> None:
    """Ingest tokens (HEC, _bulk, JSON): each maps a sender to a tenant and a source id."""


@tokens.command("create")
@click.option("--tenant", "-t", required=True)
@click.option("--source", "-s", required=True, help="Source id shown on the events, e.g. 'lulea-winlogbeat'.")
@click.pass_context
def tokens_create(ctx: click.Context, tenant: str, source: str) -> None:
    """Create an ingest token (printed once; only its hash is stored). The tenant must be
    exactly one configured tenant."""
    from norrvakt.cli_users import call_api

    # Through the API (the server's, or in-process): the same exact-tenant check, and the
    # creation is journaled in the audit trail.
    click.echo(call_api(ctx, "POST", "/api/admin/tokens", {"tenant": tenant, "source": source})["token"])


@tokens.command("revoke")
@click.argument("token_id", type=int)
@click.pass_context
def tokens_revoke(ctx: click.Context, token_id: int) -> None:
    """Revoke an ingest or API token by its id (see `tokens list`, `tokens api`): it stops working at once."""
    from norrvakt.cli_users import call_api

    call_api(ctx, "POST", f"/api/admin/tokens/{token_id}/revoke")
    err.print(f"token {token_id} revoked")


@tokens.command("api")
@click.pass_context
def tokens_api(ctx: click.Context) -> None:
    """API tokens (the user each acts as), as CSV; never the secrets."""
    from norrvakt.cli_users import call_api
    from norrvakt.csv_safe import safe_row

    out = io.StringIO()
    writer = csv.writer(out)
    columns = ["id", "username", "name", "created_at", "revoked_at"]
    writer.writerow(columns)
    for row in call_api(ctx, "GET", "/api/admin/tokens").get("api_tokens", []):
        writer.writerow(safe_row(row[c] for c in columns))  # names are free text: no formulas
    click.echo(out.getvalue(), nl=False)


@tokens.command("list")
@click.pass_context
def tokens_list(ctx: click.Context) -> None:
    from norrvakt.csv_safe import safe_row
    from norrvakt.state.accounts import list_ingest_tokens
    from norrvakt.state.db import open_state

    settings = _settings(ctx)
    engine = open_state(settings.state_url())
    out = io.StringIO()
    writer = csv.writer(out)
    columns = ["id", "name", "tenant", "source_id", "created_at", "revoked_at"]
    writer.writerow(columns)
    for row in list_ingest_tokens(engine):
        writer.writerow(safe_row(row[c] for c in columns))  # names are free text: no formulas
    click.echo(out.getvalue(), nl=False)


def _register() -> None:
    from norrvakt.cli_alerts import COMMANDS as SOC
    from norrvakt.cli_followup import COMMANDS as FOLLOWUP
    from norrvakt.cli_integrity import COMMANDS as INTEGRITY
    from norrvakt.cli_retention import COMMANDS as RETENTION
    from norrvakt.cli_sources import COMMANDS as SOURCES
    from norrvakt.cli_users import COMMANDS as USERS
    from norrvakt.detect.cli import hunt, rules

    for command in [*INTEGRITY, *RETENTION, *SOURCES, *USERS, *SOC, *FOLLOWUP]:
        main.add_command(command)
    main.add_command(hunt, "hunt")
    main.add_command(rules, "rules")


_register()

if __name__ == "__main__":  # pragma: no cover
    main()
