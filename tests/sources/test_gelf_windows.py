"""NXLog CE's Windows events meet the SigmaHQ Windows rules exactly as the EVTX records do.

NXLog itself cannot be installed here (Debian has no package; NXLog's own are downloads from
nxlog.co, and its Windows event input runs only on Windows), so its output is
built from evtx-attack-samples records by :func:`nxlog_fields` — the field names and value
forms of ``im_msvistalog`` as NXLog documents them (``EventTime``, ``Hostname``,
``SourceName``, ``EventID``, ``Channel``, ``EventType``, ``RecordNumber``, ``Keywords`` as a
signed integer, event data as top-level keys) — and sent the two ways NXLog sends it:
``xm_gelf`` (every field an ``_``-prefixed additional field) over GELF UDP (zlib, chunked
when big) and GELF TCP, and ``to_json()`` lines over TCP to a syslog listener. Every event
must meet the same rules as its EVTX record does through ``parse_windows``.
"""

from __future__ import annotations

import asyncio
import socket
import zlib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from norrvakt.detect.engine import RuleSet
from norrvakt.event import Event
from norrvakt.parsers import parse_record
from norrvakt.parsers.windows import windows_fields
from norrvakt.sources.files import read_file
from norrvakt.sources.gelf import GelfSourceConfig
from norrvakt.sources.gelf_chunks import MAGIC
from norrvakt.sources.syslog import SyslogSourceConfig
from tests.conftest import shared_data
from tests.sources.test_gelf import Sink, run

# System fields of the EVTX flattening → NXLog's names (im_msvistalog).
_SYSTEM = {
    "Computer": "Hostname",
    "Provider_Name": "SourceName",
    "EventRecordID": "RecordNumber",
    "ProcessID": "ProcessID",
    "ThreadID": "ThreadID",
    "Channel": "Channel",
    "Version": "Version",
    "Task": "Task",
    "Level": "Level",
    "UserID": "UserID",
    "ActivityID": "ActivityID",
    "RelatedActivityID": "RelatedActivityID",
}
_DROPPED = {"SystemTime", "Provider_Guid", "Provider_EventSourceName", "EventID", "Keywords", "Opcode",
            "Qualifiers"}  # fmt: skip
_SEVERITY = {1: ("CRITICAL", 5), 2: ("ERROR", 4), 3: ("WARNING", 3), 4: ("INFO", 2), 5: ("DEBUG", 1)}
_SYSLOG_LEVEL = {1: 2, 2: 3, 3: 4, 4: 6, 5: 7}


def nxlog_fields(evtx_doc: dict[str, Any]) -> dict[str, Any]:
    """The record as NXLog CE's im_msvistalog fields (what ``to_json()`` writes)."""
    f, stamp = windows_fields(evtx_doc, "evtx")
    when = datetime.fromisoformat(stamp.replace("Z", "+00:00")) if stamp else datetime.now(UTC)
    keywords = int(f.get("Keywords", "0") or "0", 16)
    level = int(f.get("Level") or 4)
    if keywords & 0x0020000000000000:
        event_type = "AUDIT_SUCCESS"
    elif keywords & 0x0010000000000000:
        event_type = "AUDIT_FAILURE"
    else:
        event_type = _SEVERITY.get(level, ("INFO", 2))[0] if level else "INFO"
    out: dict[str, Any] = {
        "EventTime": when.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S"),
        "EventID": int(f["EventID"]),
        "EventType": event_type,
        "SeverityValue": _SEVERITY.get(level, ("INFO", 2))[1],
        "Severity": _SEVERITY.get(level, ("INFO", 2))[0],
        "Keywords": keywords - (1 << 64) if keywords >= 1 << 63 else keywords,  # NXLog: signed
        "OpcodeValue": int(f.get("Opcode") or 0),
    }
    if f.get("Provider_Guid"):
        out["ProviderGuid"] = "{" + f["Provider_Guid"].strip("{}") + "}"
    for name, value in f.items():
        if name in _SYSTEM:
            out[_SYSTEM[name]] = int(value) if value.isdigit() and name != "UserID" else value
        elif name not in _DROPPED:
            out[name] = value  # event data: a top-level field each, as text
    out["EventReceivedTime"] = out["EventTime"]
    out["SourceModuleName"] = "eventlog"
    out["SourceModuleType"] = "im_msvistalog"
    return out


def nxlog_gelf(fields: dict[str, Any]) -> dict[str, Any]:
    """What xm_gelf makes of those fields."""
    when = datetime.strptime(fields["EventTime"], "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)
    level = _SYSLOG_LEVEL.get(int(fields.get("Level") or 4), 6)
    out: dict[str, Any] = {
        "version": "1.1",
        "host": fields.get("Hostname", ""),
        "short_message": f"{fields.get('SourceName', '')} event {fields['EventID']}",
        "timestamp": when.timestamp(),
        "level": level,
    }
    for name, value in fields.items():
        if name not in {"Hostname", "EventTime"}:
            out["_" + name] = value
    return out


def _chunked(payload: bytes, msg_id: int, size: int = 1400) -> list[bytes]:
    if len(payload) <= size:
        return [payload]
    parts = [payload[i : i + size] for i in range(0, len(payload), size)]
    ident = msg_id.to_bytes(8, "big")
    return [MAGIC + ident + bytes([i, len(parts)]) + p for i, p in enumerate(parts)]


@pytest.fixture(scope="module")
def samples() -> list[tuple[dict[str, Any], Event]]:
    """(EVTX document, its event through the EVTX path) for every record of every file."""
    return [
        (orjson.loads(item.record.payload), parse_record(item.record))
        for path in sorted(shared_data("evtx-attack-samples").rglob("*.evtx"))
        for item in read_file(path, "lulea", "evtx")
        if item.error_type is None
    ]


@pytest.fixture(scope="module")
def rules(rule_cache: Path) -> RuleSet:
    loaded, _ = RuleSet.load([shared_data("sigma", "rules", "windows")], cache_dir=rule_cache)
    return loaded


def _key(e: Event) -> tuple[str, str, str, str]:
    f = e.fields
    return (f.get("Computer", ""), f.get("Channel", ""), f.get("EventRecordID", ""), f.get("EventID", ""))


def _hits(rules: RuleSet, events: list[Event]) -> list[tuple[tuple[str, ...], tuple[int, ...]]]:
    return sorted((_key(e), tuple(sorted(rules.matching_rules(e)))) for e in events)


async def _send_all(docs: list[dict[str, Any]]) -> tuple[list[Event], list[Event], list[Event]]:
    gelf_udp = GelfSourceConfig(id="nx-gelf-udp", host="127.0.0.1", port=0, tenant="lulea").build()
    gelf_tcp = GelfSourceConfig(
        id="nx-gelf-tcp", protocol="tcp", host="127.0.0.1", port=0, tenant="lulea", max_message_bytes=1 << 20
    ).build()
    json_tcp = SyslogSourceConfig(
        id="nx-json", protocol="tcp", host="127.0.0.1", port=0, tenant="lulea", max_message_bytes=1 << 20
    ).build()
    sinks = [Sink(), Sink(), Sink()]
    for src, sink in zip((gelf_udp, gelf_tcp, json_tcp), sinks, strict=True):
        await src.start(sink)
    fields = [nxlog_fields(d) for d in docs]
    gelf = [orjson.dumps(nxlog_gelf(f)) for f in fields]

    def udp(first: int, last: int) -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            for i in range(first, last):
                for datagram in _chunked(zlib.compress(gelf[i]), i + 1):
                    s.sendto(datagram, ("127.0.0.1", gelf_udp.port))  # type: ignore[union-attr]

    async def tcp(port: int, data: bytes) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(data)
        await writer.drain()
        writer.write_eof()
        await reader.read()
        writer.close()

    for start in range(0, len(gelf), 200):  # paced, so no datagram is dropped by the kernel
        last = min(start + 200, len(gelf))
        await asyncio.to_thread(udp, start, last)
        await sinks[0].wait(records=last, timeout=30)
    await tcp(gelf_tcp.port, b"".join(g + b"\x00" for g in gelf))  # type: ignore[union-attr]
    await tcp(json_tcp.port, b"".join(orjson.dumps(f) + b"\n" for f in fields))  # type: ignore[union-attr]
    for sink in sinks:
        await sink.wait(records=len(docs), timeout=30)
    for src in (gelf_udp, gelf_tcp, json_tcp):
        await src.stop()
    assert all(not s.errors for s in sinks), [e.message for s in sinks for e in s.errors][:3]
    return sinks[0].events(), sinks[1].events(), sinks[2].events()


def test_nxlog_windows_events_meet_the_rules_the_evtx_records_meet(
    samples: list[tuple[dict[str, Any], Event]], rules: RuleSet
) -> None:
    docs = [d for d, _ in samples]
    evtx_events = [e for _, e in samples]
    by_udp, by_tcp, by_json = asyncio.run(_send_all(docs))
    expected = _hits(rules, evtx_events)
    assert len(expected) > 8000 and sum(1 for _, hits in expected if hits) > 800  # measured: 8,255 and 929
    for name, events in (("GELF/UDP", by_udp), ("GELF/TCP", by_tcp), ("JSON/TCP", by_json)):
        assert all(e.ecs.get("event.code") == e.fields["EventID"] for e in events), name  # Windows events
        got = _hits(rules, events)
        assert got == expected, (
            f"{name}: {[(a, b) for a, b in zip(got, expected, strict=True) if a != b][:5]}"
        )


@run
async def test_one_nxlog_logon_failure_over_gelf_is_a_windows_event() -> None:
    fields = {
        "EventTime": "2026-11-26 21:43:38",
        "Hostname": "DC01.kommun.local",
        "EventID": 4625,
        "SourceName": "Microsoft-Windows-Security-Auditing",
        "Channel": "Security",
        "EventType": "AUDIT_FAILURE",
        "Keywords": -9218868437227405312,
        "TargetUserName": "anna",
        "IpAddress": "10.1.2.3",
        "LogonType": "3",
    }
    source = GelfSourceConfig(id="nx", host="127.0.0.1", port=0, tenant="lulea").build()
    sink = Sink()
    await source.start(sink)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.sendto(zlib.compress(orjson.dumps(nxlog_gelf(fields))), ("127.0.0.1", source.port))  # type: ignore[union-attr]
    await sink.wait(records=1)
    await source.stop()
    (ev,) = sink.events()
    assert ev.fields["EventID"] == "4625" and ev.fields["Channel"] == "Security"
    assert ev.fields["Provider_Name"] == "Microsoft-Windows-Security-Auditing"
    assert ev.fields["Computer"] == "DC01.kommun.local" and ev.fields["Keywords"] == "0x8010000000000000"
    assert ev.ecs["event.action"] == "logon-failed" and ev.ecs["event.outcome"] == "failure"
    assert ev.ecs["user.name"] == "anna" and ev.ecs["source.ip"] == "10.1.2.3"
    assert ev.ecs["host.name"] == "DC01.kommun.local"
    assert ev.ts == int(datetime(2026, 11, 26, 21, 43, 38, tzinfo=UTC).timestamp() * 1_000_000)
