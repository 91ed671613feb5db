"""A signed JSON POST to a firewall's or a service desk's webhook — signed as Norrvakt's alert
webhooks are (``X-Norrvakt-Signature`` over ``<timestamp>.<body>``, norrvakt/alerts/notify/webhook.py),
so one receiver check serves both."""

from __future__ import annotations

import time
import uuid
from typing import Any

import httpx
import orjson

from norrvakt.alerts.notify.webhook import SIGNATURE_HEADER, TIMESTAMP_HEADER, sign
from norrvakt.respond.base import Outcome


async def post_signed(url: str, secret: str, payload: dict[str, Any], timeout_s: float) -> Outcome:
    body = orjson.dumps(payload)
    timestamp = str(int(time.time()))
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "Norrvakt",
        TIMESTAMP_HEADER: timestamp,
        "X-Norrvakt-Delivery": str(uuid.uuid4()),
    }
    if secret:
        headers[SIGNATURE_HEADER] = sign(secret, timestamp, body)
    try:
        async with httpx.AsyncClient(timeout=timeout_s) as client:
            resp = await client.post(url, content=body, headers=headers)
    except httpx.HTTPError as exc:
        return Outcome(False, f"webhook {_bare(url)}: {type(exc).__name__}: {exc}", retry=True)
    if resp.status_code >= 300:
        retry = resp.status_code >= 500 or resp.status_code in (408, 429)
        return Outcome(False, f"webhook {_bare(url)} answered {resp.status_code}: {resp.text[:200]}", retry)
    return Outcome(True, f"webhook {_bare(url)} answered {resp.status_code}: {resp.text[:200]}")


def _bare(url: str) -> str:
    return url.split("?", 1)[0]
