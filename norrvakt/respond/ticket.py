"""Open a ticket at the municipality's service desk: an e-mail with the case summary (through
an existing ``[[alerts.channels]]`` e-mail channel's SMTP server, STARTTLS as it requires), or
a signed JSON webhook (a service desk's inbound API: TOPdesk, Jira Service Management, …).

    ticket = TicketResponderConfig(email=channel_settings, recipients=("servicedesk@lulea.se",)).build()
    await ticket.run(ActionRequest(9, "lulea", "ticket.email", "servicedesk@lulea.se",
                                   params={"case": case_detail, "url": "https://norrvakt/cases/12"}))

The summary is the case (id, title, severity, status, assignee), its alerts (rule, level,
count, entities) and the analyst's note. A ticket cannot be taken back from Norrvakt.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from norrvakt.alerts.notify.base import DeliveryError
from norrvakt.alerts.notify.message import Notice, subject
from norrvakt.alerts.notify.smtp import EmailChannel
from norrvakt.config import ChannelSettings
from norrvakt.event import now_us
from norrvakt.respond.base import ActionRequest, Outcome
from norrvakt.respond.signed import post_signed


def summary(case: dict[str, Any], note: str, url: str) -> dict[str, Any]:
    """What the ticket carries about a case (the same for e-mail and webhook)."""
    return {
        "case": {k: case.get(k) for k in ("id", "tenant", "title", "severity", "status", "assignee")},
        "alerts": [
            {
                "id": a.get("id"),
                "rule": (a.get("rule") or {}).get("title", ""),
                "level": a.get("level"),
                "count": a.get("count"),
                "entities": a.get("entities", {}),
            }
            for a in case.get("alerts", [])[:50]
        ],
        "note": note,
        "url": url,
    }


@dataclass(frozen=True)
class TicketResponderConfig:
    """The service desk of one tenant: e-mail addresses (with the channel that sends) and/or a webhook."""

    email: ChannelSettings | None = None
    recipients: tuple[str, ...] = ()
    webhook_url: str = ""
    secret: str = field(default="", repr=False)
    timeout_s: float = 15.0

    def build(self) -> TicketResponder:
        return TicketResponder(self)


class TicketResponder:
    actions: tuple[str, ...] = ("ticket.email", "ticket.webhook")

    def __init__(self, config: TicketResponderConfig) -> None:
        self.config = config

    async def run(self, req: ActionRequest) -> Outcome:
        case = req.params.get("case") or {}
        facts = summary(case, str(req.params.get("note", "")), str(req.params.get("url", "")))
        if req.action == "ticket.email":
            return await self._email(req, case, facts)
        if req.action == "ticket.webhook":
            if not self.config.webhook_url:
                return Outcome(False, f"no ticket webhook is set for {req.tenant} (response.ticket_webhooks)")
            if req.dry_run:
                return Outcome(
                    True, f"dry run: would POST case {case.get('id')} to {self.config.webhook_url}"
                )
            payload = {"source": "norrvakt", "kind": "response.ticket", "tenant": req.tenant, **facts}
            return await post_signed(
                self.config.webhook_url, self.config.secret, payload, self.config.timeout_s
            )
        return Outcome(False, f"{req.action}: not a ticket action")

    async def _email(self, req: ActionRequest, case: dict[str, Any], facts: dict[str, Any]) -> Outcome:
        if self.config.email is None or not self.config.recipients:
            return Outcome(
                False,
                f"no service desk e-mail for {req.tenant} (response.ticket_email, response.ticket_channel)",
            )
        notice = Notice(
            kind="ticket",
            tenant=req.tenant,
            level=str(case.get("severity") or "medium"),
            title=f"Case #{case.get('id')}: {case.get('title', '')}"
            + (f" — {facts['note']}" if facts["note"] else ""),
            at=now_us(),
            alert=(case.get("alerts") or [None])[0],
            case=facts["case"],
            url=facts["url"],
        )
        to = ", ".join(self.config.recipients)
        if req.dry_run:
            return Outcome(True, f"dry run: would e-mail {to}: {subject(notice)}")
        channel = EmailChannel(
            dataclasses.replace(self.config.email, recipients=list(self.config.recipients))
        )
        try:
            said = await channel.send(notice)
        except DeliveryError as exc:
            return Outcome(False, str(exc), retry=exc.retry)
        return Outcome(True, f"e-mail to {to} {said}: {subject(notice)}")

    async def undo(self, req: ActionRequest) -> Outcome:
        return Outcome(False, "a ticket cannot be taken back from Norrvakt; close it at the service desk")
