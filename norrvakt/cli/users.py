"""`norrvakt users …`: people, their roles and their accounts' life (also in the console's
admin page).

Every command goes through the HTTP API — the running server's, or the same API served
in-process on the data directory when none runs — so the CLI checks exactly what the API
checks and every change is journaled in the audit trail either way.
"""

from __future__ import annotations

import csv
import io
import sys
from typing import Any
from urllib.parse import quote

import click

from norrvakt.cli.common import call_api, err

ROLE = click.Choice(["admin", "soc_analyst", "tenant_officer", "auditor"])


def _password_option(password: str | None, from_stdin: bool) -> str | None:
    if from_stdin:
        return sys.stdin.readline().rstrip("\n")
    return password


def _user(name: str) -> str:
    return "/api/admin/users/" + quote(name, safe="")


@click.group("users")
def users() -> None:
    """People who use Norrvakt: admin, soc_analyst, tenant_officer, auditor."""


@users.command("add")
@click.argument("username")
@click.option("--role", type=ROLE, required=True)
@click.option(
    "--tenant", "tenants", multiple=True, help="For tenant_officer: a tenant they may see (repeatable)."
)
@click.option("--password", default=None, help="Initial password (default: generated and printed).")
@click.option("--password-stdin", is_flag=True, help="Read the initial password from standard input.")
@click.option(
    "--must-change/--no-must-change",
    default=None,
    help="Must the password be changed at first login? Default: yes if generated, no if given.",
)
@click.pass_context
def users_add(
    ctx: click.Context,
    username: str,
    role: str,
    tenants: tuple[str, ...],
    password: str | None,
    password_stdin: bool,
    must_change: bool | None,
) -> None:
    """Create a user; a generated password is printed once (and is temporary)."""
    body: dict[str, Any] = {"username": username, "role": role, "tenants": list(tenants)}
    chosen = _password_option(password, password_stdin)
    if chosen is not None:
        body["password"] = chosen
    if must_change is not None:
        body["must_change_password"] = must_change
    made = call_api(ctx, "POST", "/api/admin/users", body)
    temporary = " — temporary: changed at first login" if made.get("must_change_password") else ""
    err.print(f"created {username} ({role}{': ' + ', '.join(tenants) if tenants else ''}){temporary}")
    if "password" in made:
        click.echo(made["password"])


@users.command("list")
@click.pass_context
def users_list(ctx: click.Context) -> None:
    """Every account as CSV: role, tenants, state, open sessions, SSO identities."""
    from norrvakt.csv_safe import safe_row

    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["username", "role", "tenants", "state", "temporary_password", "sessions", "identities"])
    for u in call_api(ctx, "GET", "/api/admin/users")["users"]:
        state = "deleted" if u["deleted"] else "disabled" if u["disabled"] else "active"
        identities = " ".join(f"{i['issuer']}#{i['subject']}" for i in u["identities"])
        writer.writerow(
            safe_row(
                [
                    u["username"],
                    u["role"],
                    ",".join(u["tenants"]),
                    state,
                    u["must_change_password"],
                    u["sessions"],
                    identities,
                ]
            )
        )
    click.echo(out.getvalue(), nl=False)


@users.command("set-password")
@click.argument("username")
@click.option("--password", default=None, help="The new password (default: generated and printed).")
@click.option("--password-stdin", is_flag=True, help="Read the new password from standard input.")
@click.option(
    "--must-change/--no-must-change",
    default=None,
    help="Must it be changed at the next login? Default: yes if generated, no if given.",
)
@click.pass_context
def users_set_password(
    ctx: click.Context, username: str, password: str | None, password_stdin: bool, must_change: bool | None
) -> None:
    """Reset someone's password (an admin's act; their sessions end). A generated one is printed
    once and is temporary. To change your own, use the console's account page."""
    body: dict[str, Any] = {}
    chosen = _password_option(password, password_stdin)
    if chosen is not None:
        body["password"] = chosen
    if must_change is not None:
        body["must_change_password"] = must_change
    done = call_api(ctx, "POST", _user(username) + "/password", body)
    err.print(f"password of {username} set" + (" (temporary)" if done["must_change_password"] else ""))
    if "password" in done:
        click.echo(done["password"])


def _simple(name: str, method: str, suffix: str, said: str, help_text: str) -> None:
    @users.command(name, help=help_text)
    @click.argument("username")
    @click.pass_context
    def command(ctx: click.Context, username: str) -> None:
        done = call_api(ctx, method, _user(username) + suffix)
        extra = f" ({done['sessions_ended']} session(s))" if "sessions_ended" in done else ""
        err.print(f"{username}: {said}{extra}")


_simple("disable", "POST", "/disable", "disabled", "No login, no API token works, every session ends.")
_simple("enable", "POST", "/enable", "enabled", "Undo `users disable`.")
_simple(
    "delete",
    "DELETE",
    "",
    "deleted",
    "Delete for good: sessions end, API tokens are revoked; the name stays reserved for the history.",
)
_simple(
    "logout", "POST", "/sessions/revoke", "logged out everywhere", "End every browser session of the user."
)


@users.command("link")
@click.argument("username")
@click.option("--issuer", required=True, help="The identity provider's issuer URL (oidc.issuer).")
@click.option(
    "--subject", required=True, help="The person's 'sub' at the provider (see the login audit record)."
)
@click.pass_context
def users_link(ctx: click.Context, username: str, issuer: str, subject: str) -> None:
    """Let a single sign-on identity log in as this local account (its role and tenants stay)."""
    done = call_api(ctx, "POST", _user(username) + "/identities", {"issuer": issuer, "subject": subject})
    before = f" (was {done['previous_user']})" if done.get("previous_user") else ""
    err.print(f"{subject} at {issuer} now logs in as {username}{before}")


@users.command("unlink")
@click.argument("username")
@click.option("--issuer", required=True)
@click.option("--subject", required=True)
@click.pass_context
def users_unlink(ctx: click.Context, username: str, issuer: str, subject: str) -> None:
    """Stop a single sign-on identity from logging in as this account."""
    call_api(ctx, "POST", _user(username) + "/identities/unlink", {"issuer": issuer, "subject": subject})
    err.print(f"{subject} at {issuer} no longer logs in as {username}")


COMMANDS = [users]
