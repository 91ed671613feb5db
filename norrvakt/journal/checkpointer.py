"""Writing signed checkpoints for every tenant, on a clock and on volume.

Every ``every_seconds`` each tenant gets a checkpoint — also a tenant that received nothing,
so the silence is signed too — and a tenant that received ``every_events`` records since its
last checkpoint gets one at once. Each checkpoint is appended (fsync) to the tenant's local
``checkpoints.jsonl`` and published to every witness. A witness that cannot be reached is
logged and counted; the local log and the next checkpoint carry on. Before the first
publication after a start, and after every failed one, the witness is asked for its newest
line of the tenant and given every local line after it, in order — so a witness that was
down, or added later, catches up instead of keeping a hole (an append-only witness such as
``norrvakt witness serve`` refuses a line that does not chain to its newest one).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from norrvakt.event import now_us
from norrvakt.journal.checkpoint import (
    FILE_NAME,
    GENESIS,
    Checkpoint,
    append_line,
    last_checkpoint,
)
from norrvakt.journal.keys import KeyRing
from norrvakt.journal.log import Journal
from norrvakt.journal.witness import Witness, WitnessError
from norrvakt.tasks import cancel_and_wait

log = logging.getLogger(__name__)


@dataclass
class CheckpointStats:
    written: int = 0
    witness_errors: Counter[str] = field(default_factory=Counter)
    last_error: str | None = None
    # witness name → why its last publish failed; removed at its next success (health reads it)
    witness_failing: dict[str, str] = field(default_factory=dict)


class Checkpointer:
    def __init__(
        self,
        journal: Journal,
        keys: KeyRing,
        witnesses: Iterable[Witness],
        tenants: Iterable[str],
        *,
        every_events: int = 10_000,
        every_seconds: float = 60.0,
    ) -> None:
        self.journal = journal
        self.keys = keys
        self.witnesses = list(witnesses)
        self.tenants = list(tenants)
        self.every_events = every_events
        self.every_seconds = every_seconds
        self.stats = CheckpointStats()
        self._last: dict[str, Checkpoint | None] = {}
        self._lock = threading.Lock()
        # Publications happen in the order the lines were appended (taken before _lock is let go).
        self._publish_lock = threading.Lock()
        self._current: set[tuple[str, str]] = set()  # (witness, tenant) known to hold every line
        self._introduced: dict[str, set[str]] = {}  # witness → key ids it was given the rotations of
        self._task: asyncio.Task[None] | None = None

    def _local_path(self, tenant: str) -> Path:
        return self.journal.root / tenant / FILE_NAME

    def last(self, tenant: str) -> Checkpoint | None:
        if tenant not in self._last:
            self._last[tenant] = last_checkpoint(self._local_path(tenant))
        return self._last[tenant]

    def checkpoint(self, tenant: str, now: int | None = None) -> Checkpoint:
        """Sign and publish a checkpoint of ``tenant`` as committed right now."""
        with self._lock:
            key_id = self.keys.ensure()
            key = self.keys.private(key_id)
            size, root = self.journal.head(tenant)
            prev = self.last(tenant)
            if prev is not None and prev.size > size:
                log.critical(
                    "tenant %s: the last checkpoint covers %d records but the journal has %d — the journal "
                    "was truncated or rolled back (run `norrvakt verify`)",
                    tenant,
                    prev.size,
                    size,
                )
            if size and not self._local_path(tenant).parent.is_dir():
                log.critical(
                    "tenant %s: the journal folder %s is gone although %d records were committed — it "
                    "was deleted (run `norrvakt verify`); the checkpoint is written all the same",
                    tenant,
                    self._local_path(tenant).parent,
                    size,
                )
            cp = Checkpoint(
                tenant=tenant,
                size=size,
                root=root.hex(),
                time=max(now or now_us(), prev.time if prev else 0),
                prev=prev.digest() if prev else GENESIS,
                key=key_id,
            ).signed(key)
            append_line(self._local_path(tenant), cp.line())
            self._last[tenant] = cp
            self.stats.written += 1
            self._publish_lock.acquire()
        try:
            for witness in self.witnesses:
                try:
                    self._publish(witness, cp)
                    self.stats.witness_failing.pop(witness.name, None)
                except WitnessError as exc:
                    self.stats.witness_errors[witness.name] += 1
                    self.stats.witness_failing[witness.name] = str(exc)
                    self.stats.last_error = str(exc)
                    log.error("checkpoint of %s (size %d) not published: %s", tenant, size, exc)
        finally:
            self._publish_lock.release()
        return cp

    def _publish(self, witness: Witness, cp: Checkpoint) -> None:
        introduced = self._introduced.setdefault(witness.name, set())
        if cp.key not in introduced:
            # A checking witness trusts the key it was pinned to and keys introduced from it.
            witness.introduce(self.keys.rotations())
            introduced.add(cp.key)
        pair = (witness.name, cp.tenant)
        if pair in self._current:
            try:
                witness.publish(cp)
            except WitnessError:
                self._current.discard(pair)
                raise
            return
        witness.publish_lines(self._missing_at(witness, cp))
        self._current.add(pair)

    def _missing_at(self, witness: Witness, cp: Checkpoint) -> list[bytes]:
        """The local lines after the witness's newest one (``cp`` is the newest local line)."""
        newest = witness.latest(cp.tenant)
        if newest is not None and newest.raw == cp.line():
            return []
        after = _local_lines_after(self._local_path(cp.tenant), None if newest is None else newest.raw)
        if after is not None:
            return after
        assert newest is not None
        log.critical(
            "witness %s holds a checkpoint of %s (line %d) that is not in the local checkpoint log: the "
            "local log was rewritten, or another installation writes to the same witness "
            "(run `norrvakt verify`)",
            witness.name,
            cp.tenant,
            newest.number,
        )
        return [cp.line()]

    def snapshot(self) -> dict[str, tuple[int, int]]:
        """Tenant → (committed seq, bytes of the local checkpoint log), taken while no checkpoint
        is being signed: every checkpoint within those bytes covers at most the committed
        records, so a verification of the running journal can check up to exactly there."""
        with self._lock:
            sizes = self.journal.snapshot()
            out = {}
            for tenant in dict.fromkeys([*self.tenants, *sizes]):
                try:
                    written = self._local_path(tenant).stat().st_size
                except FileNotFoundError:
                    written = 0
                out[tenant] = (sizes.get(tenant, 0), written)
            return out

    def checkpoint_all(self, now: int | None = None) -> list[Checkpoint]:
        names = list(dict.fromkeys([*self.tenants, *self.journal.tenants()]))
        return [self.checkpoint(t, now) for t in names]

    def due_by_volume(self) -> list[str]:
        due = []
        for tenant in self.journal.tenants():
            last = self.last(tenant)
            if self.journal.committed_seq(tenant) - (last.size if last else 0) >= self.every_events:
                due.append(tenant)
        return due

    # -- running inside the server ----------------------------------------------------------

    async def start(self) -> None:
        await asyncio.to_thread(self.checkpoint_all)  # a start is itself worth sealing
        self._task = asyncio.create_task(self._run(), name="checkpointer")

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        await asyncio.to_thread(self.checkpoint_all)  # seal what arrived before the stop

    async def _run(self) -> None:
        next_all = time.monotonic() + self.every_seconds
        while True:
            await asyncio.sleep(min(1.0, self.every_seconds))
            try:
                if time.monotonic() >= next_all:
                    next_all = time.monotonic() + self.every_seconds
                    await asyncio.to_thread(self.checkpoint_all)
                else:
                    for tenant in self.due_by_volume():
                        await asyncio.to_thread(self.checkpoint, tenant)
            except Exception as exc:  # a failed checkpoint must not stop the next ones; say why
                self.stats.last_error = f"checkpoint failed: {exc}"
                log.exception("checkpoint failed")


def _local_lines_after(path: Path, raw: bytes | None) -> list[bytes] | None:
    """The lines of the local checkpoint log after the line ``raw`` (all of them for ``None``);
    ``None`` when ``raw`` is not in it. Searched from the end: a witness is usually only a few
    lines behind, and the log grows by a line a minute per tenant for years."""
    try:
        size = path.stat().st_size
        window = 1 << 20
        while True:
            start = 0 if raw is None else max(0, size - window)
            with open(path, "rb") as fh:
                fh.seek(start)
                lines = fh.read(size - start).split(b"\n")
            if start > 0:
                lines = lines[1:]  # the first may be cut in the middle
            lines = [line for line in lines if line]
            if raw is None:
                return lines
            for i in range(len(lines) - 1, -1, -1):
                if lines[i] == raw:
                    return lines[i + 1 :]
            if start == 0:
                return None
            window *= 16
    except OSError as exc:
        raise WitnessError(f"the local checkpoint log {path} cannot be read: {exc}") from exc
