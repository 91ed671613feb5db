"""Winlogbeat over Beats meets the SigmaHQ Windows rules exactly as the EVTX records do.

Every record of ../shared/data/evtx-attack-samples is read twice: as the file source reads an
EVTX file (the reference), and turned here into the documents Winlogbeat would send for them
(``winlog.*`` as Winlogbeat 8 names it: event_data values as strings, keywords and opcode as
text) which pylogbeat, the real client, sends to a Beats listener on a real journal. Every
record must meet the same rules both ways.
"""

from __future__ import annotations

import asyncio
import itertools
from pathlib import Path
from typing import Any

import orjson
import pylogbeat
import pytest

from norrvakt.detect.engine import RuleSet
from norrvakt.event import Event, RawRecord
from norrvakt.parsers import parse_record
from norrvakt.sources.files import read_file
from tests.conftest import shared_data
from tests.sources.test_beats import Journaled, _run, listening

evtx = pytest.importorskip("evtx")

PER_FILE = None  # every record of every sample file (8,255; 40 s here with rule loading)


# --- an EVTX record as Winlogbeat sends it -----------------------------------------------------

_KEYWORDS = {0x0010000000000000: "Audit Failure", 0x0020000000000000: "Audit Success",
             0x0080000000000000: "Classic"}  # fmt: skip
_LEVELS = {0: "information", 1: "critical", 2: "error", 3: "warning", 4: "information", 5: "verbose"}


def _text(value: Any) -> str:
    """A value as Winlogbeat renders event data: always a string."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return _text(value.get("#text"))
    if isinstance(value, list):
        return ", ".join(_text(v) for v in value)
    return str(value)


def _attr(node: Any, name: str) -> Any:
    return node.get("#attributes", {}).get(name) if isinstance(node, dict) else None


def winlogbeat_doc(record: dict[str, Any]) -> dict[str, Any]:
    """The Winlogbeat 8 document of one EVTX record (the evtx package's JSON)."""
    event = record["Event"]
    system = event["System"]
    eid = system["EventID"]
    eid_text = _text(eid)
    winlog: dict[str, Any] = {
        "channel": system.get("Channel"),
        "event_id": eid_text,
        "provider_name": _attr(system.get("Provider"), "Name"),
        "computer_name": system.get("Computer"),
        "record_id": system.get("EventRecordID"),
        "api": "wineventlog",
    }
    guid = _attr(system.get("Provider"), "Guid")
    if guid:
        winlog["provider_guid"] = guid
    execution = system.get("Execution")
    if _attr(execution, "ProcessID") is not None:
        winlog["process"] = {
            "pid": _attr(execution, "ProcessID"),
            "thread": {"id": _attr(execution, "ThreadID")},
        }
    if isinstance(eid, dict) and _attr(eid, "Qualifiers") is not None:
        winlog["event_data_qualifiers"] = _attr(eid, "Qualifiers")
    keywords = system.get("Keywords")
    if isinstance(keywords, str) and keywords.startswith("0x"):
        bits = int(keywords, 16)
        names = [name for bit, name in _KEYWORDS.items() if bits & bit]
        if names:
            winlog["keywords"] = names
    if system.get("Opcode") == 0:
        winlog["opcode"] = "Info"
    if _attr(system.get("Security"), "UserID"):
        winlog["user"] = {"identifier": _attr(system.get("Security"), "UserID")}
    data = event.get("EventData")
    if isinstance(data, dict):
        named = {k: _text(v) for k, v in data.items() if k not in ("Data", "#attributes", "Binary")}
        unnamed = data.get("Data")
        if isinstance(unnamed, dict):
            unnamed = unnamed.get("#text")
        if unnamed is not None:  # Winlogbeat names unnamed <Data> param1, param2, ...
            values = unnamed if isinstance(unnamed, list) else [unnamed]
            named.update({f"param{i + 1}": _text(v) for i, v in enumerate(values)})
        if data.get("Binary"):
            named["Binary"] = _text(data["Binary"])
        if named:
            winlog["event_data"] = named
    user_data = event.get("UserData")
    if isinstance(user_data, dict):
        winlog["user_data"] = user_data
    stamp = _attr(system.get("TimeCreated"), "SystemTime") or "2026-12-02T00:00:00Z"
    return {
        "@timestamp": stamp,
        "agent": {"type": "winlogbeat", "version": "8.15.3"},
        "ecs": {"version": "8.0.0"},
        "host": {"name": str(system.get("Computer", "")).split(".")[0]},
        "event": {"code": eid_text, "kind": "event", "provider": winlog["provider_name"]},
        "log": {"level": _LEVELS.get(system.get("Level", 4), "information")},
        "winlog": {k: v for k, v in winlog.items() if v is not None},
    }


# --- the two paths -------------------------------------------------------------------------------


def _samples() -> list[tuple[str, int, dict[str, Any], Event]]:
    """(file, EventRecordID, EVTX JSON, the file source's event) for the records of every
    sample file that the file source reads without error."""
    root = shared_data("evtx-attack-samples")
    out = []
    for path in sorted(root.rglob("*.evtx")):
        try:
            raw = list(itertools.islice(evtx.PyEvtxParser(str(path)).records_json(), PER_FILE))
        except (OSError, RuntimeError):
            continue  # damaged on purpose; the file source reports them
        items = list(itertools.islice(read_file(path, "lulea", "evtx"), PER_FILE))
        for rec, item in zip(raw, items, strict=False):  # one reader under both: the same order
            if item.error_type is None:
                event = parse_record(item.record)
                record_id = int(event.fields["EventRecordID"])
                out.append((str(path.relative_to(root)), record_id, orjson.loads(rec["data"]), event))
    return out


def _over_beats(tmp_path: Path, docs: list[dict[str, Any]]) -> list[Event]:
    async def body(j: Journaled) -> None:
        async with listening(j.pipeline, max_message_bytes=1024 * 1024) as source:

            def send() -> None:
                with pylogbeat.PyLogBeatClient("127.0.0.1", source.port, timeout=30) as client:
                    for start in range(0, len(docs), 500):
                        client.send(docs[start : start + 500])

            await asyncio.to_thread(send)

    return asyncio.run(_run(tmp_path, body)).events


def test_winlogbeat_over_beats_meets_the_rules_evtx_meets(tmp_path: Path, rule_cache: Path) -> None:
    rules_dir = shared_data("sigma", "rules", "windows")
    samples = _samples()
    assert len(samples) > 8000
    events = _over_beats(tmp_path, [winlogbeat_doc(s[2]) for s in samples])
    assert len(events) == len(samples)
    assert all(e.kind == "event" for e in events)
    rules, _ = RuleSet.load([rules_dir], cache_dir=rule_cache)
    differ = []
    fired = 0
    for (name, record_id, _, reference), event in zip(samples, events, strict=True):
        assert event.fields["EventRecordID"] == str(record_id)
        want = sorted(rules.rules[i].id for i in rules.matching_rules(reference))
        got = sorted(rules.rules[i].id for i in rules.matching_rules(event))
        fired += bool(want)
        if want != got:
            differ.append((name, record_id, set(want) - set(got), set(got) - set(want)))
    print(f"{len(samples)} records, {fired} meet rules, the same over Beats")
    assert differ == [], f"{len(differ)} records meet other rules over Beats, e.g. {differ[:5]}"
    assert fired > 900  # 929 here: the comparison is about records that do meet rules


def test_unnamed_event_data_from_winlogbeat_is_data_as_from_evtx() -> None:
    doc = {
        "winlog": {
            "channel": "Application",
            "event_id": "18456",
            "provider_name": "MSSQL$SQLEXPRESS",
            "event_data": {
                "param1": "sa",
                "param2": " Reason: Password did not match.",
                "param3": " [CLIENT: 203.0.113.7]",
            },
        }
    }
    record = RawRecord("lulea", "beats", 1, "10.0.0.5:5044", orjson.dumps(doc), "json")
    fields = parse_record(record).fields
    assert fields["Data"] == "sa\n Reason: Password did not match.\n [CLIENT: 203.0.113.7]"
    assert (fields["Data_1"], fields["Data_3"]) == ("sa", " [CLIENT: 203.0.113.7]")
    assert fields["param2"] == " Reason: Password did not match."  # kept as sent
