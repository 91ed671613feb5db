"""One syslog message (framing already removed): the PRI, then RFC 5424 or RFC 3164.

    <36>1 2026-11-26T21:43:23.306142+00:00 rs-testhost sshd - - -  Failed password for ...
    <134>1 2026-11-26T21:43:38.052340+00:00 vm eservice - LOGIN [auth@32473 user="anna"] BankID ...
    <36>Nov 26 21:43:38 vm sshd: Failed password for root from 10.9.8.7 port 4022 ssh2
    Nov 26 21:43:38 vm sshd[812]: Accepted publickey for anna from 10.1.2.3 port 51234 ssh2

After ``<PRI>``, a version number and a space (``1 ``) means RFC 5424; anything else is RFC
3164. A message without any PRI is read as RFC 3164 (a relay would have added ``<13>``, RFC
3164 §4.3.3) and gets no facility/severity. A ``<`` that does not open a valid PRI
(``<abc>``, ``<999>``, no ``>``) is an error: the sender is not speaking syslog.
"""

from __future__ import annotations

from norrvakt.event import Event, RawRecord
from norrvakt.parsers import rfc3164, rfc5424
from norrvakt.parsers.base import ParseError, abbrev, decode_text

SEVERITY_NAMES = ("emerg", "alert", "crit", "err", "warning", "notice", "info", "debug")
FACILITY_NAMES = (
    "kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news", "uucp", "cron", "authpriv",
    "ftp", "ntp", "security", "console", "solaris-cron", "local0", "local1", "local2", "local3",
    "local4", "local5", "local6", "local7",
)  # fmt: skip
# Names as senders spell them (syslog-ng PRIORITY/FACILITY, JSON "level") → code.
SEVERITY_CODES: dict[str, int] = {name: code for code, name in enumerate(SEVERITY_NAMES)}
SEVERITY_CODES.update(
    {"emergency": 0, "panic": 0, "critical": 2, "error": 3, "warn": 4, "informational": 6, "information": 6}
)
FACILITY_CODES: dict[str, int] = {name: code for code, name in enumerate(FACILITY_NAMES)}
FACILITY_CODES.update({"audit": 13, "alert": 14, "clock": 15, "cron2": 15})

# Strings for codes 0..191 so the hot path does no int → str conversions.
_CODE_STR = [str(i) for i in range(192)]


def parse_pri(text: str) -> tuple[int, int]:
    """(PRI value, index after ``>``) for text starting with ``<``; ParseError if it is no PRI."""
    end = text.find(">", 1, 5)
    digits = text[1:end] if end > 1 else ""
    if not digits or not (digits.isascii() and digits.isdigit()):
        raise ParseError(
            "syslog.bad_pri",
            "syslog message with an invalid PRI",
            f"syslog PRI at byte offset 0 must be '<' + 1-3 digits + '>', got {abbrev(text[:8], 8)}",
        )
    pri = int(digits)
    if pri > 191:
        raise ParseError(
            "syslog.bad_pri",
            "syslog message with an invalid PRI",
            f"syslog PRI at byte offset 0 is {pri}, expected 0..191 (facility*8 + severity)",
        )
    return pri, end + 1


def set_pri(ecs: dict[str, str], pri: int) -> None:
    ecs["log.syslog.facility.code"] = _CODE_STR[pri >> 3]
    ecs["log.syslog.severity.code"] = _CODE_STR[pri & 7]
    ecs["log.level"] = SEVERITY_NAMES[pri & 7]


def parse_syslog(record: RawRecord) -> Event:
    text, latin1 = decode_text(record.payload)
    return parse_syslog_text(record, text, latin1)


def parse_syslog_text(record: RawRecord, text: str, latin1: bool) -> Event:
    """Parse decoded syslog ``text`` (also used for syslog lines inside HEC envelopes)."""
    if not text.startswith("<"):
        return rfc3164.parse_3164(record, text, 0, latin1)
    pri, pos = parse_pri(text)
    # RFC 5424: VERSION = NONZERO-DIGIT 0*2DIGIT, then SP.
    c = text[pos : pos + 1]
    if "1" <= c <= "9":
        sp = text.find(" ", pos, pos + 4)
        if sp > pos and text[pos:sp].isdigit():
            event = rfc5424.parse_5424(record, text, pos, sp, latin1)
            set_pri(event.ecs, pri)
            return event
    event = rfc3164.parse_3164(record, text, pos, latin1)
    set_pri(event.ecs, pri)
    return event
