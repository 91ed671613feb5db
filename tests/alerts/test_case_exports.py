"""Observables from alerts and their evidence events, and the case's indicators as a STIX 2.1
bundle (checked with stix2's strict parser and the STIX pattern grammar) and a MISP event
(checked against the core format's fields, MISP's own type/category table, and PyMISP); both
read back by Norrvakt's threat-intel reader, as another SOC would import them."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from typing import Any

import pymisp
import stix2
from stix2patterns.validator import run_validator

from norrvakt.alerts.misp_export import case_event
from norrvakt.alerts.observables import Observable, extract
from norrvakt.alerts.stix_export import case_bundle
from norrvakt.detect.intel_formats import read_json

T0 = 1_767_225_600_000_000
C2 = "185.220.101.7"
SHA256 = "9f2b6c1d3e4a5b6c7d8e9f00112233445566778899aabbccddeeff0011223344"
CASE = {"id": 42, "tenant": "lulea", "severity": "high", "status": "investigating"}


def _alert(alert_id: int, rule: str, entities: dict[str, str]) -> dict[str, Any]:
    return {
        "id": alert_id,
        "tenant": "lulea",
        "rule_title": rule,
        "entities": json.dumps(entities),
        "first_seen": T0,
    }


def _event(seq: int, ecs: dict[str, str], ts: int = T0) -> dict[str, Any]:
    return {"tenant": "lulea", "seq": seq, "ts": ts, "ecs": ecs, "fields": {}, "message": ""}


def _observables() -> tuple[list[Observable], list[str]]:
    alerts = [
        _alert(1, "Malware download", {"host.name": "LULEA-PC17", "user.name": "Anna.Berg"}),
        _alert(2, "C2 beacon", {"destination.ip": C2}),
    ]
    events = {
        1: [
            _event(
                10, {"host.name": "lulea-pc17", "user.name": "anna.berg", "file.hash.sha256": SHA256.upper()}
            ),
            _event(
                11,
                {
                    "url.full": "http://evil-cdn.example.net/p/x.exe",
                    "url.domain": "evil-cdn.example.net",
                    "source.ip": "10.20.4.17",
                    "file.hash.md5": "not-a-hash",
                },
                T0 + 5_000_000,
            ),
        ],
        2: [
            _event(12, {"destination.ip": C2, "destination.domain": "Example.COM.", "source.ip": "-"}),
            {"tenant": "lulea", "seq": 13, "missing": True},
        ],
    }
    return extract(alerts, events)


def test_observables_from_entities_and_evidence_events() -> None:
    found, problems = _observables()
    by = {(o.kind, o.value): o for o in found}
    assert ("host", "LULEA-PC17") in by and ("user", "Anna.Berg") in by  # first spelling; one per name
    assert by[("host", "LULEA-PC17")].events == 1 and by[("user", "Anna.Berg")].alert_ids == {1}
    assert by[("sha256", SHA256)].fields == {"file.hash.sha256"}  # lowered
    assert by[("domain", "example.com")].fields == {"destination.domain"}
    assert by[("domain", "evil-cdn.example.net")].rules == {"Malware download"}
    ip = by[("ip", C2)]
    assert ip.events == 1 and ip.alert_ids == {2} and not ip.internal
    assert by[("ip", "10.20.4.17")].internal
    assert ip.search_query() == f'source.ip:"{C2}" OR destination.ip:"{C2}" OR host.ip:"{C2}"'
    assert ("md5", "not-a-hash") not in by and ("ip", "-") not in by
    assert problems == [
        "alert 1 event lulea#11: file.hash.md5: 'not-a-hash' is not an MD5 hash (32 hex digits)",
        "alert 2: event lulea#13 is in neither store nor journal",
    ]


def _shared() -> list[Observable]:
    found, _ = _observables()
    return [o for o in found if not o.internal]


def test_stix_bundle_parses_strictly_and_its_patterns_are_valid() -> None:
    bundle, left_out = case_bundle(CASE, _shared(), producer="Norrbottens e-nämnd SOC", tlp="amber")
    text = bundle.serialize(pretty=False)
    parsed = stix2.parse(text, allow_custom=False, version="2.1")  # raises on anything not STIX 2.1
    objects = {o.id: o for o in parsed.objects}
    kinds = [o.type for o in parsed.objects]
    assert kinds.count("identity") == 1 and kinds.count("marking-definition") == 1
    (identity,) = [o for o in parsed.objects if o.type == "identity"]
    assert identity.name == "Norrbottens e-nämnd SOC"
    indicators = [o for o in parsed.objects if o.type == "indicator"]
    for ind in indicators:
        assert run_validator(ind.pattern, stix_version="2.1") == [], ind.pattern
        assert ind.created_by_ref == identity.id and ind.object_marking_refs == [stix2.TLP_AMBER.id]
    patterns = {i.pattern for i in indicators}
    assert f"[ipv4-addr:value = '{C2}']" in patterns
    assert f"[file:hashes.'SHA-256' = '{SHA256}']" in patterns
    assert "[url:value = 'http://evil-cdn.example.net/p/x.exe']" in patterns
    assert "[user-account:account_login = 'Anna.Berg']" in patterns
    seen = [o for o in parsed.objects if o.type == "observed-data"]
    assert len(seen) == len(indicators) and all(objects[r].type for s in seen for r in s.object_refs)
    rels = [o for o in parsed.objects if o.type == "relationship"]
    assert {(r.source_ref, r.relationship_type) for r in rels} == {(i.id, "based-on") for i in indicators}
    assert left_out == [
        {"kind": "host", "value": "LULEA-PC17", "why": "STIX 2.1 has no observable for a host"}
    ]
    again, _ = case_bundle(CASE, _shared(), producer="Norrbottens e-nämnd SOC", tlp="amber")
    assert {o.id for o in again.objects if o.type == "indicator"} == {i.id for i in indicators}  # stable ids
    red, _ = case_bundle(CASE, _shared(), producer="x", tlp="red")
    assert stix2.TLP_RED.id in red.serialize()


def test_stix_bundle_reads_back_as_threat_intel() -> None:
    bundle, _ = case_bundle(CASE, _shared(), producer="SOC", tlp="green")
    got = read_json(bundle.serialize().encode(), "cert-se", "case-42.json")
    # Norrvakt's own intel lists match addresses, domains, URLs and hashes; a user is named
    (problem,) = got.problems
    assert "user-account:account_login is not an indicator Norrvakt matches" in problem
    values = {(i.kind, i.value) for i in got.indicators}
    assert {
        ("ip", C2),
        ("hash", SHA256),
        ("domain", "example.com"),
        ("url", "http://evil-cdn.example.net/p/x.exe"),
    } <= values


# The core format's MUST fields (draft-dulaunoy-misp-core-format, sections 2.2 and 2.3).
EVENT_FIELDS = {
    "uuid",
    "info",
    "date",
    "threat_level_id",
    "analysis",
    "distribution",
    "published",
    "timestamp",
}
ATTRIBUTE_FIELDS = {"uuid", "type", "category", "value", "to_ids", "distribution", "timestamp"}


def _describe_types() -> dict[str, Any]:
    path = os.path.join(os.path.dirname(pymisp.__file__), "data", "describeTypes.json")
    with open(path, encoding="utf-8") as f:
        return dict(json.load(f)["result"])


def test_misp_event_has_the_core_format_fields_and_valid_types() -> None:
    found, _ = _observables()
    doc = case_event(
        CASE, found, producer="SOC", tlp="amber", distribution=1, now=datetime(2026, 1, 2, tzinfo=UTC)
    )
    event = doc["Event"]
    assert set(event) >= EVENT_FIELDS
    assert event["date"] == "2026-01-01" and event["threat_level_id"] == "1" and event["analysis"] == "1"
    assert (
        event["distribution"] == "1"
        and event["published"] is False
        and event["Tag"] == [{"name": "tlp:amber"}]
    )
    assert event["Orgc"]["name"] == "SOC" and "LULEA-PC17" not in event["info"]
    types = _describe_types()
    for attr in event["Attribute"]:
        assert set(attr) >= ATTRIBUTE_FIELDS, attr
        assert attr["type"] in types["category_type_mappings"][attr["category"]], attr
        assert isinstance(attr["to_ids"], bool) and attr["timestamp"].isdigit()
    got = {(a["type"], a["value"]): a for a in event["Attribute"]}
    assert got[("ip-dst", C2)]["to_ids"] and got[("sha256", SHA256)]["category"] == "Payload delivery"
    assert got[("ip-src", "10.20.4.17")]["to_ids"] is False  # the municipality's own address
    assert got[("hostname", "evil-cdn.example.net")] and got[("domain", "example.com")]
    assert got[("target-user", "Anna.Berg")]["category"] == "Targeting data"
    assert got[("target-machine", "LULEA-PC17")]["to_ids"] is False
    loaded = pymisp.MISPEvent()
    loaded.load(json.dumps(doc))  # PyMISP reads it as a MISP event
    assert len(loaded.attributes) == len(event["Attribute"]) and loaded.info == event["info"]


def test_misp_event_reads_back_as_threat_intel() -> None:
    doc = case_event(CASE, _shared(), producer="SOC", tlp="amber", distribution=0)
    got = read_json(json.dumps(doc).encode(), "misp", "case-42.misp.json")
    assert got.problems == [] and got.unused_why == {"to_ids false": 2}  # target-user, target-machine
    assert {("ip", C2), ("hash", SHA256)} <= {(i.kind, i.value) for i in got.indicators}
