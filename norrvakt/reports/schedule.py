"""Sending the periodic reports on schedule: after each period (``reports.schedule``, at
``reports.send_hour`` local time on the day it ended) every tenant with recipients gets its
own report, and the region's recipients the region report — also when nothing happened.

    scheduler = ReportScheduler(src, pipeline, channel, owner)
    await scheduler.run_once()      # what `norrvakt serve` does every minute
    scheduler.start() / await scheduler.stop()

Per report and period, in this order, so nothing is half done: claim the run (state
``report_runs``; one node wins), make the report (figures, HTML, PDF), send it to all of its
recipients or none (the SMTP transaction is reset if any is refused), journal the digests
(``report-sent`` in the system tenant, SHA-256 of the PDF and of the HTML), mark it sent.
A failure at any step marks the run failed with why, journals that too (``outcome=failure``)
and the run is tried again after ``reports.retry_minutes``, up to ``reports.max_attempts``.
Only the newest ended period is sent by the schedule; an older one is re-rendered on request
(``norrvakt reports render``) — the schedule never sends a backlog of stale reports.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from norrvakt import audit
from norrvakt.reports.mail import message
from norrvakt.reports.periods import Period, due_us, last_complete
from norrvakt.reports.region import REGION
from norrvakt.reports.service import language_of, make_report
from norrvakt.state import report_runs
from norrvakt.tasks import cancel_and_wait

if TYPE_CHECKING:
    from norrvakt.alerts.notify.smtp import EmailChannel
    from norrvakt.config import ReportSettings
    from norrvakt.node.pipeline import Pipeline
    from norrvakt.reports.monthly import ReportSources

log = logging.getLogger(__name__)

ACTOR = "norrvakt"
CHECK_EVERY_S = 60.0


@dataclass(frozen=True)
class Outcome:
    tenant: str
    period: str
    status: str  # sent | failed
    detail: str
    pdf_sha256: str = ""


def recipients_of(settings: ReportSettings, tenant: str) -> list[str]:
    """The addresses ``tenant``'s report goes to — its own only (``_region``: the region's)."""
    if tenant == REGION:
        return [a.strip() for a in settings.region_recipients if a.strip()]
    return [a.strip() for a in settings.recipients.get(tenant, "").split(",") if a.strip()]


class ReportScheduler:
    def __init__(
        self,
        src: ReportSources,
        pipeline: Pipeline | None,
        channel: EmailChannel | None,
        owner: str,
        every_s: float = CHECK_EVERY_S,
    ) -> None:
        self.src = src
        self.pipeline = pipeline
        self.channel = channel
        self.owner = owner
        self.every_s = every_s
        self._task: asyncio.Task[None] | None = None

    @property
    def settings(self) -> ReportSettings:
        return self.src.settings.reports

    def due(self, now: int) -> Period | None:
        """The period whose reports are due at ``now`` (None before its send hour)."""
        period = last_complete(self.settings.schedule, self.src.settings.timezone, now)
        return period if now >= due_us(period, self.settings.send_hour) else None

    def addressees(self) -> list[tuple[str, list[str]]]:
        """(tenant or _region, recipients) of every report the schedule sends."""
        out = [(t, recipients_of(self.settings, t)) for t in self.src.settings.tenants]
        out.append((REGION, recipients_of(self.settings, REGION)))
        return [(t, r) for t, r in out if r]

    async def run_once(self) -> list[Outcome]:
        """Send what is due and not sent yet (or failed long enough ago)."""
        if self.channel is None:
            return []
        period = self.due(self.src.clock())
        if period is None:
            return []
        return [await self.send(t, period, r) for t, r in self.addressees()]

    async def send(self, tenant: str, period: Period, recipients: list[str]) -> Outcome:
        s = self.settings
        language = language_of(self.src, tenant)
        run = await asyncio.to_thread(
            report_runs.claim,
            self.src.state,
            tenant,
            period.schedule,
            period.label,
            language,
            recipients,
            self.owner,
            self.src.clock(),
            int(s.retry_minutes * 60e6),
            s.max_attempts,
        )
        if run is None:
            return Outcome(
                tenant, period.label, "skipped", "sent already, claimed by another node or no attempts left"
            )
        details: dict[str, str] = {
            "tenant": tenant,
            "period": period.label,
            "schedule": period.schedule,
            "run": str(run),
        }
        try:
            report = await asyncio.to_thread(
                make_report, self.src, tenant, period.label, language, produced_by=ACTOR, pdf=True
            )
            if self.channel is None:
                raise RuntimeError("reports.channel is not set: there is no server to send reports with")
            if report.pdf is None:
                raise RuntimeError("the report was made without its PDF")
            pdf = report.pdf
            msg = message(report, self.channel.sender, recipients)
            note = await asyncio.to_thread(self.channel.deliver, msg, recipients)
        except Exception as exc:  # a failed report is recorded and retried, never lost in a log line
            why = f"{type(exc).__name__}: {exc}"
            log.error("report %s %s not sent: %s", tenant, period.label, why)
            await asyncio.to_thread(report_runs.mark_failed, self.src.state, run, why)
            await self._journal(outcome="failure", error=why[:500], **details)
            return Outcome(tenant, period.label, "failed", why)
        await self._journal(
            recipients=",".join(recipients),
            pdf_sha256=report.pdf_sha256,
            html_sha256=report.html_sha256,
            pdf_bytes=len(pdf),
            language=language,
            **details,
        )
        await asyncio.to_thread(
            report_runs.mark_sent,
            self.src.state,
            run,
            report.pdf_sha256,
            report.html_sha256,
            len(pdf),
            self.src.clock(),
        )
        log.info("report %s %s sent to %d recipient(s): %s", tenant, period.label, len(recipients), note)
        return Outcome(tenant, period.label, "sent", note, report.pdf_sha256)

    async def _journal(self, outcome: str = "success", **details: object) -> None:
        if self.pipeline is not None:
            await audit.record(self.pipeline, ACTOR, "report-sent", peer="", outcome=outcome, **details)

    def start(self) -> None:
        if self.channel is not None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="report-schedule")

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None

    async def _run(self) -> None:
        while True:
            try:
                await self.run_once()
            except Exception as exc:  # the state database away: the next look tries again
                log.error("report schedule check failed: %s: %s", type(exc).__name__, exc)
            await asyncio.sleep(self.every_s)
