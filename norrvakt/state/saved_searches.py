"""Saved searches, scheduled searches (alert rules) and dashboard pins: stored, listed, changed.

Who sees a saved search (the API checks roles; this module filters rows):

- ``private``: its owner only, in the tenant it was saved for;
- ``tenant``: everyone who may read that tenant (its officers, the SOC);
- ``region``: the central roles (``tenant = "*"``) — the SOC's own searches over every tenant.

A scheduled search is one with ``every_s`` set. The scheduler of every node looks for rows
whose ``next_run_at`` has come and claims a run by moving ``next_run_at`` on with a
compare-and-set, so one node runs it; the run's outcome goes to ``last_*``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from norrvakt.errors import StatusError
from norrvakt.state.db import Row, as_rows, dashboard_pins, saved_searches

PRIVATE, TENANT, REGION = "private", "tenant", "region"
VISIBILITIES = (PRIVATE, TENANT, REGION)
ALL_TENANTS = "*"
MAX_PINS = 12  # panels one dashboard holds
EDITABLE = ("name", "description", "query", "since", "until", "visibility", "every_s", "level", "enabled")


class SavedSearchError(StatusError, ValueError):
    """A saved search that cannot be stored or changed as asked (HTTP 400 unless said)."""


class NoSuchSearch(SavedSearchError):
    status_code = 404


def check_fields(name: str, description: str, visibility: str, tenant: str) -> None:
    if not name.strip() or len(name) > 128:
        raise SavedSearchError("name: 1 to 128 characters")
    if len(description) > 4000:
        raise SavedSearchError("description: at most 4000 characters")
    if visibility not in VISIBILITIES:
        raise SavedSearchError(f"visibility {visibility!r}: one of {', '.join(VISIBILITIES)}")
    if (visibility == REGION) != (tenant == ALL_TENANTS):
        raise SavedSearchError("a region-wide search is saved for every tenant (*), and only it")


def create(
    engine: sa.Engine,
    *,
    name: str,
    description: str,
    query: str,
    since: str,
    until: str,
    owner: str,
    tenant: str,
    visibility: str,
    every_s: int | None,
    level: str,
    now: int,
) -> Row:
    check_fields(name, description, visibility, tenant)
    values: dict[str, Any] = {
        "name": name.strip(),
        "description": description,
        "query": query,
        "since": since,
        "until": until,
        "owner": owner,
        "tenant": tenant,
        "visibility": visibility,
        "created_at": now,
        "updated_at": now,
        "every_s": every_s,
        "level": level if every_s else "",
        "enabled": every_s is not None,
        "next_run_at": now if every_s else None,  # a new rule runs at the next look
        "last_run_at": None,
        "last_status": "",
        "last_result": "",
        "last_alerts": 0,
    }
    with engine.begin() as conn:
        key = conn.execute(saved_searches.insert().values(**values)).inserted_primary_key
        assert key is not None  # an insert of one row has its key
        found = get(conn, int(key[0]))
    assert found is not None  # just inserted, in this transaction
    return found


def get(conn: sa.Connection, search_id: int) -> Row | None:
    found = as_rows(conn.execute(sa.select(saved_searches).where(saved_searches.c.id == search_id)))
    return found[0] if found else None


def visible(conn: sa.Connection, username: str, tenants: Sequence[str] | None) -> list[Row]:
    """What ``username`` may see, names in order: their own, those shared with a tenant of
    ``tenants`` (None = every tenant: a central role, who also sees the region's)."""
    c = saved_searches.c
    shown = [c.owner == username]
    if tenants is None:
        shown.append(c.visibility.in_([TENANT, REGION]))
    else:
        shown.append(sa.and_(c.visibility == TENANT, c.tenant.in_(list(tenants))))
    query = sa.select(saved_searches).where(sa.or_(*shown)).order_by(sa.func.lower(c.name), c.id)
    rows = as_rows(conn.execute(query))
    if tenants is not None:  # one's own private search of a tenant one no longer reads: gone
        rows = [r for r in rows if r["tenant"] in tenants]
    return rows


def owned(conn: sa.Connection, owner: str) -> int:
    found = conn.execute(sa.select(sa.func.count()).where(saved_searches.c.owner == owner)).scalar()
    return int(found or 0)


def change(engine: sa.Engine, search_id: int, changes: dict[str, Any], now: int) -> tuple[Row, Row]:
    """Apply ``changes`` (keys of :data:`EDITABLE`); ``(before, after)``. A new schedule or
    query runs at the next look; switching a rule off keeps its last result."""
    unknown = set(changes) - set(EDITABLE)
    if unknown:
        raise SavedSearchError(f"cannot change {', '.join(sorted(unknown))}")
    with engine.begin() as conn:
        before = get(conn, search_id)
        if before is None:
            raise NoSuchSearch(f"no saved search {search_id}")
        after = {**before, **changes}
        check_fields(
            str(after["name"]), str(after["description"]), str(after["visibility"]), str(after["tenant"])
        )
        values = dict(changes, updated_at=now)
        if "name" in values:
            values["name"] = str(values["name"]).strip()
        if after["every_s"] is None:
            values.update(level="", enabled=False, next_run_at=None)
        elif {"query", "every_s", "enabled"} & set(changes) and after["enabled"]:
            values["next_run_at"] = now
        conn.execute(saved_searches.update().where(saved_searches.c.id == search_id).values(**values))
        found = get(conn, search_id)
    assert found is not None
    return before, found


def delete(engine: sa.Engine, search_id: int) -> Row:
    """Remove a saved search and its pins; the row as it was (for the audit trail)."""
    with engine.begin() as conn:
        row = get(conn, search_id)
        if row is None:
            raise NoSuchSearch(f"no saved search {search_id}")
        conn.execute(dashboard_pins.delete().where(dashboard_pins.c.search_id == search_id))
        conn.execute(saved_searches.delete().where(saved_searches.c.id == search_id))
    return row


# -- scheduled runs ------------------------------------------------------------------------------


def due(conn: sa.Connection, now: int) -> list[Row]:
    c = saved_searches.c
    query = (
        sa.select(saved_searches)
        .where(c.every_s.is_not(None), c.enabled.is_(True), c.next_run_at <= now)
        .order_by(c.next_run_at, c.id)
    )
    return as_rows(conn.execute(query))


def claim(engine: sa.Engine, row: Row, now: int) -> bool:
    """Take the run that is due (``row`` as read): True for the one node whose update moved
    ``next_run_at`` on. The next run is one schedule after this one; runs missed while no node
    ran (a restart) are not made up one by one: the window of the next run covers them."""
    every_us = int(row["every_s"]) * 1_000_000
    nxt = int(row["next_run_at"]) + every_us
    if nxt <= now:
        nxt = now + every_us
    c = saved_searches.c
    with engine.begin() as conn:
        moved = conn.execute(
            saved_searches.update()
            .where(c.id == row["id"], c.next_run_at == row["next_run_at"], c.enabled.is_(True))
            .values(next_run_at=nxt)
        ).rowcount
    return bool(moved)


def record_run(engine: sa.Engine, search_id: int, *, at: int, status: str, result: str, alerts: int) -> None:
    with engine.begin() as conn:
        conn.execute(
            saved_searches.update()
            .where(saved_searches.c.id == search_id)
            .values(last_run_at=at, last_status=status, last_result=result[:2000], last_alerts=alerts)
        )


# -- dashboard pins ------------------------------------------------------------------------------


def pins(conn: sa.Connection, username: str) -> list[int]:
    p = dashboard_pins.c
    rows = conn.execute(
        sa.select(p.search_id).where(p.username == username).order_by(p.position, p.created_at)
    )
    return [int(r[0]) for r in rows]


def pin(engine: sa.Engine, username: str, search_id: int, now: int) -> bool:
    """Pin a saved search on ``username``'s dashboard (last); False when it was pinned already."""
    with engine.begin() as conn:
        current = pins(conn, username)
        if search_id in current:
            return False
        if len(current) >= MAX_PINS:
            raise SavedSearchError(f"a dashboard holds at most {MAX_PINS} pinned searches: unpin one first")
        conn.execute(
            dashboard_pins.insert().values(
                username=username, search_id=search_id, position=len(current), created_at=now
            )
        )
    return True


def unpin(engine: sa.Engine, username: str, search_id: int) -> bool:
    p = dashboard_pins.c
    with engine.begin() as conn:
        gone = conn.execute(dashboard_pins.delete().where(p.username == username, p.search_id == search_id))
    return bool(gone.rowcount)
