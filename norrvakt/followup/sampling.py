"""Drawing a follow-up sample from the store: random accesses plus the targeted ones.

Every reason is one query over the tenant's accesses in the period (``events`` ordered by
tenant and time, so the scan is the period's rows only). Within a reason, rows are taken in
the order of ``cityHash64(seq, salt)``: a spread over the period that is the same every time
the same round is drawn (the salt derives from the plan and the period), so a sample can be
re-derived by an auditor and cannot be re-rolled until it looks comfortable.

Reasons (an access can have several):

- ``random`` — the random part of the sample;
- ``protected_not_assigned`` — a protected-identity record read, printed or exported by a
  user not on the case; ``protected_search`` — a search that named a protected person;
- ``no_case_relation`` — read/print/export by a user not on the case (or, in student health,
  without a care relationship);
- ``after_hours`` — outside working hours in the tenant's time zone: weekends and Swedish
  public holidays (and Midsummer, Christmas and New Year's Eve) included;
- ``volume_outlier`` — accesses on a day when the user's count was far above their own
  baseline (the 90 days before the period) — or, for users with no baseline, far above the
  period's typical user;
- ``same_surname`` / ``same_address`` — user and subject share a surname or an address
  according to the tenant's hashed lookup table (:mod:`norrvakt.followup.lookup`).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import statistics
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from norrvakt.detect.derived import holidays_between
from norrvakt.followup.lookup import lookup_hash
from norrvakt.store.clickhouse import ClickHouseStore
from norrvakt.store.schema import EVENTS_TABLE

REASONS = (
    "random",
    "protected_not_assigned",
    "protected_search",
    "no_case_relation",
    "after_hours",
    "volume_outlier",
    "same_surname",
    "same_address",
)
BASELINE_DAYS = 90
MIN_OUTLIER_DAILY = 20  # fewer accesses in a day are never an outlier, whatever the baseline
OUTLIER_FACTOR = 3.0
NEW_USER_FACTOR = 5.0  # a user with no baseline of their own: times the typical user-day

_ACCESS = "event_action IN ('record.read', 'record.print', 'record.export')"
_CONDITIONS = {
    "protected_not_assigned": f"{_ACCESS} AND fields['subject.protected'] = 'true' "
    "AND fields['user.assigned_to_case'] = 'false'",
    "protected_search": "event_action = 'record.search' AND fields['subject.protected'] = 'true' "
    "AND fields['user.assigned_to_case'] != 'true'",
    "no_case_relation": f"{_ACCESS} AND fields['subject.protected'] != 'true' "
    "AND (fields['user.assigned_to_case'] = 'false' "
    "OR lower(fields['care_relation']) IN ('no', 'nej', 'false'))",
}

Lookup = Callable[[str, list[str]], dict[str, dict[str, Any]]]  # kind, id hashes → rows


@dataclass(frozen=True)
class SampleSpec:
    tenant: str
    dataset: str
    since_us: int
    until_us: int
    random_n: int
    per_reason: int
    salt: int
    zone: str = "Europe/Stockholm"
    work_start_hour: int = 7
    work_end_hour: int = 18


@dataclass
class Drawn:
    seq: int
    ts: int
    user: str
    subject: str
    action: str
    summary: str
    reasons: list[str] = field(default_factory=list)


@dataclass
class Sample:
    population: int
    items: list[Drawn]
    reason_totals: dict[str, int]  # reason → accesses in the period with that reason (before the cap)


def salt_for(plan_id: int, period_label: str) -> int:
    digest = hashlib.sha256(f"{plan_id}\x1f{period_label}".encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1  # fits Int64 and UInt64


class Sampler:
    def __init__(self, store: ClickHouseStore, spec: SampleSpec, lookup: Lookup | None = None) -> None:
        ZoneInfo(spec.zone)  # a bad zone fails here, not inside SQL
        if not spec.zone.replace("/", "").replace("_", "").replace("-", "").replace("+", "").isalnum():
            raise ValueError(f"time zone {spec.zone!r}")
        self.store = store
        self.spec = spec
        self.lookup = lookup
        self.params: dict[str, Any] = {
            "tenant": spec.tenant,
            "dataset": spec.dataset,
            "since": spec.since_us,
            "until": spec.until_us,
            "salt": spec.salt,
            # local dates, so a day either side of the period's UTC range
            "holidays": holidays_between(
                dt.datetime.fromtimestamp(spec.since_us // 1_000_000, dt.UTC).date() - dt.timedelta(days=1),
                dt.datetime.fromtimestamp(spec.until_us // 1_000_000, dt.UTC).date() + dt.timedelta(days=1),
            ),
        }

    # -- SQL ---------------------------------------------------------------------------------

    def _where(self, since: str = "since") -> str:
        return (
            f"tenant = {{tenant:String}} AND event_dataset = {{dataset:String}} "
            f"AND {EVENTS_TABLE}.ts >= fromUnixTimestamp64Micro({{{since}:Int64}}, 'UTC') "
            f"AND {EVENTS_TABLE}.ts < fromUnixTimestamp64Micro({{until:Int64}}, 'UTC')"
        )

    def _local(self, expr: str) -> str:
        return f"toTimeZone({EVENTS_TABLE}.ts, '{self.spec.zone}')" if expr == "ts" else expr

    def _rows(
        self, condition: str, limit: int, extra: dict[str, Any] | None = None
    ) -> tuple[list[Drawn], int]:
        """Up to ``limit`` accesses matching ``condition``, and how many match in all."""
        params = {**self.params, **(extra or {})}
        where = f"{self._where()} AND ({condition})"
        total = int(self.store.query(f"SELECT count() FROM {EVENTS_TABLE} WHERE {where}", params)[0][0])
        if total == 0 or limit <= 0:
            return [], total
        rows = self.store.query(
            f"SELECT seq, toUnixTimestamp64Micro({EVENTS_TABLE}.ts), user_name, fields['subject_id'], "
            f"event_action, message FROM {EVENTS_TABLE} WHERE {where} "
            f"ORDER BY cityHash64(seq, {{salt:UInt64}}) LIMIT {int(limit)}",
            params,
        )
        drawn = [
            Drawn(int(seq), int(ts), str(user), str(subject), str(action).removeprefix("record."), str(msg))
            for seq, ts, user, subject, action, msg in rows
        ]
        return drawn, total

    # -- reasons -------------------------------------------------------------------------------

    def population(self) -> int:
        return int(
            self.store.query(f"SELECT count() FROM {EVENTS_TABLE} WHERE {self._where()}", self.params)[0][0]
        )

    def after_hours_condition(self) -> str:
        local = self._local("ts")
        s = self.spec
        return (
            f"toHour({local}) < {int(s.work_start_hour)} OR toHour({local}) >= {int(s.work_end_hour)} "
            f"OR toDayOfWeek({local}) >= 6 OR has({{holidays:Array(String)}}, toString(toDate({local})))"
        )

    def outlier_days(self) -> list[tuple[str, str]]:
        """(user, local date) pairs far above the user's own baseline."""
        params = {**self.params, "base": self.spec.since_us - BASELINE_DAYS * 86_400 * 1_000_000}
        rows = self.store.query(
            f"SELECT user_name, toString(toDate({self._local('ts')})) AS day, "
            f"{EVENTS_TABLE}.ts >= fromUnixTimestamp64Micro({{since:Int64}}, 'UTC') AS in_period, count() "
            f"FROM {EVENTS_TABLE} WHERE {self._where('base')} AND user_name != '' "
            "GROUP BY user_name, day, in_period",
            params,
        )
        baseline: dict[str, list[int]] = defaultdict(list)
        current: list[tuple[str, str, int]] = []
        for user, day, in_period, n in rows:
            if in_period:
                current.append((str(user), str(day), int(n)))
            else:
                baseline[str(user)].append(int(n))
        typical = statistics.median([n for _, _, n in current]) if current else 0
        out = []
        for user, day, n in current:
            past = baseline.get(user)
            if past:
                mean = statistics.fmean(past)
                spread = statistics.pstdev(past) if len(past) > 1 else 0.0
                limit = max(MIN_OUTLIER_DAILY, OUTLIER_FACTOR * statistics.median(past), mean + 3 * spread)
            else:
                limit = max(MIN_OUTLIER_DAILY, NEW_USER_FACTOR * typical)
            if n > limit:
                out.append((user, day))
        return out

    def shared_pairs(self) -> dict[str, list[str]]:
        """reason → ``user\\x1fsubject`` keys of pairs sharing a surname or an address."""
        if self.lookup is None:
            return {}
        pairs = self.store.query(
            f"SELECT DISTINCT user_name, fields['subject_id'] FROM {EVENTS_TABLE} "
            f"WHERE {self._where()} AND user_name != '' AND fields['subject_id'] != ''",
            self.params,
        )
        if not pairs:
            return {}
        tenant = self.spec.tenant
        user_hash = {str(u): lookup_hash(tenant, "id", str(u)) for u, _ in pairs}
        subject_hash = {str(s): lookup_hash(tenant, "id", str(s)) for _, s in pairs}
        staff = self.lookup("staff", list(set(user_hash.values())))
        subjects = self.lookup("subject", list(set(subject_hash.values())))
        found: dict[str, list[str]] = {"same_surname": [], "same_address": []}
        for u, s in pairs:
            a, b = staff.get(user_hash[str(u)]), subjects.get(subject_hash[str(s)])
            if not a or not b:
                continue
            for reason, column in (("same_surname", "surname_hash"), ("same_address", "address_hash")):
                if a.get(column) and a.get(column) == b.get(column):
                    found[reason].append(f"{u}\x1f{s}")
        return {k: v for k, v in found.items() if v}

    # -- the sample ------------------------------------------------------------------------------

    def draw(self) -> Sample:
        spec = self.spec
        by_seq: dict[int, Drawn] = {}
        totals: dict[str, int] = {}

        def take(reason: str, drawn: list[Drawn], total: int) -> None:
            totals[reason] = total
            for d in drawn:
                kept = by_seq.setdefault(d.seq, d)
                if reason not in kept.reasons:
                    kept.reasons.append(reason)

        # Targeted first, so an access drawn for a reason and at random shows both.
        for reason, condition in _CONDITIONS.items():
            take(reason, *self._rows(condition, spec.per_reason))
        take("after_hours", *self._rows(self.after_hours_condition(), spec.per_reason))
        outliers = self.outlier_days()
        if outliers:
            keys = [f"{u}\x1f{d}" for u, d in outliers]
            take(
                "volume_outlier",
                *self._rows(
                    "has({keys:Array(String)}, "
                    f"concat(user_name, '\\x1f', toString(toDate({self._local('ts')}))))",
                    spec.per_reason,
                    {"keys": keys},
                ),
            )
        else:
            totals["volume_outlier"] = 0
        shared = self.shared_pairs()
        for reason in ("same_surname", "same_address"):
            if reason in shared:
                take(
                    reason,
                    *self._rows(
                        "has({pairs:Array(String)}, concat(user_name, '\\x1f', fields['subject_id']))",
                        spec.per_reason,
                        {"pairs": shared[reason]},
                    ),
                )
            else:
                totals[reason] = 0
        population = self.population()
        take("random", *self._rows("1", spec.random_n))
        totals["random"] = population
        items = sorted(by_seq.values(), key=lambda d: (d.ts, d.seq))
        return Sample(population=population, items=items, reason_totals=totals)
