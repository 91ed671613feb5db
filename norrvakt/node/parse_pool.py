"""Parsing and receiving on every core: a pool of worker processes beside the node.

The node (the process that owns the journal, the store and the web console) hands each batch
of received records to the least busy worker and gets the parsed events back; it journals them
itself, in the order the batches were submitted (see :class:`~norrvakt.node.pipeline.Pipeline`).
Nothing is acknowledged before the node has journaled it, so a worker holds nothing that
matters: when one dies (kill -9, out of memory) its batches in flight are parsed in the node
process instead, the death is logged and counted, and a new worker is started after a pause.
While no worker is ready — at start, or when all died — the node parses in its own process, so
records are never refused for want of a worker.

The node also lends the workers its stream listeners (syslog TCP/TLS, RELP: :meth:`ParsePool.lend`).
It binds the listening sockets and passes them to every worker, which accepts, frames and
parses there and sends the events back to be journaled (``INGEST``); the node answers each batch
once it is durable, and only then does the worker acknowledge the sender. Every worker accepts
on the same sockets, so a connection goes to a worker that is free to accept it, and a second
sender gets the second core. The node accepts on them itself only while no worker does (at
start, or when every worker died), so a connection is never left unaccepted for want of one.
The HTTP ingest port (``server.ingest_port``, :mod:`norrvakt.node.ingest_port`) is lent the same
way: the workers serve the ingest routes on it and send what they read as ``INGEST`` frames.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import os
import socket
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from norrvakt.event import Event, RawRecord
from norrvakt.node import wire
from norrvakt.parsers.records import Tally
from norrvakt.sources.bulk_body import BulkPlan, parse_bulk_body, plan_of
from norrvakt.sources.hec_body import BadPart, bad_of, parse_hec_body
from norrvakt.sources.limits import ConnectionGuard, ConnectionSlot, descriptor_budget
from norrvakt.tasks import cancel_and_wait

log = logging.getLogger(__name__)

RESTART_FIRST_S = 1.0  # pause before a dead worker is replaced; doubled up to RESTART_MAX_S
RESTART_MAX_S = 30.0
IN_FLIGHT_RECORDS = 20_000  # per worker (its socket buffer in the node); beyond it the node parses here
RATE_WINDOW_S = 10.0
READY_WAIT_S = 30.0  # how long the start waits for the workers to accept before the node does
STOP_WAIT_S = 30.0  # how long a stop waits for the workers' connections to be durable

# What the node does with a worker's received events: add the worker's tally of them (None: a
# listener's own pipeline_error events) and journal them.
IngestSink = Callable[[Tally | None, list[Event]], "asyncio.Future[None]"]


class Lendable(Protocol):
    """A listener of the node its workers accept on: a stream listener
    (:class:`~norrvakt.sources.stream.StreamListener`) or the HTTP ingest port
    (:class:`~norrvakt.node.ingest_port.IngestPort`). A worker builds its copy from ``config``."""

    id: str
    config: Any
    guard: ConnectionGuard | None

    def sockets(self) -> list[socket.socket]: ...

    def lend(self, lent: bool) -> None: ...


def cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


@dataclass(frozen=True)
class ParsePoolConfig:
    """``workers`` processes (0: one per core), loading the operator's mapping directories."""

    workers: int = 0
    mapping_dirs: tuple[str, ...] = ()
    batch_timeout_s: float = 30.0
    enrich: str = ""  # EnrichConfig as JSON (norrvakt.enrich.ingest); "" is its defaults

    def build(self, parse_local: Callable[[Sequence[RawRecord]], list[Event]]) -> ParsePool:
        pool = ParsePool(self.workers or cores(), list(self.mapping_dirs), parse_local)
        pool.batch_timeout_s = self.batch_timeout_s
        pool.enrich = self.enrich
        return pool


@dataclass
class _Job:
    """One piece of work: ``kind`` and ``args`` as sent, ``size`` in records (for the queue
    depth), and ``local`` — the same work in the node, for when no worker can do it."""

    kind: str
    args: Any
    size: int
    local: Callable[[], Any]
    future: asyncio.Future[Any]
    sent_at: float = 0.0  # time.monotonic() when a worker got it


@dataclass
class WorkerStats:
    jobs: int = 0
    records: int = 0
    errors: int = 0  # pipeline_error events among what it parsed
    failed_batches: int = 0  # batches it could not parse or pack (parsed in the node instead)
    restarts: int = 0
    timeouts: int = 0  # killed for holding a batch past the deadline
    cpu_s: float = 0.0
    recent: deque[tuple[float, int]] = field(default_factory=deque)  # (monotonic, records)
    received: int = 0  # events its own listeners received
    received_recent: deque[tuple[float, int]] = field(default_factory=deque)
    refused: int = 0  # received events the journal could not take (their senders retry)


def _rate(recent: deque[tuple[float, int]], now: float, add: int = 0) -> float:
    """Events per second over the last RATE_WINDOW_S (after adding ``add`` now)."""
    if add:
        recent.append((now, add))
    while recent and recent[0][0] < now - RATE_WINDOW_S:
        recent.popleft()
    return sum(n for _, n in recent) / RATE_WINDOW_S


class ParseWorker:
    """One worker process and the node's end of its socket."""

    def __init__(self, index: int, pool: ParsePool) -> None:
        self.index = index
        self.pool = pool
        self.proc: subprocess.Popen[bytes] | None = None
        self.pid = 0
        self.ready = False
        self.receiving = False  # its copies of the lent listeners accept
        self.ingest_waiting = 0  # its received batches not yet durable
        self.ping_sent_at: float | None = None  # monotonic time of the unanswered ping
        self.slots: dict[int, ConnectionSlot] = {}  # its connections, admitted under the node's caps
        self._stopped = asyncio.Event()  # it answered STOP_LISTENING
        self.stats = WorkerStats()
        self.in_flight: dict[int, _Job] = {}
        self.in_flight_records = 0
        self._writer: asyncio.StreamWriter | None = None
        self._task: asyncio.Task[None] | None = None
        self._pause = RESTART_FIRST_S
        self.stopping = False

    async def start(self) -> None:
        ours, theirs = socket.socketpair()
        lent = self.pool.listen_specs()
        try:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "norrvakt.node.parse_worker",
                    "--fd",
                    str(theirs.fileno()),
                    "--mappings",
                    json.dumps(self.pool.mapping_dirs),
                    "--enrich",
                    self.pool.enrich,
                    "--index",
                    str(self.index),
                ],
                pass_fds=[theirs.fileno(), *(fd for _, fds, _ in lent for fd in fds)],
                stdin=subprocess.DEVNULL,
            )
        finally:
            theirs.close()
        self.pid = self.proc.pid
        self._stopped.clear()
        self.ping_sent_at = None
        reader, self._writer = await asyncio.open_unix_connection(sock=ours)
        if lent:
            self._writer.write(wire.frame(wire.LISTEN, 0, lent))
        self._task = asyncio.create_task(self._read_loop(reader), name=f"parse-worker-{self.index}")

    def send(self, job_id: int, job: _Job) -> None:
        assert self._writer is not None
        job.sent_at = time.monotonic()
        self.in_flight[job_id] = job
        self.in_flight_records += job.size
        self._writer.write(wire.frame(job.kind, job_id, job.args))

    def stuck_for(self, now: float) -> float:
        """How long its oldest batch has been waiting (0 when none is)."""
        oldest = min((j.sent_at for j in self.in_flight.values()), default=now)
        return now - oldest

    def silent_for(self, now: float) -> float:
        """How long a receiving worker has left the node's ping unanswered: a worker that is
        alive but stuck holds its connections without a batch the node could time out."""
        if not self.receiving or self._writer is None or self._writer.is_closing():
            return 0.0
        if self.ping_sent_at is None:
            self.ping_sent_at = now
            self._writer.write(wire.frame(wire.PING, 0, []))
        return now - self.ping_sent_at

    def kill(self, why: str) -> None:
        """A worker that holds a batch too long is killed; its death is then handled like any
        other (its batches parsed in the node, a new worker started)."""
        if self.proc is not None and self.proc.poll() is None:
            log.error("parse worker %d (pid %d) %s: killing it", self.index, self.pid, why)
            self.stats.timeouts += 1
            self.proc.kill()

    async def _read_loop(self, reader: asyncio.StreamReader) -> None:
        why = "its connection closed"
        try:
            while True:
                header = await reader.readexactly(wire.HEADER.size)
                kind, job_id, body = wire.unframe(await reader.readexactly(wire.frame_length(header)))
                if kind == wire.READY:
                    self.ready = True
                    self._pause = RESTART_FIRST_S
                    # a restart is news (its death was logged); the first start is not
                    level = logging.INFO if self.stats.restarts else logging.DEBUG
                    log.log(level, "parse worker %d ready (pid %d)", self.index, self.pid)
                    continue
                if kind == wire.INGEST:
                    self._ingest(job_id, body)
                    continue
                if kind == wire.TRANSPORT:
                    self.pool.transport_error(str(body[0]), str(body[1]))
                    continue
                if kind == wire.LISTENING:
                    self.receiving = True
                    self.pool.receivers_changed()
                    continue
                if kind == wire.STOPPED:
                    self._stopped.set()
                    continue
                if kind == wire.PONG:
                    self.ping_sent_at = None
                    continue
                if kind == wire.ADMIT:
                    self._admit(job_id, str(body[0]), str(body[1]))
                    continue
                if kind == wire.RELEASE:
                    if (slot := self.slots.pop(job_id, None)) is not None:
                        slot.release()
                    continue
                job = self.in_flight.pop(job_id, None)
                if job is None:
                    continue
                self.in_flight_records -= job.size
                if kind == wire.PARSED:
                    rows, cpu = body
                    events = [wire.event_of(r) for r in rows]
                    self._done(job, events, events, float(cpu))
                elif kind == wire.HEC_PARSED:
                    rows, bad, cpu = body
                    events = [wire.event_of(r) for r in rows]
                    self._done(job, (events, [bad_of(b) for b in bad]), events, float(cpu))
                elif kind == wire.BULK_PARSED:
                    rows, plan, cpu = body
                    events = [wire.event_of(r) for r in rows]
                    self._done(job, (plan_of(plan), events), events, float(cpu))
                else:
                    self.stats.failed_batches += 1
                    log.error(
                        "parse worker %d could not parse a batch of %d record(s) (%s); parsed in the node",
                        self.index,
                        job.size,
                        body[0] if body else "no reason",
                    )
                    self.pool.parse_here(job)
        except (asyncio.IncompleteReadError, ConnectionError, wire.FrameError, ValueError) as exc:
            if not isinstance(exc, asyncio.IncompleteReadError):
                why = f"{type(exc).__name__}: {exc}"
        except asyncio.CancelledError:
            raise
        await self._died(why)

    def _admit(self, job_id: int, listener_id: str, host: str) -> None:
        """A worker accepted a connection: the listener's caps (and their refusals, logged and
        counted) are the node's, so they hold for all workers together."""
        slot = self.pool.admit(listener_id, host)
        if slot is not None:
            self.slots[job_id] = slot
        if self._writer is not None and not self._writer.is_closing():
            self._writer.write(wire.frame(wire.ADMITTED, job_id, [slot is not None]))

    def _ingest(self, job_id: int, body: Any) -> None:
        """Events the worker's own listeners received: journal them (in arrival order) and
        answer when they are durable."""
        counts, errors, rows, cpu = body
        events = [wire.event_of(r) for r in rows]
        st = self.stats
        st.received += len(events)
        st.cpu_s = float(cpu)
        st.errors += int(errors)
        _rate(st.received_recent, time.monotonic(), len(events))
        self.ingest_waiting += 1
        fut = self.pool.ingest(counts, events)
        fut.add_done_callback(functools.partial(self._answer, job_id, len(events)))

    def _answer(self, job_id: int, size: int, fut: asyncio.Future[None]) -> None:
        self.ingest_waiting -= 1
        if fut.cancelled():
            reply = wire.frame(wire.REFUSED, job_id, ["the node is stopping"])
        elif (exc := fut.exception()) is not None:
            self.stats.refused += size
            reply = wire.frame(wire.REFUSED, job_id, [str(exc)])
        else:
            reply = wire.frame(wire.COMMITTED, job_id, [])
        writer = self._writer
        if writer is not None and not writer.is_closing():
            writer.write(reply)

    async def stop_receiving(self) -> None:
        """Ask the worker to stop accepting and wait until its connections' records are durable."""
        if not self.receiving or self._writer is None or self._writer.is_closing():
            return
        self._writer.write(wire.frame(wire.STOP_LISTENING, 0, []))
        try:
            await asyncio.wait_for(self._stopped.wait(), STOP_WAIT_S)
        except TimeoutError:
            log.error(
                "worker %d (pid %d) did not finish its connections within %.0f s of the stop; their "
                "unacknowledged records are resent by their senders",
                self.index,
                self.pid,
                STOP_WAIT_S,
            )
        self.receiving = False

    def _done(self, job: _Job, result: Any, events: list[Event], cpu: float) -> None:
        st = self.stats
        st.jobs += 1
        st.records += len(events)
        st.cpu_s = cpu
        st.errors += sum(1 for e in events if e.ecs.get("event.kind") == "pipeline_error")
        _rate(st.recent, time.monotonic(), len(events))
        if not job.future.done():
            job.future.set_result(result)

    async def _died(self, why: str) -> None:
        self.ready = False
        slots, self.slots = self.slots, {}
        for slot in slots.values():  # its connections died with it
            slot.release()
        if self.receiving:
            self.receiving = False
            self.pool.receivers_changed()
        jobs = list(self.in_flight.values())
        self.in_flight.clear()
        self.in_flight_records = 0
        if self._writer is not None:
            self._writer.close()
        code = await asyncio.to_thread(self._reap)
        for job in jobs:  # nothing of them was journaled: parse them here, in order
            self.pool.parse_here(job)
        if self.stopping:
            return
        self.stats.restarts += 1
        log.warning(
            "parse worker %d (pid %d) exited (%s; exit code %s); its %d batch(es) in flight were parsed "
            "in the node (its own connections' unacknowledged records are resent by their senders); "
            "a new worker starts in %.0f s",
            self.index,
            self.pid,
            why,
            code,
            len(jobs),
            self._pause,
        )
        await asyncio.sleep(self._pause)
        self._pause = min(RESTART_MAX_S, self._pause * 2)
        if not self.stopping:
            try:
                await self.start()
            except OSError as exc:
                log.error("parse worker %d could not be started: %s", self.index, exc)

    def _reap(self) -> int | None:
        if self.proc is None:
            return None
        try:
            return self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()

    async def stop(self) -> None:
        self.stopping = True
        if self._writer is not None:
            self._writer.close()  # the worker sees end of file and exits
        await cancel_and_wait(self._task)
        await asyncio.to_thread(self._reap)
        for job in list(self.in_flight.values()):
            self.pool.parse_here(job)
        self.in_flight.clear()

    def as_dict(self) -> dict[str, Any]:
        st = self.stats
        now = time.monotonic()
        return {
            "index": self.index,
            "pid": self.pid,
            "state": "ready" if self.ready else "starting",
            "receiving": self.receiving,
            "events_per_s": round(_rate(st.recent, now), 1),
            "received_events": st.received,
            "received_per_s": round(_rate(st.received_recent, now), 1),
            "received_batches_waiting": self.ingest_waiting,
            "received_refused": st.refused,
            "queue_records": self.in_flight_records,
            "queue_batches": len(self.in_flight),
            "batches": st.jobs,
            "events": st.records,
            "pipeline_errors": st.errors,
            "failed_batches": st.failed_batches,
            "restarts": st.restarts,
            "timeouts": st.timeouts,
            "cpu_s": round(st.cpu_s, 2),
        }


class ParsePool:
    def __init__(
        self, size: int, mapping_dirs: list[str], parse_local: Callable[[Sequence[RawRecord]], list[Event]]
    ) -> None:
        self.size = size
        self.mapping_dirs = mapping_dirs
        self.enrich = ""  # what the workers enrich events with (EnrichConfig JSON)
        self.parse_local = parse_local
        self.workers = [ParseWorker(i, self) for i in range(size)]
        self.parsed_here = 0  # records parsed in the node: no worker ready, all busy, or one died
        self._next_job = 0
        # Batches are journaled in submission order, so a worker that is alive but stuck (stopped,
        # or a parse that never ends) would hold up every batch behind its own: past this
        # deadline it is killed and its batches are parsed in the node.
        self.batch_timeout_s = 30.0
        self._watchdog: asyncio.Task[None] | None = None
        self.lent: Sequence[Lendable] = []  # the node's listeners its workers accept on
        self.ingest: IngestSink = _no_sink
        self.transport_error: Callable[[str, str], None] = lambda _source, _reason: None
        self._receiving = asyncio.Event()

    def lend(
        self,
        listeners: Sequence[Lendable],
        ingest: IngestSink,
        transport_error: Callable[[str, str], None],
    ) -> None:
        """Have the workers accept on ``listeners`` (bound and accepting in the node), handing
        what they receive to ``ingest``. Call before :meth:`start`."""
        self.lent = listeners
        self.ingest = ingest
        self.transport_error = transport_error

    def listen_specs(self) -> list[Any]:
        """What a worker needs to run a copy of each lent listener: its config, the descriptors
        of its listening sockets and the caps the node planned for it."""
        budget = descriptor_budget()
        specs = []
        for listener in self.lent:
            caps = budget.caps.get(listener.id)
            # (the caps are the node's — every connection a worker accepts is admitted by the
            # node — and the worker applies them to itself too, against its own descriptors)
            cap = [caps.max_connections, caps.max_per_peer] if caps else [0, 0]
            specs.append([listener.config, [s.fileno() for s in listener.sockets()], cap])
        return specs

    def admit(self, listener_id: str, host: str) -> ConnectionSlot | None:
        """A place under the caps of the node's listener ``listener_id`` for a connection a
        worker accepted from ``host`` (None: refused, and logged and counted as in the node)."""
        listener = next((x for x in self.lent if x.id == listener_id), None)
        if listener is None or listener.guard is None:
            return None
        return listener.guard.admit(host)

    def receivers_changed(self) -> None:
        """A worker began or stopped accepting: the node accepts only while none does."""
        receiving = any(w.receiving for w in self.workers)
        if receiving:
            self._receiving.set()
        else:
            self._receiving.clear()
        for listener in self.lent:
            listener.lend(receiving)
        if self.lent and not receiving and not all(w.stopping for w in self.workers):
            log.warning("no worker accepts on the stream listeners: the node accepts on them itself")

    async def wait_receiving(self, timeout: float = READY_WAIT_S) -> bool:
        """Wait until a worker accepts on the lent listeners (the node accepts meanwhile)."""
        if not self.lent:
            return False
        try:
            await asyncio.wait_for(self._receiving.wait(), timeout)
        except TimeoutError:
            log.error(
                "no worker accepted on the stream listeners within %.0f s: the node accepts on them", timeout
            )
            return False
        return True

    async def stop_receiving(self) -> None:
        """First step of a stop: the workers stop accepting and finish their connections."""
        await asyncio.gather(*(w.stop_receiving() for w in self.workers))

    async def start(self) -> None:
        for w in self.workers:
            await w.start()
        self._watchdog = asyncio.create_task(self._watch(), name="parse-watchdog")

    async def stop(self) -> None:
        await cancel_and_wait(self._watchdog)
        for w in self.workers:
            w.stopping = True
        for w in self.workers:
            await w.stop()

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(min(1.0, self.batch_timeout_s / 4))
            now = time.monotonic()
            for w in self.workers:
                waited = w.stuck_for(now)
                silent = w.silent_for(now)
                if waited > self.batch_timeout_s:
                    w.kill(f"has held a batch for {waited:.1f} s (server.worker_batch_timeout_s)")
                elif silent > self.batch_timeout_s:
                    w.kill(
                        f"has not answered for {silent:.1f} s, holding its connections "
                        "(server.worker_batch_timeout_s)"
                    )

    def parse(self, records: Sequence[RawRecord]) -> asyncio.Future[list[Event]]:
        """The events of ``records``, parsed by the least busy worker (or here)."""
        rows = [wire.record_row(r) for r in records]
        return self._submit(wire.PARSE, rows, len(records), lambda: self.parse_local(records))

    def parse_hec(
        self, body: bytes, max_event_bytes: int, template: RawRecord
    ) -> asyncio.Future[tuple[list[Event], list[BadPart]]]:
        """A HEC body split, checked and parsed by a worker (or here): its events in body
        order and its bad parts (see :func:`norrvakt.sources.hec_body.parse_hec_body`)."""

        def here() -> tuple[list[Event], list[BadPart]]:
            _, events, bad = parse_hec_body(body, max_event_bytes, template)
            return events, bad

        size = max(1, body.count(b'"event"'))  # (an estimate, for the queue depth)
        args = [body, max_event_bytes, wire.record_row(template)]
        return self._submit(wire.HEC, args, size, here)

    def parse_bulk(
        self, body: bytes, max_event_bytes: int, index: str | None, template: RawRecord
    ) -> asyncio.Future[tuple[BulkPlan, list[Event]]]:
        """A ``_bulk`` body's actions read and its documents parsed by a worker (or here); see
        :func:`norrvakt.sources.bulk_body.parse_bulk_body`."""
        size = max(1, body.count(b"\n") // 2)  # (an estimate, for the queue depth)
        args = [body, max_event_bytes, index, wire.record_row(template)]
        return self._submit(
            wire.BULK, args, size, lambda: parse_bulk_body(body, max_event_bytes, index, template)
        )

    def _submit(self, kind: str, args: Any, size: int, local: Callable[[], Any]) -> asyncio.Future[Any]:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        job = _Job(kind, args, size, local, future)
        ready = [w for w in self.workers if w.ready and w.in_flight_records < IN_FLIGHT_RECORDS]
        if not ready or not size:
            self.parse_here(job)
            return future
        worker = min(ready, key=lambda w: w.in_flight_records)
        self._next_job += 1
        worker.send(self._next_job, job)
        return future

    def parse_here(self, job: _Job) -> None:
        if job.future.done():
            return
        self.parsed_here += job.size
        job.future.set_result(job.local())

    def as_dict(self) -> dict[str, Any]:
        return {
            "size": self.size,
            "parsed_in_node": self.parsed_here,
            "receiving_in_workers": [listener.id for listener in self.lent],
            "workers": [w.as_dict() for w in self.workers],
        }


def _no_sink(_counts: Tally | None, _events: list[Event]) -> asyncio.Future[None]:
    raise RuntimeError("a worker sent received events, but the node lent it no listener")
