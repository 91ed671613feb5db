"""NIS2 incident report drafts: made from a case marked significant, edited, approved by a
second person, sent — and the sending recorded on the case, whose deadline tracking then says
whether the report came in time.

    drafts = Nis2Drafts(cases, fetch_events)
    draft, changes = drafts.create(case_id, "early_warning", principal, scope, municipality="Luleå kommun")
    draft, changes = drafts.update(case_id, "early_warning", {"cross_border": "no"}, "anna", scope)
    draft, changes = drafts.approve(case_id, "early_warning", other_principal, scope)
    draft, changes = drafts.mark_sent(case_id, "early_warning", "anna", scope, sent_at, "MCF-2026-17")

The four-eyes rule: the approver is a person with an approving role (the municipality's
security officer, or an administrator) who neither drafted nor edited the content approved.
The approval covers the content as it was (the SHA-256 of its fields); an edit afterwards
withdraws it. A sent report is not edited any more — what changes goes into the next report.
Every change returns case history lines (the caller journals them).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Collection, Sequence
from typing import Any

import sqlalchemy as sa

from norrvakt.alerts.casebook import record
from norrvakt.alerts.cases import CaseService
from norrvakt.alerts.errors import InvalidInput, InvalidTransition, NotFound
from norrvakt.alerts.model import Change
from norrvakt.errors import StatusError
from norrvakt.reports.nis2_fields import SENT_FIELD, Nis2FieldError, check_kind, clean
from norrvakt.reports.nis2_prefill import prefill
from norrvakt.state import alerts as alert_rows
from norrvakt.state import nis2_reports as rows
from norrvakt.state.accounts import Principal

Scope = Collection[str]
FetchEvents = Callable[[str, Sequence[int]], list[dict[str, Any]]]
APPROVER_ROLES = ("tenant_officer", "admin")
DRAFT, APPROVED, SENT = "draft", "approved", "sent"
MAX_EVIDENCE = 500  # evidence events read for the indicators of one draft


class NotAllowed(StatusError):
    """The caller may not do this to the draft (role, or the four-eyes rule)."""

    status_code = 403


def digest(fields: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(fields, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


class Nis2Drafts:
    def __init__(self, cases: CaseService, fetch_events: FetchEvents) -> None:
        self.cases = cases
        self.engine = cases.engine
        self.fetch_events = fetch_events
        self.clock = cases.clock

    # -- reading -----------------------------------------------------------------------------

    def get(self, case_id: int, kind: str, scope: Scope) -> dict[str, Any]:
        self._kind(kind)
        self.cases.get(case_id, scope)  # 404 for another tenant's case, before anything else
        with self.engine.connect() as conn:
            found = rows.get(conn, case_id, kind)
        if found is None:
            raise NotFound(f"case {case_id} has no {kind} draft; make one with POST")
        return found

    def listing(self, case_id: int, scope: Scope) -> list[dict[str, Any]]:
        self.cases.get(case_id, scope)
        with self.engine.connect() as conn:
            return rows.of_case(conn, case_id)

    # -- changes -----------------------------------------------------------------------------

    def create(
        self, case_id: int, kind: str, principal: Principal, scope: Scope, *, municipality: str
    ) -> tuple[dict[str, Any], list[Change]]:
        """A draft prefilled from the case as it is now (409 if the case has one of ``kind``)."""
        self._kind(kind)
        detail = self.cases.detail(case_id, scope)
        if not detail["nis2"]["significant"]:
            raise InvalidInput(
                f"case {case_id} is not marked significant: PUT /api/cases/{case_id}/nis2 "
                '{"significant": true} first (only significant incidents are reported)'
            )
        seqs = list(dict.fromkeys(s for a in self._alert_evidence(detail) for s in a))[:MAX_EVIDENCE]
        events = self.fetch_events(detail["tenant"], seqs)
        now = self.clock()
        with self.engine.begin() as conn:
            if rows.get(conn, case_id, kind) is not None:
                raise InvalidTransition(f"case {case_id} has a {kind} draft already; edit it with PUT")
            fields = self._clean(
                kind,
                prefill(
                    kind,
                    detail,
                    events,
                    municipality=municipality,
                    references=rows.sent_references(conn, case_id),
                ),
            )
            who = principal.username
            values = {
                "case_id": case_id,
                "tenant": detail["tenant"],
                "kind": kind,
                "status": DRAFT,
                "fields": fields,
                "editors": [who],
                "created_by": who,
                "created_at": now,
                "updated_by": who,
                "updated_at": now,
            }
            values["id"] = rows.insert(conn, values)
            changes = self._record(conn, detail["tenant"], case_id, who, now, kind, "", DRAFT)
            return rows.get(conn, case_id, kind) or values, changes

    def update(
        self, case_id: int, kind: str, values: dict[str, Any], actor: str, scope: Scope
    ) -> tuple[dict[str, Any], list[Change]]:
        """Change the fields sent (only those); an approved draft goes back to draft."""
        self._kind(kind)
        if not values:
            raise InvalidInput(f"nothing to change: give one or more fields of the {kind}")
        changed = self._clean(kind, values)
        self.cases.get(case_id, scope)
        now = self.clock()
        with self.engine.begin() as conn:
            draft = self._draft(conn, case_id, kind)
            if draft["status"] == SENT:
                raise InvalidTransition(
                    f"the {kind} of case {case_id} was sent; put what changed in the next report"
                )
            if "indicators" in changed:
                changed["indicators"] = _keep_times(
                    draft["fields"].get("indicators") or [], changed["indicators"]
                )
            fields = {**draft["fields"], **changed}
            editors = list(dict.fromkeys([*draft["editors"], actor]))
            update: dict[str, Any] = {
                "fields": fields,
                "editors": editors,
                "updated_by": actor,
                "updated_at": now,
            }
            changes: list[Change] = []
            if draft["status"] == APPROVED:
                if fields == draft["fields"]:
                    return draft, []  # the same content: the approval still holds
                update.update(
                    status=DRAFT, approved_by=None, approved_at=None, approved_digest=None, editors=[actor]
                )
                changes += self._record(conn, draft["tenant"], case_id, actor, now, kind, APPROVED, DRAFT)
            rows.update(conn, draft["id"], update)
            names = sorted(k for k in changed if draft["fields"].get(k) != changed[k])
            changes += self._record(
                conn, draft["tenant"], case_id, actor, now, f"{kind}.fields", "", ", ".join(names)
            )
            return self._draft(conn, case_id, kind), changes

    def approve(
        self, case_id: int, kind: str, principal: Principal, scope: Scope
    ) -> tuple[dict[str, Any], list[Change]]:
        self._kind(kind)
        if principal.role not in APPROVER_ROLES:
            raise NotAllowed(
                f"approving a NIS2 report takes the role {' or '.join(APPROVER_ROLES)} "
                f"(you are {principal.role})"
            )
        self.cases.get(case_id, scope)
        now = self.clock()
        who = principal.username
        with self.engine.begin() as conn:
            draft = self._draft(conn, case_id, kind)
            if draft["status"] != DRAFT:
                raise InvalidTransition(f"the {kind} of case {case_id} is {draft['status']} already")
            if who in draft["editors"] or who == draft["created_by"]:
                raise NotAllowed(
                    f"a second person approves: you drafted or edited this {kind} "
                    f"(by {', '.join(draft['editors'])}); ask someone else with the role "
                    f"{' or '.join(APPROVER_ROLES)}"
                )
            rows.update(
                conn,
                draft["id"],
                {
                    "status": APPROVED,
                    "approved_by": who,
                    "approved_at": now,
                    "approved_digest": digest(draft["fields"]),
                },
            )
            changes = self._record(conn, draft["tenant"], case_id, who, now, kind, DRAFT, APPROVED)
            return self._draft(conn, case_id, kind), changes

    def mark_sent(
        self, case_id: int, kind: str, actor: str, scope: Scope, sent_at: int | None, reference: str = ""
    ) -> tuple[dict[str, Any], list[Change]]:
        """Record that the approved report went to the CSIRT at ``sent_at`` (default now), on the
        draft and as the case's NIS2 time — the deadline tracking then shows met or missed."""
        self._kind(kind)
        if len(reference) > 256:
            raise InvalidInput(f"reference: {len(reference)} characters, at most 256")
        now = self.clock()
        at = now if sent_at is None else sent_at
        self.cases.get(case_id, scope)
        with self.engine.connect() as conn:
            draft = self._draft(conn, case_id, kind)
        if draft["status"] != APPROVED:
            raise InvalidTransition(
                f"the {kind} of case {case_id} is {draft['status']}: only an approved report is sent"
            )
        if draft["created_at"] > at:
            raise InvalidInput(f"sent_at {at} lies before the draft was made ({draft['created_at']})")
        sent = {"status": SENT, "sent_at": at, "sent_by": actor, "sent_reference": reference.strip() or None}
        with self.engine.begin() as conn:  # claimed first: of two senders at once, one records it
            if not rows.update_if(conn, draft["id"], APPROVED, sent):
                raise InvalidTransition(f"the {kind} of case {case_id} changed meanwhile; reload it")
        try:
            _case, changes = self.cases.set_nis2(case_id, actor, scope, **{SENT_FIELD[kind]: at})
        except BaseException:
            with self.engine.begin() as conn:  # the case refused the time: the report is not sent
                rows.update(
                    conn,
                    draft["id"],
                    {"status": APPROVED, "sent_at": None, "sent_by": None, "sent_reference": None},
                )
            raise
        with self.engine.begin() as conn:
            changes += self._record(conn, draft["tenant"], case_id, actor, now, kind, APPROVED, SENT)
            return self._draft(conn, case_id, kind), changes

    # -- helpers -----------------------------------------------------------------------------

    def _kind(self, kind: str) -> None:
        try:
            check_kind(kind)
        except Nis2FieldError as exc:
            raise NotFound(str(exc)) from exc

    def _clean(self, kind: str, values: dict[str, Any]) -> dict[str, Any]:
        try:
            return clean(kind, values)
        except Nis2FieldError as exc:
            raise InvalidInput(str(exc)) from exc

    def _draft(self, conn: sa.Connection, case_id: int, kind: str) -> dict[str, Any]:
        found = rows.get(conn, case_id, kind, for_update=True)
        if found is None:
            raise NotFound(f"case {case_id} has no {kind} draft; make one with POST")
        return found

    def _alert_evidence(self, detail: dict[str, Any]) -> list[list[int]]:
        with self.engine.connect() as conn:
            return [alert_rows.evidence(conn, int(a["id"])) for a in detail["alerts"]]

    def _record(
        self,
        conn: sa.Connection,
        tenant: str,
        case_id: int,
        actor: str,
        at: int,
        kind: str,
        old: str,
        new: str,
    ) -> list[Change]:
        return record(conn, [Change(case_id, tenant, at, actor, "nis2-report", kind, old, new)])


def _keep_times(old: list[dict[str, Any]], new: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Indicators edited as lines (``ipv4 185.220.101.7``) keep the first/last seen and note
    the draft had for the same type and value."""
    before = {(i["type"], i["value"]): i for i in old}
    return [{**before.get((i["type"], i["value"]), {}), **i} for i in new]
