"""NXLog's ``to_json()`` lines that are not Windows events, arriving as a syslog or text message.

    {"EventReceivedTime":"2026-11-26 21:43:39","SourceModuleName":"authlog","SourceModuleType":"im_file","Hostname":"web01","Message":"Failed password for root from 10.9.8.7 port 4022 ssh2"}
    {"EventReceivedTime":"2026-11-26 21:43:39","SourceModuleName":"app","SourceModuleType":"im_file","Hostname":"bygglov01","EventTime":"2026-11-26 21:43:38","Severity":"ERROR","Message":"database connection lost"}

NXLog CE sends these with ``om_tcp`` and ``Exec to_json();``: one JSON object a line, no
syslog header, so the syslog listener has only the line as its message. NXLog's Windows
events are recognized before this (:func:`~norrvakt.parsers.windows.recognize_windows_json`);
any other object with NXLog's ``SourceModuleType`` is read as the JSON parser reads a document:
every key in ``fields``, ``Hostname`` as ``host.name``, ``Message`` as the message,
``EventTime`` (zone-less, the listener's zone) as the time.
"""  # noqa: E501 - the sample lines are real and kept whole

from __future__ import annotations

import orjson

from norrvakt.event import Event, RawRecord
from norrvakt.parsers.base import TS_MISSING
from norrvakt.parsers.json_event import json_event

_MARK = '"SourceModuleType"'


def recognize_nxlog_json(event: Event, record: RawRecord) -> bool:
    msg = event.message
    if not msg.startswith("{") or _MARK not in msg:
        return False
    try:
        doc = orjson.loads(msg)
    except orjson.JSONDecodeError:
        return False  # looked like NXLog JSON but is not: the message stays as text
    if not isinstance(doc, dict) or not isinstance(doc.get("SourceModuleType"), str):
        return False
    parsed = json_event(record, doc)
    parsed.ecs.pop("event.kind", None)
    # The line is the whole record: what it says is more precise than the (empty) envelope.
    event.ecs.update(parsed.ecs)
    event.fields.update(parsed.fields)
    event.message = parsed.message
    if TS_MISSING not in parsed.fields:
        event.ts = parsed.ts
        event.fields.pop(TS_MISSING, None)
    return True
