"""The state database's figures for the scheduled reports (norrvakt/reports): alerts, cases,
NIS2 times, log follow-up and integrity alerts of a period. Every read takes the tenants it
may read; a period is [since, until) in µs.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import sqlalchemy as sa

from norrvakt.state.db import (
    Row,
    alert_entities,
    alerts,
    as_rows,
    cases,
    followup_items,
    followup_plans,
    followup_rounds,
)


def alerts_in(conn: sa.Connection, tenants: Sequence[str], since: int, until: int) -> list[Row]:
    """Alerts raised in the period (``tags`` and ``entities`` decoded)."""
    c = alerts.c
    rows = as_rows(
        conn.execute(
            sa.select(
                c.id, c.tenant, c.rule_id, c.rule_title, c.level, c.tags, c.status, c.entities, c.case_id,
                c.event_count, c.first_seen, c.created_at,
            ).where(c.tenant.in_(list(tenants)), c.created_at >= since, c.created_at < until)
        )
    )  # fmt: skip
    for r in rows:
        r["tags"] = json.loads(r["tags"])
        r["entities"] = json.loads(r["entities"])
    return rows


def cases_in(conn: sa.Connection, tenants: Sequence[str], since: int, until: int) -> list[Row]:
    """Cases opened in the period (merged ones left out: their alerts count in the case they
    went into), each with ``tags``: the ATT&CK tags of all its alerts."""
    c = cases.c
    rows = as_rows(
        conn.execute(
            sa.select(
                c.id, c.tenant, c.severity, c.status, c.created_at, c.acknowledged_at, c.resolved_at
            ).where(
                c.tenant.in_(list(tenants)), c.created_at >= since, c.created_at < until, c.status != "merged"
            )
        )
    )
    tags: dict[int, set[str]] = {int(r["id"]): set() for r in rows}
    if tags:
        for case_id, raw in conn.execute(
            sa.select(alerts.c.case_id, alerts.c.tags).where(alerts.c.case_id.in_(list(tags)))
        ):
            tags[int(case_id)].update(json.loads(raw))
    for r in rows:
        r["tags"] = sorted(tags[int(r["id"])])
    return rows


def open_cases_at(conn: sa.Connection, tenants: Sequence[str], at: int) -> int:
    """Cases opened before ``at`` and not resolved (or judged false positive) by then."""
    c = cases.c
    return int(
        conn.execute(
            sa.select(sa.func.count()).where(
                c.tenant.in_(list(tenants)),
                c.created_at < at,
                c.status != "merged",
                sa.or_(c.resolved_at.is_(None), c.resolved_at >= at),
            )
        ).scalar_one()
    )


def significant_cases(conn: sa.Connection, tenants: Sequence[str], since: int, until: int) -> list[Row]:
    """Cases marked significant (NIS2) that concern the period: the organisation became aware of
    the incident before its end and the final report was not made before its start."""
    c = cases.c
    aware = sa.func.coalesce(c.aware_at, c.detected_at, c.created_at)
    return as_rows(
        conn.execute(
            sa.select(cases)
            .where(
                c.tenant.in_(list(tenants)),
                c.significant.is_(True),
                aware < until,
                sa.or_(c.final_report_at.is_(None), c.final_report_at >= since),
            )
            .order_by(c.id)
        )
    )


def followup_counts(conn: sa.Connection, tenants: Sequence[str], since: int, until: int) -> dict[str, Row]:
    """Per tenant: follow-up rounds drawn, accesses reviewed (decided) and rounds signed off in
    the period, and the rounds still open at its end."""
    r, i = followup_rounds.c, followup_items.c
    out: dict[str, Row] = {
        t: {"drawn": 0, "reviewed": 0, "signed_off": 0, "open": 0, "plans": 0} for t in tenants
    }
    scope = list(tenants)
    queries = {
        "drawn": sa.select(r.tenant, sa.func.count()).where(r.created_at >= since, r.created_at < until),
        "signed_off": sa.select(r.tenant, sa.func.count()).where(
            r.signed_off_at >= since, r.signed_off_at < until
        ),
        "open": sa.select(r.tenant, sa.func.count()).where(
            r.created_at < until, sa.or_(r.signed_off_at.is_(None), r.signed_off_at >= until)
        ),
        "reviewed": sa.select(i.tenant, sa.func.count()).where(i.decided_at >= since, i.decided_at < until),
        "plans": sa.select(followup_plans.c.tenant, sa.func.count()).where(
            followup_plans.c.active.is_(True), followup_plans.c.created_at < until
        ),
    }
    for name, query in queries.items():
        tenant_col = query.selected_columns[0]
        for tenant, n in conn.execute(query.where(tenant_col.in_(scope)).group_by(tenant_col)):
            out[str(tenant)][name] = int(n)
    return out


def integrity_alerts(conn: sa.Connection, rule_id: str, since: int, until: int) -> list[Row]:
    """Alerts of the integrity watch (system tenant) raised in the period, with the tenants and
    the check they name (``norrvakt.tenants``, ``norrvakt.check``)."""
    c = alerts.c
    rows = as_rows(
        conn.execute(
            sa.select(
                c.id, c.rule_title, c.entities, c.event_count, c.first_seen, c.last_seen, c.status
            ).where(c.rule_id == rule_id, c.last_seen >= since, c.first_seen < until)
        )
    )
    for row in rows:
        row["entities"] = json.loads(row["entities"])
    return rows


def shared_indicators(
    conn: sa.Connection, tenants: Sequence[str], kinds: Sequence[str], since: int, until: int, limit: int
) -> list[Row]:
    """Entity values in alerts (raised in the period) of more than one of ``tenants``, with which."""
    e, a = alert_entities.c, alerts.c
    n_tenants = sa.func.count(sa.distinct(e.tenant))
    rows = as_rows(
        conn.execute(
            sa.select(
                e.kind,
                e.value,
                n_tenants.label("tenant_count"),
                sa.func.count(sa.distinct(e.alert_id)).label("alerts"),
            )
            .join(alerts, a.id == e.alert_id)
            .where(
                e.tenant.in_(list(tenants)),
                e.kind.in_(list(kinds)),
                a.created_at >= since,
                a.created_at < until,
            )
            .group_by(e.kind, e.value)
            .having(n_tenants > 1)
            .order_by(n_tenants.desc(), sa.func.count(sa.distinct(e.alert_id)).desc(), e.kind, e.value)
            .limit(limit)
        )
    )
    for r in rows:
        found = conn.execute(
            sa.select(sa.distinct(e.tenant))
            .join(alerts, a.id == e.alert_id)
            .where(
                e.kind == r["kind"], e.value == r["value"], e.tenant.in_(list(tenants)),
                a.created_at >= since, a.created_at < until,
            )
            .order_by(e.tenant)
        )  # fmt: skip
        r["tenants"] = [str(t) for (t,) in found]
    return rows
