"""Making one periodic report: the figures, the HTML, the PDF and their SHA-256 digests —
for a tenant or (``tenant = "_region"``) the region. The scheduler, the API and the CLI all
come here, so a report re-rendered for a past period is made exactly as the sent one was.

    report = make_report(src, "lulea", "2026-11", "sv", produced_by="anna", pdf=True)
    report.pdf, report.pdf_sha256, report.html_sha256, report.figures
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from norrvakt.reports.monthly import ReportSources, tenant_figures
from norrvakt.reports.periods import BadPeriod, Period, check_ended, parse_period
from norrvakt.reports.region import REGION, region_figures
from norrvakt.reports.render import render_html, render_pdf


class UnknownReport(BadPeriod):
    """A report of a tenant that is not configured, or in a language there is none in."""

    status_code = 404


@dataclass(frozen=True)
class Report:
    tenant: str  # or "_region"
    period: Period
    language: str
    figures: dict[str, Any]
    html: str
    pdf: bytes | None

    @property
    def html_sha256(self) -> str:
        return hashlib.sha256(self.html.encode("utf-8")).hexdigest()

    @property
    def pdf_sha256(self) -> str:
        return hashlib.sha256(self.pdf or b"").hexdigest()


def language_of(src: ReportSources, tenant: str) -> str:
    r = src.settings.reports
    return r.languages.get("region" if tenant == REGION else tenant, r.language)


def resolve(src: ReportSources, tenant: str, period_label: str, language: str | None) -> tuple[Period, str]:
    """Check what is asked for before anything is read: a known tenant, a whole period that
    has ended, a language the report exists in. Raises :class:`BadPeriod` (400) or
    :class:`UnknownReport` (404) with what was wrong."""
    if tenant != REGION and tenant not in src.settings.tenants:
        raise UnknownReport(f"tenant {tenant!r}: not a configured tenant")
    period = parse_period(period_label, src.settings.timezone)
    check_ended(period, src.clock())
    lang = language or language_of(src, tenant)
    if lang not in ("sv", "en"):
        raise BadPeriod(f"language {lang!r}: sv or en")
    return period, lang


def make_report(
    src: ReportSources, tenant: str, period_label: str, language: str | None, *, produced_by: str, pdf: bool
) -> Report:
    """Blocking (store and state reads, a verification, WeasyPrint): run it in a worker thread."""
    period, lang = resolve(src, tenant, period_label, language)
    if tenant == REGION:
        figures = region_figures(src, list(src.settings.tenants), period, produced_by=produced_by)
    else:
        figures = tenant_figures(src, tenant, period, produced_by=produced_by)
    html = render_html(figures, lang, src.settings.timezone)
    return Report(tenant, period, lang, figures, html, render_pdf(html) if pdf else None)
