"""Parsers: a :class:`~norrvakt.event.RawRecord` in, an :class:`~norrvakt.event.Event` out.

:func:`parse_record` never raises and never returns None. It picks the *format parser*
registered for ``record.format``::

    syslog   RFC 5424 or RFC 3164, told apart after the PRI   (norrvakt.parsers.syslog)
    text     a line of a text log file; syslog-shaped or not  (norrvakt.parsers.text)
    json     one JSON object: NDJSON, ES _bulk, syslog-ng, ECS, journald, GELF, Windows
    hec      one Splunk HEC envelope                          (norrvakt.parsers.hec)
    windows  one Windows event as JSON (EVTX / Winlogbeat / NXLog)
    fluent   one Fluent Forward entry (tag, time, record)      (norrvakt.parsers.fluent)
    m365     one Microsoft 365 / Entra ID record, feed in hints (norrvakt.parsers.m365)
    auditd   the records of one Linux audit event, one a line  (norrvakt.parsers.auditd)
    otlp     one OpenTelemetry log record with its resource   (norrvakt.parsers.otlp)
    journal  one journald entry, Journal Export Format        (norrvakt.parsers.journal_export)
    gelf     one GELF 1.1 message (graypy, NXLog xm_gelf)      (norrvakt.parsers.gelf)

then applies the transport's hints (``record.hints``: ``host``, ``program``, ``sourcetype``,
``source``, ``index`` fill what the payload left empty — never the tenant) and runs the
*recognizers* in order until one claims the message: Windows JSON inside a message, CEF,
Linux authentication (sshd, sudo, su, PAM), web access logs (NCSA combined/common).

A record that cannot be parsed becomes an event with ``event.kind = "pipeline_error"``,
``error.type`` (``rfc5424.truncated_header``, ``json.malformed_json``, ``hec.missing_event``
...), ``error.message`` (source id, byte offset, what was expected, the bad value), a short
``message``, ``ts`` = the receive time and ``raw`` = the payload, byte for byte. A parser
that fails on a bug (any other exception) gives ``error.type = "parser.internal_error"``
the same way: the record is kept and counted, never dropped.

Conventions every parser follows:

- ``tenant``, ``source``, ``peer``, ``ingested`` and ``raw`` come from the record only.
- ``ecs`` holds only names in :data:`~norrvakt.event.ECS_FIELD_SET`, non-empty strings.
- ``fields`` holds the source's own fields by their own names, all strings; nested JSON is
  flattened with dots; a list of scalars is one value joined with ", ", a list of objects is
  indexed (``items.0.name``). Windows' unnamed ``<Data>`` is the exception (``Data_1``.. and
  ``Data`` joined with newlines, see :mod:`norrvakt.parsers.windows`).
- Fields Norrvakt adds start with ``_``: ``_ts_missing = "1"`` when the log had no usable time
  and ``ts`` is the receive time, ``_ts_invalid`` = the time text it could not read,
  ``_encoding = "latin-1"`` when syslog/text bytes were not UTF-8 and were read as Latin-1.

Plugins register the same way the built-ins below do::

    from norrvakt.parsers import register_format, register_recognizer

    register_format("door-lock", parse_door_lock)
    register_recognizer("leef", recognize_leef, before="linux")
"""

from __future__ import annotations

from norrvakt.event import KIND_PIPELINE_ERROR, Event, RawRecord
from norrvakt.parsers.auditd import parse_auditd
from norrvakt.parsers.base import FormatParser, ParseError, Recognizer
from norrvakt.parsers.cef import recognize_cef
from norrvakt.parsers.fluent import parse_fluent
from norrvakt.parsers.gelf import parse_gelf
from norrvakt.parsers.hec import parse_hec
from norrvakt.parsers.journal_export import parse_journal
from norrvakt.parsers.json_event import parse_json
from norrvakt.parsers.linux import recognize_linux_auth
from norrvakt.parsers.m365 import parse_m365
from norrvakt.parsers.mapped import recognize_mapped
from norrvakt.parsers.nxlog import recognize_nxlog_json
from norrvakt.parsers.otlp import parse_otlp
from norrvakt.parsers.syslog import parse_syslog
from norrvakt.parsers.text import parse_text
from norrvakt.parsers.web_access import recognize_web_access
from norrvakt.parsers.windows import parse_windows, recognize_windows_json

__all__ = [
    "FormatParser",
    "ParseError",
    "ParserRegistry",
    "Recognizer",
    "error_event",
    "parse_record",
    "register_format",
    "register_recognizer",
    "registry",
]


class ParserRegistry:
    """Format parsers by ``RawRecord.format`` and the ordered list of message recognizers."""

    def __init__(self) -> None:
        self._formats: dict[str, FormatParser] = {}
        self._recognize: dict[str, bool] = {}
        self._recognizers: list[tuple[str, Recognizer]] = []

    def register_format(
        self, name: str, parser: FormatParser, *, recognize: bool = True, replace: bool = False
    ) -> None:
        """Parse records of ``format == name`` with ``parser``; ``recognize=False`` skips the
        message recognizers (for formats whose payload is never a free-text message)."""
        if name in self._formats and not replace:
            raise ValueError(f"parser format {name!r} is already registered (pass replace=True)")
        self._formats[name] = parser
        self._recognize[name] = recognize

    def register_recognizer(self, name: str, recognizer: Recognizer, *, before: str | None = None) -> None:
        """Add a recognizer, last or just before the one called ``before``."""
        if any(n == name for n, _ in self._recognizers):
            raise ValueError(f"recognizer {name!r} is already registered")
        if before is None:
            self._recognizers.append((name, recognizer))
            return
        for i, (n, _) in enumerate(self._recognizers):
            if n == before:
                self._recognizers.insert(i, (name, recognizer))
                return
        raise ValueError(f"recognizer {before!r} (to insert {name!r} before) is not registered")

    @property
    def formats(self) -> tuple[str, ...]:
        return tuple(self._formats)

    @property
    def recognizers(self) -> tuple[str, ...]:
        return tuple(n for n, _ in self._recognizers)

    def parse(self, record: RawRecord) -> Event:
        parser = self._formats.get(record.format)
        if parser is None:
            return error_event(
                record,
                "parser.unknown_format",
                "record of an unknown format",
                f"record format {record.format!r} has no parser (known: {', '.join(self._formats)})",
            )
        step = record.format
        try:
            event = parser(record)
            if record.hints:
                _apply_hints(event, record.hints)
            if self._recognize[record.format]:
                for name, recognizer in self._recognizers:
                    step = name  # named in the error if this recognizer fails
                    if recognizer(event, record):
                        break
            return event
        except ParseError as exc:
            return error_event(record, exc.error_type, exc.summary, exc.detail)
        except Exception as exc:  # a parser bug must not stop ingest; the record is kept and counted
            return error_event(
                record,
                "parser.internal_error",
                "parser failed on this record",
                f"parser {step!r} failed on a {record.format} record: {type(exc).__name__}: {exc}",
            )


def _apply_hints(event: Event, hints: dict[str, str]) -> None:
    ecs = event.ecs
    fields = event.fields
    host = hints.get("host")
    if host:
        ecs.setdefault("host.name", host)
    program = hints.get("program")
    if program:
        ecs.setdefault("process.name", program)
    sourcetype = hints.get("sourcetype")
    if sourcetype:
        fields.setdefault("sourcetype", sourcetype)
        ecs.setdefault("event.dataset", sourcetype)
    for key in ("source", "index"):
        value = hints.get(key)
        if value:
            fields.setdefault(key, value)


def error_event(record: RawRecord, error_type: str, summary: str, detail: str) -> Event:
    """The pipeline_error event for a record that did not parse."""
    return Event(
        tenant=record.tenant,
        ts=record.received_at,
        ingested=record.received_at,
        source=record.source_id,
        peer=record.peer,
        ecs={
            "event.kind": KIND_PIPELINE_ERROR,
            "error.type": error_type,
            "error.message": f"{record.source_id}: {detail}",
        },
        fields={"_format": record.format},
        message=f"{summary} ({record.source_id})",
        raw=record.payload,
    )


registry = ParserRegistry()
register_format = registry.register_format
register_recognizer = registry.register_recognizer

# The built-ins, registered exactly as a plugin registers its own.
register_format("syslog", parse_syslog)
register_format("text", parse_text)
register_format("json", parse_json)
register_format("hec", parse_hec)
register_format("windows", parse_windows, recognize=False)
register_format("fluent", parse_fluent)
register_format("m365", parse_m365, recognize=False)
register_format("auditd", parse_auditd, recognize=False)
register_format("otlp", parse_otlp)
register_format("journal", parse_journal)
register_format("gelf", parse_gelf)
register_recognizer("windows-json", recognize_windows_json)
register_recognizer("nxlog-json", recognize_nxlog_json)
register_recognizer("mapped", recognize_mapped)
register_recognizer("cef", recognize_cef)
register_recognizer("linux", recognize_linux_auth)
register_recognizer("web-access", recognize_web_access)


def parse_record(record: RawRecord) -> Event:
    """The event for ``record``: parsed, or a pipeline_error event saying why not. Never raises."""
    return registry.parse(record)
