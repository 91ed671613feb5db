"""A TCP accept loop that checks the caps before a connection costs anything, and that pauses
instead of spinning when the process runs out of descriptors.

Why not ``loop.create_server``: asyncio's accept loop (CPython 3.11 ``selector_events``)
logs ``socket.accept() out of system resource`` with a traceback on EMFILE and then keeps
calling ``accept()`` for the rest of its batch — up to ``backlog`` times (2048 for uvicorn) —
scheduling a retry for every failure. With ~1,000 idle connections under a limit of 1,024
descriptors that was 17,000 log lines a second (190 MB in 25 s) while nothing else ran. Here an
accept that fails for want of descriptors stops the listener for ``ACCEPT_RETRY_S`` and is
logged once per ``LOG_EVERY_S``; when the budget is used up the listener stops accepting
until a connection closes, so new connections wait in the kernel's bounded backlog.

Used by the stream listeners and, through :mod:`norrvakt.sources.http_guard`, by the web server.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
from collections.abc import Awaitable, Callable

from norrvakt.sources.limits import ConnectionGuard, ConnectionSlot, QuietLog

log = logging.getLogger(__name__)

ACCEPT_BATCH = 64  # accepts per readiness event, so one flooded port cannot starve the loop
ACCEPT_RETRY_S = 1.0  # pause after the kernel refused accept() for want of descriptors
_OUT_OF_RESOURCES = {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM}

ProtocolFactory = Callable[[ConnectionSlot], asyncio.BaseProtocol]
# Asks whoever holds the caps (the node, for its workers) to admit a connection from a host:
# a release callback when admitted, None when refused.
AdmitElsewhere = Callable[[str], Awaitable[Callable[[], None] | None]]


async def bind(host: str, port: int, backlog: int) -> list[socket.socket]:
    """Listening sockets for ``host``:``port`` (one per address family, as create_server)."""
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(
        host or None, port, family=socket.AF_UNSPEC, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )
    sockets: list[socket.socket] = []
    seen: set[tuple[int, object]] = set()
    try:
        for family, type_, proto, _name, address in infos:
            if (family, address) in seen:
                continue
            seen.add((family, address))
            sock = socket.socket(family, type_, proto)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            try:
                sock.bind(address)
            except OSError as exc:
                raise OSError(exc.errno, f"cannot listen on {address!r}: {exc.strerror}") from None
            sock.listen(backlog)
            sock.setblocking(False)
    except BaseException:
        for sock in sockets:
            sock.close()
        raise
    return sockets


class GuardedServer(asyncio.AbstractServer):
    """Accepts on ``sockets``; each connection admitted by ``guard`` gets a protocol from
    ``factory(slot)``, which must ``slot.release()`` when the connection is lost."""

    def __init__(
        self, sockets: list[socket.socket], factory: ProtocolFactory, guard: ConnectionGuard
    ) -> None:
        self._loop = asyncio.get_running_loop()
        self._sockets = sockets
        self.factory = factory
        self.guard = guard
        self._reading = False
        self._closed = False
        self._held = False  # accepting is left to worker processes (see hold)
        # Processes that accept on the same sockets (the node's workers) each wait this long
        # before accepting, growing with the connections they hold, so an idle one gets the
        # next connection first: without it the kernel wakes them all and the first to run
        # wins, which is as often the busy one.
        self.defer: Callable[[], float] | None = None
        self._deferred = False
        self.accept_batch: Callable[[], int] | None = None  # (with defer) accepts per wake-up
        # Processes sharing the sockets share the caps too: the node admits each connection.
        self.admit_elsewhere: AdmitElsewhere | None = None
        self._retry: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.trouble = QuietLog(log, logging.ERROR, f"{guard.id}: accepting paused")

    @classmethod
    async def listen(
        cls, host: str, port: int, factory: ProtocolFactory, guard: ConnectionGuard, backlog: int = 100
    ) -> GuardedServer:
        return cls.on(await bind(host, port, backlog), factory, guard)

    @classmethod
    def on(
        cls,
        sockets: list[socket.socket],
        factory: ProtocolFactory,
        guard: ConnectionGuard,
        defer: Callable[[], float] | None = None,
        admit_elsewhere: AdmitElsewhere | None = None,
        accept_batch: Callable[[], int] | None = None,
    ) -> GuardedServer:
        """A server accepting on ``sockets``, already bound and listening."""
        server = cls(sockets, factory, guard)
        server.defer = defer
        server.admit_elsewhere = admit_elsewhere
        server.accept_batch = accept_batch
        server.resume_accepting()
        return server

    @property
    def sockets(self) -> list[socket.socket]:
        return list(self._sockets)

    # -- pausing -------------------------------------------------------------------------

    def pause_accepting(self) -> None:
        if self._reading:
            self._reading = False
            for sock in self._sockets:
                self._loop.remove_reader(sock.fileno())

    def hold(self, held: bool) -> None:
        """Stop accepting here while others (worker processes) accept on the same sockets;
        nothing else — not even the descriptor budget finding room — resumes it until released."""
        self._held = held
        if held:
            self.pause_accepting()
        else:
            self.resume_accepting()

    def resume_accepting(self) -> None:
        if self._closed or self._reading or self._held:
            return
        self._reading = True
        for sock in self._sockets:
            self._loop.add_reader(sock.fileno(), self._accept, sock)

    def _pause_for(self, seconds: float) -> None:
        self.pause_accepting()
        if self._retry is None:
            self._retry = self._loop.call_later(seconds, self._retry_now)

    def _retry_now(self) -> None:
        self._retry = None
        self.resume_accepting()

    # -- accepting -----------------------------------------------------------------------

    def _accept(self, sock: socket.socket) -> None:
        if self.defer is not None and not self._deferred:
            wait = self.defer()
            if wait > 0:
                self._deferred = True
                self._pause_for(wait)
                return
        self._deferred = False
        budget = self.guard.budget
        # Sharing the sockets, take few connections at a time (accept_batch), so that the next
        # waits for the deferral again and goes to whichever process holds fewer.
        batch = self.accept_batch() if self.accept_batch is not None else ACCEPT_BATCH
        for _ in range(batch):
            if not budget.has_room():
                # Every connection the descriptors allow is open: wait for one to close.
                self.trouble.note("", f"all {budget.total} connections the descriptors allow are in use")
                budget.wait_for_room(self)
                return
            try:
                conn, address = sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except ConnectionAbortedError:
                continue
            except OSError as exc:
                if exc.errno in _OUT_OF_RESOURCES:
                    why = f"accept() failed: {exc.strerror}; retrying in {ACCEPT_RETRY_S:.0f} s"
                else:  # unexpected: pause as well rather than retry at once in a loop
                    why = f"accept() failed: {exc}; retrying in {ACCEPT_RETRY_S:.0f} s"
                self.trouble.note("", why)
                self._pause_for(ACCEPT_RETRY_S)
                return
            host = str(address[0]) if isinstance(address, tuple) and address else "unknown"
            slot = self.guard.admit(host)
            if slot is None:
                conn.close()
                continue
            conn.setblocking(False)
            task = self._loop.create_task(self._connect(conn, slot, host))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _connect(self, conn: socket.socket, slot: ConnectionSlot, host: str) -> None:
        if self.admit_elsewhere is not None:
            try:
                release = await self.admit_elsewhere(host)
            except Exception as exc:  # the node is gone: nothing could be journaled anyway
                log.debug("%s: connection from %s not admitted: %s", self.guard.id, host, exc)
                release = None
            if release is None:
                slot.release()
                conn.close()
                return
            slot.also = release
        try:
            protocol = self.factory(slot)
            await self._loop.connect_accepted_socket(lambda: protocol, conn)
        except (OSError, RuntimeError) as exc:  # the peer went away before we got to it
            log.debug("%s: connection lost while being set up: %s", self.guard.id, exc)
            slot.release()
            conn.close()

    # -- asyncio.AbstractServer ----------------------------------------------------------

    def close(self) -> None:
        if self._closed:
            return
        self.pause_accepting()
        self._closed = True
        self.guard.budget.forget(self)
        if self._retry is not None:
            self._retry.cancel()
            self._retry = None
        for sock in self._sockets:
            sock.close()
        self.trouble.close()
        self.guard.close()

    async def wait_closed(self) -> None:
        if self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    def get_loop(self) -> asyncio.AbstractEventLoop:
        return self._loop

    def is_serving(self) -> bool:
        return not self._closed
