"""NIS2 reporting times (the Swedish Cybersecurity Act, cybersäkerhetslagen 2025:1506, after
Directive (EU) 2022/2555 art. 23): for a *significant* incident an early warning within 24
hours of becoming aware of it, an incident notification within 72 hours, and a final report
within one month of the notification.

:func:`deadlines` computes when each is due and which are overdue; the case keeps when the
incident was detected, when the organisation became aware of it, whether it is significant
and when each report was sent.
"""

from __future__ import annotations

import calendar
import datetime as dt
from typing import Any

from norrvakt.alerts.model import Case

HOUR_US = 3600 * 1_000_000
EARLY_WARNING_HOURS = 24
NOTIFICATION_HOURS = 72

REPORTS = ("early_warning", "notification", "final_report")
REPORT_FIELDS = ("early_warning_sent_at", "notification_sent_at", "final_report_at")
TIME_FIELDS = ("detected_at", "aware_at", *REPORT_FIELDS)


def add_month(us: int) -> int:
    """The same time one calendar month later (the last day of a shorter month if needed)."""
    t = dt.datetime.fromtimestamp(us / 1_000_000, dt.UTC)
    year, month = (t.year + 1, 1) if t.month == 12 else (t.year, t.month + 1)
    day = min(t.day, calendar.monthrange(year, month)[1])
    return int(t.replace(year=year, month=month, day=day).timestamp() * 1_000_000)


def deadlines(case: Case, now: int) -> dict[str, Any]:
    """Reporting times of ``case``: what was recorded, what is due when, what is overdue."""
    out: dict[str, Any] = {
        "significant": case.significant,
        "detected_at": case.detected_at,
        "aware_at": case.aware_at,
        "early_warning_sent_at": case.early_warning_sent_at,
        "notification_sent_at": case.notification_sent_at,
        "final_report_at": case.final_report_at,
        "early_warning_due": None,
        "notification_due": None,
        "final_report_due": None,
        "overdue": [],
        "next_due": None,
        # per report: met (sent by its due time), missed (sent late), overdue (not sent, past due),
        # pending (not sent, not yet due); None while the case is not significant
        "status": dict.fromkeys(REPORTS),
    }
    if not case.significant:
        return out
    aware = case.aware_at or case.detected_at or case.created_at
    early_due = aware + EARLY_WARNING_HOURS * HOUR_US
    notification_due = aware + NOTIFICATION_HOURS * HOUR_US
    final_due = add_month(case.notification_sent_at or notification_due)
    out.update(early_warning_due=early_due, notification_due=notification_due, final_report_due=final_due)
    reports = (
        ("early_warning", early_due, case.early_warning_sent_at),
        ("notification", notification_due, case.notification_sent_at),
        ("final_report", final_due, case.final_report_at),
    )
    pending = [(name, due) for name, due, done in reports if done is None]
    out["status"] = {
        name: ("overdue" if due < now else "pending")
        if done is None
        else ("met" if done <= due else "missed")
        for name, due, done in reports
    }
    out["overdue"] = [name for name, due in pending if due < now]
    out["next_due"] = min((due for _name, due in pending), default=None)
    return out
