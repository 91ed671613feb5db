"""Alert settings: the example of docs/soc.md loads; mistakes are reported together, by key."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from norrvakt.config import ConfigError, load_settings

DOCS = Path(__file__).resolve().parents[2] / "docs" / "soc.md"


def test_the_documented_example_is_valid(tmp_path: Path) -> None:
    example = re.search(r"```toml\n(.*?)```", DOCS.read_text(), re.S)
    assert example is not None
    cfg = tmp_path / "soc.toml"
    cfg.write_text(example.group(1))
    s = load_settings(cfg)
    assert [c.name for c in s.alerts.channels] == ["soc-oncall", "lulea-itsec", "upstream-siem"]
    assert s.alerts.routes[1].tenants == ["lulea"] and s.alerts.escalation_channels == ["soc-oncall"]


def test_channel_and_route_mistakes_are_named(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text(
        """
[state]
url = "mysql://x"
[alerts]
escalate_min_level = "urgent"
escalation_channels = ["pager"]
[[alerts.channels]]
name = "mail"
type = "email"
url = "https://smtp.example"
[[alerts.channels]]
name = "mail"
type = "pigeon"
[[alerts.routes]]
tenants = ["stockholm"]
min_level = "high"
channels = ["nowhere"]
"""
    )
    with pytest.raises(ConfigError) as info:
        load_settings(cfg)
    problems = dict(info.value.problems)
    assert "sqlite:///path or postgresql" in problems["state.url"]
    assert "'urgent'" in problems["alerts.escalate_min_level"]
    assert "'pager' — no channel" in problems["alerts.escalation_channels"]
    assert "smtp://" in problems["alerts.channels[0].url"]
    assert "at least one recipient" in problems["alerts.channels[0].recipients"]
    assert "duplicate" in problems["alerts.channels[1].name"]
    assert "'pigeon'" in problems["alerts.channels[1].type"]
    assert "'stockholm'" in problems["alerts.routes[0].tenants"]
    assert "'nowhere'" in problems["alerts.routes[0].channels"]


def test_state_url_defaults_to_sqlite_in_the_data_dir(tmp_path: Path) -> None:
    s = load_settings(overrides={"data_dir": str(tmp_path)})
    assert s.state_url() == f"sqlite:///{tmp_path.resolve() / 'state.db'}"
    pg = load_settings(overrides={"data_dir": str(tmp_path), "state.url": "postgresql://n@db/norrvakt"})
    assert pg.state_url() == "postgresql://n@db/norrvakt"
