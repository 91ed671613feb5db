"""The blocklist served as the threat feed firewalls poll (the real route, in-process): the
formats, the per-tenant token (query, Bearer, Basic), expiry; and the signed firewall webhook."""

from __future__ import annotations

import asyncio
import base64
import json
from pathlib import Path
from types import SimpleNamespace

import httpx
from fastapi import FastAPI

from norrvakt.alerts.notify.webhook import verify
from norrvakt.event import now_us
from norrvakt.respond.base import ActionRequest
from norrvakt.respond.blocklist import BlockResponderConfig
from norrvakt.state import response_actions as store
from norrvakt.state.db import response_blocklist
from norrvakt.web.api import response_feed
from tests.alerts.receivers import WebhookReceiver
from tests.respond.conftest import ANA, BO, World, make_world


def _client(w: World) -> FastAPI:
    """The feed's router on an app whose runtime has what the route reads."""
    app = FastAPI()
    app.include_router(response_feed.router)
    app.state.runtime = SimpleNamespace(
        state=w.engine,
        tenants=["lulea", "boden"],
        extras={"tenant_modules": w.modules},
        settings=w.svc.settings,
    )
    return app


def _get(app: FastAPI, url: str, headers: dict[str, str] | None = None) -> httpx.Response:
    async def go() -> httpx.Response:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://norrvakt") as c:
            return await c.get(url, headers=headers)

    return asyncio.run(go())


def test_feed_formats_token_and_expiry(world: World) -> None:
    w = world
    for target in ("203.0.113.7", "198.51.100.0/24", "2001:db8::/48"):
        row = asyncio.run(
            w.svc.request(ANA, w.scope(ANA), action="block.address", target=target, case_id=w.case_id)
        )
        assert asyncio.run(w.svc.approve(BO, w.scope(BO), row["id"]))["status"] == "done"
    store.set_feed_token(w.engine, "lulea", "tok-lulea", "ana")
    store.set_feed_token(w.engine, "boden", "tok-boden", "bert")
    c = _client(w)
    text = _get(c, "/feeds/blocklist/lulea?token=tok-lulea")
    assert text.status_code == 200 and text.headers["content-type"].startswith("text/plain")
    assert text.text == "203.0.113.7\n198.51.100.0/24\n2001:db8::/48\n"
    for fmt in ("pfsense", "opnsense", "fortigate"):
        assert _get(c, f"/feeds/blocklist/lulea?format={fmt}&token=tok-lulea").text == text.text
    pan = _get(
        c, "/feeds/blocklist/lulea?format=paloalto", headers={"Authorization": "Bearer tok-lulea"}
    ).text
    first = pan.splitlines()[0]
    assert first.startswith(f"203.0.113.7 #norrvakt case {w.case_id} until ")
    basic = base64.b64encode(b"fortigate:tok-lulea").decode()
    doc = _get(c, "/feeds/blocklist/lulea?format=json", headers={"Authorization": f"Basic {basic}"}).json()
    assert [e["address"] for e in doc["entries"]] == ["203.0.113.7/32", "198.51.100.0/24", "2001:db8::/48"]
    # no token, a wrong one, Boden's token for Luleå, an unknown tenant: the same 401
    refused = [
        "/feeds/blocklist/lulea",
        "/feeds/blocklist/lulea?token=nope",
        "/feeds/blocklist/lulea?token=tok-boden",
        "/feeds/blocklist/atlantis?token=tok-lulea",
    ]
    for url in refused:
        assert _get(c, url).status_code == 401, url
    assert _get(c, "/feeds/blocklist/boden?token=tok-boden").status_code == 403  # boden: no response module
    assert _get(c, "/feeds/blocklist/lulea?format=xml&token=tok-lulea").status_code == 400
    # expiry: an entry past its time leaves the feed by itself
    with w.engine.begin() as conn:
        conn.execute(
            response_blocklist.update()
            .where(response_blocklist.c.address == "203.0.113.7/32")
            .values(expires_at=now_us() - 1)
        )
    assert _get(c, "/feeds/blocklist/lulea?token=tok-lulea").text == "198.51.100.0/24\n2001:db8::/48\n"


def test_firewall_webhook_is_signed_and_told_of_block_and_unblock(tmp_path: Path) -> None:
    with WebhookReceiver() as hook:
        w = make_world(
            tmp_path, {"response.firewall_webhooks": {"lulea": hook.url}, "response.webhook_secret": "fw-key"}
        )
        row = asyncio.run(
            w.svc.request(ANA, w.scope(ANA), action="block.address", target="203.0.113.9", case_id=w.case_id)
        )
        done = asyncio.run(w.svc.approve(BO, w.scope(BO), row["id"]))
        assert done["status"] == "done" and "answered 200" in done["result"]
        asyncio.run(w.svc.undo(ANA, w.scope(ANA), row["id"]))
        kinds = []
        for got in hook.received:
            assert verify(
                "fw-key", got.headers["x-norrvakt-timestamp"], got.body, got.headers["x-norrvakt-signature"]
            )
            body = json.loads(got.body)
            kinds.append((body["kind"], body["address"], body["tenant"]))
        assert kinds == [
            ("response.block", "203.0.113.9/32", "lulea"),
            ("response.unblock", "203.0.113.9/32", "lulea"),
        ]
        w.engine.dispose()


def test_a_firewall_that_fails_leaves_the_action_failed_and_one_entry_after_retry(tmp_path: Path) -> None:
    with WebhookReceiver(fail_first=1) as hook:
        cfg = BlockResponderConfig(make_world(tmp_path).engine, webhook_url=hook.url, secret="k")
        block = cfg.build()
        req = ActionRequest(41, "lulea", "block.address", "203.0.113.10", actor="ana")
        first = asyncio.run(block.run(req))
        assert not first.ok and first.retry and "firewall was not told" in first.detail
        second = asyncio.run(block.run(req))
        assert second.ok
        assert len(store.active_blocks(cfg.engine, "lulea", now_us())) == 1  # not added twice
