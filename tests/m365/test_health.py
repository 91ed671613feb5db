"""Source health: an outage longer than Microsoft keeps content, and a feed that stopped."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa

from norrvakt.event import now_us
from norrvakt.sources.m365.checkpoints import MINUTE
from norrvakt.state.m365 import FeedCheckpoint, load_checkpoint, save_checkpoint
from tests.m365.conftest import KeepingSink, connector, sync
from tests.m365.standin import StandIn, audit_record

DAY = 24 * 60 * MINUTE


@sync
async def test_an_outage_longer_than_seven_days_raises_a_gap_event_and_pulls_what_is_left(
    tmp_path: Path, standin: StandIn, engine: sa.Engine
) -> None:
    now = now_us()
    save_checkpoint(engine, FeedCheckpoint("m365-lulea", "Audit.Exchange", "lulea", done_until=now - 9 * DAY))
    standin.add_blob("Audit.Exchange", now - 6 * DAY, [audit_record("six-days", now - 6 * DAY)])
    standin.add_blob("Audit.Exchange", now - 10 * MINUTE, [audit_record("recent", now - 10 * MINUTE)])
    sink = KeepingSink()
    from norrvakt.sources.m365.checkpoints import WindowPlan

    plan = WindowPlan(window=DAY, overlap=10 * MINUTE)
    conn = connector(tmp_path, standin, engine, ("Audit.Exchange",), sink, plan=plan)
    await conn.cycle()
    gaps = [e for e in sink.events if e.ecs.get("event.action") == "retention_gap"]
    assert len(gaps) == 1
    gap = gaps[0]
    assert gap.tenant == "lulea" and gap.ecs["event.dataset"] == "connector.health"
    assert gap.fields["feed"] == "Audit.Exchange" and float(gap.fields["gap_hours"]) > 47
    assert "never pulled" in gap.message
    assert sorted(sink.ids()) == ["recent", "six-days"]
    listings = [r for r in standin.requests if "/subscriptions/content" in r]
    assert all("startTime=" in r for r in listings)
    await conn.cycle()  # reported once
    assert len([e for e in sink.events if e.ecs.get("event.action") == "retention_gap"]) == 1
    await conn.stop()


@sync
async def test_a_feed_that_has_not_succeeded_for_n_minutes_raises_a_stale_event(
    tmp_path: Path, standin: StandIn, engine: sa.Engine
) -> None:
    sink = KeepingSink()
    conn = connector(tmp_path, standin, engine, ("Audit.Exchange",), sink, stale_after_s=0.5)
    for _ in range(4):
        standin.fault("500", "/subscriptions/content")
    await conn.cycle()
    conn.started_at -= 2_000_000
    for _ in range(4):
        standin.fault("500", "/subscriptions/content")
    await conn.cycle()
    stale = [e for e in sink.events if e.ecs.get("event.action") == "connector_stale"]
    assert len(stale) == 1
    assert stale[0].fields["last_success"] == "never" and "HTTP 500" in stale[0].fields["last_error"]
    await conn.cycle()  # healthy again: no new event, and the next outage is reported anew
    cp = load_checkpoint(engine, "m365-lulea", "Audit.Exchange")
    assert cp is not None and cp.last_success_at is not None and cp.last_error == ""
    assert len([e for e in sink.events if e.ecs.get("event.action") == "connector_stale"]) == 1
    await conn.stop()


@sync
async def test_without_a_credential_the_feed_shows_why_and_goes_stale(
    tmp_path: Path, standin: StandIn, engine: sa.Engine
) -> None:
    from tests.m365.conftest import make_config

    sink = KeepingSink()
    conn = make_config(tmp_path, standin, ("graph.signIns",), stale_after_s=0.1).build()
    conn.attach(sink)
    conn.started_at -= 1_000_000
    await conn.cycle()
    cp = load_checkpoint(engine, "m365-lulea", "graph.signIns")
    assert cp is not None and "no credential stored" in cp.last_error
    assert [e.ecs["event.action"] for e in sink.events] == ["connector_stale"]
    await conn.stop()


def test_the_health_events_become_alerts_through_the_built_in_rules() -> None:
    from norrvakt.detect.detection import DetectionEngine, builtin_rules_dir
    from norrvakt.detect.engine import RuleSet
    from norrvakt.sources.m365.health import gap_event, stale_event

    rules, report = RuleSet.load([builtin_rules_dir()], use_cache=False)
    assert not report.not_loaded
    now = now_us()
    stale = stale_event("m365-lulea", "lulea", "graph.signIns", None, now - 90 * MINUTE, now, "HTTP 503")
    gap = gap_event("m365-lulea", "lulea", "Audit.Exchange", now - 9 * DAY, now - 7 * DAY, now)
    for seq, event in enumerate((stale, gap), start=1):
        event.seq = seq
    found = DetectionEngine(rules).process([stale, gap])
    assert {(d.rule_id, d.tenant) for d in found} == {
        ("f10c4795-bec0-4ddf-98d3-4d24f32f5467", "lulea"),
        ("80a899e2-5882-4292-8322-927181cdb14f", "lulea"),
    }
