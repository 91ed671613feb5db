"""Publishing a tenant's events to its stream, acknowledged only once JetStream has them.

An ingest node hands :meth:`EnvelopePublisher.publish` the parsed events of one batch (one
sender's, in order) and acknowledges the sender only when it returns: by then JetStream has
stored every envelope on a majority of the stream's replicas and fsynced them
(``sync_interval: always``). Each envelope gets its ``Nats-Msg-Id`` before the first attempt;
a publish that times out or meets a leader election is retried with the same id, so a copy
that was stored after all is answered with its first sequence instead of a second copy.

Two ways it gives up, each telling the sender to retry (HEC 503 with Retry-After, RELP no
``rsp 200``, a closed TCP window):

- :class:`LogFull`: the stream is full (``discard: new``) — nothing is retried here, the
  condition is counted and raised at once so senders back off;
- :class:`LogUnavailable`: no acknowledgement within ``deadline_s`` (no quorum).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from nats.errors import ConnectionClosedError, NoRespondersError, OutboundBufferLimitError
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js import JetStreamContext
from nats.js.errors import APIError, NoStreamResponseError

from norrvakt.cluster import envelope, streams
from norrvakt.event import Event

log = logging.getLogger(__name__)

ERR_STREAM_STORE_FULL = 10077  # JetStream: "maximum bytes exceeded" with discard new
# (during an election nobody answers; a lost connection: the client reconnects)
_RETRIED = (
    NatsTimeoutError,
    TimeoutError,
    NoRespondersError,
    NoStreamResponseError,
    ConnectionClosedError,
    OutboundBufferLimitError,
)


class LogFull(Exception):
    """The tenant's stream is full: senders must retry later."""


class LogUnavailable(Exception):
    """JetStream did not acknowledge in time (no quorum, no leader): senders must retry."""


@dataclass
class PublishStats:
    envelopes: int = 0
    events: int = 0
    retries: int = 0
    duplicates: int = 0  # retries that JetStream recognised as already stored
    full: Counter[str] = field(default_factory=Counter)  # refusals of a full stream, by tenant


@dataclass
class EnvelopePublisher:
    """Publishes for node ``origin`` (its name, in every envelope)."""

    js: JetStreamContext
    origin: str
    attempt_timeout_s: float = (
        0.75  # short: a retry (same Nats-Msg-Id) costs nothing, a wait after an election does
    )
    deadline_s: float = 30.0
    stats: PublishStats = field(default_factory=PublishStats)

    async def publish(self, tenant: str, events: Sequence[Event]) -> list[int]:
        """Store ``events`` (all of ``tenant``) in its stream, in order; the stream sequences
        of their envelopes. Raises LogFull or LogUnavailable (nothing after the failed envelope
        was published; what was published before it stays, as a sender's resend would)."""
        seqs = []
        for env in envelope.pack(tenant, self.origin, events):
            seqs.append(await self._publish(tenant, env, f"{self.origin}-{uuid.uuid4().hex}"))
            self.stats.envelopes += 1
            self.stats.events += env.count
        return seqs

    async def _publish(self, tenant: str, env: envelope.Envelope, msg_id: str) -> int:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.deadline_s
        pause = 0.05
        subject, stream = streams.subject(tenant), streams.stream_name(tenant)
        while True:
            try:
                ack = await self.js.publish(
                    subject,
                    env.data,
                    timeout=self.attempt_timeout_s,
                    stream=stream,
                    headers={"Nats-Msg-Id": msg_id},
                )
            except APIError as exc:
                if exc.err_code == ERR_STREAM_STORE_FULL:
                    self.stats.full[tenant] += 1
                    raise LogFull(f"the log of {tenant} is full ({exc.description})") from None
                why = f"{exc.description} (code {exc.code}, {exc.err_code})"
            except _RETRIED as exc:
                why = type(exc).__name__
            else:
                if ack.duplicate:
                    self.stats.duplicates += 1
                return int(ack.seq)
            if loop.time() + pause > deadline:
                raise LogUnavailable(
                    f"no acknowledgement from the log of {tenant} within {self.deadline_s:.0f} s: {why}"
                )
            self.stats.retries += 1
            log.debug("publish of %s to %s retried: %s", msg_id, stream, why)
            await asyncio.sleep(pause)
            pause = min(1.0, pause * 2)
