"""Loading and checking the golden cases under ``tests/samples/<format>/*.yml``.

Each file is a YAML list of cases::

    - name: sshd failed password, rsyslog RFC 5424 over TCP
      format: syslog                      # RawRecord.format
      payload: "<36>1 2026-11-26T21:43:23.306142+00:00 rs-testhost sshd - - -  Failed ..."
      # payload_b64: PDE0PjEg...          # instead of payload, for bytes that are not UTF-8
      timezone: UTC                       # optional, default Europe/Stockholm
      received_at: 2026-11-26T21:45:00Z   # optional, ISO or µs; default below
      hints: {host: vm}                   # optional RawRecord.hints
      expect:
        kind: event                       # default "event"
        ts: 2026-11-26T21:43:23.306142Z   # ISO string or µs int
        message: Failed password for invalid user admin from 10.1.2.3 port 55222 ssh2
        message_contains: [admin]
        ecs: {host.name: rs-testhost, log.syslog.severity.code: 4}
        fields: {sshd.user: admin}
        absent: [host.name, _ts_missing]  # neither in ecs nor in fields
        error_contains: [byte offset 31, APP-NAME]   # substrings of error.message

``ecs``/``fields`` are subsets: only the keys listed are checked; a YAML number or boolean
compares as Norrvakt writes it (``4``, ``true``), and ``null`` means "must be absent".
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from norrvakt.event import ECS_FIELD_SET, KIND_EVENT, Event, RawRecord, canonical_bytes
from norrvakt.parsers.timestamps import parse_iso

SAMPLES = Path(__file__).resolve().parents[1] / "samples"
DEFAULT_RECEIVED_AT = "2026-11-26T21:45:00Z"
DEFAULT_TIMEZONE = "Europe/Stockholm"
TENANT = "lulea"
SOURCE_ID = "golden-source"
PEER = "192.0.2.10:51514"


@dataclass(frozen=True)
class GoldenCase:
    path: Path
    case: dict[str, Any]

    @property
    def id(self) -> str:
        return f"{self.path.parent.name}/{self.path.stem}: {self.case['name']}"


def load_cases() -> list[GoldenCase]:
    cases: list[GoldenCase] = []
    for path in sorted(SAMPLES.glob("*/*.yml")):
        for case in yaml.safe_load(path.read_text(encoding="utf-8")) or []:
            cases.append(GoldenCase(path, case))
    return cases


def to_us(value: Any) -> int:
    if isinstance(value, int):
        return value
    text = value.isoformat() if hasattr(value, "isoformat") else str(value)
    us = parse_iso(text, "UTC")
    if us is None:
        raise ValueError(f"not a timestamp: {value!r}")
    return us


def as_text(value: Any) -> str:
    if value is True:
        return "true"
    if value is False:
        return "false"
    return str(value)


def record_for(case: dict[str, Any]) -> RawRecord:
    if "payload_b64" in case:
        payload = base64.b64decode(case["payload_b64"])
    else:
        payload = str(case["payload"]).encode("utf-8")
    return RawRecord(
        tenant=TENANT,
        source_id=SOURCE_ID,
        received_at=to_us(case.get("received_at", DEFAULT_RECEIVED_AT)),
        peer=PEER,
        payload=payload,
        format=case["format"],
        timezone=case.get("timezone", DEFAULT_TIMEZONE),
        hints=case.get("hints"),
    )


def check_invariants(record: RawRecord, event: Event) -> None:
    """What every event must satisfy, parsed or not."""
    assert isinstance(event, Event)
    assert event.raw == record.payload
    assert (event.tenant, event.source, event.peer, event.ingested) == (
        record.tenant,
        record.source_id,
        record.peer,
        record.received_at,
    )
    assert set(event.ecs) <= ECS_FIELD_SET, set(event.ecs) - ECS_FIELD_SET
    assert all(isinstance(v, str) and v != "" for v in event.ecs.values()), event.ecs
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in event.fields.items())
    assert isinstance(event.message, str)
    assert isinstance(event.ts, int)
    assert event.ecs.get("event.kind") in ("event", "pipeline_error")
    canonical_bytes(event)


def check_expectations(event: Event, expect: dict[str, Any]) -> None:
    kind = expect.get("kind", KIND_EVENT)
    assert event.kind == kind, f"kind {event.kind!r}: {event.ecs.get('error.message')}"
    if "ts" in expect:
        assert event.ts == to_us(expect["ts"]), f"ts {event.ts} != {to_us(expect['ts'])}"
    if "message" in expect:
        assert event.message == expect["message"]
    for part in expect.get("message_contains", []):
        assert part in event.message, f"{part!r} not in {event.message!r}"
    for where, got in (("ecs", event.ecs), ("fields", event.fields)):
        for key, want in (expect.get(where) or {}).items():
            if want is None:
                assert key not in got, f"{where}[{key!r}] = {got[key]!r}, expected absent"
            else:
                assert got.get(key) == as_text(want), f"{where}[{key!r}] = {got.get(key)!r} != {want!r}"
    for key in expect.get("absent", []):
        assert key not in event.ecs and key not in event.fields, f"{key!r} should be absent"
    error = event.ecs.get("error.message", "")
    for part in expect.get("error_contains", []):
        assert part in error, f"{part!r} not in error.message {error!r}"
