"""Case tasks in the state database (table ``case_tasks``, migration 0017), and the alert
counts per tenant the SOC's "seen in other municipalities" pivot reads."""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa

from norrvakt.state.db import Row, alert_entities, alerts, as_rows, case_tasks


def insert_many(conn: sa.Connection, rows: Sequence[Row]) -> list[int]:
    return [
        int(conn.execute(case_tasks.insert().values(**row).returning(case_tasks.c.id)).scalar_one())
        for row in rows
    ]


def of_case(conn: sa.Connection, case_id: int) -> list[Row]:
    return as_rows(
        conn.execute(
            sa.select(case_tasks)
            .where(case_tasks.c.case_id == case_id)
            .order_by(case_tasks.c.position, case_tasks.c.id)
        )
    )


def get(conn: sa.Connection, task_id: int) -> Row | None:
    row = conn.execute(sa.select(case_tasks).where(case_tasks.c.id == task_id)).first()
    return dict(row._mapping) if row is not None else None


def update(conn: sa.Connection, task_id: int, values: Row) -> None:
    conn.execute(case_tasks.update().where(case_tasks.c.id == task_id).values(**values))


def next_position(conn: sa.Connection, case_id: int) -> int:
    top = conn.execute(
        sa.select(sa.func.max(case_tasks.c.position)).where(case_tasks.c.case_id == case_id)
    ).scalar_one()
    return int(top) + 1 if top is not None else 0


def templates_of(conn: sa.Connection, case_id: int) -> list[str]:
    return [
        str(t)
        for t in conn.execute(
            sa.select(case_tasks.c.template)
            .where(case_tasks.c.case_id == case_id, case_tasks.c.template != "")
            .distinct()
        ).scalars()
    ]


def created_between(conn: sa.Connection, tenants: Sequence[str], since: int, until: int) -> list[Row]:
    """The tasks of ``tenants`` opened in [since, until] (for the time to done per task)."""
    return as_rows(
        conn.execute(
            sa.select(case_tasks).where(
                case_tasks.c.tenant.in_(list(tenants)),
                case_tasks.c.created_at >= since,
                case_tasks.c.created_at <= until,
            )
        )
    )


def alerts_per_tenant(
    conn: sa.Connection,
    fields: Sequence[str],
    value: str,
    tenants: Sequence[str],
    since: int,
    *,
    fold_case: bool,
) -> list[Row]:
    """tenant, alerts, latest_alert, last_seen: alerts of ``tenants`` active since ``since``
    whose entities hold ``value`` in one of ``fields`` (user and host names compared without
    case: ``Anna.Berg`` and ``anna.berg`` are one person)."""
    column = sa.func.lower(alert_entities.c.value) if fold_case else alert_entities.c.value
    wanted = value.lower() if fold_case else value
    found = conn.execute(
        sa.select(
            alerts.c.tenant,
            sa.func.count(sa.distinct(alerts.c.id)).label("alerts"),
            sa.func.max(alerts.c.id).label("latest_alert"),
            sa.func.max(alerts.c.last_seen).label("last_seen"),
        )
        .join(alert_entities, alert_entities.c.alert_id == alerts.c.id)
        .where(
            alert_entities.c.kind.in_(list(fields)),
            column == wanted,
            alerts.c.tenant.in_(list(tenants)),
            alerts.c.last_seen >= since,
        )
        .group_by(alerts.c.tenant)
        .order_by(alerts.c.tenant)
    )
    return as_rows(found)
