"""Rule exceptions: stored and checked (state), matched at the alert intake (rule id or tag
group, tenant or all, field values exact and case-insensitive), suppressed matches counted and
kept, expiry and disabling, and reload through the version watch."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa

from norrvakt.alerts.exceptions import ExceptionSet
from norrvakt.alerts.service import AlertService
from norrvakt.config import AlertSettings
from norrvakt.event import Event
from norrvakt.state import exceptions as ex
from tests.alerts.conftest import T0, Clock, spray_input

DAY = ex.DAY_US


def _make(engine: sa.Engine, clock: Clock, **changes: Any) -> dict[str, Any]:
    args: dict[str, Any] = {
        "tenant": "lulea",
        "rule_id": "win-password-spray",
        "group": "",
        "conditions": {"user.name": ["svc_backup"]},
        "reason": "the backup account logs on with a stale password every night (CHG-1142)",
        "author": "anna.soc",
        "expires_at": clock.now + 30 * DAY,
        "now": clock.now,
    }
    args.update(changes)
    return ex.create(engine, **args)


def _event(**fields: str) -> Event:
    return Event(tenant="lulea", ts=T0, ingested=T0, source="t", peer="p", fields=dict(fields))


# -- state -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "says"),
    [
        ({"conditions": {}}, "at least one field"),
        ({"conditions": {"user.name": []}}, "at least one value"),
        ({"conditions": {"user.name": [""]}}, "1 to 4096"),
        ({"reason": "  "}, "reason"),
        ({"expires_at": T0 - 1}, "future"),
        ({"expires_at": T0 + 366 * DAY}, "365 days"),
        ({"rule_id": "", "group": ""}, "either rule_id"),
        ({"group": "tag:attack.t1110"}, "not both"),
        ({"rule_id": "", "group": "pack:core"}, "tag:<tag>"),
    ],
)
def test_a_bad_exception_is_refused_with_the_reason(
    engine: sa.Engine, clock: Clock, changes: dict[str, Any], says: str
) -> None:
    with pytest.raises(ex.ExceptionError, match=says):
        _make(engine, clock, **changes)
    with engine.connect() as conn:
        assert ex.listing(conn, None) == []


def test_an_exception_is_stored_listed_and_disabled_never_deleted(engine: sa.Engine, clock: Clock) -> None:
    made = _make(engine, clock, conditions={"user.name": ["svc_backup", "svc_backup"], "host.name": "dc1"})
    assert made["conditions"] == {"host.name": ["dc1"], "user.name": ["svc_backup"]}
    assert ex.state_of(made, clock.now) == ex.ACTIVE
    assert ex.state_of(made, made["expires_at"]) == ex.EXPIRED
    off = ex.disable(engine, made["id"], "bo.admin", clock.now + 1)
    assert ex.state_of(off, clock.now) == ex.DISABLED and off["disabled_by"] == "bo.admin"
    with engine.connect() as conn:
        assert [r["id"] for r in ex.listing(conn, ["lulea"])] == [made["id"]]
        assert ex.listing(conn, ["boden"]) == []
        assert ex.current(conn, clock.now) == []
    with pytest.raises(ex.NoSuchException):
        ex.disable(engine, 9999, "bo.admin", clock.now)


def test_match_lines_of_the_console_form() -> None:
    text = "user.name = svc_backup\n\nprocess.command_line=a=b\n# LogonType=3\nuser.name=SVC2\n"
    assert ex.parse_match_lines(text) == {
        "user.name": ["svc_backup", "SVC2"],
        "process.command_line": ["a=b"],
    }
    with pytest.raises(ex.ExceptionError, match="line 1"):
        ex.parse_match_lines("no equals sign")


# -- matching ----------------------------------------------------------------------------------


def _set(**row: Any) -> ExceptionSet:
    base: dict[str, Any] = {
        "id": 1,
        "tenant": "lulea",
        "rule_id": "win-password-spray",
        "rule_group": "",
        "conditions": {"user.name": ["SVC_Backup"]},
        "expires_at": T0 + DAY,
    }
    base.update(row)
    return ExceptionSet.of([base])


def test_field_values_match_exactly_and_case_insensitively() -> None:
    s = _set()
    assert s.find(spray_input(user="svc_backup"), T0) is not None
    assert s.find(spray_input(user="svc_backup2"), T0) is None
    assert s.find(spray_input(user="x svc_backup"), T0) is None


def test_every_field_must_match_and_the_event_is_looked_up_before_the_entities() -> None:
    s = _set(conditions={"user.name": ["svc_backup"], "LogonProcessName": ["NtLmSsp", "Kerberos"]})
    assert s.find(spray_input(user="svc_backup"), T0) is None  # the event field is missing
    inp = spray_input(user="svc_backup", event=_event(LogonProcessName="ntlmssp "))
    assert s.find(inp, T0) is None
    inp = spray_input(user="svc_backup", event=_event(LogonProcessName="kerberos"))
    assert s.find(inp, T0) is not None


def test_tenant_scope_and_all_tenants() -> None:
    assert _set().find(spray_input(user="svc_backup", tenant="boden"), T0) is None
    assert _set(tenant="*").find(spray_input(user="svc_backup", tenant="boden"), T0) is not None


def test_another_rule_is_not_covered_but_a_tag_group_covers_its_sub_techniques() -> None:
    assert _set().find(spray_input(user="svc_backup", rule_id="other"), T0) is None
    group = _set(rule_id="", rule_group="tag:attack.t1110")
    assert group.find(spray_input(user="svc_backup", rule_id="other"), T0) is not None  # attack.t1110.003
    narrow = _set(rule_id="", rule_group="tag:attack.t1110.001")
    assert narrow.find(spray_input(user="svc_backup"), T0) is None
    assert _set(rule_id="", rule_group="tag:attack.t111").find(spray_input(user="svc_backup"), T0) is None


def test_an_expired_exception_no_longer_covers() -> None:
    s = _set()
    assert s.find(spray_input(user="svc_backup"), T0 + DAY - 1) is not None
    assert s.find(spray_input(user="svc_backup"), T0 + DAY) is None


# -- the intake --------------------------------------------------------------------------------


def test_a_covered_match_raises_no_alert_and_is_counted_and_kept(
    service: AlertService, engine: sa.Engine, clock: Clock
) -> None:
    made = _make(engine, clock)
    service.reload_exceptions()
    out = service.ingest([spray_input(user="svc_backup"), spray_input(user="svc_backup"), spray_input()])
    assert len(out) == 1 and out[0].entities["user.name"] == "anna.berg" and out[0].count == 1
    assert service.stats.suppressed == 2
    assert service.stats.as_dict(["lulea"])["suppressed"] == 2
    with engine.connect() as conn:
        assert ex.hits(conn, ["lulea"])[made["id"]]["hits"] == 2
        assert ex.hits(conn, ["boden"]) == {}
        kept = ex.matches(conn, made["id"], ["lulea"])
        assert ex.matches(conn, made["id"], ["boden"]) == []
    assert len(kept) == 2 and {k["rule_id"] for k in kept} == {"win-password-spray"}
    assert all(k["event_seq"] > 0 for k in kept)
    service.ingest([spray_input(user="svc_backup", event_ts=T0 + 10**13)])
    with engine.connect() as conn:
        counted = ex.hits(conn, None)[made["id"]]
    assert counted["hits"] == 3 and counted["last_hit"] == T0 + 10**13


def test_an_all_suppressed_batch_still_runs_within(
    service: AlertService, engine: sa.Engine, clock: Clock
) -> None:
    _make(engine, clock)
    service.reload_exceptions()
    ran: list[bool] = []
    assert service.ingest([spray_input(user="svc_backup")], within=lambda conn: ran.append(True)) == []
    assert ran == [True]


def test_matches_beyond_the_cap_are_counted_not_kept(
    service: AlertService, engine: sa.Engine, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ex, "KEPT_MATCHES", 3)
    made = _make(engine, clock)
    service.reload_exceptions()
    service.ingest([spray_input(user="svc_backup") for _ in range(5)])
    with engine.connect() as conn:
        assert ex.hits(conn, None)[made["id"]]["hits"] == 5
        assert len(ex.matches(conn, made["id"], None)) == 3


def test_an_exception_made_elsewhere_is_seen_through_the_version_watch(
    engine: sa.Engine, settings: AlertSettings, clock: Clock
) -> None:
    ticks = [0.0]
    other = AlertService(engine, settings, clock=clock)
    other._exception_watch.clock = lambda: ticks[0]  # the watch's own monotonic clock
    other._exception_watch._checked = 0.0
    other.warm()
    _make(engine, clock)  # as another node would, through the API
    assert len(other.ingest([spray_input(user="svc_backup")])) == 1  # within the second: not yet
    ticks[0] += 2
    assert other.ingest([spray_input(user="svc_backup")]) == []
    ex.disable(engine, 1, "bo.admin", clock.now)
    ticks[0] += 2
    assert len(other.ingest([spray_input(user="svc_backup")])) == 1


def test_expiry_stops_an_exception_without_a_reload(
    service: AlertService, engine: sa.Engine, clock: Clock
) -> None:
    _make(engine, clock, expires_at=clock.now + 60 * 1_000_000)
    service.reload_exceptions()
    assert service.ingest([spray_input(user="svc_backup")]) == []
    clock.advance(61)
    assert len(service.ingest([spray_input(user="svc_backup")])) == 1


def test_no_exceptions_is_an_empty_set(service: AlertService) -> None:
    assert not service.exceptions  # the intake's one `if` per match
    assert len(service.ingest([spray_input()])) == 1


def test_a_new_reason_or_expiry_is_stored_and_an_expired_one_applies_again(
    engine: sa.Engine, clock: Clock
) -> None:
    made = _make(engine, clock, expires_at=clock.now + 60 * 1_000_000)
    clock.advance(120)
    assert ex.state_of(made, clock.now) == ex.EXPIRED
    before, after = ex.change(engine, made["id"], reason="renewed", expires_at=clock.now + DAY, now=clock.now)
    assert before["reason"] != after["reason"] == "renewed"
    assert ex.state_of(after, clock.now) == ex.ACTIVE
    with pytest.raises(ex.ExceptionError, match="future"):
        ex.change(engine, made["id"], reason=None, expires_at=clock.now - 1, now=clock.now)
    ex.disable(engine, made["id"], "bo.admin", clock.now)
    with pytest.raises(ex.ExceptionError, match="disabled"):
        ex.change(engine, made["id"], reason="again", expires_at=None, now=clock.now)


def test_an_expiry_is_claimed_once_for_the_audit_trail(engine: sa.Engine, clock: Clock) -> None:
    soon = _make(engine, clock, expires_at=clock.now + 60 * 1_000_000)
    _make(engine, clock)  # 30 days
    assert ex.claim_expired(engine, clock.now) == []
    clock.advance(61)
    assert [r["id"] for r in ex.claim_expired(engine, clock.now)] == [soon["id"]]
    assert ex.claim_expired(engine, clock.now) == []  # another node finds nothing left
    ex.change(engine, soon["id"], reason=None, expires_at=clock.now + 60 * 1_000_000, now=clock.now)
    clock.advance(61)
    assert [r["id"] for r in ex.claim_expired(engine, clock.now)] == [soon["id"]]  # the new expiry too
