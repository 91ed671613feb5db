"""The settings of an m365 connector: checked at load, all problems at once."""

from __future__ import annotations

from pathlib import Path

import pytest

from norrvakt.config import ConfigError, load_settings
from norrvakt.sources.builtin import build_sources


def _write(tmp_path: Path, body: str) -> Path:
    cfg = tmp_path / "n.toml"
    cfg.write_text(f'data_dir = "{tmp_path}"\n[tenants]\nlulea = "Luleå"\n[[sources]]\n{body}')
    return cfg


def test_a_connector_needs_no_port_and_builds(tmp_path: Path) -> None:
    cfg = _write(
        tmp_path,
        'id = "m365-lulea"\ntype = "m365"\ntenant = "lulea"\nm365.directory_id = "d"\nm365.client_id = "c"\n'
        'm365.feeds = ["Audit.Exchange", "graph.alerts_v2"]\n',
    )
    settings = load_settings(cfg)  # the default syslog-tcp listener keeps 5514: no clash
    (built,) = [s for s in build_sources(settings) if s.id == "m365-lulea"]
    assert built.describe() == "m365 pull d → lulea (2 feeds)"


def test_every_problem_is_named(tmp_path: Path) -> None:
    cfg = _write(
        tmp_path,
        'id = "m365-x"\ntype = "m365"\ntenant = "kiruna"\nm365.feeds = ["Audit.Teams"]\n'
        'm365.window_minutes = 2000\nm365.graph_url = "http://graph.example"\n',
    )
    with pytest.raises(ConfigError) as err:
        load_settings(cfg)
    keys = {key for key, _ in err.value.problems}
    assert {
        "sources[0].tenant",
        "sources[0].m365.directory_id",
        "sources[0].m365.client_id",
        "sources[0].m365.feeds",
        "sources[0].m365.window_minutes",
        "sources[0].m365.graph_url",
    } <= keys
