"""`norrvakt tokens …`: ingest tokens (HEC, _bulk, JSON) and the CLI's own API token."""

from __future__ import annotations

import csv
import io

import click

from norrvakt.cli.common import err, settings_of


@click.group()
def tokens() -> None:
    """Ingest tokens (HEC, _bulk, JSON): each maps a sender to a tenant and a source id."""


@tokens.command("create")
@click.option("--tenant", "-t", required=True)
@click.option("--source", "-s", required=True, help="Source id shown on the events, e.g. 'lulea-winlogbeat'.")
@click.pass_context
def tokens_create(ctx: click.Context, tenant: str, source: str) -> None:
    """Create an ingest token (printed once; only its hash is stored). The tenant must be
    exactly one configured tenant."""
    from norrvakt.cli.common import call_api

    # Through the API (the server's, or in-process): the same exact-tenant check, and the
    # creation is journaled in the audit trail.
    click.echo(call_api(ctx, "POST", "/api/admin/tokens", {"tenant": tenant, "source": source})["token"])


@tokens.command("revoke")
@click.argument("token_id", type=int)
@click.pass_context
def tokens_revoke(ctx: click.Context, token_id: int) -> None:
    """Revoke an ingest or API token by its id (see `tokens list`, `tokens api`): it stops working at once."""
    from norrvakt.cli.common import call_api

    call_api(ctx, "POST", f"/api/admin/tokens/{token_id}/revoke")
    err.print(f"token {token_id} revoked")


@tokens.command("api")
@click.pass_context
def tokens_api(ctx: click.Context) -> None:
    """API tokens (the user each acts as), as CSV; never the secrets."""
    from norrvakt.cli.common import call_api
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

    settings = settings_of(ctx)
    engine = open_state(settings.state_url())
    out = io.StringIO()
    writer = csv.writer(out)
    columns = ["id", "name", "tenant", "source_id", "created_at", "revoked_at"]
    writer.writerow(columns)
    for row in list_ingest_tokens(engine):
        writer.writerow(safe_row(row[c] for c in columns))  # names are free text: no formulas
    click.echo(out.getvalue(), nl=False)


COMMANDS = [tokens]
