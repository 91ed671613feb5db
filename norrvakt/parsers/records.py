"""A received record's event, whatever happens: parsed, or the event that says why not.

Used by the node and its parse workers alike. A record without a tenant (a sender no network
maps) becomes a note in the system tenant; a record a transport could not even frame
(oversized, truncated, TLS garbage) becomes a ``pipeline_error`` event with the first bytes of
its data.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from norrvakt.enrich.ingest import enrich_event
from norrvakt.event import KIND_PIPELINE_ERROR, SYSTEM_TENANT, Event, RawRecord
from norrvakt.parsers import error_event, parse_record


def parse_one(record: RawRecord) -> Event:
    """The event of one record: parsed and enriched (norrvakt.enrich.ingest: Windows codes in
    words, country/AS of addresses, the tenant's named ranges), or the system tenant's note of an
    unmapped sender."""
    return enrich_event(parse_record(record)) if record.tenant else unmapped_sender_event(record)


_EXCERPT = 120


def unmapped_sender_event(record: RawRecord) -> Event:
    """A record whose sender maps to no tenant: kept in the system tenant for the SOC to see."""
    message = (
        f"sender {record.peer} matches no tenant network and the source has no "
        "default tenant; the record is kept here until the sender is mapped"
    )
    return pipeline_error_event(record, "source.unmapped_sender", message, tenant=SYSTEM_TENANT)


def pipeline_error_event(
    record: RawRecord, error_type: str, message: str, *, tenant: str | None = None
) -> Event:
    """The event for a record a transport could not even frame (oversized, truncated, TLS garbage).

    ``message`` says what went wrong and where; the source id is added, and the first bytes of
    the data are appended so the bad value is visible and searchable."""
    detail = message
    if record.payload:
        excerpt = record.payload[:_EXCERPT].decode("utf-8", "backslashreplace")
        more = "…" if len(record.payload) > _EXCERPT else ""
        detail = f"{message} — data: {excerpt!r}{more}"
    event = error_event(record, error_type, detail, detail)
    if tenant:
        event.tenant = tenant
    return event


# (records received by source id, pipeline errors by "source: error.type")
Tally = tuple[dict[str, int], dict[str, int]]


def tally(source_ids: Sequence[str], events: Sequence[Event]) -> Tally:
    """What the pipeline's counters add for ``events`` (one source id each): records by source
    and pipeline errors by kind. Made where the events were parsed, so a worker's records cost
    the node's thread a dict update instead of a loop over them."""
    received: Counter[str] = Counter()
    errors: Counter[str] = Counter()
    for source_id, e in zip(source_ids, events, strict=True):
        received[source_id] += 1
        if e.ecs.get("event.kind") == KIND_PIPELINE_ERROR:
            errors[f"{source_id}: {e.ecs.get('error.type', 'unknown')}"] += 1
    return dict(received), dict(errors)
