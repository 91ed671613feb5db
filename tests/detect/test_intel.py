"""Threat intel lists (CSV, STIX 2.1, MISP JSON): loading with per-list reasons, matching, reload."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import stix2  # type: ignore[import-untyped]

from norrvakt.detect.detection import DetectionEngine
from norrvakt.detect.engine import RuleSet
from norrvakt.detect.intel import IntelStore
from norrvakt.event import Event, RawRecord
from norrvakt.parsers import parse_record

MISP = Path(__file__).parent / "samples" / "misp_event.json"
SHA256 = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"


def event(ecs: dict[str, str] | None = None, **fields: str) -> Event:
    return Event(
        tenant="lulea", ts=0, ingested=0, source="t", peer="t", ecs=dict(ecs or {}), fields=fields, seq=7
    )


def store(tmp_path: Path, **files: str) -> IntelStore:
    for name, text in files.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    intel = IntelStore(tmp_path)
    intel.load()
    return intel


def hits(intel: IntelStore, e: Event) -> set[tuple[str, str]]:
    return {(h.indicator.value, h.field) for h in intel.match(e)}


CSV = """type,value,description,source,level
ip,185.220.101.45,Tor exit used for spraying,CERT-SE,critical
cidr,45.155.205.0/24,bulletproof hosting,abuse.ch,
domain,evil.example,phishing kit,,
url,http://files.example/payload.ps1,,,
sha256,9F86D081884C7D659A2FEAA0C55AD015A3BF4F1B2B0B822CD15D6C15B0F00A08,,,
# a comment line
ip,999.1.1.1,,,
hash,abc,,,
"""


def test_csv_list_loads_and_names_bad_rows(tmp_path: Path) -> None:
    intel = store(tmp_path, **{"cert-se.csv": CSV})
    [status] = intel.statuses
    assert status.loaded and status.kind == "intel" and status.id == "intel:cert-se"
    assert status.title == "5 indicators"
    assert "line 8: '999.1.1.1' is not an IP address" in status.reason
    assert "line 9: 'abc' is not an MD5" in status.reason


def test_ip_matching_ecs_fields_mapped_and_cidr(tmp_path: Path) -> None:
    intel = store(tmp_path, **{"l.csv": CSV})
    assert hits(intel, event({"source.ip": "185.220.101.45"})) == {("185.220.101.45", "source.ip")}
    assert hits(intel, event(IpAddress="::ffff:45.155.205.7")) == {("45.155.205.0/24", "fields.IpAddress")}
    assert (
        hits(
            intel, event({"destination.ip": "45.155.206.1"}, EventID="4624", UtcTime="2026-11-26 21:00:01.5")
        )
        == set()
    )


def test_domain_suffix_url_and_hashes(tmp_path: Path) -> None:
    intel = store(tmp_path, **{"l.csv": CSV})
    assert hits(intel, event(QueryName="cdn.Evil.Example.")) == {("evil.example", "fields.QueryName")}
    assert hits(intel, event({"url.domain": "notevil.example"})) == set()
    assert hits(intel, event({"url.full": "HTTP://FILES.example:80/payload.ps1"})) == {
        ("http://files.example/payload.ps1", "url.full")
    }
    sysmon = event(
        Hashes="SHA1=AA,MD5=BB,SHA256=9F86D081884C7D659A2FEAA0C55AD015A3BF4F1B2B0B822CD15D6C15B0F00A08"
    )
    assert {v for v, _ in hits(intel, sysmon)} == {
        "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
    }


def test_stix_bundle_from_stix2_objects(tmp_path: Path) -> None:
    indicators = [
        stix2.Indicator(
            pattern="[ipv4-addr:value = '91.240.118.172']",
            pattern_type="stix",
            indicator_types=["malicious-activity"],
            name="C2 server",
        ),
        stix2.Indicator(
            pattern="[domain-name:value = 'kommun-login.example' OR url:value = 'https://x.example/a']",
            pattern_type="stix",
        ),
        stix2.Indicator(
            pattern=f"[file:hashes.'SHA-256' = '{SHA256}']",
            pattern_type="stix",
            kill_chain_phases=[stix2.KillChainPhase(kill_chain_name="mitre-attack", phase_name="execution")],
        ),
        stix2.Indicator(pattern="[ipv4-addr:value = '10.0.0.0/8']", pattern_type="stix", revoked=True),
        stix2.Indicator(pattern="[file:name = 'a.exe' AND file:size = 12]", pattern_type="stix"),
    ]
    bundle = stix2.Bundle(
        objects=[*indicators, stix2.Identity(name="CERT-SE", identity_class="organization")]
    )
    intel = store(tmp_path, **{"cert-se-stix.json": bundle.serialize()})
    [status] = intel.statuses
    assert status.loaded and status.title == "4 indicators"
    assert "combines conditions (AND)" in status.reason and "1 revoked" in status.reason
    found = intel.match(event({"destination.ip": "91.240.118.172"}))
    assert [h.indicator.description for h in found] == ["C2 server"]
    assert found[0].indicator.tags == ("intel.malicious-activity",)
    assert hits(intel, event({"url.full": "https://x.example/a"})) == {("https://x.example/a", "url.full")}
    digest = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
    assert intel.match(event({"file.hash.sha256": digest}))[0].indicator.tags == ("attack.execution",)


def test_misp_event(tmp_path: Path) -> None:
    shutil.copy(MISP, tmp_path / "misp-phishing.json")
    intel = IntelStore(tmp_path)
    [status] = intel.load()
    assert status.loaded and status.title == "8 indicators"
    assert "'not-an-ip' is not an IP address" in status.reason
    assert "1 attribute type email-src" in status.reason and "1 to_ids false" in status.reason
    [hit] = intel.match(event({"source.ip": "194.26.192.64"}))
    assert hit.indicator.level == "medium" and "tlp:amber" in hit.indicator.tags
    assert hits(intel, event({"url.full": "https://portal.evil.example/kommun/login"}))
    assert hits(intel, event(md5="x", Hashes="MD5=44d88612fea8a8f36de82e1278abb02f"))
    assert not intel.match(event({"source.ip": "8.8.8.8"}))


@pytest.mark.parametrize(
    ("name", "text", "reason"),
    [
        ("notes.txt", "hello", "not an intel list"),
        ("broken.json", "{", "not JSON"),
        ("other.json", '{"a": 1}', "neither a STIX 2.1 bundle nor a MISP"),
        ("empty.csv", "type,value\n", "no indicators"),
    ],
)
def test_lists_that_cannot_be_used_say_why(tmp_path: Path, name: str, text: str, reason: str) -> None:
    [status] = store(tmp_path, **{name: text}).statuses
    assert not status.loaded and reason in status.reason


def test_reload_when_a_file_changes(tmp_path: Path) -> None:
    intel = store(tmp_path, **{"l.csv": "ip,1.2.3.4\n"})
    assert intel.reload_if_changed() is None
    path = tmp_path / "l.csv"
    path.write_text("ip,5.6.7.8\n", encoding="utf-8")
    os.utime(path, ns=(1, 1))
    assert intel.reload_if_changed() is not None
    assert hits(intel, event({"source.ip": "5.6.7.8"})) and not hits(intel, event({"source.ip": "1.2.3.4"}))


def test_a_list_broken_on_reload_keeps_its_previous_indicators(tmp_path: Path) -> None:
    intel = store(tmp_path, **{"l.json": MISP.read_text(encoding="utf-8")})
    (tmp_path / "l.json").write_text('{"Event": {', encoding="utf-8")  # half written
    [status] = intel.reload_if_changed() or []
    assert status.loaded and "not JSON" in status.reason and "previous version" in status.reason
    assert hits(intel, event({"source.ip": "45.155.205.233"}))


def test_missing_directory_is_reported(tmp_path: Path) -> None:
    [status] = IntelStore(tmp_path / "nosuch").load()
    assert not status.loaded and status.reason == "no such directory"


def test_engine_reports_intel_matches(tmp_path: Path) -> None:
    (tmp_path / "cert-se.csv").write_text(CSV, encoding="utf-8")
    engine, report = DetectionEngine.load([], builtin=False, use_cache=False, intel_dir=tmp_path)
    assert "1 intel list loaded" in report.summary()
    line = (
        "<36>1 2026-11-26T21:00:00Z web01 sshd 42 - - "
        "Failed password for anna from 185.220.101.45 port 5000 ssh2"
    )
    ev = parse_record(RawRecord("lulea", "t", 0, "10.0.0.1:514", line.encode(), "syslog"))
    ev.seq = 41
    [d] = engine.process([ev])
    assert (d.kind, d.rule_id, d.level, d.refs) == ("intel", "intel:cert-se", "critical", (("lulea", 41),))
    assert ("indicator", "185.220.101.45") in d.group and "Tor exit" in d.detail
    assert engine.tick(10**16) == []  # reload check: nothing changed


def test_intel_in_rule_set_only_engine_is_optional() -> None:
    rules, _ = RuleSet.from_yaml()
    assert DetectionEngine(rules).process([event({"source.ip": "185.220.101.45"})]) == []
