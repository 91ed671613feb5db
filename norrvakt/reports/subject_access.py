"""The subject-access extract: every access to one person's records in a period.

A patient (Patientdatalagen 8:1) or a client of the social services may ask who has read
their records. For one subject id (pseudonymous, as the systems log it) and a period, this
lists each access — who, their role and unit, when, what they did, in which system and case,
from which address — as CSV, HTML or PDF. Producing an extract is itself audited.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape

from norrvakt.csv_safe import safe_dict
from norrvakt.event import now_us
from norrvakt.search import run_search
from norrvakt.store.clickhouse import ClickHouseStore
from norrvakt.store.query import iso_time

TEMPLATES = Environment(
    loader=FileSystemLoader(str(Path(__file__).with_name("templates"))),
    autoescape=select_autoescape(["html"]),
)
DATASETS = ("socialtjanst.record_access", "health.record_access")
SYSTEMS = {
    "socialtjanst.record_access": "Socialtjänstens verksamhetssystem",
    "health.record_access": "Elevhälsans journalsystem",
}
COLUMNS = ["time", "user", "user_name", "role", "unit", "action", "system", "case", "source_ip"]


@dataclass
class Extract:
    tenant: str
    subject: str
    since_us: int
    until_us: int
    rows: list[dict[str, str]]
    produced_at: int
    produced_by: str

    def csv(self) -> bytes:
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=COLUMNS, delimiter=";")
        writer.writeheader()
        writer.writerows(safe_dict(r) for r in self.rows)  # log text must not become formulas
        return ("\ufeff" + out.getvalue()).encode("utf-8")  # BOM: Excel opens Swedish letters right

    def html(self, tenant_name: str) -> str:
        return TEMPLATES.get_template("subject_access.html").render(
            extract=self,
            tenant_name=tenant_name,
            since=iso_time(self.since_us)[:10],
            until=iso_time(self.until_us)[:10],
            produced=iso_time(self.produced_at)[:19].replace("T", " "),
        )

    def pdf(self, tenant_name: str) -> bytes:
        from weasyprint import HTML

        return bytes(HTML(string=self.html(tenant_name)).write_pdf())


def subject_access(
    store: ClickHouseStore,
    tenant: str,
    subject: str,
    since_us: int,
    until_us: int,
    produced_by: str,
    limit: int = 10_000,
) -> Extract:
    subject = subject.strip()
    if not subject or any(c in subject for c in '"\\'):
        raise ValueError(f"subject id {subject!r} is not a subject id")
    datasets = " OR ".join(f"event.dataset:{d}" for d in DATASETS)
    query = f'subject_id:"{subject}" ({datasets}) | sort @timestamp'
    result = run_search(
        store,
        [tenant],
        query,
        since=str(since_us // 1_000_000),
        until=str(until_us // 1_000_000),
        limit=limit,
    )
    rows = [_row(r) for r in result["rows"]]
    return Extract(tenant, subject, since_us, until_us, rows, now_us(), produced_by)


def _row(r: dict[str, Any]) -> dict[str, str]:
    ecs, fields = r.get("ecs", {}), r.get("fields", {})
    dataset = ecs.get("event.dataset", "")
    return {
        "time": str(r["@timestamp"])[:19].replace("T", " "),
        "user": ecs.get("user.name", ""),
        "user_name": fields.get("user_full_name", ""),
        "role": fields.get("role", ""),
        "unit": fields.get("unit", ""),
        "action": ecs.get("event.action", "").removeprefix("record."),
        "system": SYSTEMS.get(dataset, dataset),
        "case": fields.get("case_id", ""),
        "source_ip": ecs.get("source.ip", ""),
    }
