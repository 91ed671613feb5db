"""Cases: the status workflow, merge/split/move, tenant scope, and the append-only history."""

from __future__ import annotations

import pytest

from norrvakt.alerts.cases import CaseService
from norrvakt.alerts.errors import InvalidInput, InvalidTransition, NotFound
from norrvakt.alerts.service import AlertService
from tests.alerts.conftest import Clock, spray_input

LULEA = ["lulea"]


def _case(service: AlertService, **kw: object) -> tuple[int, int]:
    (alert,) = service.ingest([spray_input(**kw)])  # type: ignore[arg-type]
    assert alert.case_id is not None
    return alert.case_id, alert.id


def test_acknowledge_investigate_resolve_sets_times_and_alert_status(
    service: AlertService, cases: CaseService, clock: Clock
) -> None:
    case_id, alert_id = _case(service)
    clock.advance(120)
    case, changes = cases.set_status(case_id, "acknowledged", "anna", LULEA)
    assert case.acknowledged_at == clock.now and case.aware_at == clock.now
    assert [(c.field, c.old, c.new) for c in changes] == [("status", "new", "acknowledged")]
    cases.set_status(case_id, "investigating", "anna", LULEA)
    clock.advance(600)
    case, _ = cases.set_status(case_id, "resolved", "anna", LULEA, note="reset the passwords")
    assert case.status == "resolved" and case.resolved_at == clock.now
    detail = cases.detail(case_id, LULEA)
    assert detail["alerts"][0]["status"] == "resolved" and detail["alerts"][0]["id"] == alert_id
    assert detail["comments"][0]["text"] == "reset the passwords"


@pytest.mark.parametrize(
    ("path", "bad"), [([], "resolved"), ([], "investigating"), (["acknowledged"], "new")]
)
def test_invalid_transitions_are_refused_and_change_nothing(
    service: AlertService, cases: CaseService, path: list[str], bad: str
) -> None:
    case_id, _ = _case(service)
    for step in path:
        cases.set_status(case_id, step, "anna", LULEA)
    before = cases.history(case_id, LULEA)
    with pytest.raises(InvalidTransition, match=f"cannot become '{bad}'"):
        cases.set_status(case_id, bad, "anna", LULEA)
    assert cases.history(case_id, LULEA) == before


def test_unknown_status_is_named(service: AlertService, cases: CaseService) -> None:
    case_id, _ = _case(service)
    with pytest.raises(InvalidTransition, match="unknown status 'done'"):
        cases.set_status(case_id, "done", "anna", LULEA)


def test_other_tenants_cases_are_not_found(service: AlertService, cases: CaseService) -> None:
    case_id, alert_id = _case(service)
    with pytest.raises(NotFound, match=f"no case {case_id}"):
        cases.set_status(case_id, "acknowledged", "bo", ["boden"])
    with pytest.raises(NotFound):
        cases.detail(case_id, ["boden"])
    with pytest.raises(NotFound, match=f"no alert.* {alert_id}"):
        cases.create(["boden"], "boden", "mine now", "bo", alert_ids=[alert_id])
    assert cases.get(case_id, LULEA).status == "new"


def test_merge_moves_alerts_and_marks_the_source_merged(service: AlertService, cases: CaseService) -> None:
    a, alert_a = _case(service, ip="1.1.1.1", entities={"source.ip": "1.1.1.1"})
    b, alert_b = _case(service, ip="2.2.2.2", entities={"source.ip": "2.2.2.2"})
    merged, changes = cases.merge(a, [b], "anna", LULEA)
    assert sorted(merged.alert_ids) == sorted([alert_a, alert_b])
    source = cases.get(b, LULEA)
    assert source.status == "merged" and source.merged_into == a
    assert {c.action for c in changes} >= {"alert-added", "merged", "merge"}
    with pytest.raises(InvalidTransition, match="was merged into"):
        cases.set_status(b, "acknowledged", "anna", LULEA)
    with pytest.raises(InvalidInput, match="belongs to 'boden'"):
        c, _ = _case(service, tenant="boden")
        cases.merge(a, [c], "anna", ["lulea", "boden"])


def test_split_and_move(service: AlertService, cases: CaseService) -> None:
    a, alert_a = _case(service, ip="1.1.1.1", entities={"source.ip": "1.1.1.1"})
    b, alert_b = _case(service, ip="2.2.2.2", entities={"source.ip": "2.2.2.2"})
    cases.merge(a, [b], "anna", LULEA)
    new, _ = cases.split(a, [alert_b], "anna", LULEA, title="second attacker")
    assert new.alert_ids == [alert_b] and new.title == "second attacker"
    assert cases.get(a, LULEA).alert_ids == [alert_a]
    with pytest.raises(InvalidInput, match="leaves it empty"):
        cases.split(a, [alert_a], "anna", LULEA)
    moved, _ = cases.move_alert(alert_b, a, "anna", LULEA)
    assert sorted(moved.alert_ids) == sorted([alert_a, alert_b])
    emptied = cases.get(new.id, LULEA)
    assert emptied.status == "resolved" and emptied.alert_ids == []
    with pytest.raises(InvalidInput, match="already"):
        cases.move_alert(alert_b, a, "anna", LULEA)


def test_assign_severity_comment_attach_and_history(service: AlertService, cases: CaseService) -> None:
    case_id, _ = _case(service)
    cases.update(case_id, "anna", LULEA, assignee="erik", severity="critical")
    cases.comment(case_id, "erik", LULEA, "looking at the DC logs")
    att, _ = cases.attach(
        case_id,
        "erik",
        LULEA,
        title="failed logons",
        query="event.code:4625",
        params={"since": "1h"},
        total=1,
        rows=[{"seq": 1, "message": "failed"}],
    )
    detail = cases.detail(case_id, LULEA)
    assert detail["assignee"] == "erik" and detail["severity"] == "critical"
    assert detail["attachments"][0]["result"] == [{"seq": 1, "message": "failed"}] and att["rows"] == 1
    actions = [(c.action, c.actor) for c in cases.history(case_id, LULEA)]
    assert actions[:2] == [("created", "norrvakt"), ("alert-added", "norrvakt")]
    assert ("assign", "anna") in actions and ("severity", "anna") in actions
    assert ("comment", "erik") in actions and ("attach", "erik") in actions
    with pytest.raises(InvalidInput, match="nothing to change"):
        cases.update(case_id, "anna", LULEA)


def test_create_a_case_by_hand_from_alerts(service: AlertService, cases: CaseService) -> None:
    old_case, alert_id = _case(service)
    case, _ = cases.create(LULEA, "lulea", "Spray against the DC", "anna", alert_ids=[alert_id])
    assert case.alert_ids == [alert_id] and case.severity == "high"
    assert cases.get(old_case, LULEA).status == "resolved"  # nothing left in it
    with pytest.raises(NotFound):
        cases.create(LULEA, "boden", "x", "anna")
