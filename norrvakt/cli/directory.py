"""`norrvakt directory sync`: a municipality's AD users and groups into the state database."""

from __future__ import annotations

import getpass
import os
import sys
from pathlib import Path

import click

from norrvakt.cli.common import err, settings_of


@click.group()
def directory() -> None:
    """Directory accounts for alert context (docs/enrichment.md)."""


@directory.command("sync")
@click.option("--tenant", "-t", required=True, help="The tenant whose directory this is.")
@click.option("--url", required=True, help="ldaps://host[:port] of a domain controller.")
@click.option("--base-dn", required=True, help="Where users and groups are searched, e.g. DC=lulea,DC=se.")
@click.option("--bind-dn", required=True, help="The read account Norrvakt binds as.")
@click.option(
    "--password-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="File with the bind password; '-' = stdin. Default: NORRVAKT_DIRECTORY_PASSWORD or a prompt.",
)
@click.option("--ca-file", default="", help="PEM file of the CA that signed the DC's certificate.")
@click.option("--tls-name", default="", help="The name in the DC's certificate, when --url has an address.")
@click.pass_context
def sync(
    ctx: click.Context,
    tenant: str,
    url: str,
    base_dn: str,
    bind_dn: str,
    password_file: Path | None,
    ca_file: str,
    tls_name: str,
) -> None:
    """Read every user and group and store the accounts: privileged (enrich.privileged_groups of
    the tenant and of "*"), disabled, departed. The password is used for this bind only: it is
    never stored or printed."""
    from norrvakt.enrich.directory import DirectoryConfig, DirectoryError
    from norrvakt.state.db import open_state

    settings = settings_of(ctx)
    if tenant not in settings.tenants:
        err.print(f"[red]unknown tenant {tenant!r}; one of {', '.join(settings.tenants)}[/red]")
        sys.exit(2)
    if password_file is not None:
        password = (sys.stdin.read() if str(password_file) == "-" else password_file.read_text()).strip()
    else:
        password = os.environ.get("NORRVAKT_DIRECTORY_PASSWORD") or getpass.getpass(
            f"password of {bind_dn}: "
        )
    groups = settings.enrich.privileged_groups
    config = DirectoryConfig(
        url=url,
        base_dn=base_dn,
        bind_dn=bind_dn,
        ca_file=ca_file,
        tls_name=tls_name,
        privileged_groups=(*groups.get("*", []), *groups.get(tenant, [])),
    )
    engine = open_state(settings.state_url())
    try:
        counts = config.build().sync(engine, tenant, password)
    except DirectoryError as exc:
        err.print(f"[red]{exc}[/red]")
        sys.exit(1)
    finally:
        engine.dispose()
    click.echo(
        f"{tenant}: {counts['accounts']} accounts, {counts['privileged']} privileged, "
        f"{counts['disabled']} disabled, {counts['departed']} departed"
    )


COMMANDS = [directory]
