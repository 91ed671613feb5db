"""SQL for the systematic log follow-up (loggkontroll); see norrvakt/followup for the rules."""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa

from norrvakt.state.db import (
    Row,
    as_rows,
    followup_annotations,
    followup_items,
    followup_lookup,
    followup_plans,
    followup_rounds,
)


def add_plan(conn: sa.Connection, values: Row) -> int:
    return int(
        conn.execute(followup_plans.insert().values(**values).returning(followup_plans.c.id)).scalar_one()
    )


def plans(conn: sa.Connection, tenants: Sequence[str]) -> list[Row]:
    return as_rows(
        conn.execute(
            sa.select(followup_plans)
            .where(followup_plans.c.tenant.in_(list(tenants)))
            .order_by(followup_plans.c.id)
        )
    )


def plan(conn: sa.Connection, plan_id: int, tenants: Sequence[str]) -> Row | None:
    row = conn.execute(
        sa.select(followup_plans).where(
            followup_plans.c.id == plan_id, followup_plans.c.tenant.in_(list(tenants))
        )
    ).first()
    return dict(row._mapping) if row else None


def add_round(conn: sa.Connection, values: Row) -> int:
    return int(
        conn.execute(followup_rounds.insert().values(**values).returning(followup_rounds.c.id)).scalar_one()
    )


def rounds(conn: sa.Connection, tenants: Sequence[str], plan_id: int | None = None) -> list[Row]:
    q = sa.select(followup_rounds).where(followup_rounds.c.tenant.in_(list(tenants)))
    if plan_id is not None:
        q = q.where(followup_rounds.c.plan_id == plan_id)
    return as_rows(conn.execute(q.order_by(followup_rounds.c.id.desc())))


def round_(conn: sa.Connection, round_id: int, tenants: Sequence[str]) -> Row | None:
    row = conn.execute(
        sa.select(followup_rounds).where(
            followup_rounds.c.id == round_id, followup_rounds.c.tenant.in_(list(tenants))
        )
    ).first()
    return dict(row._mapping) if row else None


def sign_off(conn: sa.Connection, round_id: int, by: str, at: int, digest: str, seq: int) -> bool:
    """False when the round was no longer open (someone signed it off meanwhile)."""
    result = conn.execute(
        followup_rounds.update()
        .where(followup_rounds.c.id == round_id, followup_rounds.c.status == "open")
        .values(status="signed_off", signed_off_by=by, signed_off_at=at, digest=digest, signoff_seq=seq)
    )
    return bool(result.rowcount)


def add_items(conn: sa.Connection, items: Sequence[Row]) -> None:
    if items:
        conn.execute(followup_items.insert(), list(items))


def items(conn: sa.Connection, round_id: int) -> list[Row]:
    return as_rows(
        conn.execute(
            sa.select(followup_items)
            .where(followup_items.c.round_id == round_id)
            .order_by(followup_items.c.id)
        )
    )


def item(conn: sa.Connection, item_id: int, tenants: Sequence[str]) -> Row | None:
    row = conn.execute(
        sa.select(followup_items).where(
            followup_items.c.id == item_id, followup_items.c.tenant.in_(list(tenants))
        )
    ).first()
    return dict(row._mapping) if row else None


def decide(conn: sa.Connection, item_id: int, values: Row) -> None:
    conn.execute(followup_items.update().where(followup_items.c.id == item_id).values(**values))


def annotate(conn: sa.Connection, values: Row) -> int:
    return int(
        conn.execute(
            followup_annotations.insert().values(**values).returning(followup_annotations.c.id)
        ).scalar_one()
    )


def annotations_of(conn: sa.Connection, item_ids: Sequence[int]) -> list[Row]:
    if not item_ids:
        return []
    return as_rows(
        conn.execute(
            sa.select(followup_annotations)
            .where(followup_annotations.c.item_id.in_(list(item_ids)))
            .order_by(followup_annotations.c.id)
        )
    )


def replace_lookup(conn: sa.Connection, tenant: str, kind: str, rows: Sequence[Row]) -> None:
    conn.execute(
        followup_lookup.delete().where(followup_lookup.c.tenant == tenant, followup_lookup.c.kind == kind)
    )
    if rows:
        conn.execute(followup_lookup.insert(), [{**r, "tenant": tenant, "kind": kind} for r in rows])


def lookup(conn: sa.Connection, tenant: str, kind: str, id_hashes: Sequence[str]) -> dict[str, Row]:
    if not id_hashes:
        return {}
    result = conn.execute(
        sa.select(followup_lookup).where(
            followup_lookup.c.tenant == tenant,
            followup_lookup.c.kind == kind,
            followup_lookup.c.id_hash.in_(list(set(id_hashes))),
        )
    )
    return {r.id_hash: dict(r._mapping) for r in result}
