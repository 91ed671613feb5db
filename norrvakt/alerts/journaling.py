"""Case history into the journal: every history line also becomes an audit event of the
system tenant (sealed like any log), so a changed case can be proven — and a history row
removed behind the database's back would still be on record."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

from norrvakt.alerts.model import Change
from norrvakt.audit import audit_event
from norrvakt.event import Event

if TYPE_CHECKING:
    from norrvakt.node.pipeline import Pipeline

log = logging.getLogger(__name__)


def audit_events(changes: Sequence[Change], peer: str = "") -> list[Event]:
    out = []
    for c in changes:
        event = audit_event(
            c.actor,
            f"case-{c.action}",
            peer=peer,
            details={
                "case": str(c.case_id),
                "tenant": c.tenant,
                "field": c.field,
                "old": c.old[:500],
                "new": c.new[:500],
            },
        )
        event.ts = c.at
        out.append(event)
    return out


async def journal(pipeline: Pipeline, changes: Sequence[Change], peer: str = "") -> None:
    """Journal ``changes`` durably (before the API answers)."""
    if changes:
        await pipeline.commit(audit_events(changes, peer))


class JournalFromThreads:
    """For changes made off the event loop (ingest workers): queued onto the loop's pipeline."""

    def __init__(self, pipeline: Pipeline, loop: asyncio.AbstractEventLoop) -> None:
        self.pipeline = pipeline
        self.loop = loop

    def __call__(self, changes: list[Change]) -> None:
        events = audit_events(changes)
        self.loop.call_soon_threadsafe(self._commit, events)

    def _commit(self, events: list[Event]) -> None:
        fut = self.pipeline.commit_nowait(events)
        fut.add_done_callback(_report)


def _report(fut: asyncio.Future[None]) -> None:
    if not fut.cancelled() and fut.exception() is not None:
        log.error("case history not journaled: %s", fut.exception())
