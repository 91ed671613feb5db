"""State rows → the workflow's records (the state layer returns plain dictionaries)."""

from __future__ import annotations

import json
from typing import Any

from norrvakt.alerts.model import Alert, Case, Change


def alert_from_row(row: dict[str, Any]) -> Alert:
    return Alert(
        id=int(row["id"]),
        tenant=str(row["tenant"]),
        rule_id=str(row["rule_id"]),
        rule_title=str(row["rule_title"]),
        level=str(row["level"]),
        tags=list(json.loads(row["tags"])),
        source=str(row["source"]),
        dedupe_key=str(row["dedupe_key"]),
        key_values=dict(json.loads(row["key_values"])),
        entities=dict(json.loads(row["entities"])),
        status=str(row["status"]),
        case_id=row["case_id"],
        count=int(row["event_count"]),
        first_seen=int(row["first_seen"]),
        last_seen=int(row["last_seen"]),
        first_seq=row["first_seq"],
        last_seq=row["last_seq"],
        evidence_count=int(row["evidence_count"]),
        created_at=int(row["created_at"]),
        updated_at=int(row["updated_at"]),
        acknowledged_at=row["acknowledged_at"],
        resolved_at=row["resolved_at"],
    )


def alert_row(alert: Alert) -> dict[str, Any]:
    """The column values of a new alert (no id)."""
    return {
        "tenant": alert.tenant,
        "rule_id": alert.rule_id[:128],
        "rule_title": alert.rule_title[:512],
        "level": alert.level,
        "tags": json.dumps(alert.tags),
        "source": alert.source[:64],
        "dedupe_key": alert.dedupe_key,
        "key_values": json.dumps(alert.key_values, ensure_ascii=False),
        "entities": json.dumps(alert.entities, ensure_ascii=False),
        "status": alert.status,
        "case_id": alert.case_id,
        "event_count": alert.count,
        "first_seen": alert.first_seen,
        "last_seen": alert.last_seen,
        "first_seq": alert.first_seq,
        "last_seq": alert.last_seq,
        "evidence_count": alert.evidence_count,
        "created_at": alert.created_at,
        "updated_at": alert.updated_at,
    }


def case_from_row(row: dict[str, Any], alert_ids: list[int] | None = None) -> Case:
    return Case(
        id=int(row["id"]),
        tenant=str(row["tenant"]),
        title=str(row["title"]),
        status=str(row["status"]),
        severity=str(row["severity"]),
        assignee=row["assignee"],
        created_by=str(row["created_by"]),
        created_at=int(row["created_at"]),
        updated_at=int(row["updated_at"]),
        acknowledged_at=row["acknowledged_at"],
        resolved_at=row["resolved_at"],
        escalated_at=row["escalated_at"],
        merged_into=row["merged_into"],
        detected_at=row["detected_at"],
        aware_at=row["aware_at"],
        significant=row["significant"],
        early_warning_sent_at=row["early_warning_sent_at"],
        notification_sent_at=row["notification_sent_at"],
        final_report_at=row["final_report_at"],
        alert_ids=list(alert_ids or []),
    )


def change_row(change: Change) -> dict[str, Any]:
    return {
        "case_id": change.case_id,
        "tenant": change.tenant,
        "at": change.at,
        "actor": change.actor[:128],
        "action": change.action,
        "field": change.field,
        "old_value": change.old,
        "new_value": change.new,
    }


def change_from_row(row: dict[str, Any]) -> Change:
    return Change(
        case_id=int(row["case_id"]),
        tenant=str(row["tenant"]),
        at=int(row["at"]),
        actor=str(row["actor"]),
        action=str(row["action"]),
        field=str(row["field"]),
        old=str(row["old_value"]),
        new=str(row["new_value"]),
    )
