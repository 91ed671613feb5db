"""The session cookie key lives in the state database: the same on every web node, taken over
from an older data directory's key file so an upgrade logs nobody out."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest
import sqlalchemy as sa

from norrvakt.web.session import SessionCodec, new_session, session_key
from tests.state.conftest import engine  # noqa: F401 - the two-backend fixture


def test_two_nodes_get_one_key_and_accept_each_others_cookies(engine: sa.Engine, tmp_path: Path) -> None:  # noqa: F811
    a = session_key(engine, tmp_path / "a" / "keys" / "session.key")
    b = session_key(engine, tmp_path / "b" / "keys" / "session.key")
    assert a == b and len(a) == 32
    assert not (tmp_path / "a" / "keys" / "session.key").exists()  # no file is made any more
    cookie = SessionCodec(a).encode(new_session("sid-1"))
    decoded = SessionCodec(b).decode(cookie)
    assert decoded is not None and decoded.session_id == "sid-1"


def test_an_upgraded_data_directory_keeps_its_key(engine: sa.Engine, tmp_path: Path) -> None:  # noqa: F811
    legacy = tmp_path / "keys" / "session.key"
    legacy.parent.mkdir()
    legacy.write_bytes(os.urandom(32))
    old_cookie = SessionCodec(legacy.read_bytes()).encode(new_session("sid-before-upgrade"))
    key = session_key(engine, legacy)
    assert key == legacy.read_bytes()
    assert SessionCodec(key).decode(old_cookie) is not None  # still logged in after the upgrade
    assert session_key(engine, tmp_path / "other" / "session.key") == key  # a second node gets it


def test_a_second_nodes_own_old_key_file_is_named_and_not_used(
    engine: sa.Engine,  # noqa: F811
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    shared = session_key(engine, tmp_path / "a" / "session.key")
    other = tmp_path / "b" / "session.key"
    other.parent.mkdir()
    other.write_bytes(os.urandom(32))
    with caplog.at_level(logging.WARNING, logger="norrvakt.web.session"):
        assert session_key(engine, other) == shared
    assert str(other) in caplog.text and "no longer used" in caplog.text
