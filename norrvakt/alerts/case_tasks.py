"""Tasks of a case: the checklist a template gives it (:mod:`norrvakt.alerts.case_templates`),
and tasks added by hand. Each task has an assignee and a state — open, in progress, done or not
applicable — and every change is a line of the case's history (so it is on the case's timeline
and journaled, like any case change). The time from open to done is measured per task and
summed up per template and task for the SOC (:meth:`TaskService.time_to_done`).

As for cases, a case outside the caller's tenants is :class:`NotFound`, like an unknown one.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Collection, Mapping
from typing import Any

import sqlalchemy as sa

from norrvakt.alerts.case_templates import CaseTemplate
from norrvakt.alerts.casebook import record
from norrvakt.alerts.errors import InvalidInput, InvalidTransition, NotFound
from norrvakt.alerts.model import Change
from norrvakt.alerts.workflow import MERGED
from norrvakt.event import now_us
from norrvakt.state import case_tasks as task_rows
from norrvakt.state import cases as case_rows
from norrvakt.state.db import Row

Scope = Collection[str]
OPEN, IN_PROGRESS, DONE, NOT_APPLICABLE = "open", "in_progress", "done", "not_applicable"
STATES = (OPEN, IN_PROGRESS, DONE, NOT_APPLICABLE)
_UNSET: Any = object()


class TaskService:
    def __init__(
        self,
        engine: sa.Engine,
        templates: Mapping[str, CaseTemplate],
        *,
        clock: Callable[[], int] = now_us,
    ) -> None:
        self.engine = engine
        self.templates = templates
        self.clock = clock

    # -- reading -------------------------------------------------------------------------

    def tasks(self, case_id: int, scope: Scope) -> dict[str, Any]:
        """The case's tasks in checklist order, each with its time to done, and a summary."""
        with self.engine.connect() as conn:
            self._case(conn, case_id, scope)
            rows = task_rows.of_case(conn, case_id)
            applied = task_rows.templates_of(conn, case_id)
        tasks = [task_dict(r) for r in rows]
        times = [t["time_to_done_s"] for t in tasks if t["time_to_done_s"] is not None]
        counts = {s: sum(1 for t in tasks if t["state"] == s) for s in STATES}
        return {
            "case_id": case_id,
            "templates": applied,
            "tasks": tasks,
            "summary": {
                "total": len(tasks),
                **counts,
                "mean_time_to_done_s": round(statistics.fmean(times), 1) if times else None,
            },
        }

    def time_to_done(self, scope: Scope, since: int, until: int) -> list[dict[str, Any]]:
        """Per template and task (ad hoc tasks under template ""): how many were opened in
        [since, until], how many are done or not applicable, and the mean and median time
        from open to done (MTTR) of the done ones, in seconds."""
        with self.engine.connect() as conn:
            rows = task_rows.created_between(conn, list(scope), since, until)
        groups: dict[tuple[str, str], list[Row]] = {}
        for r in rows:
            group = (str(r["template"]), str(r["key"]) if r["template"] else "")
            groups.setdefault(group, []).append(r)
        out = []
        for (template, key), members in sorted(groups.items()):
            done = [(int(r["done_at"]) - int(r["created_at"])) / 1e6 for r in members if r["state"] == DONE]
            first = min(members, key=lambda r: int(r["position"]))
            known = self.templates.get(template)
            out.append(
                {
                    "template": template,
                    "key": key,
                    "position": _position(known, key, int(first["position"])),
                    "title": {"sv": first["title_sv"], "en": first["title_en"]} if template else None,
                    "tasks": len(members),
                    "done": len(done),
                    "not_applicable": sum(1 for r in members if r["state"] == NOT_APPLICABLE),
                    "open": sum(1 for r in members if r["state"] in (OPEN, IN_PROGRESS)),
                    "tenants": sorted({str(r["tenant"]) for r in members}),
                    "mttr_s": round(statistics.fmean(done), 1) if done else None,
                    "median_s": round(statistics.median(done), 1) if done else None,
                }
            )
        out.sort(key=lambda r: (r["template"] == "", r["template"], r["position"]))
        return out

    # -- changing ------------------------------------------------------------------------

    def apply_template(
        self, case_id: int, template_id: str, actor: str, scope: Scope
    ) -> tuple[dict[str, Any], list[Change]]:
        """Give the case the template's tasks, open, in the template's order (after any it has)."""
        template = self.templates.get(template_id)
        if template is None:
            known = ", ".join(sorted(self.templates)) or "none"
            raise InvalidInput(f"no case template {template_id!r} (templates: {known})")
        now = self.clock()
        with self.engine.begin() as conn:
            case = self._case(conn, case_id, scope, for_update=True)
            if template_id in task_rows.templates_of(conn, case_id):
                raise InvalidTransition(f"case {case_id} has the tasks of template {template_id!r} already")
            start = task_rows.next_position(conn, case_id)
            rows = [
                _task_row(case, template_id, t.key, start + i, t.title_sv, t.title_en, actor, now)
                for i, t in enumerate(template.tasks)
            ]
            ids = task_rows.insert_many(conn, rows)
            changes = [Change(case_id, case["tenant"], now, actor, "template", "template", "", template_id)]
            changes += [
                Change(case_id, case["tenant"], now, actor, "task-added", f"task:{i}", "", r["title_en"])
                for i, r in zip(ids, rows, strict=True)
            ]
            case_rows.update(conn, case_id, {"updated_at": now})
            record(conn, changes)
        return self.tasks(case_id, scope), changes

    def add(
        self, case_id: int, title: str, actor: str, scope: Scope, *, assignee: str | None = None
    ) -> tuple[dict[str, Any], list[Change]]:
        """A task of the analyst's own (the same text in both languages)."""
        text = title.strip()
        if not text:
            raise InvalidInput("a task needs a title")
        if len(text) > 512:
            raise InvalidInput(f"a task title has at most 512 characters, not {len(text)}")
        now = self.clock()
        with self.engine.begin() as conn:
            case = self._case(conn, case_id, scope, for_update=True)
            row = _task_row(case, "", "", task_rows.next_position(conn, case_id), text, text, actor, now)
            who = (assignee or "").strip()[:128] or None
            row["assignee"] = who
            (task_id,) = task_rows.insert_many(conn, [row])
            changes = [Change(case_id, case["tenant"], now, actor, "task-added", f"task:{task_id}", "", text)]
            if who:
                changes.append(
                    Change(case_id, case["tenant"], now, actor, "task-assign", f"task:{task_id}", "", who)
                )
            case_rows.update(conn, case_id, {"updated_at": now})
            record(conn, changes)
            made = task_rows.get(conn, task_id)
        if made is None:  # inserted in this very transaction: only a broken database gets here
            raise NotFound(f"task {task_id} of case {case_id} vanished")
        return task_dict(made), changes

    def change(
        self,
        case_id: int,
        task_id: int,
        actor: str,
        scope: Scope,
        *,
        state: str | None = None,
        assignee: str | None = _UNSET,
    ) -> tuple[dict[str, Any], list[Change]]:
        """Set a task's state and/or assignee (``""`` or None = nobody)."""
        if state is None and assignee is _UNSET:
            raise InvalidInput("nothing to change: give state or assignee")
        if state is not None and state not in STATES:
            raise InvalidInput(f"state {state!r}: one of {', '.join(STATES)}")
        now = self.clock()
        with self.engine.begin() as conn:
            case = self._case(conn, case_id, scope, for_update=True)
            task = task_rows.get(conn, task_id)
            if task is None or int(task["case_id"]) != case_id:
                raise NotFound(f"no task {task_id} in case {case_id}")
            values: dict[str, Any] = {}
            changes: list[Change] = []
            field = f"task:{task_id}"
            if state is not None and state != task["state"]:
                values["state"] = state
                if state == IN_PROGRESS and task["started_at"] is None:
                    values["started_at"] = now
                values["done_at"] = now if state == DONE else None  # reopened: the clock runs again
                changes.append(
                    Change(case_id, case["tenant"], now, actor, "task-state", field, task["state"], state)
                )
            if assignee is not _UNSET:
                who = (assignee or "").strip()[:128] or None
                if who != task["assignee"]:
                    values["assignee"] = who
                    changes.append(
                        Change(
                            case_id,
                            case["tenant"],
                            now,
                            actor,
                            "task-assign",
                            field,
                            task["assignee"] or "",
                            who or "",
                        )
                    )
            if values:
                values["updated_at"] = now
                task_rows.update(conn, task_id, values)
                case_rows.update(conn, case_id, {"updated_at": now})
                record(conn, changes)
            fresh = task_rows.get(conn, task_id)
        if fresh is None:
            raise NotFound(f"no task {task_id} in case {case_id}")
        return task_dict(fresh), changes

    # -- helpers -------------------------------------------------------------------------

    def _case(self, conn: sa.Connection, case_id: int, scope: Scope, *, for_update: bool = False) -> Row:
        row = case_rows.get(conn, case_id, for_update=for_update)
        if row is None or row["tenant"] not in scope:
            raise NotFound(f"no case {case_id}")
        if for_update and row["status"] == MERGED:
            raise InvalidTransition(
                f"case {case_id} was merged into case {row['merged_into']}; change that one"
            )
        return row


def task_dict(row: Row) -> dict[str, Any]:
    done_at = row["done_at"]
    return {
        "id": int(row["id"]),
        "case_id": int(row["case_id"]),
        "tenant": row["tenant"],
        "template": row["template"],
        "key": row["key"],
        "position": int(row["position"]),
        "title": {"sv": row["title_sv"], "en": row["title_en"]},
        "state": row["state"],
        "assignee": row["assignee"],
        "created_by": row["created_by"],
        "created_at": int(row["created_at"]),
        "updated_at": int(row["updated_at"]),
        "started_at": row["started_at"],
        "done_at": done_at,
        "time_to_done_s": round((int(done_at) - int(row["created_at"])) / 1e6, 1) if done_at else None,
    }


def _task_row(
    case: Row, template: str, key: str, position: int, sv: str, en: str, actor: str, now: int
) -> dict[str, Any]:
    return {
        "case_id": int(case["id"]),
        "tenant": case["tenant"],
        "template": template,
        "key": key,
        "position": position,
        "title_sv": sv[:512],
        "title_en": en[:512],
        "state": OPEN,
        "assignee": None,
        "created_by": actor[:128],
        "created_at": now,
        "updated_at": now,
        "started_at": None,
        "done_at": None,
    }


def _position(template: CaseTemplate | None, key: str, fallback: int) -> int:
    """A task's place in its template now (its row's position when the template has changed)."""
    if template is not None:
        for i, t in enumerate(template.tasks):
            if t.key == key:
                return i
    return fallback
