"""GELF 1.1 messages (Graylog Extended Log Format), as the GELF listener hands them over:
one JSON object, already reassembled and decompressed.

    {"version":"1.1","host":"web01.kommun.local","short_message":"login failed for anna","full_message":"login failed for anna\\nat Auth.check()","timestamp":1795729418.123456,"level":4,"_user":"anna","_client_ip":"10.1.2.3"}
    {"version":"1.1","host":"DC01.kommun.local","short_message":"An account failed to log on.","timestamp":1795729418,"level":5,"_EventID":4625,"_Channel":"Security","_SourceName":"Microsoft-Windows-Security-Auditing","_EventType":"AUDIT_FAILURE","_TargetUserName":"anna","_IpAddress":"10.1.2.3"}

The first is what ``graypy`` sends, the second what NXLog CE's ``xm_gelf`` makes of a Windows
event (every NXLog field as an ``_``-prefixed additional field; ``$Hostname`` as ``host``,
``$Message`` as ``short_message``/``full_message``, ``$EventTime`` as ``timestamp``).

- Additional fields lose their ``_`` as in Graylog (``_user`` → ``user``), so the JSON rules
  apply to them (``user`` → ``user.name``) and a Norrvakt mark (``_ts_missing``) can never come
  from the payload. A name that is taken (``_host`` beside ``host``), empty or still starting
  with ``_`` after the strip is kept as ``gelf.<name as sent>``.
- An NXLog Windows event (``EventID`` with ``Channel``/``SourceName`` after the strip) is a
  Windows event: :mod:`norrvakt.parsers.windows` names its fields as for EVTX, ``host`` gives
  ``Hostname`` and ``full_message`` ``Message`` when NXLog left them out.
- ``timestamp`` (seconds since the epoch, with a fraction) is the event time; it is exact,
  unlike NXLog's zone-less ``EventTime``.
- A message without ``version``, ``host`` or ``short_message`` (all required by GELF 1.1) is
  kept as an event; ``_gelf_missing`` lists what it lacked.
"""  # noqa: E501 - the sample lines are real and kept whole

from __future__ import annotations

from typing import Any

from norrvakt.event import Event, RawRecord
from norrvakt.parsers.base import TS_INVALID, TS_MISSING, load_json_object, scalar_str
from norrvakt.parsers.json_event import json_event
from norrvakt.parsers.timestamps import epoch_to_us
from norrvakt.parsers.windows import windows_event, windows_shape

GELF_MISSING = "_gelf_missing"
_REQUIRED = ("version", "host", "short_message")


def parse_gelf(record: RawRecord) -> Event:
    doc = load_json_object(record, "gelf")
    flat = gelf_document(doc)
    missing = [key for key in _REQUIRED if not _present(doc.get(key))]
    if windows_shape(flat) == "nxlog":
        if "Hostname" not in flat and _present(doc.get("host")):
            flat["Hostname"] = doc["host"]
        if "Message" not in flat and _present(doc.get("full_message") or doc.get("short_message")):
            flat["Message"] = doc.get("full_message") or doc.get("short_message")
        event = windows_event(record, flat, "nxlog")
        ts = _gelf_time(doc.get("timestamp"))
        if ts is not None:
            event.ts = ts
            event.fields.pop(TS_MISSING, None)
            event.fields.pop(TS_INVALID, None)
    else:
        event = json_event(record, flat)
    if missing:
        event.fields[GELF_MISSING] = ", ".join(missing)
    return event


def gelf_document(doc: dict[str, Any]) -> dict[str, Any]:
    """``doc`` with the ``_`` of its additional fields removed where the plain name is free."""
    out: dict[str, Any] = {key: value for key, value in doc.items() if not key.startswith("_")}
    for key, value in doc.items():
        if not key.startswith("_"):
            continue
        name = key[1:]
        if not name or name.startswith("_") or name in out:
            out["gelf." + key] = value
        else:
            out[name] = value
    return out


def _present(value: Any) -> bool:
    return value is not None and scalar_str(value) != ""


def _gelf_time(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return None
    return epoch_to_us(value)
