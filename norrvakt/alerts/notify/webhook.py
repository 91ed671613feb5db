"""Webhook: the notice as JSON, POSTed and signed.

The receiver checks ``X-Norrvakt-Signature: sha256=<hex>`` = HMAC-SHA256(secret,
``<X-Norrvakt-Timestamp>.<body>``) — the timestamp inside the signature lets it refuse replays
(as Stripe and Slack do). 5xx, 429 and network errors are retried by the dispatcher with
backoff; other 4xx answers are final (the receiver refuses the message itself).
"""

from __future__ import annotations

import hashlib
import hmac
import time
import uuid

import httpx
import orjson

from norrvakt.alerts.notify.base import DeliveryError, register_channel, secret_from_env
from norrvakt.alerts.notify.message import Notice, as_json
from norrvakt.config import ChannelSettings

SIGNATURE_HEADER = "X-Norrvakt-Signature"
TIMESTAMP_HEADER = "X-Norrvakt-Timestamp"


def sign(secret: str, timestamp: str, body: bytes) -> str:
    mac = hmac.new(secret.encode("utf-8"), timestamp.encode("ascii") + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def verify(secret: str, timestamp: str, body: bytes, signature: str) -> bool:
    """What a receiver does (the tests and docs/soc.md use this)."""
    return hmac.compare_digest(sign(secret, timestamp, body), signature)


@register_channel("webhook")
class WebhookChannel:
    def __init__(self, settings: ChannelSettings) -> None:
        self.name = settings.name
        self.url = settings.url
        self.secret = settings.secret or secret_from_env(settings, "SECRET")
        self.timeout = settings.timeout_s

    async def send(self, notice: Notice) -> str:
        body = orjson.dumps(as_json(notice))
        timestamp = str(int(time.time()))
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "Norrvakt",
            TIMESTAMP_HEADER: timestamp,
            "X-Norrvakt-Delivery": str(uuid.uuid4()),
        }
        if self.secret:
            headers[SIGNATURE_HEADER] = sign(self.secret, timestamp, body)
        try:
            async with httpx.AsyncClient(timeout=self.timeout) as client:
                resp = await client.post(self.url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            raise DeliveryError(f"webhook {self.name} ({self.url}): {type(exc).__name__}: {exc}") from exc
        if resp.status_code >= 300:
            retry = resp.status_code >= 500 or resp.status_code in (408, 429)
            raise DeliveryError(
                f"webhook {self.name} ({self.url}) answered {resp.status_code}: {resp.text[:200]}",
                retry=retry,
            )
        return f"HTTP {resp.status_code}"
