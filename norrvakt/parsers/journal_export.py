"""systemd's Journal Export Format: the entries ``systemd-journal-upload`` posts to
``/upload`` (:mod:`norrvakt.sources.journal_remote`), and one entry parsed into an event.

    __REALTIME_TIMESTAMP=1795729418412345
    _HOSTNAME=srv01
    SYSLOG_IDENTIFIER=sshd
    _PID=4242
    MESSAGE=Accepted publickey for anna from 10.1.2.3 port 51123 ssh2
    <empty line: the next entry>

A field is ``NAME=value\\n`` (text), or — when the value is not plain text (a newline, binary
data) — ``NAME\\n``, the value's length as 64-bit little-endian, the value, ``\\n``. Entries
are separated by an empty line. A record of format ``journal`` is one entry without its
separator, exactly as received.

Parsing reuses the JSON parser's journald names (:func:`~norrvakt.parsers.json_event.json_event`:
``MESSAGE`` → message, ``PRIORITY`` → log.level and severity, ``_HOSTNAME`` → host.name,
``SYSLOG_IDENTIFIER`` → process.name, ``_PID`` → process.pid, ``SYSLOG_FACILITY``,
``__REALTIME_TIMESTAMP`` → ts); this module adds ``_SOURCE_REALTIME_TIMESTAMP`` (the time the
program logged, preferred), ``_UID`` → user.id, ``_EXE`` → process.executable, ``_CMDLINE`` →
process.command_line, ``_COMM`` → process.name when there is no identifier. Every field is
kept under its own name; a binary value that is UTF-8 is kept as text, one that is not is
kept in base64 and its name listed in ``_journal_base64``. A name given twice (journald
allows it) keeps its values joined with a newline. The syslog recognizers (sshd, sudo, ...)
then run on the message, as for syslog.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass

from norrvakt.event import Event, RawRecord
from norrvakt.parsers.base import ParseError, abbrev
from norrvakt.parsers.json_event import json_event
from norrvakt.parsers.timestamps import epoch_to_us

# Field names as journald writes them (it refuses lowercase in its own journal; the export
# format and journal-remote accept what a program sent, so lowercase is allowed here).
_NAME = re.compile(rb"[A-Za-z_][A-Za-z0-9_]{0,63}")
# Longer lines without a newline are not export format (names are at most 64 bytes).
_MAX_NAME_LINE = 65
# A binary field's length above this is garbage, not a field (journald's own cap on one
# field is far below it); reading stops there.
MAX_FIELD_BYTES = 64 * 1024 * 1024
BASE64_FIELDS = "_journal_base64"
# journald's own fields the JSON parser's mapping does not name.
_ECS_EXTRA = (
    ("user.id", "_UID"),
    ("process.executable", "_EXE"),
    ("process.command_line", "_CMDLINE"),
    ("process.name", "_COMM"),
)


# --- one entry -------------------------------------------------------------------------------


def split_entry(data: bytes) -> list[tuple[str, bytes]]:
    """The (name, value) pairs of one entry, or a ParseError naming the offset and the problem."""
    out: list[tuple[str, bytes]] = []
    pos = 0
    end = len(data)
    while pos < end:
        nl = data.find(b"\n", pos)
        line = data[pos : nl if nl >= 0 else end]
        if not line:
            raise ParseError(
                "journal.bad_entry",
                "journal entry is malformed",
                f"journal entry has an empty line at byte offset {pos}: one entry holds no separator",
            )
        eq = line.find(b"=")
        if eq >= 0:
            out.append((_name(line[:eq], pos), line[eq + 1 :]))
            pos = (nl if nl >= 0 else end) + 1
            continue
        name = _name(line, pos)
        if nl < 0:
            raise _truncated(name, pos, "its length is missing")
        start = nl + 1
        if start + 8 > end:
            raise _truncated(name, pos, f"only {end - start} of the 8 length bytes follow")
        size = int.from_bytes(data[start : start + 8], "little")
        value_at = start + 8
        if size > MAX_FIELD_BYTES or value_at + size > end:
            raise _truncated(name, pos, f"its length {size} is more than the {end - value_at} bytes left")
        if value_at + size < end and data[value_at + size] != 0x0A:
            raise ParseError(
                "journal.bad_binary_field",
                "journal binary field is malformed",
                f"journal binary field {name} at byte offset {pos}: the {size} bytes of its value are "
                f"followed by {data[value_at + size : value_at + size + 8]!r}, not a newline",
            )
        out.append((name, data[value_at : value_at + size]))
        pos = value_at + size + 1
    return out


def _name(raw: bytes, pos: int) -> str:
    if _NAME.fullmatch(raw) is None:
        raise ParseError(
            "journal.not_export_format",
            "not Journal Export Format",
            f"journal entry at byte offset {pos}: {abbrev(raw)} is not a field name (letters, digits "
            "and _, at most 64) followed by = or a newline",
        )
    return raw.decode("ascii")


def _truncated(name: str, pos: int, why: str) -> ParseError:
    return ParseError(
        "journal.truncated_binary_field",
        "journal binary field is truncated",
        f"journal binary field {name} at byte offset {pos} is truncated: {why}",
    )


def parse_journal(record: RawRecord) -> Event:
    pairs = split_entry(record.payload)
    if not pairs:
        raise ParseError("journal.empty_entry", "empty journal entry", "journal entry holds no field")
    doc: dict[str, str] = {}
    binary: list[str] = []
    for name, value in pairs:
        try:
            text = value.decode("utf-8")
        except UnicodeDecodeError:
            text = base64.b64encode(value).decode("ascii")
            if name not in binary:
                binary.append(name)
        doc[name] = f"{doc[name]}\n{text}" if name in doc else text
    event = json_event(record, dict(doc))
    if binary:
        event.fields[BASE64_FIELDS] = ", ".join(binary)
    ecs = event.ecs
    stamp = doc.get("_SOURCE_REALTIME_TIMESTAMP", "")
    if stamp.isdigit():
        ts = epoch_to_us(int(stamp))
        if ts is not None:
            event.ts = ts
            event.fields.pop("_ts_missing", None)
    for target, key in _ECS_EXTRA:
        found = doc.get(key)
        if found and target not in ecs and key not in binary:
            ecs[target] = found
    return event


# --- a stream of entries ---------------------------------------------------------------------


@dataclass(frozen=True)
class Item:
    """What the reader found: an entry (``error`` None), or a problem with the stream at
    ``offset``. A ``fatal`` problem ends reading: nothing after it can be trusted."""

    offset: int
    data: bytes
    error: str | None = None
    detail: str = ""
    fatal: bool = False


class JournalExportReader:
    """Splits a Journal Export Format stream into entries as its bytes arrive, without holding
    more than one entry (``max_entry_bytes``) however large a field claims to be.

    An entry over ``max_entry_bytes`` is read to its end and given as a
    ``journal.entry_too_large`` problem with its first bytes (the stream goes on); a field
    name that is not one, a binary length over :data:`MAX_FIELD_BYTES` or a binary value not
    followed by its newline is fatal (``journal.not_export_format``,
    ``journal.field_too_large``, ``journal.bad_binary_field``); a stream that ends inside an
    entry gives ``journal.truncated`` from :meth:`finish`."""

    def __init__(self, max_entry_bytes: int) -> None:
        self.max_entry_bytes = max_entry_bytes
        self._buf = b""
        self._base = 0  # stream offset of _buf[0]
        self._entry = bytearray()
        self._entry_at = 0
        self._entry_size = 0  # bytes of the entry so far, also those not kept
        self._state = "line"  # line | length | value | newline | skip | broken
        self._field = ""  # name of the binary field being read
        self._field_at = 0
        self._left = 0  # bytes of the binary value still to come
        self._size = 0

    def feed(self, data: bytes) -> list[Item]:
        if self._state == "broken":
            return []
        buf = self._buf + data if self._buf else data
        out: list[Item] = []
        pos = 0
        n = len(buf)
        while pos < n and self._state != "broken":
            state = self._state
            if state == "line":
                nl = buf.find(b"\n", pos)
                if nl < 0:
                    rest = buf[pos:]
                    if b"=" not in rest[:_MAX_NAME_LINE] and len(rest) > _MAX_NAME_LINE:
                        self._fatal(out, pos, rest, "journal.not_export_format", "no field name")
                    elif len(rest) > self.max_entry_bytes:  # a text line longer than an entry
                        self._keep(rest)
                        self._state = "skip"
                        pos = n
                        continue
                    break
                pos = self._line(out, buf, pos, nl)
            elif state == "skip":
                nl = buf.find(b"\n", pos)
                self._entry_size += (nl if nl >= 0 else n) - pos
                if nl < 0:
                    pos = n
                    break
                pos = nl + 1
                self._state = "line"
            elif state == "length":
                if n - pos < 8:
                    break
                size = int.from_bytes(buf[pos : pos + 8], "little")
                if size > MAX_FIELD_BYTES:
                    why = (
                        f"binary field {self._field} claims {size} bytes, over any field's {MAX_FIELD_BYTES}"
                    )
                    self._fatal(
                        out, self._field_at - self._base, buf[pos : pos + 8], "journal.field_too_large", why
                    )
                    break
                self._keep(buf[pos : pos + 8])
                self._left = self._size = size
                self._state = "value" if size else "newline"
                pos += 8
            elif state == "value":
                take = min(self._left, n - pos)
                self._keep(buf[pos : pos + take])
                self._left -= take
                pos += take
                if self._left == 0:
                    self._state = "newline"
            elif state == "newline":
                if buf[pos] != 0x0A:
                    why = (
                        f"binary field {self._field} (at offset {self._field_at}): its {self._size} bytes "
                        f"are followed by {buf[pos : pos + 8]!r}, not a newline — wrong length or truncated"
                    )
                    self._fatal(out, pos, buf[pos : pos + 64], "journal.bad_binary_field", why)
                    break
                self._keep(b"\n")
                pos += 1
                self._state = "line"
        self._base += pos
        self._buf = buf[pos:] if self._state != "broken" else b""
        return out

    def _line(self, out: list[Item], buf: bytes, pos: int, nl: int) -> int:
        line = buf[pos:nl]
        if not line:  # an empty line ends the entry
            self._end_entry(out)
            return nl + 1
        if not self._entry_size:
            self._entry_at = self._base + pos
        eq = line.find(b"=")
        name = line[:eq] if eq >= 0 else line
        if _NAME.fullmatch(name) is None:
            why = "the line is not a field name (letters, digits and _) with = or a newline"
            self._fatal(out, pos, line[:64], "journal.not_export_format", why)
            return nl + 1
        self._keep(buf[pos : nl + 1])
        if eq < 0:
            self._field = name.decode("ascii")
            self._field_at = self._base + pos
            self._state = "length"
        return nl + 1

    def _keep(self, data: bytes) -> None:
        self._entry_size += len(data)
        room = self.max_entry_bytes - len(self._entry)
        if room > 0:
            self._entry += data[:room]

    def _end_entry(self, out: list[Item]) -> None:
        if not self._entry_size:
            return  # blank lines between entries
        data = bytes(self._entry)
        if data.endswith(b"\n"):
            data = data[:-1]
        if self._entry_size > self.max_entry_bytes:
            detail = (
                f"journal entry at offset {self._entry_at} is {self._entry_size} bytes, over the limit "
                f"of {self.max_entry_bytes} (max_message_bytes); its first bytes are kept"
            )
            out.append(Item(self._entry_at, data, "journal.entry_too_large", detail))
        else:
            out.append(Item(self._entry_at, data))
        self._entry = bytearray()
        self._entry_size = 0

    def _fatal(self, out: list[Item], pos: int, bad: bytes, error: str, why: str) -> None:
        offset = self._base + pos
        detail = f"not Journal Export Format at stream offset {offset}: {why}; near {abbrev(bad)}"
        out.append(Item(offset, bytes(self._entry) + bad[:256], error, detail, fatal=True))
        self._state = "broken"
        self._entry = bytearray()

    def finish(self) -> list[Item]:
        """The stream ended: the last entry, or what was cut off."""
        out: list[Item] = []
        if self._state == "broken":
            return out
        rest = self._buf
        if self._state == "line" and not rest:
            self._end_entry(out)  # a last entry without its empty line is whole
            return out
        self._keep(rest)
        where = {
            "line": "inside a field",
            "skip": "inside an over-long field",
            "length": f"inside the length of binary field {self._field}",
            "value": f"inside binary field {self._field} ({self._size - self._left} of {self._size} bytes)",
            "newline": f"after binary field {self._field}, before its newline",
        }[self._state]
        at = self._base + len(rest)
        detail = f"the stream ends {where} (entry at offset {self._entry_at}, stream offset {at})"
        out.append(Item(self._entry_at, bytes(self._entry), "journal.truncated", detail, fatal=True))
        self._state = "broken"
        return out
