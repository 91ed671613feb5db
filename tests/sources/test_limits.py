"""Connection caps, the descriptor budget and the accept loop (norrvakt.sources.limits, .accept)."""

from __future__ import annotations

import asyncio
import logging
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from norrvakt.config import ConfigError, load_settings
from norrvakt.sources.accept import GuardedServer
from norrvakt.sources.limits import (
    ConnectionGuard,
    ConnectionSlot,
    DescriptorBudget,
    ListenerCaps,
    QuietLog,
    RepeatFilter,
    make_budget,
    peer_key,
)
from tests.e2e.harness import REPO

log = logging.getLogger("test.limits")


def test_peer_key_counts_ipv6_per_64() -> None:
    assert peer_key("10.1.2.3") == "10.1.2.3"
    assert peer_key("2001:db8:1:2:aaaa::1") == peer_key("2001:db8:1:2:ffff::9") == "2001:db8:1:2::/64"
    assert peer_key("::ffff:10.1.2.3") == "10.1.2.3"
    assert peer_key("fe80::1%eth0") == "fe80::/64"
    assert peer_key("unknown") == "unknown"


def test_budget_keeps_the_reserve_and_shares_the_rest() -> None:
    budget = make_budget(1024, 50, 512, [("a", 0, 0), ("b", 100, 0), ("c", 0, 7), ("http", 0, 0)])
    assert budget.total == 1024 - 50 - 512
    share = (budget.total - 100) // 3
    assert budget.caps["a"] == ListenerCaps(share, share // 8)
    assert budget.caps["b"] == ListenerCaps(100, 12)
    assert budget.caps["c"] == ListenerCaps(share, 7)
    huge = make_budget(1_048_576, 60, 512, [("a", 0, 0)])
    assert huge.caps["a"].max_connections == 10_000  # memory, not descriptors, bounds it then


def test_budget_too_small_for_the_reserve_still_allows_a_few(caplog: pytest.LogCaptureFixture) -> None:
    budget = make_budget(256, 50, 512, [("a", 0, 0)])
    assert budget.total == 16
    assert "raise LimitNOFILE" in caplog.text


def _guard(caps: ListenerCaps, total: int = 100) -> tuple[ConnectionGuard, list[tuple[str, str]]]:
    counted: list[tuple[str, str]] = []
    budget = DescriptorBudget(limit=total + 600, open_at_start=0, reserve=600, total=total, auto_share=total)
    guard = ConnectionGuard("t", caps, budget, lambda lid, why: counted.append((lid, why)), log)
    return guard, counted


def test_guard_caps_per_peer_and_per_listener() -> None:
    guard, counted = _guard(ListenerCaps(4, 2))
    a1, a2 = guard.admit("10.0.0.1"), guard.admit("10.0.0.1")
    assert a1 and a2 and guard.admit("10.0.0.1") is None
    b1, b2 = guard.admit("10.0.0.2"), guard.admit("10.0.0.3")
    assert b1 and b2 and guard.admit("10.0.0.4") is None
    assert counted == [("t", "connection.over_peer_limit"), ("t", "connection.over_limit")]
    a1.release()
    a1.release()  # idempotent: a connection lost twice gives back one place
    assert guard.open == 3 and guard.budget.in_use == 3
    assert guard.admit("10.0.0.1") is not None
    assert guard.admit("10.0.0.5") is None


def test_guard_refuses_when_the_budget_is_used_up() -> None:
    guard, counted = _guard(ListenerCaps(10, 10), total=2)
    slots = [guard.admit(f"10.0.0.{i}") for i in range(3)]
    assert slots[2] is None and counted == [("t", "connection.no_descriptors")]


def test_quiet_log_sums_up_a_flood(caplog: pytest.LogCaptureFixture) -> None:
    async def flood() -> None:
        quiet = QuietLog(log, logging.WARNING, "t: connection refused", every_s=0.2)
        for i in range(5000):
            quiet.note(f"10.0.{i % 300}.1", f"from 10.0.{i % 300}.1: over the limit", "over the limit")
        await asyncio.sleep(0.35)
        quiet.close()

    with caplog.at_level(logging.WARNING, logger="test.limits"):
        asyncio.run(flood())
    lines = [r.getMessage() for r in caplog.records if r.name == "test.limits"]
    assert len(lines) == 2, lines
    assert lines[0] == "t: connection refused: from 10.0.0.1: over the limit"
    assert "4999 more in the last 0 s (4999 over the limit)" in lines[1]
    assert "10.0.1.1 ×17" in lines[1]


def test_repeat_filter_lets_one_through_per_window() -> None:
    f = RepeatFilter(every_s=0.2)
    rec = [
        logging.LogRecord("uvicorn.error", logging.WARNING, "", 0, "Invalid HTTP request received.", (), None)
    ]
    rec += [logging.makeLogRecord(rec[0].__dict__) for _ in range(99)]
    assert [f.filter(r) for r in rec].count(True) == 1
    time.sleep(0.25)
    last = logging.makeLogRecord(rec[0].__dict__)
    assert f.filter(last)
    assert "and 99 alike" in last.getMessage()


class _Echo(asyncio.Protocol):
    def __init__(self, slot: ConnectionSlot) -> None:
        self.slot = slot

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport.write(b"hi")  # type: ignore[attr-defined]

    def connection_lost(self, exc: Exception | None) -> None:
        self.slot.release()


def test_accepting_pauses_while_the_budget_is_used_up() -> None:
    async def scenario() -> None:
        budget = DescriptorBudget(limit=603, open_at_start=0, reserve=600, total=3, auto_share=3)
        guard = ConnectionGuard("t", ListenerCaps(10, 10), budget, lambda *_: None, log)
        server = await GuardedServer.listen("127.0.0.1", 0, _Echo, guard)
        port = server.sockets[0].getsockname()[1]
        held = [await asyncio.open_connection("127.0.0.1", port) for _ in range(3)]
        for reader, _w in held:
            assert await reader.readexactly(2) == b"hi"
        waiting_r, waiting_w = await asyncio.open_connection("127.0.0.1", port)  # in the backlog
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(waiting_r.readexactly(2), 0.5)
        assert budget.in_use == 3
        held[0][1].close()  # one closes: the waiting one is accepted, not refused
        assert await asyncio.wait_for(waiting_r.readexactly(2), 5) == b"hi"
        for _r, w in [*held[1:], (waiting_r, waiting_w)]:
            w.close()
        await asyncio.sleep(0.1)
        assert budget.in_use == 0
        server.close()
        await server.wait_closed()

    asyncio.run(scenario())


# The accept loop of a process that really runs out of descriptors: asyncio's logged and spun.
_EMFILE_SERVER = textwrap.dedent(
    """
    import asyncio, logging, resource, sys
    from norrvakt.sources.accept import GuardedServer
    from norrvakt.sources.limits import ConnectionGuard, DescriptorBudget, ListenerCaps

    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))

    class Idle(asyncio.Protocol):
        def __init__(self, slot):
            self.slot = slot
        def connection_lost(self, exc):
            self.slot.release()

    async def main():
        budget = DescriptorBudget(10_600, 0, 600, 10_000, 10_000)  # believes in far more than it has
        guard = ConnectionGuard("t", ListenerCaps(10_000, 10_000), budget, lambda *_: None,
                                logging.getLogger("t"))
        server = await GuardedServer.listen("127.0.0.1", 0, Idle, guard)
        print(server.sockets[0].getsockname()[1], flush=True)
        ticks = 0
        while True:  # the loop must stay free for other work
            await asyncio.sleep(0.05)
            ticks += 1
            if ticks % 20 == 0:
                print("tick", budget.in_use, flush=True)

    asyncio.run(main())
    """
)


def test_out_of_descriptors_pauses_accepting_instead_of_spinning() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", _EMFILE_SERVER],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=str(REPO),
        text=True,
    )
    try:
        assert proc.stdout is not None
        port = int(proc.stdout.readline())
        clients = []
        for _ in range(150):
            c = socket.socket()
            c.setblocking(False)
            c.connect_ex(("127.0.0.1", port))
            clients.append(c)
        time.sleep(3)
        ticks = [proc.stdout.readline() for _ in range(2)]
        assert all(t.startswith("tick") for t in ticks), ticks
        held = int(ticks[-1].split()[1])
        assert 30 < held < 64  # as many as the descriptors allow, then it waited
        for c in clients:
            c.close()
        time.sleep(1.5)
        again = socket.create_connection(("127.0.0.1", port), timeout=5)  # accepting resumed
        again.close()
    finally:
        proc.terminate()
        _out, err = proc.communicate(timeout=10)
    lines = [ln for ln in err.splitlines() if "accepting paused" in ln]
    assert 1 <= len(lines) <= 3, err[-3000:]
    assert "Too many open files" in lines[0]
    assert len(err) < 5000, err[-3000:]


def test_limit_settings_are_checked(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text(
        """
[server]
max_connections = 10
max_connections_per_peer = 20
request_head_timeout_s = 0
fd_reserve = 8
[[sources]]
id = "tcp"
protocol = "tcp"
max_connections = -1
idle_timeout_s = 0.5
tls_handshake_timeout_s = 900
"""
    )
    with pytest.raises(ConfigError) as info:
        load_settings(cfg)
    problems = dict(info.value.problems)
    assert "20 — more than max_connections (10)" in problems["server.max_connections_per_peer"]
    assert "0.0" in problems["server.request_head_timeout_s"]
    assert "8" in problems["server.fd_reserve"]
    assert "-1" in problems["sources[0].max_connections"]
    assert "0 (never) or 1..86400" in problems["sources[0].idle_timeout_s"]
    assert "900" in problems["sources[0].tls_handshake_timeout_s"]
    ok = load_settings(overrides={"server.max_connections": 0})  # 0 = sized from the budget
    assert ok.server.max_connections == 0 and ok.sources[0].idle_timeout_s == 300.0
