"""The integrator: a tenant's journal, built from its stream, in the stream's order.

JetStream holds the tenant's envelopes replicated and in order; the integrator turns them into
the journal that issue 3 built — segments, the RFC 9162 Merkle tree, and (from the active
integrator) signed checkpoints — exactly as the single node writes it, so `norrvakt verify`,
the witnesses and the console read it unchanged. Each event's seq follows from the stream: the
events of envelope 1, then those of envelope 2, and so on, so every integrator that reads the
same stream writes the same bytes and the same tree.

Exactly once across crashes, without a transaction spanning JetStream and the disk: after each
journal commit (fsynced) the integrator records the last stream sequence it holds and the
journal seq it reached (``integrated.json``, replaced atomically). A crash between the two
leaves the journal ahead of the record; on start the integrator walks the envelopes after the
recorded one, adding up their events, until the sum reaches the journal's committed seq — those
envelopes are already in — and goes on from there. A commit always takes whole envelopes, so
the sum meets the journal's seq exactly; if it does not, or the stream skips a sequence (it
expired before it was integrated), the integrator stops and says so instead of guessing.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from pathlib import Path

from nats.errors import TimeoutError as NatsTimeoutError
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from norrvakt.cluster import envelope, streams
from norrvakt.cluster.position import Position, PositionFile, follow
from norrvakt.cluster.progress import ProgressReporter
from norrvakt.journal.log import Journal

log = logging.getLogger(__name__)


def state_dir_of(journal_dir: Path) -> Path:
    """Where an integrator keeps its positions and its signing keys: beside the journal, not in
    it (every folder in the journal is a tenant to `norrvakt verify`)."""
    return journal_dir.parent / f"{journal_dir.name}.integrator"


class IntegrationError(Exception):
    """The stream and the journal do not fit together: integrating further would guess."""


@dataclass(frozen=True)
class IntegratorConfig:
    """Integrates ``tenant``'s stream into the journal under ``state_dir`` (its position file)."""

    tenant: str
    state_dir: Path
    fetch_batch: int = 200  # envelopes per fetch (of up to 500 events each)
    fetch_timeout_s: float = 1.0

    def build(self, js: JetStreamContext, journal: Journal) -> Integrator:
        return Integrator(self, js, journal)


@dataclass
class Integrator:
    config: IntegratorConfig
    js: JetStreamContext
    journal: Journal
    position: Position = field(default_factory=Position)
    envelopes: int = 0  # integrated by this run
    events: int = 0
    progress: ProgressReporter | None = None  # where the cluster sees how far it is

    @property
    def _position_file(self) -> Path:
        return self.config.state_dir / f"integrated-{self.config.tenant}.json"

    # -- position -------------------------------------------------------------------------

    def _load_position(self) -> Position:
        return PositionFile(self._position_file).load()

    def _save_position(self) -> None:
        PositionFile(self._position_file).save(self.position)

    async def catch_up_position(self) -> Position:
        """Where to go on from: the recorded position, moved past the envelopes a crash left in
        the journal without recording them (see the module docstring)."""
        tenant = self.config.tenant
        pos = self._load_position()
        journal_seq = self.journal.committed_seq(tenant)
        if journal_seq < pos.journal_seq:
            raise IntegrationError(
                f"{tenant}: the journal ends at seq {journal_seq}, before the {pos.journal_seq} recorded as "
                f"integrated — the journal was cut or replaced; run `norrvakt verify`"
            )
        name = streams.stream_name(tenant)
        while pos.journal_seq < journal_seq:
            try:
                msg = await self.js.get_msg(name, pos.stream_seq + 1)
            except NotFoundError:
                raise IntegrationError(
                    f"{tenant}: the journal ends at seq {journal_seq}, but the stream's envelopes after the "
                    f"recorded position reach seq {pos.journal_seq} only: the journal and the stream differ"
                ) from None
            _, _, events = envelope.unpack(msg.data or b"")
            if pos.journal_seq + len(events) > journal_seq:
                raise IntegrationError(
                    f"{tenant}: envelope {pos.stream_seq + 1} ({len(events)} events) crosses the journal's "
                    f"end at seq {journal_seq}: the journal holds part of an envelope"
                )
            pos = Position(pos.stream_seq + 1, pos.journal_seq + len(events))
        self.position = pos
        if pos != self._load_position():
            log.info(
                "%s: the journal already held stream envelopes up to %d (seq %d); going on from there",
                tenant,
                pos.stream_seq,
                pos.journal_seq,
            )
            self._save_position()
        return pos

    # -- running --------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Integrate until ``stop`` is set; a subscription that breaks (a server restart:
        nats.py#504) is made again from the position."""
        await self.catch_up_position()
        await follow(
            self.js,
            self.config.tenant,
            lambda: self.position,
            lambda sub: self._consume(sub, stop),
            stop,
            what="integrating",
            fatal=(IntegrationError,),
        )

    async def _consume(self, sub: JetStreamContext.PullSubscription, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                msgs = await sub.fetch(self.config.fetch_batch, timeout=self.config.fetch_timeout_s)
            except (NatsTimeoutError, TimeoutError):
                msgs = []
            if msgs:
                await asyncio.to_thread(self._integrate, [(m.metadata.sequence.stream, m.data) for m in msgs])
            if self.progress is not None:
                await self.progress.report(self.config.tenant, self.position)

    def _integrate(self, batch: list[tuple[int, bytes]]) -> None:
        """Journal the envelopes of ``batch`` (stream order) in one commit, then record it."""
        tenant = self.config.tenant
        pos = self.position
        all_events = []
        for stream_seq, data in batch:
            if stream_seq <= pos.stream_seq:
                continue  # delivered again after a resubscribe: already in
            if stream_seq != pos.stream_seq + 1:
                raise IntegrationError(
                    f"{tenant}: the stream skips from envelope {pos.stream_seq} to {stream_seq} — envelopes "
                    "expired before they were integrated (max_age shorter than the outage?); nothing guessed"
                )
            env_tenant, _origin, events = envelope.unpack(data)
            if env_tenant != tenant:
                raise IntegrationError(f"{tenant}: envelope {stream_seq} names tenant {env_tenant!r}")
            all_events += events
            pos = Position(stream_seq, pos.journal_seq + len(events))
        if pos == self.position:
            return
        self.journal.append(all_events)
        self.journal.commit(self.journal.take_pending())
        if self.journal.committed_seq(tenant) != pos.journal_seq:
            raise IntegrationError(
                f"{tenant}: the journal is at seq {self.journal.committed_seq(tenant)} after envelope "
                f"{pos.stream_seq}, expected {pos.journal_seq}"
            )
        self.envelopes += pos.stream_seq - self.position.stream_seq
        self.events += len(all_events)
        self.position = pos
        self._save_position()
