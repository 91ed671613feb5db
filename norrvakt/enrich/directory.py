"""A municipality's Active Directory users and groups over LDAPS (ldap3), for alert context.

    DirectoryConfig(url="ldaps://dc1.lulea.kommun.local", base_dn="DC=lulea,DC=kommun,DC=local",
                    bind_dn="CN=svc.norrvakt,OU=Service,DC=lulea,DC=kommun,DC=local",
                    ca_file="/etc/norrvakt/lulea-ca.pem",
                    privileged_groups=("Domain Admins", "IT-Administratörer")).build()
        .sync(engine, "lulea", password)   → {"accounts": 412, "privileged": 9, "disabled": 37, "departed": 2}

Reads every user (sAMAccountName, displayName, memberOf, userAccountControl, accountExpires)
and every group (its own memberOf, so nesting counts: a member of a group inside Domain Admins
is privileged too), in pages of 500. Marks: *privileged* — in one of ``privileged_groups``
(names, any case) directly or through nested groups; *disabled* — userAccountControl
ACCOUNTDISABLE (0x2); *departed* — the account has expired (accountExpires in the past), or a
later sync no longer finds it (norrvakt.state.directory keeps it, marked). LDAPS only, the
server's certificate checked against ``ca_file`` (Samba and AD refuse a simple bind in plain
LDAP anyway). The password is given to :meth:`DirectorySync.sync` and never stored or logged.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import ldap3
import sqlalchemy as sa
from ldap3.core.exceptions import LDAPException

from norrvakt.enrich.windows_codes import codes
from norrvakt.event import now_us
from norrvakt.state import directory as rows
from norrvakt.state.directory import Account

PAGE = 500
DISABLED_BIT = next(bit for bit, name in codes().ad_account_flags.items() if name == "ACCOUNTDISABLE")
NEVER = (0, 0x7FFFFFFFFFFFFFFF)  # accountExpires values that mean "never"
EPOCH_1601_US = 11_644_473_600 * 1_000_000  # accountExpires counts 100 ns from 1601-01-01


class DirectoryError(RuntimeError):
    """The directory could not be read (names the server and what failed)."""


@dataclass(frozen=True)
class DirectoryConfig:
    """One tenant's directory: where, as whom, what counts as privileged."""

    url: str
    base_dn: str
    bind_dn: str
    ca_file: str = ""
    tls_name: str = ""  # the name in the server's certificate, when the URL has an address
    privileged_groups: tuple[str, ...] = (
        "Domain Admins",
        "Enterprise Admins",
        "Schema Admins",
        "Administrators",
    )
    timeout_s: float = 10.0

    def build(self) -> DirectorySync:
        if not self.url.lower().startswith("ldaps://"):
            raise DirectoryError(
                f"directory {self.url!r}: only ldaps:// is supported (a bind sends the password)"
            )
        return DirectorySync(self)


class DirectorySync:
    def __init__(self, config: DirectoryConfig) -> None:
        self.config = config

    def _server(self) -> ldap3.Server:
        c = self.config
        hostport = c.url[len("ldaps://") :].rstrip("/")
        host, _, port = hostport.rpartition(":") if hostport.count(":") == 1 else (hostport, "", "")
        tls = ldap3.Tls(
            validate=ssl.CERT_REQUIRED,
            ca_certs_file=c.ca_file or None,
            valid_names=[c.tls_name] if c.tls_name else None,
        )
        return ldap3.Server(host, port=int(port or 636), use_ssl=True, tls=tls, connect_timeout=c.timeout_s)

    def fetch(self, tenant: str, password: str, now: int | None = None) -> list[Account]:
        """The tenant's accounts as the directory has them now."""
        c = self.config
        try:
            conn = ldap3.Connection(self._server(), c.bind_dn, password, receive_timeout=int(c.timeout_s))
            if not conn.bind():
                raise DirectoryError(
                    f"directory {c.url}: bind as {c.bind_dn!r} refused: {conn.result.get('message')}"
                )
            try:
                groups = self._search(conn, "(objectClass=group)", ["cn", "memberOf"])
                users = self._search(
                    conn,
                    "(&(objectCategory=person)(objectClass=user))",
                    ["sAMAccountName", "displayName", "memberOf", "userAccountControl", "accountExpires"],
                )
            finally:
                conn.unbind()
        except LDAPException as exc:
            raise DirectoryError(f"directory {c.url}: {type(exc).__name__}: {exc}") from exc
        return accounts_of(tenant, users, groups, c.privileged_groups, now or now_us())

    def _search(self, conn: ldap3.Connection, query: str, attributes: list[str]) -> list[dict[str, Any]]:
        entries = conn.extend.standard.paged_search(
            self.config.base_dn, query, attributes=attributes, paged_size=PAGE, generator=False
        )
        return [
            {"dn": e["dn"], **{k: v for k, v in e.get("attributes", {}).items()}}
            for e in entries
            if e.get("type") == "searchResEntry"
        ]

    def sync(self, engine: sa.Engine, tenant: str, password: str) -> dict[str, int]:
        """Fetch the tenant's accounts and store them (the rows not found are marked departed)."""
        now = now_us()
        found = self.fetch(tenant, password, now)
        with engine.begin() as conn:
            return rows.replace_tenant(conn, tenant, found, now)


def _values(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return [str(v) for v in value]
    return [str(value)]


def accounts_of(
    tenant: str,
    users: Iterable[dict[str, Any]],
    groups: Iterable[dict[str, Any]],
    privileged: Iterable[str],
    now: int,
) -> list[Account]:
    """Accounts from the directory's user and group entries (nesting followed, cycles safe)."""
    by_dn = {g["dn"].lower(): g for g in groups}
    wanted = {name.lower() for name in privileged}

    def closure(dns: list[str]) -> set[str]:
        seen: set[str] = set()
        todo = [d.lower() for d in dns]
        while todo:
            dn = todo.pop()
            if dn in seen:
                continue
            seen.add(dn)
            parent = by_dn.get(dn)
            if parent is not None:
                todo.extend(d.lower() for d in _values(parent.get("memberOf")))
        return seen

    out = []
    for u in users:
        name = (_values(u.get("sAMAccountName")) or [""])[0]
        if not name:
            continue
        direct = _values(u.get("memberOf"))
        names = sorted({str((_values(by_dn[d].get("cn")) or [d])[0]) for d in closure(direct) if d in by_dn})
        uac = int((_values(u.get("userAccountControl")) or ["0"])[0] or 0)
        out.append(
            Account(
                tenant=tenant,
                username=name.lower(),
                display_name=(_values(u.get("displayName")) or [""])[0],
                dn=str(u["dn"]),
                groups=tuple(names),
                privileged=any(n.lower() in wanted for n in names),
                disabled=bool(uac & DISABLED_BIT),
                departed=_expired(u.get("accountExpires"), now),
            )
        )
    return out


def _expired(value: Any, now: int) -> bool:
    """accountExpires is in the past (ldap3 gives a datetime, or the raw 100-ns count)."""
    first = value[0] if isinstance(value, (list, tuple)) and value else value
    if first is None or first == []:
        return False
    if hasattr(first, "timestamp"):
        try:
            return bool(first.timestamp() * 1_000_000 < now) and first.year > 1601 and first.year < 9999
        except (OverflowError, OSError, ValueError):
            return False
    try:
        ticks = int(str(first))
    except ValueError:
        return False
    if ticks in NEVER:
        return False
    return ticks // 10 - EPOCH_1601_US < now
