"""kill -9 of the parse worker that holds a stream receiver's connection, mid-stream — the same
scenario for every receiver that runs in the workers (Beats, Fluent Forward): the first
sender's connection dies with the worker, a second connection goes on, and every event either
sender had acknowledged is stored exactly once."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

from tests.e2e.harness import Server
from tests.e2e.test_durability import assert_stored_once


class AckedSender(Protocol):
    acked: list[str]
    stop: threading.Event

    def start(self) -> None: ...
    def join(self, timeout: float | None = None) -> None: ...


def _workers(server: Server) -> list[dict[str, Any]]:
    return list(server.api("GET", "/api/stats").json()["workers"]["workers"])


def wait_stored(server: Server) -> None:
    """Until the node has parsed and indexed everything it journaled (at most 2 minutes)."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        stats = server.api("GET", "/api/stats").json()
        if stats["indexer"]["backlog"] == 0 and stats["journal"]["backlog"]["parsing_batches"] == 0:
            return
        time.sleep(0.5)


def kill_the_receiving_worker(
    server: Server, run: str, sender: Callable[[str], AckedSender], what: str
) -> tuple[list[str], list[str]]:
    """The acknowledged ids of the first sender (killed with its worker) and of the second."""
    # (the module's other tests share the node: the victim is the worker whose count moves now)
    before = {w["pid"]: w["received_events"] for w in _workers(server)}
    first = sender("a")
    first.start()
    deadline = time.monotonic() + 20
    victim: dict[str, Any] = {}
    while not victim and time.monotonic() < deadline:
        victim = next((w for w in _workers(server) if w["received_events"] > before.get(w["pid"], 0)), {})
        time.sleep(0.2)
    assert victim, f"no worker received the {what} connection"
    time.sleep(1.0)
    os.kill(victim["pid"], 9)
    first.join(15)  # its connection died with the worker
    second = sender("b")
    second.start()
    time.sleep(2.0)
    second.stop.set()
    second.join(15)
    print(f"kill -9 of the worker: {len(first.acked)} acknowledged before, {len(second.acked)} after")
    assert len(first.acked) > 100 and len(second.acked) > 100, (len(first.acked), len(second.acked))
    wait_stored(server)
    assert_stored_once(server, run, first.acked + second.acked)
    return first.acked, second.acked
