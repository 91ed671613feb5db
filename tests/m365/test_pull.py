"""The connector against the stand-in: both APIs, paging, faults, dedupe and resume."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import sqlalchemy as sa

from norrvakt.event import now_us
from norrvakt.sources.m365.checkpoints import MINUTE
from norrvakt.state.m365 import load_checkpoint
from tests.m365.conftest import KeepingSink, connector, sync
from tests.m365.standin import StandIn, audit_event, audit_record, signin_record


async def _next_second() -> None:
    """Windows end on whole seconds: a round in the same second as the last has nothing to ask."""
    import asyncio

    await asyncio.sleep(1.05)


def _exchange(ms: StandIn, now: int, blobs: int = 3, per_blob: int = 3) -> list[str]:
    ids = []
    for b in range(blobs):
        created = now - (50 - b * 10) * MINUTE
        recs = [audit_record(f"ex-{b}-{i}", created - MINUTE) for i in range(per_blob)]
        ids += [r["Id"] for r in recs]
        ms.add_blob("Audit.Exchange", created, recs)
    return ids


@sync
async def test_management_api_pulls_every_blob_following_next_page_uri_as_given(
    tmp_path: Path, standin: StandIn, engine: sa.Engine
) -> None:
    now = now_us()
    ids = _exchange(standin, now, blobs=5)
    sink = KeepingSink()
    conn = connector(tmp_path, standin, engine, ("Audit.Exchange",), sink)
    await conn.cycle()
    assert sorted(sink.ids()) == sorted(ids)
    rec = sink.records[0]
    assert (rec.tenant, rec.source_id, rec.peer, rec.format) == (
        "lulea",
        "m365-lulea",
        "m365:Audit.Exchange",
        "m365",
    )
    assert rec.hints == {"m365.feed": "Audit.Exchange"}
    pages = [r for r in standin.requests if "nextpage=" in r]
    assert pages and all("==" in r and "+" in r for r in pages)  # the token came back unchanged
    assert any("/subscriptions/start" in r for r in standin.requests)
    await conn.stop()


@sync
async def test_graph_feeds_page_by_next_link_and_sign_ins_include_non_interactive(
    tmp_path: Path, standin: StandIn, engine: sa.Engine
) -> None:
    now = now_us()
    for i in range(5):
        standin.add_graph("graph.signIns", signin_record(f"si-{i}", now - (30 + i) * MINUTE))
    for i in range(3):
        standin.add_graph(
            "graph.signIns", signin_record(f"ni-{i}", now - 20 * MINUTE, kind="nonInteractiveUser")
        )
    for feed in ("graph.directoryAudits", "graph.alerts_v2", "graph.intune.auditEvents"):
        for i in range(3):
            standin.add_graph(feed, audit_event(f"{feed}-{i}", now - (40 + i) * MINUTE, feed))
    sink = KeepingSink()
    feeds = ("graph.signIns", "graph.directoryAudits", "graph.alerts_v2", "graph.intune.auditEvents")
    conn = connector(tmp_path, standin, engine, feeds, sink)
    await conn.cycle()
    got = sink.ids()
    assert sorted(got) == sorted(
        [f"si-{i}" for i in range(5)]
        + [f"ni-{i}" for i in range(3)]
        + [f"{f}-{i}" for f in feeds[1:] for i in range(3)]
    )
    assert {r.hints["m365.feed"] for r in sink.records if r.hints} == set(feeds)
    assert any("skiptoken=" in r for r in standin.requests)
    await conn.stop()


@sync
async def test_a_record_twice_across_two_pages_is_journaled_once(
    tmp_path: Path, standin: StandIn, engine: sa.Engine
) -> None:
    now = now_us()
    dup = audit_record("ex-dup", now - 30 * MINUTE)
    standin.add_blob("Audit.Exchange", now - 30 * MINUTE, [audit_record("a", now - 31 * MINUTE), dup])
    standin.add_blob("Audit.Exchange", now - 25 * MINUTE, [audit_record("b", now - 26 * MINUTE)])
    standin.add_blob("Audit.Exchange", now - 20 * MINUTE, [dup, audit_record("c", now - 21 * MINUTE)])
    standin.add_graph("graph.signIns", signin_record("s1", now - 30 * MINUTE))
    standin.add_graph("graph.signIns", signin_record("s2", now - 29 * MINUTE))
    standin.add_graph("graph.signIns", signin_record("s1", now - 30 * MINUTE))  # page 2 repeats s1
    sink = KeepingSink()
    conn = connector(tmp_path, standin, engine, ("Audit.Exchange", "graph.signIns"), sink)
    await conn.cycle()
    assert sorted(sink.ids()) == ["a", "b", "c", "ex-dup", "s1", "s2"]
    cp = load_checkpoint(engine, "m365-lulea", "Audit.Exchange")
    assert cp is not None and cp.duplicates == 1 and cp.records == 4
    await conn.stop()


@sync
async def test_throttling_errors_timeouts_and_a_cut_off_page_are_retried(
    tmp_path: Path, standin: StandIn, engine: sa.Engine
) -> None:
    now = now_us()
    ids = _exchange(standin, now)
    standin.add_graph("graph.signIns", signin_record("s1", now - 30 * MINUTE))
    standin.fault("429", "/subscriptions/content", retry_after=1)
    standin.fault("500", "/activity/feed/audit/")
    standin.fault("timeout", "/activity/feed/audit/", delay=2.5)
    standin.fault("truncate", "/activity/feed/audit/")
    standin.fault("truncate", "/beta/auditLogs/signIns")
    sink = KeepingSink()
    conn = connector(tmp_path, standin, engine, ("Audit.Exchange", "graph.signIns"), sink)
    started = now_us()
    await conn.cycle()
    assert sorted(sink.ids()) == sorted([*ids, "s1"])
    counters = conn._api.counters if conn._api else None
    assert counters is not None
    assert (counters.throttled, counters.server_errors, counters.timeouts, counters.truncated) == (1, 1, 1, 2)
    assert now_us() - started >= 1_000_000  # Retry-After: 1 was waited for
    assert not standin.state.faults
    await conn.stop()


@sync
async def test_an_expired_token_is_replaced(tmp_path: Path, standin: StandIn, engine: sa.Engine) -> None:
    now = now_us()
    ids = _exchange(standin, now)
    sink = KeepingSink()
    conn = connector(tmp_path, standin, engine, ("Audit.Exchange",), sink)
    await conn.cycle()
    assert standin.state.tokens_issued == 1
    more = [audit_record("late-1", now), audit_record("late-2", now)]
    standin.add_blob("Audit.Exchange", now_us() - MINUTE, more)
    standin.fault("401", "/subscriptions/content")
    await _next_second()
    await conn.cycle()
    assert standin.state.tokens_issued == 2
    assert sorted(sink.ids()) == sorted([*ids, "late-1", "late-2"])
    await conn.stop()


@sync
async def test_a_failure_that_lasts_keeps_the_checkpoint_and_shows_the_error(
    tmp_path: Path, standin: StandIn, engine: sa.Engine
) -> None:
    now = now_us()
    _exchange(standin, now)
    for _ in range(4):
        standin.fault("500", "/subscriptions/content")
    sink = KeepingSink()
    conn = connector(tmp_path, standin, engine, ("Audit.Exchange",), sink)
    await conn.cycle()
    cp = load_checkpoint(engine, "m365-lulea", "Audit.Exchange")
    assert cp is not None and "failed 4 times" in cp.last_error and "HTTP 500" in cp.last_error
    assert cp.last_success_at is None and cp.done_until < now - 5 * 60 * MINUTE
    assert sink.records == []
    await conn.cycle()  # Microsoft is back: everything comes
    assert len(sink.records) == 9
    await conn.stop()


@sync
async def test_a_restart_resumes_without_gaps_or_duplicates(
    tmp_path: Path, standin: StandIn, engine: sa.Engine
) -> None:
    now = now_us()
    first = _exchange(standin, now, blobs=3)
    for i in range(4):
        standin.add_graph("graph.signIns", signin_record(f"s{i}", now - (40 - i) * MINUTE))
    sink = KeepingSink()
    feeds = ("Audit.Exchange", "graph.signIns")
    conn = connector(tmp_path, standin, engine, feeds, sink)
    await conn.cycle()
    await conn.stop()
    # While it was down (and inside the overlap window): more content, some of it repeated.
    later = now_us()
    standin.add_blob(
        "Audit.Exchange", later - 2 * MINUTE, [audit_record("new-1", later), audit_record("ex-2-0", later)]
    )
    standin.add_graph("graph.signIns", signin_record("s9", later - MINUTE))
    again = connector(tmp_path, standin, engine, feeds, sink)
    await _next_second()
    await again.cycle()
    ids = sink.ids()
    assert len(ids) == len(set(ids))
    assert sorted(ids) == sorted([*first, "new-1", *[f"s{i}" for i in range(4)], "s9"])
    await again.stop()


@sync
async def test_an_outage_of_hours_is_pulled_window_by_window(
    tmp_path: Path, standin: StandIn, engine: sa.Engine
) -> None:
    now = now_us()
    expected = []
    for h in range(30):  # a blob every hour for 30 hours: more than a day of windows
        rid = f"h{h}"
        expected.append(rid)
        standin.add_blob(
            "Audit.Exchange", now - (h * 60 + 5) * MINUTE, [audit_record(rid, now - h * 60 * MINUTE)]
        )
    sink = KeepingSink()
    from norrvakt.sources.m365.checkpoints import WindowPlan

    plan = WindowPlan(window=24 * 60 * MINUTE, overlap=10 * MINUTE, initial_lookback=40 * 60 * MINUTE)
    conn = connector(tmp_path, standin, engine, ("Audit.Exchange",), sink, plan=plan)
    await conn.cycle()
    assert sorted(sink.ids()) == sorted(expected)
    listings = [r for r in standin.requests if "/subscriptions/content" in r and "nextpage" not in r]
    assert len(listings) >= 2  # no listing longer than 24 h
    await conn.stop()


@sync
async def test_payload_is_the_record_as_received(tmp_path: Path, standin: StandIn, engine: sa.Engine) -> None:
    now = now_us()
    rec = audit_record("åäö-1", now - 30 * MINUTE, user="åsa.öberg@lulea.example")
    standin.add_blob("Audit.Exchange", now - 30 * MINUTE, [rec])
    sink = KeepingSink()
    conn = connector(tmp_path, standin, engine, ("Audit.Exchange",), sink)
    await conn.cycle()
    assert json.loads(sink.records[0].payload) == rec
    await conn.stop()


@sync
async def test_a_record_that_shows_up_late_or_with_a_skewed_clock_is_pulled_once(
    tmp_path: Path, standin: StandIn, engine: sa.Engine
) -> None:
    now = now_us()
    standin.add_graph("graph.signIns", signin_record("on-time", now - 20 * MINUTE))
    sink = KeepingSink()
    conn = connector(tmp_path, standin, engine, ("graph.signIns",), sink)
    await conn.cycle()
    # Graph makes a sign-in visible minutes after it happened (or its clock is behind ours):
    # it lands before our last window's end, inside the overlap of the next one.
    standin.add_graph("graph.signIns", signin_record("late", now - 4 * MINUTE))
    # …and one stamped ahead of our clock is taken once our windows reach it.
    standin.add_graph("graph.signIns", signin_record("ahead", now_us() + 1_000_000))
    await _next_second()
    await conn.cycle()
    import asyncio

    await asyncio.sleep(3.0)
    await conn.cycle()
    await conn.cycle()
    assert sorted(sink.ids()) == ["ahead", "late", "on-time"]
    await conn.stop()


@sync
async def test_records_without_an_id_and_bad_pages_are_kept_as_pipeline_errors(
    tmp_path: Path, standin: StandIn, engine: sa.Engine
) -> None:
    now = now_us()
    no_id = audit_record("x", now - 30 * MINUTE)
    del no_id["Id"]
    standin.add_blob(
        "Audit.Exchange", now - 30 * MINUTE, [audit_record("good", now - 31 * MINUTE), no_id, "text"]
    )  # type: ignore[list-item]
    sink = KeepingSink()
    conn = connector(tmp_path, standin, engine, ("Audit.Exchange",), sink)
    await conn.cycle()
    assert sink.ids() == ["good"]
    errors = [e for e in sink.events if e.ecs.get("event.kind") == "pipeline_error"]
    assert len(errors) == 2 and all(e.tenant == "lulea" and e.source == "m365-lulea" for e in errors)
    assert all("record without Id in content blob" in e.ecs["error.message"] for e in errors)
    assert b"MailItemsAccessed" in errors[0].raw and errors[1].raw == b'"text"'
    await conn.stop()


@sync
async def test_a_journal_that_refuses_keeps_the_checkpoint_and_the_records_come_again(
    tmp_path: Path, standin: StandIn, engine: sa.Engine
) -> None:
    now = now_us()
    ids = _exchange(standin, now, blobs=2)
    sink = KeepingSink()
    sink.refuse = True
    conn = connector(tmp_path, standin, engine, ("Audit.Exchange",), sink)
    await conn.cycle()
    cp = load_checkpoint(engine, "m365-lulea", "Audit.Exchange")
    assert cp is not None and "records not durable: OSError: journal refused" in cp.last_error
    assert cp.done_until < now - 50 * MINUTE and cp.records == 0  # before the first blob
    sink.refuse = False
    await conn.cycle()
    assert sorted(sink.ids()) == sorted(ids)
    await conn.stop()


@sync
async def test_subscriptions_are_started_once_per_run(
    tmp_path: Path, standin: StandIn, engine: sa.Engine
) -> None:
    sink = KeepingSink()
    conn = connector(tmp_path, standin, engine, ("Audit.Exchange", "Audit.SharePoint"), sink)
    for _ in range(3):
        await conn.cycle()
    starts = [r for r in standin.requests if "/subscriptions/start" in r]
    assert len(starts) == 2 and standin.state.subscriptions == {"Audit.Exchange", "Audit.SharePoint"}
    await conn.stop()


@sync
async def test_neither_the_secret_nor_a_token_is_logged(
    tmp_path: Path, standin: StandIn, engine: sa.Engine, caplog: pytest.LogCaptureFixture
) -> None:
    import logging

    from tests.m365.standin import SECRET

    caplog.set_level(logging.DEBUG)
    now = now_us()
    _exchange(standin, now)
    standin.fault("401", "/subscriptions/content")
    standin.fault("500", "/activity/feed/audit/")
    sink = KeepingSink()
    conn = connector(tmp_path, standin, engine, ("Audit.Exchange",), sink)
    await conn.cycle()
    assert len(sink.records) == 9
    text = caplog.text
    assert SECRET not in text and "standin-token-" not in text
    await conn.stop()


@sync
async def test_a_caught_up_feed_lists_only_the_overlap_once_per_poll(
    tmp_path: Path, standin: StandIn, engine: sa.Engine
) -> None:
    now = now_us()
    _exchange(standin, now)
    standin.add_graph("graph.signIns", signin_record("s1", now - 30 * MINUTE))
    sink = KeepingSink()
    conn = connector(tmp_path, standin, engine, ("Audit.Exchange", "graph.signIns"), sink)
    await conn.cycle()
    before = len(standin.requests)
    await _next_second()
    await conn.cycle()
    again = standin.requests[before:]
    # one listing of the overlap window per feed (sign-ins: one per event type), no blob again
    assert sorted(r.split("?")[0].rsplit("/", 1)[-1] for r in again) == ["content", "signIns", "signIns"]
    await conn.stop()


@sync
async def test_the_checkpoint_moves_only_once_the_journal_says_durable(
    tmp_path: Path, standin: StandIn, engine: sa.Engine
) -> None:
    import asyncio

    now = now_us()
    standin.add_blob("Audit.Exchange", now - 20 * MINUTE, [audit_record("d1", now - 21 * MINUTE)])

    class SlowSink(KeepingSink):
        """Durable only when the test says so (a journal waiting for its fsync)."""

        def __init__(self) -> None:
            super().__init__()
            self.waiting: list[asyncio.Future[None]] = []

        def submit_nowait(self, records):  # type: ignore[no-untyped-def]
            self.records.extend(records)
            fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self.waiting.append(fut)
            return fut

    sink = SlowSink()
    conn = connector(tmp_path, standin, engine, ("Audit.Exchange",), sink)
    round_ = asyncio.create_task(conn.cycle())
    for _ in range(200):
        if sink.waiting:
            break
        await asyncio.sleep(0.05)
    assert sink.ids() == ["d1"]
    await asyncio.sleep(0.3)
    cp = load_checkpoint(engine, "m365-lulea", "Audit.Exchange")
    moved_before = cp.done_until if cp else 0
    assert cp is None or cp.done_until < now - 20 * MINUTE  # not past the record while not durable
    assert not round_.done()
    sink.waiting[0].set_result(None)
    await round_
    cp = load_checkpoint(engine, "m365-lulea", "Audit.Exchange")
    assert cp is not None and cp.done_until > max(moved_before, now - MINUTE) and cp.records == 1
    await conn.stop()


@sync
async def test_graph_windows_end_the_delay_before_now(
    tmp_path: Path, standin: StandIn, engine: sa.Engine
) -> None:
    now = now_us()
    standin.add_graph("graph.signIns", signin_record("settled", now - 10 * MINUTE))
    standin.add_graph("graph.signIns", signin_record("fresh", now - MINUTE))
    standin.add_blob("Audit.Exchange", now - MINUTE, [audit_record("blob-now", now - MINUTE)])
    sink = KeepingSink()
    conn = connector(tmp_path, standin, engine, ("graph.signIns", "Audit.Exchange"), sink, graph_delay_s=300)
    await conn.cycle()
    assert sorted(sink.ids()) == ["blob-now", "settled"]  # the Management API has no delay
    cp = load_checkpoint(engine, "m365-lulea", "graph.signIns")
    assert cp is not None and now - 6 * MINUTE < cp.done_until < now - 4 * MINUTE
    await conn.stop()


@sync
async def test_a_subscription_stopped_from_outside_is_started_again(
    tmp_path: Path, standin: StandIn, engine: sa.Engine
) -> None:
    now = now_us()
    sink = KeepingSink()
    conn = connector(tmp_path, standin, engine, ("Audit.Exchange",), sink)
    await conn.cycle()
    standin.state.subscriptions.clear()  # an admin stopped it
    standin.add_blob("Audit.Exchange", now_us() - MINUTE, [audit_record("after-stop", now)])
    await _next_second()
    await conn.cycle()
    assert sink.ids() == ["after-stop"]
    cp = load_checkpoint(engine, "m365-lulea", "Audit.Exchange")
    assert cp is not None and cp.last_error == ""
    await conn.stop()


@sync
async def test_a_new_credential_is_taken_at_the_next_pull(
    tmp_path: Path, standin: StandIn, engine: sa.Engine
) -> None:
    from norrvakt.sources.m365.credentials import Credential, CredentialBox
    from norrvakt.state.m365 import save_credential
    from tests.m365.standin import SECRET

    now = now_us()
    standin.add_blob("Audit.Exchange", now - 20 * MINUTE, [audit_record("r1", now - 21 * MINUTE)])
    sink = KeepingSink()
    conn = connector(tmp_path, standin, engine, ("Audit.Exchange",), sink)
    box = CredentialBox.open(tmp_path)
    save_credential(
        engine,
        "m365-lulea",
        "lulea",
        "secret",
        box.seal("m365-lulea", "lulea", Credential.from_secret("expired-one")),
        by="t",
    )
    await conn.cycle()
    cp = load_checkpoint(engine, "m365-lulea", "Audit.Exchange")
    assert cp is not None and "invalid_client" in cp.last_error and "expired-one" not in cp.last_error
    save_credential(
        engine,
        "m365-lulea",
        "lulea",
        "secret",
        box.seal("m365-lulea", "lulea", Credential.from_secret(SECRET)),
        by="t",
    )
    await conn.cycle()
    assert sink.ids() == ["r1"]
    await conn.stop()
