"""What audisp-remote puts on the wire, and grouping its records into events.

``format = ascii``: each audit record is one line, ``\\n``-terminated, nothing else.

``format = managed`` (audisp-remote's default): each record is a message of a 16-byte header
and the record text; the server answers every message with a header alone (or followed by a
short text) carrying the same sequence number, and audisp-remote sends nothing more until it
has that answer. All numbers are little-endian::

    offset  size  field
    0       4     magic 0xff0000fe (bytes fe 00 00 ff; never contains LF)
    4       1     header version, 0
    5       1     message version, 0
    6       4     type: 0 message, 1 heartbeat; replies 0x40000000 ack, 0x40000001 server
                  ending, 0x50000001 disk low, 0x60000001 disk full, 0x60000002 disk error
    10      2     length of what follows (at most 8970, auditd's MAX_AUDIT_MESSAGE_LENGTH)
    12      4     sequence number, copied into the reply

A record belongs to the event named by its ``msg=audit(TIME:SERIAL)``. auditd ends a kernel
event with an ``EOE`` record, but audisp-remote does not forward EOE, so an event also ends
when a record of another serial arrives (the kernel emits the records of one event together,
at syscall exit), when it reaches ``max_records`` records or ``max_bytes``, and when nothing
arrived for the listener's assembly timeout.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass, field

HEADER = struct.Struct("<IBBIHI")
HEADER_SIZE = HEADER.size  # 16
MAGIC = 0xFF0000FE
HEADER_VERSION = 0
TYPE_MESSAGE = 0x00000000
TYPE_HEARTBEAT = 0x00000001
TYPE_ACK = 0x40000000
TYPE_ENDING = 0x40000001
TYPE_DISKERROR = 0x60000002
MAX_MESSAGE = 8970  # auditd refuses longer messages; audisp-remote never sends them

# The event a record belongs to: node (when name_format is set) and the audit(TIME:SERIAL) id.
_EVENT_ID = re.compile(rb"(?:node=(\S+) )?type=(\S+) msg=audit\(([\d.]+:\d+)\)")


@dataclass(frozen=True, slots=True)
class Header:
    magic: int
    version: int
    message_version: int
    type: int
    length: int
    sequence: int


def unpack_header(data: bytes) -> Header:
    return Header(*HEADER.unpack_from(data))


def pack_reply(sequence: int, reply_type: int = TYPE_ACK, text: bytes = b"") -> bytes:
    return HEADER.pack(MAGIC, HEADER_VERSION, 0, reply_type, len(text), sequence) + text


def pack_message(sequence: int, payload: bytes, message_type: int = TYPE_MESSAGE) -> bytes:
    """A client's message (for tests and tools; audisp-remote builds its own)."""
    return HEADER.pack(MAGIC, HEADER_VERSION, 0, message_type, len(payload), sequence) + payload


def event_key(line: bytes) -> bytes | None:
    """``node/TIME:SERIAL`` of an audit record line; None when the line is not one."""
    m = _EVENT_ID.match(line)
    if m is None:
        return None
    return (m.group(1) or b"") + b"/" + m.group(3)


def is_eoe(line: bytes) -> bool:
    m = _EVENT_ID.match(line)
    return m is not None and m.group(2) == b"EOE"


@dataclass(slots=True)
class OpenEvent:
    key: bytes
    lines: list[bytes] = field(default_factory=list)
    size: int = 0
    received_at: int = 0
    spool: str = ""  # the file holding its records until it is durable (managed format)


class Assembler:
    """The one event a connection is assembling. :meth:`add` returns the events a line
    closes, in order: the open one when the line is of another event (or is EOE, or the
    event is full), and the line alone when it is not an audit record (the parser makes it a
    ``pipeline_error`` event with its bytes)."""

    def __init__(self, max_records: int = 256, max_bytes: int = 1 << 20) -> None:
        self.max_records = max_records
        self.max_bytes = max_bytes
        self.open: OpenEvent | None = None

    def add(self, line: bytes, now: int) -> tuple[list[OpenEvent], bool]:
        """(closed events, whether ``line`` joined the open event)."""
        closed: list[OpenEvent] = []
        key = event_key(line)
        cur = self.open
        if key is None:
            if cur is not None:
                closed.append(cur)
                self.open = None
            closed.append(OpenEvent(b"", [line], len(line), now))
            return closed, False
        if cur is not None and cur.key != key:
            closed.append(cur)
            cur = self.open = None
        if is_eoe(line):
            if cur is not None:  # EOE carries nothing of its own
                closed.append(cur)
                self.open = None
            return closed, False
        if cur is None:
            cur = self.open = OpenEvent(key, received_at=now)
        cur.lines.append(line)
        cur.size += len(line) + 1
        if len(cur.lines) >= self.max_records or cur.size >= self.max_bytes:
            closed.append(cur)
            self.open = None
        return closed, True

    def flush(self) -> OpenEvent | None:
        cur, self.open = self.open, None
        return cur
