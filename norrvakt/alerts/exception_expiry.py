"""Expired exceptions go into the audit trail: an exception stops applying at its expiry by
itself (the intake compares the time), and this watch records that it did — once, by one node
— as ``exception-expired`` by ``norrvakt``, next to the ``exception-create`` that set the date.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from typing import TYPE_CHECKING

import sqlalchemy as sa

from norrvakt import audit
from norrvakt.event import now_us
from norrvakt.state import exceptions as exception_rows
from norrvakt.tasks import cancel_and_wait

if TYPE_CHECKING:
    from norrvakt.node.pipeline import Pipeline

log = logging.getLogger(__name__)

CHECK_EVERY_S = 10.0  # a small table; an expiry is in the audit trail within seconds
ACTOR = "norrvakt"


class ExpiryWatch:
    def __init__(self, engine: sa.Engine, pipeline: Pipeline, every_s: float = CHECK_EVERY_S) -> None:
        self.engine = engine
        self.pipeline = pipeline
        self.every_s = every_s
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="exception-expiry")

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None

    async def check(self) -> int:
        """Audit the exceptions that expired since the last look; how many."""
        expired = await asyncio.to_thread(exception_rows.claim_expired, self.engine, now_us())
        for row in expired:
            await audit.record(
                self.pipeline,
                ACTOR,
                "exception-expired",
                exception=row["id"],
                tenant=row["tenant"],
                rule=row["rule_id"] or row["rule_group"],
                expires_at=dt.datetime.fromtimestamp(row["expires_at"] / 1e6, dt.UTC).isoformat(),
                author=row["author"],
            )
        return len(expired)

    async def _run(self) -> None:
        while True:
            try:
                await self.check()
            except Exception as exc:  # the state database away: the next look tries again
                log.error("exception expiry check failed: %s: %s", type(exc).__name__, exc)
            await asyncio.sleep(self.every_s)
