"""Writing signed checkpoints for every tenant, on a clock and on volume.

Every ``every_seconds`` each tenant gets a checkpoint — also a tenant that received nothing,
so the silence is signed too — and a tenant that received ``every_events`` records since its
last checkpoint gets one at once. Each checkpoint is appended (fsync) to the tenant's local
``checkpoints.jsonl`` and published to every witness. A witness that cannot be reached is
logged and counted; the local log and the next checkpoint carry on (the chain lets the
witness be compared later).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from norrvakt.event import now_us
from norrvakt.journal.checkpoint import FILE_NAME, GENESIS, Checkpoint, append_line, last_checkpoint
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
        self._task: asyncio.Task[None] | None = None

    def _local_path(self, tenant: str):  # type: ignore[no-untyped-def]
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
        for witness in self.witnesses:
            try:
                witness.publish(cp)
            except WitnessError as exc:
                self.stats.witness_errors[witness.name] += 1
                self.stats.last_error = str(exc)
                log.error("checkpoint of %s (size %d) not published: %s", tenant, size, exc)
        return cp

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
