"""The fields of the three NIS2 incident reports to the CSIRT unit: the early warning (24 h), the
incident notification (72 h) and the final report (one month) — what each asks for, labelled in
Swedish and English, with the provision or form it comes from (docs/nis2.md says what the fields
are based on and where that is uncertain).

One specification (:data:`FIELDS`) serves the form on the case page, the checks on an edited
draft (:func:`clean`), the PDF and the JSON export with its JSON Schema (:func:`json_schema`)::

    clean("early_warning", {"cross_border": "no", "categories": ["angrepp"]})
    → {"cross_border": "no", "categories": ["angrepp"]}
    clean("early_warning", {"cross_border": "maybe"})
    → Nis2FieldError: early_warning.cross_border: 'maybe' is not one of yes, no, unknown
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

KINDS = ("early_warning", "notification", "final_report")
# The case's NIS2 time each report's sending fills in (norrvakt/alerts/nis2.py).
SENT_FIELD = {
    "early_warning": "early_warning_sent_at",
    "notification": "notification_sent_at",
    "final_report": "final_report_at",
}
KIND_LABELS = {
    "early_warning": {"sv": "Tidig varning (24 timmar)", "en": "Early warning (24 hours)"},
    "notification": {"sv": "Incidentanmälan (72 timmar)", "en": "Incident notification (72 hours)"},
    "final_report": {"sv": "Slutrapport (en månad)", "en": "Final report (one month)"},
}
TRISTATE = ("yes", "no", "unknown")
# CERT-SE's categories for an it-incident report (MSBFS 2020:8, as cert.se lists them).
CATEGORIES = {
    "programvara_hardvara": {"sv": "Störning i mjuk- eller hårdvara", "en": "Software or hardware failure"},
    "driftmiljo": {"sv": "Störning i driftmiljö", "en": "Disruption of the operating environment"},
    "informationsforlust": {
        "sv": "Informationsförlust eller informationsläckage",
        "en": "Loss or leak of information",
    },
    "informationsforvanskning": {"sv": "Informationsförvanskning", "en": "Corruption of information"},
    "hindrad_tillgang": {"sv": "Hindrad tillgång till information", "en": "Access to information prevented"},
    "sakerhetsbrist_produkt": {"sv": "Säkerhetsbrist i en produkt", "en": "Security flaw in a product"},
    "angrepp": {"sv": "Angrepp", "en": "Attack"},
    "handhavandefel": {"sv": "Handhavandefel", "en": "Human error"},
    "kritisk_infrastruktur": {
        "sv": "Oönskad eller oplanerad störning i kritisk infrastruktur",
        "en": "Unwanted or unplanned disruption of critical infrastructure",
    },
    "annan": {"sv": "Annan plötslig oförutsedd händelse", "en": "Other sudden unforeseen event"},
}
SEVERITIES = ("informational", "low", "medium", "high", "critical")
INDICATOR_TYPES = (
    "ipv4",
    "ipv6",
    "domain",
    "url",
    "md5",
    "sha1",
    "sha256",
    "file",
    "account",
    "other",
)
MAX_TEXT = 20_000
MAX_ITEMS = 500

ART23 = "NIS2 art. 23.4"
CERTSE = "CERT-SE/MSB rapportformulär"


class Nis2FieldError(ValueError):
    """An edited report field that is not one of the report's, or a value it cannot take."""


@dataclass(frozen=True, slots=True)
class Field:
    name: str
    type: str  # text | longtext | choice | choices | time | list | indicators
    sv: str
    en: str
    basis: str  # the provision or form the field answers
    kinds: tuple[str, ...] = KINDS
    choices: tuple[str, ...] = ()


_NF = ("notification", "final_report")
FIELDS: tuple[Field, ...] = (
    # -- who reports -------------------------------------------------------------------------------
    Field("organisation", "text", "Verksamhetsutövare", "Reporting entity", "cybersäkerhetslagen 2 kap."),
    Field("organisation_number", "text", "Organisationsnummer", "Organisation number", CERTSE),
    Field("sector", "text", "Sektor", "Sector", "NIS2 bilaga I.10 / cybersäkerhetslagen 1 kap."),
    Field("municipality", "text", "Berörd kommun", "Municipality affected", "Norrvakt (tenant)"),
    Field("contact_name", "text", "Kontaktperson", "Contact person", f"{CERTSE}: kontakt för återkoppling"),
    Field(
        "contact_email", "text", "Kontaktens e-post", "Contact e-mail", f"{CERTSE}: kontakt för återkoppling"
    ),
    Field(
        "contact_phone", "text", "Kontaktens telefon", "Contact phone", f"{CERTSE}: kontakt för återkoppling"
    ),
    Field("csirt_reference", "text", "CSIRT-enhetens ärendenummer", "CSIRT's reference", "art. 23.4 b, d"),
    # -- what happened -----------------------------------------------------------------------------
    Field("case_reference", "text", "Intern ärendereferens", "Internal case reference", "Norrvakt"),
    Field("title", "text", "Rubrik", "Title", CERTSE),
    Field("occurred_at", "time", "Incidenten inträffade", "Incident occurred", f"{CERTSE}: tidpunkt"),
    Field("detected_at", "time", "Incidenten upptäcktes", "Incident detected", f"{CERTSE}: upptäckt"),
    Field(
        "aware_at", "time", "Kännedom om betydande incident", "Became aware", f"{ART23} a (fristens start)"
    ),
    Field(
        "ongoing",
        "choice",
        "Pågående eller avslutad",
        "Ongoing or ended",
        CERTSE,
        choices=("ongoing", "ended"),
    ),
    Field(
        "suspected_malicious",
        "choice",
        "Misstänks orsakad av olagliga eller avsiktligt skadliga handlingar",
        "Suspected unlawful or malicious act",
        f"{ART23} a",
        choices=TRISTATE,
    ),
    Field(
        "cross_border",
        "choice",
        "Kan ha gränsöverskridande konsekvenser",
        "Could have a cross-border impact",
        f"{ART23} a, d iv; art. 23.1",
        choices=TRISTATE,
    ),
    Field(
        "cross_border_description",
        "longtext",
        "Gränsöverskridande konsekvenser (beskrivning)",
        "Cross-border impact (description)",
        f"{ART23} d iv",
    ),
    Field("categories", "choices", "Kategori", "Category", CERTSE, choices=tuple(CATEGORIES)),
    Field("description", "longtext", "Vad som är känt", "What is known", f"{ART23} a; {CERTSE}"),
    Field("affected_services", "list", "Berörda tjänster", "Services affected", "art. 23.1, 23.3"),
    Field("affected_systems", "list", "Berörda system", "Systems affected", CERTSE),
    # -- the assessment (72 h) and the final report -------------------------------------------------
    Field(
        "updates",
        "longtext",
        "Uppdatering av den tidiga varningen",
        "Update of the early warning",
        f"{ART23} b",
        kinds=("notification",),
    ),
    Field("severity", "choice", "Allvarlighetsgrad", "Severity", f"{ART23} b, d i", _NF, SEVERITIES),
    Field("impact", "longtext", "Konsekvenser (bedömning)", "Impact (assessment)", f"{ART23} b, d i", _NF),
    Field("affected_users", "text", "Berörda användare/konton", "Users/accounts affected", "art. 23.3", _NF),
    Field(
        "significance_basis",
        "longtext",
        "Varför incidenten är betydande",
        "Why it is significant",
        "art. 23.3 a–b",
        _NF,
    ),
    Field(
        "indicators",
        "indicators",
        "Indikatorer på kompromettering",
        "Indicators of compromise",
        f"{ART23} b",
        _NF,
    ),
    Field(
        "detailed_description",
        "longtext",
        "Detaljerad beskrivning",
        "Detailed description",
        f"{ART23} d i",
        ("final_report",),
    ),
    Field(
        "threat_type",
        "longtext",
        "Typ av hot eller grundorsak",
        "Type of threat or root cause",
        f"{ART23} d ii",
        ("final_report",),
    ),
    Field(
        "measures",
        "longtext",
        "Vidtagna och pågående åtgärder",
        "Applied and ongoing measures",
        f"{ART23} d iii; {CERTSE}",
        _NF,
    ),
    Field("ended_at", "time", "Incidenten avslutades", "Incident ended", f"{ART23} e", ("final_report",)),
)
BY_NAME = {f.name: f for f in FIELDS}


def fields_of(kind: str) -> list[Field]:
    check_kind(kind)
    return [f for f in FIELDS if kind in f.kinds]


def check_kind(kind: str) -> str:
    if kind not in KINDS:
        raise Nis2FieldError(f"report kind {kind!r}: one of {', '.join(KINDS)}")
    return kind


def clean(kind: str, values: dict[str, Any]) -> dict[str, Any]:
    """``values`` checked and normalised for a report of ``kind``; raises :class:`Nis2FieldError`
    naming the first bad field and value. ``None`` empties a field."""
    allowed = {f.name: f for f in fields_of(kind)}
    unknown = sorted(set(values) - set(allowed))
    if unknown:
        raise Nis2FieldError(
            f"{kind}: unknown field(s) {', '.join(unknown)}; the {kind} has {', '.join(allowed)}"
        )
    return {name: _value(kind, allowed[name], value) for name, value in values.items()}


def empty(field: Field) -> Any:
    return [] if field.type in ("choices", "list", "indicators") else None


def _value(kind: str, f: Field, value: Any) -> Any:
    where = f"{kind}.{f.name}"
    if value is None or value == "":
        return empty(f)
    if f.type in ("text", "longtext"):
        if not isinstance(value, (str, int, float)):
            raise Nis2FieldError(f"{where}: a text, not {type(value).__name__}")
        text = str(value).strip()
        limit = 512 if f.type == "text" else MAX_TEXT
        if len(text) > limit:
            raise Nis2FieldError(f"{where}: {len(text)} characters, at most {limit}")
        return text or None
    if f.type == "choice":
        if value not in f.choices:
            raise Nis2FieldError(f"{where}: {value!r} is not one of {', '.join(f.choices)}")
        return value
    if f.type == "time":
        return _time(where, value)
    items = _items(where, value)
    if f.type == "choices":
        bad = [v for v in items if v not in f.choices]
        if bad:
            raise Nis2FieldError(f"{where}: {bad[0]!r} is not one of {', '.join(f.choices)}")
        return list(dict.fromkeys(str(v) for v in items))
    if f.type == "list":
        return [_short(where, v) for v in items if str(v).strip()]
    return [_indicator(where, i, v) for i, v in enumerate(items)]


def _items(where: str, value: Any) -> list[Any]:
    # a form's textarea sends one item a line; the API sends a list
    items = [line for line in value.splitlines() if line.strip()] if isinstance(value, str) else value
    if not isinstance(items, list):
        raise Nis2FieldError(f"{where}: a list (or one item a line), not {type(value).__name__}")
    if len(items) > MAX_ITEMS:
        raise Nis2FieldError(f"{where}: {len(items)} items, at most {MAX_ITEMS}")
    return items


def _short(where: str, value: Any) -> str:
    if not isinstance(value, (str, int, float)):
        raise Nis2FieldError(f"{where}: items are texts, not {type(value).__name__}")
    text = str(value).strip()
    if len(text) > 512:
        raise Nis2FieldError(f"{where}: an item of {len(text)} characters, at most 512")
    return text


def _indicator(where: str, i: int, value: Any) -> dict[str, Any]:
    """``{"type": "ipv4", "value": "185.220.101.7", ...}``, or the line ``ipv4 185.220.101.7``."""
    if isinstance(value, str):
        word, _, rest = value.strip().partition(" ")
        value = {"type": word, "value": rest.strip()}
    if not isinstance(value, dict):
        raise Nis2FieldError(f"{where}[{i}]: an object with type and value, not {type(value).__name__}")
    kind, text = value.get("type"), str(value.get("value") or "").strip()
    if kind not in INDICATOR_TYPES:
        raise Nis2FieldError(f"{where}[{i}]: type {kind!r} is not one of {', '.join(INDICATOR_TYPES)}")
    if not text or len(text) > 2048:
        raise Nis2FieldError(f"{where}[{i}]: a value of 1–2048 characters (got {len(text)})")
    out: dict[str, Any] = {"type": kind, "value": text}
    for key in ("first_seen", "last_seen"):
        if value.get(key) is not None:
            out[key] = _time(f"{where}[{i}].{key}", value[key])
    if value.get("note"):
        out["note"] = _short(f"{where}[{i}].note", value["note"])
    return out


def _time(where: str, value: Any) -> int:
    """Microseconds: an int as such, or ISO 8601 text (a time without zone is UTC)."""
    if isinstance(value, bool):
        raise Nis2FieldError(f"{where}: a time, not a truth value")
    if isinstance(value, int):
        return value
    if not isinstance(value, str):
        raise Nis2FieldError(f"{where}: a time (ISO 8601), not {type(value).__name__}")
    try:
        t = dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError as exc:
        raise Nis2FieldError(f"{where}: {value!r} is no ISO 8601 time (2026-11-27T10:00:00Z)") from exc
    if t.tzinfo is None:
        t = t.replace(tzinfo=dt.UTC)
    return int(t.timestamp() * 1_000_000)


def iso(us: int | None) -> str | None:
    if us is None:
        return None
    return dt.datetime.fromtimestamp(us / 1_000_000, dt.UTC).isoformat().replace("+00:00", "Z")


def json_schema(kind: str) -> dict[str, Any]:
    """The JSON Schema of a report's ``fields`` object in the JSON export (times as ISO 8601)."""
    props: dict[str, Any] = {}
    for f in fields_of(kind):
        if f.type in ("text", "longtext"):
            props[f.name] = {"type": ["string", "null"], "description": f.en}
        elif f.type == "choice":
            props[f.name] = {"enum": [*f.choices, None], "description": f.en}
        elif f.type == "time":
            props[f.name] = {"type": ["string", "null"], "format": "date-time", "description": f.en}
        elif f.type == "choices":
            props[f.name] = {"type": "array", "items": {"enum": list(f.choices)}, "description": f.en}
        elif f.type == "list":
            props[f.name] = {"type": "array", "items": {"type": "string"}, "description": f.en}
        else:
            props[f.name] = {
                "type": "array",
                "description": f.en,
                "items": {
                    "type": "object",
                    "required": ["type", "value"],
                    "additionalProperties": False,
                    "properties": {
                        "type": {"enum": list(INDICATOR_TYPES)},
                        "value": {"type": "string", "minLength": 1},
                        "first_seen": {"type": "string", "format": "date-time"},
                        "last_seen": {"type": "string", "format": "date-time"},
                        "note": {"type": "string"},
                    },
                },
            }
    return {"type": "object", "required": list(props), "additionalProperties": False, "properties": props}
