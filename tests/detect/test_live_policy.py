"""The live-set policy: which loaded rules raise detections for which tenant, and why not."""

from __future__ import annotations

import json
import random
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from norrvakt.cli.main import main
from norrvakt.config import Settings
from norrvakt.demo.generator import TenantWorld
from norrvakt.demo.sigma_stories import hands_on_keyboard
from norrvakt.detect.content.store import ContentStore
from norrvakt.detect.detection import DetectionEngine, builtin_rules_dir
from norrvakt.detect.live import live_summary, load_engine
from norrvakt.detect.live_policy import LivePolicyConfig, LivePolicyError, pack_of
from norrvakt.event import Event, RawRecord
from norrvakt.parsers import parse_record

SIGMA_RULES = Path(__file__).resolve().parents[3] / "shared" / "data" / "sigma" / "rules"


def _rule(n: int, status: str, level: str, word: str) -> str:
    return (
        f"title: Rule {n}\nid: 00000000-0000-4000-8000-{n:012d}\nstatus: {status}\nlevel: {level}\n"
        f"logsource:\n    category: norrvakt_test\ndetection:\n    k:\n        - {word}\n    condition: k\n"
    )


# (folder under the content root, status, level) -> live under the default policy?
RULES = {
    1: ("rules/windows", "stable", "high", True),
    2: ("rules/windows", "test", "medium", True),
    3: ("rules/windows", "experimental", "high", False),  # status
    4: ("rules/windows", "test", "low", False),  # level
    5: ("rules-threat-hunting/windows", "test", "high", False),  # pack
    6: ("rules-emerging-threats/2024", "test", "critical", True),
    7: ("mine", "test", "informational", False),  # local, but level
    8: ("deprecated/windows", "deprecated", "high", False),  # pack and status
}


def _content(root: Path) -> list[Path]:
    for n, (folder, status, level, _) in RULES.items():
        path = root / folder / f"r{n}.yml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(_rule(n, status, level, f"word{n}"))
    return [root]


def _event(tenant: str, word: str, seq: int = 1) -> Event:
    return Event(tenant=tenant, ts=1, ingested=1, source="t", peer="t", fields={}, message=word, seq=seq)


def _engine(
    tmp_path: Path, overrides: list[dict[str, object]] | None = None, **policy: Any
) -> DetectionEngine:
    engine, report = DetectionEngine.load(_content(tmp_path / "content"), use_cache=False)
    assert not report.not_loaded
    config = LivePolicyConfig(builtin_dir=str(builtin_rules_dir()), **policy)
    rules = engine.rules
    live = config.build().live_set(rules.rules, rules.correlations, overrides or [], ["boden", "lulea"])
    engine.use_live_set(live)
    return engine


def _fired(engine: DetectionEngine, tenant: str) -> set[int]:
    events = [_event(tenant, f"word{n}", n) for n in RULES]
    return {int(d.rule_id[-3:]) for d in engine.process(events) if d.rule_id.startswith("00000000")}


def test_default_policy_takes_status_level_and_pack(tmp_path: Path) -> None:
    engine = _engine(tmp_path)
    assert _fired(engine, "boden") == {n for n, r in RULES.items() if r[3]}
    live = engine.live
    assert live is not None
    assert "status experimental" in live.why_not("boden", "00000000-0000-4000-8000-000000000003")
    assert "level low is below" in live.why_not("boden", "00000000-0000-4000-8000-000000000004")
    assert "pack threat-hunting" in live.why_not("boden", "00000000-0000-4000-8000-000000000005")
    assert live.why_not("boden", "00000000-0000-4000-8000-000000000001") == ""


def test_builtin_rules_are_always_live(tmp_path: Path) -> None:
    engine = _engine(tmp_path, statuses=(), packs=())
    live = engine.live
    assert live is not None
    assert _fired(engine, "boden") == set()
    builtin = [n for n, p in enumerate(live.rule_packs) if p == "builtin"]
    assert builtin and all(live.rule_on("boden", n) for n in builtin)


def test_opened_policy_takes_every_rule(tmp_path: Path) -> None:
    everything = ("core", "emerging-threats", "threat-hunting", "local", "deprecated")
    statuses = ("stable", "test", "experimental", "deprecated")
    engine = _engine(tmp_path, statuses=statuses, min_level="informational", packs=everything)
    assert _fired(engine, "lulea") == set(RULES)


def test_rule_settings_override_the_policy_per_tenant(tmp_path: Path) -> None:
    low = "00000000-0000-4000-8000-000000000004"
    high = "00000000-0000-4000-8000-000000000001"
    overrides = [
        {"rule_id": low, "tenant": "lulea", "enabled": True},  # on for Luleå only
        {"rule_id": high, "tenant": "*", "enabled": False},  # off everywhere ...
        {"rule_id": high, "tenant": "boden", "enabled": True},  # ... but Boden's own setting wins
    ]
    engine = _engine(tmp_path, overrides)
    default = {n for n, r in RULES.items() if r[3]}
    assert _fired(engine, "lulea") == (default | {4}) - {1}
    assert _fired(engine, "boden") == default
    assert _fired(engine, "kiruna") == default - {1}  # no setting of its own: the * one
    live = engine.live
    assert live is not None
    assert live.why_not("kiruna", high) == "switched off by a rule setting for *"
    assert live.why_not("lulea", low) == ""


def test_rules_live_for_no_tenant_are_not_matched(tmp_path: Path) -> None:
    engine = _engine(tmp_path)
    live = engine.live
    assert live is not None
    not_live = {n for n, info in enumerate(engine.rules.rules) if not live.rule_on("boden", n)}
    assert not_live and not (not_live & live.active)
    assert engine.rules.active == live.active
    # Nothing of them is matched: word3 meets no rule at all.
    assert engine.rules.matching_rules(_event("boden", "word3")) == []


def test_pack_of_sigma_folders() -> None:
    assert pack_of("/x/sigma_all_rules/rules/windows/a.yml") == "core"
    assert pack_of("/x/sigma_all_rules/rules-emerging-threats/2023/a.yml") == "emerging-threats"
    assert pack_of("/srv/own/a.yml") == "local"
    assert pack_of(str(builtin_rules_dir() / "windows" / "a.yml"), str(builtin_rules_dir())) == "builtin"


def test_bad_policy_settings_name_the_setting() -> None:
    with pytest.raises(LivePolicyError, match="live_status"):
        LivePolicyConfig(statuses=("stabel",)).build()
    with pytest.raises(LivePolicyError, match="live_min_level"):
        LivePolicyConfig(min_level="severe").build()
    with pytest.raises(LivePolicyError, match="live_packs"):
        LivePolicyConfig(packs=("core", "hunting")).build()


def test_summary_says_how_to_get_sigma_rules_when_none_are_installed(tmp_path: Path) -> None:
    settings = Settings(data_dir=str(tmp_path / "data"))
    engine, _ = load_engine(settings)
    assert engine.live is not None
    text = live_summary(engine.live)
    assert "none installed" in text and "norrvakt rules update" in text and "norrvakt rules import" in text


@pytest.mark.skipif(not SIGMA_RULES.is_dir(), reason=f"SigmaHQ rules not present at {SIGMA_RULES}")
def test_demo_story_raises_sigmahq_detections_with_the_default_policy(tmp_path: Path) -> None:
    settings = Settings(data_dir=str(tmp_path / "data"))
    settings = replace(
        settings, detection=replace(settings.detection, rule_dirs=[str(SIGMA_RULES / "windows")])
    )
    engine, _ = load_engine(settings)
    assert engine.live is not None
    assert engine.live.count(("core",)) > 1000, live_summary(engine.live)
    assert "SigmaHQ rules" in live_summary(engine.live)
    world = TenantWorld("boden", 1, random.Random(5))
    events = []
    for seq, (ts, message) in enumerate(hands_on_keyboard(world, 1.8e9), start=1):
        record = RawRecord(
            tenant="boden",
            source_id="hec",
            received_at=int(ts * 1e6),
            peer="127.0.1.2:5000",
            payload=json.dumps(message.body).encode(),
            format="hec",
            timezone="Europe/Stockholm",
        )
        event = parse_record(record)
        event.seq = seq
        events.append(event)
    titles = {d.title for d in engine.process(events) if "rules/windows" in d.rule.path}
    assert {
        "Suspicious Execution of Powershell with Base64",
        "Security Privileges Enumeration Via Whoami.EXE",
        "PsExec Service Installation",
        "PsExec Service Execution",
    } <= titles, titles
    assert "Local Accounts Discovery" not in titles  # level low: loaded, not live


def test_rules_live_command_lists_why_not(tmp_path: Path) -> None:
    _content(tmp_path / "content")
    config = tmp_path / "norrvakt.toml"
    config.write_text(f'[detection]\nrule_dirs = ["{tmp_path / "content"}"]\n')
    args = ["--config", str(config), "--data-dir", str(tmp_path / "data"), "rules", "live"]
    result = CliRunner().invoke(main, [*args, "--not-live", "--format", "json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    by_id = {r["id"][-1]: r for r in rows if r["id"].startswith("00000000")}
    assert set(by_id) == {str(n) for n, r in RULES.items() if not r[3]}
    assert by_id["5"]["pack"] == "threat-hunting" and "live_packs" in by_id["5"]["why_not"]


def test_installed_sigmahq_content_loads_and_runs_by_the_policy(tmp_path: Path) -> None:
    settings = Settings(data_dir=str(tmp_path / "data"))
    store = ContentStore(settings.data_path)
    staged = store.staging()
    _content(staged / "sigma_all_rules")
    store.install(staged, "r2026-11-04", {"source": "test"})
    store.use("r2026-11-04")
    engine, _ = load_engine(settings)
    assert engine.live is not None
    assert _fired(engine, "boden") == {n for n, r in RULES.items() if r[3]}
    assert "of them SigmaHQ rules" in live_summary(engine.live)
