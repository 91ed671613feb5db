"""Where a consumer of a tenant stream is: the last envelope it has wholly taken, and the seq
that envelope's last event has — and the pull subscription that goes on from there.

The integrator and every store replica's feed keep such a position, each in its own file
(fsynced, replaced atomically). Neither acknowledges messages to JetStream: its position is
what it has durably done, so the consumer on the server side is ephemeral and starts again from
the file after a crash or a broken subscription (nats.py#504).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from nats.js import JetStreamContext
from nats.js import api as js_api

from norrvakt.cluster import streams

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Position:
    """The last stream sequence taken, and the journal seq its last event has."""

    stream_seq: int = 0
    journal_seq: int = 0


@dataclass(frozen=True)
class PositionFile:
    path: Path

    def load(self) -> Position:
        try:
            doc = json.loads(self.path.read_text())
        except FileNotFoundError:
            return Position()
        return Position(int(doc["stream_seq"]), int(doc["journal_seq"]))

    def save(self, pos: Position) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        with open(tmp, "w") as fh:
            json.dump({"stream_seq": pos.stream_seq, "journal_seq": pos.journal_seq}, fh)
            fh.flush()
            os.fsync(fh.fileno())
        tmp.replace(self.path)


async def subscribe_after(
    js: JetStreamContext, tenant: str, pos: Position
) -> JetStreamContext.PullSubscription:
    """An ephemeral pull subscription to ``tenant``'s stream from the envelope after ``pos``."""
    return await js.pull_subscribe(
        streams.subject(tenant),
        durable=None,
        stream=streams.stream_name(tenant),
        config=js_api.ConsumerConfig(
            deliver_policy=js_api.DeliverPolicy.BY_START_SEQUENCE,
            opt_start_seq=pos.stream_seq + 1,
            ack_policy=js_api.AckPolicy.NONE,  # the position file is the position, not the consumer
            inactive_threshold=60.0,
        ),
    )


async def follow(
    js: JetStreamContext,
    tenant: str,
    where: Callable[[], Position],
    consume: Callable[[JetStreamContext.PullSubscription], Awaitable[None]],
    stop: asyncio.Event,
    *,
    what: str,
    fatal: tuple[type[Exception], ...],
) -> None:
    """Run ``consume`` on subscriptions from ``where()`` on until ``stop``: one that breaks (a
    server restart, nats.py#504) is made again from the position; ``fatal`` errors end it."""
    while not stop.is_set():
        try:
            sub = await subscribe_after(js, tenant, where())
        except Exception as exc:  # no leader yet (an election, the nodes restarting): try again
            log.warning("%s: %s waits for the stream (%s: %s)", tenant, what, type(exc).__name__, exc)
            await asyncio.sleep(0.5)
            continue
        try:
            await consume(sub)
        except fatal:
            raise
        except Exception as exc:  # the subscription broke: make it again from where we are
            log.warning("%s: %s paused (%s: %s); resubscribing", tenant, what, type(exc).__name__, exc)
            await asyncio.sleep(0.5)
        finally:
            try:
                await sub.unsubscribe()
            except Exception:  # (the connection may be gone)
                pass
