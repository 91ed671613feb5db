"""Alerts in the state database: rows, their evidence (journal seqs) and their entities.

Plain rows in, plain dictionaries out; the workflow in ``norrvakt/alerts`` gives them meaning.
Every read that a caller's tenants limit takes those tenants as an argument.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import sqlalchemy as sa

from norrvakt.state.db import Row, alert_entities, alert_events, alerts, as_rows, cases

OPEN_STATUSES = ("new", "acknowledged", "investigating")


def open_alerts(conn: sa.Connection) -> list[Row]:
    """Every open alert (to fill the in-memory dedupe index at start)."""
    return as_rows(
        conn.execute(
            sa.select(alerts)
            .where(alerts.c.status.in_(OPEN_STATUSES))
            .order_by(alerts.c.last_seen, alerts.c.id)
        )
    )


def find_open(conn: sa.Connection, dedupe_key: str) -> Row | None:
    row = conn.execute(
        sa.select(alerts)
        .where(alerts.c.dedupe_key == dedupe_key, alerts.c.status.in_(OPEN_STATUSES))
        .order_by(alerts.c.last_seen.desc())
        .limit(1)
    ).first()
    return dict(row._mapping) if row is not None else None


def changed_since(conn: sa.Connection, tenants: Sequence[str], since: int) -> list[Row]:
    """Status, case and acknowledgement of ``tenants``' alerts changed at or after ``since``
    (µs) — what a cluster detection worker re-reads each tick, as the SOC works on any node."""
    c = alerts.c
    return as_rows(
        conn.execute(
            sa.select(c.id, c.status, c.case_id, c.acknowledged_at, c.updated_at).where(
                c.tenant.in_(list(tenants)), c.updated_at >= since
            )
        )
    )


def insert_alert(conn: sa.Connection, values: Row) -> int:
    return int(conn.execute(alerts.insert().values(**values).returning(alerts.c.id)).scalar_one())


def update_counts(conn: sa.Connection, updates: Sequence[Row]) -> None:
    """``updates``: dicts of ``_id``, ``count``, ``first_seen``, ``last_seen``, ``first_seq``,
    ``last_seq``, ``evidence_count``, ``updated_at`` (one statement for all)."""
    if not updates:
        return
    conn.execute(
        alerts.update()
        .where(alerts.c.id == sa.bindparam("_id"))
        .values(
            event_count=sa.bindparam("count"),
            first_seen=sa.bindparam("first_seen"),
            last_seen=sa.bindparam("last_seen"),
            first_seq=sa.bindparam("first_seq"),
            last_seq=sa.bindparam("last_seq"),
            evidence_count=sa.bindparam("evidence_count"),
            updated_at=sa.bindparam("updated_at"),
        ),
        list(updates),
    )


def add_evidence(conn: sa.Connection, rows: Sequence[tuple[int, str, int]]) -> None:
    """(alert id, tenant, seq) links; a seq already linked to the alert is ignored."""
    if not rows:
        return
    seen: set[tuple[int, int]] = set()
    unique = []
    for aid, tenant, seq in rows:
        if (aid, seq) not in seen:
            seen.add((aid, seq))
            unique.append({"alert_id": aid, "tenant": tenant, "seq": seq})
    existing = {
        (int(r.alert_id), int(r.seq))
        for r in conn.execute(
            sa.select(alert_events.c.alert_id, alert_events.c.seq).where(
                alert_events.c.alert_id.in_({u["alert_id"] for u in unique})
            )
        )
    }
    fresh = [u for u in unique if (u["alert_id"], u["seq"]) not in existing]
    if fresh:
        conn.execute(alert_events.insert(), fresh)


def add_entities(conn: sa.Connection, alert_id: int, tenant: str, entities: dict[str, str]) -> None:
    rows = [
        {"alert_id": alert_id, "tenant": tenant, "kind": k, "value": v[:512]}
        for k, v in entities.items()
        if v
    ]
    if rows:
        conn.execute(alert_entities.insert(), rows)


def get(conn: sa.Connection, alert_id: int) -> Row | None:
    row = conn.execute(sa.select(alerts).where(alerts.c.id == alert_id)).first()
    return dict(row._mapping) if row is not None else None


def get_many(conn: sa.Connection, alert_ids: Iterable[int]) -> list[Row]:
    ids = list(alert_ids)
    if not ids:
        return []
    return as_rows(conn.execute(sa.select(alerts).where(alerts.c.id.in_(ids)).order_by(alerts.c.id)))


def of_cases(conn: sa.Connection, case_ids: Iterable[int]) -> list[Row]:
    return as_rows(
        conn.execute(sa.select(alerts).where(alerts.c.case_id.in_(list(case_ids))).order_by(alerts.c.id))
    )


def listing(
    conn: sa.Connection,
    tenants: Sequence[str],
    *,
    status: Sequence[str] = (),
    min_rank_levels: Sequence[str] = (),
    rule_id: str | None = None,
    case_id: int | None = None,
    since: int | None = None,
    until: int | None = None,
    limit: int = 100,
    offset: int = 0,
) -> tuple[list[Row], int]:
    """Alerts of ``tenants``, newest activity first, and how many match in all."""
    where: list[sa.ColumnElement[bool]] = [alerts.c.tenant.in_(list(tenants))]
    if status:
        where.append(alerts.c.status.in_(list(status)))
    if min_rank_levels:
        where.append(alerts.c.level.in_(list(min_rank_levels)))
    if rule_id:
        where.append(alerts.c.rule_id == rule_id)
    if case_id is not None:
        where.append(alerts.c.case_id == case_id)
    if since is not None:
        where.append(alerts.c.last_seen >= since)
    if until is not None:
        where.append(alerts.c.first_seen <= until)
    total = int(conn.execute(sa.select(sa.func.count()).select_from(alerts).where(*where)).scalar_one())
    rows = as_rows(
        conn.execute(
            sa.select(alerts)
            .where(*where)
            .order_by(alerts.c.last_seen.desc(), alerts.c.id.desc())
            .limit(limit)
            .offset(offset)
        )
    )
    return rows, total


def evidence(conn: sa.Connection, alert_id: int) -> list[int]:
    return [
        int(s)
        for s in conn.execute(
            sa.select(alert_events.c.seq)
            .where(alert_events.c.alert_id == alert_id)
            .order_by(alert_events.c.seq)
        ).scalars()
    ]


def entities(conn: sa.Connection, alert_ids: Sequence[int]) -> dict[int, dict[str, str]]:
    out: dict[int, dict[str, str]] = {}
    if not alert_ids:
        return out
    for r in conn.execute(sa.select(alert_entities).where(alert_entities.c.alert_id.in_(list(alert_ids)))):
        out.setdefault(int(r.alert_id), {})[str(r.kind)] = str(r.value)
    return out


def set_status(conn: sa.Connection, alert_ids: Sequence[int], values: Row) -> None:
    if alert_ids:
        conn.execute(alerts.update().where(alerts.c.id.in_(list(alert_ids))).values(**values))


def set_case(conn: sa.Connection, alert_ids: Sequence[int], case_id: int | None, at: int) -> None:
    if alert_ids:
        conn.execute(
            alerts.update().where(alerts.c.id.in_(list(alert_ids))).values(case_id=case_id, updated_at=at)
        )


def case_for_entities(
    conn: sa.Connection, tenant: str, pairs: Sequence[tuple[str, str]], since: int, exclude_alert: int
) -> int | None:
    """The open case of ``tenant`` holding an alert active since ``since`` that shares one of
    the (kind, value) entity pairs — the most recently active one."""
    if not pairs:
        return None
    match = sa.or_(*[sa.and_(alert_entities.c.kind == k, alert_entities.c.value == v) for k, v in pairs])
    row = conn.execute(
        sa.select(alerts.c.case_id)
        .join(alert_entities, alert_entities.c.alert_id == alerts.c.id)
        .join(cases, cases.c.id == alerts.c.case_id)
        .where(
            alert_entities.c.tenant == tenant,
            match,
            alerts.c.id != exclude_alert,
            alerts.c.last_seen >= since,
            cases.c.status.in_(OPEN_STATUSES),
        )
        .order_by(alerts.c.last_seen.desc())
        .limit(1)
    ).first()
    return int(row.case_id) if row is not None else None


def evidence_seqs(engine: sa.Engine, tenant: str) -> list[tuple[int, int]]:
    """Journal seqs of ``tenant`` that an alert still needs as evidence, as sorted, merged
    (first, last) ranges: the events of every open alert, of every alert in an open case and
    of every alert in a case marked significant under NIS2 (its evidence outlives closing)."""
    held = sa.or_(
        alerts.c.status.in_(OPEN_STATUSES),
        cases.c.status.in_(OPEN_STATUSES),
        cases.c.significant.is_(True),
    )
    with engine.connect() as conn:
        seqs = conn.execute(
            sa.select(alert_events.c.seq)
            .join(alerts, alerts.c.id == alert_events.c.alert_id)
            .outerjoin(cases, cases.c.id == alerts.c.case_id)
            .where(alert_events.c.tenant == tenant, held)
            .distinct()
            .order_by(alert_events.c.seq)
        ).scalars()
        ranges: list[tuple[int, int]] = []
        for s in seqs:
            seq = int(s)
            if ranges and seq == ranges[-1][1] + 1:
                ranges[-1] = (ranges[-1][0], seq)
            else:
                ranges.append((seq, seq))
    return ranges


def indicators(
    conn: sa.Connection,
    tenants: Sequence[str],
    kinds: Sequence[str],
    since: int,
    min_tenants: int,
    limit: int,
) -> list[Row]:
    """Entity values seen in alerts of at least ``min_tenants`` tenants since ``since``."""
    n_tenants = sa.func.count(sa.distinct(alert_entities.c.tenant))
    rows = conn.execute(
        sa.select(
            alert_entities.c.kind,
            alert_entities.c.value,
            n_tenants.label("tenant_count"),
            sa.func.count(sa.distinct(alert_entities.c.alert_id)).label("alert_count"),
            sa.func.sum(alerts.c.event_count).label("event_count"),
            sa.func.min(alerts.c.first_seen).label("first_seen"),
            sa.func.max(alerts.c.last_seen).label("last_seen"),
        )
        .join(alerts, alerts.c.id == alert_entities.c.alert_id)
        .where(
            alert_entities.c.tenant.in_(list(tenants)),
            alert_entities.c.kind.in_(list(kinds)),
            alerts.c.last_seen >= since,
        )
        .group_by(alert_entities.c.kind, alert_entities.c.value)
        .having(n_tenants >= min_tenants)
        .order_by(n_tenants.desc(), sa.func.max(alerts.c.last_seen).desc())
        .limit(limit)
    )
    out = as_rows(rows)
    for r in out:
        detail = conn.execute(
            sa.select(
                alerts.c.tenant, sa.func.count().label("alerts"), sa.func.max(alerts.c.id).label("latest")
            )
            .join(alert_entities, alert_entities.c.alert_id == alerts.c.id)
            .where(
                alert_entities.c.kind == r["kind"],
                alert_entities.c.value == r["value"],
                alert_entities.c.tenant.in_(list(tenants)),
                alerts.c.last_seen >= since,
            )
            .group_by(alerts.c.tenant)
            .order_by(alerts.c.tenant)
        )
        r["tenants"] = [
            {"tenant": str(d.tenant), "alerts": int(d.alerts), "latest_alert": int(d.latest)} for d in detail
        ]
    return out


def counts_by(
    conn: sa.Connection, tenants: Sequence[str], since: int, column: str
) -> list[tuple[str, str, int]]:
    """(value of ``column``, level, alerts) for the dashboard."""
    col = alerts.c[column]
    return [
        (str(r[0]), str(r[1]), int(r[2]))
        for r in conn.execute(
            sa.select(col, alerts.c.level, sa.func.count())
            .where(alerts.c.tenant.in_(list(tenants)), alerts.c.created_at >= since)
            .group_by(col, alerts.c.level)
        )
    ]
