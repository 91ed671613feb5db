"""Observables of a case: the IP addresses, users, hosts, file hashes, domains and URLs its
alerts are about — taken from each alert's entities and from the ECS fields of its evidence
events (:mod:`norrvakt.alerts.evidence`).

    found = case_observables(engine, case_id, scope, fetch)   # fetch(tenant, seqs) -> event dicts
    for o in found.observables:
        o.kind, o.value, o.fields, o.search_query()           # ip 185.220.101.7 {source.ip} ...

A value that is not what its field says (``source.ip: "unknown"``, a 31-digit "MD5") is not an
observable: it is named in ``problems`` (alert, event, field, value), never dropped unsaid.
Observables of one kind are one when their normalised values are equal (``Anna.Berg`` and
``anna.berg``; ``2001:DB8::1`` and ``2001:db8::1``).
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from norrvakt.alerts.errors import NotFound
from norrvakt.state import alerts as alert_rows
from norrvakt.state import cases as case_rows
from norrvakt.state.db import Row

# ECS field -> kind of observable; the order of KIND_FIELDS is the order searches name them.
KIND_FIELDS: dict[str, tuple[str, ...]] = {
    "ip": ("source.ip", "destination.ip", "host.ip"),
    "user": ("user.name", "user.target.name"),
    "host": ("host.name",),
    "md5": ("file.hash.md5",),
    "sha1": ("file.hash.sha1",),
    "sha256": ("file.hash.sha256",),
    "domain": ("source.domain", "destination.domain", "url.domain"),
    "url": ("url.full",),
}
KINDS = tuple(KIND_FIELDS)
FIELD_KIND = {f: kind for kind, fields in KIND_FIELDS.items() for f in fields}
HASH_LENGTHS = {"md5": 32, "sha1": 40, "sha256": 64}
# Values that mean "none" in many logs (IIS and Apache write "-").
_EMPTY = {"", "-"}
_HEX = re.compile(r"[0-9a-f]+")
_DOMAIN = re.compile(r"(?=.{1,253}$)(?:[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9])?\.)+[a-z0-9-]{1,63}")
MAX_EVENTS = 2000  # evidence events read per case (each alert keeps up to alerts.evidence_cap)

Fetch = Callable[[str, Sequence[int]], list[dict[str, Any]]]


@dataclass
class Observable:
    kind: str
    value: str
    fields: set[str] = field(default_factory=set)
    alert_ids: set[int] = field(default_factory=set)
    rules: set[str] = field(default_factory=set)  # titles of the rules whose alerts name it
    events: int = 0  # evidence events that hold it
    first_seen: int | None = None
    last_seen: int | None = None

    @property
    def internal(self) -> bool:
        """A private, loopback or link-local address: the municipality's own, not an indicator."""
        if self.kind != "ip":
            return False
        addr = ipaddress.ip_address(self.value)
        return addr.is_private or addr.is_loopback or addr.is_link_local

    def search_query(self) -> str:
        """The search-language query for this value in every field of its kind."""
        quoted = '"' + self.value.replace('"', '\\"') + '"'
        return " OR ".join(f"{f}:{quoted}" for f in KIND_FIELDS[self.kind])

    def seen(self, at: int | None) -> None:
        if at:
            self.first_seen = at if self.first_seen is None else min(self.first_seen, at)
            self.last_seen = at if self.last_seen is None else max(self.last_seen, at)

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "value": self.value,
            "fields": sorted(self.fields),
            "alert_ids": sorted(self.alert_ids),
            "rules": sorted(self.rules),
            "events": self.events,
            "first_seen": self.first_seen,
            "last_seen": self.last_seen,
            "internal": self.internal,
            "query": self.search_query(),
        }


@dataclass
class Extraction:
    case: Row
    observables: list[Observable]
    problems: list[str]
    events_read: int
    events_left_out: int  # beyond MAX_EVENTS: their values were not read

    def find(self, kind: str, value: str) -> Observable | None:
        try:
            key = normalize(kind, value)
        except ValueError:
            return None
        return next((o for o in self.observables if o.kind == kind and _key(o.kind, o.value) == key), None)


def normalize(kind: str, value: str) -> str:
    """The value as an observable of ``kind``; ValueError with the reason when it is not one."""
    text = value.strip()
    if kind == "ip":
        try:
            addr = ipaddress.ip_address(text.strip("[]"))
        except ValueError:
            raise ValueError(f"{value!r} is not an IP address") from None
        if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
            return str(addr.ipv4_mapped)
        return str(addr)
    if kind in HASH_LENGTHS:
        digest = text.lower()
        if not _HEX.fullmatch(digest) or len(digest) != HASH_LENGTHS[kind]:
            raise ValueError(f"{value!r} is not an {kind.upper()} hash ({HASH_LENGTHS[kind]} hex digits)")
        return digest
    if kind == "domain":
        name = text.lower().rstrip(".")
        if not _DOMAIN.fullmatch(name):
            raise ValueError(f"{value!r} is not a domain name")
        return name
    if kind == "url":
        scheme, sep, rest = text.partition("://")
        if not sep or not scheme.isalpha() or not rest:
            raise ValueError(f"{value!r} is not a URL (scheme://host/…)")
        return text
    if kind in ("user", "host"):
        if len(text) > 512:
            raise ValueError(f"{value[:40]!r}… is longer than 512 characters")
        return text
    raise ValueError(f"unknown kind of observable {kind!r} (kinds: {', '.join(KINDS)})")


def _key(kind: str, value: str) -> str:
    # People and machines are named without regard to case (AD, DNS); hashes are lowered already.
    return value.lower() if kind in ("user", "host", "domain") else value


class _Collector:
    def __init__(self) -> None:
        self.found: dict[tuple[str, str], Observable] = {}
        self.problems: list[str] = []

    def add(self, name: str, raw: str, where: str, alert: Row, at: int | None, event: bool) -> None:
        kind = FIELD_KIND.get(name)
        if kind is None or raw.strip() in _EMPTY:
            return
        try:
            value = normalize(kind, raw)
        except ValueError as exc:
            self.problems.append(f"{where}: {name}: {exc}")
            return
        obs = self.found.setdefault((kind, _key(kind, value)), Observable(kind, value))
        obs.fields.add(name)
        obs.alert_ids.add(int(alert["id"]))
        obs.rules.add(str(alert["rule_title"]))
        if event:
            obs.events += 1
        obs.seen(at)


def extract(
    alerts: Sequence[Row], events: dict[int, list[dict[str, Any]]]
) -> tuple[list[Observable], list[str]]:
    """Observables of ``alerts`` (rows) and their evidence ``events`` (by alert id, ``to_dict``
    form), in order of kind, then most events first."""
    out = _Collector()
    for alert in alerts:
        entities = alert["entities"]
        if isinstance(entities, str):
            entities = json.loads(entities or "{}")
        where = f"alert {alert['id']}"
        for name, raw in sorted(entities.items()):
            out.add(name, str(raw), where, alert, int(alert["first_seen"] or 0) or None, event=False)
        for ev in events.get(int(alert["id"]), []):
            if ev.get("missing"):
                out.problems.append(
                    f"{where}: event {ev['tenant']}#{ev['seq']} is in neither store nor journal"
                )
                continue
            at = int(ev.get("ts") or 0) or None
            for name, raw in sorted((ev.get("ecs") or {}).items()):
                out.add(name, str(raw), f"{where} event {ev['tenant']}#{ev['seq']}", alert, at, event=True)
    order = {k: i for i, k in enumerate(KINDS)}
    found = sorted(out.found.values(), key=lambda o: (order[o.kind], -o.events, o.value))
    return found, out.problems


def case_observables(engine: sa.Engine, case_id: int, scope: Collection[str], fetch: Fetch) -> Extraction:
    """The observables of case ``case_id`` (NotFound outside ``scope``), reading up to
    :data:`MAX_EVENTS` evidence events through ``fetch``."""
    with engine.connect() as conn:
        case = case_rows.get(conn, case_id)
        if case is None or case["tenant"] not in scope:
            raise NotFound(f"no case {case_id}")
        alerts = alert_rows.of_cases(conn, [case_id])
        seqs = {int(a["id"]): alert_rows.evidence(conn, int(a["id"])) for a in alerts}
    budget = MAX_EVENTS
    events: dict[int, list[dict[str, Any]]] = {}
    left_out = 0
    for alert in alerts:
        wanted = seqs[int(alert["id"])]
        take, rest = wanted[:budget], wanted[budget:]
        left_out += len(rest)
        budget -= len(take)
        events[int(alert["id"])] = fetch(str(alert["tenant"]), take) if take else []
    observables, problems = extract(alerts, events)
    read = sum(len(v) for v in events.values())
    return Extraction(case, observables, problems, read, left_out)
