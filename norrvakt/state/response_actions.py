"""Response actions in the state database (migration 0016): the actions, a tenant's blocklist,
its feed token (the SHA-256 only) and the sealed AD service-account password.

    action_id = insert(engine, {...})                  # status pending_approval, running or dry_run
    claim(engine, action_id, "pending_approval", "running", approved_by="bo")  # False: someone else did
    finish(engine, action_id, "done", result="…")
    active_blocks(engine, "lulea", now)                # what the feed serves
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from norrvakt.event import now_us
from norrvakt.state.db import (
    Row,
    as_rows,
    response_actions,
    response_ad_credentials,
    response_blocklist,
    response_feed_tokens,
    upsert,
)

_A = response_actions.c
_B = response_blocklist.c


def insert(engine: sa.Engine, values: Row) -> int:
    now = now_us()
    row = {"attempts": 0, "result": "", "undo_result": "", "updated_at": now, "requested_at": now, **values}
    with engine.begin() as conn:
        return int(conn.execute(response_actions.insert().values(**row).returning(_A.id)).scalar_one())


def get(engine: sa.Engine, action_id: int) -> Row | None:
    with engine.connect() as conn:
        rows = as_rows(conn.execute(sa.select(response_actions).where(_A.id == action_id)))
    return rows[0] if rows else None


def claim(
    engine: sa.Engine, action_id: int, from_status: Sequence[str], to_status: str, **values: Any
) -> bool:
    """Move an action from one of ``from_status`` to ``to_status`` — compare-and-set, so two
    approvers (or two web nodes) clicking at once run it once. True if this caller moved it."""
    with engine.begin() as conn:
        done = conn.execute(
            response_actions.update()
            .where(_A.id == action_id, _A.status.in_(list(from_status)))
            .values(status=to_status, updated_at=now_us(), **values)
        )
    return bool(done.rowcount)


def finish(engine: sa.Engine, action_id: int, status: str, **values: Any) -> None:
    with engine.begin() as conn:
        conn.execute(
            response_actions.update()
            .where(_A.id == action_id)
            .values(status=status, updated_at=now_us(), attempts=_A.attempts + 1, **values)
        )


def listing(
    engine: sa.Engine, tenants: Sequence[str], *, case_id: int | None = None, limit: int = 200
) -> list[Row]:
    query = sa.select(response_actions).where(_A.tenant.in_(list(tenants)))
    if case_id is not None:
        query = query.where(_A.case_id == case_id)
    with engine.connect() as conn:
        return as_rows(conn.execute(query.order_by(_A.id.desc()).limit(limit)))


def executed_since(engine: sa.Engine, tenant: str, since: int) -> int:
    """Actions of ``tenant`` run against a target since ``since`` (the rate limit counts these)."""
    with engine.connect() as conn:
        return int(
            conn.execute(
                sa.select(sa.func.count())
                .select_from(response_actions)
                .where(_A.tenant == tenant, _A.dry_run.is_(False), _A.executed_at >= since)
            ).scalar_one()
        )


# -- blocklist -------------------------------------------------------------------------------------


def add_block(engine: sa.Engine, values: Row) -> int:
    with engine.begin() as conn:
        return int(conn.execute(response_blocklist.insert().values(**values).returning(_B.id)).scalar_one())


def remove_blocks(engine: sa.Engine, tenant: str, action_id: int, by: str) -> int:
    with engine.begin() as conn:
        done = conn.execute(
            response_blocklist.update()
            .where(_B.tenant == tenant, _B.action_id == action_id, _B.removed_at.is_(None))
            .values(removed_by=by, removed_at=now_us())
        )
    return int(done.rowcount)


def active_blocks(engine: sa.Engine, tenant: str, at: int) -> list[Row]:
    """Entries not removed and not expired at ``at``, oldest first."""
    with engine.connect() as conn:
        return as_rows(
            conn.execute(
                sa.select(response_blocklist)
                .where(_B.tenant == tenant, _B.removed_at.is_(None), _B.expires_at > at)
                .order_by(_B.id)
            )
        )


def blocks(engine: sa.Engine, tenants: Sequence[str], limit: int = 1000) -> list[Row]:
    with engine.connect() as conn:
        return as_rows(
            conn.execute(
                sa.select(response_blocklist)
                .where(_B.tenant.in_(list(tenants)))
                .order_by(_B.id.desc())
                .limit(limit)
            )
        )


# -- feed tokens and AD credentials ----------------------------------------------------------------


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def set_feed_token(engine: sa.Engine, tenant: str, token: str, by: str) -> None:
    values = {"token_sha256": token_digest(token), "created_by": by, "created_at": now_us()}
    with engine.begin() as conn:
        stmt = upsert(conn, response_feed_tokens).values(tenant=tenant, **values)
        conn.execute(stmt.on_conflict_do_update(index_elements=["tenant"], set_=values))


def feed_token_digest(engine: sa.Engine, tenant: str) -> str | None:
    with engine.connect() as conn:
        row = conn.execute(
            sa.select(response_feed_tokens.c.token_sha256).where(response_feed_tokens.c.tenant == tenant)
        ).first()
    return str(row[0]) if row is not None else None


def save_ad_credential(engine: sa.Engine, tenant: str, ciphertext: bytes, by: str) -> None:
    values = {"ciphertext": ciphertext, "updated_by": by, "updated_at": now_us()}
    with engine.begin() as conn:
        stmt = upsert(conn, response_ad_credentials).values(tenant=tenant, **values)
        conn.execute(stmt.on_conflict_do_update(index_elements=["tenant"], set_=values))


def load_ad_credential(engine: sa.Engine, tenant: str) -> bytes | None:
    with engine.connect() as conn:
        row = conn.execute(
            sa.select(response_ad_credentials.c.ciphertext).where(response_ad_credentials.c.tenant == tenant)
        ).first()
    return bytes(row[0]) if row is not None else None
