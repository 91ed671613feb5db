"""One JetStream stream per tenant: the tenant's replicated, append-only log of envelopes.

A stream's sequence orders the tenant's envelopes, gapless; the journal's per-event seq
follows from it (the events of envelope 1, then of envelope 2, …), so every consumer — the
integrator that builds the Merkle tree, each store replica's writer — sees one order. Every
setting below is chosen for a log that must not lose or change what it acknowledged:

- ``num_replicas`` 3 (R3), file storage: the loss of one node loses nothing acknowledged.
- limits retention with ``discard: new``: a full stream refuses new messages (the publisher
  tells its senders to retry) instead of silently dropping the oldest.
- ``deny_delete`` and ``deny_purge``: no client can remove a message or empty the stream.
- ``duplicate_window``: a publisher that retries with the same ``Nats-Msg-Id`` within it gets
  the first copy's sequence back, so retries after a leader change never duplicate.
- ``max_age``: messages expire after the consumers have long taken them (the journal and the
  store keep the events); the age must exceed any outage the consumers may have.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass

from nats.errors import NoRespondersError
from nats.js import JetStreamContext
from nats.js import api as js_api
from nats.js.errors import NotFoundError, ServiceUnavailableError

_NAME_OK = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
STREAM_PREFIX = "NV-EVENTS-"


def stream_name(tenant: str) -> str:
    if not _NAME_OK.match(tenant):
        raise ValueError(f"tenant id {tenant!r} cannot name a stream (letters, digits, '_' and '-' only)")
    return f"{STREAM_PREFIX}{tenant}"


def subject(tenant: str) -> str:
    stream_name(tenant)  # the same check
    return f"nv.events.{tenant}"


@dataclass(frozen=True)
class TenantStreamConfig:
    """The stream settings every tenant's log gets (see the module docstring)."""

    replicas: int = 3
    max_bytes: int = 4 * 1024**3  # per tenant; 15 tenants × 4 GiB fit the nodes' 100G
    max_age_s: float = 7 * 24 * 3600
    duplicate_window_s: float = 120.0
    max_msg_size: int = 4 * 1024 * 1024

    def stream_config(self, tenant: str) -> js_api.StreamConfig:
        return js_api.StreamConfig(
            name=stream_name(tenant),
            subjects=[subject(tenant)],
            retention=js_api.RetentionPolicy.LIMITS,
            storage=js_api.StorageType.FILE,
            num_replicas=self.replicas,
            discard=js_api.DiscardPolicy.NEW,
            deny_delete=True,
            deny_purge=True,
            duplicate_window=self.duplicate_window_s,
            max_bytes=self.max_bytes,
            max_age=self.max_age_s,
            max_msg_size=self.max_msg_size,
        )

    async def ensure(self, js: JetStreamContext, tenant: str, wait_s: float = 30.0) -> js_api.StreamInfo:
        """Create the tenant's stream, or check the existing one keeps the settings that
        matter. Right after the servers start there may be no meta leader yet: retried."""
        wanted = self.stream_config(tenant)
        deadline = asyncio.get_running_loop().time() + wait_s
        while True:
            try:
                try:
                    info = await js.stream_info(stream_name(tenant))
                except NotFoundError:
                    return await js.add_stream(wanted)
                _check_kept(info.config, wanted)
                return info
            except (TimeoutError, ServiceUnavailableError, NoRespondersError):
                if asyncio.get_running_loop().time() > deadline:
                    raise
                await asyncio.sleep(0.5)


def _check_kept(have: js_api.StreamConfig, wanted: js_api.StreamConfig) -> None:
    """A stream that lost a safety setting (edited by hand) is refused, not used."""
    problems = [
        f"{name} is {getattr(have, name)!r}, must be {getattr(wanted, name)!r}"
        for name in ("num_replicas", "discard", "deny_delete", "deny_purge", "storage", "retention")
        if getattr(have, name) != getattr(wanted, name)
    ]
    if problems:
        raise ValueError(f"stream {wanted.name}: " + "; ".join(problems))
