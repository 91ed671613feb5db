"""Open a ticket: an e-mail with the case summary to the municipality's service desk through
a real SMTP server (aiosmtpd, STARTTLS required), and a signed webhook; both need no approval
by default, neither can be undone; a desk that refuses leaves the action failed."""

from __future__ import annotations

import asyncio
import json
from email import message_from_bytes
from pathlib import Path

import pytest

from norrvakt.alerts.notify.webhook import verify
from norrvakt.respond.base import Conflict
from tests.alerts.receivers import SmtpServer, WebhookReceiver
from tests.respond.conftest import ANA, make_world


def test_ticket_email_and_webhook_carry_the_case_summary(tmp_path: Path) -> None:
    with SmtpServer(tmp_path) as smtp, WebhookReceiver() as hook:
        channel = {
            "name": "servicedesk-mail",
            "type": "email",
            "url": f"smtp://127.0.0.1:{smtp.port}",
            "sender": "norrvakt@soc.example",
            "ca_file": str(smtp.cert),
            "recipients": ["soc@soc.example"],  # the channel's own; a ticket goes to the desk
        }
        w = make_world(
            tmp_path,
            {
                "alerts.channels": [channel],
                "response.ticket_channel": "servicedesk-mail",
                "response.ticket_email": {"lulea": ["servicedesk@lulea.example"]},
                "response.ticket_webhooks": {"lulea": hook.url},
                "response.webhook_secret": "desk-key",
            },
        )
        scope = w.scope(ANA)
        mail = asyncio.run(
            w.svc.request(
                ANA,
                scope,
                action="ticket.email",
                target="servicedesk",
                case_id=w.case_id,
                reason="reset kim's laptop",
            )
        )
        assert mail["status"] == "done", mail["result"]
        (got,) = smtp.messages
        assert got.recipients == ["servicedesk@lulea.example"] and got.tls
        msg = message_from_bytes(got.content)
        assert f"Case #{w.case_id}: Konto kapat: kim.target" in msg["Subject"]
        payload = msg.get_payload(decode=True)
        assert isinstance(payload, bytes) and b"https://norrvakt.test/cases/" in payload
        sent = asyncio.run(
            w.svc.request(ANA, scope, action="ticket.webhook", target="servicedesk", case_id=w.case_id)
        )
        assert sent["status"] == "done", sent["result"]
        (posted,) = hook.received
        assert verify(
            "desk-key",
            posted.headers["x-norrvakt-timestamp"],
            posted.body,
            posted.headers["x-norrvakt-signature"],
        )
        body = json.loads(posted.body)
        assert (
            body["kind"] == "response.ticket"
            and body["case"]["id"] == w.case_id
            and body["tenant"] == "lulea"
        )
        with pytest.raises(Conflict, match="cannot be undone"):
            asyncio.run(w.svc.undo(ANA, scope, mail["id"]))
        w.engine.dispose()


def test_a_refusing_desk_leaves_the_ticket_failed(tmp_path: Path) -> None:
    with SmtpServer(tmp_path, offer_tls=False) as smtp:  # no STARTTLS: Norrvakt does not send in plain text
        channel = {
            "name": "desk",
            "type": "email",
            "url": f"smtp://127.0.0.1:{smtp.port}",
            "recipients": ["s@s.se"],
        }
        w = make_world(
            tmp_path,
            {
                "alerts.channels": [channel],
                "response.ticket_channel": "desk",
                "response.ticket_email": {"lulea": ["d@l.se"]},
            },
        )
        row = asyncio.run(
            w.svc.request(ANA, w.scope(ANA), action="ticket.email", target="desk", case_id=w.case_id)
        )
        assert row["status"] == "failed" and "STARTTLS" in row["result"] and smtp.messages == []
        w.engine.dispose()
