"""`norrvakt search`: the same search as the console's, through the server or on the data directory."""

from __future__ import annotations

import json
import os
import sys
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from norrvakt.cli.common import err, settings_of
from norrvakt.config import Settings


@click.command()
@click.argument("query", default="")
@click.option("--tenant", "-t", default=None, help="Tenant(s), comma-separated (default: all you may read).")
@click.option("--since", default=None, help="Start: 15m, 2h, 7d, now-1h or an ISO time.")
@click.option("--until", default=None, help="End: same forms as --since.")
@click.option("--limit", default=50, show_default=True, type=int)
@click.option("--offset", default=0, show_default=True, type=int)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "json", "ndjson", "csv"]),
    default="table",
    show_default=True,
    help="csv / ndjson: the whole result (not --limit), streamed, up to search.export_max_rows/_bytes.",
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

    Example: `norrvakt search 'event.code:4625 source.ip:10.0.0.0/8 | stats count by user.name'`;
    `norrvakt search 'event.code:4625' --since 7d --format csv > failed-logons.csv` exports."""
    from norrvakt.client import ApiError, ServerClient

    settings = settings_of(ctx)
    params: dict[str, Any] = {"q": query, "limit": limit, "offset": offset}
    for key, value in (("tenant", tenant), ("since", since), ("until", until)):
        if value:
            params[key] = value
    client = ServerClient.for_data_dir(settings.data_path)
    try:
        if fmt in ("csv", "ndjson"):
            from norrvakt.cli.search_export import export_local, export_remote

            if client is not None:
                export_remote(client, {**params, "format": fmt})
            else:
                export_local(settings, query, tenant, since, until, fmt)
            return
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
    # No server: read the store directly. The local operator is trusted with every tenant.
    from norrvakt.cli.search_export import local_tenants
    from norrvakt.search import run_search
    from norrvakt.store.clickhouse import StoreConfig

    tenants = local_tenants(settings, tenant)
    from norrvakt.audit import audit_event
    from norrvakt.journal.log import JournalConfig
    from norrvakt.node.runtime import acquire_lock

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
    if result.get("kind") in ("stats", "timechart"):
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


COMMANDS = [search]
