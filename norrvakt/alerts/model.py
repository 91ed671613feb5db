"""The records of the SOC workflow: what detection hands in (:class:`AlertInput`), what the SOC
works on (:class:`Alert`, :class:`Case`) and what every change leaves behind (:class:`Change`).

Example — one failed logon that a password-spraying rule matched::

    AlertInput(
        tenant="lulea", rule_id="win-password-spray", rule_title="Password spraying",
        level="high", tags=["attack.credential_access", "attack.t1110.003"],
        event_seq=4711, event_ts=1_767_000_000_000_000,
        entities={"source.ip": "185.220.101.7", "user.name": "anna.berg", "host.name": "lulea-dc01"},
    )
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from norrvakt.config import LEVELS

if TYPE_CHECKING:
    from norrvakt.event import Event

# Sigma's levels, lowest first; a case's severity uses the same scale.
LEVEL_RANK: dict[str, int] = {level: i for i, level in enumerate(LEVELS)}

# Entity fields kept with an alert (grouping, the cross-tenant indicator view).
ENTITY_FIELDS: tuple[str, ...] = (
    "user.name",
    "user.target.name",
    "host.name",
    "source.ip",
    "destination.ip",
    "destination.domain",
    "url.domain",
    "file.hash.md5",
    "file.hash.sha1",
    "file.hash.sha256",
    "process.executable",
)


def level_rank(level: str) -> int:
    return LEVEL_RANK.get(level, -1)


@dataclass(slots=True)
class AlertInput:
    """One rule match, as the detection engine (or another tool, through the API) reports it.

    ``event_ts`` is the event's time in microseconds (UTC); ``event_seq`` its journal seq in
    ``tenant`` (0 = no event in Norrvakt, e.g. an alert another tool created). ``entities``
    holds ECS fields of the event (user.name, host.name, source.ip, file.hash.*, …).
    ``related_seqs`` names the other events of a correlation match (evidence, not counted).
    ``dedupe_key_fields`` and ``suppression_window_s`` override the rule's settings and the
    defaults; None = use those.
    """

    tenant: str
    rule_id: str
    rule_title: str
    level: str
    tags: list[str]
    event_seq: int
    event_ts: int
    entities: dict[str, str]
    dedupe_key_fields: list[str] | None = None
    suppression_window_s: int | None = None
    source: str = "sigma"
    # More events behind one match (a correlation's member events): evidence like event_seq.
    related_seqs: tuple[int, ...] = ()
    # The matched event itself, when detection hands it in: exceptions test its fields.
    event: Event | None = None


@dataclass(slots=True)
class Alert:
    id: int
    tenant: str
    rule_id: str
    rule_title: str
    level: str
    tags: list[str]
    source: str
    dedupe_key: str
    key_values: dict[str, str]
    entities: dict[str, str]
    status: str
    case_id: int | None
    count: int
    first_seen: int
    last_seen: int
    first_seq: int | None
    last_seq: int | None
    evidence_count: int
    created_at: int
    updated_at: int
    acknowledged_at: int | None = None
    resolved_at: int | None = None
    created: bool = False  # made by the ingest call that returned it (not a repeat)

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "tenant": self.tenant,
            "rule": {"id": self.rule_id, "title": self.rule_title, "level": self.level, "tags": self.tags},
            "level": self.level,
            "source": self.source,
            "dedupe_key": self.dedupe_key,
            "key_values": self.key_values,
            "entities": self.entities,
            "status": self.status,
            "case_id": self.case_id,
            "count": self.count,
            "first_seen": self.first_seen,
            "last_seen": self.last_seen,
            "first_seq": self.first_seq,
            "last_seq": self.last_seq,
            "evidence_count": self.evidence_count,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "acknowledged_at": self.acknowledged_at,
            "resolved_at": self.resolved_at,
        }


@dataclass(slots=True)
class Case:
    id: int
    tenant: str
    title: str
    status: str
    severity: str
    assignee: str | None
    created_by: str
    created_at: int
    updated_at: int
    acknowledged_at: int | None
    resolved_at: int | None
    escalated_at: int | None
    merged_into: int | None
    detected_at: int | None
    aware_at: int | None
    significant: bool | None
    early_warning_sent_at: int | None
    notification_sent_at: int | None
    final_report_at: int | None
    alert_ids: list[int] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "tenant": self.tenant,
            "title": self.title,
            "status": self.status,
            "severity": self.severity,
            "assignee": self.assignee,
            "created_by": self.created_by,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "acknowledged_at": self.acknowledged_at,
            "resolved_at": self.resolved_at,
            "escalated_at": self.escalated_at,
            "merged_into": self.merged_into,
            "alert_ids": self.alert_ids,
        }


@dataclass(frozen=True, slots=True)
class Change:
    """One line of a case's history: who changed what, when, from what to what."""

    case_id: int
    tenant: str
    at: int
    actor: str
    action: str
    field: str = ""
    old: str = ""
    new: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "case_id": self.case_id,
            "tenant": self.tenant,
            "at": self.at,
            "actor": self.actor,
            "action": self.action,
            "field": self.field,
            "old": self.old,
            "new": self.new,
        }
