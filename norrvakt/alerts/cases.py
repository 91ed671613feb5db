"""Cases: what the SOC works on. Every change is checked against the caller's tenants, writes
a line to the case's append-only history (returned to the caller, who journals it) and keeps
the alerts of the case in step.

Ids outside the caller's tenants get the same answer as unknown ids (:class:`NotFound`), so
nobody learns which cases other municipalities have.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection
from typing import Any

import sqlalchemy as sa

from norrvakt.alerts import nis2
from norrvakt.alerts.casebook import add_alerts, open_case, record
from norrvakt.alerts.errors import InvalidInput, InvalidTransition, NotFound
from norrvakt.alerts.model import LEVEL_RANK, Alert, Case, Change
from norrvakt.alerts.records import alert_from_row, case_from_row, change_from_row
from norrvakt.alerts.service import AlertService
from norrvakt.alerts.workflow import ACKNOWLEDGED, CLOSED, MERGED, NEW, OPEN, check_transition
from norrvakt.event import now_us
from norrvakt.state import alerts as alert_rows
from norrvakt.state import cases as case_rows

Scope = Collection[str]
_UNSET: Any = object()
FUTURE_SLACK_US = 5 * 60 * 1_000_000  # clocks differ a little; reports are not sent from the future


class CaseService:
    def __init__(self, engine: sa.Engine, alerts: AlertService, *, clock: Callable[[], int] = now_us) -> None:
        self.engine = engine
        self.alerts = alerts
        self.clock = clock

    # -- reading -------------------------------------------------------------------------

    def get(self, case_id: int, scope: Scope) -> Case:
        with self.engine.connect() as conn:
            return self._case(conn, case_id, scope)

    def detail(self, case_id: int, scope: Scope) -> dict[str, Any]:
        with self.engine.connect() as conn:
            case = self._case(conn, case_id, scope)
            alerts = [alert_from_row(r).as_dict() for r in alert_rows.of_cases(conn, [case_id])]
            comments = case_rows.comments(conn, case_id)
            attachments = case_rows.attachments(conn, case_id)
        for a in attachments:
            a["params"] = json.loads(a["params"])
            a["result"] = json.loads(a["result"])
        return {
            **case.as_dict(),
            "alerts": alerts,
            "comments": comments,
            "attachments": attachments,
            "nis2": nis2.deadlines(case, self.clock()),
        }

    def listing(
        self,
        scope: Scope,
        *,
        status: list[str] | None = None,
        severity: list[str] | None = None,
        assignee: str | None = None,
        significant: bool | None = None,
        overdue: bool = False,
        limit: int = 100,
        offset: int = 0,
    ) -> tuple[list[dict[str, Any]], int]:
        now = self.clock()
        with self.engine.connect() as conn:
            if overdue:
                rows = case_rows.significant_open(conn, list(scope))
                found = [case_from_row(r) for r in rows]
                late = [c for c in found if nis2.deadlines(c, now)["overdue"]]
                late.sort(key=lambda c: c.id)
                total, page = len(late), late[offset : offset + limit]
            else:
                rows, total = case_rows.listing(
                    conn,
                    list(scope),
                    status=status or (),
                    severity=severity or (),
                    assignee=assignee,
                    significant=significant,
                    limit=limit,
                    offset=offset,
                )
                page = [case_from_row(r) for r in rows]
            ids = case_rows.alert_ids(conn, [c.id for c in page])
        out = []
        for c in page:
            c.alert_ids = ids.get(c.id, [])
            out.append({**c.as_dict(), "nis2": nis2.deadlines(c, now)})
        return out, total

    def history(self, case_id: int, scope: Scope) -> list[Change]:
        with self.engine.connect() as conn:
            self._case(conn, case_id, scope)
            return [change_from_row(r) for r in case_rows.history(conn, case_id)]

    # -- changing ------------------------------------------------------------------------

    def create(
        self,
        scope: Scope,
        tenant: str,
        title: str,
        actor: str,
        *,
        severity: str = "",
        alert_ids: list[int] | None = None,
    ) -> tuple[Case, list[Change]]:
        if tenant not in scope:
            raise NotFound(f"no tenant {tenant!r} among yours")
        if not title.strip():
            raise InvalidInput("a case needs a title")
        if severity and severity not in LEVEL_RANK:
            raise InvalidInput(f"severity {severity!r}: one of {', '.join(LEVEL_RANK)}")
        now = self.clock()
        with self.engine.begin() as conn:
            alerts = self._alerts(conn, alert_ids or [], scope)
            for a in alerts:
                if a.tenant != tenant:
                    raise InvalidInput(f"alert {a.id} belongs to tenant {a.tenant!r}, the case to {tenant!r}")
            level = severity or max(
                (a.level for a in alerts), key=lambda lv: LEVEL_RANK[lv], default="medium"
            )
            detected = min((a.first_seen for a in alerts), default=None)
            row, changes = open_case(conn, tenant, title.strip(), level, actor, now, detected)
            old_cases: set[int | None] = {a.case_id for a in alerts if a.case_id is not None}
            if alerts:
                changes += self._leave(conn, alerts, actor, now)
                changes += add_alerts(conn, row, alerts, actor, now)
            case = self._case(conn, int(str(row["id"])), scope)
            changes += self._close_if_empty(conn, old_cases, actor, now)
        return case, changes

    def set_status(
        self, case_id: int, status: str, actor: str, scope: Scope, note: str = ""
    ) -> tuple[Case, list[Change]]:
        now = self.clock()
        with self.engine.begin() as conn:
            case = self._case(conn, case_id, scope, for_update=True)
            self._not_merged(case)
            check_transition(f"case {case_id}", case.status, status)
            values: dict[str, Any] = {"status": status, "updated_at": now}
            alert_values: dict[str, Any] = {"status": status, "updated_at": now}
            if case.status == NEW and case.acknowledged_at is None:
                values["acknowledged_at"] = now  # the first human response, whatever it was
                alert_values["acknowledged_at"] = now
                if case.aware_at is None:
                    values["aware_at"] = now  # NIS2 clocks run from awareness; editable later
            if status in CLOSED:
                values["resolved_at"] = now
                alert_values["resolved_at"] = now
            elif case.status in CLOSED:  # reopened
                values["resolved_at"] = None
                alert_values["resolved_at"] = None
            case_rows.update(conn, case_id, values)
            alert_rows.set_status(conn, case.alert_ids, alert_values)
            changes = [Change(case_id, case.tenant, now, actor, "status", "status", case.status, status)]
            if note.strip():
                case_rows.add_comment(
                    conn,
                    {
                        "case_id": case_id,
                        "tenant": case.tenant,
                        "at": now,
                        "author": actor,
                        "text": note.strip(),
                    },
                )
                changes.append(
                    Change(case_id, case.tenant, now, actor, "comment", "comment", "", note.strip()[:2000])
                )
            record(conn, changes)
            fresh = self._case(conn, case_id, scope)
            rows = alert_rows.get_many(conn, case.alert_ids)
        self.alerts.refresh(rows)
        return fresh, changes

    def update(
        self,
        case_id: int,
        actor: str,
        scope: Scope,
        *,
        title: str | None = None,
        severity: str | None = None,
        assignee: str | None = _UNSET,
    ) -> tuple[Case, list[Change]]:
        now = self.clock()
        with self.engine.begin() as conn:
            case = self._case(conn, case_id, scope, for_update=True)
            self._not_merged(case)
            values: dict[str, Any] = {}
            changes: list[Change] = []
            if title is not None:
                if not title.strip():
                    raise InvalidInput("a case needs a title")
                values["title"] = title.strip()[:512]
                changes.append(
                    Change(case_id, case.tenant, now, actor, "title", "title", case.title, title.strip())
                )
            if severity is not None:
                if severity not in LEVEL_RANK:
                    raise InvalidInput(f"severity {severity!r}: one of {', '.join(LEVEL_RANK)}")
                values["severity"] = severity
                changes.append(
                    Change(case_id, case.tenant, now, actor, "severity", "severity", case.severity, severity)
                )
            if assignee is not _UNSET:
                who = (assignee or "").strip() or None
                values["assignee"] = who
                changes.append(
                    Change(
                        case_id, case.tenant, now, actor, "assign", "assignee", case.assignee or "", who or ""
                    )
                )
            if not values:
                raise InvalidInput("nothing to change: give title, severity or assignee")
            values["updated_at"] = now
            case_rows.update(conn, case_id, values)
            record(conn, changes)
            return self._case(conn, case_id, scope), changes

    def set_nis2(self, case_id: int, actor: str, scope: Scope, **fields: Any) -> tuple[Case, list[Change]]:
        """Record NIS2 facts: ``significant`` (bool or None) and the times in
        :data:`nis2.TIME_FIELDS` (microseconds, or None to clear)."""
        unknown = set(fields) - {"significant", *nis2.TIME_FIELDS}
        if unknown:
            raise InvalidInput(f"unknown NIS2 field(s): {', '.join(sorted(unknown))}")
        if not fields:
            raise InvalidInput(f"nothing to change: give significant or one of {', '.join(nis2.TIME_FIELDS)}")
        now = self.clock()
        with self.engine.begin() as conn:
            case = self._case(conn, case_id, scope, for_update=True)
            self._not_merged(case)
            significant = fields.get("significant", case.significant)
            for name in nis2.TIME_FIELDS:
                value = fields.get(name)
                if value is not None and value > now + FUTURE_SLACK_US:
                    raise InvalidInput(f"{name}: {value} lies in the future")
            if any(fields.get(n) is not None for n in nis2.REPORT_FIELDS) and not significant:
                raise InvalidInput(
                    "reports are recorded for significant incidents: set significant=true first"
                )
            changes = []
            for name, value in fields.items():
                old = getattr(case, name)
                if old != value:
                    changes.append(
                        Change(case_id, case.tenant, now, actor, "nis2", name, _text(old), _text(value))
                    )
            if changes:
                case_rows.update(conn, case_id, {**fields, "updated_at": now})
                record(conn, changes)
            return self._case(conn, case_id, scope), changes

    def comment(
        self, case_id: int, actor: str, scope: Scope, text: str
    ) -> tuple[dict[str, Any], list[Change]]:
        if not text.strip():
            raise InvalidInput("an empty comment")
        now = self.clock()
        with self.engine.begin() as conn:
            case = self._case(conn, case_id, scope)
            row = {
                "case_id": case_id,
                "tenant": case.tenant,
                "at": now,
                "author": actor,
                "text": text.strip(),
            }
            row["id"] = case_rows.add_comment(conn, row)
            case_rows.update(conn, case_id, {"updated_at": now})
            changes = record(
                conn,
                [Change(case_id, case.tenant, now, actor, "comment", "comment", "", text.strip()[:2000])],
            )
        return row, changes

    def attach(
        self,
        case_id: int,
        actor: str,
        scope: Scope,
        *,
        title: str,
        query: str,
        params: dict[str, Any],
        total: int,
        rows: list[dict[str, Any]],
    ) -> tuple[dict[str, Any], list[Change]]:
        """Keep a search result with the case, as it was when attached."""
        now = self.clock()
        with self.engine.begin() as conn:
            case = self._case(conn, case_id, scope)
            row: dict[str, Any] = {
                "case_id": case_id,
                "tenant": case.tenant,
                "at": now,
                "author": actor,
                "title": (title or query or "search")[:512],
                "query": query,
                "params": json.dumps(params, ensure_ascii=False),
                "total": total,
                "result": json.dumps(rows, ensure_ascii=False, default=str),
            }
            row["id"] = case_rows.add_attachment(conn, row)
            case_rows.update(conn, case_id, {"updated_at": now})
            changes = record(
                conn,
                [
                    Change(
                        case_id, case.tenant, now, actor, "attach", "attachment", "", f"{row['id']}: {query}"
                    )
                ],
            )
        return {k: v for k, v in row.items() if k != "result"} | {"rows": len(rows)}, changes

    def merge(
        self, target_id: int, source_ids: list[int], actor: str, scope: Scope
    ) -> tuple[Case, list[Change]]:
        """Move every alert of ``source_ids`` into ``target_id``; the sources end as ``merged``."""
        sources = [s for s in dict.fromkeys(source_ids) if s != target_id]
        now = self.clock()
        with self.engine.begin() as conn:
            target = self._case(conn, target_id, scope, for_update=True)
            self._not_merged(target)
            if not sources:
                raise InvalidInput("merge needs at least one other case")
            changes: list[Change] = []
            for sid in sources:
                src = self._case(conn, sid, scope, for_update=True)
                self._not_merged(src)
                if src.tenant != target.tenant:
                    raise InvalidInput(
                        f"case {sid} belongs to {src.tenant!r}, case {target_id} to {target.tenant!r}"
                    )
                moved = self._alerts(conn, src.alert_ids, scope)
                if moved:
                    changes += add_alerts(conn, _row(target), moved, actor, now)
                case_rows.update(conn, sid, {"status": MERGED, "merged_into": target_id, "updated_at": now})
                changes += record(
                    conn,
                    [
                        Change(sid, src.tenant, now, actor, "merged", "status", src.status, MERGED),
                        Change(sid, src.tenant, now, actor, "merged", "merged_into", "", str(target_id)),
                        Change(target_id, target.tenant, now, actor, "merge", "case", "", str(sid)),
                    ],
                )
                target = self._case(conn, target_id, scope)
            return target, changes

    def split(
        self, case_id: int, alert_ids: list[int], actor: str, scope: Scope, title: str = ""
    ) -> tuple[Case, list[Change]]:
        """A new case for ``alert_ids`` of ``case_id`` (at least one alert must stay behind)."""
        now = self.clock()
        with self.engine.begin() as conn:
            case = self._case(conn, case_id, scope, for_update=True)
            self._not_merged(case)
            wanted = list(dict.fromkeys(alert_ids))
            strangers = [a for a in wanted if a not in case.alert_ids]
            if not wanted or strangers:
                raise InvalidInput(
                    f"alert(s) {strangers or '[]'} are not in case {case_id} (its alerts: {case.alert_ids})"
                )
            if len(wanted) == len(case.alert_ids):
                raise InvalidInput(
                    f"splitting off every alert of case {case_id} leaves it empty; keep at least one"
                )
            moved = self._alerts(conn, wanted, scope)
            level = max((a.level for a in moved), key=lambda lv: LEVEL_RANK[lv])
            row, changes = open_case(
                conn,
                case.tenant,
                title.strip() or f"{case.title} (split from {case_id})",
                level,
                actor,
                now,
                min(a.first_seen for a in moved),
            )
            changes += self._leave(conn, moved, actor, now)
            changes += add_alerts(conn, row, moved, actor, now)
            return self._case(conn, int(str(row["id"])), scope), changes

    def move_alert(
        self, alert_id: int, to_case_id: int, actor: str, scope: Scope
    ) -> tuple[Case, list[Change]]:
        now = self.clock()
        with self.engine.begin() as conn:
            (alert,) = self._alerts(conn, [alert_id], scope)
            target = self._case(conn, to_case_id, scope, for_update=True)
            self._not_merged(target)
            if alert.tenant != target.tenant:
                raise InvalidInput(
                    f"alert {alert_id} belongs to {alert.tenant!r}, case {to_case_id} to {target.tenant!r}"
                )
            if alert.case_id == to_case_id:
                raise InvalidInput(f"alert {alert_id} is in case {to_case_id} already")
            old_case = alert.case_id
            changes = self._leave(conn, [alert], actor, now)
            changes += add_alerts(conn, _row(target), [alert], actor, now)
            changes += self._close_if_empty(conn, {old_case} if old_case else set(), actor, now)
            return self._case(conn, to_case_id, scope), changes

    def set_alert_status(self, alert_id: int, status: str, actor: str, scope: Scope) -> Alert:
        """For alerts outside any case (``alerts.auto_case = false``); an alert in a case
        follows its case."""
        now = self.clock()
        with self.engine.begin() as conn:
            (alert,) = self._alerts(conn, [alert_id], scope)
            if alert.case_id is not None:
                raise InvalidTransition(
                    f"alert {alert_id} belongs to case {alert.case_id}; change the status of the case"
                )
            check_transition(f"alert {alert_id}", alert.status, status)
            values: dict[str, Any] = {"status": status, "updated_at": now}
            if alert.acknowledged_at is None:
                values["acknowledged_at"] = now
            values["resolved_at"] = now if status in CLOSED else None
            alert_rows.set_status(conn, [alert_id], values)
            rows = alert_rows.get_many(conn, [alert_id])
        self.alerts.refresh(rows)
        return alert_from_row(rows[0])

    # -- helpers -------------------------------------------------------------------------

    def _case(self, conn: sa.Connection, case_id: int, scope: Scope, *, for_update: bool = False) -> Case:
        row = case_rows.get(conn, case_id, for_update=for_update)
        if row is None or row["tenant"] not in scope:
            raise NotFound(f"no case {case_id}")
        return case_from_row(row, case_rows.alert_ids(conn, [case_id])[case_id])

    def _alerts(self, conn: sa.Connection, alert_ids: list[int], scope: Scope) -> list[Alert]:
        rows = {int(r["id"]): r for r in alert_rows.get_many(conn, alert_ids)}
        missing = [a for a in alert_ids if a not in rows or rows[a]["tenant"] not in scope]
        if missing:
            raise NotFound(f"no alert(s) {', '.join(map(str, missing))}")
        return [alert_from_row(rows[a]) for a in alert_ids]

    def _not_merged(self, case: Case) -> None:
        if case.status == MERGED:
            raise InvalidTransition(
                f"case {case.id} was merged into case {case.merged_into}; change that one"
            )

    def _leave(self, conn: sa.Connection, alerts: list[Alert], actor: str, at: int) -> list[Change]:
        """History lines on the cases the alerts leave."""
        out = []
        for a in alerts:
            if a.case_id is not None:
                row = case_rows.get(conn, a.case_id)
                if row is not None:
                    out.append(
                        Change(
                            a.case_id, str(row["tenant"]), at, actor, "alert-removed", "alert", str(a.id), ""
                        )
                    )
        return record(conn, out)

    def _close_if_empty(
        self, conn: sa.Connection, case_ids: set[int | None], actor: str, at: int
    ) -> list[Change]:
        """A case whose last alert moved away is closed as resolved (it has nothing left to work on)."""
        out: list[Change] = []
        for cid in case_ids:
            if cid is None:
                continue
            row = case_rows.get(conn, cid)
            if row is None or row["status"] not in OPEN or case_rows.alert_ids(conn, [cid])[cid]:
                continue
            case_rows.update(conn, cid, {"status": "resolved", "resolved_at": at, "updated_at": at})
            out.append(
                Change(cid, str(row["tenant"]), at, actor, "status", "status", str(row["status"]), "resolved")
            )
            if row["acknowledged_at"] is None:
                case_rows.update(conn, cid, {"acknowledged_at": at})
        return record(conn, out)


def _row(case: Case) -> dict[str, object]:
    return {"id": case.id, "tenant": case.tenant, "severity": case.severity, "detected_at": case.detected_at}


def _text(value: object) -> str:
    return "" if value is None else str(value).lower() if isinstance(value, bool) else str(value)


__all__ = ["ACKNOWLEDGED", "CaseService"]
