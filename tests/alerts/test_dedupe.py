"""Deduplication and suppression: repeats raise the count, they do not make new alerts."""

from __future__ import annotations

from dataclasses import replace

import pytest
import sqlalchemy as sa

from norrvakt.alerts.cases import CaseService
from norrvakt.alerts.service import AlertService
from norrvakt.config import AlertSettings
from norrvakt.state import alerts as alert_rows
from norrvakt.state import rules as rule_rows
from norrvakt.state.db import alert_events, alerts
from norrvakt.state.detect_positions import PositionMoved
from tests.alerts.conftest import MIN, T0, Clock, spray_input


def test_a_spray_of_25_failed_logons_is_one_alert_with_count_25(service: AlertService) -> None:
    inputs = [spray_input(user=f"user{i}") for i in range(25)]
    out = service.ingest(inputs)
    assert len(out) == 1
    (alert,) = out
    assert alert.count == 25 and alert.created and alert.id > 0
    assert alert.first_seq == inputs[0].event_seq and alert.last_seq == inputs[-1].event_seq
    assert service.stats.created == 1 and service.stats.deduplicated == 24


def test_repeats_in_later_calls_join_the_open_alert(service: AlertService, engine: sa.Engine) -> None:
    (first,) = service.ingest([spray_input()])
    (again,) = service.ingest([spray_input(), spray_input()])
    assert again.id == first.id and again.count == 3 and not again.created
    with engine.connect() as conn:
        row = alert_rows.get(conn, first.id)
    assert row is not None and row["event_count"] == 3 and row["evidence_count"] == 3


def test_a_repeat_after_the_window_starts_a_new_alert(service: AlertService) -> None:
    (first,) = service.ingest([spray_input(event_ts=T0)])
    (later,) = service.ingest([spray_input(event_ts=T0 + 61 * MIN)])  # default window 60 min
    assert later.id != first.id and later.created


def test_other_key_values_are_other_alerts(service: AlertService) -> None:
    out = service.ingest([spray_input(ip="185.220.101.7"), spray_input(ip="45.155.205.1")])
    assert len({a.id for a in out}) == 2


def test_the_inputs_own_key_fields_win(service: AlertService) -> None:
    out = service.ingest(
        [spray_input(user=u, dedupe_key_fields=["user.name"]) for u in ("anna", "erik", "anna")]
    )
    assert sorted(a.count for a in out) == [1, 2]


def test_evidence_is_capped_but_the_count_goes_on(engine: sa.Engine, clock: Clock) -> None:
    svc = AlertService(engine, AlertSettings(evidence_cap=5), clock=clock)
    svc.warm()
    (alert,) = svc.ingest([spray_input() for _ in range(12)])
    assert alert.count == 12 and alert.evidence_count == 5
    with engine.connect() as conn:
        assert len(alert_rows.evidence(conn, alert.id)) == 5


def test_rule_settings_change_key_fields_window_and_can_switch_a_rule_off(
    service: AlertService, engine: sa.Engine
) -> None:
    rule_rows.put(
        engine,
        "win-password-spray",
        "*",
        dedupe_fields=["user.name"],
        window_s=None,
        enabled=True,
        actor="a",
        at=1,
    )
    service.reload_rules()
    out = service.ingest([spray_input(user="anna"), spray_input(user="erik")])
    assert len(out) == 2
    rule_rows.put(
        engine,
        "win-password-spray",
        "lulea",
        dedupe_fields=None,
        window_s=None,
        enabled=False,
        actor="a",
        at=2,
    )
    service.reload_rules()
    assert service.ingest([spray_input()]) == []
    assert service.stats.disabled == 1


def test_closed_alerts_are_not_joined(service: AlertService, cases: CaseService) -> None:
    (first,) = service.ingest([spray_input()])
    assert first.case_id is not None
    scope = ["lulea"]
    cases.set_status(first.case_id, "acknowledged", "anna", scope)
    cases.set_status(first.case_id, "resolved", "anna", scope)
    (again,) = service.ingest([spray_input()])
    assert again.id != first.id and again.created


def test_flood_guard_bounds_new_alerts_per_rule_and_minute(engine: sa.Engine, clock: Clock) -> None:
    svc = AlertService(engine, AlertSettings(max_new_per_rule_per_minute=10, auto_case=False), clock=clock)
    svc.warm()
    out = svc.ingest([spray_input(ip=f"10.0.{i // 256}.{i % 256}") for i in range(500)])
    assert len(out) == 11  # ten ordinary alerts and one flood alert holding the rest
    flood = [a for a in out if "norrvakt.flood" in a.key_values]
    assert len(flood) == 1 and flood[0].count == 490
    assert svc.stats.flooded == 490


def test_restart_keeps_deduplicating(engine: sa.Engine, clock: Clock, settings: AlertSettings) -> None:
    first = AlertService(engine, settings, clock=clock)
    first.warm()
    (a,) = first.ingest([spray_input()])
    second = AlertService(engine, settings, clock=clock)
    second.warm()
    (b,) = second.ingest([spray_input()])
    assert b.id == a.id and b.count == 2
    cold = AlertService(engine, settings, clock=clock)  # not warmed: looks the key up
    (c,) = cold.ingest([spray_input()])
    assert c.id == a.id and c.count == 3


def test_unknown_level_is_refused_with_where(service: AlertService) -> None:
    import pytest

    from norrvakt.alerts.errors import InvalidInput

    with pytest.raises(InvalidInput, match=r"alert input 1 .*unknown level 'severe'"):
        service.ingest([spray_input(), replace(spray_input(), level="severe")])


def test_a_batch_whose_position_move_fails_writes_nothing_and_its_retry_counts_once(
    service: AlertService, engine: sa.Engine
) -> None:
    """A cluster detection worker moves its stream position inside the alerts' transaction
    (``within``); when that fails, the batch is not written and the index forgets what it
    counted, so the same batch again (from the stream, after a restart) counts once."""
    service.ingest([spray_input() for _ in range(3)])
    batch = [spray_input() for _ in range(4)]

    def moved_elsewhere(conn: sa.Connection) -> None:
        raise PositionMoved("lulea: another worker took the tenant")

    with pytest.raises(PositionMoved):
        service.ingest(batch, within=moved_elsewhere)
    with engine.connect() as conn:
        assert [r.event_count for r in conn.execute(sa.select(alerts.c.event_count))] == [3]
    service.ingest(batch, within=lambda conn: None)
    with engine.connect() as conn:
        assert [r.event_count for r in conn.execute(sa.select(alerts.c.event_count))] == [7]
        assert conn.execute(sa.select(sa.func.count()).select_from(alert_events)).scalar_one() == 7
