"""What a parser is, and the small helpers every parser shares.

A *format parser* turns one :class:`~norrvakt.event.RawRecord` into one
:class:`~norrvakt.event.Event`, or raises :class:`ParseError` saying where and why::

    def parse_myformat(record: RawRecord) -> Event:
        text = decode_strict(record, "myformat")
        return new_event(record, ts=record.received_at, message=text)

A *recognizer* looks at an already parsed event (its ``message``, ``process.name``) and, when it
knows the application payload (sshd, CEF, ...), enriches the event in place and returns True.
It gets the record too, for its timezone and hints::

    def recognize_hello(event: Event, record: RawRecord) -> bool:
        if not event.message.startswith("hello "):
            return False
        event.fields["hello.who"] = event.message[6:]
        return True

Both are registered in :mod:`norrvakt.parsers` exactly as a plugin would register its own.
Recognizers never raise for input they do not understand: they return False and the event
stays as the envelope parser made it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import orjson

from norrvakt.event import KIND_EVENT, Event, RawRecord

FormatParser = Callable[[RawRecord], Event]
Recognizer = Callable[[Event, RawRecord], bool]

# Marker fields (documented in the package docstring): the log carried no usable time, so
# ``ts`` is the receive time; and the bytes were not UTF-8, so the text was read as Latin-1.
TS_MISSING = "_ts_missing"
TS_INVALID = "_ts_invalid"
ENCODING = "_encoding"

# Deeper JSON is kept as one JSON string value instead of being flattened further: nothing
# queries 64 levels down, and it keeps recursion far from Python's limit.
MAX_JSON_DEPTH = 64


class ParseError(Exception):
    """A record this parser cannot read.

    ``error_type`` is a short stable code (``rfc5424.bad_header``), ``summary`` a few words
    for the event's message, and ``detail`` the full reason: where (byte offset, field),
    what was expected and the offending value, abbreviated.
    """

    def __init__(self, error_type: str, summary: str, detail: str) -> None:
        super().__init__(detail)
        self.error_type = error_type
        self.summary = summary
        self.detail = detail


def new_event(
    record: RawRecord,
    ts: int,
    message: str,
    ecs: dict[str, str] | None = None,
    fields: dict[str, str] | None = None,
) -> Event:
    """An event carrying the record's identity (tenant, source, peer, receive time, raw bytes)."""
    if ecs is None:
        ecs = {"event.kind": KIND_EVENT}
    else:
        ecs["event.kind"] = KIND_EVENT
    return Event(
        tenant=record.tenant,
        ts=ts,
        ingested=record.received_at,
        source=record.source_id,
        peer=record.peer,
        ecs=ecs,
        fields={} if fields is None else fields,
        message=message,
        raw=record.payload,
    )


def abbrev(value: str | bytes, limit: int = 40) -> str:
    """``value`` quoted for an error message, cut to ``limit`` characters."""
    return repr(value[:limit]) + ("…" if len(value) > limit else "")


def byte_offset(text: str, index: int, latin1: bool = False) -> int:
    """Byte offset in the payload of character ``index`` of its decoded ``text``."""
    if latin1:
        return index
    return len(text[:index].encode("utf-8", "surrogatepass"))


def decode_text(payload: bytes) -> tuple[str, bool]:
    """The payload as text, and whether it had to be read as Latin-1.

    Syslog and text logs have no declared charset; old devices send ISO-8859-1 (å, ä, ö as one
    byte each). Latin-1 never fails, so the event stays searchable; ``raw`` keeps the bytes.
    """
    try:
        return payload.decode("utf-8"), False
    except UnicodeDecodeError:
        return payload.decode("latin-1"), True


def decode_strict(record: RawRecord, what: str) -> str:
    """The payload as UTF-8 text, or a ParseError naming the first bad byte."""
    try:
        return record.payload.decode("utf-8")
    except UnicodeDecodeError as exc:
        bad = record.payload[exc.start : exc.start + 4]
        raise ParseError(
            f"{what}.invalid_utf8",
            f"{what} payload is not UTF-8",
            f"{what} payload is not valid UTF-8 at byte offset {exc.start} ({exc.reason}): "
            f"bytes {bad.hex(' ')} near {abbrev(record.payload[max(0, exc.start - 20) : exc.start + 4])}",
        ) from None


def scalar_str(value: Any) -> str:
    """A JSON scalar as the string stored in ``fields`` (true/false, decimal numbers, "" for null)."""
    if isinstance(value, str):
        return value
    if value is True:
        return "true"
    if value is False:
        return "false"
    if value is None:
        return ""
    return str(value)


def flatten_json(value: Any, prefix: str, out: dict[str, str], depth: int = 0) -> None:
    """Flatten a JSON value into ``out`` under dotted keys.

    Objects nest with dots (``{"host": {"name": "x"}}`` → ``host.name``). A list of scalars is
    one value, its items joined with ", " (what a person would type to search it); a list that
    holds objects or lists is indexed (``tags.0.name``) so nothing is lost. Empty objects vanish.
    """
    if isinstance(value, dict):
        if depth >= MAX_JSON_DEPTH:
            out[prefix] = _json_text(value)
            return
        # Every leaf of every JSON event passes here: strings and integers (nearly all leaves)
        # are stored without a call, and the key's dotted prefix is built once per object.
        dotted = f"{prefix}." if prefix else ""
        for key, item in value.items():
            name = dotted + key if type(key) is str else f"{dotted}{key}"
            kind = type(item)
            if kind is str:
                out[name] = item
            elif kind is int:
                out[name] = str(item)
            elif isinstance(item, (dict, list)):
                flatten_json(item, name, out, depth + 1)
            else:
                out[name] = scalar_str(item)
    elif isinstance(value, list):
        if all(not isinstance(item, (dict, list)) for item in value):
            out[prefix] = ", ".join(scalar_str(item) for item in value)
        elif depth >= MAX_JSON_DEPTH:
            out[prefix] = _json_text(value)
        else:
            for i, item in enumerate(value):
                flatten_json(item, f"{prefix}.{i}" if prefix else str(i), out, depth + 1)
    else:
        out[prefix] = scalar_str(value)


def _json_text(value: Any) -> str:
    try:
        return orjson.dumps(value).decode("utf-8")
    except TypeError:  # orjson.JSONEncodeError: nested beyond orjson's own limit (254 levels)
        return "(JSON nested too deep to keep as a field value; see raw)"


_IPV4 = re.compile(
    r"(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)", re.ASCII
)
_IPV6 = re.compile(r"[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*(?:%[\w.-]+)?", re.ASCII)


def is_ip(value: str) -> bool:
    """Cheap shape test: a dotted-quad IPv4, or hex digits and colons (IPv6, optional %zone)."""
    return (_IPV4.fullmatch(value) or _IPV6.fullmatch(value)) is not None


_JSON_KINDS = {
    list: "array",
    str: "string",
    int: "number",
    float: "number",
    bool: "boolean",
    type(None): "null",
}


def load_json_object(record: RawRecord, what: str) -> dict[str, Any]:
    """The payload as a JSON object, or a ParseError naming the byte offset and what was wrong."""
    try:
        value = orjson.loads(record.payload)
    except orjson.JSONDecodeError as exc:
        text = decode_strict(record, what)  # raises first when the bytes are not even UTF-8
        pos = min(exc.pos, len(text))
        offset = byte_offset(text, pos)
        near = text[max(0, pos - 20) : pos + 20]
        raise ParseError(
            f"{what}.malformed_json",
            f"{what} payload is not valid JSON",
            f"{what} payload is not valid JSON at byte offset {offset} (line {exc.lineno} column "
            f"{exc.colno}): {exc.msg}; near {abbrev(near)}",
        ) from None
    if not isinstance(value, dict):
        kind = _JSON_KINDS.get(type(value), type(value).__name__)
        raise ParseError(
            f"{what}.not_object",
            f"{what} payload is not a JSON object",
            f"{what} payload at byte offset 0 is a JSON {kind}, expected an object {{...}}: "
            f"got {abbrev(record.payload)}",
        )
    return value
