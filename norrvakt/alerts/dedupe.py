"""Deduplication: which alert a rule match belongs to.

The dedupe key of a match is its tenant, its rule and the values of the key fields (the
rule's own, its settings' or ``alerts.dedupe_fields``). A match joins the open alert with the
same key whose last event is within the suppression window; otherwise it starts a new alert.

:class:`OpenAlerts` is the in-memory index of open alerts by key, so a flood of matches costs
one dictionary lookup each and no database read. It is filled from the database at start and
kept by the one process that ingests (the server, or the CLI when no server runs); alerts
that close leave it (:meth:`OpenAlerts.forget`).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from norrvakt.alerts.model import Alert

# Key of the alert that collects a rule's matches beyond the flood guard.
FLOOD_FIELD = "norrvakt.flood"

DedupeKey = tuple[str, str, tuple[str, ...], tuple[str, ...]]  # tenant, rule, fields, values


def make_key(tenant: str, rule_id: str, fields: tuple[str, ...], values: tuple[str, ...]) -> DedupeKey:
    return (tenant, rule_id, fields, values)


def key_hash(key: DedupeKey) -> str:
    """The stored form of a key (SHA-256 hex): fixed length, indexable, no separators to escape."""
    tenant, rule_id, fields, values = key
    h = hashlib.sha256()
    for part in (tenant, rule_id, *fields, "\x1e", *values):
        h.update(part.encode("utf-8"))
        h.update(b"\x1f")
    return h.hexdigest()


@dataclass(slots=True)
class OpenAlert:
    """An open alert as ingest keeps it: the alert (id 0 until inserted) and evidence not yet written."""

    alert: Alert
    key: DedupeKey
    new_seqs: list[int] = field(default_factory=list)


class OpenAlerts:
    """Open alerts by dedupe key. ``complete`` = every open alert is here (a miss means new)."""

    def __init__(self, max_entries: int = 200_000) -> None:
        self.max_entries = max_entries
        self.by_key: dict[DedupeKey, OpenAlert] = {}
        self.by_id: dict[int, DedupeKey] = {}
        self.complete = False

    def get(self, key: DedupeKey) -> OpenAlert | None:
        return self.by_key.get(key)

    def put(self, alert: OpenAlert) -> None:
        if len(self.by_key) >= self.max_entries:
            # Bounded memory: start over; misses then consult the database until refilled.
            self.clear()
        self.by_key[alert.key] = alert
        if alert.alert.id:
            self.by_id[alert.alert.id] = alert.key

    def assigned(self, alert: OpenAlert) -> None:
        self.by_id[alert.alert.id] = alert.key

    def forget(self, alert_ids: list[int]) -> None:
        for aid in alert_ids:
            key = self.by_id.pop(aid, None)
            if key is not None and (found := self.by_key.get(key)) is not None and found.alert.id == aid:
                del self.by_key[key]

    def clear(self) -> None:
        self.by_key.clear()
        self.by_id.clear()
        self.complete = False

    def __len__(self) -> int:
        return len(self.by_key)
