"""Response actions with a human in the loop: asked for on a case (or an alert in one),
approved by a second person where the tenant's settings say so, run against the target,
undone where the target allows.

    svc = ResponseService(engine, settings, cases, modules, journal)
    row = await svc.request(principal, scope, action="ad.disable", target="anna.berg", case_id=12)
    row = await svc.approve(other_principal, scope, row["id"])     # runs it; the answer is the target's
    row = await svc.undo(principal, scope, row["id"])              # re-enables

Every step — asked, approved, rejected, done, failed, dry run, undone — is a line of the case's
history (so it shows on the case timeline) and is journaled as an audit event before the caller
gets the answer. Refused outright (nothing recorded): another tenant's case (404, as if it did
not exist), a tenant without the ``response`` module (403), beyond ``response.max_per_hour``
(429), nothing set up for the target (409). The person who asked cannot approve (403). A target
that fails (down, 429/500 beyond the retries, a timeout) leaves the action ``failed`` with the
target's answer on the case — never ``done``; ``retry`` runs it again (approval stays given).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, Collection, Sequence
from typing import Any

import sqlalchemy as sa

from norrvakt.alerts.cases import CaseService
from norrvakt.alerts.model import Change
from norrvakt.config import Settings
from norrvakt.event import now_us
from norrvakt.respond.base import (
    UNDO,
    ActionRequest,
    Conflict,
    NotFound,
    Outcome,
    Refused,
    ResponseError,
    TooMany,
)
from norrvakt.respond.targets import Targets
from norrvakt.state import alerts as alert_rows
from norrvakt.state import cases as case_rows
from norrvakt.state import response_actions as store
from norrvakt.state.accounts import Principal
from norrvakt.state.db import Row

log = logging.getLogger(__name__)

MODULE = "response"
HOUR_US = 3600 * 1_000_000
REQUESTABLE = tuple(a for a in UNDO)
Journal = Callable[[Sequence[Change]], Awaitable[None]]


class ResponseService:
    def __init__(
        self,
        engine: sa.Engine,
        settings: Settings,
        cases: CaseService,
        modules: Callable[[str, str], bool],
        journal: Journal,
        *,
        targets: Targets | None = None,
        public_url: str = "",
    ) -> None:
        self.engine = engine
        self.settings = settings
        self.cases = cases
        self.modules = modules
        self.journal = journal
        self.targets = targets or Targets(settings, engine)
        self.public_url = public_url.rstrip("/")

    # -- the rules -------------------------------------------------------------------------------

    def needs_approval(self, tenant: str, action: str) -> bool:
        table = self.settings.response.require_approval
        return action in table.get(tenant, table.get("*", []))

    def _subscribed(self, tenant: str) -> None:
        if not self.modules(tenant, MODULE):
            raise Refused(f"{tenant} does not subscribe to the response module")

    def _rate(self, tenant: str) -> None:
        limit = self.settings.response.max_per_hour
        if store.executed_since(self.engine, tenant, now_us() - HOUR_US) >= limit:
            raise TooMany(f"{tenant}: {limit} response actions in the last hour (response.max_per_hour)")

    def _row(self, action_id: int, scope: Collection[str]) -> Row:
        row = store.get(self.engine, action_id)
        if row is None or row["tenant"] not in scope:
            raise NotFound(f"no response action {action_id}")
        return row

    def _case_of(self, scope: Collection[str], case_id: int | None, alert_id: int | None) -> tuple[int, str]:
        if alert_id is not None:
            with self.engine.connect() as conn:
                alert = alert_rows.get(conn, alert_id)
            if alert is None or alert["tenant"] not in scope:
                raise NotFound(f"no alert {alert_id}")
            if alert["case_id"] is None:
                raise Conflict(f"alert {alert_id} is in no case: open a case for it first")
            if case_id is not None and case_id != alert["case_id"]:
                raise ResponseError(f"alert {alert_id} is in case {alert['case_id']}, not {case_id}")
            case_id = int(alert["case_id"])
        if case_id is None:
            raise ResponseError("a response action belongs to a case: give case_id or alert_id")
        case = self.cases.get(case_id, scope)  # NotFound (404) for another tenant's case too
        return case.id, case.tenant

    # -- the steps -------------------------------------------------------------------------------

    async def request(
        self,
        principal: Principal,
        scope: Collection[str],
        *,
        action: str,
        target: str,
        case_id: int | None = None,
        alert_id: int | None = None,
        params: dict[str, Any] | None = None,
        reason: str = "",
        dry_run: bool = False,
    ) -> Row:
        if action not in REQUESTABLE:
            raise ResponseError(f"action {action!r}: one of {', '.join(REQUESTABLE)}")
        target = target.strip()
        if not target or len(target) > 512:
            raise ResponseError("target: 1–512 characters (an account, a user, an address, a desk)")
        case_id, tenant = await asyncio.to_thread(self._case_of, scope, case_id, alert_id)
        self._subscribed(tenant)
        if not dry_run:
            await asyncio.to_thread(self._rate, tenant)
        self.targets.responder(tenant, action)  # set up at all? (Conflict names what is missing)
        approval = not dry_run and self.needs_approval(tenant, action)
        status = "pending_approval" if approval else "running"
        action_id = await asyncio.to_thread(
            store.insert,
            self.engine,
            {
                "tenant": tenant,
                "case_id": case_id,
                "alert_id": alert_id,
                "action": action,
                "target": target,
                "params": json.dumps(params or {}, ensure_ascii=False, sort_keys=True),
                "reason": reason[:4000],
                "dry_run": dry_run,
                "status": status,
                "requested_by": principal.username,
            },
        )
        what = (
            f"{action} {target}"
            + (" (dry run)" if dry_run else "")
            + (" — awaits approval" if approval else "")
        )
        await self._history(action_id, principal.username, "response-request", what, reason)
        if not approval:
            await self._execute(action_id, principal.username)
        return self.view(action_id)

    async def approve(self, principal: Principal, scope: Collection[str], action_id: int) -> Row:
        row = self._row(action_id, scope)
        self._subscribed(row["tenant"])
        if row["requested_by"] == principal.username:
            raise Refused(
                f"action {action_id}: {principal.username} asked for it; a second person must approve"
            )
        if row["status"] != "pending_approval":
            raise Conflict(f"action {action_id} is {row['status']}, not waiting for approval")
        await asyncio.to_thread(self._rate, row["tenant"])
        moved = store.claim(
            self.engine,
            action_id,
            ["pending_approval"],
            "running",
            approved_by=principal.username,
            approved_at=now_us(),
        )
        if not moved:
            raise Conflict(f"action {action_id} is {self._status(action_id)}, not waiting for approval")
        await self._history(
            action_id, principal.username, "response-approve", f"{row['action']} {row['target']}", ""
        )
        await self._execute(action_id, principal.username)
        return self.view(action_id)

    async def reject(self, principal: Principal, scope: Collection[str], action_id: int, note: str) -> Row:
        row = self._row(action_id, scope)
        if not store.claim(self.engine, action_id, ["pending_approval"], "rejected", result=note[:4000]):
            raise Conflict(f"action {action_id} is {self._status(action_id)}, not waiting for approval")
        await self._history(
            action_id, principal.username, "response-reject", f"{row['action']} {row['target']}", note
        )
        return self.view(action_id)

    async def retry(self, principal: Principal, scope: Collection[str], action_id: int) -> Row:
        row = self._row(action_id, scope)
        self._subscribed(row["tenant"])
        await asyncio.to_thread(self._rate, row["tenant"])
        if not store.claim(self.engine, action_id, ["failed"], "running"):
            raise Conflict(
                f"action {action_id} is {self._status(action_id)}; only a failed action is retried"
            )
        await self._history(
            action_id, principal.username, "response-retry", f"{row['action']} {row['target']}", ""
        )
        await self._execute(action_id, principal.username)
        return self.view(action_id)

    async def undo(self, principal: Principal, scope: Collection[str], action_id: int) -> Row:
        row = self._row(action_id, scope)
        self._subscribed(row["tenant"])
        if UNDO.get(row["action"]) is None:
            raise Conflict(f"{row['action']} cannot be undone from Norrvakt")
        if row["dry_run"]:
            raise Conflict(f"action {action_id} was a dry run: nothing to undo")
        if not store.claim(self.engine, action_id, ["done", "undo_failed"], "undoing"):
            raise Conflict(f"action {action_id} is {self._status(action_id)}; only a done action is undone")
        req = self._request_of(row, principal.username)
        outcome = await self._guarded(self.targets.responder(row["tenant"], row["action"]).undo(req))
        status = "undone" if outcome.ok else "undo_failed"
        values: dict[str, Any] = {"undo_result": outcome.detail[:8000]}
        if outcome.ok:
            values |= {"undone_by": principal.username, "undone_at": now_us()}
        store.claim(self.engine, action_id, ["undoing"], status, **values)
        word = "response-undone" if outcome.ok else "response-undo-failed"
        await self._history(
            action_id, principal.username, word, f"{row['action']} {row['target']}", outcome.detail
        )
        return self.view(action_id)

    # -- running ---------------------------------------------------------------------------------

    def _request_of(self, row: Row, actor: str) -> ActionRequest:
        params = json.loads(row["params"] or "{}")
        params.setdefault("reason", row["reason"])
        if row["action"].startswith("ticket."):
            params["case"] = self.cases.detail(int(row["case_id"]), [row["tenant"]])
            params["url"] = f"{self.public_url}/cases/{row['case_id']}" if self.public_url else ""
            params.setdefault("note", row["reason"])
        return ActionRequest(
            action_id=int(row["id"]),
            tenant=row["tenant"],
            action=row["action"],
            target=row["target"],
            dry_run=bool(row["dry_run"]),
            case_id=row["case_id"],
            actor=actor,
            params=params,
        )

    async def _guarded(self, call: Awaitable[Outcome]) -> Outcome:
        limit = self.settings.response.timeout_s * 3 + 5  # the responder's own tries fit in this
        try:
            return await asyncio.wait_for(call, limit)
        except TimeoutError:
            return Outcome(False, f"no answer from the target within {limit:.0f} s", retry=True)
        except Exception as exc:  # a responder's bug must still leave the action failed, on the case
            log.exception("response action failed unexpectedly")
            return Outcome(False, f"{type(exc).__name__}: {exc}", retry=True)

    async def _execute(self, action_id: int, actor: str) -> None:
        row = store.get(self.engine, action_id)
        assert row is not None
        try:
            responder = self.targets.responder(row["tenant"], row["action"])
            outcome = await self._guarded(responder.run(self._request_of(row, actor)))
        except ResponseError as exc:  # the setup went away between asking and approving
            outcome = Outcome(False, str(exc))
        status = ("dry_run" if row["dry_run"] else "done") if outcome.ok else "failed"
        store.finish(self.engine, action_id, status, result=outcome.detail[:8000], executed_at=now_us())
        word = {"done": "response-done", "dry_run": "response-dry-run", "failed": "response-failed"}[status]
        note = outcome.detail + (" (worth a retry)" if not outcome.ok and outcome.retry else "")
        await self._history(action_id, actor, word, f"{row['action']} {row['target']}", note)

    # -- reading and the record ------------------------------------------------------------------

    def _status(self, action_id: int) -> str:
        row = store.get(self.engine, action_id)
        return str(row["status"]) if row else "gone"

    def view(self, action_id: int) -> Row:
        row = store.get(self.engine, action_id)
        assert row is not None
        return as_view(row)

    def listing(self, scope: Collection[str], case_id: int | None = None) -> list[Row]:
        return [as_view(r) for r in store.listing(self.engine, list(scope), case_id=case_id)]

    async def _history(self, action_id: int, actor: str, what: str, old: str, new: str) -> None:
        row = store.get(self.engine, action_id)
        assert row is not None
        change = Change(
            case_id=int(row["case_id"]),
            tenant=row["tenant"],
            at=now_us(),
            actor=actor,
            action=what,
            field=f"response#{action_id}",
            old=old[:2000],
            new=new[:2000],
        )
        await asyncio.to_thread(_add_history, self.engine, change)
        await self.journal([change])


def _add_history(engine: sa.Engine, c: Change) -> None:
    with engine.begin() as conn:
        case_rows.add_history(
            conn,
            [
                {
                    "case_id": c.case_id,
                    "tenant": c.tenant,
                    "at": c.at,
                    "actor": c.actor,
                    "action": c.action,
                    "field": c.field,
                    "old_value": c.old,
                    "new_value": c.new,
                }
            ],
        )


def as_view(row: Row) -> Row:
    out = dict(row)
    out["params"] = json.loads(row["params"] or "{}")
    out["undoable"] = bool(UNDO.get(row["action"])) and row["status"] in ("done", "undo_failed")
    out["retryable"] = row["status"] == "failed"
    return out
