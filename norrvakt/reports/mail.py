"""The e-mail a periodic report goes out as: a short text saying what is in it (also "no
incidents" — that is news too), the HTML report as the alternative part and the PDF attached,
with the PDF's SHA-256 in a header so a recipient can compare it with the journal."""

from __future__ import annotations

from email.message import EmailMessage
from email.utils import formatdate, make_msgid

from norrvakt.reports.labels import labels
from norrvakt.reports.region import REGION
from norrvakt.reports.service import Report


def file_name(report: Report) -> str:
    who = "region" if report.tenant == REGION else report.tenant
    return f"norrvakt-{who}-{report.period.label}.pdf"


def subject(report: Report) -> str:
    t = labels(report.language)
    f = report.figures
    title = t["title_region"] if report.tenant == REGION else t[f"title_{report.period.schedule}"]
    name = "" if report.tenant == REGION else f" {f['tenant_name']}"
    state = t["no_incidents"].split(":")[0] if f["quiet"] else f"{_alerts(f)} {t['alerts'].lower()}"
    return f"[Norrvakt] {title}{name} {report.period.label} — {state}"


def _alerts(f: dict[str, object]) -> int:
    if f["kind"] == "region":
        return int(f["trend"]["alerts"])  # type: ignore[index]
    return int(f["alerts"]["total"])  # type: ignore[index]


def body(report: Report) -> str:
    t = labels(report.language)
    f = report.figures
    lines = [subject(report).removeprefix("[Norrvakt] "), ""]
    if f["quiet"]:
        lines.append(t["no_incidents"])
    if f["kind"] == "tenant":
        lines += [
            f"{t['events']}: {f['events']['total']}",
            f"{t['alerts']}: {f['alerts']['total']}",
            f"{t['cases']}: {f['cases']['total']}",
            f"{t['silent_sources']}: {len(f['silences'])}",
            f"{t['significant']}: {len(f['nis2'])}",
        ]
        if f["no_data"]:
            lines.append(t["no_data"])
    else:
        lines += [f"{r['tenant_name']}: {r['events']} / {r['alerts']} / {r['cases']}" for r in f["rows"]]
    lines += ["", f"{file_name(report)}  SHA-256 {report.pdf_sha256}", t["digest_note"]]
    return "\n".join(lines) + "\n"


def message(report: Report, sender: str, recipients: list[str]) -> EmailMessage:
    if report.pdf is None:
        raise ValueError("a report is mailed with its PDF: make it with pdf=True")
    msg = EmailMessage()
    msg["Subject"] = subject(report)[:250]
    msg["From"] = sender
    msg["To"] = ", ".join(recipients)
    msg["Date"] = formatdate(localtime=False)
    msg["Message-ID"] = make_msgid(domain="norrvakt")
    msg["X-Norrvakt-Tenant"] = report.tenant
    msg["X-Norrvakt-Report"] = f"{report.period.schedule} {report.period.label}"
    msg["X-Norrvakt-Report-SHA256"] = report.pdf_sha256
    msg.set_content(body(report))
    msg.add_alternative(report.html, subtype="html")
    msg.add_attachment(report.pdf, maintype="application", subtype="pdf", filename=file_name(report))
    return msg
