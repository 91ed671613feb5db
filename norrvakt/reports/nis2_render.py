"""A NIS2 report draft as the JSON export (with its JSON Schema), as HTML and as PDF, in Swedish
or English. Both say who drafted and approved which content: the approval's SHA-256 is compared
with the fields as they are, so an export shows if the approved content was changed since.
"""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

from norrvakt.event import now_us
from norrvakt.reports.nis2_drafts import digest
from norrvakt.reports.nis2_fields import CATEGORIES, KIND_LABELS, fields_of, iso, json_schema
from norrvakt.reports.subject_access import TEMPLATES

FORMAT = "norrvakt-nis2-report-v1"
LANGS = ("sv", "en")
ZONE = "Europe/Stockholm"
CHOICE_LABELS = {
    "sv": {
        "yes": "Ja",
        "no": "Nej",
        "unknown": "Ej känt",
        "ongoing": "Pågående",
        "ended": "Avslutad",
    },
    "en": {"yes": "Yes", "no": "No", "unknown": "Not known", "ongoing": "Ongoing", "ended": "Ended"},
}
TEXT = {
    "sv": {
        "draft": "Utkast — ej godkänt",
        "approved": "Godkänd",
        "sent": "Skickad",
        "changed": "Innehållet har ändrats efter godkännandet",
        "by": "av",
        "drafted": "Upprättad",
        "due": "Senast",
        "deadline": "Frist",
        "field": "Uppgift",
        "value": "Värde",
        "basis": "Grund",
        "reference": "Referens",
        "produced": "Framtagen ur Norrvakt",
        "recipient": "Till CSIRT-enheten (cybersäkerhetsförordningen 2025:1507, 6 §)",
        "met": "i tid",
        "missed": "för sent",
        "overdue": "försenad",
        "pending": "ej skickad",
        "empty": "–",
    },
    "en": {
        "draft": "Draft — not approved",
        "approved": "Approved",
        "sent": "Sent",
        "changed": "The content was changed after the approval",
        "by": "by",
        "drafted": "Drafted",
        "due": "Due",
        "deadline": "Deadline",
        "field": "Field",
        "value": "Value",
        "basis": "Basis",
        "reference": "Reference",
        "produced": "Produced by Norrvakt",
        "recipient": "To the CSIRT unit (Swedish Cybersecurity Ordinance 2025:1507, section 6)",
        "met": "in time",
        "missed": "late",
        "overdue": "overdue",
        "pending": "not sent",
        "empty": "–",
    },
}


def export_doc(
    draft: dict[str, Any], deadlines: dict[str, Any], municipality: str, by: str
) -> dict[str, Any]:
    """The JSON export: the fields with times as ISO 8601 (UTC), the deadline, who approved
    which content, when it was sent."""
    kind = draft["kind"]
    fields = {f.name: _json_value(f.type, draft["fields"].get(f.name)) for f in fields_of(kind)}
    approval = None
    if draft.get("approved_by"):
        approval = {
            "approved_by": draft["approved_by"],
            "approved_at": iso(draft["approved_at"]),
            "digest": draft["approved_digest"],
            "content_unchanged": draft["approved_digest"] == digest(draft["fields"]),
        }
    sent = None
    if draft.get("sent_at") is not None:
        sent = {
            "sent_at": iso(draft["sent_at"]),
            "sent_by": draft["sent_by"],
            "reference": draft["sent_reference"],
        }
    return {
        "format": FORMAT,
        "kind": kind,
        "title": KIND_LABELS[kind],
        "case_id": draft["case_id"],
        "tenant": draft["tenant"],
        "municipality": municipality,
        "status": draft["status"],
        "deadline": {
            "due": iso(deadlines.get(f"{kind}_due")),
            "status": (deadlines.get("status") or {}).get(kind),
        },
        "drafted": {"by": draft["created_by"], "at": iso(draft["created_at"])},
        "edited": {"by": draft["updated_by"], "at": iso(draft["updated_at"]), "editors": draft["editors"]},
        "approval": approval,
        "sent": sent,
        "fields": fields,
        "basis": {f.name: f.basis for f in fields_of(kind)},
        "exported": {"by": by, "at": iso(now_us())},
    }


def _json_value(ftype: str, value: Any) -> Any:
    if ftype == "time":
        return iso(value)
    if ftype == "indicators":
        return [
            {k: iso(v) if k in ("first_seen", "last_seen") else v for k, v in i.items()} for i in value or []
        ]
    return value


def export_schema(kind: str) -> dict[str, Any]:
    """JSON Schema (2020-12) of :func:`export_doc` for a report of ``kind``."""
    time_or_null = {"type": ["string", "null"], "format": "date-time"}
    who_when: dict[str, Any] = {
        "type": "object",
        "required": ["by", "at"],
        "properties": {"by": {"type": "string"}, "at": {"type": "string", "format": "date-time"}},
    }
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": f"Norrvakt NIS2 {kind}",
        "type": "object",
        "required": [
            "format",
            "kind",
            "case_id",
            "tenant",
            "municipality",
            "status",
            "deadline",
            "drafted",
            "approval",
            "sent",
            "fields",
            "basis",
            "exported",
        ],
        "properties": {
            "format": {"const": FORMAT},
            "kind": {"const": kind},
            "title": {"type": "object", "properties": {"sv": {"type": "string"}, "en": {"type": "string"}}},
            "case_id": {"type": "integer"},
            "tenant": {"type": "string"},
            "municipality": {"type": "string"},
            "status": {"enum": ["draft", "approved", "sent"]},
            "deadline": {
                "type": "object",
                "required": ["due", "status"],
                "properties": {
                    "due": time_or_null,
                    "status": {"enum": ["met", "missed", "overdue", "pending", None]},
                },
            },
            "drafted": who_when,
            "edited": {**who_when, "properties": {**who_when["properties"], "editors": {"type": "array"}}},
            "approval": {
                "oneOf": [
                    {"type": "null"},
                    {
                        "type": "object",
                        "required": ["approved_by", "approved_at", "digest", "content_unchanged"],
                        "properties": {
                            "approved_by": {"type": "string", "minLength": 1},
                            "approved_at": {"type": "string", "format": "date-time"},
                            "digest": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
                            "content_unchanged": {"type": "boolean"},
                        },
                    },
                ]
            },
            "sent": {
                "oneOf": [
                    {"type": "null"},
                    {
                        "type": "object",
                        "required": ["sent_at", "sent_by"],
                        "properties": {
                            "sent_at": {"type": "string", "format": "date-time"},
                            "sent_by": {"type": "string"},
                            "reference": {"type": ["string", "null"]},
                        },
                    },
                ]
            },
            "fields": json_schema(kind),
            "basis": {"type": "object", "additionalProperties": {"type": "string"}},
            "exported": who_when,
        },
    }


def _local(us: int | None) -> str:
    if us is None:
        return "–"
    return dt.datetime.fromtimestamp(us / 1_000_000, ZoneInfo(ZONE)).strftime("%Y-%m-%d %H:%M %Z")


def _display(ftype: str, value: Any, lang: str) -> Any:
    """A field's value as the PDF shows it: a text, or a list of texts."""
    if value is None or value == []:
        return TEXT[lang]["empty"]
    if ftype == "time":
        return _local(value)
    if ftype == "choice":
        return CHOICE_LABELS[lang].get(value, value)
    if ftype == "choices":
        return [CATEGORIES[v][lang] for v in value]
    if ftype == "indicators":
        return [
            f"{i['type']} {i['value']}"
            + (f" ({i['note']})" if i.get("note") else "")
            + (
                f" · {_local(i.get('first_seen'))} – {_local(i.get('last_seen'))}"
                if i.get("first_seen")
                else ""
            )
            for i in value
        ]
    return value


def render_html(
    draft: dict[str, Any], deadlines: dict[str, Any], municipality: str, by: str, lang: str
) -> str:
    kind = draft["kind"]
    rows = [
        {
            "label": getattr(f, lang),
            "value": _display(f.type, draft["fields"].get(f.name), lang),
            "basis": f.basis,
            "long": f.type == "longtext",
        }
        for f in fields_of(kind)
    ]
    return TEMPLATES.get_template("nis2_report.html").render(
        lang=lang,
        t=TEXT[lang],
        title=KIND_LABELS[kind][lang],
        draft=draft,
        rows=rows,
        municipality=municipality,
        due=_local(deadlines.get(f"{kind}_due")),
        deadline_status=(deadlines.get("status") or {}).get(kind),
        unchanged=draft.get("approved_digest") == digest(draft["fields"]),
        local=_local,
        produced_by=by,
        produced_at=_local(now_us()),
    )


def render_pdf(
    draft: dict[str, Any], deadlines: dict[str, Any], municipality: str, by: str, lang: str
) -> bytes:
    from weasyprint import HTML

    return bytes(HTML(string=render_html(draft, deadlines, municipality, by, lang)).write_pdf())
