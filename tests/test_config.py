from __future__ import annotations

from pathlib import Path

import pytest

from norrvakt.config import MUNICIPALITIES, ConfigError, load_settings, settings_table


def test_defaults_are_valid_and_have_the_14_municipalities() -> None:
    s = load_settings()
    assert list(s.tenants) == list(MUNICIPALITIES)
    assert len(s.tenants) == 14
    assert {src.id for src in s.sources} == {"syslog-udp", "syslog-tcp", "syslog-tls", "relp"}


def test_all_errors_are_reported_together(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text(
        """
timezone = "Mars/Olympus"
colour = "blue"
[server]
port = 70000
[store]
retention_days = "long"
[[sources]]
id = "a"
type = "carrier-pigeon"
port = 0
tenant = "stockholm"
networks = { "10.0.0.0/33" = "lulea" }
"""
    )
    with pytest.raises(ConfigError) as info:
        load_settings(cfg)
    keys = [k for k, _ in info.value.problems]
    text = str(info.value)
    assert "colour" in keys
    assert "server.port" in keys
    assert "store.retention_days" in keys
    # Semantic checks run only when the types are right; the type errors come first.
    assert "'long'" in text and "expected an integer" in text


def test_semantic_errors_name_key_value_and_reason(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text(
        """
timezone = "Mars/Olympus"
[server]
port = 70000
[[sources]]
id = "a"
type = "carrier-pigeon"
port = 5514
tenant = "stockholm"
networks = { "10.0.0.0/33" = "lulea" }
[[sources]]
id = "a"
type = "syslog"
protocol = "tcp"
port = 5514
"""
    )
    with pytest.raises(ConfigError) as info:
        load_settings(cfg)
    problems = dict(info.value.problems)
    assert "Mars/Olympus" in problems["timezone"]
    assert "70000" in problems["server.port"]
    assert "carrier-pigeon" in problems["sources[0].type"]
    assert "stockholm" in problems["sources[0].tenant"]
    assert "10.0.0.0/33" in problems["sources[0].networks.10.0.0.0/33"]
    assert "duplicate" in problems["sources[1].id"]
    assert "already uses" in problems["sources[1].port"]


def test_every_setting_is_documented() -> None:
    rows = settings_table()
    assert rows
    undocumented = [key for key, _default, doc in rows if not doc]
    assert undocumented == []
    docs = (Path(__file__).resolve().parents[1] / "docs" / "configuration.md").read_text()
    missing = [key for key, _d, _doc in rows if f"`{key}`" not in docs]
    assert missing == [], (
        "settings missing from docs/configuration.md (run `norrvakt config defaults --format markdown`)"
    )


def test_improper_use_thresholds_are_checked(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text("[detection]\nbaseline_days = 0\nafter_hours_accesses = 0\n")
    with pytest.raises(ConfigError) as info:
        load_settings(cfg)
    keys = [k for k, _ in info.value.problems]
    assert "detection.baseline_days" in keys and "detection.after_hours_accesses" in keys
