"""Notification channels against real receivers: a local HTTP server (webhook, HMAC), aiosmtpd
with STARTTLS (e-mail) and UDP/TCP listeners (syslog/CEF); rate limits, retries, routing."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from norrvakt.alerts.dispatcher import Dispatcher
from norrvakt.alerts.model import Alert
from norrvakt.alerts.notify.base import DeliveryError
from norrvakt.alerts.notify.builtin import build_channel
from norrvakt.alerts.notify.message import Notice
from norrvakt.alerts.notify.ratelimit import TokenBucket
from norrvakt.alerts.notify.webhook import SIGNATURE_HEADER, TIMESTAMP_HEADER, verify
from norrvakt.alerts.routing import Router
from norrvakt.config import ChannelSettings, RouteSettings
from norrvakt.state import notifications as delivery_log
from norrvakt.state.db import open_state
from tests.alerts.conftest import T0
from tests.alerts.receivers import SmtpServer, SyslogReceiver, WebhookReceiver, wait_for

SECRET = "s3cret-for-tests"


@pytest.fixture
def sqlite_engine(tmp_path: Path) -> Iterator[sa.Engine]:
    e = open_state(f"sqlite:///{tmp_path / 'state.db'}")
    yield e
    e.dispose()


def _alert(i: int = 1, tenant: str = "lulea", level: str = "critical") -> Alert:
    return Alert(
        id=i, tenant=tenant, rule_id="win-password-spray", rule_title="Password spraying", level=level,
        tags=["attack.t1110.003"], source="sigma", dedupe_key="k", key_values={}, status="new", case_id=7,
        entities={"source.ip": "185.220.101.7", "host.name": "lulea-dc01", "user.name": "anna|x=y"},
        count=25, first_seen=T0, last_seen=T0 + 50_000_000, first_seq=1, last_seq=25, evidence_count=25,
        created_at=T0, updated_at=T0,
    )  # fmt: skip


def _notice(i: int = 1) -> Notice:
    a = _alert(i)
    return Notice(
        kind="alert.new", tenant=a.tenant, level=a.level, title=a.rule_title, at=T0, alert=a.as_dict()
    )


def test_webhook_is_signed_with_hmac_sha256() -> None:
    with WebhookReceiver() as rx:
        ch = build_channel(ChannelSettings(name="soc", type="webhook", url=rx.url, secret=SECRET))
        assert asyncio.run(ch.send(_notice())) == "HTTP 200"
    (got,) = rx.received
    assert verify(
        SECRET, got.headers[TIMESTAMP_HEADER.lower()], got.body, got.headers[SIGNATURE_HEADER.lower()]
    )
    assert not verify(
        "wrong", got.headers[TIMESTAMP_HEADER.lower()], got.body, got.headers[SIGNATURE_HEADER.lower()]
    )
    doc = json.loads(got.body)
    assert doc["kind"] == "alert.new" and doc["alert"]["count"] == 25 and doc["tenant"] == "lulea"


def test_webhook_errors_say_which_channel_and_whether_to_retry() -> None:
    with WebhookReceiver(fail_first=1) as rx:
        ch = build_channel(ChannelSettings(name="soc", type="webhook", url=rx.url))
        with pytest.raises(DeliveryError, match=r"webhook soc .* answered 503") as info:
            asyncio.run(ch.send(_notice()))
        assert info.value.retry


def test_email_goes_over_starttls_to_a_real_smtp_server(tmp_path: Path) -> None:
    with SmtpServer(tmp_path) as smtp:
        ch = build_channel(
            ChannelSettings(
                name="lulea-itsec",
                type="email",
                url=f"smtp://127.0.0.1:{smtp.port}",
                recipients=["itsec@lulea.se"],
                sender="norrvakt@soc.example",
                ca_file=str(smtp.cert),
            )
        )
        asyncio.run(ch.send(_notice()))
    (mail,) = smtp.messages
    assert mail.tls and mail.recipients == ["itsec@lulea.se"]
    text = mail.content.decode()
    assert "Subject: [Norrvakt] CRITICAL lulea: Password spraying (25 events)" in text
    assert "source.ip: 185.220.101.7" in text


def test_email_is_not_sent_in_plain_text_when_starttls_is_missing(tmp_path: Path) -> None:
    with SmtpServer(tmp_path, offer_tls=False) as smtp:
        ch = build_channel(
            ChannelSettings(
                name="m", type="email", url=f"smtp://127.0.0.1:{smtp.port}", recipients=["a@b.se"]
            )
        )
        with pytest.raises(DeliveryError, match="offers no STARTTLS; not sending in plain text"):
            asyncio.run(ch.send(_notice()))
    assert smtp.messages == []


def test_email_with_an_untrusted_certificate_fails(tmp_path: Path) -> None:
    with SmtpServer(tmp_path) as smtp:
        ch = build_channel(
            ChannelSettings(
                name="m", type="email", url=f"smtp://127.0.0.1:{smtp.port}", recipients=["a@b.se"]
            )
        )
        with pytest.raises(DeliveryError, match="CERTIFICATE_VERIFY_FAILED"):
            asyncio.run(ch.send(_notice()))


@pytest.mark.parametrize(("protocol", "fmt"), [("udp", "cef"), ("tcp", "json")])
def test_syslog_forwarding(protocol: str, fmt: str) -> None:
    with SyslogReceiver(protocol) as rx:
        ch = build_channel(ChannelSettings(name="upstream", type="syslog", url=rx.url, format=fmt))
        asyncio.run(ch.send(_notice()))
        wait_for(lambda: rx.messages, what="syslog message")
    (line,) = rx.messages
    text = line.decode()
    assert text.startswith("<162>1 2026-01-01T00:00:00.000000Z ")  # local4.crit
    if fmt == "cef":
        body = text.split(" - alert.new - ", 1)[1]
        assert body.startswith("CEF:0|Norrvakt|Norrvakt|")
        assert "|win-password-spray|Password spraying|10|" in body
        assert "src=185.220.101.7" in body and "suser=anna|x\\=y" in body and "cnt=25" in body
    else:
        assert json.loads(text.split(" - alert.new - ", 1)[1])["alert"]["id"] == 1


def test_router_applies_every_matching_route() -> None:
    router = Router(
        [
            RouteSettings(min_level="high", channels=["soc-oncall"]),
            RouteSettings(tenants=["lulea"], min_level="critical", channels=["lulea-itsec", "soc-oncall"]),
        ]
    )
    assert router.channels_for("lulea", "critical") == ["soc-oncall", "lulea-itsec"]
    assert router.channels_for("boden", "critical") == ["soc-oncall"]
    assert router.channels_for("lulea", "medium") == []


def test_dispatcher_retries_with_backoff_and_logs(sqlite_engine: sa.Engine) -> None:
    async def go(rx: WebhookReceiver) -> None:
        cs = ChannelSettings(name="soc", type="webhook", url=rx.url, retries=3, retry_backoff_s=0.05)
        d = Dispatcher(
            sqlite_engine, {"soc": (build_channel(cs), cs)}, Router([RouteSettings(channels=["soc"])])
        )
        await d.start()
        d.alerts_created([_alert()])
        await asyncio.sleep(0.05)
        await d.wait_idle()
        await d.stop()

    with WebhookReceiver(fail_first=2) as rx:
        asyncio.run(go(rx))
    assert rx.attempts == 3 and len(rx.received) == 1
    (row,) = delivery_log.recent(sqlite_engine, ["lulea"])
    assert (row["status"], row["attempts"], row["channel"]) == ("sent", 3, "soc")


def test_a_flood_becomes_one_message_and_a_digest(sqlite_engine: sa.Engine) -> None:
    async def go(rx: WebhookReceiver) -> None:
        cs = ChannelSettings(name="soc", type="webhook", url=rx.url)
        d = Dispatcher(
            sqlite_engine, {"soc": (build_channel(cs), cs)}, Router([RouteSettings(channels=["soc"])])
        )
        # One at once, then one per 2 s: time enough for the other 49 to be held back (logged to
        # SQLite one by one) even on a loaded machine, where 0.2 s let a second one through.
        d.workers["soc"].bucket = TokenBucket(30, burst=1)
        await d.start()
        d.alerts_created([_alert(i) for i in range(1, 51)])
        await asyncio.sleep(0.05)
        await d.wait_idle()
        await d.stop()

    with WebhookReceiver() as rx:
        asyncio.run(go(rx))
    docs = [json.loads(r.body) for r in rx.received]
    assert [d["kind"] for d in docs] == ["alert.new", "digest"]
    assert docs[1]["suppressed"] == 49 and len(docs[1]["held_back"]) == 49
    statuses = [r["status"] for r in delivery_log.recent(sqlite_engine, ["lulea"], limit=1000)]
    assert statuses.count("rate_limited") == 49 and statuses.count("sent") == 2


def test_waiting_notices_are_sent_after_a_restart(sqlite_engine: sa.Engine) -> None:
    from norrvakt.state import outbox

    async def first(url: str) -> None:  # the receiver is down: the notice is still being retried
        cs = ChannelSettings(name="soc", type="webhook", url=url, retries=20, retry_backoff_s=5)
        d = Dispatcher(
            sqlite_engine, {"soc": (build_channel(cs), cs)}, Router([RouteSettings(channels=["soc"])])
        )
        await d.start()
        d.alerts_created([_alert(7)])
        await asyncio.sleep(0.3)
        await d.stop()  # the server stops (or dies) with the notice in flight

    async def second(url: str, channels: list[str]) -> None:
        cs = ChannelSettings(name="soc", type="webhook", url=url)
        workers = {"soc": (build_channel(cs), cs)} if "soc" in channels else {}
        d = Dispatcher(sqlite_engine, workers, Router([RouteSettings(channels=channels)]))
        await d.start()
        await asyncio.sleep(0.05)
        await d.wait_idle()
        await d.stop()

    with WebhookReceiver(fail_first=10**9) as down:
        asyncio.run(first(down.url))
    assert [ch for _, ch, _ in outbox.pending(sqlite_engine)] == ["soc"]
    with WebhookReceiver() as rx:
        asyncio.run(second(rx.url, ["soc"]))
    assert [json.loads(r.body)["alert"]["id"] for r in rx.received] == [7]
    assert outbox.pending(sqlite_engine) == []

    # a notice for a channel that was removed from the configuration is logged as failed, not kept
    with WebhookReceiver(fail_first=10**9) as down:
        asyncio.run(first(down.url))
    asyncio.run(second("http://127.0.0.1:9/unused", []))
    assert outbox.pending(sqlite_engine) == []
    (last, *_) = delivery_log.recent(sqlite_engine, ["lulea"])
    assert last["status"] == "failed" and "no longer configured" in last["detail"]


def test_a_starting_node_takes_back_its_own_notices_not_a_live_nodes(sqlite_engine: sa.Engine) -> None:
    """Several processes notify from one state database (web nodes, detection workers): at
    start each resends what it queued itself, what nobody owns (rows from before owners were
    kept), and what another left for longer than orphaned_after_s — not what a live one is
    sending right now (that would notify twice)."""
    from norrvakt.state import outbox

    now = 1_000_000_000_000_000
    minute = 60_000_000
    outbox.put(sqlite_engine, [("soc", {"n": "mine"})], now - minute, owner="det-a")
    outbox.put(sqlite_engine, [("soc", {"n": "live other"})], now - minute, owner="det-b")
    outbox.put(sqlite_engine, [("soc", {"n": "left by a dead one"})], now - 10 * minute, owner="det-c")
    outbox.put(sqlite_engine, [("soc", {"n": "from before owners"})], now - minute)
    taken = outbox.pending(sqlite_engine, "det-a", orphaned_before=now - 5 * minute)
    assert [doc["n"] for _, _, doc in taken] == ["mine", "left by a dead one", "from before owners"]
    assert len(outbox.pending(sqlite_engine)) == 4  # without an owner: every row (the admin's view)
