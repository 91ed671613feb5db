"""Worker processes for ``norrvakt hunt``: read, parse and match pieces, hand back what hit.

    for number, message in run_pieces(engine, pieces, workers=2, tenant="hunt"):
        ...  # Batch..., then End, for piece 0, then for piece 1, ... (piece order, always)

What a worker does is the part of the hunt that keeps no state between events and costs most:
reading a piece (:mod:`norrvakt.detect.hunt_split`), parsing each record and matching it
against the rules and intel lists (:meth:`DetectionEngine.match`). What needs the whole stream
in order, correlation windows and the detections' output, stays in the parent, which gets only
the events that met a rule or an indicator (with the rules' indexes), the problems and counts.

The workers are forked from the parent after it loaded the rules, so each has the compiled
rule set without compiling or unpickling it again. A free worker takes the next piece (a
shared counter: pieces are taken in order) and sends its messages on a pipe of its own; each
worker may have at most :data:`CREDITS` messages the parent has not merged yet (a semaphore
per worker), so a worker that runs ahead of the piece the parent is merging waits, and memory
stays bounded whatever the size of the corpus. A worker ignores Ctrl-C; the parent stops the
workers when it stops; a worker that dies is an end of file on its pipe (or an exit code) and
fails the hunt; a worker whose parent is gone stops by itself.
"""

from __future__ import annotations

import gc
import multiprocessing
import os
import signal
import sys
import traceback
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from multiprocessing.context import ForkProcess
from typing import Any, cast

from norrvakt.detect.detection import DetectionEngine
from norrvakt.detect.hunt_split import UNKNOWN_ID_PEER, Deferred, EvtxTally, Piece, line_number, read_piece
from norrvakt.detect.intel import IntelHit
from norrvakt.event import KIND_PIPELINE_ERROR, Event
from norrvakt.parsers import parse_record

# Messages a worker may have on the way before the parent takes them, and when a batch is sent:
# together they bound what is in flight per worker (a hit event is a few KB pickled: at most
# ~16 MB if every event hits). Enough that a worker can finish a whole piece (at most
# hunt_split.MAX_PIECE) of a typical corpus while the parent still merges the one before.
CREDITS = 64
BATCH_EVENTS = 2048  # events read
BATCH_HITS = 64  # events that hit
BATCH_PROBLEMS = 256
# A piece's parse errors beyond this many problems are sent as a count only: the summary keeps
# the text of parse errors only while it holds fewer than 1000 problems (as the one-process hunt).
PROBLEM_TEXTS = 1000
_POLL_S = 0.5


class HuntWorkerError(RuntimeError):
    """A worker process failed (an exception, or it was killed): the hunt cannot be complete."""


@dataclass(slots=True)
class Hit:
    """An event that met a rule or an indicator, with what :meth:`DetectionEngine.match` said."""

    event: Event
    ordinal: int  # 1-based among the piece's events (parsed records)
    hits: list[int]
    found: list[IntelHit]
    advance: tuple[tuple[str, int], ...]  # (tenant, newest ts) of the events since the last Hit


# A problem: a read problem's text, ("parse", text or None), ("oserror", text), or a Deferred.
Problem = str | tuple[str, str | None] | Deferred


@dataclass(slots=True)
class Batch:
    events: int = 0  # parsed events (pipeline errors are not events)
    hits: list[Hit] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    advance: tuple[tuple[str, int], ...] = ()  # newest ts of the events after the last Hit
    progress: int = 0  # reader's progress units so far (EVTX ranges: from the range's start)


@dataclass(slots=True)
class End:
    """A piece is done. ``tally``: what an EVTX piece read; ``lines``: whether its last event
    was numbered by line (None: no event)."""

    events: int
    tally: EvtxTally
    lines: bool | None


def default_workers() -> int:
    """One per core this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def run_pieces(
    engine: DetectionEngine, pieces: list[Piece], workers: int, tenant: str
) -> Iterator[tuple[int, Batch | End]]:
    """Every piece's messages, in piece order (index into ``pieces``, message)."""
    pool = _Pool(engine, pieces, min(workers, len(pieces)), tenant)
    try:
        for number in range(len(pieces)):
            while True:
                message = pool.take(number)
                yield number, message
                if isinstance(message, End):
                    break
    finally:
        pool.stop()


class _Pool:
    def __init__(self, engine: DetectionEngine, pieces: list[Piece], workers: int, tenant: str) -> None:
        ctx = multiprocessing.get_context("fork")
        self.next_piece: Any = ctx.Value("q", 0)  # the next piece to take, under its lock
        self.credits = [ctx.Semaphore(CREDITS) for _ in range(workers)]
        self.waiting: dict[int, deque[tuple[int, Batch | End]]] = {}  # piece -> (worker, message)
        self.readers: dict[Connection, int] = {}  # a pipe per worker: its death is an EOF
        self.processes: list[ForkProcess] = []
        # Whatever is buffered in the parent's std streams would be written again by a child.
        sys.stdout.flush()
        sys.stderr.flush()
        gc.freeze()  # the children's collector leaves the inherited objects (and their pages) alone
        parent = os.getpid()
        try:
            for wid in range(workers):
                reader, writer = ctx.Pipe(duplex=False)
                readers = [*self.readers, reader]  # the child closes its copies: EPIPE if we die
                pipe = (writer, readers)
                process = ctx.Process(
                    target=_work,
                    args=(wid, engine, pieces, tenant, self.next_piece, pipe, self.credits[wid], parent),
                    name=f"norrvakt-hunt-{wid}",
                    daemon=True,
                )
                process.start()
                writer.close()  # only the worker (forked before the next pipe exists) holds it
                self.processes.append(process)
                self.readers[reader] = wid
        finally:
            gc.unfreeze()

    def take(self, number: int) -> Batch | End:
        """The next message of piece ``number``, buffering those of later pieces (at most
        CREDITS per worker: a worker waits for a credit before it sends)."""
        while True:
            waiting = self.waiting.get(number)
            if waiting:
                wid, message = waiting.popleft()
                self.credits[wid].release()
                return message
            if not self.readers:  # cannot be, as each piece is taken and sent before its exit
                raise HuntWorkerError(f"the hunt workers ended without sending piece {number}")
            ready = cast(list[Connection], wait(list(self.readers), timeout=_POLL_S))
            if not ready:
                self._check_alive()
            for conn in ready:
                wid = self.readers[conn]
                try:
                    kind, piece, payload = conn.recv()
                except EOFError:  # gone without saying so: killed
                    self.processes[wid].join(timeout=1)
                    self._check_alive()
                    raise HuntWorkerError(f"hunt worker {wid} (pid {self.processes[wid].pid}) died") from None
                if kind == "error":
                    raise HuntWorkerError(f"hunt worker {wid} failed on piece {piece}:\n{payload}")
                if kind == "exit":
                    del self.readers[conn]
                    conn.close()
                else:
                    self.waiting.setdefault(piece, deque()).append((wid, payload))

    def _check_alive(self) -> None:
        for wid, process in enumerate(self.processes):
            code = process.exitcode
            if code is not None and code != 0:
                how = f"signal {-code}" if code < 0 else f"exit code {code}"
                raise HuntWorkerError(f"hunt worker {wid} (pid {process.pid}) died ({how})")

    def stop(self) -> None:
        for process in self.processes:
            if process.is_alive():
                process.terminate()
        for process in self.processes:
            process.join(timeout=5)
            if process.is_alive():
                process.kill()
                process.join()
        for conn in self.readers:
            conn.close()


def _work(
    wid: int,
    engine: DetectionEngine,
    pieces: list[Piece],
    tenant: str,
    next_piece: Any,
    pipe: tuple[Connection, list[Connection]],
    credit: Any,
    parent: int,
) -> None:
    """A worker process: the next piece not taken yet, until there is none."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the parent, which stops us
    results, inherited = pipe
    for reader in inherited:  # only the parent reads: a send fails (no hang) once it is gone
        reader.close()

    def send(kind: str, number: int, payload: object) -> None:
        if kind == "piece":  # an error or the goodbye go without waiting: the parent stops on them
            while not credit.acquire(timeout=_POLL_S):
                if os.getppid() != parent:
                    os._exit(1)
        results.send((kind, number, payload))

    while True:
        with next_piece.get_lock():
            number = next_piece.value
            next_piece.value = number + 1
        if number >= len(pieces):
            send("exit", -1, None)
            results.close()
            return
        try:
            _run_piece(engine, pieces[number], tenant, lambda message, n=number: send("piece", n, message))
        except BaseException:
            send("error", number, traceback.format_exc())
            return


def _run_piece(engine: DetectionEngine, piece: Piece, tenant: str, send: Any) -> None:
    """Read, parse and match one piece; send Batches and then its End."""
    tally = EvtxTally()
    batch = Batch()
    pending: dict[str, int] = {}  # tenant -> newest ts since the last Hit
    events = 0
    texts = 0  # problems with text sent for this piece
    lines: bool | None = None
    read = 0  # events in the current batch
    try:
        for item in read_piece(piece, tenant, "hunt", tally):
            if isinstance(item, Deferred):
                batch.problems.append(item)
                texts += 1
            elif item.error_type is not None:  # damaged record, cut line: named, not matched
                batch.problems.append(item.error)
                texts += 1
                batch.progress = item.progress
            else:
                event = parse_record(item.record)
                batch.progress = item.progress
                if event.kind == KIND_PIPELINE_ERROR:
                    if texts < PROBLEM_TEXTS:
                        message = event.ecs.get("error.message", "")
                        peer = item.record.peer
                        if peer.endswith(UNKNOWN_ID_PEER):
                            batch.problems.append(Deferred("parse", piece.path, 0, None, message))
                        else:
                            batch.problems.append(("parse", f"{peer}: {message}"))
                        texts += 1
                    else:
                        batch.problems.append(("parse", None))
                else:
                    events += 1
                    read += 1
                    batch.events += 1
                    lines = line_number(event) is not None
                    hits, found = engine.match(event)
                    if hits or found:
                        batch.hits.append(Hit(event, events, hits, found, tuple(pending.items())))
                        pending.clear()
                    elif event.ts > pending.get(event.tenant, 0):
                        pending[event.tenant] = event.ts
            if read >= BATCH_EVENTS or len(batch.hits) >= BATCH_HITS or len(batch.problems) >= BATCH_PROBLEMS:
                batch.advance = tuple(pending.items())
                pending.clear()
                send(batch)
                batch, read = Batch(progress=batch.progress), 0
    except OSError as exc:
        batch.problems.append(("oserror", f"{piece.path}: cannot read: {exc.strerror or exc}"))
    batch.advance = tuple(pending.items())
    send(batch)
    send(End(events, tally, lines))
