"""Reports sent on schedule through the e-mail channel to a real SMTP server (aiosmtpd,
STARTTLS): each municipality's report to its own recipients only, the region's to the
committee, "no incidents" sent too, every sent report's digest journaled, each period once;
a refused recipient leaves nothing half done."""

from __future__ import annotations

import datetime as dt
import email
import hashlib
import json
from dataclasses import replace
from email.message import EmailMessage
from email.policy import default
from pathlib import Path
from typing import Any, ClassVar

import pytest
from aiosmtpd.smtp import SMTP, Envelope, Session

from norrvakt.alerts.notify.smtp import EmailChannel
from norrvakt.config import ChannelSettings, ConfigError, load_settings
from norrvakt.reports.monthly import ReportSources
from norrvakt.reports.schedule import ReportScheduler
from norrvakt.reports.wiring import sources_for
from norrvakt.state import report_runs
from tests.alerts.receivers import SmtpServer
from tests.reports.conftest import TENANTS, ZONE, World
from tests.reports.test_render import EVENTS_RGB, pdf_text_and_page, pixels


class RefusingSmtp(SmtpServer):
    """Refuses the addresses in ``refuse`` at RCPT, as a mail server does an unknown user."""

    refuse: ClassVar[set[str]] = set()

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, rcpt_options: list[str]
    ) -> str:
        if address in self.refuse:
            return "550 5.1.1 no such user here"
        envelope.rcpt_tos.append(address)
        return "250 OK"


def _channel(smtp: SmtpServer) -> EmailChannel:
    return EmailChannel(
        ChannelSettings(
            name="reports", type="email", url=f"smtp://127.0.0.1:{smtp.port}",
            recipients=["soc@norrvakt.example"], sender="norrvakt@soc.example", ca_file=str(smtp.cert),
        )
    )  # fmt: skip


def _sources(world: World, when: dt.datetime, **reports: Any) -> ReportSources:
    base = sources_for(world.rt)
    settings = replace(base.settings, reports=replace(base.settings.reports, **reports))
    now = int(when.timestamp()) * 1_000_000
    return replace(base, settings=settings, clock=lambda: now)


def _journaled(world: World) -> list[dict[str, str]]:
    world.loop.run(world.rt.indexer.wait_caught_up(timeout=30))
    rows = world.rt.store.query(
        "SELECT fields, event_outcome FROM events WHERE tenant = '_norrvakt' "
        "AND event_action = 'report-sent' ORDER BY seq"
    )
    return [{**dict(f), "outcome": str(o)} for f, o in rows]


def _attachment(msg: EmailMessage, name: str = "norrvakt-region-2026-11.pdf") -> bytes:
    (part,) = [p for p in msg.iter_attachments() if p.get_content_type() == "application/pdf"]
    assert part.get_filename() == name
    pdf = part.get_content()
    assert isinstance(pdf, bytes) and pdf.startswith(b"%PDF")
    return pdf


def _look_at_the_pdfs(lulea: bytes, region: bytes, tmp: Path) -> None:
    """The PDFs as mailed, rendered by poppler: their text, and the first page looked at — the
    events chart drawn in its colour, the navy table headers, portrait (region: landscape)."""
    from PIL import Image

    text, page = pdf_text_and_page(lulea, tmp, "lulea")
    expected = (
        "Månadsrapport säkerhetsloggar — Luleå", "2026-11", "Händelser per källa", "windows.security",
        "lulea-door01", "Shadow copies deleted", "för sent", "i tid", "Omgångar signerade",
        "Fullständig verifiering", "utan anmärkning", "Andel falsklarm",
    )  # fmt: skip
    for words in expected:
        assert words in text, words
    assert "Inga incidenter" not in text
    width, height = Image.open(page).size
    assert height > width
    assert pixels(page, EVENTS_RGB) > 300, "the events-per-day chart is not drawn on the first page"
    assert pixels(page, (0x10, 0x2A, 0x43), 8) > 100, "the table header is not rendered"
    text, page = pdf_text_and_page(region, tmp, "region")
    assert "Regional lägesbild säkerhetsloggar" in text and "Kommunerna sida vid sida" in text
    assert (
        all(name in text for name in TENANTS.values()) and "Ingen indikator sågs i mer än en kommun" in text
    )
    width, height = Image.open(page).size
    assert width > height and pixels(page, EVENTS_RGB) > 200


def _parse(content: bytes) -> EmailMessage:
    msg = email.message_from_bytes(content, policy=default)
    assert isinstance(msg, EmailMessage)
    return msg


def test_each_report_goes_to_its_own_recipients_once_with_its_digest_journaled(
    world: World, tmp_path: Path
) -> None:
    src = _sources(world, dt.datetime(2026, 12, 1, 7, tzinfo=ZONE))
    with SmtpServer(tmp_path) as smtp:
        scheduler = ReportScheduler(src, world.rt.pipeline, _channel(smtp), "node-a")
        outcomes = world.loop.run(scheduler.run_once())
        again = world.loop.run(scheduler.run_once())  # the same period is never sent twice
    assert [(o.tenant, o.status) for o in outcomes] == [
        ("lulea", "sent"),
        ("boden", "sent"),
        ("_region", "sent"),
    ]
    assert {o.status for o in again} == {"skipped"}
    mails = {m.recipients[0]: m for m in smtp.messages}
    assert len(smtp.messages) == 3 and all(m.tls for m in smtp.messages)
    assert mails["ciso@lulea.se"].recipients == ["ciso@lulea.se", "it@lulea.se"]
    assert mails["sakerhet@boden.se"].recipients == ["sakerhet@boden.se"]  # Boden never gets Luleå's report
    assert mails["e-namnden@norrbotten.se"].recipients == ["e-namnden@norrbotten.se"]

    lulea, boden = _parse(mails["ciso@lulea.se"].content), _parse(mails["sakerhet@boden.se"].content)
    assert lulea["Subject"] == "[Norrvakt] Månadsrapport säkerhetsloggar Luleå 2026-11 — 4 larm"
    assert boden["Subject"] == "[Norrvakt] Månadsrapport säkerhetsloggar Boden 2026-11 — Inga incidenter"
    pdf = _attachment(lulea, "norrvakt-lulea-2026-11.pdf")
    digest = hashlib.sha256(pdf).hexdigest()
    assert str(lulea["X-Norrvakt-Report-SHA256"]).strip() == digest == outcomes[0].pdf_sha256
    _look_at_the_pdfs(pdf, _attachment(_parse(mails["e-namnden@norrbotten.se"].content)), tmp_path)
    boden_text = mails["sakerhet@boden.se"].content.decode("utf-8", "replace")
    assert "lulea" not in boden_text.lower() and "Luleå" not in boden.get_body(("plain",)).get_content()

    runs = {r["tenant"]: r for r in report_runs.listing(world.rt.state, ["lulea", "boden", "_region"])}
    assert runs["lulea"]["status"] == "sent" and runs["lulea"]["pdf_sha256"] == digest
    assert runs["lulea"]["recipients"] == "ciso@lulea.se,it@lulea.se"
    sent = {j["tenant"]: j for j in _journaled(world) if j["outcome"] == "success"}
    assert sent["lulea"]["pdf_sha256"] == digest and sent["lulea"]["period"] == "2026-11"
    assert sent["boden"]["recipients"] == "sakerhet@boden.se" and set(sent) == {"lulea", "boden", "_region"}


def test_a_refused_recipient_sends_nothing_and_is_tried_again(world: World, tmp_path: Path) -> None:
    monday = dt.datetime(2026, 11, 30, 6, 30, tzinfo=ZONE)  # weekly: 2026-W48 is due
    recipients = {"pitea": "ciso@pitea.se, okand@pitea.se"}
    weekly: dict[str, Any] = {"schedule": "weekly", "recipients": recipients, "region_recipients": []}
    src = _sources(world, monday, **weekly)
    with RefusingSmtp(tmp_path) as smtp:
        smtp.refuse = {"okand@pitea.se"}
        (failed,) = world.loop.run(
            ReportScheduler(src, world.rt.pipeline, _channel(smtp), "node-a").run_once()
        )
        assert (
            failed.status == "failed"
            and "okand@pitea.se" in failed.detail
            and "nothing was sent" in failed.detail
        )
        assert smtp.messages == []  # not even to the address that exists
        run = report_runs.get(world.rt.state, "pitea", "weekly", "2026-W48")
        assert run is not None and run["status"] == "failed" and "550" in run["error"]
        soon = _sources(world, monday + dt.timedelta(minutes=5), **weekly)
        (waiting,) = world.loop.run(
            ReportScheduler(soon, world.rt.pipeline, _channel(smtp), "node-b").run_once()
        )
        assert waiting.status == "skipped"  # retried after reports.retry_minutes, not at once
        smtp.refuse = set()  # the mailbox was made
        later = _sources(world, monday + dt.timedelta(minutes=20), **weekly)
        (sent,) = world.loop.run(
            ReportScheduler(later, world.rt.pipeline, _channel(smtp), "node-b").run_once()
        )
    assert sent.status == "sent" and [m.recipients for m in smtp.messages] == [
        ["ciso@pitea.se", "okand@pitea.se"]
    ]
    run = report_runs.get(world.rt.state, "pitea", "weekly", "2026-W48")
    assert run is not None and run["attempts"] == 2 and run["status"] == "sent"
    mine = [j for j in _journaled(world) if j["tenant"] == "pitea"]
    assert [j["outcome"] for j in mine] == ["failure", "success"] and "550" in mine[0]["error"]


def test_nothing_is_due_before_the_send_hour() -> None:
    from norrvakt.reports.periods import due_us, last_complete

    now = int(dt.datetime(2026, 12, 1, 5, 59, tzinfo=ZONE).timestamp()) * 1_000_000
    period = last_complete("monthly", "Europe/Stockholm", now)
    assert period.label == "2026-11" and now < due_us(period, 6) and now + 60_000_000 >= due_us(period, 6)


def test_bad_schedules_and_unknown_recipients_are_refused_at_start() -> None:
    with pytest.raises(ConfigError) as err:
        load_settings(
            overrides={
                "reports.schedule": "daily",
                "reports.send_hour": 25,
                "reports.channel": "nope",
                "reports.recipients": {"stockholm": "a@b.se", "lulea": "ciso@lulea.se, not-an-address"},
                "reports.language": "de",
            }
        )
    text = str(err.value)
    for expected in (
        "reports.schedule: 'daily' — monthly or weekly",
        "reports.send_hour: 25 — must be 0..23",
        "reports.channel: 'nope' — no channel of that name",
        "reports.recipients: 'stockholm' — not a configured tenant",
        "reports.recipients.lulea: 'not-an-address' — not an e-mail address",
        "reports.language: 'de' — sv or en",
    ):
        assert expected in text, expected
    hook = {"name": "hook", "type": "webhook", "url": "https://soc.example/hook"}
    with pytest.raises(ConfigError, match="is a webhook channel; reports need email"):
        load_settings(overrides={"alerts": {"channels": [hook]}, "reports.channel": "hook"})
    assert json.dumps(load_settings().reports.mtta_target_minutes)  # the defaults load
