"""Parsing on every core: a pool of parse worker processes beside the node.

The node (the process that owns the journal, the store and the web console) hands each batch
of received records to the least busy worker and gets the parsed events back; it journals them
itself, in the order the batches were submitted (see :class:`~norrvakt.node.pipeline.Pipeline`).
Nothing is acknowledged before the node has journaled it, so a worker holds nothing that
matters: when one dies (kill -9, out of memory) its batches in flight are parsed in the node
process instead, the death is logged and counted, and a new worker is started after a pause.
While no worker is ready — at start, or when all died — the node parses in its own process, so
records are never refused for want of a worker.
"""

from __future__ import annotations

import asyncio
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
from typing import Any

from norrvakt.event import Event, RawRecord
from norrvakt.node import wire
from norrvakt.sources.hec_body import BadPart, bad_of, parse_hec_body
from norrvakt.tasks import cancel_and_wait

log = logging.getLogger(__name__)

RESTART_FIRST_S = 1.0  # pause before a dead worker is replaced; doubled up to RESTART_MAX_S
RESTART_MAX_S = 30.0
IN_FLIGHT_RECORDS = 20_000  # per worker (its socket buffer in the node); beyond it the node parses here
RATE_WINDOW_S = 10.0


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

    def build(self, parse_local: Callable[[Sequence[RawRecord]], list[Event]]) -> ParsePool:
        pool = ParsePool(self.workers or cores(), list(self.mapping_dirs), parse_local)
        pool.batch_timeout_s = self.batch_timeout_s
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


class ParseWorker:
    """One worker process and the node's end of its socket."""

    def __init__(self, index: int, pool: ParsePool) -> None:
        self.index = index
        self.pool = pool
        self.proc: subprocess.Popen[bytes] | None = None
        self.pid = 0
        self.ready = False
        self.stats = WorkerStats()
        self.in_flight: dict[int, _Job] = {}
        self.in_flight_records = 0
        self._writer: asyncio.StreamWriter | None = None
        self._task: asyncio.Task[None] | None = None
        self._pause = RESTART_FIRST_S
        self._stopping = False

    async def start(self) -> None:
        ours, theirs = socket.socketpair()
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
                ],
                pass_fds=[theirs.fileno()],
                stdin=subprocess.DEVNULL,
            )
        finally:
            theirs.close()
        self.pid = self.proc.pid
        reader, self._writer = await asyncio.open_unix_connection(sock=ours)
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

    def _done(self, job: _Job, result: Any, events: list[Event], cpu: float) -> None:
        st = self.stats
        st.jobs += 1
        st.records += len(events)
        st.cpu_s = cpu
        st.errors += sum(1 for e in events if e.ecs.get("event.kind") == "pipeline_error")
        now = time.monotonic()
        st.recent.append((now, len(events)))
        while st.recent and st.recent[0][0] < now - RATE_WINDOW_S:
            st.recent.popleft()
        if not job.future.done():
            job.future.set_result(result)

    async def _died(self, why: str) -> None:
        self.ready = False
        jobs = list(self.in_flight.values())
        self.in_flight.clear()
        self.in_flight_records = 0
        if self._writer is not None:
            self._writer.close()
        code = await asyncio.to_thread(self._reap)
        for job in jobs:  # nothing of them was journaled: parse them here, in order
            self.pool.parse_here(job)
        if self._stopping:
            return
        self.stats.restarts += 1
        log.warning(
            "parse worker %d (pid %d) exited (%s; exit code %s); its %d batch(es) in flight were parsed "
            "in the node; a new worker starts in %.0f s",
            self.index,
            self.pid,
            why,
            code,
            len(jobs),
            self._pause,
        )
        await asyncio.sleep(self._pause)
        self._pause = min(RESTART_MAX_S, self._pause * 2)
        if not self._stopping:
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
        self._stopping = True
        if self._writer is not None:
            self._writer.close()  # the worker sees end of file and exits
        await cancel_and_wait(self._task)
        await asyncio.to_thread(self._reap)
        for job in list(self.in_flight.values()):
            self.pool.parse_here(job)
        self.in_flight.clear()

    def as_dict(self) -> dict[str, Any]:
        st = self.stats
        return {
            "index": self.index,
            "pid": self.pid,
            "state": "ready" if self.ready else "starting",
            "events_per_s": round(sum(n for _, n in st.recent) / RATE_WINDOW_S, 1),
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
        self.parse_local = parse_local
        self.workers = [ParseWorker(i, self) for i in range(size)]
        self.parsed_here = 0  # records parsed in the node: no worker ready, all busy, or one died
        self._next_job = 0
        # Batches are journaled in submission order, so a worker that is alive but stuck (stopped,
        # or a parse that never ends) would hold up every batch behind its own: past this
        # deadline it is killed and its batches are parsed in the node.
        self.batch_timeout_s = 30.0
        self._watchdog: asyncio.Task[None] | None = None

    async def start(self) -> None:
        for w in self.workers:
            await w.start()
        self._watchdog = asyncio.create_task(self._watch(), name="parse-watchdog")

    async def stop(self) -> None:
        await cancel_and_wait(self._watchdog)
        for w in self.workers:
            await w.stop()

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(min(1.0, self.batch_timeout_s / 4))
            now = time.monotonic()
            for w in self.workers:
                waited = w.stuck_for(now)
                if waited > self.batch_timeout_s:
                    w.kill(f"has held a batch for {waited:.1f} s (server.worker_batch_timeout_s)")

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
            "workers": [w.as_dict() for w in self.workers],
        }
