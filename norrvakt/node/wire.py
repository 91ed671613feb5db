"""The bytes between the node and its parse workers: length-prefixed pickle frames.

A frame is a 4-byte big-endian length and a pickled list ``[kind, job, body]``. Records and
events travel as flat lists of their fields. Pickle, not msgpack: it writes a string it has
seen before in the same frame as a reference, and the ECS and field names of 500 Windows
events are the same few dozen strings — the node decodes a batch in half the time (measured:
7.3 against 15.2 µs per event, and the node is the stage that does not scale).

Pickle runs code named in its data, so it never crosses a trust boundary: both ends are this
program, under the same user, on an unnamed socket pair made by the node for its own child
process — nobody else can connect to it. Across machines (the cluster) records travel in a
format that carries data only.
"""

from __future__ import annotations

import pickle
import struct
from typing import Any

from norrvakt.event import Event, RawRecord

HEADER = struct.Struct("!I")
MAX_FRAME = 512 * 1024 * 1024  # a batch is far smaller; a larger length means a broken stream

# kinds of frames
READY = "ready"  # worker → node: imports done, [pid]
PARSE = "parse"  # node → worker: [record rows]
PARSED = "parsed"  # worker → node: [[event rows], cpu seconds so far]
HEC = "hec"  # node → worker: [HEC body, max event bytes, template record row]
HEC_PARSED = "hec_parsed"  # worker → node: [[event rows], [bad part rows], cpu seconds so far]
BULK = "bulk"  # node → worker: [_bulk body, max event bytes, index of the URL or None, template record row]
BULK_PARSED = "bulk_parsed"  # worker → node: [[event rows], plan row, cpu seconds so far]
FAILED = "failed"  # worker → node: the batch could not be parsed or packed there: [reason]
# Receiving in the workers (norrvakt.node.parse_worker): the node lends a worker its listening
# sockets; the worker parses what its connections send and asks the node to journal it.
LISTEN = "listen"  # node → worker: [[source config, [listening fds], [max connections, per peer]], ...]
LISTENING = "listening"  # worker → node: its listeners accept: [number of listeners]
INGEST = "ingest"  # worker → node: journal these: [tally or None, pipeline errors, [event rows], cpu s]
COMMITTED = "committed"  # node → worker: the INGEST of the same job is durable: []
REFUSED = "refused"  # node → worker: the INGEST was not journaled, the sender must retry: [reason]
TRANSPORT = "transport"  # worker → node: count a transport error: [source id, reason]
STOP_LISTENING = "stop_listening"  # node → worker: stop accepting, finish what is in flight: []
ADMIT = "admit"  # worker → node: may this connection stay? (the caps are the node's): [listener id, host]
ADMITTED = "admitted"  # node → worker: the answer: [True or False]
RELEASE = "release"  # worker → node: the connection admitted under this job closed: []
PING = "ping"  # node → worker: are you alive? (a receiving worker holds connections): []
PONG = "pong"  # worker → node: the answer: []
STOPPED = "stopped"  # worker → node: every connection's records are durable, listeners closed: []


class FrameError(Exception):
    """The stream between node and worker is broken (a length beyond MAX_FRAME)."""


def frame(kind: str, job: int, body: Any) -> bytes:
    data = pickle.dumps([kind, job, body], protocol=pickle.HIGHEST_PROTOCOL)
    return HEADER.pack(len(data)) + data


def unframe(data: bytes) -> tuple[str, int, Any]:
    kind, job, body = pickle.loads(data)  # only ever from our own child process (see above)
    return str(kind), int(job), body


def frame_length(header: bytes) -> int:
    (length,) = HEADER.unpack(header)
    if length > MAX_FRAME:
        raise FrameError(f"frame of {length} bytes announced (at most {MAX_FRAME}): the stream is broken")
    return int(length)


def record_row(r: RawRecord) -> list[Any]:
    return [r.tenant, r.source_id, r.received_at, r.peer, r.payload, r.format, r.timezone, r.hints]


def record_of(row: list[Any]) -> RawRecord:
    tenant, source_id, received_at, peer, payload, fmt, timezone, hints = row
    return RawRecord(tenant, source_id, received_at, peer, payload, fmt, timezone, hints)


def event_row(e: Event) -> list[Any]:
    return [e.tenant, e.ts, e.ingested, e.source, e.peer, e.ecs, e.fields, e.message, e.raw]


def event_of(row: list[Any]) -> Event:
    tenant, ts, ingested, source, peer, ecs, fields, message, raw = row
    return Event(tenant, ts, ingested, source, peer, ecs, fields, message, raw)
