"""The NIS2 reports panel of the case page: per report kind its deadline and outcome, its draft
(status, approver, sending) and a form of the draft's fields, labelled in the page's language.
The panel calls the same API handlers the scripts do (same checks, same audit)."""

from __future__ import annotations

from typing import Any

from fastapi import Request

from norrvakt.reports.nis2_drafts import APPROVER_ROLES
from norrvakt.reports.nis2_fields import CATEGORIES, KIND_LABELS, KINDS, fields_of, iso
from norrvakt.state.accounts import Principal
from norrvakt.web.api import nis2_reports as nis2_api
from norrvakt.web.templating import language


async def context(case_id: int, request: Request, user: Principal) -> dict[str, Any]:
    """``nis2_panel`` for case.html: one entry per kind."""
    lang = language(request)
    listed = await nis2_api.list_reports(case_id, request, principal=user)
    drafts = {d["kind"]: d for d in listed["reports"]}
    n = listed["nis2"]
    panel = []
    for kind in KINDS:
        draft = drafts.get(kind)
        panel.append(
            {
                "kind": kind,
                "label": KIND_LABELS[kind]["sv" if lang == "sv" else "en"],
                "due": n.get(f"{kind}_due"),
                "outcome": (n.get("status") or {}).get(kind),
                "draft": draft,
                "fields": _form(kind, draft, lang) if draft else [],
            }
        )
    return {"nis2_panel": panel, "nis2_can_approve": user.role in APPROVER_ROLES}


def _form(kind: str, draft: dict[str, Any], lang: str) -> list[dict[str, Any]]:
    """The draft's fields as form inputs: times as ISO 8601, lists and indicators one a line."""
    out = []
    for f in fields_of(kind):
        value = draft["fields"].get(f.name)
        if f.type == "time":
            text = iso(value) or ""
        elif f.type == "list":
            text = "\n".join(value or [])
        elif f.type == "indicators":
            text = "\n".join(f"{i['type']} {i['value']}" for i in value or [])
        elif f.type == "choices":
            text = ""
        else:
            text = "" if value is None else str(value)
        choices = (
            [(c, CATEGORIES[c]["sv" if lang == "sv" else "en"]) for c in f.choices]
            if f.type == "choices"
            else [(c, c) for c in f.choices]
        )
        out.append(
            {
                "name": f.name,
                "type": f.type,
                "label": f.sv if lang == "sv" else f.en,
                "basis": f.basis,
                "text": text,
                "selected": list(value or []) if f.type == "choices" else [value],
                "choices": choices,
            }
        )
    return out
