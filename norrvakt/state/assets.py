"""A tenant's asset list: host, owner, criticality, system — from the API or a CSV file.

    host,owner,criticality,system
    treserva-db01,IT-enheten / Socialförvaltningen,critical,Treserva (socialtjänst)
    ws-skola-117,Skolförvaltningen,low,Elevdatorer

A host is the name events carry in ``host.name`` (or an address), kept in lower case; one row
per (tenant, host) — importing again replaces the row. Criticality is one of
:data:`CRITICALITIES`; it raises or lowers the severity of an alert about the host at intake
(:mod:`norrvakt.enrich.severity`) and is shown with the alert when it is viewed. Every change
bumps the ``assets`` version, so each node's intake reloads within a second.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from norrvakt.errors import StatusError
from norrvakt.state.db import assets, upsert
from norrvakt.state.versions import bump

ASSETS = "assets"  # the version counter the intake watches
CRITICALITIES = ("low", "medium", "high", "critical")
CSV_COLUMNS = ("host", "owner", "criticality", "system")
MAX_FIELD = 255
MAX_ROWS = 50_000  # one import; a municipality has a few thousand hosts


class AssetError(StatusError, ValueError):
    """An asset that cannot be stored as given (HTTP 400 unless said); names the row and value."""


class NoSuchAsset(AssetError):
    status_code = 404


@dataclass(frozen=True, slots=True)
class Asset:
    tenant: str
    host: str
    owner: str
    criticality: str
    system: str
    updated_by: str = ""
    updated_at: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "tenant": self.tenant,
            "host": self.host,
            "owner": self.owner,
            "criticality": self.criticality,
            "system": self.system,
            "updated_by": self.updated_by,
            "updated_at": self.updated_at,
        }


def checked(tenant: str, host: str, owner: str, criticality: str, system: str, where: str = "") -> Asset:
    """The asset as stored (host lower case, text trimmed), or :class:`AssetError` naming what is wrong."""
    at = f"{where}: " if where else ""
    host = host.strip().lower()
    if not host:
        raise AssetError(f"{at}host is empty")
    crit = criticality.strip().lower()
    if crit not in CRITICALITIES:
        raise AssetError(f"{at}criticality {criticality!r} is not one of {', '.join(CRITICALITIES)}")
    for name, value in (("host", host), ("owner", owner), ("system", system)):
        if len(value) > MAX_FIELD:
            raise AssetError(f"{at}{name} is longer than {MAX_FIELD} characters ({value[:40]!r}…)")
    return Asset(tenant, host, owner.strip(), crit, system.strip())


def put(conn: sa.Connection, asset: Asset, by: str, now: int) -> Asset:
    """Store (or replace) one asset."""
    row = {**asset.as_dict(), "updated_by": by, "updated_at": now}
    stmt = upsert(conn, assets).values(**row)
    conn.execute(
        stmt.on_conflict_do_update(
            index_elements=[assets.c.tenant, assets.c.host],
            set_={k: row[k] for k in ("owner", "criticality", "system", "updated_by", "updated_at")},
        )
    )
    bump(conn, ASSETS)
    return Asset(**row)


def delete(conn: sa.Connection, tenant: str, host: str) -> Asset:
    """Remove one asset (the removed row, for the audit trail)."""
    found = get(conn, tenant, host)
    if found is None:
        raise NoSuchAsset(f"no asset {host!r} in tenant {tenant!r}")
    conn.execute(sa.delete(assets).where(assets.c.tenant == tenant, assets.c.host == found.host))
    bump(conn, ASSETS)
    return found


def get(conn: sa.Connection, tenant: str, host: str) -> Asset | None:
    row = (
        conn.execute(
            sa.select(assets).where(assets.c.tenant == tenant, assets.c.host == host.strip().lower())
        )
        .mappings()
        .first()
    )
    return Asset(**row) if row is not None else None


def listed(conn: sa.Connection, tenants: Iterable[str] | None) -> list[Asset]:
    """The assets of ``tenants`` (None: every tenant), by tenant and host."""
    q = sa.select(assets).order_by(assets.c.tenant, assets.c.host)
    if tenants is not None:
        q = q.where(assets.c.tenant.in_(list(tenants)))
    return [Asset(**r) for r in conn.execute(q).mappings()]


def parse_csv(tenant: str, text: str, source: str = "CSV") -> list[Asset]:
    """The assets of a CSV file with the header ``host,owner,criticality,system`` (in any order,
    other columns ignored; ``;`` as separator too, as Excel writes it in Sweden). All rows are
    checked before any is stored: an error names the line and the value."""
    lines = text.lstrip("\ufeff")
    try:
        dialect = csv.Sniffer().sniff(lines.split("\n", 1)[0], delimiters=",;\t")
    except csv.Error:
        dialect = csv.excel
    reader = csv.DictReader(io.StringIO(lines), dialect=dialect)
    header = [h.strip().lower() for h in (reader.fieldnames or [])]
    missing = [c for c in CSV_COLUMNS if c not in header]
    if missing:
        raise AssetError(f"{source} line 1: the header lacks {', '.join(missing)} (has {', '.join(header)})")
    reader.fieldnames = header
    out: dict[str, Asset] = {}
    for row in reader:
        line = reader.line_num
        if len(out) >= MAX_ROWS:
            raise AssetError(f"{source} line {line}: more than {MAX_ROWS} assets in one import")
        if not any((v or "").strip() for k, v in row.items() if k in CSV_COLUMNS):
            continue  # a blank line
        asset = checked(tenant, row.get("host") or "", row.get("owner") or "", row.get("criticality") or "",
                        row.get("system") or "", f"{source} line {line}")  # fmt: skip
        out[asset.host] = asset  # a host named twice: the later line wins, as a re-import does
    return list(out.values())


def import_csv(conn: sa.Connection, tenant: str, text: str, by: str, now: int) -> list[Asset]:
    """Store every asset of the CSV ``text`` (all or none)."""
    parsed = parse_csv(tenant, text)
    return [put(conn, a, by, now) for a in parsed]


def all_by_tenant(conn: sa.Connection) -> dict[str, dict[str, Asset]]:
    """Every asset, tenant → host → asset (what the intake keeps in memory)."""
    out: dict[str, dict[str, Asset]] = {}
    for a in listed(conn, None):
        out.setdefault(a.tenant, {})[a.host] = a
    return out
