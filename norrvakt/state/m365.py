"""Microsoft 365 connectors in the state database: encrypted credentials and checkpoints.

    save_credential(engine, "m365-lulea", "lulea", "secret", ciphertext, by="admin")
    cp = load_checkpoint(engine, "m365-lulea", "graph.signIns")     # None before the first pull
    save_checkpoint(engine, FeedCheckpoint(...))                    # after the records are durable
    statuses(engine, tenants=["lulea"])                              # the status route, per feed

Only ciphertext is stored here; the key never is (norrvakt/sources/m365/credentials.py).
Checkpoints are written by the connector alone (one per connector and feed), after the journal
said the records before ``done_until`` are durable.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import sqlalchemy as sa

from norrvakt.event import now_us
from norrvakt.state.db import Row, as_rows, m365_checkpoints, m365_credentials, upsert


@dataclass
class FeedCheckpoint:
    connector: str
    feed: str
    tenant: str
    done_until: int  # µs: everything created before this is durable
    seen: str = "[]"  # JSON [[id, µs], …] of the overlap window
    records: int = 0
    duplicates: int = 0
    last_attempt_at: int | None = None
    last_success_at: int | None = None
    last_error: str = ""


def save_credential(
    engine: sa.Engine, connector: str, tenant: str, kind: str, ciphertext: bytes, by: str
) -> None:
    values = {
        "tenant": tenant,
        "kind": kind,
        "ciphertext": ciphertext,
        "updated_at": now_us(),
        "updated_by": by,
    }
    with engine.begin() as conn:
        stmt = upsert(conn, m365_credentials).values(connector=connector, **values)
        conn.execute(stmt.on_conflict_do_update(index_elements=["connector"], set_=values))


def load_credential(engine: sa.Engine, connector: str) -> Row | None:
    """The connector's stored credential row (ciphertext included), or None."""
    with engine.connect() as conn:
        rows = as_rows(
            conn.execute(sa.select(m365_credentials).where(m365_credentials.c.connector == connector))
        )
    return rows[0] if rows else None


def credential_facts(engine: sa.Engine, connectors: Sequence[str]) -> dict[str, Row]:
    """What may be shown about stored credentials (kind, when, by whom) — never the ciphertext."""
    c = m365_credentials.c
    with engine.connect() as conn:
        rows = as_rows(
            conn.execute(
                sa.select(c.connector, c.tenant, c.kind, c.updated_at, c.updated_by).where(
                    c.connector.in_(list(connectors))
                )
            )
        )
    return {r["connector"]: r for r in rows}


def load_checkpoint(engine: sa.Engine, connector: str, feed: str) -> FeedCheckpoint | None:
    t = m365_checkpoints.c
    with engine.connect() as conn:
        rows = as_rows(
            conn.execute(sa.select(m365_checkpoints).where(t.connector == connector, t.feed == feed))
        )
    if not rows:
        return None
    r = rows[0]
    return FeedCheckpoint(
        connector=r["connector"],
        feed=r["feed"],
        tenant=r["tenant"],
        done_until=int(r["done_until"]),
        seen=r["seen"],
        records=int(r["records"]),
        duplicates=int(r["duplicates"]),
        last_attempt_at=r["last_attempt_at"],
        last_success_at=r["last_success_at"],
        last_error=r["last_error"],
    )


def save_checkpoint(engine: sa.Engine, cp: FeedCheckpoint) -> None:
    values = {
        "tenant": cp.tenant,
        "done_until": cp.done_until,
        "seen": cp.seen,
        "records": cp.records,
        "duplicates": cp.duplicates,
        "last_attempt_at": cp.last_attempt_at,
        "last_success_at": cp.last_success_at,
        "last_error": cp.last_error[:2000],
        "updated_at": now_us(),
    }
    with engine.begin() as conn:
        stmt = upsert(conn, m365_checkpoints).values(connector=cp.connector, feed=cp.feed, **values)
        conn.execute(stmt.on_conflict_do_update(index_elements=["connector", "feed"], set_=values))


def statuses(engine: sa.Engine, tenants: Sequence[str] | None) -> list[Row]:
    """Checkpoint rows without the seen-set, of ``tenants`` (None: every tenant)."""
    t = m365_checkpoints.c
    query = sa.select(
        t.connector,
        t.feed,
        t.tenant,
        t.done_until,
        t.records,
        t.duplicates,
        t.last_attempt_at,
        t.last_success_at,
        t.last_error,
    ).order_by(t.connector, t.feed)
    if tenants is not None:
        query = query.where(t.tenant.in_(list(tenants)))
    with engine.connect() as conn:
        return as_rows(conn.execute(query))
