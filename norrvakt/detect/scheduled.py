"""Scheduled searches: saved searches that end in a rule step (:mod:`norrvakt.detect.search_rule`)
run on their schedule in the server, and what they find becomes alerts through the same
:class:`~norrvakt.alerts.service.AlertService` as Sigma matches — so the same rule settings,
exceptions, dedupe, cases and notifications apply.

    runner = SearchRuleRunner(store, engine, soc.alerts, settings, tenants)
    outcomes = runner.run_due()              # claims each due rule (one node runs it), runs it
    runner.run(row, now)                     # one rule now, without a claim (tests, "run now")

The alert of a group is keyed to the rule (``search-<id>``), the tenant and the ``by`` values;
its time is the newest matching event of the window (threshold) or the last event seen
(absence), so the next run that finds the same group raises the alert's count instead of
making a new one, within ``alerts.suppression_window_minutes``. The newest matching events are
the alert's evidence.

Every run is audited by :class:`ScheduledSearches` as a ``search`` of ``norrvakt`` (mode
``search-rule``), as every search is.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import sqlalchemy as sa

from norrvakt import audit
from norrvakt.alerts.model import AlertInput
from norrvakt.config import SearchRuleSettings, SearchSettings
from norrvakt.detect.search_rule import SearchRule, parse_rule
from norrvakt.event import SYSTEM_TENANT, now_us
from norrvakt.state import saved_searches as rows
from norrvakt.store.clickhouse import ClickHouseStore
from norrvakt.store.query_ast import QueryError
from norrvakt.store.rule_counts import EVIDENCE, Group, events_in_span, gone_silent, over_threshold
from norrvakt.tasks import cancel_and_wait

if TYPE_CHECKING:
    from norrvakt.alerts.model import Alert
    from norrvakt.node.runtime import Runtime

log = logging.getLogger(__name__)

US = 1_000_000
RULE_PREFIX = "search-"
ACTOR = "norrvakt"


class Intake(Protocol):
    def ingest(self, inputs: Sequence[AlertInput]) -> list[Alert]: ...


class ScanTooBig(ValueError):
    """A run would read more stored events than ``search_rules.max_scan_events``."""


def rule_id(search_id: int) -> str:
    return f"{RULE_PREFIX}{search_id}"


def rule_scope(row: dict[str, Any], all_tenants: Sequence[str]) -> list[str]:
    """The tenants a saved search runs over: its tenant, or every tenant for a region-wide one."""
    if row["tenant"] == rows.ALL_TENANTS:
        return [t for t in all_tenants if t != SYSTEM_TENANT]
    return [str(row["tenant"])] if row["tenant"] in all_tenants else []


def check_scan(store: ClickHouseStore, rule: SearchRule, scope: Sequence[str], now: int, limit: int) -> int:
    """Events one run would read now; :class:`ScanTooBig` beyond ``limit``."""
    n = events_in_span(store, scope, now - rule.scanned_s * US, now)
    if n > limit:
        raise ScanTooBig(
            f"one run would read {n:,} stored events ({len(scope)} tenant(s) over "
            f"{rule.scanned_s // 60} min), "
            f"more than search_rules.max_scan_events ({limit:,}): narrow the tenants or shorten the window"
        )
    return n


def evaluate(store: ClickHouseStore, rule: SearchRule, scope: Sequence[str], now: int) -> list[Group]:
    """The groups that meet the rule at ``now`` (nothing is alerted)."""
    if rule.kind == "threshold":
        return over_threshold(
            store,
            rule.parsed,
            scope,
            by=rule.by,
            since_us=now - rule.window_s * US,
            until_us=now,
            op=rule.op,
            threshold=rule.threshold,
        )
    return gone_silent(
        store,
        rule.parsed,
        scope,
        by=rule.by,
        window_start_us=now - rule.window_s * US,
        until_us=now,
        lookback_s=rule.lookback_s,
    )


def inputs_of(row: dict[str, Any], rule: SearchRule, groups: Sequence[Group]) -> list[AlertInput]:
    """One alert input per group: entities are the ``by`` values, which also key its dedupe."""
    return [
        AlertInput(
            tenant=g.tenant,
            rule_id=rule_id(int(row["id"])),
            rule_title=str(row["name"]),
            level=str(row["level"]) or "medium",
            tags=["norrvakt.search_rule", f"norrvakt.{rule.kind}"],
            event_seq=g.last_seq,
            event_ts=g.last_ts,
            entities=dict(g.values),
            dedupe_key_fields=list(rule.by),
            source="search",
            related_seqs=tuple(s for s in g.seqs if s != g.last_seq)[: EVIDENCE - 1],
        )
        for g in groups
    ]


@dataclass(frozen=True)
class RunOutcome:
    search_id: int
    name: str
    tenants: str
    status: str  # ok (nothing found) | fired | skipped | error
    result: str
    groups: int = 0
    alerts: int = 0
    created: int = 0


class SearchRuleRunner:
    def __init__(
        self,
        store: ClickHouseStore,
        engine: sa.Engine,
        intake: Intake | None,
        settings: SearchRuleSettings,
        tenants: Sequence[str],
        limits: SearchSettings | None = None,
        *,
        clock: Callable[[], int] = now_us,
    ) -> None:
        self.store = store
        self.engine = engine
        self.intake = intake
        self.settings = settings
        self.tenants = list(tenants)
        self.limits = limits or SearchSettings()
        self.clock = clock

    def parse(self, text: str) -> SearchRule:
        return parse_rule(
            text,
            max_length=self.limits.max_query_length,
            max_depth=self.limits.max_query_depth,
            max_window_s=self.settings.max_window_s,
        )

    def run_due(self, now: int | None = None) -> list[RunOutcome]:
        """Run every scheduled search that is due and that this node claims."""
        now = self.clock() if now is None else now
        with self.engine.connect() as conn:
            found = rows.due(conn, now)
        return [self.run(row, now) for row in found if rows.claim(self.engine, row, now)]

    def run(self, row: dict[str, Any], now: int) -> RunOutcome:
        """Run one scheduled search now and record its outcome on the row."""
        scope = rule_scope(row, self.tenants)
        outcome = self._outcome(row, scope, now)
        rows.record_run(
            self.engine,
            int(row["id"]),
            at=now,
            status=outcome.status,
            result=outcome.result,
            alerts=outcome.alerts,
        )
        return outcome

    def _outcome(self, row: dict[str, Any], scope: list[str], now: int) -> RunOutcome:
        sid, name, where = int(row["id"]), str(row["name"]), ",".join(scope) or str(row["tenant"])
        if not scope:
            return RunOutcome(sid, name, where, "skipped", f"tenant {row['tenant']!r} is not configured")
        try:
            rule = self.parse(str(row["query"]))
            check_scan(self.store, rule, scope, now, self.settings.max_scan_events)
            groups = evaluate(self.store, rule, scope, now)
        except ScanTooBig as exc:
            return RunOutcome(sid, name, where, "skipped", str(exc))
        except QueryError as exc:
            return RunOutcome(sid, name, where, "error", f"the query no longer reads: {exc}")
        except Exception as exc:  # the store away: said on the rules page, tried at the next run
            log.error("scheduled search %d (%s) failed: %s: %s", sid, name, type(exc).__name__, exc)
            return RunOutcome(sid, name, where, "error", f"{type(exc).__name__}: {exc}"[:500])
        if not groups:
            return RunOutcome(sid, name, where, "ok", f"nothing found ({rule.describe()})")
        if self.intake is None:
            return RunOutcome(sid, name, where, "error", "no alert intake on this node", len(groups))
        alerts = self.intake.ingest(inputs_of(row, rule, groups))
        created = sum(1 for a in alerts if a.created)
        shown = "; ".join(_group_text(g) for g in groups[:5]) + (" …" if len(groups) > 5 else "")
        result = f"{len(groups)} group(s) ({rule.describe()}): {shown}; {created} new alert(s)"
        return RunOutcome(sid, name, where, "fired", result, len(groups), len(alerts), created)


def _group_text(g: Group) -> str:
    values = ", ".join(f"{k}={v}" for k, v in g.values.items())
    return f"{g.tenant}{' ' + values if values else ''}: {g.count}"


class ScheduledSearches:
    """The server's scheduler: every ``search_rules.check_every_s`` the due scheduled searches
    run (in a worker thread), and each run goes into the audit trail."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.settings = runtime.settings.search_rules
        self._task: asyncio.Task[None] | None = None
        self.runner: SearchRuleRunner | None = None

    def start(self) -> None:
        soc = self.runtime.extras.get("soc")
        rt = self.runtime
        self.runner = SearchRuleRunner(
            rt.store,
            rt.state,
            soc.alerts if soc is not None else None,
            self.settings,
            list(rt.settings.tenants),
            rt.settings.search,
        )
        self._task = asyncio.get_running_loop().create_task(self._loop(), name="scheduled-searches")

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None

    async def check(self) -> list[RunOutcome]:
        """Run what is due now and audit each run."""
        if self.runner is None:
            return []
        outcomes = await asyncio.to_thread(self.runner.run_due)
        for o in outcomes:
            await audit.record(
                self.runtime.pipeline,
                ACTOR,
                "search",
                outcome="failure" if o.status == "error" else "success",
                mode="search-rule",
                rule=rule_id(o.search_id),
                name=o.name,
                tenants=o.tenants,
                status=o.status,
                groups=o.groups,
                alerts=o.alerts,
                result=o.result[:500],
            )
        return outcomes

    async def _loop(self) -> None:
        while True:
            try:
                await self.check()
            except Exception as exc:  # the state database away: the next look tries again
                log.error("scheduled searches: %s: %s", type(exc).__name__, exc)
            await asyncio.sleep(self.settings.check_every_s)
