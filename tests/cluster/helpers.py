"""What the cluster tests share: events with an id, publishing them, reading a live journal."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from norrvakt.cluster.nats_servers import NatsCluster, connect
from norrvakt.cluster.publisher import EnvelopePublisher
from norrvakt.cluster.streams import TenantStreamConfig
from norrvakt.event import Event, event_from_canonical
from norrvakt.journal.log import Journal, JournalConfig


def event(tenant: str, ident: str) -> Event:
    """An event whose message ends in ``ident`` (what the journal and store checks count)."""
    raw = f"<13>1 - h a - - - integrate {ident}".encode()
    return Event(
        tenant,
        1_764_000_000_000_000,
        1_764_000_000_000_001,
        "relp",
        "10.0.0.5:601",
        {},
        {},
        raw.decode(),
        raw,
    )


async def publish(
    cluster: NatsCluster,
    tenant: str,
    start: int,
    count: int,
    *,
    prefix: str = "g",
    batch: int = 250,
    deadline_s: float = 30.0,
) -> list[str]:
    """Publish events ``{prefix}{start}`` .. of ``tenant`` in batches; the ids, all acknowledged."""
    nc = await connect(cluster)
    js = nc.jetstream()
    await TenantStreamConfig().ensure(js, tenant)
    pub = EnvelopePublisher(js, "ingest-1", deadline_s=deadline_s)
    sent: list[str] = []
    for b in range(start, start + count, batch):
        ids = [f"{prefix}{i}" for i in range(b, b + batch)]
        await pub.publish(tenant, [event(tenant, x) for x in ids])
        sent += ids
    await nc.close()
    return sent


def journal_ids(journal_dir: Path, tenant: str) -> list[str]:
    """The ids of ``tenant``'s journaled events, in seq order."""
    # read-only: another process (the integrator) may be writing it right now
    journal = Journal(JournalConfig(directory=journal_dir, merkle=False), read_only=True)
    try:
        return [event_from_canonical(b).message.split()[-1] for _seq, b in journal.read(tenant)]
    finally:
        journal.close()


def wait_until(
    condition: Callable[[], object], timeout: float, why: Callable[[], object] | None = None
) -> float:
    """Poll ``condition`` until it holds (the seconds that took) or ``timeout`` passes (an
    AssertionError, with what ``why`` says about the state then)."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if condition():
            return time.monotonic() - started
        time.sleep(0.2)
    raise AssertionError(f"timed out; {why() if why else ''}")
