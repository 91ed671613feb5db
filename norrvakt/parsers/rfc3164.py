"""RFC 3164 ("BSD") syslog after the PRI — and the same line shape in text log files.

    <36>Nov 26 21:43:38 vm sshd: Failed password for root from 10.9.8.7 port 4022 ssh2
    <157>Nov 26 21:43:23 rs-testhost dörrlås: Åtkomst nekad kort=12345 dörr=Stadshuset-B2 ÅÄÖ
    Nov  6 08:01:02 srv01 sudo:     anna : TTY=pts/0 ; PWD=/home/anna ; USER=root ; COMMAND=/usr/bin/id
    <13>2026-11-26T21:43:38.123456+01:00 web01 nginx[812]: upstream timed out
    <134>Nov 26 12:00:00 fw01 CEF:0|Palo Alto Networks|PAN-OS|10.2.4|end|TRAFFIC|1|src=10.1.2.3

The header is ``TIMESTAMP HOSTNAME TAG[PID]: MSG``, and every part of it is optional in
practice:

- TIMESTAMP is ``Mmm dd hh:mm:ss`` (day space-padded, optional ``.frac``, optional year
  before the time as Cisco writes it) in ``record.timezone`` with the year inferred from the
  receive time — or an ISO 8601 timestamp (rsyslog's high-precision format).
- HOSTNAME is left out by many local loggers (``Nov 26 21:43:38 sshd[123]: ...``): a first
  word followed by ``[`` or ``:`` is the tag, not a host.
- With no recognisable timestamp, everything after the PRI is the message (RFC 3164 §4.3.3)
  and ``ts`` is the receive time, marked ``_ts_missing``.
- ``CEF:0|...`` and ``LEEF:`` where the tag would be are the payload, not a tag.
- An ISO timestamp with a space instead of ``T`` (application logs: ``2026-11-26 21:43:38,123
  INFO ...``) is taken as the time, and the rest of the line as the message.

Trailing CR, LF and NUL (UDP senders differ) are dropped.
"""

from __future__ import annotations

import re

from norrvakt.event import Event, RawRecord
from norrvakt.parsers.base import ENCODING, TS_INVALID, TS_MISSING, new_event
from norrvakt.parsers.timestamps import MONTHS, infer_year, local_to_us, parse_iso

_BSD_TS = re.compile(
    r"([A-Za-z]{3}) {1,2}(\d{1,2})(?: (\d{4}))? (\d\d):(\d\d):(\d\d)(?:\.(\d{1,9}))?:?(?: +|$)", re.ASCII
)
_ISO_TS = re.compile(
    r"(\d{4}-\d\d-\d\d([Tt ])\d\d:\d\d:\d\d(?:[.,]\d+)?(?:[Zz]|[+-]\d\d(?::?\d\d)?)?)(?: +|$)", re.ASCII
)
# [HOSTNAME SP+] TAG[\[PID\]]: — HOSTNAME and TAG stop at space, ':', '[' and ']'.
_HOST_TAG = re.compile(r"(?:([^\s:\[\]]+) +)?([^\s:\[\]]+)(?:\[([^\]\s]*)\])?: ?")
_HOST_ONLY = re.compile(r"([^\s:\[\]]+) +")
_PAYLOAD_TAGS = frozenset(("CEF", "LEEF"))


def parse_3164(record: RawRecord, text: str, pos: int, latin1: bool) -> Event:
    """Parse ``text`` from ``pos`` (just after the PRI, or 0 for a line without one)."""
    text = text.rstrip("\r\n\x00")
    ecs: dict[str, str] = {}
    fields: dict[str, str] = {}
    if latin1:
        fields[ENCODING] = "latin-1"
    ts: int | None = None
    has_host = True
    m = _BSD_TS.match(text, pos)
    if m is not None and m.group(1) in MONTHS:
        ts = _bsd_time(record, m)
        if ts is None:
            fields[TS_INVALID] = m.group(0).strip()
        pos = m.end()
    else:
        m = _ISO_TS.match(text, pos)
        if m is not None:
            ts = parse_iso(m.group(1), record.timezone)
            if ts is None:
                fields[TS_INVALID] = m.group(1)
            has_host = m.group(2) != " "
            pos = m.end()
        else:
            has_host = False
    if ts is None:
        ts = record.received_at
        fields[TS_MISSING] = "1"
    if not has_host:
        return new_event(record, ts, text[pos:].lstrip(" "), ecs, fields)

    h = _HOST_TAG.match(text, pos)
    if h is not None:
        host, tag, pid = h.group(1), h.group(2), h.group(3)
        if host is not None:
            ecs["host.name"] = host
        if tag in _PAYLOAD_TAGS and pid is None:
            return new_event(record, ts, text[h.start(2) :], ecs, fields)
        ecs["log.syslog.appname"] = tag
        ecs["process.name"] = tag
        if pid:
            ecs["log.syslog.procid"] = pid
            if pid.isascii() and pid.isdigit():
                ecs["process.pid"] = pid
        return new_event(record, ts, text[h.end() :].lstrip(" "), ecs, fields)
    h = _HOST_ONLY.match(text, pos)
    if h is not None:
        ecs["host.name"] = h.group(1)
        # Cisco ASA writes "asa01 : %ASA-6-302013: ..." — the lone colon is no part of the message.
        return new_event(record, ts, text[h.end() :].lstrip(": "), ecs, fields)
    return new_event(record, ts, text[pos:], ecs, fields)


def _bsd_time(record: RawRecord, m: re.Match[str]) -> int | None:
    month = MONTHS[m.group(1)]
    day = int(m.group(2))
    year = int(m.group(3)) if m.group(3) else infer_year(month, record.received_at)
    frac = m.group(7)
    micros = int((frac + "000000")[:6]) if frac else 0
    return local_to_us(
        record.timezone, year, month, day, int(m.group(4)), int(m.group(5)), int(m.group(6)), micros
    )
