"""NIS2 report drafts in-process, on both state backends: the four-eyes approval, an edit after
approval withdrawing it, a sent report frozen, met/missed per report from the sent times, and
the field checks (norrvakt/reports/nis2_drafts.py, nis2_fields.py)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from norrvakt.alerts.cases import CaseService
from norrvakt.alerts.errors import InvalidInput, InvalidTransition, NotFound
from norrvakt.alerts.nis2 import HOUR_US
from norrvakt.alerts.service import AlertService
from norrvakt.reports.nis2_drafts import Nis2Drafts, NotAllowed, digest
from norrvakt.reports.nis2_fields import Nis2FieldError, clean
from norrvakt.state.accounts import Principal
from tests.alerts.conftest import Clock, spray_input

LULEA = ["lulea"]
OFFICER = Principal("lulea.officer", "tenant_officer", frozenset(LULEA))
CHIEF = Principal("lulea.chief", "tenant_officer", frozenset(LULEA))
ADMIN = Principal("admin", "admin", None)
ANALYST = Principal("soc.anna", "soc_analyst", None)


def _events(tenant: str, seqs: Sequence[int]) -> list[dict[str, Any]]:
    """Evidence as the store hands it out: one event per seq with an external and an internal address."""
    return [
        {
            "tenant": tenant,
            "seq": s,
            "ts": 1_767_225_600_000_000 + s,
            "source": "winlogbeat",
            "ecs": {
                "source.ip": "10.1.2.3",
                "destination.ip": "8.8.8.8",
                "event.dataset": "windows.security",
            },
            "fields": {},
        }
        for s in seqs
    ]


@pytest.fixture
def drafts(cases: CaseService) -> Nis2Drafts:
    return Nis2Drafts(cases, _events)


def _significant_case(service: AlertService, cases: CaseService, clock: Clock) -> int:
    (alert,) = service.ingest([spray_input()])
    assert alert.case_id is not None
    cases.set_nis2(alert.case_id, "anna", LULEA, significant=True, aware_at=clock.now)
    return alert.case_id


def test_a_case_not_marked_significant_gets_no_draft(
    service: AlertService, cases: CaseService, drafts: Nis2Drafts
) -> None:
    (alert,) = service.ingest([spray_input()])
    assert alert.case_id is not None
    with pytest.raises(InvalidInput, match="not marked significant"):
        drafts.create(alert.case_id, "early_warning", OFFICER, LULEA, municipality="Luleå kommun")
    with pytest.raises(NotFound):
        drafts.create(alert.case_id, "early_warning", OFFICER, ["boden"], municipality="x")
    with pytest.raises(NotFound, match="report kind"):
        drafts.get(alert.case_id, "weekly", LULEA)


def test_four_eyes_and_an_edit_withdraws_the_approval(
    service: AlertService, cases: CaseService, drafts: Nis2Drafts, clock: Clock
) -> None:
    case_id = _significant_case(service, cases, clock)
    draft, _ = drafts.create(case_id, "notification", OFFICER, LULEA, municipality="Luleå kommun")
    ips = {i["value"]: i for i in draft["fields"]["indicators"]}
    assert ips["10.1.2.3"]["note"] == "intern adress" and "note" not in ips["8.8.8.8"]
    assert draft["fields"]["affected_services"] == ["windows.security"]
    with pytest.raises(NotAllowed, match="second person"):
        drafts.approve(case_id, "notification", OFFICER, LULEA)
    with pytest.raises(NotAllowed, match="tenant_officer or admin"):
        drafts.approve(case_id, "notification", ANALYST, LULEA)
    drafts.update(case_id, "notification", {"impact": "E-tjänsten låg nere 3 h"}, "soc.anna", LULEA)
    approved, _ = drafts.approve(case_id, "notification", CHIEF, LULEA)
    assert approved["status"] == "approved" and approved["approved_digest"] == digest(approved["fields"])
    # an indicator edited as a line keeps its first/last seen
    edited, changes = drafts.update(
        case_id, "notification", {"indicators": "ipv4 8.8.8.8\nipv4 185.220.101.7"}, "lulea.chief", LULEA
    )
    assert edited["status"] == "draft" and edited["approved_by"] is None
    assert [c.new for c in changes] == ["draft", "indicators"]
    kept = {i["value"]: i for i in edited["fields"]["indicators"]}
    assert kept["8.8.8.8"]["first_seen"] == ips["8.8.8.8"]["first_seen"] and set(kept) == {
        "8.8.8.8",
        "185.220.101.7",
    }
    with pytest.raises(NotAllowed):  # the chief edited it now: someone else approves
        drafts.approve(case_id, "notification", CHIEF, LULEA)
    with pytest.raises(NotAllowed):  # nor the one who drafted it, whoever edited it since
        drafts.approve(case_id, "notification", OFFICER, LULEA)
    again, _ = drafts.approve(case_id, "notification", ADMIN, LULEA)
    assert again["approved_by"] == "admin"


def test_sent_reports_are_frozen_and_met_or_missed(
    service: AlertService, cases: CaseService, drafts: Nis2Drafts, clock: Clock
) -> None:
    case_id = _significant_case(service, cases, clock)
    aware = clock.now
    for kind in ("early_warning", "notification"):
        drafts.create(case_id, kind, OFFICER, LULEA, municipality="Luleå kommun")
        with pytest.raises(InvalidTransition, match="approved"):
            drafts.mark_sent(case_id, kind, "soc.anna", LULEA, None)
        drafts.approve(case_id, kind, CHIEF, LULEA)
    clock.advance(30 * 3600)
    with pytest.raises(InvalidInput, match="future"):  # the case refuses the time: not sent
        drafts.mark_sent(case_id, "early_warning", "soc.anna", LULEA, clock.now + 2 * HOUR_US)
    assert drafts.get(case_id, "early_warning", LULEA)["status"] == "approved"
    drafts.mark_sent(case_id, "early_warning", "soc.anna", LULEA, None, "MCF-1")
    with pytest.raises(InvalidTransition):
        drafts.mark_sent(case_id, "early_warning", "soc.anna", LULEA, None)
    drafts.mark_sent(case_id, "notification", "soc.anna", LULEA, aware + 70 * HOUR_US - 40 * HOUR_US)
    n = cases.detail(case_id, LULEA)["nis2"]
    assert n["status"] == {"early_warning": "missed", "notification": "met", "final_report": "pending"}
    with pytest.raises(InvalidTransition, match="was sent"):
        drafts.update(case_id, "early_warning", {"title": "x"}, "lulea.chief", LULEA)
    final, _ = drafts.create(case_id, "final_report", OFFICER, LULEA, municipality="Luleå kommun")
    assert final["fields"]["csirt_reference"] == "MCF-1"


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"cross_border": "maybe"}, "cross_border: 'maybe' is not one of yes, no, unknown"),
        ({"indicators": "md6 abc"}, "indicators[0]: type 'md6'"),
        ({"aware_at": "yesterday"}, "aware_at: 'yesterday' is no ISO 8601 time"),
        ({"categories": ["angrepp", "spam"]}, "categories: 'spam'"),
        ({"title": "x" * 600}, "title: 600 characters, at most 512"),
    ],
)
def test_bad_field_values_are_named(values: dict[str, Any], message: str) -> None:
    with pytest.raises(Nis2FieldError, match=message.replace("[", r"\[").replace("]", r"\]")):
        clean("notification", values)


def test_a_field_of_another_report_is_refused() -> None:
    with pytest.raises(Nis2FieldError, match="unknown field"):
        clean("early_warning", {"threat_type": "ransomware"})  # the final report's, not the early warning's
    assert clean("final_report", {"aware_at": "2026-11-27T10:00:00Z"}) == {"aware_at": 1_795_773_600_000_000}


def test_saving_the_case_page_form_unchanged_keeps_the_approval(
    service: AlertService, cases: CaseService, drafts: Nis2Drafts, clock: Clock
) -> None:
    """The form sends every filled-in field as text (one item a line, times as ISO 8601, the
    categories as a list): sent back unchanged, it is the same content."""
    from norrvakt.web.views.nis2_panel import _form

    case_id = _significant_case(service, cases, clock)
    drafts.create(case_id, "final_report", OFFICER, LULEA, municipality="Luleå kommun")
    approved, _ = drafts.approve(case_id, "final_report", CHIEF, LULEA)
    sent: dict[str, Any] = {}
    for f in _form("final_report", approved, "sv"):
        if f["type"] == "choices":
            sent[f["name"]] = f["selected"]
        elif f["type"] == "choice":
            if f["selected"][0] is not None:
                sent[f["name"]] = f["selected"][0]
        elif f["text"]:
            sent[f["name"]] = f["text"]
    same, changes = drafts.update(case_id, "final_report", sent, "lulea.chief", LULEA)
    assert changes == [] and same["status"] == "approved" and same["fields"] == approved["fields"]
