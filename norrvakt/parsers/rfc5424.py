"""RFC 5424 syslog: the header after ``<PRI>``, STRUCTURED-DATA and MSG.

    <134>1 2026-11-26T21:43:38.052340+00:00 vm eservice - LOGIN [timeQuality tzKnown="1" isSynced="0"][auth@32473 user="anna" result="fail"] BankID login failed
    <36>1 2026-11-26T21:43:23.306142+00:00 rs-testhost sshd - - -  Failed password for invalid user admin from 10.1.2.3 port 55222 ssh2
    <157>1 2026-11-26T21:43:23.308670+00:00 rs-testhost d - - -  Åtkomst nekad kort=12345 dörr=Stadshuset-B2 ÅÄÖ
    <36>1 2026-11-26T21:43:59+00:00 vm sshd - - [meta sequenceId="1"] Failed password for invalid user admin from 10.1.2.3 port 55222 ssh2
    <38>1 2026-11-26T21:44:34+00:00 localhost prg00000 1234 - - \ufeffseq: 0000000000, thread: 0000

Quirks of real senders, all accepted:

- rsyslog forwards messages it received as RFC 3164 with two spaces before MSG (the old
  MSG kept its leading space); leading spaces of MSG are dropped from ``message``.
- rsyslog cuts an APP-NAME at the first non-ASCII byte (``dörrlås`` arrives as ``d``);
  syslog-ng transliterates it (``dorrlas``). We take APP-NAME as sent.
- syslog-ng adds ``[meta sequenceId="N"]``; loggen and some libraries put a UTF-8 BOM before
  MSG, which is stripped from ``message`` (``raw`` keeps it).

Structured data goes to ``fields`` as ``sd.<SD-ID>.<PARAM>`` (``sd.auth@32473.user``) with the
escapes ``\\"``, ``\\\\`` and ``\\]`` undone; a PARAM repeated within one element (allowed by
the RFC) keeps every value, joined with ", ". A TIMESTAMP that is neither ``-`` nor RFC 3339 is
an error rather than a guess: a stray space in it would shift every later header field.
"""  # noqa: E501 - the sample lines are real and kept whole

from __future__ import annotations

import re

from norrvakt.event import Event, RawRecord
from norrvakt.parsers.base import ENCODING, TS_MISSING, ParseError, abbrev, byte_offset, new_event
from norrvakt.parsers.timestamps import parse_iso

_HEADER_NAMES = ("TIMESTAMP", "HOSTNAME", "APP-NAME", "PROCID", "MSGID", "STRUCTURED-DATA")
# One SD-ELEMENT: [SD-ID *(SP PARAM-NAME="PARAM-VALUE")]. Values may hold any escaped char;
# an unescaped "]" inside quotes is tolerated (several senders forget to escape it).
_SD_ELEMENT = re.compile(r'\[([^ =\]"]+)((?: +[^ =\]"]+="(?:[^"\\]|\\.)*")*) *\]', re.DOTALL)
_SD_PARAM = re.compile(r'([^ =\]"]+)="((?:[^"\\]|\\.)*)"', re.DOTALL)
_SD_ESCAPE = re.compile(r'\\([\\"\]])')


def _error(code: str, detail: str) -> ParseError:
    return ParseError(f"rfc5424.{code}", "unparseable RFC 5424 syslog message", detail)


def parse_5424(record: RawRecord, text: str, pos: int, sp: int, latin1: bool) -> Event:
    """Parse ``text`` whose VERSION starts at ``pos`` and ends at the space ``sp``."""
    version = text[pos:sp]
    if version != "1":
        raise _error(
            "bad_version",
            f"RFC 5424 VERSION at byte offset {byte_offset(text, pos, latin1)} is {abbrev(version)}; "
            "only version 1 is defined",
        )
    start = sp + 1
    parts = text[start:].split(" ", 5)
    if len(parts) < 6 or not all(parts[:5]):
        raise _missing_field(text, parts, start, latin1)
    stamp, host, app, procid, msgid, rest = parts
    sd_start = len(text) - len(rest)

    ecs: dict[str, str] = {}
    fields: dict[str, str] = {}
    if stamp == "-":
        ts = record.received_at
        fields[TS_MISSING] = "1"
    else:
        parsed = parse_iso(stamp, record.timezone)
        if parsed is None:
            raise _error(
                "bad_timestamp",
                f"RFC 5424 TIMESTAMP at byte offset {byte_offset(text, start, latin1)} is not "
                f"RFC 3339 (YYYY-MM-DDThh:mm:ss[.frac]Z|±hh:mm): got {abbrev(stamp)}",
            )
        ts = parsed
    if host != "-":
        ecs["host.name"] = host
    if app != "-":
        ecs["log.syslog.appname"] = app
        ecs["process.name"] = app
    if procid != "-":
        ecs["log.syslog.procid"] = procid
        if procid.isascii() and procid.isdigit():
            ecs["process.pid"] = procid
    if msgid != "-":
        ecs["log.syslog.msgid"] = msgid

    if rest.startswith("-"):
        if len(rest) > 1 and rest[1] != " ":
            raise _error(
                "bad_structured_data",
                f"RFC 5424 STRUCTURED-DATA at byte offset {byte_offset(text, sd_start, latin1)}: "
                f"expected '-' or '[', got {abbrev(rest[:20])}",
            )
        msg = rest[2:]
    elif rest.startswith("["):
        msg = _structured_data(text, rest, sd_start, latin1, fields, ecs)
    else:
        got = abbrev(rest[:20]) if rest else "end of message"
        raise _error(
            "bad_structured_data",
            f"RFC 5424 STRUCTURED-DATA at byte offset {byte_offset(text, sd_start, latin1)}: "
            f"expected '-' or '[', got {got}",
        )

    if msg:
        if msg[0] == "\ufeff":
            msg = msg[1:]
        elif latin1:
            _check_bom(record, msg)
        msg = msg.lstrip(" ").rstrip("\r\n\x00")
    if latin1:
        fields[ENCODING] = "latin-1"
    return new_event(record, ts, msg, ecs, fields)


def _missing_field(text: str, parts: list[str], start: int, latin1: bool) -> ParseError:
    offset = start
    name = "STRUCTURED-DATA"
    for i, field in enumerate(_HEADER_NAMES[:5]):
        if i >= len(parts) or parts[i] == "":
            name = field
            break
        offset += len(parts[i]) + 1
    offset = min(offset, len(text))
    got = abbrev(text[offset : offset + 20]) if offset < len(text) else "end of message"
    return _error(
        "truncated_header",
        f"RFC 5424 header ends early at byte offset {byte_offset(text, offset, latin1)}: "
        f"expected {name}, got {got}",
    )


def _check_bom(record: RawRecord, msg: str) -> None:
    # A BOM promises UTF-8 (RFC 5424 §6.4); seen as Latin-1 it reads "ï»¿".
    if msg.startswith("ï»¿"):
        try:
            record.payload.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise _error(
                "invalid_utf8",
                f"RFC 5424 MSG starts with a UTF-8 BOM but is not valid UTF-8 at byte offset "
                f"{exc.start}: bytes {record.payload[exc.start : exc.start + 4].hex(' ')}",
            ) from None


def _structured_data(
    text: str, rest: str, sd_start: int, latin1: bool, fields: dict[str, str], ecs: dict[str, str]
) -> str:
    """Read SD-ELEMENTs from ``rest`` into ``fields``; return MSG."""
    i = 0
    n = len(rest)
    while True:
        m = _SD_ELEMENT.match(rest, i)
        if m is None:
            where, expected = _sd_problem(rest, i)
            raise _error(
                "bad_structured_data",
                f"RFC 5424 STRUCTURED-DATA element starting at byte offset "
                f"{byte_offset(text, sd_start + i, latin1)} is malformed at byte offset "
                f"{byte_offset(text, sd_start + where, latin1)}: expected {expected}, got "
                f"{abbrev(rest[where : where + 30]) if where < n else 'end of message'}",
            )
        sd_id = m.group(1)
        params = m.group(2)
        if params:
            prefix = f"sd.{sd_id}."
            for pm in _SD_PARAM.finditer(params):
                value = pm.group(2)
                if "\\" in value:
                    value = _SD_ESCAPE.sub(r"\1", value)
                key = prefix + pm.group(1)
                old = fields.get(key)
                fields[key] = value if old is None else f"{old}, {value}"
            if sd_id == "origin":
                ip = fields.get("sd.origin.ip")
                if ip:
                    ecs.setdefault("host.ip", ip.split(", ", 1)[0])
        i = m.end()
        if i == n:
            return ""
        c = rest[i]
        if c == " ":
            return rest[i + 1 :]
        if c != "[":
            raise _error(
                "bad_structured_data",
                f"RFC 5424 STRUCTURED-DATA at byte offset {byte_offset(text, sd_start + i, latin1)}: "
                f"expected ' ' or '[' after an element, got {abbrev(rest[i : i + 20])}",
            )


def _sd_problem(rest: str, i: int) -> tuple[int, str]:
    """Where an SD-ELEMENT starting at ``rest[i]`` goes wrong, and what was expected there.

    Only called once the element failed to match, so it may be slow; it names the spot
    (an unquoted value, a missing "]") instead of just the element's start.
    """
    n = len(rest)
    j = i + 1
    while j < n and rest[j] not in ' =]"':
        j += 1
    if j == i + 1:
        return j, "an SD-ID"
    while True:
        if j >= n:
            return j, "']' closing the element"
        if rest[j] == "]":
            return j, "' ' or '[' after ']'"  # pragma: no cover - the regex would have matched
        if rest[j] != " ":
            return j, "' PARAM=\"VALUE\"' or ']'"
        while j < n and rest[j] == " ":
            j += 1
        k = j
        while k < n and rest[k] not in ' =]"':
            k += 1
        if k == j:
            if k < n and rest[k] == "]":
                return k + 1, "' ' or '[' after ']'"  # pragma: no cover
            return k, "a PARAM-NAME"
        if k >= n or rest[k] != "=":
            return k, "'=' after the PARAM-NAME"
        if k + 1 >= n or rest[k + 1] != '"':
            return k + 1, "'\"' opening the PARAM-VALUE"
        k += 2
        while k < n and rest[k] != '"':
            k += 2 if rest[k] == "\\" else 1
        if k >= n:
            return n, "'\"' closing the PARAM-VALUE"
        j = k + 1
