"""Alert intake: rule matches in, deduplicated alerts out — fast enough for a rule that fires
on every event of a flood.

    service = AlertService(engine, settings.alerts)
    service.warm()                       # the open alerts into the dedupe index
    alerts = service.ingest([AlertInput(...), ...])

Per input: one dictionary lookup (:mod:`norrvakt.alerts.dedupe`), a counter, and an evidence
seq while the alert has fewer than ``alerts.evidence_cap``. Per call: one transaction that
inserts the new alerts, updates the counts of the others, links evidence and groups the new
alerts into cases. The flood guard caps new alerts per rule, tenant and minute; what is beyond
it is counted on one flood alert of the rule, so the number of alerts stays bounded whatever
comes in. Thread-safe: the detection worker and the API may call ``ingest`` at the same time.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace

import sqlalchemy as sa

from norrvakt.alerts.dedupe import FLOOD_FIELD, DedupeKey, OpenAlert, OpenAlerts, key_hash
from norrvakt.alerts.errors import InvalidInput
from norrvakt.alerts.exceptions import ExceptionSet, RuleException
from norrvakt.alerts.grouping import Grouper
from norrvakt.alerts.model import LEVEL_RANK, Alert, AlertInput, Change
from norrvakt.alerts.records import alert_from_row, alert_row
from norrvakt.alerts.workflow import CLOSED, NEW
from norrvakt.config import AlertSettings
from norrvakt.event import now_us
from norrvakt.state import alerts as alert_rows
from norrvakt.state import exceptions as exception_rows
from norrvakt.state import rules as rule_rows
from norrvakt.state.versions import VersionWatch

log = logging.getLogger(__name__)

US = 1_000_000


@dataclass(frozen=True, slots=True)
class RuleConfig:
    """A rule's own alert settings (None = the default)."""

    dedupe_fields: tuple[str, ...] | None
    window_s: int | None
    enabled: bool


@dataclass(slots=True)
class IngestStats:
    """Intake counters, kept per tenant so that a tenant's officer sees only their own; the
    totals (``stats.created`` …) are their sums."""

    batches: int = 0
    # tenant -> {"inputs", "created", "deduplicated", "flooded" (matches counted on a flood
    # alert), "disabled" (matches of rules switched off: counted, not alerted), "suppressed"
    # (matches an exception covers: counted and kept on the exception)} -> count
    by_tenant: dict[str, dict[str, int]] = field(default_factory=dict)

    def tenant(self, tenant: str) -> dict[str, int]:
        found = self.by_tenant.get(tenant)
        if found is None:
            found = self.by_tenant[tenant] = dict.fromkeys(_PER_TENANT, 0)
        return found

    def as_dict(self, tenants: Iterable[str] | None = None) -> dict[str, int]:
        """All counters, or (``tenants`` given) the sums over those tenants only."""
        if tenants is None:
            return {**{name: self._total(name) for name in _PER_TENANT}, "batches": self.batches}
        chosen = [self.by_tenant.get(t, {}) for t in set(tenants)]
        return {name: sum(c.get(name, 0) for c in chosen) for name in _PER_TENANT}

    def _total(self, name: str) -> int:
        # list(): read without the service's lock while an ingest may add a tenant
        return sum(c[name] for c in list(self.by_tenant.values()))

    @property
    def created(self) -> int:
        return self._total("created")

    @property
    def deduplicated(self) -> int:
        return self._total("deduplicated")

    @property
    def flooded(self) -> int:
        return self._total("flooded")

    @property
    def disabled(self) -> int:
        return self._total("disabled")

    @property
    def suppressed(self) -> int:
        return self._total("suppressed")


_PER_TENANT = ("inputs", "created", "deduplicated", "flooded", "disabled", "suppressed")


class AlertService:
    def __init__(
        self, engine: sa.Engine, settings: AlertSettings, *, clock: Callable[[], int] = now_us
    ) -> None:
        self.engine = engine
        self.settings = settings
        self.clock = clock
        self.index = OpenAlerts()
        self.stats = IngestStats()
        self.grouper = Grouper(settings)
        # Told after each ingest commits: the alerts it created, and the case history it wrote
        # (the soc wiring sends notifications and journals the history).
        self.on_created: list[Callable[[list[Alert]], None]] = []
        self.on_changes: list[Callable[[list[Change]], None]] = []
        self._lock = threading.Lock()
        self._rules: dict[tuple[str, str], RuleConfig] = {}
        self._flood: dict[tuple[str, str], tuple[int, int]] = {}  # (tenant, rule) → (minute, new alerts)
        self.reload_rules()
        # Exceptions made on any node reach this intake within a second (the version watch is
        # made before the first load, so a change in between is not missed).
        self.exceptions = ExceptionSet()
        self._exception_watch = VersionWatch(engine, exception_rows.RULE_EXCEPTIONS)
        self._exception_hits: dict[tuple[int, str], int] = {}  # (exception, tenant) → hits so far
        self.reload_exceptions()
        # Moves a match's level before it is stored (assets, directory accounts: the soc wiring
        # sets norrvakt.enrich.severity.AlertContext.adjust); None leaves levels as the rules say.
        self.level_hook: Callable[[AlertInput], AlertInput] | None = None

    # -- setup ---------------------------------------------------------------------------

    def warm(self) -> int:
        """Load every open alert into the dedupe index; returns how many."""
        with self._lock, self.engine.connect() as conn:
            self.index.clear()
            for row in alert_rows.open_alerts(conn):
                alert = alert_from_row(row)
                self.index.put(OpenAlert(alert, _stored_key(alert)))
            self.index.complete = True
            return len(self.index)

    def reload_rules(self) -> None:
        with self.engine.connect() as conn:
            rows = rule_rows.all_settings(conn)
        self._rules = {
            (str(r["rule_id"]), str(r["tenant"])): RuleConfig(
                tuple(r["dedupe_fields"]) if r["dedupe_fields"] is not None else None,
                r["window_s"],
                bool(r["enabled"]),
            )
            for r in rows
        }

    def reload_exceptions(self) -> None:
        """The exceptions in force (and their hit counts, where the cap of kept matches starts)."""
        with self.engine.connect() as conn:
            rows = exception_rows.current(conn, self.clock())
            counts = exception_rows.hit_counts(conn)
        self.exceptions = ExceptionSet.of(rows)
        self._exception_hits = counts

    def forget(self, alert_ids: list[int]) -> None:
        """Alerts that closed: their repeats start new alerts from now on."""
        with self._lock:
            self.index.forget(alert_ids)

    def refresh(self, rows: list[dict[str, object]]) -> None:
        """Statuses and cases changed elsewhere (the SOC): update or drop the indexed alerts."""
        with self._lock:
            for row in rows:
                aid = int(str(row["id"]))
                key = self.index.by_id.get(aid)
                entry = self.index.by_key.get(key) if key is not None else None
                if entry is None or entry.alert.id != aid:
                    continue
                if str(row["status"]) in CLOSED:
                    self.index.forget([aid])
                else:
                    entry.alert.status = str(row["status"])
                    entry.alert.case_id = row["case_id"]  # type: ignore[assignment]
                    entry.alert.acknowledged_at = row["acknowledged_at"]  # type: ignore[assignment]

    # -- intake --------------------------------------------------------------------------

    def ingest(
        self, inputs: Sequence[AlertInput], *, within: Callable[[sa.Connection], None] | None = None
    ) -> list[Alert]:
        """Deduplicate and store ``inputs``; the alerts they created or raised, as of now.

        ``within`` runs inside the transaction that writes them (also when there are none):
        a cluster detection worker moves its stream position there, so the alerts of a batch
        and the position past it commit together or not at all. If it raises, nothing is
        written and the error goes to the caller."""
        if not inputs:
            if within is not None:
                with self._lock, self.engine.begin() as conn:
                    within(conn)
            return []
        with self._lock:
            try:
                touched, fresh, changes = self._ingest(inputs, within)
            except BaseException:
                self.index.clear()  # the index may now disagree with the database: reload on demand
                raise
        out = [replace(e.alert) for e in touched]
        created = [a for a in out if a.created]
        for sink in self.on_created:
            if created:
                sink(created)
        for csink in self.on_changes:
            if changes:
                csink(changes)
        for e in fresh:
            e.alert.created = False
        return out

    def _ingest(
        self, inputs: Sequence[AlertInput], within: Callable[[sa.Connection], None] | None
    ) -> tuple[list[OpenAlert], list[OpenAlert], list[Change]]:
        settings = self.settings
        now = self.clock()
        default_fields = tuple(settings.dedupe_fields)
        default_window = int(settings.suppression_window_minutes * 60)
        cap = settings.evidence_cap
        index = self.index
        touched: dict[int, OpenAlert] = {}
        fresh: list[OpenAlert] = []
        stats = self.stats
        if self._exception_watch.moved():
            self.reload_exceptions()
        exceptions = self.exceptions
        suppressed: list[exception_rows.Suppressed] = []
        for i, inp in enumerate(inputs):
            per_tenant = stats.tenant(inp.tenant)
            per_tenant["inputs"] += 1
            rule = self._rules.get((inp.rule_id, inp.tenant)) or self._rules.get((inp.rule_id, "*"))
            if rule is not None and not rule.enabled:
                per_tenant["disabled"] += 1
                continue
            if exceptions and (covering := exceptions.find(inp, now)) is not None:
                per_tenant["suppressed"] += 1
                suppressed.append(self._suppressed(covering, inp))
                continue
            if self.level_hook is not None:
                inp = self.level_hook(inp)
            if inp.level not in LEVEL_RANK:
                raise InvalidInput(
                    f"alert input {i} (rule {inp.rule_id!r}, tenant {inp.tenant!r}): unknown level "
                    f"{inp.level!r}; one of {', '.join(LEVEL_RANK)}"
                )
            if inp.dedupe_key_fields is not None:
                fields = tuple(inp.dedupe_key_fields)
            elif rule is not None and rule.dedupe_fields is not None:
                fields = rule.dedupe_fields
            else:
                fields = default_fields
            if inp.suppression_window_s is not None:
                window = inp.suppression_window_s * US
            elif rule is not None and rule.window_s is not None:
                window = rule.window_s * US
            else:
                window = default_window * US
            ents = inp.entities
            key: DedupeKey = (inp.tenant, inp.rule_id, fields, tuple([ents.get(f, "") for f in fields]))
            entry = index.get(key)
            if entry is None and not index.complete:
                entry = self._load(key)
            ts = inp.event_ts
            if entry is not None and ts - entry.alert.last_seen <= window:
                per_tenant["deduplicated"] += 1
            else:
                entry = None
                if self._flooding(inp.tenant, inp.rule_id, now):
                    key = (inp.tenant, inp.rule_id, (FLOOD_FIELD,), ("1",))
                    entry = index.get(key)
                    if entry is None and not index.complete:
                        entry = self._load(key)
                    if entry is not None and ts - entry.alert.last_seen > window:
                        entry = None
                    per_tenant["flooded"] += 1
                if entry is None:
                    entry = OpenAlert(_new_alert(inp, key, now), key)
                    index.put(entry)
                    fresh.append(entry)
                    per_tenant["created"] += 1
            alert = entry.alert
            alert.count += 1
            if ts > alert.last_seen:
                alert.last_seen = ts
            if ts < alert.first_seen:
                alert.first_seen = ts
            for seq in (inp.event_seq, *inp.related_seqs):
                if seq <= 0 or seq in entry.new_seqs:
                    continue
                if alert.first_seq is None or seq < alert.first_seq:
                    alert.first_seq = seq
                if alert.last_seq is None or seq > alert.last_seq:
                    alert.last_seq = seq
                if alert.evidence_count < cap:
                    entry.new_seqs.append(seq)
                    alert.evidence_count += 1
            alert.updated_at = now
            touched[id(entry)] = entry
        stats.batches += 1
        changes = self._write(list(touched.values()), fresh, now, within, suppressed)
        return list(touched.values()), fresh, changes

    def _suppressed(self, covering: RuleException, inp: AlertInput) -> exception_rows.Suppressed:
        key = (covering.id, inp.tenant)
        seen = self._exception_hits.get(key, 0)
        self._exception_hits[key] = seen + 1
        return exception_rows.Suppressed(
            covering.id,
            inp.tenant,
            inp.rule_id,
            inp.rule_title or inp.rule_id,
            inp.event_seq,
            inp.event_ts,
            keep=seen < exception_rows.KEPT_MATCHES,
        )

    def _write(
        self,
        touched: list[OpenAlert],
        fresh: list[OpenAlert],
        now: int,
        within: Callable[[sa.Connection], None] | None,
        suppressed: Sequence[exception_rows.Suppressed] = (),
    ) -> list[Change]:
        changes: list[Change] = []
        fresh_ids = {id(e) for e in fresh}
        with self.engine.begin() as conn:
            if within is not None:
                within(conn)
            exception_rows.record_hits(conn, suppressed, now)
            for e in fresh:
                e.alert.id = alert_rows.insert_alert(conn, alert_row(e.alert))
                self.index.assigned(e)
                alert_rows.add_entities(conn, e.alert.id, e.alert.tenant, e.alert.entities)
            alert_rows.update_counts(
                conn,
                [
                    {
                        "_id": e.alert.id,
                        "count": e.alert.count,
                        "first_seen": e.alert.first_seen,
                        "last_seen": e.alert.last_seen,
                        "first_seq": e.alert.first_seq,
                        "last_seq": e.alert.last_seq,
                        "evidence_count": e.alert.evidence_count,
                        "updated_at": now,
                    }
                    for e in touched
                    if id(e) not in fresh_ids
                ],
            )
            alert_rows.add_evidence(
                conn, [(e.alert.id, e.alert.tenant, s) for e in touched for s in e.new_seqs]
            )
            if fresh and self.settings.auto_case:
                changes = self.grouper.place(conn, [e.alert for e in fresh], now)
        for e in touched:
            e.new_seqs.clear()
        return changes

    def _load(self, key: DedupeKey) -> OpenAlert | None:
        with self.engine.connect() as conn:
            row = alert_rows.find_open(conn, key_hash(key))
        if row is None:
            return None
        entry = OpenAlert(alert_from_row(row), key)
        self.index.put(entry)
        return entry

    def _flooding(self, tenant: str, rule_id: str, now: int) -> bool:
        minute = now // (60 * US)
        seen_minute, made = self._flood.get((tenant, rule_id), (minute, 0))
        if seen_minute != minute:
            made = 0
        if made >= self.settings.max_new_per_rule_per_minute:
            return True
        if len(self._flood) > 100_000:
            self._flood.clear()
        self._flood[(tenant, rule_id)] = (minute, made + 1)
        return False


def _new_alert(inp: AlertInput, key: DedupeKey, now: int) -> Alert:
    _tenant, _rule, fields, values = key
    return Alert(
        id=0,
        tenant=inp.tenant,
        rule_id=inp.rule_id,
        rule_title=inp.rule_title or inp.rule_id,
        level=inp.level,
        tags=list(inp.tags),
        source=inp.source,
        dedupe_key=key_hash(key),
        key_values=dict(zip(fields, values, strict=True)),
        entities=dict(inp.entities),
        status=NEW,
        case_id=None,
        count=0,
        first_seen=inp.event_ts,
        last_seen=inp.event_ts,
        first_seq=None,
        last_seq=None,
        evidence_count=0,
        created_at=now,
        updated_at=now,
        created=True,
    )


def _stored_key(alert: Alert) -> DedupeKey:
    fields = tuple(alert.key_values)
    return (alert.tenant, alert.rule_id, fields, tuple(alert.key_values[f] for f in fields))
