"""A received record's event, whatever happens: parsed, or the event that says why not.

Used by the node and its parse workers alike. A record without a tenant (a sender no network
maps) becomes a note in the system tenant; a record a transport could not even frame
(oversized, truncated, TLS garbage) becomes a ``pipeline_error`` event with the first bytes of
its data.
"""

from __future__ import annotations

from norrvakt.event import SYSTEM_TENANT, Event, RawRecord
from norrvakt.parsers import error_event, parse_record


def parse_one(record: RawRecord) -> Event:
    """The event of one record: parsed, or the system tenant's note of an unmapped sender."""
    return parse_record(record) if record.tenant else unmapped_sender_event(record)


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
