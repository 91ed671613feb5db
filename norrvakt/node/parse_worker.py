"""A worker process: parses batches for the node, and receives on listeners the node lends it.

Started by :class:`~norrvakt.node.parse_pool.ParsePool` as ``python -m norrvakt.node.parse_worker``
with one end of a socket pair (and, when the node lends its stream listeners, their listening
sockets). Two kinds of work arrive on that socket:

- ``PARSE`` / ``HEC``: records (or a HEC body) the node received; the events go back. The node
  keeps every batch until its events come back and journals them itself, so a worker killed
  mid-batch costs only that batch's parse, which the node then does in its own process.
- ``LISTEN``: stream listeners (syslog TCP/TLS, RELP) and the HTTP ingest port
  (``server.ingest_port``, :mod:`norrvakt.node.ingest_port`) to run on the node's listening
  sockets. Their connections are read, framed (or their requests read) and parsed here; the
  events go to the node, which journals them and answers when they are durable
  (:class:`~norrvakt.node.journal_link.JournalLink`); only then does the listener acknowledge
  its sender. A worker killed mid-stream loses its
  connections, never an acknowledged record: the senders reconnect — to another worker, as the
  listening sockets stay open in the node — and resend what was not acknowledged.

The worker exits when the node closes its end (also when the node dies: the kernel closes it),
and ignores Ctrl-C — the node stops it.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import logging
import os
import signal
import socket
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from norrvakt.node import wire

if TYPE_CHECKING:
    from norrvakt.node.ingest_port import IngestPort
    from norrvakt.sources.stream import StreamListener

log = logging.getLogger("norrvakt.node.worker")

ACCEPT_DELAY_PER_CONNECTION_S = 0.003
ACCEPT_DELAY_MAX_S = 0.01  # short: a burst of hundreds of connections must still be taken at once
ACCEPT_ONE_BY_ONE_BELOW = 8  # connections held; from there on a wake-up takes a batch


class Worker:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        from norrvakt.node.journal_link import JournalLink

        self.reader = reader
        self.writer = writer
        self.link = JournalLink(writer)
        self.listeners: list[StreamListener | IngestPort] = []
        self._stopping: asyncio.Task[None] | None = None

    async def serve(self) -> None:
        from norrvakt.parsers.records import parse_one
        from norrvakt.sources.bulk_body import parse_bulk_body, plan_row
        from norrvakt.sources.hec_body import bad_row, parse_hec_body

        self.writer.write(wire.frame(wire.READY, 0, [os.getpid()]))
        while True:
            header = await self.reader.readexactly(wire.HEADER.size)
            kind, job, args = wire.unframe(await self.reader.readexactly(wire.frame_length(header)))
            if kind == wire.PING:
                self.writer.write(wire.frame(wire.PONG, 0, []))
                continue
            if kind == wire.ADMITTED:
                self.link.admitted(job, bool(args[0]))
                continue
            if kind == wire.COMMITTED:
                self.link.committed(job)
                continue
            if kind == wire.REFUSED:
                self.link.refused(job, str(args[0]))
                continue
            if kind == wire.LISTEN:
                await self._listen(args)
                continue
            if kind == wire.STOP_LISTENING:
                if self._stopping is None:
                    self._stopping = asyncio.create_task(self._stop_listening())
                continue
            try:  # (parsing blocks this loop for a batch: tens of milliseconds)
                if kind == wire.PARSE:
                    events = [parse_one(wire.record_of(r)) for r in args]
                    reply = wire.frame(
                        wire.PARSED, job, [[wire.event_row(e) for e in events], time.process_time()]
                    )
                elif kind == wire.HEC:
                    data, limit, template = args
                    _, events, bad = parse_hec_body(data, int(limit), wire.record_of(template))
                    rows = [wire.event_row(e) for e in events]
                    reply = wire.frame(
                        wire.HEC_PARSED, job, [rows, [bad_row(b) for b in bad], time.process_time()]
                    )
                elif kind == wire.BULK:
                    data, limit, index, template = args
                    plan, events = parse_bulk_body(data, int(limit), index, wire.record_of(template))
                    rows = [wire.event_row(e) for e in events]
                    reply = wire.frame(wire.BULK_PARSED, job, [rows, plan_row(plan), time.process_time()])
                else:
                    reply = wire.frame(wire.FAILED, job, [f"unknown frame kind {kind!r}"])
            except Exception as exc:  # never lose a batch here: the node does it itself
                reply = wire.frame(wire.FAILED, job, [f"{type(exc).__name__}: {exc}"])
            self.writer.write(reply)

    async def _listen(self, specs: list[Any]) -> None:
        """Run a copy of each lent listener on the node's sockets."""
        from norrvakt.sources.limits import ListenerCaps, plan_worker_connections

        plan_worker_connections({cfg.id: ListenerCaps(*caps) for cfg, _fds, caps in specs})
        for cfg, fds, _caps in specs:
            sockets = [socket.socket(fileno=fd) for fd in fds]
            for sock in sockets:
                sock.setblocking(False)
            listener = cfg.build()
            admit = functools.partial(self.link.admit, cfg.id)
            await listener.adopt(
                self.link,
                sockets,
                defer=self.accept_delay,
                admit_elsewhere=admit,
                accept_batch=self.accept_batch,
            )
            self.listeners.append(listener)
        self.writer.write(wire.frame(wire.LISTENING, 0, [len(self.listeners)]))

    def accept_delay(self) -> float:
        """How long to wait before accepting: the more connections this worker holds, the
        longer, so the next one goes to a worker with fewer (3 ms each, at most 10 ms)."""
        # (the guards count a connection from its accept on, also while the node admits it)
        held: int = sum(listener.guard.open for listener in self.listeners if listener.guard is not None)
        return min(ACCEPT_DELAY_MAX_S, ACCEPT_DELAY_PER_CONNECTION_S * held)

    def accept_batch(self) -> int:
        """Connections one wake-up accepts: one at a time while this worker holds few (each
        waits for the deferral, which steers it to the worker with fewer), a batch once it holds
        many (a burst of reconnects after a restart is taken at full speed)."""
        held = sum(listener.guard.open for listener in self.listeners if listener.guard is not None)
        return 1 if held < ACCEPT_ONE_BY_ONE_BELOW else 16

    async def _stop_listening(self) -> None:
        """The node stops: accept nothing more, and answer once every connection's records are
        durable (the node journals them meanwhile)."""
        for listener in self.listeners:
            await listener.stop()
        self.listeners = []
        self.writer.write(wire.frame(wire.STOPPED, 0, []))

    def lost(self, why: str) -> None:
        self.link.lost(why)
        for listener in self.listeners:
            for conn in list(listener.connections):
                if conn.transport is not None:
                    conn.transport.abort()


async def run(sock: socket.socket, mapping_dirs: list[str], enrich: str = "") -> None:
    from norrvakt.enrich import ingest as enrich_ingest
    from norrvakt.parsers.mapped import sources as mapped_sources

    # problems are not reported here: the node logged them when it loaded the same directories
    mapped_sources.use([Path(d) for d in mapping_dirs])
    enrich_ingest.use(enrich_ingest.EnrichConfig.from_json(enrich))  # the node's setting, checked there
    reader, writer = await asyncio.open_unix_connection(sock=sock)
    worker = Worker(reader, writer)
    why = "its connection closed"
    try:
        await worker.serve()
    except (asyncio.IncompleteReadError, ConnectionError) as exc:
        if not isinstance(exc, asyncio.IncompleteReadError):
            why = f"{type(exc).__name__}: {exc}"
    except wire.FrameError as exc:
        why = str(exc)
    # The node is gone (or stopped us): what is waiting on it cannot become durable.
    worker.lost(f"the node's journal is unreachable ({why})")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="norrvakt-parse-worker")
    ap.add_argument("--fd", type=int, required=True, help="this worker's end of the socket pair")
    ap.add_argument("--mappings", default="[]", help="JSON list of the operator's mapping directories")
    ap.add_argument("--enrich", default="", help="the node's enrichment setting (EnrichConfig as JSON)")
    ap.add_argument("--index", type=int, default=0, help="the worker's number (for its log lines)")
    args = ap.parse_args(argv)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group; the node stops us
    logging.basicConfig(
        level=logging.INFO,
        format=f"%(asctime)s %(levelname)s [worker {args.index}] %(name)s: %(message)s",
    )
    sock = socket.socket(fileno=args.fd)
    try:
        asyncio.run(run(sock, json.loads(args.mappings), args.enrich))
    except (BrokenPipeError, ConnectionResetError):
        pass  # the node went away
    finally:
        sock.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
