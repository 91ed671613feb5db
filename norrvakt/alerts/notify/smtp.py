"""E-mail over SMTP, STARTTLS required by default: a server that does not offer it gets no
mail rather than mail in plain text. smtplib runs in a worker thread."""

from __future__ import annotations

import asyncio
import smtplib
import ssl
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from urllib.parse import urlsplit

from norrvakt.alerts.notify.base import DeliveryError, register_channel, secret_from_env
from norrvakt.alerts.notify.message import Notice, subject, text
from norrvakt.config import ChannelSettings


@register_channel("email")
class EmailChannel:
    def __init__(self, settings: ChannelSettings) -> None:
        url = urlsplit(settings.url)
        self.name = settings.name
        self.host = url.hostname or "localhost"
        self.port = url.port or 587
        self.starttls = settings.starttls
        self.ca_file = settings.ca_file or None
        self.username = settings.username
        self.password = settings.password or secret_from_env(settings, "PASSWORD")
        self.sender = settings.sender
        self.recipients = list(settings.recipients)
        self.timeout = settings.timeout_s

    async def send(self, notice: Notice) -> str:
        msg = EmailMessage()
        msg["Subject"] = subject(notice)
        msg["From"] = self.sender
        msg["To"] = ", ".join(self.recipients)
        msg["Date"] = formatdate(localtime=False)
        msg["Message-ID"] = make_msgid(domain="norrvakt")
        msg["X-Norrvakt-Tenant"] = notice.tenant
        if notice.alert_id is not None:
            msg["X-Norrvakt-Alert"] = str(notice.alert_id)
        msg.set_content(text(notice))
        return await asyncio.to_thread(self._send, msg)

    def deliver(self, msg: EmailMessage, recipients: list[str]) -> str:
        """Send ``msg`` to ``recipients`` (not the channel's own) on this channel's server — to
        all of them or to none: when the server refuses any recipient the transaction is reset
        before the message is sent, and the refusal names them (blocking; a worker thread)."""
        if not recipients:
            raise DeliveryError(f"e-mail {self.name}: no recipients", retry=False)
        return self._send(msg, list(recipients))

    def _send(self, msg: EmailMessage, recipients: list[str] | None = None) -> str:
        where = f"e-mail {self.name} (smtp://{self.host}:{self.port})"
        try:
            with smtplib.SMTP(self.host, self.port, timeout=self.timeout) as smtp:
                smtp.ehlo()
                if self.starttls:
                    if not smtp.has_extn("starttls"):
                        raise DeliveryError(
                            f"{where}: the server offers no STARTTLS; not sending in plain text"
                        )
                    smtp.starttls(context=ssl.create_default_context(cafile=self.ca_file))
                    smtp.ehlo()
                if self.username:
                    smtp.login(self.username, self.password)
                if recipients is None:
                    refused = smtp.send_message(msg)
                else:
                    _all_or_none(smtp, msg, self.sender, recipients, where)
                    return f"accepted for {len(recipients)} recipient(s)"
        except DeliveryError:
            raise
        except smtplib.SMTPResponseException as exc:
            raise DeliveryError(
                f"{where}: {exc.smtp_code} {exc.smtp_error!r}",
                retry=exc.smtp_code >= 400 and exc.smtp_code < 500,
            ) from exc
        except (OSError, smtplib.SMTPException, ssl.SSLError) as exc:
            raise DeliveryError(f"{where}: {type(exc).__name__}: {exc}") from exc
        if refused:
            raise DeliveryError(f"{where}: recipients refused: {refused}", retry=False)
        return f"accepted for {len(self.recipients)} recipient(s)"


def _all_or_none(
    smtp: smtplib.SMTP, msg: EmailMessage, sender: str, recipients: list[str], where: str
) -> None:
    code, answer = smtp.mail(sender)
    if code != 250:
        smtp.rset()
        raise DeliveryError(f"{where}: sender {sender!r} refused: {code} {answer!r}", retry=code < 500)
    refused = {}
    for address in recipients:
        code, answer = smtp.rcpt(address)
        if code not in (250, 251):
            refused[address] = (code, answer)
    if refused:
        smtp.rset()
        raise DeliveryError(f"{where}: recipient(s) refused, nothing was sent: {refused}", retry=False)
    code, answer = smtp.data(msg.as_bytes(policy=msg.policy.clone(linesep="\r\n")))
    if code != 250:
        raise DeliveryError(f"{where}: message refused: {code} {answer!r}", retry=code < 500)
