"""`norrvakt m365 …`: the Microsoft 365 connectors' credentials and status."""

from __future__ import annotations

import getpass
import sys
from pathlib import Path

import click

from norrvakt.cli.common import err, settings_of


@click.group()
def m365() -> None:
    """Microsoft 365 / Entra ID connectors (sources of type m365)."""


@m365.command("set-credential")
@click.option("--connector", "-c", required=True, help="The source id of the m365 connector.")
@click.option(
    "--secret-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="File with the client secret; '-' = stdin.",
)
@click.option(
    "--certificate-file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="PEM file with the private key and the certificate uploaded to the app registration.",
)
@click.pass_context
def set_credential(
    ctx: click.Context, connector: str, secret_file: Path | None, certificate_file: Path | None
) -> None:
    """Store a connector's client secret or certificate, encrypted with the data directory's
    key (never on the command line: from a file or stdin). The running connector uses it at
    its next pull."""
    from norrvakt.sources.m365.credentials import Credential, CredentialBox, CredentialError
    from norrvakt.state.db import open_state
    from norrvakt.state.m365 import save_credential

    settings = settings_of(ctx)
    found = [s for s in settings.sources if s.id == connector and s.type == "m365"]
    if not found:
        err.print(f"[red]no source of type m365 with id {connector!r} in the configuration[/red]")
        sys.exit(2)
    if (secret_file is None) == (certificate_file is None):
        err.print("[red]give exactly one of --secret-file and --certificate-file[/red]")
        sys.exit(2)
    try:
        if certificate_file is not None:
            cred = Credential.from_pem(certificate_file.read_bytes())
        elif str(secret_file) == "-":
            text = getpass.getpass("client secret: ") if sys.stdin.isatty() else sys.stdin.read()
            cred = Credential.from_secret(text)
        else:
            assert secret_file is not None
            cred = Credential.from_secret(secret_file.read_text())
        tenant = found[0].tenant
        blob = CredentialBox.open(settings.data_path).seal(connector, tenant, cred)
    except (CredentialError, OSError) as exc:
        err.print(f"[red]{exc}[/red]")
        sys.exit(1)
    engine = open_state(settings.state_url())
    try:
        save_credential(engine, connector, tenant, cred.kind, blob, by=f"cli:{getpass.getuser()}")
    finally:
        engine.dispose()
    err.print(
        f"{cred.kind} stored for {connector} (tenant {tenant}), "
        f"encrypted with the key in {settings.data_path}"
    )


COMMANDS = [m365]
