"""Envelopes: the parsed events of one tenant, packed for the replicated log.

An ingest node publishes a batch of events as envelopes of at most ``MAX_EVENTS`` events and
``MAX_BYTES`` bytes (JetStream's cost is per message: 100–500 events per message carry an
order of magnitude more events per second than one each). An envelope is msgpack — data
only: unlike the pickle frames between a node and its own child processes, it crosses
machines and is read by every consumer — ``[version, tenant, origin, [event row, …]]`` with an
event row ``[ts, ingested, source, peer, ecs, fields, message, raw]`` (``raw`` as bytes). The
seq is not in it: it follows from the envelope's place in the tenant's stream.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import msgpack

from norrvakt.event import Event

VERSION = 1
MAX_EVENTS = 500
MAX_BYTES = 256 * 1024


class EnvelopeError(ValueError):
    """Bytes that are not an envelope of this version (the message says what is wrong)."""


@dataclass(frozen=True)
class Envelope:
    tenant: str
    origin: str  # the node that packed it (for the operator; not trusted for anything)
    data: bytes
    count: int


def _row(e: Event) -> list[Any]:
    return [e.ts, e.ingested, e.source, e.peer, e.ecs, e.fields, e.message, e.raw]


def pack(
    tenant: str,
    origin: str,
    events: Sequence[Event],
    max_events: int = MAX_EVENTS,
    max_bytes: int = MAX_BYTES,
) -> Iterator[Envelope]:
    """The envelopes of ``events`` (all of ``tenant``), in order. An event larger than
    ``max_bytes`` goes alone in its envelope (the stream's max_msg_size is the real limit)."""
    packer = msgpack.Packer(use_bin_type=True)
    head_of = [VERSION, tenant, origin]
    rows: list[bytes] = []
    size = 0
    for e in events:
        if e.tenant != tenant:
            raise ValueError(f"event of tenant {e.tenant!r} in an envelope of {tenant!r}")
        row = packer.pack(_row(e))
        if rows and (len(rows) >= max_events or size + len(row) > max_bytes):
            yield _envelope(packer, head_of, rows)
            rows, size = [], 0
        rows.append(row)
        size += len(row)
    if rows:
        yield _envelope(packer, head_of, rows)


def _envelope(packer: msgpack.Packer, head: list[Any], rows: list[bytes]) -> Envelope:
    data = b"".join(
        [
            packer.pack_array_header(4),
            *(packer.pack(x) for x in head),
            packer.pack_array_header(len(rows)),
            *rows,
        ]
    )
    return Envelope(str(head[1]), str(head[2]), data, len(rows))


def unpack(data: bytes) -> tuple[str, str, list[Event]]:
    """(tenant, origin, events) of an envelope; seqs are 0 until the consumer assigns them."""
    try:
        doc = msgpack.unpackb(data, raw=False, strict_map_key=True)
    except (ValueError, msgpack.ExtraData, msgpack.FormatError, msgpack.StackError) as exc:
        raise EnvelopeError(f"not an envelope: {exc}") from None
    if not (isinstance(doc, list) and len(doc) == 4 and doc[0] == VERSION):
        raise EnvelopeError(f"not an envelope of version {VERSION}: starts with {str(doc)[:60]!r}")
    _, tenant, origin, rows = doc
    events = []
    for i, r in enumerate(rows):
        try:
            ts, ingested, source, peer, ecs, fields, message, raw = r
            events.append(
                Event(tenant, int(ts), int(ingested), source, peer, ecs, fields, message, bytes(raw))
            )
        except (TypeError, ValueError) as exc:
            raise EnvelopeError(f"event {i} of the envelope is malformed: {exc}") from None
    return str(tenant), str(origin), events
