"""`norrvakt retention …` and `norrvakt archive …`."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from norrvakt.cli.common import err, settings_of


def _actor() -> str:
    return f"local:{os.environ.get('USER', 'unknown')}"


def _run(
    ctx: click.Context,
    method: str,
    path: str,
    payload: dict[str, Any] | None,
    local: Callable[[Any], Awaitable[Any]],
    params: dict[str, Any] | None = None,
) -> Any:
    """Through the server's API when one runs, else on the data directory directly."""
    from norrvakt.client import ApiError, ServerClient

    settings = settings_of(ctx)
    client = ServerClient.for_data_dir(settings.data_path)
    try:
        if client is not None:
            return client.request(method, path, json=payload, params=params)
        return asyncio.run(_local(settings, local))
    except ApiError as exc:
        err.print(f"[red]{exc.detail}[/red]")
        sys.exit(2)
    except Exception as exc:
        from norrvakt.journal.archive import ArchiveError
        from norrvakt.journal.retention import RetentionError

        if isinstance(exc, RetentionError | ArchiveError | ValueError):
            err.print(f"[red]{exc}[/red]")
            sys.exit(2)
        raise


async def _local(settings: Any, fn: Callable[[Any], Awaitable[Any]]) -> Any:
    from norrvakt.node.runtime import open_runtime

    rt = open_runtime(settings)
    await rt.start(with_sources=False)
    try:
        return await fn(rt)
    finally:
        await rt.close()


def _date(us: int) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(us / 1e6)) if us else "-"


@click.group("retention")
def retention() -> None:
    """What may be disposed of, disposal decisions and legal holds."""


@retention.command("plan")
@click.option("--tenant", "-t", default=None)
@click.pass_context
def retention_plan(ctx: click.Context, tenant: str | None) -> None:
    """Segments per tenant: range, age, when they expire and under which rule, what blocks them."""
    from norrvakt.node import lifecycle

    async def local(rt: Any) -> Any:
        tenants = [tenant] if tenant else rt.journal.tenants()
        return {"segments": lifecycle.plan(rt, tenants, time.time_ns() // 1000)}

    result = _run(ctx, "GET", "/api/retention/plan", None, local, {"tenant": tenant} if tenant else None)
    table = Table(title="retention plan")
    for c in ("tenant", "seq", "received", "kept until", "rule", "status"):
        table.add_column(c)
    for s in result["segments"]:
        status = (
            "open"
            if s["open"]
            else f"hold {','.join(s['holds'])}"
            if s["holds"]
            else "[green]may be disposed of[/green]"
            if s["eligible"]
            else "kept"
        )
        table.add_row(
            s["tenant"],
            f"{s['first_seq']}..{s['last_seq']}",
            f"{_date(s['oldest'])}..{_date(s['newest'])}",
            _date(s["expires"]),
            s["rule"],
            status,
        )
    Console().print(table)


@retention.command("dispose")
@click.option("--tenant", "-t", required=True)
@click.option("--up-to-seq", required=True, type=int, help="Last seq to delete (must end a segment).")
@click.option("--reason", required=True, help="The disposal decision (e.g. a board decision reference).")
@click.pass_context
def retention_dispose(ctx: click.Context, tenant: str, up_to_seq: int, reason: str) -> None:
    """Record a signed disposal decision, then delete the expired segments it covers."""
    from norrvakt.node import lifecycle

    result = _run(
        ctx,
        "POST",
        "/api/retention/dispose",
        {"tenant": tenant, "up_to_seq": up_to_seq, "reason": reason},
        lambda rt: lifecycle.dispose_range(rt, tenant, up_to_seq, _actor(), reason),
    )
    err.print(
        f"disposed of {tenant} seq {result['first_seq']}..{result['last_seq']} ({result['rule']}); "
        "the decision is signed and journaled"
    )


@retention.command("hold")
@click.option("--tenant", "-t", required=True)
@click.option("--reason", required=True)
@click.option("--since", default=None, help="Only records received from this time.")
@click.option("--until", default=None, help="Only records received until this time.")
@click.pass_context
def retention_hold(
    ctx: click.Context, tenant: str, reason: str, since: str | None, until: str | None
) -> None:
    """Place a legal hold: nothing it covers can be disposed of until it is released."""
    from norrvakt.node import lifecycle
    from norrvakt.store.query import parse_time

    now = time.time_ns() // 1000
    result = _run(
        ctx,
        "POST",
        "/api/retention/holds",
        {"tenant": tenant, "reason": reason, "since": since, "until": until},
        lambda rt: lifecycle.place_hold(
            rt,
            tenant,
            reason,
            _actor(),
            parse_time(since, now) if since else None,
            parse_time(until, now) if until else None,
        ),
    )
    err.print(f"legal hold {result['id']} placed on {tenant}")


@retention.command("release")
@click.argument("hold_id")
@click.pass_context
def retention_release(ctx: click.Context, hold_id: str) -> None:
    from norrvakt.node import lifecycle

    _run(
        ctx,
        "POST",
        f"/api/retention/holds/{hold_id}/release",
        None,
        lambda rt: lifecycle.release_hold(rt, hold_id, _actor()),
    )
    err.print(f"legal hold {hold_id} released")


@click.group("archive")
def archive() -> None:
    """BagIt packages for the e-archive."""


@archive.command("export")
@click.option("--tenant", "-t", required=True)
@click.option("--until", required=True, help="Records received up to this time (ISO date/time, 30d, …).")
@click.argument("out_dir", type=click.Path(file_okay=False, path_type=Path))
@click.pass_context
def archive_export(ctx: click.Context, tenant: str, until: str, out_dir: Path) -> None:
    """Write the tenant's records, checkpoints and public keys as a BagIt package."""
    from norrvakt.node import lifecycle
    from norrvakt.store.query import parse_time

    out = out_dir.resolve()
    result = _run(
        ctx,
        "POST",
        "/api/archive/export",
        {"tenant": tenant, "until": until, "out_dir": str(out)},
        lambda rt: lifecycle.archive_export(
            rt, tenant, parse_time(until, time.time_ns() // 1000), out, _actor()
        ),
    )
    err.print(
        f"archived {tenant} seq {result['first_seq']}..{result['last_seq']} ({result['count']} records) "
        f"to {out}"
    )


@archive.command("verify")
@click.argument("bag", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--pubkey", "pubkeys", multiple=True, help="Trusted public key (hex, PEM or a file).")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table")
def archive_verify(bag: Path, pubkeys: tuple[str, ...], fmt: str) -> None:
    """Check a package offline: bag checksums, records, Merkle roots, signatures, chain."""
    from norrvakt.journal.archive import verify

    pinned = [Path(p).read_text() if Path(p).exists() else p for p in pubkeys]
    report = verify(bag, pinned or None)
    if fmt == "json":
        click.echo(json.dumps({"ok": report.ok, "checks": report.checks}, indent=2))
    else:
        for what, passed, detail in report.checks:
            err.print(
                f"  {'[green]✓[/green]' if passed else '[red]✗[/red]'} {what}"
                + (f" — {detail}" if detail else "")
            )
        err.print("[green]VALID package[/green]" if report.ok else "[red]INVALID package[/red]")
    sys.exit(0 if report.ok else 1)


COMMANDS = [retention, archive]
