"""Escalation: a case still ``new`` (nobody acknowledged it) after
``alerts.escalate_after_minutes`` is escalated once — marked, written to its history and
told to the escalation channels and its routes' channels — so nothing falls between shifts."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import sqlalchemy as sa

from norrvakt.alerts.casebook import record
from norrvakt.alerts.dispatcher import Dispatcher
from norrvakt.alerts.model import LEVEL_RANK, Change
from norrvakt.alerts.notify.message import Notice
from norrvakt.alerts.records import case_from_row
from norrvakt.config import AlertSettings
from norrvakt.event import now_us
from norrvakt.state import cases as case_rows
from norrvakt.tasks import cancel_and_wait

log = logging.getLogger(__name__)

ACTOR = "norrvakt"


class Escalator:
    def __init__(
        self,
        engine: sa.Engine,
        settings: AlertSettings,
        dispatcher: Dispatcher,
        *,
        on_changes: Callable[[list[Change]], None] | None = None,
        clock: Callable[[], int] = now_us,
    ) -> None:
        self.engine = engine
        self.after_us = int(settings.escalate_after_minutes * 60 * 1_000_000)
        self.severities = [lv for lv, r in LEVEL_RANK.items() if r >= LEVEL_RANK[settings.escalate_min_level]]
        self.channels = list(settings.escalation_channels)
        self.dispatcher = dispatcher
        self.on_changes = on_changes
        self.clock = clock
        self._task: asyncio.Task[None] | None = None

    @property
    def interval_s(self) -> float:
        return min(30.0, max(1.0, self.after_us / 4e6))

    def start(self) -> None:
        if self.after_us > 0:
            self._task = asyncio.create_task(self._run(), name="escalation")

    async def stop(self) -> None:
        await cancel_and_wait(self._task)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            try:
                await self.run_once()
            except sa.exc.SQLAlchemyError as exc:  # the database may be back next round
                log.error("escalation check failed: %s", exc)

    async def run_once(self) -> list[Change]:
        """Escalate every overdue new case; returns the history written."""
        changes, notices = await asyncio.to_thread(self._escalate)
        for notice in notices:
            if not self.dispatcher.notifies(notice.tenant):
                continue  # the tenant has no 24/7 SOC notification: the case waits for office hours
            routes = self.dispatcher.router.channels_for(notice.tenant, notice.level)
            self.dispatcher.send(notice, dict.fromkeys([*self.channels, *routes]))
        if changes and self.on_changes is not None:
            self.on_changes(changes)
        return changes

    def _escalate(self) -> tuple[list[Change], list[Notice]]:
        now = self.clock()
        changes: list[Change] = []
        notices: list[Notice] = []
        with self.engine.begin() as conn:
            for row in case_rows.unacknowledged(conn, now - self.after_us, self.severities):
                if not case_rows.mark_escalated(conn, int(row["id"]), now):
                    continue
                case = case_from_row(row)
                waited = (now - case.created_at) // 60_000_000
                changes += record(
                    conn,
                    [Change(case.id, case.tenant, now, ACTOR, "escalated", "escalated_at", "", str(now))],
                )
                notices.append(
                    Notice(
                        kind="case.escalated",
                        tenant=case.tenant,
                        level=case.severity,
                        title=f"Not acknowledged after {waited} min: {case.title}",
                        at=now,
                        case=case.as_dict(),
                        url=f"{self.dispatcher.public_url}/api/cases/{case.id}"
                        if self.dispatcher.public_url
                        else "",
                    )
                )
        return changes, notices
