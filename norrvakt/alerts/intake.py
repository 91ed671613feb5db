"""Events → :class:`AlertInput`: what the detection engine and the integrity watch hand in.

The detection side calls :func:`input_from_event` for every match; the integrity watch's
``event.kind = alert`` events (system tenant ``_norrvakt``) become inputs through
:func:`integrity_input`.
"""

from __future__ import annotations

from norrvakt.alerts.errors import InvalidInput
from norrvakt.alerts.model import ENTITY_FIELDS, LEVEL_RANK, AlertInput
from norrvakt.event import SYSTEM_TENANT, Event

INTEGRITY_RULE = "norrvakt-integrity"


def entities_of(event: Event) -> dict[str, str]:
    """The entity fields (user, host, addresses, hashes) the event has values for."""
    ecs = event.ecs
    return {f: ecs[f] for f in ENTITY_FIELDS if ecs.get(f)}


def input_from_event(
    event: Event,
    rule_id: str,
    rule_title: str,
    level: str,
    tags: list[str],
    *,
    dedupe_key_fields: list[str] | None = None,
    suppression_window_s: int | None = None,
    source: str = "sigma",
) -> AlertInput:
    """The alert input for a rule that matched ``event`` (a journaled event: seq is set)."""
    return AlertInput(
        tenant=event.tenant,
        rule_id=rule_id,
        rule_title=rule_title,
        level=level if level in LEVEL_RANK else "medium",  # Sigma rules without a level
        tags=list(tags),
        event_seq=event.seq,
        event_ts=event.ts,
        entities=entities_of(event),
        dedupe_key_fields=dedupe_key_fields,
        suppression_window_s=suppression_window_s,
        source=source,
        event=event,
    )


def integrity_input(event: Event) -> AlertInput:
    """A failed background verification (``norrvakt.integrity.integrity_alert``) as a critical
    alert of the system tenant. One alert per set of affected tenants: repeated failures of the
    same kind raise its count instead of paging the SOC again."""
    if event.kind != "alert" or event.tenant != SYSTEM_TENANT:
        raise InvalidInput(
            f"event {event.tenant}#{event.seq} is not an integrity alert "
            f"(event.kind={event.kind!r}, tenant={event.tenant!r})"
        )
    entities = entities_of(event)
    entities["norrvakt.tenants"] = event.fields.get("tenants", "")
    entities["norrvakt.check"] = event.fields.get("first.code", "")
    return AlertInput(
        tenant=SYSTEM_TENANT,
        rule_id=INTEGRITY_RULE,
        rule_title=event.ecs.get("rule.name", "Journal integrity verification failed"),
        level="critical",
        tags=["attack.defense_evasion", "attack.t1070", "attack.impact", "attack.t1565"],
        event_seq=event.seq,
        event_ts=event.ts,
        entities=entities,
        dedupe_key_fields=["norrvakt.tenants", "norrvakt.check"],
        source="integrity",
    )
