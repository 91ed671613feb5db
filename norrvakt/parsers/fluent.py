"""One Fluent Forward entry, as the ``forward`` source writes it (:mod:`norrvakt.sources.forward_frames`).

    {"tag":"app.web","time":1795729418,"nanos":412345678,"record":{"host":"web01","log":"GET /index.html 200"}}
    {"tag":"syslog.auth","time":1795729418,"record":{"hostname":"srv01","ident":"sshd","pid":"4242","message":"Failed password for invalid user admin from 10.1.2.3 port 55222 ssh2"}}
    {"tag":"winlog.security","time":1795729418,"record":{"ProviderName":"Microsoft-Windows-Security-Auditing","EventID":4625,"Channel":"Security","Computer":"WS01","StringInserts":["S-1-0-0","-","-","0x0","S-1-0-0","anna"]}}

The record is read as any JSON event is (:func:`~norrvakt.parsers.json_event.json_event`:
every key kept in ``fields``, nested keys flattened with dots; ECS names, ``host``/``hostname``,
``message``/``log``/``MESSAGE``, journald and Windows shapes recognised), then:

- ``fluent.tag`` = the tag; it is also ``event.dataset`` unless the record set one.
- ``ts`` = the entry's time (seconds, and nanoseconds of an EventTime, cut to microseconds);
  a time of 0 is taken as none: the record's own time, or the receive time with ``_ts_missing``.
- Fluent Bit 2.1+ metadata is kept as ``fluent.metadata.*``.
- Fluent Bit ``winevtlog``/``winlog`` records (``StringInserts``) are handed to
  :mod:`norrvakt.parsers.windows_fluentbit`, which names the insertion strings.
"""  # noqa: E501 - the sample lines are real and kept whole

from __future__ import annotations

from typing import Any

from norrvakt.event import Event, RawRecord
from norrvakt.parsers.base import TS_INVALID, TS_MISSING, ParseError, abbrev, flatten_json, load_json_object
from norrvakt.parsers.json_event import json_event
from norrvakt.parsers.windows_fluentbit import is_fluentbit_windows, winevtlog_event

_MAX_SECONDS = 253402300799  # 9999-12-31T23:59:59Z


def parse_fluent(record: RawRecord) -> Event:
    doc = load_json_object(record, "fluent")
    tag, body = doc.get("tag"), doc.get("record")
    if not isinstance(tag, str) or not isinstance(body, dict):
        raise ParseError(
            "fluent.bad_entry",
            "not a Fluent Forward entry",
            "fluent payload at byte offset 0 must be an object with a string 'tag' and an object "
            f"'record'; got tag {abbrev(repr(tag), 40)} and record of type {type(body).__name__}",
        )
    ts = entry_time(doc.get("time"), doc.get("nanos"))
    if is_fluentbit_windows(body):
        event = winevtlog_event(record, body, ts)
    else:
        event = json_event(record, body)
        if ts is not None:
            event.ts = ts
            event.fields.pop(TS_MISSING, None)
            event.fields.pop(TS_INVALID, None)
    event.fields["fluent.tag"] = tag
    if tag:
        event.ecs.setdefault("event.dataset", tag)
    metadata = doc.get("metadata")
    if isinstance(metadata, dict):
        flatten_json(metadata, "fluent.metadata", event.fields)
    return event


def entry_time(seconds: Any, nanos: Any) -> int | None:
    """Microseconds since the epoch of a Forward time, or None when it is missing or absurd."""
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)):
        return None
    if not 0 < seconds <= _MAX_SECONDS:
        return None
    if isinstance(seconds, float):
        return int(seconds * 1_000_000)
    extra = (
        nanos // 1000 if isinstance(nanos, int) and not isinstance(nanos, bool) and 0 <= nanos < 10**9 else 0
    )
    return seconds * 1_000_000 + extra
