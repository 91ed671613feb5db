"""Active Directory over LDAPS: disable and re-enable an account, force a password change.

    ad = AdResponderConfig(url="ldaps://dc1.lulea.se", base_dn="DC=lulea,DC=se",
                           bind_dn="CN=svc.norrvakt,OU=Service,DC=lulea,DC=se", password="…",
                           ca_file="/etc/norrvakt/lulea-ca.pem").build()
    await ad.run(ActionRequest(1, "lulea", "ad.disable", "anna.berg"))
    → Outcome(ok=True, detail="CN=anna.berg,…: userAccountControl 512 → 514 (disabled), read back")

The account is found by ``sAMAccountName`` (or ``userPrincipalName`` when the target has an @).
Disable and enable flip ACCOUNTDISABLE (0x2) in ``userAccountControl``; a forced change sets
``pwdLastSet`` to 0 (the user must change the password at the next logon). Every change is read
back and the answer says what the directory now holds. Members of the protected groups (Domain
Admins …) are refused: locking out the administrators is not an analyst's one-click action.
The bind account needs only delegated rights on users (Account Operators or an OU delegation).
A dry run binds and looks the account up, and says what it would change.

ldap3 is synchronous: each action runs in a worker thread, with connect and receive timeouts.
"""

from __future__ import annotations

import asyncio
import math
import re
import ssl
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import ldap3
from ldap3.core.exceptions import LDAPException, LDAPSocketOpenError, LDAPSocketReceiveError
from ldap3.utils.conv import escape_filter_chars

from norrvakt.respond.base import ActionRequest, Outcome

ACCOUNTDISABLE = 0x2
_ACCOUNT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@$-]{0,255}$")


@dataclass(frozen=True)
class AdResponderConfig:
    """One tenant's directory (from a ``[[response.ad]]`` table plus its stored password)."""

    url: str
    base_dn: str
    bind_dn: str
    password: str = field(repr=False)
    ca_file: str = ""
    tls_name: str = ""
    timeout_s: float = 10.0
    protected_groups: tuple[str, ...] = (
        "Domain Admins",
        "Enterprise Admins",
        "Schema Admins",
        "Administrators",
    )

    def build(self) -> AdResponder:
        return AdResponder(self)


class AdResponder:
    actions: tuple[str, ...] = ("ad.disable", "ad.enable", "ad.force_password_change")

    def __init__(self, config: AdResponderConfig) -> None:
        self.config = config
        parts = urlsplit(config.url)
        if parts.scheme != "ldaps" or not parts.hostname:
            raise ValueError(f"{config.url!r}: ldaps://host[:port] (passwords never go over plain LDAP)")
        self.host = parts.hostname
        self.port = parts.port or 636

    async def run(self, req: ActionRequest) -> Outcome:
        return await asyncio.to_thread(self._run, req.action, req.target, req.dry_run)

    async def undo(self, req: ActionRequest) -> Outcome:
        if req.action != "ad.disable":
            return Outcome(False, f"{req.action} cannot be undone in the directory")
        return await asyncio.to_thread(self._run, "ad.enable", req.target, False)

    # -- in a worker thread ------------------------------------------------------------------------

    def _server(self) -> ldap3.Server:
        tls = ldap3.Tls(
            validate=ssl.CERT_REQUIRED,
            ca_certs_file=self.config.ca_file or None,
            valid_names=[self.config.tls_name] if self.config.tls_name else None,
        )
        # get_info=NONE: ldap3 would read the whole schema at every bind (hundreds of ms on AD)
        return ldap3.Server(
            self.host,
            port=self.port,
            use_ssl=True,
            tls=tls,
            connect_timeout=self.config.timeout_s,
            get_info=ldap3.NONE,
        )

    def _run(self, action: str, target: str, dry_run: bool) -> Outcome:
        where = f"LDAPS {self.host}:{self.port}"
        if not _ACCOUNT.fullmatch(target):
            return Outcome(False, f"{target!r} is not an account name (sAMAccountName or UPN)")
        conn = ldap3.Connection(
            self._server(),
            self.config.bind_dn,
            self.config.password,
            receive_timeout=max(1, math.ceil(self.config.timeout_s)),  # ldap3 packs it as an integer
            raise_exceptions=False,
        )
        try:
            try:
                if not conn.bind():
                    return Outcome(False, f"{where}: bind as {self.config.bind_dn} refused: {_said(conn)}")
            except (LDAPSocketOpenError, LDAPSocketReceiveError) as exc:
                return Outcome(False, f"{where}: not reachable: {exc}", retry=True)
            return self._act(conn, action, target, dry_run)
        except LDAPException as exc:
            return Outcome(False, f"{where}: {type(exc).__name__}: {exc}", retry=True)
        finally:
            conn.unbind()

    def _find(self, conn: ldap3.Connection, target: str) -> dict[str, Any] | None:
        attr = "userPrincipalName" if "@" in target else "sAMAccountName"
        conn.search(
            self.config.base_dn,
            f"(&(objectClass=user)({attr}={escape_filter_chars(target)}))",
            attributes=["userAccountControl", "pwdLastSet", "memberOf", "distinguishedName"],
            size_limit=2,
        )
        if len(conn.entries) != 1:
            return None
        entry = conn.entries[0]
        return {
            "dn": entry.entry_dn,
            "uac": int(entry.userAccountControl.value),
            "pwd_last_set": str(entry.pwdLastSet.value),
            "groups": [str(g) for g in entry.memberOf.values] if "memberOf" in entry else [],
        }

    def _act(self, conn: ldap3.Connection, action: str, target: str, dry_run: bool) -> Outcome:
        found = self._find(conn, target)
        if found is None:
            return Outcome(False, f"no single account {target!r} under {self.config.base_dn}")
        dn, uac = found["dn"], found["uac"]
        protected = [g for g in found["groups"] if _cn(g) in self.config.protected_groups]
        if protected and action != "ad.enable":
            return Outcome(
                False, f"{dn} is in {', '.join(_cn(g) for g in protected)}: Norrvakt does not change it"
            )
        if action in ("ad.disable", "ad.enable"):
            new = uac | ACCOUNTDISABLE if action == "ad.disable" else uac & ~ACCOUNTDISABLE
            word = "disabled" if action == "ad.disable" else "enabled"
            if dry_run:
                return Outcome(True, f"dry run: {dn}: would set userAccountControl {uac} → {new} ({word})")
            if not conn.modify(dn, {"userAccountControl": [(ldap3.MODIFY_REPLACE, [str(new)])]}):  # type: ignore[no-untyped-call]
                return Outcome(False, f"{dn}: the directory refused: {_said(conn)}", retry=_busy(conn))
            after = self._find(conn, target)
            now = after["uac"] if after else None
            if now != new:
                return Outcome(False, f"{dn}: userAccountControl reads {now} after the change, not {new}")
            return Outcome(True, f"{dn}: userAccountControl {uac} → {now} ({word}), read back")
        if action == "ad.force_password_change":
            if dry_run:
                return Outcome(True, f"dry run: {dn}: would set pwdLastSet {found['pwd_last_set']} → 0")
            if not conn.modify(dn, {"pwdLastSet": [(ldap3.MODIFY_REPLACE, ["0"])]}):  # type: ignore[no-untyped-call]
                return Outcome(False, f"{dn}: the directory refused: {_said(conn)}", retry=_busy(conn))
            conn.search(dn, "(objectClass=user)", ldap3.BASE, attributes=["pwdLastSet"])
            raw = conn.entries[0].pwdLastSet.raw_values if conn.entries else []
            if raw != [b"0"]:
                return Outcome(False, f"{dn}: pwdLastSet reads {raw!r} after the change, not 0")
            return Outcome(True, f"{dn}: pwdLastSet → 0 (must change the password at next logon), read back")
        return Outcome(False, f"{action}: not an Active Directory action")


def _cn(dn: str) -> str:
    first = dn.split(",", 1)[0]
    return first[3:] if first.upper().startswith("CN=") else first


def _said(conn: ldap3.Connection) -> str:
    r = conn.result or {}
    return f"{r.get('description', '')} {str(r.get('message', ''))[:200]}".strip()


def _busy(conn: ldap3.Connection) -> bool:
    return (conn.result or {}).get("description") in ("busy", "unavailable", "timeLimitExceeded")
