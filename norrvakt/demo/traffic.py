"""Sending the demo's traffic through the real listeners, as real senders would.

Each municipality's messages leave from its own loopback address (127.0.1.N), which the
default listener configuration maps to that tenant — the same network → tenant mapping an
operator sets up for real sender networks. Windows events go over HTTP (Splunk HEC) with an
ingest token per municipality. Linux syslog alternates between TCP (octet-counted), TLS and
RELP by municipality; firewall CEF uses UDP.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import ssl
import time
from typing import TYPE_CHECKING

import httpx

from norrvakt.demo.generator import STORIES, DemoMessage, TenantWorld
from norrvakt.demo.seed_systems import IMPROPER_USE_STORIES, SeedSystems
from norrvakt.demo.sigma_stories import SIGMA_STORIES
from norrvakt.state.accounts import create_ingest_token

if TYPE_CHECKING:
    from norrvakt.node.runtime import Runtime

log = logging.getLogger(__name__)

TOKENS_FILE = "demo-tokens.json"


class DemoTraffic:
    def __init__(
        self, runtime: Runtime, url: str, *, rate_per_tenant: float = 3.0, seed: int | None = None
    ) -> None:
        self.runtime = runtime
        self.url = url
        self.rate = rate_per_tenant
        self.rng = random.Random(seed)
        self.tenants = [t for t in runtime.settings.tenants]
        self.worlds = {
            t: TenantWorld(t, i, random.Random(self.rng.random())) for i, t in enumerate(self.tenants)
        }
        self.systems = {t: SeedSystems(w) for t, w in self.worlds.items()}
        self.sent = 0
        self.stories_run: list[tuple[str, str, float]] = []
        self._ports: dict[str, int] = {}
        self._tcp: dict[str, tuple[asyncio.StreamReader, asyncio.StreamWriter]] = {}
        self._udp: dict[str, asyncio.DatagramTransport] = {}
        self._relp_txnr: dict[str, int] = {}
        self._http: httpx.AsyncClient | None = None
        self._tokens: dict[str, str] = {}
        # Set once the first second of traffic (every story's start among it) has been sent.
        self.first_round_sent = asyncio.Event()

    # -- setup ------------------------------------------------------------------------------

    def _source_ip(self, tenant: str) -> str:
        return f"127.0.1.{self.tenants.index(tenant) + 1}"

    def _load_tokens(self) -> None:
        path = self.runtime.settings.data_path / TOKENS_FILE
        if path.exists():
            self._tokens = json.loads(path.read_text())
        missing = [t for t in self.tenants if t not in self._tokens]
        for t in missing:
            self._tokens[t] = create_ingest_token(
                self.runtime.state, t, f"{t}-winlogbeat", "demo Windows events"
            )
        if missing:
            import os

            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as fh:
                json.dump(self._tokens, fh)

    def _linux_transport(self, tenant: str) -> str:
        i = self.tenants.index(tenant)
        available = [k for k in ("syslog-tcp", "syslog-tls", "relp") if k in self._ports]
        return available[i % len(available)] if available else "hec"

    # -- running ----------------------------------------------------------------------------

    async def run(self) -> None:
        self._ports = {s.id: int(getattr(s, "port", 0)) for s in self.runtime.sources}
        self._load_tokens()
        # The demo's own requests are not news: one httpx INFO line each would bury the banner.
        logging.getLogger("httpx").setLevel(logging.WARNING)
        self._http = httpx.AsyncClient(base_url=self.url, timeout=30)
        await asyncio.sleep(0.5)  # let the web server come up
        try:
            # Every story once at start, so a new user sees alerts within seconds.
            now = time.time()
            schedule: list[tuple[float, str, DemoMessage]] = []
            for n, name in enumerate(self.stories()):
                tenant = self.tenants[(n * 5) % len(self.tenants)]
                schedule += [(at, tenant, m) for at, m in self.play(name, tenant, now + n)]
                self.stories_run.append((name, tenant, now))
            next_story = now + self.rng.uniform(60, 120)
            while True:
                tick = time.time()
                batch = [
                    (tenant, self._background(tenant, tick + self.rng.random()))
                    for tenant in self.tenants
                    for _ in range(self._poisson(self.rate))
                ]
                due = [(t, m) for at, t, m in schedule if at <= tick + 1]
                schedule = [s for s in schedule if s[0] > tick + 1]
                if tick >= next_story:
                    name = self.rng.choice(self.stories())
                    tenant = self.rng.choice(self.tenants)
                    schedule += [(at, tenant, m) for at, m in self.play(name, tenant, tick)]
                    self.stories_run.append((name, tenant, tick))
                    next_story = tick + self.rng.uniform(90, 240)
                await self._send_all(batch + due)
                self.first_round_sent.set()
                await asyncio.sleep(max(0.0, 1.0 - (time.time() - tick)))
        finally:
            await self._close()

    def stories(self) -> list[str]:
        return [*STORIES, *IMPROPER_USE_STORIES, *SIGMA_STORIES]

    def play(self, name: str, tenant: str, ts: float) -> list[tuple[float, DemoMessage]]:
        if name in STORIES:
            return STORIES[name](self.worlds[tenant], ts)
        if name in SIGMA_STORIES:  # met by SigmaHQ rules, once they are installed
            return SIGMA_STORIES[name](self.worlds[tenant], ts)
        return IMPROPER_USE_STORIES[name](self.worlds[tenant], self.systems[tenant], ts)

    def _background(self, tenant: str, ts: float) -> DemoMessage:
        # About a third of the traffic comes from the municipality's own systems.
        if self.rng.random() < 0.35:
            return self.systems[tenant].background(ts)
        return self.worlds[tenant].background(ts)

    def _poisson(self, lam: float) -> int:
        # Knuth's method; lam is small.
        threshold, k, p = pow(2.718281828, -lam), 0, 1.0
        while True:
            p *= self.rng.random()
            if p <= threshold:
                return k
            k += 1

    async def _send_all(self, messages: list[tuple[str, DemoMessage]]) -> None:
        by_route: dict[tuple[str, str], list[DemoMessage]] = {}
        for tenant, msg in messages:
            route = msg.transport if msg.transport != "syslog" else self._linux_transport(tenant)
            by_route.setdefault((tenant, route), []).append(msg)
        for (tenant, route), msgs in by_route.items():
            try:
                await self._send(tenant, route, msgs)
                self.sent += len(msgs)
            except (TimeoutError, OSError, httpx.HTTPError, ssl.SSLError) as exc:
                log.warning(
                    "demo: sending %d message(s) for %s over %s failed: %s", len(msgs), tenant, route, exc
                )
                self._drop_connection(tenant, route)

    async def _send(self, tenant: str, route: str, msgs: list[DemoMessage]) -> None:
        if route == "hec":
            assert self._http is not None
            body = "\n".join(
                json.dumps(m.body if isinstance(m.body, dict) else {"event": m.body}) for m in msgs
            )
            resp = await self._http.post(
                "/services/collector/event",
                content=body,
                headers={"Authorization": f"Splunk {self._tokens[tenant]}"},
            )
            resp.raise_for_status()
        elif route == "syslog-udp":
            transport = await self._udp_transport(tenant)
            for m in msgs:
                transport.sendto(str(m.body).encode("utf-8"))
        elif route in ("syslog-tcp", "syslog-tls"):
            _reader, writer = await self._stream(tenant, route)
            data = b"".join(b"%d %s" % (len(b := str(m.body).encode("utf-8")), b) for m in msgs)
            writer.write(data)
            await writer.drain()
        elif route == "relp":
            await self._relp_send(tenant, [str(m.body).encode("utf-8") for m in msgs])
        else:
            raise ValueError(f"unknown demo route {route}")

    async def _stream(self, tenant: str, route: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        key = f"{tenant}/{route}"
        if key not in self._tcp:
            ctx = None
            if route == "syslog-tls":
                ctx = ssl.create_default_context()
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE  # the demo trusts its own self-signed certificate
            self._tcp[key] = await asyncio.wait_for(
                asyncio.open_connection(
                    "127.0.0.1", self._ports[route], ssl=ctx, local_addr=(self._source_ip(tenant), 0)
                ),
                timeout=10,
            )
        return self._tcp[key]

    async def _relp_send(self, tenant: str, payloads: list[bytes]) -> None:
        key = f"{tenant}/relp"
        fresh = key not in self._tcp
        reader, writer = await self._stream(tenant, "relp")
        if fresh:
            offer = b"relp_version=0\nrelp_software=norrvakt-demo\ncommands=syslog"
            writer.write(b"1 open %d %s\n" % (len(offer), offer))
            await writer.drain()
            await _read_relp_response(reader)
            self._relp_txnr[key] = 1
        for p in payloads:
            self._relp_txnr[key] += 1
            writer.write(b"%d syslog %d %s\n" % (self._relp_txnr[key], len(p), p))
        await writer.drain()
        for _ in payloads:
            await _read_relp_response(reader)

    async def _udp_transport(self, tenant: str) -> asyncio.DatagramTransport:
        if tenant not in self._udp:
            loop = asyncio.get_running_loop()
            transport, _ = await loop.create_datagram_endpoint(
                asyncio.DatagramProtocol,
                local_addr=(self._source_ip(tenant), 0),
                remote_addr=("127.0.0.1", self._ports.get("syslog-udp", 5514)),
            )
            self._udp[tenant] = transport
        return self._udp[tenant]

    def _drop_connection(self, tenant: str, route: str) -> None:
        pair = self._tcp.pop(f"{tenant}/{route}", None)
        if pair is not None:
            pair[1].close()

    async def _close(self) -> None:
        for _reader, writer in self._tcp.values():
            writer.close()
        for transport in self._udp.values():
            transport.close()
        if self._http is not None:
            await self._http.aclose()


async def _read_relp_response(reader: asyncio.StreamReader) -> bytes:
    """Read one ``TXNR rsp DATALEN [DATA] LF`` response; raise unless it is 200."""
    await asyncio.wait_for(reader.readuntil(b" rsp "), timeout=10)
    length_text = b""
    while True:
        c = await reader.readexactly(1)
        if c in (b" ", b"\n"):
            break
        length_text += c
    length = int(length_text or b"0")
    data = await reader.readexactly(length) if length else b""
    if length:
        await reader.readexactly(1)  # trailer LF
    if not data.startswith(b"200"):
        raise OSError(f"RELP server refused a message: {data[:60]!r}")
    return data
