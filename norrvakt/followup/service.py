"""The follow-up workflow: plans, drawing a round, decisions, annotations, sign-off, verify.

Who may do what (on top of tenant scope, which every call takes):

- plans: admins, SOC analysts and the tenant's own officers create and change them;
- decisions and sign-off: only the plan's named reviewer (an admin cannot decide for them —
  the point of the check is that a named person looked);
- annotations: anyone with write access in scope, before and after sign-off;
- auditors read everything in scope and change nothing (the API refuses).

A decision ``not_justified`` or ``needs_investigation`` raises an alert
(``norrvakt-followup``) on the access, which the SOC's grouping puts into a case; the
reviewer's comment goes onto the case. Sign-off needs every item decided; it hashes the
round and its decisions, journals that digest as an audit event of the system tenant (the
Merkle tree then makes the check tamper-evident) and locks the round — from then on the
database refuses changes to the round and its decisions, and :meth:`verify` recomputes the
digest against both the database and the journaled record.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from norrvakt.alerts.model import Change
from norrvakt.event import SYSTEM_TENANT, Event, now_us
from norrvakt.followup.errors import Invalid, Locked, NotFound, NotReviewer
from norrvakt.followup.lookup import KINDS, read_hashed_csv
from norrvakt.followup.periods import FREQUENCIES, BadPeriod, parse_period
from norrvakt.followup.sampling import REASONS, Sampler, SampleSpec, salt_for
from norrvakt.state import followup as rows
from norrvakt.state.accounts import Principal

if TYPE_CHECKING:
    from norrvakt.alerts.soc import Soc
    from norrvakt.store.clickhouse import ClickHouseStore

DATASETS = {
    "socialtjanst.record_access": "Socialtjänstens verksamhetssystem",
    "health.record_access": "Elevhälsans journalsystem",
}
DECISIONS = ("justified", "not_justified", "needs_investigation")
RAISES_CASE = {"not_justified": "high", "needs_investigation": "medium"}
FOLLOWUP_RULE = "norrvakt-followup"
PLAN_EDITORS = ("admin", "soc_analyst", "tenant_officer")

Journal = Callable[[Sequence[Event]], None]  # journals events durably; seqs are set on return
Row = dict[str, Any]


@dataclass(frozen=True)
class PlanInput:
    tenant: str
    dataset: str
    reviewer: str
    title: str = ""
    frequency: str = "monthly"
    random_sample: int = 20
    targeted_per_reason: int = 10


def _check_writer(principal: Principal) -> None:
    if principal.role == "auditor":
        raise NotReviewer("auditors have read-only access")


class FollowupService:
    def __init__(
        self,
        engine: sa.Engine,
        store: ClickHouseStore,
        *,
        zone: str = "Europe/Stockholm",
        work_hours: tuple[int, int] = (7, 18),
        soc: Soc | None = None,
        journal: Journal | None = None,
        known_user: Callable[[str, str], bool] | None = None,
        subscribes: Callable[[str], bool] | None = None,
        clock: Callable[[], int] = now_us,
    ) -> None:
        self.engine = engine
        self.store = store
        self.zone = zone
        self.work_hours = work_hours
        self.soc = soc
        self.journal = journal
        self.known_user = known_user  # (username, tenant) → may that user review the tenant?
        self.subscribes = subscribes  # tenant → does it have the follow-up module? (None = yes)
        self.clock = clock
        self._draw_lock = threading.Lock()

    # -- plans ---------------------------------------------------------------------------------

    def create_plan(self, principal: Principal, scope: Sequence[str], inp: PlanInput) -> Row:
        if principal.role not in PLAN_EDITORS:
            raise NotReviewer(f"role {principal.role!r} cannot create follow-up plans")
        if inp.tenant not in scope:
            raise NotFound(f"no tenant {inp.tenant!r} among yours")
        self._check_module(inp.tenant)
        problems = []
        if inp.dataset not in DATASETS:
            problems.append(f"dataset {inp.dataset!r}: one of {', '.join(DATASETS)}")
        if inp.frequency not in FREQUENCIES:
            problems.append(f"frequency {inp.frequency!r}: one of {', '.join(FREQUENCIES)}")
        if not 0 <= inp.random_sample <= 1000:
            problems.append(f"random_sample {inp.random_sample}: 0..1000")
        if not 0 <= inp.targeted_per_reason <= 500:
            problems.append(f"targeted_per_reason {inp.targeted_per_reason}: 0..500")
        if inp.random_sample + inp.targeted_per_reason == 0:
            problems.append("a plan that samples nothing checks nothing")
        reviewer = inp.reviewer.strip()
        if not reviewer:
            problems.append("a plan needs a named reviewer")
        elif self.known_user is not None and not self.known_user(reviewer, inp.tenant):
            problems.append(f"reviewer {reviewer!r} is not a user who can read tenant {inp.tenant!r}")
        if problems:
            raise Invalid("; ".join(problems))
        values = {
            "tenant": inp.tenant,
            "dataset": inp.dataset,
            "title": inp.title.strip() or f"Loggkontroll {DATASETS[inp.dataset]}",
            "frequency": inp.frequency,
            "random_sample": inp.random_sample,
            "targeted_per_reason": inp.targeted_per_reason,
            "reviewer": reviewer,
            "created_by": principal.username,
            "created_at": self.clock(),
            "active": True,
        }
        with self.engine.begin() as conn:
            plan_id = rows.add_plan(conn, values)
        return {"id": plan_id, **values}

    def _check_module(self, tenant: str) -> None:
        if self.subscribes is not None and not self.subscribes(tenant):
            raise Locked(f"tenant {tenant!r} does not subscribe to the log follow-up module")

    def plans(self, scope: Sequence[str]) -> list[Row]:
        with self.engine.connect() as conn:
            return rows.plans(conn, scope)

    def plan(self, plan_id: int, scope: Sequence[str]) -> Row:
        with self.engine.connect() as conn:
            found = rows.plan(conn, plan_id, scope)
        if found is None:
            raise NotFound(f"no follow-up plan {plan_id}")
        return found

    # -- rounds --------------------------------------------------------------------------------

    def draw_round(self, plan_id: int, period_label: str, principal: Principal, scope: Sequence[str]) -> Row:
        """Draw the sample for one period of a plan. A period is drawn once: drawing it again
        would let someone re-roll the sample until it looks comfortable."""
        _check_writer(principal)
        plan = self.plan(plan_id, scope)
        self._check_module(plan["tenant"])
        try:
            period = parse_period(period_label, plan["frequency"], self.zone)
        except BadPeriod as exc:
            raise Invalid(str(exc)) from exc
        if period.start_us >= self.clock():
            raise Invalid(f"period {period.label} has not started yet")
        with self._draw_lock:
            with self.engine.connect() as conn:
                for existing in rows.rounds(conn, [plan["tenant"]], plan_id):
                    if existing["period_label"] == period.label:
                        raise Locked(
                            f"period {period.label} of plan {plan_id} was drawn as round {existing['id']}"
                        )
            spec = SampleSpec(
                tenant=plan["tenant"],
                dataset=plan["dataset"],
                since_us=period.start_us,
                until_us=period.end_us,
                random_n=int(plan["random_sample"]),
                per_reason=int(plan["targeted_per_reason"]),
                salt=salt_for(plan_id, period.label),
                zone=self.zone,
                work_start_hour=self.work_hours[0],
                work_end_hour=self.work_hours[1],
            )
            sample = Sampler(self.store, spec, self._lookup(plan["tenant"])).draw()
            now = self.clock()
            with self.engine.begin() as conn:
                round_id = rows.add_round(
                    conn,
                    {
                        "plan_id": plan_id,
                        "tenant": plan["tenant"],
                        "period_start": period.start_us,
                        "period_end": period.end_us,
                        "period_label": period.label,
                        "population": sample.population,
                        "created_by": principal.username,
                        "created_at": now,
                        "status": "open",
                        "reason_totals": json.dumps(sample.reason_totals, sort_keys=True),
                    },
                )
                rows.add_items(
                    conn,
                    [
                        {
                            "round_id": round_id,
                            "tenant": plan["tenant"],
                            "seq": d.seq,
                            "event_ts": d.ts,
                            "user_name": d.user[:256],
                            "subject": d.subject[:256],
                            "action": d.action[:64],
                            "summary": d.summary[:2000],
                            "reasons": ",".join(r for r in REASONS if r in d.reasons),
                        }
                        for d in sample.items
                    ],
                )
        return self.round_detail(round_id, scope)

    def rounds(self, scope: Sequence[str], plan_id: int | None = None) -> list[Row]:
        with self.engine.connect() as conn:
            found = rows.rounds(conn, scope, plan_id)
        return [self._round_out(r) for r in found]

    def round_detail(self, round_id: int, scope: Sequence[str]) -> Row:
        with self.engine.connect() as conn:
            found = rows.round_(conn, round_id, scope)
            if found is None:
                raise NotFound(f"no follow-up round {round_id}")
            items = rows.items(conn, round_id)
            notes = rows.annotations_of(conn, [i["id"] for i in items])
            plan = rows.plan(conn, found["plan_id"], scope)
        by_item: dict[int, list[Row]] = {}
        for n in notes:
            by_item.setdefault(n["item_id"], []).append(n)
        out = self._round_out(found)
        out["plan"] = plan
        out["items"] = [
            {**i, "reasons": _split(i["reasons"]), "annotations": by_item.get(i["id"], [])} for i in items
        ]
        decided = Counter(i["decision"] or "undecided" for i in items)
        out["progress"] = {"total": len(items), **{d: decided.get(d, 0) for d in (*DECISIONS, "undecided")}}
        return out

    @staticmethod
    def _round_out(r: Row) -> Row:
        return {**r, "reason_totals": json.loads(r.get("reason_totals") or "{}")}

    # -- reviewing -----------------------------------------------------------------------------

    def _item_round_plan(
        self, conn: sa.Connection, item_id: int, scope: Sequence[str]
    ) -> tuple[Row, Row, Row]:
        item = rows.item(conn, item_id, scope)
        if item is None:
            raise NotFound(f"no follow-up item {item_id}")
        round_ = rows.round_(conn, item["round_id"], scope)
        plan = rows.plan(conn, round_["plan_id"], scope) if round_ else None
        if round_ is None or plan is None:
            raise NotFound(f"no follow-up item {item_id}")
        return item, round_, plan

    def decide(
        self, item_id: int, decision: str, comment: str, principal: Principal, scope: Sequence[str]
    ) -> tuple[Row, list[Change]]:
        """The reviewer's decision; the case changes it caused (for the caller to journal)."""
        _check_writer(principal)
        if decision not in DECISIONS:
            raise Invalid(f"decision {decision!r}: one of {', '.join(DECISIONS)}")
        comment = comment.strip()
        if decision != "justified" and not comment:
            raise Invalid(f"a decision {decision!r} needs a comment saying why")
        with self.engine.connect() as conn:
            item, round_, plan = self._item_round_plan(conn, item_id, scope)
        if round_["status"] != "open":
            raise Locked(f"round {round_['id']} is signed off; decisions can only be annotated")
        if principal.username != plan["reviewer"]:
            raise NotReviewer(
                f"only the plan's reviewer ({plan['reviewer']}) decides in round {round_['id']}"
            )
        case_id = item["case_id"]
        changes: list[Change] = []
        if decision in RAISES_CASE and case_id is None:
            case_id = self._open_case(item, plan, decision, comment, principal.username, changes)
        values = {
            "decision": decision,
            "comment": comment,
            "decided_by": principal.username,
            "decided_at": self.clock(),
            "case_id": case_id,
        }
        with self.engine.begin() as conn:
            rows.decide(conn, item_id, values)
        return {**item, **values, "reasons": _split(item["reasons"])}, changes

    def _open_case(
        self, item: Row, plan: Row, decision: str, comment: str, actor: str, changes: list[Change]
    ) -> int | None:
        """The SOC takes over: an alert on the access, grouped into a case, with the comment."""
        if self.soc is None:
            return None
        from norrvakt.alerts.model import AlertInput

        tenant = item["tenant"]
        title = (
            "Log follow-up: access not justified"
            if decision == "not_justified"
            else "Log follow-up: access needs investigation"
        )
        alert_input = AlertInput(
            tenant=tenant,
            rule_id=FOLLOWUP_RULE,
            rule_title=title,
            level=RAISES_CASE[decision],
            tags=["norrvakt.improper_use", "norrvakt.followup"],
            event_seq=int(item["seq"]),
            event_ts=int(item["event_ts"]),
            entities={
                "user.name": item["user_name"],
                "subject_id": item["subject"],
                "norrvakt.followup_item": str(item["id"]),
            },
            dedupe_key_fields=["norrvakt.followup_item"],
            source="followup",
        )
        (alert,) = [a for a in self.soc.alerts.ingest([alert_input]) if a.rule_id == FOLLOWUP_RULE][:1]
        case_id = alert.case_id
        if case_id is None:
            case, made = self.soc.cases.create(
                [tenant],
                tenant,
                f"{title}: {item['user_name']} → {item['subject']}",
                actor,
                severity=RAISES_CASE[decision],
                alert_ids=[alert.id],
            )
            changes += made
            case_id = case.id
        _row, commented = self.soc.cases.comment(
            case_id,
            actor,
            [tenant],
            f"Log follow-up ({plan['title']}, round {item['round_id']}, item {item['id']}): "
            f"{decision} — {comment}",
        )
        changes += commented
        return int(case_id)

    def annotate(self, item_id: int, text: str, principal: Principal, scope: Sequence[str]) -> Row:
        _check_writer(principal)
        text = text.strip()
        if not text:
            raise Invalid("an empty annotation")
        with self.engine.connect() as conn:
            item, _round, _plan = self._item_round_plan(conn, item_id, scope)
        values = {
            "item_id": item_id,
            "tenant": item["tenant"],
            "at": self.clock(),
            "author": principal.username,
            "text": text[:4000],
        }
        with self.engine.begin() as conn:
            values["id"] = rows.annotate(conn, values)
        return values

    # -- sign-off and verification -------------------------------------------------------------

    def sign_off(
        self,
        round_id: int,
        principal: Principal,
        scope: Sequence[str],
        peer: str = "",
        journal: Journal | None = None,
    ) -> Row:
        _check_writer(principal)
        detail = self.round_detail(round_id, scope)
        if detail["status"] != "open":
            raise Locked(f"round {round_id} is already signed off")
        plan = detail["plan"]
        if principal.username != plan["reviewer"]:
            raise NotReviewer(f"only the plan's reviewer ({plan['reviewer']}) signs off round {round_id}")
        undecided = [i["id"] for i in detail["items"] if not i["decision"]]
        if undecided:
            raise Invalid(f"{len(undecided)} item(s) not decided yet (first: item {undecided[0]})")
        at = self.clock()
        digest = round_digest(detail, principal.username, at)
        counts = detail["progress"]
        event = _signoff_event(detail, principal.username, at, digest, peer, counts)
        journal = journal or self.journal
        if journal is None:
            raise Locked("no journal to record the sign-off in; refusing to sign off unrecorded")
        journal([event])  # durable before the database says "signed off"
        with self.engine.begin() as conn:
            if not rows.sign_off(conn, round_id, principal.username, at, digest, event.seq):
                raise Locked(f"round {round_id} was signed off meanwhile")
        return self.round_detail(round_id, scope)

    def verify(self, round_id: int, scope: Sequence[str]) -> Row:
        """Recompute the signed-off round's digest; compare with the database and the journal."""
        detail = self.round_detail(round_id, scope)
        if detail["status"] != "signed_off":
            raise Invalid(f"round {round_id} is not signed off")
        digest = round_digest(detail, detail["signed_off_by"], int(detail["signed_off_at"]))
        journaled = self.store.fetch_events(SYSTEM_TENANT, [int(detail["signoff_seq"])])
        journal_digest = journaled[0].fields.get("digest", "") if journaled else ""
        problems = []
        if digest != detail["digest"]:
            problems.append("the decisions in the database no longer match the digest recorded at sign-off")
        if not journaled:
            problems.append(
                f"the journaled sign-off (system seq {detail['signoff_seq']}) is not in the store yet"
            )
        elif journal_digest != digest:
            problems.append(f"the journaled sign-off (system seq {detail['signoff_seq']}) has another digest")
        return {
            "round": round_id,
            "ok": not problems,
            "digest": digest,
            "recorded_digest": detail["digest"],
            "journaled_digest": journal_digest,
            "signoff_seq": detail["signoff_seq"],
            "problems": problems,
        }

    # -- the lookup table ----------------------------------------------------------------------

    def upload_lookup(
        self, tenant: str, kind: str, csv_text: str, principal: Principal, scope: Sequence[str]
    ) -> int:
        if principal.role not in PLAN_EDITORS:
            raise NotReviewer(f"role {principal.role!r} cannot upload lookup tables")
        if tenant not in scope:
            raise NotFound(f"no tenant {tenant!r} among yours")
        if kind not in KINDS:
            raise Invalid(f"kind {kind!r}: one of {', '.join(KINDS)}")
        try:
            parsed = read_hashed_csv(csv_text)
        except ValueError as exc:
            raise Invalid(str(exc)) from exc
        with self.engine.begin() as conn:
            rows.replace_lookup(conn, tenant, kind, parsed)
        return len(parsed)

    def _lookup(self, tenant: str) -> Callable[[str, list[str]], dict[str, Row]]:
        def find(kind: str, id_hashes: list[str]) -> dict[str, Row]:
            out: dict[str, Row] = {}
            with self.engine.connect() as conn:
                for i in range(0, len(id_hashes), 500):
                    out.update(rows.lookup(conn, tenant, kind, id_hashes[i : i + 500]))
            return out

        return find


def _split(reasons: str | None) -> list[str]:
    return [r for r in (reasons or "").split(",") if r]


def round_digest(detail: Row, signer: str, at: int) -> str:
    """SHA-256 over what the sign-off vouches for: the round, every sampled access and its
    decision. Annotations are not in it — they may be added after sign-off."""
    body = {
        "round": detail["id"],
        "plan": detail["plan_id"],
        "tenant": detail["tenant"],
        "period": detail["period_label"],
        "population": detail["population"],
        "signed_off_by": signer,
        "signed_off_at": at,
        "items": [
            [
                i["id"],
                i["seq"],
                i["user_name"],
                i["subject"],
                i["action"],
                i["decision"],
                i["comment"],
                i["decided_by"],
                i["decided_at"],
                i["case_id"],
            ]
            for i in sorted(detail["items"], key=lambda x: x["id"])
        ],
    }
    return hashlib.sha256(json.dumps(body, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


def _signoff_event(detail: Row, signer: str, at: int, digest: str, peer: str, counts: Row) -> Event:
    from norrvakt.audit import audit_event

    plan = detail["plan"]
    return audit_event(
        signer,
        "followup-signoff",
        peer=peer,
        details={
            "tenant": detail["tenant"],
            "plan": plan["id"],
            "dataset": plan["dataset"],
            "round": detail["id"],
            "period": detail["period_label"],
            "population": detail["population"],
            "items": counts["total"],
            "not_justified": counts["not_justified"],
            "needs_investigation": counts["needs_investigation"],
            "digest": digest,
            "signed_off_at": str(at),
        },
    )


EXTRAS_KEY = "followup"


def followup_for(runtime: Any) -> FollowupService:
    """The runtime's follow-up service, made on first use (shares the SOC's alert service)."""
    found: FollowupService | None = runtime.extras.get(EXTRAS_KEY)
    if found is None:
        from norrvakt.alerts.soc import soc_for
        from norrvakt.modules import modules_for
        from norrvakt.state.accounts import principal_of

        def may_review(username: str, tenant: str) -> bool:
            who = principal_of(runtime.state, username)
            return who is not None and who.role != "auditor" and who.can_read(tenant)

        d = runtime.settings.detection
        found = FollowupService(
            runtime.state,
            runtime.store,
            zone=runtime.settings.timezone,
            work_hours=(d.work_start_hour, d.work_end_hour),
            soc=soc_for(runtime),
            known_user=may_review,
            subscribes=lambda tenant: modules_for(runtime).enabled(tenant, "followup"),
        )
        runtime.extras[EXTRAS_KEY] = found
    return found
