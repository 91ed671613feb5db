"""The Linux and Norrvakt log source mappings (pipelines/linux.yml, norrvakt.yml)."""

from __future__ import annotations

from pathlib import Path

import pytest

from norrvakt.detect.engine import RuleSet
from norrvakt.detect.logsource import PipelineError, load_pipeline, merge_pipelines, parse_pipeline
from norrvakt.event import RawRecord
from norrvakt.parsers import parse_record
from tests.conftest import shared_data

from .helpers import rule_yaml


def parsed(line: str) -> object:
    return parse_record(RawRecord("lulea", "t", 0, "10.0.0.1:514", line.encode(), "syslog"))


def test_linux_and_norrvakt_services_resolve_to_the_family() -> None:
    pipeline = load_pipeline()
    [sshd] = pipeline.resolve("linux", None, "sshd").variants
    assert dict(sshd.where)["process.name"] == ("sshd", "sshd-session", "sshd-auth")
    [locks] = pipeline.resolve("norrvakt", None, "locks").variants
    assert locks.where == (("norrvakt.family", ("locks",)),)
    records = pipeline.resolve("norrvakt", "record_access", None)
    assert [v.service for v in records.variants] == ["socialtjanst", "health"] and not records.note


def test_unmapped_linux_logsource_is_kept_to_linux_events() -> None:
    pipeline = load_pipeline()
    resolution = pipeline.resolve("linux", "file_change", None)
    assert "tested against linux events (norrvakt.family linux/syslog)" in resolution.note
    auditd = pipeline.resolve("linux", None, "auditd")  # norrvakt/parsers/auditd.py makes them
    assert not auditd.note and len(auditd.variants) > 1
    assert pipeline.resolve("linux", None, None).note == ""


def test_sigmahq_linux_rules_are_no_longer_tested_against_every_event() -> None:
    _, report = RuleSet.load([Path(shared_data("sigma", "rules", "linux"))], use_cache=False)
    assert len(report.loaded) > 200
    assert not [e for e in report.entries if "every event" in e.reason]


def test_linux_rule_meets_linux_events_only() -> None:
    rules, _ = RuleSet.from_yaml(
        rule_yaml(
            "sel: {process.command_line|contains: shadow}\ncondition: sel", "product: linux\nservice: sudo"
        )
    )
    sudo = parsed(
        "<85>1 2026-11-26T21:00:00Z db01 sudo 1 - - "
        "anna : TTY=pts/0 ; PWD=/ ; USER=root ; COMMAND=/bin/cat /etc/shadow"
    )
    assert rules.match(sudo)  # type: ignore[arg-type]
    windows = parse_record(
        RawRecord(
            "lulea",
            "t",
            0,
            "p",
            b'{"EventID": 4688, "Channel": "Security", "SourceName": "Microsoft-Windows-Security-Auditing",'
            b' "CommandLine": "type C:\\\\shadow"}',
            "json",
        )
    )
    assert windows.ecs.get("process.command_line") and not rules.match(windows)
    assert rules.stats.buckets == 2 and rules.stats.tested == 1  # the Windows bucket holds no rule


def test_mapping_files_cannot_map_one_product_twice() -> None:
    a = parse_pipeline("name: a\nproducts: {linux: {services: {x: {f: 1}}}}\n", "a.yml")
    b = parse_pipeline("name: b\nproducts: {linux: {services: {y: {f: 1}}}}\n", "b.yml")
    with pytest.raises(PipelineError, match=r"b\.yml: product 'linux' is already mapped"):
        merge_pipelines([a, b], "both")


def test_unknown_product_keys_are_named() -> None:
    with pytest.raises(PipelineError, match=r"products\.linux: unknown keys \['service'\]"):
        parse_pipeline("name: a\nproducts: {linux: {service: {}}}\n", "a.yml")
