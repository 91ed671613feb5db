"""The periodic reports wired to a running Norrvakt: where their figures come from (the
runtime's store, state, journal and witnesses; the integrity verification of the running
journal) and the scheduler `norrvakt serve` runs (``runtime.extras["report_scheduler"]``)."""

from __future__ import annotations

import socket
from typing import TYPE_CHECKING

from norrvakt.integrity import options_for, running_cut, verify_running
from norrvakt.journal.report import VerifyReport
from norrvakt.reports.monthly import ReportSources
from norrvakt.reports.schedule import ReportScheduler

if TYPE_CHECKING:
    from norrvakt.alerts.notify.smtp import EmailChannel
    from norrvakt.node.runtime import Runtime

EXTRAS_KEY = "report_scheduler"


def sources_for(rt: Runtime) -> ReportSources:
    def verify(tenants: list[str]) -> VerifyReport:
        return verify_running(rt, running_cut(rt), options_for(rt.settings, tenants=tenants))

    return ReportSources(
        store=rt.store,
        state=rt.state,
        settings=rt.settings,
        journal_dir=rt.journal.root,
        witnesses=rt.checkpointer.witnesses,
        verify=verify,
    )


def report_channel(rt: Runtime) -> EmailChannel | None:
    """The email channel ``reports.channel`` names (None: reports are not sent)."""
    from norrvakt.alerts.notify.smtp import EmailChannel

    name = rt.settings.reports.channel
    found = next((c for c in rt.settings.alerts.channels if c.name == name), None) if name else None
    return EmailChannel(found) if found is not None else None


async def start_reports(rt: Runtime) -> ReportScheduler:
    owner = f"{socket.gethostname()}:{rt.settings.data_path.resolve()}"[:128]
    scheduler = ReportScheduler(sources_for(rt), rt.pipeline, report_channel(rt), owner)
    rt.extras[EXTRAS_KEY] = scheduler
    scheduler.start()
    return scheduler


async def stop_reports(rt: Runtime) -> None:
    scheduler = rt.extras.get(EXTRAS_KEY)
    if isinstance(scheduler, ReportScheduler):
        await scheduler.stop()
