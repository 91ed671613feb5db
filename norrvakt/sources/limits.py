"""Connection limits: the descriptor budget, caps per listener and per peer, quiet logging.

Every accepted connection costs a file descriptor, and so does every journal segment, chDB
part, state database handle, TLS file and checkpoint. When idle connections take the last
descriptor the journal cannot open its next segment and every sender is refused, so the
process keeps a *reserve* (``server.fd_reserve``) that connections never get::

    descriptors: limit 20000 (soft limit raised from 1024), 52 open at start, 512 kept in
    reserve → 19436 connections: syslog-tcp 4859 (607 per peer), relp 4859 (607 per peer), …

Each TCP listener (syslog TCP/TLS, RELP, the web server) gets a cap and a cap per peer
address (an IPv6 sender counts per /64, the block one host usually has). A connection over a
cap is closed at once and counted; when the whole budget is in use, listeners stop accepting
until a connection closes, so new connections wait in the kernel's bounded backlog.

A flood of refusals, timeouts or bad handshakes is logged as one line per listener and kind
every ``LOG_EVERY_S`` seconds with a count, not one line each: 20,000 idle connections used to
write 300 MB of log in 20 s.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import math
import os
import resource
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from norrvakt.config import Settings

log = logging.getLogger(__name__)

LOG_EVERY_S = 10.0  # at most one line per listener and kind of trouble this often
AUTO_MAX_PER_LISTENER = 10_000  # an automatic cap never exceeds this (memory, not descriptors)
MIN_BUDGET = 16  # connections allowed even when the limit leaves nothing beyond the reserve
HTTP_ID = "http"  # the web server's name in the budget, logs and transport-error counters


def raise_nofile_limit() -> tuple[int, int]:
    """Raise the soft RLIMIT_NOFILE to the hard limit (systemd's default soft limit is 1024);
    (soft before, soft now)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
    if soft == resource.RLIM_INFINITY or soft >= target:
        return soft, soft
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    except (ValueError, OSError) as exc:  # a container may forbid it: work with what we have
        log.warning("could not raise the open-file limit from %d to %d: %s", soft, target, exc)
        return soft, soft
    return soft, target


def open_descriptors() -> int:
    try:
        return len(os.listdir("/proc/self/fd")) - 1  # minus the one listdir itself holds
    except OSError:  # no /proc (not Linux): assume a freshly started process
        return 64


def peer_key(host: str) -> str:
    """What a per-peer cap counts: the IPv4 address, or the /64 of an IPv6 address."""
    try:
        addr = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return host
    if isinstance(addr, ipaddress.IPv6Address):
        if addr.ipv4_mapped is not None:
            return str(addr.ipv4_mapped)
        return str(ipaddress.IPv6Network((addr, 64), strict=False))
    return str(addr)


class QuietLog:
    """Log a kind of trouble at most once every ``every_s`` seconds, with how often it happened.

    The first occurrence is logged as it is; later ones in the window are counted (by peer)
    and summed up in one line when the window ends."""

    def __init__(self, logger: logging.Logger, level: int, what: str, every_s: float = LOG_EVERY_S) -> None:
        self.logger = logger
        self.level = level
        self.what = what  # e.g. "syslog-tcp: connections refused"
        self.every_s = every_s
        self._count = 0
        self._peers: Counter[str] = Counter()
        self._reasons: Counter[str] = Counter()
        self._window: asyncio.TimerHandle | None = None

    def note(self, peer: str, message: str, reason: str = "") -> None:
        if self._window is None:
            self.logger.log(self.level, "%s: %s", self.what, message)
            self._open_window()
            return
        self._count += 1
        if len(self._peers) < 1000 or peer in self._peers:  # bounded, whatever the attacker sends
            self._peers[peer] += 1
        if reason:
            self._reasons[reason] += 1

    def _open_window(self) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop (a unit test): every occurrence is logged
            return
        self._window = loop.call_later(self.every_s, self._close_window)

    def _close_window(self) -> None:
        self._window = None
        if not self._count:
            return
        top = ", ".join(f"{p} ×{n}" for p, n in self._peers.most_common(5))
        reasons = "; ".join(f"{n} {r}" for r, n in self._reasons.most_common())
        self.logger.log(
            self.level,
            "%s: %d more in the last %.0f s%s (peers: %s%s)",
            self.what,
            self._count,
            self.every_s,
            f" ({reasons})" if reasons else "",
            top,
            ", …" if len(self._peers) > 5 else "",
        )
        self._count = 0
        self._peers.clear()
        self._reasons.clear()
        self._open_window()

    def close(self) -> None:
        if self._window is not None:
            self._window.cancel()
            self._window = None


class RepeatFilter(logging.Filter):
    """Let a message (by logger and format string) through at most once every ``every_s``; the
    next one that passes says how many were held back. For third-party loggers that log once
    per bad request (uvicorn's "Invalid HTTP request received.")."""

    def __init__(self, every_s: float = LOG_EVERY_S) -> None:
        super().__init__()
        self.every_s = every_s
        self._seen: dict[tuple[str, str], tuple[float, int]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        key = (record.name, str(record.msg))
        now = time.monotonic()
        last, held = self._seen.get(key, (-math.inf, 0))
        if now - last < self.every_s:
            self._seen[key] = (last, held + 1)
            return False
        if len(self._seen) > 1000:  # messages with the value inside: keep the table bounded
            self._seen.clear()
        self._seen[key] = (now, 0)
        if held:
            record.msg = f"{record.msg} (and {held} alike in the last {now - last:.0f} s, not logged)"
        return True


@dataclass(frozen=True)
class ListenerCaps:
    """Resolved caps of one listener (``0`` in the settings means: sized from the budget)."""

    max_connections: int
    max_per_peer: int


class Pausable(Protocol):
    """What the budget pauses and resumes: a listener's accept loop."""

    def pause_accepting(self) -> None: ...

    def resume_accepting(self) -> None: ...


@dataclass
class DescriptorBudget:
    """How many connections the whole process may hold, and how many it holds now."""

    limit: int
    open_at_start: int
    reserve: int
    total: int
    auto_share: int
    caps: dict[str, ListenerCaps] = field(default_factory=dict)
    in_use: int = 0
    _paused: list[Pausable] = field(default_factory=list)

    def has_room(self) -> bool:
        return self.in_use < self.total

    def wait_for_room(self, server: Pausable) -> None:
        server.pause_accepting()
        if server not in self._paused:
            self._paused.append(server)

    def take(self) -> None:
        self.in_use += 1

    def give_back(self) -> None:
        self.in_use -= 1
        if self._paused and self.has_room():
            paused, self._paused = self._paused, []
            for server in paused:
                server.resume_accepting()

    def forget(self, server: Pausable) -> None:
        if server in self._paused:
            self._paused.remove(server)

    def guard(
        self,
        listener_id: str,
        max_connections: int,
        max_per_peer: int,
        count: Callable[[str, str], None],
        logger: logging.Logger,
    ) -> ConnectionGuard:
        """The guard of one listener, with the caps planned for it (or resolved from its settings)."""
        caps = self.caps.get(listener_id) or resolve_caps(self.auto_share, max_connections, max_per_peer)
        return ConnectionGuard(listener_id, caps, self, count, logger)

    def describe(self) -> str:
        listeners = ", ".join(
            f"{name} {c.max_connections} ({c.max_per_peer} per peer)" for name, c in self.caps.items()
        )
        return (
            f"{self.open_at_start} open at start, {self.reserve} kept in reserve for the journal, "
            f"store, state and checkpoints → {self.total} connections"
            + (f": {listeners}" if listeners else "")
        )


def resolve_caps(auto_share: int, max_connections: int, max_per_peer: int) -> ListenerCaps:
    cap = max_connections or auto_share
    # A sender behind NAT may hold many connections; an eighth still needs 8 addresses to fill one.
    per_peer = max_per_peer or max(1, cap // 8)
    return ListenerCaps(cap, min(per_peer, cap))


def make_budget(
    limit: int, open_now: int, reserve: int, listeners: Iterable[tuple[str, int, int]]
) -> DescriptorBudget:
    """The budget for ``listeners`` (id, max_connections, max_per_peer; 0 = automatic)."""
    items = list(listeners)
    total = limit - open_now - reserve
    if total < MIN_BUDGET:
        log.error(
            "the open-file limit %d leaves no room for connections beyond %d open and a reserve of %d; "
            "allowing %d — raise LimitNOFILE (systemd) or ulimit -n",
            limit,
            open_now,
            reserve,
            MIN_BUDGET,
        )
        total = MIN_BUDGET
    explicit = sum(m for _, m, _ in items if m)
    autos = sum(1 for _, m, _ in items if not m)
    auto_share = max(1, min(AUTO_MAX_PER_LISTENER, (total - explicit) // autos if autos else total))
    if explicit + auto_share * autos > total:
        log.warning(
            "the listeners' connection caps add up to %d, more than the %d the descriptors allow: "
            "listeners pause accepting when the budget is used up",
            explicit + auto_share * autos,
            total,
        )
    budget = DescriptorBudget(limit, open_now, reserve, total, auto_share)
    for name, max_conn, per_peer in items:
        budget.caps[name] = resolve_caps(auto_share, max_conn, per_peer)
    return budget


_budget: DescriptorBudget | None = None


def plan_connections(settings: Settings) -> DescriptorBudget:
    """Size the caps of every TCP listener of ``settings`` and the web server, and log them.

    The budget is per process (so is RLIMIT_NOFILE), hence one module-wide instance."""
    global _budget
    before, soft = raise_nofile_limit()
    limit = soft if soft != resource.RLIM_INFINITY else 1 << 20
    listeners = [
        (src.id, src.max_connections, src.max_connections_per_peer)
        for src in settings.sources
        if src.protocol != "udp"
    ]
    sv = settings.server
    listeners.append((HTTP_ID, sv.max_connections, sv.max_connections_per_peer))
    _budget = make_budget(limit, open_descriptors(), sv.fd_reserve, listeners)
    raised = f" (soft limit raised from {before})" if before != soft else ""
    log.info("descriptors: limit %d%s, %s", limit, raised, _budget.describe())
    return _budget


WORKER_RESERVE = 64  # a worker process opens little else: its socket to the node, logs, certificates


def plan_worker_connections(caps: dict[str, ListenerCaps]) -> DescriptorBudget:
    """The budget of a worker process that accepts on listeners the node lends it: its own
    descriptors, and for each listener the caps the node planned (so they hold per worker: a
    peer may hold up to its cap on each worker)."""
    global _budget
    raise_nofile_limit()
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    limit = soft if soft != resource.RLIM_INFINITY else 1 << 20
    items = [(name, c.max_connections, c.max_per_peer) for name, c in caps.items()]
    _budget = make_budget(limit, open_descriptors(), WORKER_RESERVE, items)
    return _budget


def descriptor_budget() -> DescriptorBudget:
    """The process's budget; one sized for four listeners if nothing planned it (unit tests)."""
    global _budget
    if _budget is None:
        soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        limit = soft if soft != resource.RLIM_INFINITY else 1 << 20
        _budget = make_budget(limit, open_descriptors(), 256, [("", 0, 0)] * 4)
        _budget.caps.clear()
    return _budget


class ConnectionSlot:
    """One admitted connection; ``release`` (idempotent) gives its place back."""

    __slots__ = ("_guard", "also", "key")

    def __init__(self, guard: ConnectionGuard, key: str) -> None:
        self._guard: ConnectionGuard | None = guard
        self.key = key
        self.also: Callable[[], None] | None = None  # a place held elsewhere too (the node's)

    def release(self) -> None:
        guard, self._guard = self._guard, None
        if guard is not None:
            guard._release(self.key)
            if self.also is not None:
                self.also()


class ConnectionGuard:
    """The caps of one listener: who may connect now, and what was refused."""

    def __init__(
        self,
        listener_id: str,
        caps: ListenerCaps,
        budget: DescriptorBudget,
        count: Callable[[str, str], None],
        logger: logging.Logger,
    ) -> None:
        self.id = listener_id
        self.caps = caps
        self.budget = budget
        self.count = count  # (listener id, reason) → the pipeline's transport-error counters
        self.open = 0
        self.per_peer: Counter[str] = Counter()
        self.refused = QuietLog(logger, logging.WARNING, f"{listener_id}: connection refused")
        self.timed_out = QuietLog(logger, logging.INFO, f"{listener_id}: connection closed")

    def admit(self, host: str) -> ConnectionSlot | None:
        key = peer_key(host)
        if self.per_peer[key] >= self.caps.max_per_peer:
            why = f"over the limit of {self.caps.max_per_peer} per peer"
            self._refuse(host, "connection.over_peer_limit", why, "over the per-peer limit")
        elif self.open >= self.caps.max_connections:
            why = f"over the listener's limit of {self.caps.max_connections}"
            self._refuse(host, "connection.over_limit", why, "over the listener limit")
        elif not self.budget.has_room():
            why = f"all {self.budget.total} connections the descriptors allow are in use"
            self._refuse(host, "connection.no_descriptors", why, "budget used up")
        else:
            self.open += 1
            self.per_peer[key] += 1
            self.budget.take()
            return ConnectionSlot(self, key)
        return None

    def _refuse(self, host: str, reason: str, why: str, label: str) -> None:
        self.count(self.id, reason)
        self.refused.note(host, f"from {host}: {why}, closed at once", label)

    def _release(self, key: str) -> None:
        self.open -= 1
        self.per_peer[key] -= 1
        if self.per_peer[key] <= 0:
            del self.per_peer[key]
        self.budget.give_back()

    def close(self) -> None:
        self.refused.close()
        self.timed_out.close()
