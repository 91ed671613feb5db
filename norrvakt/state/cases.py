"""Cases in the state database: the case rows, their append-only history, comments and
attachments, and the figures SLA reports and escalation read."""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa

from norrvakt.state.db import Row, alerts, as_rows, case_attachments, case_comments, case_history, cases


def insert(conn: sa.Connection, values: Row) -> int:
    return int(conn.execute(cases.insert().values(**values).returning(cases.c.id)).scalar_one())


def get(conn: sa.Connection, case_id: int, *, for_update: bool = False) -> Row | None:
    query = sa.select(cases).where(cases.c.id == case_id)
    if for_update and conn.dialect.name == "postgresql":
        query = query.with_for_update()  # two analysts changing one case: one waits
    row = conn.execute(query).first()
    return dict(row._mapping) if row is not None else None


def update(conn: sa.Connection, case_id: int, values: Row) -> None:
    conn.execute(cases.update().where(cases.c.id == case_id).values(**values))


def alert_ids(conn: sa.Connection, case_ids: Sequence[int]) -> dict[int, list[int]]:
    out: dict[int, list[int]] = {c: [] for c in case_ids}
    if case_ids:
        for r in conn.execute(
            sa.select(alerts.c.case_id, alerts.c.id)
            .where(alerts.c.case_id.in_(list(case_ids)))
            .order_by(alerts.c.id)
        ):
            out[int(r.case_id)].append(int(r.id))
    return out


def listing(
    conn: sa.Connection,
    tenants: Sequence[str],
    *,
    status: Sequence[str] = (),
    severity: Sequence[str] = (),
    assignee: str | None = None,
    significant: bool | None = None,
    since: int | None = None,
    limit: int = 100,
    offset: int = 0,
) -> tuple[list[Row], int]:
    where: list[sa.ColumnElement[bool]] = [cases.c.tenant.in_(list(tenants))]
    if status:
        where.append(cases.c.status.in_(list(status)))
    if severity:
        where.append(cases.c.severity.in_(list(severity)))
    if assignee is not None:
        where.append(cases.c.assignee == assignee)
    if significant is not None:
        where.append(cases.c.significant.is_(significant))
    if since is not None:
        where.append(cases.c.updated_at >= since)
    total = int(conn.execute(sa.select(sa.func.count()).select_from(cases).where(*where)).scalar_one())
    rows = as_rows(
        conn.execute(
            sa.select(cases)
            .where(*where)
            .order_by(cases.c.updated_at.desc(), cases.c.id.desc())
            .limit(limit)
            .offset(offset)
        )
    )
    return rows, total


def add_history(conn: sa.Connection, changes: Sequence[Row]) -> None:
    """``changes``: dicts of case_id, tenant, at, actor, action, field, old_value, new_value."""
    if changes:
        conn.execute(case_history.insert(), list(changes))


def history(conn: sa.Connection, case_id: int) -> list[Row]:
    return as_rows(
        conn.execute(
            sa.select(case_history).where(case_history.c.case_id == case_id).order_by(case_history.c.id)
        )
    )


def add_comment(conn: sa.Connection, values: Row) -> int:
    return int(
        conn.execute(case_comments.insert().values(**values).returning(case_comments.c.id)).scalar_one()
    )


def comments(conn: sa.Connection, case_id: int) -> list[Row]:
    return as_rows(
        conn.execute(
            sa.select(case_comments).where(case_comments.c.case_id == case_id).order_by(case_comments.c.id)
        )
    )


def add_attachment(conn: sa.Connection, values: Row) -> int:
    return int(
        conn.execute(case_attachments.insert().values(**values).returning(case_attachments.c.id)).scalar_one()
    )


def attachments(conn: sa.Connection, case_id: int) -> list[Row]:
    return as_rows(
        conn.execute(
            sa.select(case_attachments)
            .where(case_attachments.c.case_id == case_id)
            .order_by(case_attachments.c.id)
        )
    )


def response_times(conn: sa.Connection, tenants: Sequence[str], since: int, until: int) -> list[Row]:
    """tenant, severity, created_at, acknowledged_at, resolved_at of the cases opened in [since, until]
    (merged cases left out: their alerts are counted in the case they went into)."""
    return as_rows(
        conn.execute(
            sa.select(
                cases.c.tenant,
                cases.c.severity,
                cases.c.created_at,
                cases.c.acknowledged_at,
                cases.c.resolved_at,
            ).where(
                cases.c.tenant.in_(list(tenants)),
                cases.c.created_at >= since,
                cases.c.created_at <= until,
                cases.c.status != "merged",
            )
        )
    )


def unacknowledged(conn: sa.Connection, created_before: int, severities: Sequence[str]) -> list[Row]:
    """New cases of the given severities, opened before ``created_before``, not yet escalated."""
    return as_rows(
        conn.execute(
            sa.select(cases).where(
                cases.c.status == "new",
                cases.c.created_at <= created_before,
                cases.c.escalated_at.is_(None),
                cases.c.severity.in_(list(severities)),
            )
        )
    )


def significant_open(conn: sa.Connection, tenants: Sequence[str]) -> list[Row]:
    """Cases marked significant under NIS2 whose reporting may still be due."""
    return as_rows(
        conn.execute(
            sa.select(cases).where(
                cases.c.tenant.in_(list(tenants)),
                cases.c.significant.is_(True),
                cases.c.final_report_at.is_(None),
            )
        )
    )


def mark_escalated(conn: sa.Connection, case_id: int, at: int) -> bool:
    """Set ``escalated_at`` unless a case was acknowledged or escalated meanwhile; True if set."""
    done = conn.execute(
        cases.update()
        .where(cases.c.id == case_id, cases.c.escalated_at.is_(None), cases.c.status == "new")
        .values(escalated_at=at)
    )
    return bool(done.rowcount)
