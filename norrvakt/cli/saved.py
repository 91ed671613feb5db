"""`norrvakt saved …`: saved searches — list, run, save, delete — through the HTTP API (the running
server's, or the same API in-process on the data directory), so scoping and audit are the API's.

    norrvakt saved list
    norrvakt saved run "Failed logons Luleå"            # by name (or id)
    norrvakt saved save "SSH brute force" \\
        'event.dataset:sshd "Failed password" | count > 20 in 5m by source.ip' \\
        --tenant lulea --visibility tenant --schedule 1m --level high
"""

from __future__ import annotations

from typing import Any

import click
from rich.console import Console
from rich.table import Table

from norrvakt.cli.common import call_api, err, print_json, when

FORMAT = click.option(
    "--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True
)


@click.group("saved")
def saved() -> None:
    """Saved searches: private, shared with a municipality or region-wide; scheduled ones are alert rules."""


@saved.command("list")
@click.option("--scheduled/--all", default=False, help="Only scheduled searches (alert rules).")
@FORMAT
@click.pass_context
def saved_list(ctx: click.Context, scheduled: bool, fmt: str) -> None:
    """The saved searches you may see."""
    result = call_api(ctx, "GET", "/api/saved-searches", params={"scheduled": "true" if scheduled else None})
    if fmt == "json":
        print_json(result)
        return
    table = Table()
    for c in ("id", "name", "visibility", "tenant", "owner", "schedule", "last run", "last result", "query"):
        table.add_column(c, overflow="fold")
    for s in result["searches"]:
        table.add_row(
            str(s["id"]),
            s["name"],
            s["visibility"],
            s["tenant"],
            s["owner"],
            s["schedule"] or "–",
            when(s["last_run_at"]),
            (s["last_status"] + ": " if s["last_status"] else "") + s["last_result"],
            s["query"],
        )
    Console().print(table)
    err.print(f"{result['total']} saved search(es)")


def _find(ctx: click.Context, name: str) -> dict[str, Any]:
    """The saved search named ``name`` (or with that id) among those you see: yours first."""
    found: list[dict[str, Any]] = call_api(ctx, "GET", "/api/saved-searches")["searches"]
    if name.isdigit():
        by_id = [s for s in found if s["id"] == int(name)]
        if by_id:
            return by_id[0]
    named = [s for s in found if s["name"] == name] or [s for s in found if s["name"].lower() == name.lower()]
    mine = [s for s in named if s["mine"]]
    if len(mine) == 1 or len(named) == 1:
        return (mine or named)[0]
    if not named:
        err.print(f"[red]no saved search named {name!r} (see `norrvakt saved list`)[/red]")
    else:
        ids = ", ".join(str(s["id"]) for s in named)
        err.print(f"[red]several saved searches are named {name!r} (ids {ids}): give the id[/red]")
    raise SystemExit(2)


@saved.command("run")
@click.argument("name")
@click.option("--tenant", "-t", default=None, help="Narrow a region-wide search to these tenants.")
@click.option("--limit", default=50, show_default=True, type=int)
@click.option(
    "--format", "fmt", type=click.Choice(["table", "json", "ndjson"]), default="table", show_default=True
)
@click.pass_context
def saved_run(ctx: click.Context, name: str, tenant: str | None, limit: int, fmt: str) -> None:
    """Run a saved search by name or id (audited as a search, like the console's)."""
    from norrvakt.cli.search import _print_search

    found = _find(ctx, name)
    result = call_api(
        ctx, "POST", f"/api/saved-searches/{found['id']}/run", {"limit": limit, "tenant": tenant}
    )
    _print_search(result, fmt)
    rule = result.get("rule")
    if rule is not None and fmt == "table":
        verdict = "fires now" if rule["fires"] else "nothing meets it now"
        err.print(f"rule {rule['text']}: {verdict} ({len(rule['groups'])} group(s))")


@saved.command("save")
@click.argument("name")
@click.argument("query")
@click.option("--description", default="", help="What it is for.")
@click.option("--since", default="24h", show_default=True, help="Time range start: 15m, 24h, 7d, a date.")
@click.option("--until", default="", help="Time range end (default now).")
@click.option(
    "--visibility",
    type=click.Choice(["private", "tenant", "region"]),
    default="private",
    show_default=True,
    help="Only you, shared with the tenant, or region-wide (SOC).",
)
@click.option("--tenant", "-t", default=None, help="The tenant it is for (default your only one).")
@click.option(
    "--schedule", default=None, help="Run every 1m, 5m, 1h … as an alert rule (query ends in a rule step)."
)
@click.option("--level", default="medium", show_default=True, help="The alerts' level (scheduled searches).")
@FORMAT
@click.pass_context
def saved_save(
    ctx: click.Context,
    name: str,
    query: str,
    description: str,
    since: str,
    until: str,
    visibility: str,
    tenant: str | None,
    schedule: str | None,
    level: str,
    fmt: str,
) -> None:
    """Save a search (with --schedule and a rule step: a scheduled search, an alert rule)."""
    body = {
        "name": name,
        "query": query,
        "description": description,
        "since": since,
        "until": until,
        "visibility": visibility,
        "tenant": tenant,
        "schedule": schedule,
        "level": level,
    }
    made = call_api(ctx, "POST", "/api/saved-searches", body)
    if fmt == "json":
        print_json(made)
        return
    what = f"scheduled every {made['schedule']} as {made['rule_id']}" if made["scheduled"] else "saved"
    err.print(f"saved search {made['id']} ({made['name']}): {what}")


@saved.command("delete")
@click.argument("name")
@click.pass_context
def saved_delete(ctx: click.Context, name: str) -> None:
    """Delete a saved search by name or id (a scheduled one stops raising alerts)."""
    found = _find(ctx, name)
    call_api(ctx, "DELETE", f"/api/saved-searches/{found['id']}")
    err.print(f"deleted saved search {found['id']} ({found['name']})")


COMMANDS = [saved]
