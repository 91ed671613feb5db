"""The two case operations both ingest (grouping) and the SOC (``cases``) need: open a case,
and put alerts into one. Both run inside the caller's transaction and return the history
lines they wrote."""

from __future__ import annotations

import sqlalchemy as sa

from norrvakt.alerts.model import Alert, Change, level_rank
from norrvakt.alerts.records import change_row
from norrvakt.alerts.workflow import NEW
from norrvakt.state import alerts as alert_rows
from norrvakt.state import cases as case_rows


def record(conn: sa.Connection, changes: list[Change]) -> list[Change]:
    case_rows.add_history(conn, [change_row(c) for c in changes])
    return changes


def open_case(
    conn: sa.Connection,
    tenant: str,
    title: str,
    severity: str,
    actor: str,
    at: int,
    detected_at: int | None,
) -> tuple[dict[str, object], list[Change]]:
    """The new case's row and its first history line."""
    row: dict[str, object] = {
        "tenant": tenant,
        "title": title[:512],
        "status": NEW,
        "severity": severity,
        "created_by": actor[:128],
        "created_at": at,
        "updated_at": at,
        "detected_at": detected_at,
    }
    case_id = case_rows.insert(conn, row)
    row["id"] = case_id
    return row, record(conn, [Change(case_id, tenant, at, actor, "created", "title", "", title)])


def add_alerts(
    conn: sa.Connection, case: dict[str, object], alerts: list[Alert], actor: str, at: int
) -> list[Change]:
    """Put ``alerts`` into ``case`` (a case row); raises the case's severity to the highest
    alert level and its detected time to the earliest first event."""
    case_id = int(str(case["id"]))
    tenant = str(case["tenant"])
    changes = [
        Change(case_id, tenant, at, actor, "alert-added", "alert", str(a.case_id or ""), str(a.id))
        for a in alerts
    ]
    alert_rows.set_case(conn, [a.id for a in alerts], case_id, at)
    values: dict[str, object] = {"updated_at": at}
    top = max(alerts, key=lambda a: level_rank(a.level))
    if level_rank(top.level) > level_rank(str(case["severity"])):
        values["severity"] = top.level
        changes.append(
            Change(case_id, tenant, at, actor, "severity", "severity", str(case["severity"]), top.level)
        )
    earliest = min(a.first_seen for a in alerts)
    detected = case.get("detected_at")
    if detected is None or earliest < int(str(detected)):
        values["detected_at"] = earliest
    case_rows.update(conn, case_id, values)
    for a in alerts:
        a.case_id = case_id
    return record(conn, changes)
