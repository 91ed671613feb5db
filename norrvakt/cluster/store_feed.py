"""A store replica's feed: a tenant's stream into one store, each event exactly once.

Each store replica has its own feed per tenant, reading the replicated log on its own (so a
replica that is down or rebuilt catches up from the stream without the other noticing). The
feed gives each envelope's events their seqs as the integrator does (envelope by envelope, in
stream order) and hands them to the replica's :class:`~norrvakt.store.writer.StoreWriter`,
which cuts batches as a pure function of the seqs and inserts each as one block with its dedupe
token (norrvakt/store/writer.py says why that is exactly once across crashes).

The feed's own position — the last envelope all of whose events the writer has stored, and the
seq it ended at — is written after the writer's checkpoint, so after a crash the feed starts at
or before what the store lacks; the writer skips what it already has.

A replica rebuilt from scratch (or down for longer than the stream keeps envelopes,
``max_age``) needs envelopes the stream no longer has. It takes those events from a journal
instead — an integrator's folder on the same machine, or a copy of one (``journal_dir``; read
only): every event up to the integrator's recorded position, then the stream from the envelope
after it. The batches are the same either way (they are cut by seq), so the replica ends up
identical to one fed from the stream alone.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from pathlib import Path

from nats.errors import TimeoutError as NatsTimeoutError
from nats.js import JetStreamContext

from norrvakt.cluster import envelope, streams
from norrvakt.cluster.integrator import IntegrationError, state_dir_of
from norrvakt.cluster.position import Position, PositionFile, follow
from norrvakt.cluster.progress import ProgressReporter
from norrvakt.event import Event, event_from_canonical
from norrvakt.journal.log import Journal, JournalConfig
from norrvakt.store.writer import StoreWriter

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StoreFeedConfig:
    tenant: str
    state_dir: Path
    fetch_batch: int = 100
    fetch_timeout_s: float = 0.5
    journal_dir: Path | None = None  # where to catch up from beyond the stream's retention

    def build(self, js: JetStreamContext, writer: StoreWriter) -> StoreFeed:
        return StoreFeed(self, js, writer)


@dataclass
class StoreFeed:
    config: StoreFeedConfig
    js: JetStreamContext
    writer: StoreWriter
    position: Position = field(default_factory=Position)  # fed from the stream so far
    _saved: Position = field(default_factory=Position)  # wholly stored (the restart point)
    _ends: list[tuple[int, int]] = field(default_factory=list)  # (stream seq, last event seq) fed
    progress: ProgressReporter | None = None  # where the cluster sees how far it is (stored)

    @property
    def _file(self) -> Path:
        return self.config.state_dir / f"store-feed-{self.config.tenant}.json"

    def _load(self) -> Position:
        return PositionFile(self._file).load()

    def _save(self, pos: Position) -> None:
        PositionFile(self._file).save(pos)
        self._saved = pos

    async def run(self, stop: asyncio.Event) -> None:
        tenant = self.config.tenant
        await asyncio.to_thread(self.writer.resume, tenant)
        self.position = self._saved = self._load()
        await self._beyond_retention()
        await follow(
            self.js,
            tenant,
            lambda: self.position,
            lambda sub: self._consume(sub, stop),
            stop,
            what="store feed",
            fatal=(IntegrationError,),
        )
        await asyncio.to_thread(self.writer.stop)
        self._advance()

    async def _consume(self, sub: JetStreamContext.PullSubscription, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                msgs = await sub.fetch(self.config.fetch_batch, timeout=self.config.fetch_timeout_s)
            except (NatsTimeoutError, TimeoutError):
                msgs = []
            events = []
            for m in msgs:
                seq = m.metadata.sequence.stream
                if seq <= self.position.stream_seq:
                    continue
                if seq != self.position.stream_seq + 1:
                    gap = f"from envelope {self.position.stream_seq} to {seq}"
                    raise IntegrationError(f"{self.config.tenant}: the stream skips {gap}")
                _tenant, _origin, part = envelope.unpack(m.data)
                for i, e in enumerate(part, self.position.journal_seq + 1):
                    e.seq = i
                events += part
                self.position = Position(seq, self.position.journal_seq + len(part))
                self._ends.append((seq, self.position.journal_seq))
            if events:
                await asyncio.to_thread(self.writer.offer, events)
            await asyncio.to_thread(self.writer.flush_due)
            self._advance()
            if self.progress is not None:
                await self.progress.report(self.config.tenant, self._saved)

    async def _beyond_retention(self) -> None:
        """Take the events of expired envelopes this replica lacks from the journal (or say
        why it cannot)."""
        tenant = self.config.tenant
        info = await self.js.stream_info(streams.stream_name(tenant))
        first = int(info.state.first_seq or 0)
        if self.position.stream_seq + 1 >= first:
            return
        gone = (
            f"envelopes {self.position.stream_seq + 1}-{first - 1} of {tenant} have expired from the stream"
        )
        journal_dir = self.config.journal_dir
        if journal_dir is None:
            raise IntegrationError(
                f"{gone} and this store replica has not stored them: start it with --journal "
                "<an integrator's journal folder, or a copy> to catch up from the journal"
            )
        integrated = PositionFile(state_dir_of(journal_dir) / f"integrated-{tenant}.json").load()
        if integrated.stream_seq + 1 < first:
            raise IntegrationError(
                f"{gone}, and the journal at {journal_dir} is integrated only up to envelope "
                f"{integrated.stream_seq}: give the journal of an integrator that is not behind"
            )
        fed = await asyncio.to_thread(self._feed_from_journal, journal_dir, integrated.journal_seq)
        log.info(
            "%s: %d events taken from the journal %s (up to seq %d)",
            tenant,
            fed,
            journal_dir,
            integrated.journal_seq,
        )
        self.position = integrated
        self._ends.append((integrated.stream_seq, integrated.journal_seq))
        self._advance()

    def _feed_from_journal(self, journal_dir: Path, through: int) -> int:
        tenant = self.config.tenant
        journal = Journal(JournalConfig(directory=journal_dir, merkle=False), read_only=True)
        fed = 0
        try:
            if (held := journal.committed_seq(tenant)) < through:
                raise IntegrationError(
                    f"{tenant}: the journal at {journal_dir} holds seqs up to {held}, "
                    f"its integrator's position says {through}"
                )
            batch: list[Event] = []
            for seq, raw in journal.read(tenant, self.writer.stored_through(tenant) + 1, through):
                e = event_from_canonical(raw)
                e.seq = seq
                batch.append(e)
                if len(batch) >= 10_000:
                    self.writer.offer(batch)
                    fed += len(batch)
                    batch = []
            self.writer.offer(batch)
            fed += len(batch)
        finally:
            journal.close()
        return fed

    def _advance(self) -> None:
        """Move the restart point past every envelope the writer has wholly stored."""
        stored = self.writer.stored_through(self.config.tenant)
        best = self._saved
        while self._ends and self._ends[0][1] <= stored:
            best = Position(*self._ends.pop(0))
        if best != self._saved:
            self._save(best)
