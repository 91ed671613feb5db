"""What each listener takes from its [[sources]] entry: its protocol's own port when the entry
names none, the node's self-signed pair unless the entry names its own, no TLS for audisp."""

from __future__ import annotations

from pathlib import Path

import pytest

from norrvakt.config import load_settings
from norrvakt.sources.base import SOURCE_TYPES
from norrvakt.sources.builtin import BUILTIN

assert BUILTIN  # importing it registers the built-in source types

OWN_PORTS = {"syslog": 5514, "relp": 5514, "beats": 5044, "gelf": 12201, "forward": 24224}
OWN_PORTS |= {"journal-remote": 19532, "audisp": 6060}


def _config(tmp_path: Path, kind: str, extra: str = "") -> object:
    path = tmp_path / "n.toml"
    protocol = "udp" if kind == "gelf" else "tcp"
    path.write_text(
        f'data_dir = "{tmp_path}"\n[[sources]]\nid = "s"\ntype = "{kind}"\nprotocol = "{protocol}"\n'
        f'tenant = "lulea"\n{extra}'
    )
    settings = load_settings(path)
    return SOURCE_TYPES[kind](settings.sources[0], settings)


@pytest.mark.parametrize("kind", sorted(OWN_PORTS))
def test_an_entry_without_a_port_listens_on_the_protocols_own(tmp_path: Path, kind: str) -> None:
    config = _config(tmp_path, kind)
    assert config.port == OWN_PORTS[kind]  # type: ignore[attr-defined]
    assert config.tenant == "lulea" and config.id == "s"  # type: ignore[attr-defined]


@pytest.mark.parametrize("kind", ["beats", "forward", "journal-remote"])
def test_an_explicit_port_and_certificate_are_kept(tmp_path: Path, kind: str) -> None:
    cert, key = tmp_path / "own.crt", tmp_path / "own.key"
    cert.write_text("not read here")
    key.write_text("not read here")
    config = _config(tmp_path, kind, f'port = 7001\ntls_cert = "{cert}"\ntls_key = "{key}"\n')
    assert config.port == 7001  # type: ignore[attr-defined]
    assert (config.tls_cert, config.tls_key) == (cert, key)  # type: ignore[attr-defined]
    default = _config(tmp_path, kind)
    assert default.tls_key == tmp_path / "tls" / "server.key"  # type: ignore[attr-defined]


def test_audisp_has_no_tls_settings(tmp_path: Path) -> None:
    config = _config(tmp_path, "audisp")
    assert not hasattr(config, "tls_cert") and config.spool_dir == tmp_path / "spool" / "audisp"  # type: ignore[attr-defined]
