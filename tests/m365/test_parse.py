"""Pulled, parsed, detected: the connector against the stand-in, its records through the real
parser (format m365, the feed hint the connector sets) and the detection engine with the
built-in rules — the two halves of the Microsoft 365 source meeting."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlalchemy as sa

from norrvakt.detect.detection import DetectionEngine, builtin_rules_dir
from norrvakt.detect.engine import RuleSet
from norrvakt.event import Event, now_us
from norrvakt.parsers import parse_record
from norrvakt.sources.m365.checkpoints import MINUTE, WindowPlan
from tests.m365.conftest import KeepingSink, connector, sync
from tests.m365.standin import StandIn, audit_event, audit_record, signin_record

SPRAY = "Entra ID password spraying from one address"
# one listing window over the last hour, one window per cycle: these tests are about parsing,
# not paging (a caught-up feed otherwise re-lists its tail up to max_windows_per_cycle times)
PLAN = WindowPlan(window=2 * 60 * MINUTE, overlap=10 * MINUTE, initial_lookback=60 * MINUTE)


def _events(sink: KeepingSink) -> list[Event]:
    events = [parse_record(r) for r in sink.records]
    for seq, event in enumerate(sorted(events, key=lambda e: e.ts), start=1):
        event.seq = seq
    return sorted(events, key=lambda e: e.seq)


def _spray(ms: StandIn, now: int) -> None:
    for i in range(12):
        doc: dict[str, Any] = signin_record(f"sp-{i}", now - (30 - i) * MINUTE // 10, error_code=50126)
        doc["userPrincipalName"] = f"user{i}@lulea.example"
        doc["ipAddress"] = "185.220.101.45"
        ms.add_graph("graph.signIns", doc)


@sync
async def test_every_pulled_record_parses_to_its_dataset(
    tmp_path: Path, standin: StandIn, engine: sa.Engine
) -> None:
    now = now_us()
    standin.add_blob("Audit.Exchange", now - 40 * MINUTE, [audit_record("ex-1", now - 41 * MINUTE)])
    standin.add_blob(
        "Audit.AzureActiveDirectory",
        now - 40 * MINUTE,
        [audit_record("aad-1", now - 41 * MINUTE, workload="AzureActiveDirectory")],
    )
    standin.add_graph("graph.signIns", signin_record("si-1", now - 30 * MINUTE))
    for feed in ("graph.directoryAudits", "graph.alerts_v2", "graph.intune.auditEvents"):
        standin.add_graph(feed, audit_event(f"{feed}-1", now - 35 * MINUTE, feed))
    sink = KeepingSink()
    feeds = (
        "Audit.Exchange",
        "Audit.AzureActiveDirectory",
        "graph.signIns",
        "graph.directoryAudits",
        "graph.alerts_v2",
        "graph.intune.auditEvents",
    )
    conn = connector(tmp_path, standin, engine, feeds, sink, plan=PLAN, max_windows_per_cycle=1)
    await conn.cycle()
    await conn.stop()
    by_feed = {}
    for record in sink.records:
        event = parse_record(record)
        assert event.kind == "event", event.ecs.get("error.message")
        assert (event.tenant, event.source) == ("lulea", "m365-lulea")
        by_feed[(record.hints or {})["m365.feed"]] = event
    assert {f: e.ecs["event.dataset"] for f, e in by_feed.items()} == {
        "Audit.Exchange": "m365.audit",
        "Audit.AzureActiveDirectory": "m365.audit",
        "graph.signIns": "azure.signinlogs",
        "graph.directoryAudits": "azure.auditlogs",
        "graph.alerts_v2": "m365.alert",
        "graph.intune.auditEvents": "intune.audit",
    }
    signin = by_feed["graph.signIns"]
    assert signin.ecs["user.name"] == "erik.nilsson@lulea.example"
    assert signin.ecs["source.ip"] == "198.51.100.23"
    assert signin.fields["source.geo.city_name"] == "Luleå"
    assert by_feed["Audit.AzureActiveDirectory"].ecs["event.outcome"] == "success"


@sync
async def test_a_pulled_password_spray_is_detected(
    tmp_path: Path, standin: StandIn, engine: sa.Engine
) -> None:
    _spray(standin, now_us())
    sink = KeepingSink()
    conn = connector(tmp_path, standin, engine, ("graph.signIns",), sink, plan=PLAN, max_windows_per_cycle=1)
    await conn.cycle()
    await conn.stop()
    rules, _ = RuleSet.load([builtin_rules_dir()], use_cache=False)
    detector = DetectionEngine(rules)
    events = _events(sink)
    found = [d for d in detector.process(events) + detector.flush() if d.rule.title == SPRAY]
    assert len(found) == 1
    assert dict(found[0].group) == {"source.ip": "185.220.101.45"}
