"""`norrvakt users …`: people and their roles (also in the console's admin pages)."""

from __future__ import annotations

import sys
from typing import Any

import click
from rich.console import Console

err = Console(stderr=True)


def _engine(ctx: click.Context) -> Any:
    from norrvakt.cli import _settings
    from norrvakt.state.db import open_state

    settings = _settings(ctx)
    return settings, open_state(settings.state_url())


@click.group("users")
def users() -> None:
    """People who use Norrvakt: admin, soc_analyst, tenant_officer, auditor."""


@users.command("add")
@click.argument("username")
@click.option(
    "--role", type=click.Choice(["admin", "soc_analyst", "tenant_officer", "auditor"]), required=True
)
@click.option(
    "--tenant", "tenants", multiple=True, help="For tenant_officer: a tenant they may see (repeatable)."
)
@click.option("--password", default=None, help="Initial password (default: generated and printed).")
@click.pass_context
def users_add(
    ctx: click.Context, username: str, role: str, tenants: tuple[str, ...], password: str | None
) -> None:
    """Create a user; the password is printed once when generated."""
    from norrvakt.auth.passwords import new_password
    from norrvakt.state.accounts import create_user, user_exists

    settings, engine = _engine(ctx)
    unknown = [t for t in tenants if t not in settings.tenants]
    if unknown:
        err.print(f"[red]unknown tenant(s): {', '.join(unknown)}[/red]")
        sys.exit(2)
    if role == "tenant_officer" and not tenants:
        err.print("[red]a tenant_officer needs at least one --tenant[/red]")
        sys.exit(2)
    if user_exists(engine, username):
        err.print(f"[red]user {username!r} exists already[/red]")
        sys.exit(2)
    secret = password or new_password()
    create_user(engine, username, secret, role, list(tenants))
    err.print(f"created {username} ({role}{': ' + ', '.join(tenants) if tenants else ''})")
    if password is None:
        click.echo(secret)


COMMANDS = [users]
