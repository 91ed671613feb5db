"""Grouping: alerts about the same entity (user, host, source address) within a window make
one case. A new alert joins the open case of its tenant that holds an alert sharing one of
its entities and active within ``alerts.group_window_minutes``; otherwise it opens a case."""

from __future__ import annotations

import sqlalchemy as sa

from norrvakt.alerts.casebook import add_alerts, open_case
from norrvakt.alerts.model import Alert, Change
from norrvakt.config import AlertSettings
from norrvakt.state import alerts as alert_rows
from norrvakt.state import cases as case_rows

SYSTEM_ACTOR = "norrvakt"


def case_title(alert: Alert) -> str:
    """The rule and what it is about, e.g. "Password spraying — source.ip 185.220.101.7"."""
    for name in ("source.ip", "user.name", "host.name"):
        if value := alert.entities.get(name):
            return f"{alert.rule_title} — {name} {value}"
    return alert.rule_title


class Grouper:
    def __init__(self, settings: AlertSettings) -> None:
        self.fields = tuple(settings.group_fields)
        self.window_us = int(settings.group_window_minutes * 60 * 1_000_000)

    def place(self, conn: sa.Connection, alerts: list[Alert], at: int) -> list[Change]:
        """Put each new alert (in order of first event) into a case; returns the history written."""
        changes: list[Change] = []
        for alert in sorted(alerts, key=lambda a: (a.first_seen, a.id)):
            pairs = [(f, v) for f in self.fields if (v := alert.entities.get(f))]
            case_id = alert_rows.case_for_entities(
                conn, alert.tenant, pairs, alert.first_seen - self.window_us, alert.id
            )
            found = case_rows.get(conn, case_id) if case_id is not None else None
            case: dict[str, object]
            if found is None:
                case, opened = open_case(
                    conn, alert.tenant, case_title(alert), alert.level, SYSTEM_ACTOR, at, alert.first_seen
                )
                changes += opened
            else:
                case = found
            changes += add_alerts(conn, case, [alert], SYSTEM_ACTOR, at)
        return changes
