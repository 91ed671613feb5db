"""One line of a plain text log file (or an HEC ``/raw`` line that is not declared syslog).

    Nov 26 21:43:38 srv01 sshd[4123]: Failed password for root from 10.9.8.7 port 4022 ssh2
    2026-11-26T21:43:38.412345+01:00 srv01 sudo: pam_unix(sudo:session): session closed for user root
    <86>Nov 26 21:43:38 srv01 su[990]: (to root) anna on pts/0
    2026-11-26 21:43:38,412 INFO  [main] Application started
    any other line at all

Lines shaped like syslog (``/var/log/auth.log``, ``/var/log/syslog``, with or without a PRI)
are read as RFC 3164; anything else becomes an event whose message is the line, with the
receive time as ``ts``. Text never fails to parse: a line is always a valid log line.
"""

from __future__ import annotations

from norrvakt.event import Event, RawRecord
from norrvakt.parsers.base import ParseError, decode_text
from norrvakt.parsers.rfc3164 import parse_3164
from norrvakt.parsers.syslog import parse_syslog_text


def parse_text(record: RawRecord) -> Event:
    text, latin1 = decode_text(record.payload)
    if text.startswith("<"):
        try:
            return parse_syslog_text(record, text, latin1)
        except ParseError:
            # Not syslog after all ("<html>", "<-- note", a cut RFC 5424 header): a text line
            # is always a valid log line, so it is kept as plain text rather than an error.
            return parse_3164(record, text, 0, latin1)
    return parse_3164(record, text, 0, latin1)
