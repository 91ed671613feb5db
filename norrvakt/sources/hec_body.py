"""A Splunk HEC body turned into events: split into its JSON objects, each parsed.

One function for the node and its parse workers (:mod:`norrvakt.node.parse_worker`): with
workers, the whole body goes to one of them, so splitting, checking and parsing a 500-event
POST cost the node nothing but the hand-off. The events of well-formed parts come back in body
order; a part with a problem comes back as its description, and the node turns it into a
``pipeline_error`` event with the sender's address and logs and counts it there.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from norrvakt.event import Event, RawRecord
from norrvakt.parsers.records import parse_one
from norrvakt.sources.http_json import split_json_objects


class BadPart(NamedTuple):
    """A HEC event that is not taken: its number in the body, byte offset, the problem's kind
    (``too_large``, ``too_deep``, ``malformed``, ``not_object``) and reason, and its bytes."""

    number: int
    offset: int
    kind: str
    reason: str
    data: bytes


def hec_events(
    body: bytes, max_event_bytes: int, template: RawRecord
) -> tuple[list[RawRecord], list[BadPart]]:
    """The records of ``body`` (each a copy of ``template`` with the part's bytes) and its bad parts."""
    records: list[RawRecord] = []
    bad: list[BadPart] = []
    t = template
    for part in split_json_objects(body, max_event_bytes):
        if part.problem is None:
            records.append(
                RawRecord(t.tenant, t.source_id, t.received_at, t.peer, part.data, "hec", t.timezone, t.hints)
            )
        else:
            bad.append(BadPart(part.number, part.offset, part.problem.kind, part.problem.reason, part.data))
    return records, bad


def parse_hec_body(
    body: bytes, max_event_bytes: int, template: RawRecord
) -> tuple[list[RawRecord], list[Event], list[BadPart]]:
    """:func:`hec_events` and the parsed events of its records (in this process)."""
    records, bad = hec_events(body, max_event_bytes, template)
    return records, [parse_one(r) for r in records], bad


def bad_row(b: BadPart) -> list[Any]:
    return list(b)


def bad_of(row: list[Any]) -> BadPart:
    number, offset, kind, reason, data = row
    return BadPart(int(number), int(offset), str(kind), str(reason), bytes(data))
