"""A tenant's directory accounts as the last LDAP sync saw them (:mod:`norrvakt.enrich.directory`).

One row per (tenant, sAMAccountName in lower case): display name, DN, group names, and three
marks — *privileged* (a member of a privileged group, directly or through nested groups),
*disabled* (userAccountControl ACCOUNTDISABLE), *departed* (in an earlier sync, gone from the
directory now; kept so an alert about the account still says who it was). A sync replaces the
tenant's rows in one transaction and bumps the ``directory`` version.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from norrvakt.state.db import directory_accounts
from norrvakt.state.versions import bump

DIRECTORY = "directory"  # the version counter the intake watches


@dataclass(frozen=True, slots=True)
class Account:
    tenant: str
    username: str
    display_name: str
    dn: str
    groups: tuple[str, ...]
    privileged: bool
    disabled: bool
    departed: bool = False
    synced_at: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "tenant": self.tenant,
            "username": self.username,
            "display_name": self.display_name,
            "dn": self.dn,
            "groups": list(self.groups),
            "privileged": self.privileged,
            "disabled": self.disabled,
            "departed": self.departed,
            "synced_at": self.synced_at,
        }


def _account(row: Any) -> Account:
    return Account(
        tenant=row["tenant"],
        username=row["username"],
        display_name=row["display_name"],
        dn=row["dn"],
        groups=tuple(json.loads(row["groups"])),
        privileged=bool(row["privileged"]),
        disabled=bool(row["disabled"]),
        departed=bool(row["departed"]),
        synced_at=int(row["synced_at"]),
    )


def replace_tenant(conn: sa.Connection, tenant: str, found: Iterable[Account], now: int) -> dict[str, int]:
    """The tenant's accounts are now ``found``; an earlier account not found is marked departed.
    Returns the counts (accounts, privileged, disabled, departed)."""
    current = {a.username: a for a in found}
    mine = directory_accounts.c.tenant == tenant
    before = {
        r["username"]: _account(r) for r in conn.execute(sa.select(directory_accounts).where(mine)).mappings()
    }
    conn.execute(sa.delete(directory_accounts).where(mine))
    rows = []
    for a in current.values():
        row = {**a.as_dict(), "groups": json.dumps(list(a.groups)), "synced_at": now}
        rows.append(row)
    for name, old in before.items():
        if name not in current:
            rows.append({**old.as_dict(), "groups": json.dumps(list(old.groups)), "departed": True})
    if rows:
        conn.execute(sa.insert(directory_accounts), rows)
    bump(conn, DIRECTORY)
    return {
        "accounts": len(current),
        "privileged": sum(a.privileged for a in current.values()),
        "disabled": sum(a.disabled for a in current.values()),
        "departed": sum(a.departed for a in current.values()) + sum(1 for n in before if n not in current),
    }


def listed(conn: sa.Connection, tenants: Iterable[str] | None) -> list[Account]:
    q = sa.select(directory_accounts).order_by(directory_accounts.c.tenant, directory_accounts.c.username)
    if tenants is not None:
        q = q.where(directory_accounts.c.tenant.in_(list(tenants)))
    return [_account(r) for r in conn.execute(q).mappings()]


def all_by_tenant(conn: sa.Connection) -> dict[str, dict[str, Account]]:
    out: dict[str, dict[str, Account]] = {}
    for a in listed(conn, None):
        out.setdefault(a.tenant, {})[a.username] = a
    return out
