"""Improper use of the record systems, live: baselines and lookups that Sigma cannot express.

The monthly follow-up (:mod:`norrvakt.followup.sampling`) draws these accesses for review;
live detection raises them as alerts the moment they happen. Three rules, each one alert per
user and day at most, over the record-access logs of the social services
(``socialtjanst.*``) and student health (``health.*``):

- **volume outlier** — a user's record reads, prints and exports in one local day exceed
  ``max(MIN_OUTLIER_DAILY, OUTLIER_FACTOR × their median day)`` (sampling's constants; the
  median over the days with accesses among the previous ``baseline_days``); a user with no
  history of their own is compared with ``NEW_USER_FACTOR ×`` the typical user-day (the
  median of everyone's days in the window), as the follow-up does; while a system has no
  history at all in the tenant (just connected), nobody's normal is known and the rule waits;
- **after hours** — at least ``after_hours_min`` accesses outside working hours (before
  ``work_start_hour``, from ``work_end_hour``, weekends and Swedish public holidays) in one
  night: the hours before work starts belong to the previous day's night;
- **same surname / same address** — user and subject share a surname (medium) or an address
  (high) in the tenant's hashed lookup table (:mod:`norrvakt.followup.lookup`).

    improper = ImproperUse(runtime.store, runtime.state, zone="Europe/Stockholm")
    report.entries.extend(improper.statuses())      # three rows on the rules page
    detections = improper.process(events)           # after the engine, same worker thread

Costs: per tenant and local day one grouped query over the store (the baseline, and the
day's and the night's counts so far, so a restart loses nothing); counters live for today
and yesterday only. The lookup table is read through the state database for the ids in a
batch and cached per tenant; the cache is dropped when the table changes (checked every
``LOOKUP_CHECK_S``) and every ``LOOKUP_TTL_S`` in any case. Like the engine, an instance is
used by one thread at a time.
"""

from __future__ import annotations

import datetime as dt
import statistics
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from norrvakt.detect.derived import DerivedFields, WorkingHours, holidays_between
from norrvakt.detect.detection import Detection
from norrvakt.detect.ir import RuleInfo
from norrvakt.detect.report import RuleStatus
from norrvakt.event import Event, now_us
from norrvakt.followup.lookup import lookup_hash
from norrvakt.followup.sampling import (
    MIN_OUTLIER_DAILY,
    NEW_USER_FACTOR,
    OUTLIER_FACTOR,
    Sampler,
    SampleSpec,
)
from norrvakt.state import followup as lookup_rows
from norrvakt.state.db import followup_lookup
from norrvakt.store.clickhouse import ClickHouseStore
from norrvakt.store.schema import EVENTS_TABLE

DATASET_PREFIXES = ("socialtjanst.", "health.")
ACCESS_ACTIONS = ("record.read", "record.print", "record.export")  # sampling's _ACCESS
BASELINE_DAYS = 30
AFTER_HOURS_MIN = 5
LOOKUP_CHECK_S = 30
LEARNING_RECHECK_S = 300  # a day state with a dataset that had no history is read again this often
LOOKUP_TTL_S = 300
LOOKUP_CACHE_MAX = 200_000  # ids per tenant and kind before the cache starts over

_WHERE = "docs/rules.md#improper-use-baselines-and-lookups"
_TAGS = ("attack.collection", "norrvakt.improper_use")
VOLUME_OUTLIER = RuleInfo(
    id="bf1d7596-a85a-4430-bdb1-4dac06e054c1",
    title="Record accesses far above the user's own baseline",
    level="medium",
    tags=_TAGS,
    status="stable",
    description=(
        "A user read, printed or exported more records in one day than max(20, 3 × their median "
        "day over the last 30 days)."
    ),
    author="Norrvakt",
    falsepositives=("Year-end reviews, a colleague's caseload taken over",),
    path="norrvakt/detect/improper.py",
    custom=(("suppress_by", "user.name,norrvakt.day"),),
)
AFTER_HOURS = RuleInfo(
    id="1848ac70-c555-489c-badc-069625c8f21e",
    title="Repeated record access outside working hours",
    level="medium",
    tags=_TAGS,
    status="stable",
    description=(
        "A user accessed several records outside working hours (evening, night, weekend or Swedish "
        "public holiday) in one night or day off."
    ),
    author="Norrvakt",
    falsepositives=("On-call social services (socialjour), planned weekend work",),
    path="norrvakt/detect/improper.py",
    custom=(("suppress_by", "user.name,norrvakt.day"),),
)
SHARED_IDENTITY = RuleInfo(
    id="05cf0fe6-1f90-45e4-972b-89331a2826f5",
    title="Record of a person sharing the user's surname or address",
    level="high",
    tags=_TAGS,
    status="stable",
    description=(
        "User and subject share a surname (medium) or an address (high) according to the tenant's "
        "hashed lookup table: a possible conflict of interest."
    ),
    author="Norrvakt",
    falsepositives=("Common surnames", "Assigned case work on a namesake"),
    path="norrvakt/detect/improper.py",
    custom=(("suppress_by", "user.name,subject_id,norrvakt.day"),),
)
SAME_SURNAME = replace(SHARED_IDENTITY, level="medium")  # same id: a surname alone is weaker
RULES = (VOLUME_OUTLIER, AFTER_HOURS, SHARED_IDENTITY)
_NOTES = {SHARED_IDENTITY.id: "needs the tenant's hashed lookup table (norrvakt followup upload-lookup)"}

Key = tuple[str, str]  # (event.dataset, user.name)


@dataclass
class _Day:
    """One local day of one tenant: counts so far and the baseline it is judged against."""

    baseline: dict[Key, float] = field(default_factory=dict)
    # per dataset, the median user-day of everyone in the baseline window: what a user with no
    # history of their own is compared with; no entry = the dataset is new here (learning)
    typical: dict[str, float] = field(default_factory=dict)
    counts: dict[Key, int] = field(default_factory=lambda: defaultdict(int))
    fired: set[Key] = field(default_factory=set)


@dataclass
class _Night:
    """One day's off-hours (from work end, or all day off, until the next work start)."""

    counts: dict[Key, int] = field(default_factory=lambda: defaultdict(int))
    seqs: dict[Key, list[int]] = field(default_factory=lambda: defaultdict(list))
    fired: set[Key] = field(default_factory=set)


@dataclass
class _Tenant:
    today: dt.date
    days: dict[dt.date, _Day]
    nights: dict[dt.date, _Night]
    loaded_us: int = 0
    learning: bool = False  # a dataset had no history when loaded: look again after a while


class LookupCache:
    """The tenant's hashed lookup rows for the ids seen, read through the state database.

    ``find(kind, ids)`` → plain id → (surname hash, address hash) for the ids that have a row.
    """

    def __init__(self, engine: sa.Engine, tenant: str, clock: Callable[[], int]) -> None:
        self.engine = engine
        self.tenant = tenant
        self.clock = clock
        self._rows: dict[str, dict[str, tuple[str, str] | None]] = {"staff": {}, "subject": {}}
        self._fingerprint: tuple[tuple[Any, ...], ...] | None = None
        self._checked = 0
        self._loaded = 0

    def _check(self) -> None:
        now = self.clock()
        if self._fingerprint is not None and now - self._checked < LOOKUP_CHECK_S * 1_000_000:
            return
        t = followup_lookup
        with self.engine.connect() as conn:
            found = conn.execute(
                sa.select(t.c.kind, sa.func.count(), sa.func.min(t.c.id), sa.func.max(t.c.id))
                .where(t.c.tenant == self.tenant)
                .group_by(t.c.kind)
                .order_by(t.c.kind)
            ).all()
        fingerprint = tuple(tuple(r) for r in found)
        self._checked = now
        if fingerprint != self._fingerprint or now - self._loaded >= LOOKUP_TTL_S * 1_000_000:
            self._fingerprint = fingerprint
            self._loaded = now
            for rows in self._rows.values():
                rows.clear()

    def available(self) -> bool:
        """Both kinds uploaded (a match needs a staff row and a subject row)."""
        self._check()
        kinds = {str(r[0]) for r in self._fingerprint or ()}
        return {"staff", "subject"} <= kinds

    def find(self, kind: str, ids: Iterable[str]) -> dict[str, tuple[str, str]]:
        cache = self._rows[kind]
        missing = {i for i in ids if i not in cache}
        if missing:
            if len(cache) + len(missing) > LOOKUP_CACHE_MAX:
                cache.clear()
            by_hash = {lookup_hash(self.tenant, "id", i): i for i in missing}
            hashes = list(by_hash)
            with self.engine.connect() as conn:
                for n in range(0, len(hashes), 500):
                    chunk = lookup_rows.lookup(conn, self.tenant, kind, hashes[n : n + 500])
                    for id_hash, r in chunk.items():
                        cache[by_hash[id_hash]] = (r.get("surname_hash") or "", r.get("address_hash") or "")
            for i in missing:
                cache.setdefault(i, None)
        return {i: row for i in ids if (row := cache.get(i)) is not None}


class ImproperUse:
    """The three improper-use rules over stored record-access events (see the module doc)."""

    def __init__(
        self,
        store: ClickHouseStore,
        state: sa.Engine | None = None,
        *,
        zone: str = "Europe/Stockholm",
        work_start_hour: int = 7,
        work_end_hour: int = 18,
        baseline_days: int = BASELINE_DAYS,
        after_hours_min: int = AFTER_HOURS_MIN,
        clock: Callable[[], int] = now_us,
    ) -> None:
        self.store = store
        self.state = state
        self.zone = zone
        self.tz = ZoneInfo(zone)
        self.start_hour = work_start_hour
        self.end_hour = work_end_hour
        self.hours = DerivedFields(
            WorkingHours(zone=zone, start_hour=work_start_hour, end_hour=work_end_hour)
        )
        self.baseline_days = baseline_days
        self.after_hours_min = after_hours_min
        self.clock = clock
        self.queries = 0  # store queries made (one per tenant and day)
        self._tenants: dict[str, _Tenant] = {}
        self._lookups: dict[str, LookupCache] = {}
        # tenant → (the day it was pruned, local day → (user, subject) pairs that fired)
        self._shared_fired: dict[str, tuple[dt.date, dict[dt.date, set[tuple[str, str]]]]] = {}

    @staticmethod
    def statuses() -> list[RuleStatus]:
        """Rows for the load report: the rules page lists them and they switch on/off per tenant."""
        return [
            RuleStatus(r.path, 0, "baseline", True, _NOTES.get(r.id, ""), r.id, r.title, r.level)
            for r in RULES
        ]

    # -- time ------------------------------------------------------------------------------

    def local(self, ts_us: int) -> dt.datetime:
        return dt.datetime.fromtimestamp(ts_us // 1_000_000, self.tz)

    def night_of(self, local: dt.datetime) -> dt.date:
        """The day whose off-hours ``local`` falls in: before work start, the previous day's."""
        day = local.date()
        return day - dt.timedelta(days=1) if local.hour < self.start_hour else day

    def _start_us(self, day: dt.date) -> int:
        return int(dt.datetime.combine(day, dt.time(), self.tz).timestamp()) * 1_000_000

    # -- the stream --------------------------------------------------------------------------

    def process(self, events: Sequence[Event]) -> list[Detection]:
        """Detections for a stored batch (seqs set, in seq order per tenant)."""
        by_tenant: dict[str, list[Event]] = defaultdict(list)
        for e in events:
            if e.ecs.get("event.dataset", "").startswith(DATASET_PREFIXES) and e.ecs.get("user.name"):
                by_tenant[e.tenant].append(e)
        out: list[Detection] = []
        for tenant, mine in by_tenant.items():
            access = [e for e in mine if e.ecs.get("event.action") in ACCESS_ACTIONS]
            if access and self._current(access):
                self._counts(tenant, access, out)
            if self.state is not None:
                self._shared(tenant, mine, out)
        out.sort(key=lambda d: (d.tenant, d.refs[0][1] if d.refs else 0))
        return out

    def _current(self, events: list[Event]) -> bool:
        """Whether any of ``events`` falls in today's or yesterday's day or night; older ones
        (a backfill, an import) are the follow-up's and need no state."""
        today = self.local(self.clock()).date()
        open_days = {today, today - dt.timedelta(days=1)}
        for e in events:
            local = self.local(e.ts)
            if local.date() in open_days or self.night_of(local) in open_days:
                return True
        return False

    def _state(self, tenant: str, first_seq: int) -> _Tenant:
        now = self.clock()
        today = self.local(now).date()
        found = self._tenants.get(tenant)
        recheck_us = LEARNING_RECHECK_S * 1_000_000
        stale = found is not None and found.learning and now - found.loaded_us > recheck_us
        if found is None or found.today != today or stale:
            fresh = self._load(tenant, today, first_seq)
            fresh.loaded_us = now
            if found is not None:  # keep what already fired for the days still open
                for day, d in fresh.days.items():
                    if day in found.days:
                        d.fired |= found.days[day].fired
                for night, n in fresh.nights.items():
                    if night in found.nights:
                        n.fired |= found.nights[night].fired
            found = self._tenants[tenant] = fresh
        return found

    def _load(self, tenant: str, today: dt.date, first_seq: int) -> _Tenant:
        """Today's and yesterday's counts so far and baselines: one grouped query."""
        yesterday = today - dt.timedelta(days=1)
        first = yesterday - dt.timedelta(days=self.baseline_days)
        spec = SampleSpec(
            tenant=tenant,
            dataset="",
            since_us=0,
            until_us=0,
            random_n=0,
            per_reason=0,
            salt=0,
            zone=self.zone,
            work_start_hour=self.start_hour,
            work_end_hour=self.end_hour,
        )
        sampler = Sampler(self.store, spec)
        local = f"toTimeZone({EVENTS_TABLE}.ts, '{self.zone}')"
        actions = ", ".join(f"'{a}'" for a in ACCESS_ACTIONS)
        datasets = " OR ".join(f"startsWith(event_dataset, '{p}')" for p in DATASET_PREFIXES)
        rows = self.store.query(
            f"SELECT event_dataset, user_name, toString(toDate({local})) AS day, "
            f"toString(if(toHour({local}) < {int(self.start_hour)}, toDate({local}) - 1, toDate({local}))) "
            f"AS night, ({sampler.after_hours_condition()}) AS off, count() "
            f"FROM {EVENTS_TABLE} WHERE tenant = {{tenant:String}} AND ({datasets}) "
            f"AND event_action IN ({actions}) AND user_name != '' "
            f"AND {EVENTS_TABLE}.ts >= fromUnixTimestamp64Micro({{since:Int64}}, 'UTC') "
            f"AND {EVENTS_TABLE}.ts < fromUnixTimestamp64Micro({{until:Int64}}, 'UTC') "
            "AND seq < {first_seq:UInt64} "
            "GROUP BY event_dataset, user_name, day, night, off",
            {
                "tenant": tenant,
                "since": self._start_us(first),
                "until": self._start_us(today + dt.timedelta(days=1)),
                "first_seq": first_seq,
                "holidays": holidays_between(first, today),
            },
        )
        self.queries += 1
        daily: dict[Key, dict[dt.date, int]] = defaultdict(lambda: defaultdict(int))
        state = _Tenant(today, {yesterday: _Day(), today: _Day()}, {yesterday: _Night(), today: _Night()})
        for dataset, user, day, night, off, n in rows:
            key = (str(dataset), str(user))
            daily[key][dt.date.fromisoformat(str(day))] += int(n)
            open_night = state.nights.get(dt.date.fromisoformat(str(night)))
            if off and open_night is not None:
                open_night.counts[key] += int(n)
        for day, d in state.days.items():
            everyone: dict[str, list[int]] = defaultdict(list)
            for key, per_day in daily.items():
                d.counts[key] = per_day.get(day, 0)
                past = [
                    n
                    for when, n in per_day.items()
                    if day - dt.timedelta(days=self.baseline_days) <= when < day
                ]
                if past:
                    d.baseline[key] = statistics.median(past)
                    everyone[key[0]] += past
            d.typical = {dataset: statistics.median(days) for dataset, days in everyone.items()}
        return state

    def _counts(self, tenant: str, events: list[Event], out: list[Detection]) -> None:
        state = self._state(tenant, min(e.seq for e in events))
        for e in events:
            key = (e.ecs["event.dataset"], e.ecs["user.name"])
            local = self.local(e.ts)
            day = state.days.get(local.date())
            if day is not None:  # late or future events: left to the monthly follow-up
                day.counts[key] += 1
                n = day.counts[key]
                baseline = day.baseline.get(key, 0.0)
                typical = day.typical.get(key[0])
                if baseline:
                    limit = max(MIN_OUTLIER_DAILY, OUTLIER_FACTOR * baseline)
                    why = f"baseline {baseline:g} a day"
                elif typical is not None:
                    limit = max(MIN_OUTLIER_DAILY, NEW_USER_FACTOR * typical)
                    why = f"no history of their own, the typical user {typical:g} a day"
                else:  # the system is new to Norrvakt: nobody's normal is known yet
                    limit = float("inf")
                    why = ""
                    state.learning = True
                if n > limit and key not in day.fired:
                    day.fired.add(key)
                    detail = f"{n} record accesses on {local.date()} in {key[0]}; {why}, limit {limit:g}"
                    group: tuple[tuple[str, str], ...] = (
                        ("user.name", key[1]),
                        ("norrvakt.day", local.date().isoformat()),
                        ("norrvakt.count", str(n)),
                        ("norrvakt.baseline", f"{baseline:g}"),
                    )
                    out.append(self._detection(VOLUME_OUTLIER, e, group, detail, n))
            if not self.hours.off_hours(e.ts):  # the same hours as norrvakt.after_hours
                continue
            when = self.night_of(local)
            night = state.nights.get(when)
            if night is None:
                continue
            night.counts[key] += 1
            seqs = night.seqs[key]
            if len(seqs) < self.after_hours_min:
                seqs.append(e.seq)
            n = night.counts[key]
            if n >= self.after_hours_min and key not in night.fired:
                night.fired.add(key)
                group = (("user.name", key[1]), ("norrvakt.day", when.isoformat()))
                detail = (
                    f"{n} record accesses outside working hours ({self.start_hour:02d}–{self.end_hour:02d}, "
                    f"weekdays except public holidays) in the night/day off of {when} in {key[0]}"
                )
                refs = tuple((tenant, s) for s in [e.seq, *(s for s in seqs if s != e.seq)])
                out.append(self._detection(AFTER_HOURS, e, group, detail, n, refs))

    def _shared(self, tenant: str, events: list[Event], out: list[Detection]) -> None:
        pairs = [(e, e.ecs["user.name"], e.fields.get("subject_id", "")) for e in events]
        pairs = [p for p in pairs if p[2]]
        if not pairs or self.state is None:
            return
        cache = self._lookups.get(tenant)
        if cache is None:
            cache = self._lookups[tenant] = LookupCache(self.state, tenant, self.clock)
        if not cache.available():
            return
        staff = cache.find("staff", {u for _, u, _ in pairs})
        subjects = cache.find("subject", {s for _, _, s in pairs})
        if not staff or not subjects:
            return
        today = self.local(self.clock()).date()
        since, fired_by_day = self._shared_fired.get(tenant, (today, {}))
        if since != today:  # day change: forget the days before yesterday
            fired_by_day = {d: f for d, f in fired_by_day.items() if d >= today - dt.timedelta(days=1)}
        self._shared_fired[tenant] = (today, fired_by_day)
        for e, user, subject in pairs:
            a, b = staff.get(user), subjects.get(subject)
            if a is None or b is None:
                continue
            same = [what for what, x, y in (("surname", a[0], b[0]), ("address", a[1], b[1])) if x and x == y]
            if not same:
                continue
            day = self.local(e.ts).date()
            fired = fired_by_day.setdefault(day, set())
            if (user, subject) in fired:
                continue
            fired.add((user, subject))
            rule = SHARED_IDENTITY if "address" in same else SAME_SURNAME
            group = (
                ("user.name", user),
                ("subject_id", subject),
                ("norrvakt.day", day.isoformat()),
                ("norrvakt.shared", ",".join(same)),
            )
            detail = f"{user} and subject {subject} share a {' and an '.join(same)} (hashed lookup table)"
            out.append(self._detection(rule, e, group, detail, 1))

    @staticmethod
    def _detection(
        rule: RuleInfo,
        event: Event,
        group: tuple[tuple[str, str], ...],
        detail: str,
        events: int,
        refs: tuple[tuple[str, int], ...] | None = None,
    ) -> Detection:
        return Detection(
            "rule",
            rule,
            event.tenant,
            refs or ((event.tenant, event.seq),),
            group,
            event,
            event.ts,
            events,
            detail,
        )
