"""NIS2 due times and overdue flags; MTTA/MTTR per tenant and severity."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from norrvakt.alerts import sla
from norrvakt.alerts.cases import CaseService
from norrvakt.alerts.errors import InvalidInput
from norrvakt.alerts.nis2 import HOUR_US, add_month
from norrvakt.alerts.service import AlertService
from tests.alerts.conftest import T0, Clock, spray_input

LULEA = ["lulea"]


def test_add_month_keeps_the_day_or_takes_the_last_one() -> None:
    jan31 = 1_769_817_600_000_000  # 2026-01-31 00:00 UTC
    assert add_month(jan31) == 1_772_236_800_000_000  # 2026-02-28
    assert add_month(T0) == T0 + 31 * 24 * HOUR_US


def test_significant_case_gets_due_times_and_overdue_flags(
    service: AlertService, cases: CaseService, clock: Clock
) -> None:
    (alert,) = service.ingest([spray_input()])
    assert alert.case_id is not None
    case_id = alert.case_id
    cases.set_status(case_id, "acknowledged", "anna", LULEA)
    aware = clock.now
    assert cases.detail(case_id, LULEA)["nis2"]["overdue"] == []  # not significant: nothing is due
    cases.set_nis2(case_id, "anna", LULEA, significant=True)
    n = cases.detail(case_id, LULEA)["nis2"]
    assert n["early_warning_due"] == aware + 24 * HOUR_US and n["notification_due"] == aware + 72 * HOUR_US
    clock.advance(25 * 3600)
    assert cases.detail(case_id, LULEA)["nis2"]["overdue"] == ["early_warning"]
    listed, total = cases.listing(LULEA, overdue=True)
    assert total == 1 and listed[0]["id"] == case_id
    cases.set_nis2(case_id, "anna", LULEA, early_warning_sent_at=clock.now)
    assert cases.detail(case_id, LULEA)["nis2"]["overdue"] == []
    clock.advance(48 * 3600)
    cases.set_nis2(case_id, "anna", LULEA, notification_sent_at=clock.now)
    n = cases.detail(case_id, LULEA)["nis2"]
    assert n["final_report_due"] == add_month(clock.now) and n["overdue"] == []
    assert [c.field for c in cases.history(case_id, LULEA) if c.action == "nis2"] == [
        "significant",
        "early_warning_sent_at",
        "notification_sent_at",
    ]


def test_reports_need_a_significant_incident_and_no_future_times(
    service: AlertService, cases: CaseService, clock: Clock
) -> None:
    (alert,) = service.ingest([spray_input()])
    assert alert.case_id is not None
    with pytest.raises(InvalidInput, match="significant=true first"):
        cases.set_nis2(alert.case_id, "anna", LULEA, early_warning_sent_at=clock.now)
    with pytest.raises(InvalidInput, match="in the future"):
        cases.set_nis2(alert.case_id, "anna", LULEA, significant=True, aware_at=clock.now + 3600 * 10**6)


def test_mtta_and_mttr_per_tenant_and_severity(
    service: AlertService, cases: CaseService, clock: Clock, engine: sa.Engine
) -> None:
    ids = []
    for ip in ("1.1.1.1", "2.2.2.2"):
        (a,) = service.ingest([spray_input(ip=ip, entities={"source.ip": ip})])
        assert a.case_id is not None
        ids.append(a.case_id)
    clock.advance(60)
    cases.set_status(ids[0], "acknowledged", "anna", LULEA)
    clock.advance(60)
    cases.set_status(ids[1], "acknowledged", "anna", LULEA)
    clock.advance(180)
    cases.set_status(ids[0], "resolved", "anna", LULEA)
    (row,) = sla.report(engine, LULEA, T0 - 1, clock.now)
    assert (row["tenant"], row["severity"], row["cases"]) == ("lulea", "high", 2)
    assert row["mtta_s"] == 90.0 and row["acknowledged"] == 2
    assert row["mttr_s"] == 300.0 and row["resolved"] == 1
    assert sla.report(engine, ["boden"], T0 - 1, clock.now) == []
    assert sla.human(90.0) == "2 min"


def test_dashboard_tiles(service: AlertService, engine: sa.Engine) -> None:
    from norrvakt.alerts.dashboard import alert_dashboard

    service.ingest([spray_input(), spray_input(rule_id="other", rule_title="Other", level="critical")])
    tiles = alert_dashboard(engine)(LULEA, 0)
    assert tiles["severity_chart"]["data"]["datasets"][0]["data"] == [0, 0, 0, 1, 1]
    assert {r["title"] for r in tiles["top_rules"]} == {"Password spraying", "Other"}
    assert tiles["sla"][0]["mtta"] == "–"
