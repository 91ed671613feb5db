"""Escalation of unacknowledged cases, the evidence retention must keep, and the audit form of
case history."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
import sqlalchemy as sa

from norrvakt.alerts.cases import CaseService
from norrvakt.alerts.dispatcher import Dispatcher
from norrvakt.alerts.escalation import Escalator
from norrvakt.alerts.evidence import EvidenceHeld, check_disposal, evidence_seqs
from norrvakt.alerts.intake import INTEGRITY_RULE, integrity_input
from norrvakt.alerts.journaling import audit_events
from norrvakt.alerts.notify.builtin import build_channel
from norrvakt.alerts.routing import Router
from norrvakt.alerts.service import AlertService
from norrvakt.config import AlertSettings, ChannelSettings
from norrvakt.event import SYSTEM_TENANT
from tests.alerts.conftest import Clock, spray_input
from tests.alerts.receivers import WebhookReceiver

LULEA = ["lulea"]


def test_a_case_not_acknowledged_in_time_is_escalated_once(
    engine: sa.Engine, service: AlertService, cases: CaseService, clock: Clock
) -> None:
    (alert,) = service.ingest([spray_input()])
    (other,) = service.ingest([spray_input(ip="9.9.9.9", entities={"source.ip": "9.9.9.9"})])
    assert alert.case_id is not None and other.case_id is not None
    cases.set_status(other.case_id, "acknowledged", "anna", LULEA)  # handled in time: not escalated

    async def go(rx: WebhookReceiver) -> list[list[str]]:
        cs = ChannelSettings(name="oncall", type="webhook", url=rx.url)
        d = Dispatcher(engine, {"oncall": (build_channel(cs), cs)}, Router([]))
        settings = AlertSettings(escalate_after_minutes=15, escalation_channels=["oncall"])
        esc = Escalator(engine, settings, d, clock=clock)
        await d.start()
        rounds = [[c.action for c in await esc.run_once()]]
        clock.advance(16 * 60)
        rounds.append([c.action for c in await esc.run_once()])
        rounds.append([c.action for c in await esc.run_once()])
        await asyncio.sleep(0.05)
        await d.wait_idle()
        await d.stop()
        return rounds

    with WebhookReceiver() as rx:
        rounds = asyncio.run(go(rx))
    assert rounds == [[], ["escalated"], []]
    (doc,) = [json.loads(r.body) for r in rx.received]
    assert doc["kind"] == "case.escalated" and doc["case"]["id"] == alert.case_id
    assert "Not acknowledged after 16 min" in doc["title"]
    assert cases.get(alert.case_id, LULEA).escalated_at == clock.now


def test_open_alerts_hold_their_evidence_until_the_case_closes(
    engine: sa.Engine, service: AlertService, cases: CaseService
) -> None:
    inputs = [spray_input() for _ in range(3)]
    (alert,) = service.ingest(inputs)
    seqs = [i.event_seq for i in inputs]
    assert evidence_seqs(engine, "lulea") == [(seqs[0], seqs[-1])]
    with pytest.raises(EvidenceHeld, match=f"lulea seq 1..{seqs[-1]} holds evidence"):
        check_disposal(engine, "lulea", 1, seqs[-1])
    check_disposal(engine, "lulea", seqs[-1] + 1, seqs[-1] + 100)  # after it: free
    check_disposal(engine, "boden", 1, 10**9)  # another tenant: free
    assert alert.case_id is not None
    cases.set_status(alert.case_id, "acknowledged", "anna", LULEA)
    cases.set_status(alert.case_id, "resolved", "anna", LULEA)
    assert evidence_seqs(engine, "lulea") == []


def test_significant_incidents_keep_their_evidence_after_closing(
    engine: sa.Engine, service: AlertService, cases: CaseService
) -> None:
    (alert,) = service.ingest([spray_input()])
    assert alert.case_id is not None
    cases.set_status(alert.case_id, "acknowledged", "anna", LULEA)
    cases.set_nis2(alert.case_id, "anna", LULEA, significant=True)
    cases.set_status(alert.case_id, "resolved", "anna", LULEA)
    assert evidence_seqs(engine, "lulea") == [(alert.first_seq, alert.first_seq)]


def test_integrity_alert_events_become_critical_system_alerts(service: AlertService) -> None:
    from norrvakt.integrity import integrity_alert
    from norrvakt.journal.verify import Finding, TenantResult, VerifyReport

    finding = Finding(tenant="lulea", code="record.leaf", detail="record 17 changed", seq=17)
    report = VerifyReport(tenants=[TenantResult("lulea", findings=[finding])])
    event = integrity_alert(report)
    event.seq = 5
    inp = integrity_input(event)
    assert (inp.tenant, inp.rule_id, inp.level, inp.event_seq) == (
        SYSTEM_TENANT,
        INTEGRITY_RULE,
        "critical",
        5,
    )
    (a,) = service.ingest([inp, integrity_input(event)])
    assert a.count == 2 and a.tenant == SYSTEM_TENANT


def test_history_lines_become_audit_events() -> None:
    from norrvakt.alerts.model import Change

    (event,) = audit_events([Change(3, "lulea", 123, "anna", "status", "status", "new", "acknowledged")])
    assert event.tenant == SYSTEM_TENANT and event.ts == 123
    assert event.ecs["event.action"] == "case-status" and event.ecs["user.name"] == "anna"
    assert event.fields == {
        "case": "3",
        "tenant": "lulea",
        "field": "status",
        "old": "new",
        "new": "acknowledged",
    }


def test_the_running_soc_turns_integrity_alert_events_into_alerts_and_journals_history(
    tmp_path: Path,
) -> None:
    from norrvakt.alerts.soc import Soc
    from norrvakt.config import load_settings
    from norrvakt.integrity import integrity_alert
    from norrvakt.journal.log import JournalConfig
    from norrvakt.journal.verify import Finding, TenantResult, VerifyReport
    from norrvakt.node.pipeline import Pipeline
    from norrvakt.state import alerts as alert_rows
    from norrvakt.state.db import open_state

    engine = open_state(f"sqlite:///{tmp_path / 'state.db'}")
    finding = Finding(tenant="kiruna", code="record.crc", detail="bad CRC", seq=3)
    report = VerifyReport(tenants=[TenantResult("kiruna", findings=[finding])])

    async def go() -> tuple[list[dict[str, object]], int]:
        journal = JournalConfig(directory=tmp_path / "journal").build()
        pipeline = Pipeline(journal)
        await pipeline.start()
        soc = Soc(engine, load_settings(overrides={"data_dir": str(tmp_path)}), pipeline)
        await soc.start()
        await pipeline.commit([integrity_alert(report)])
        for _ in range(200):
            with engine.connect() as conn:
                rows, _total = alert_rows.listing(conn, [SYSTEM_TENANT])
            if rows and journal.committed_seq(SYSTEM_TENANT) >= 3:  # the alert event + 2 history lines
                break
            await asyncio.sleep(0.02)
        await soc.stop()
        await pipeline.stop()
        seq = journal.committed_seq(SYSTEM_TENANT)
        journal.close()
        return rows, seq

    rows, seq = asyncio.run(go())
    engine.dispose()
    (row,) = rows
    assert row["rule_id"] == INTEGRITY_RULE and row["level"] == "critical" and row["case_id"] is not None
    assert seq >= 3
