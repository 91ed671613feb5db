"""A signing key from a file outside the data directory; where witness and key are, said plainly."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from norrvakt.event import Event
from norrvakt.journal.checkpointer import Checkpointer
from norrvakt.journal.keys import KeyRing, SigningKeyError
from norrvakt.journal.log import JournalConfig
from norrvakt.journal.placement import setup_warnings
from norrvakt.journal.verify import verify_journal
from norrvakt.journal.witness import DirectoryWitness, HttpWitness


def _key_file(path: Path) -> Path:
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    path.write_bytes(pem)
    return path


def _seal(tmp: Path, keys: KeyRing, n: int) -> None:
    journal = JournalConfig(tmp / "journal").build()
    events = [
        Event(tenant="kiruna", ts=i, ingested=i, source="t", peer="p", message=f"m{i}") for i in range(n)
    ]
    journal.append_and_commit(events)
    Checkpointer(journal, keys, [DirectoryWitness(tmp / "witness")], ["kiruna"]).checkpoint("kiruna")
    journal.close()


def _codes(tmp: Path, keys: KeyRing) -> list[str]:
    trusted, problems = keys.trusted_keys()
    assert problems == []
    return [
        f.code for f in verify_journal(tmp / "journal", trusted, [DirectoryWitness(tmp / "witness")]).findings
    ]


def test_a_key_file_signs_without_a_private_key_in_the_data_directory(tmp_path: Path) -> None:
    key_file = _key_file(tmp_path / "signing.key")
    keys = KeyRing(tmp_path / "data" / "keys", key_file)
    _seal(tmp_path, keys, 5)
    assert list((tmp_path / "data" / "keys").glob("*.key")) == []
    assert _codes(tmp_path, KeyRing(tmp_path / "data" / "keys")) == []
    with pytest.raises(SigningKeyError, match="signing_key_file"):
        keys.rotate(now_us=1)


def test_switching_to_a_key_file_introduces_it_with_the_old_key(tmp_path: Path) -> None:
    ring = tmp_path / "data" / "keys"
    old = KeyRing(ring)
    _seal(tmp_path, old, 3)
    old_id = old.current_id()
    new = KeyRing(ring, _key_file(tmp_path / "signing.key"))
    _seal(tmp_path, new, 3)
    assert len(new.trusted_keys()[0]) == 2 and new.current_id() not in {None, old_id}
    assert _codes(tmp_path, KeyRing(ring)) == []
    left = [
        w
        for w in setup_warnings(tmp_path / "data", [], new.directory, new.signing_key_file)
        if "still in" in w.detail
    ]
    assert left, "a private key left in keys/ next to a key file is reported"


def test_a_new_key_file_without_the_old_key_is_refused_and_introduce_fixes_it(tmp_path: Path) -> None:
    ring = tmp_path / "data" / "keys"
    first = _key_file(tmp_path / "first.key")
    _seal(tmp_path, KeyRing(ring, first), 3)
    second = _key_file(tmp_path / "second.key")
    with pytest.raises(SigningKeyError, match="keys introduce"):
        KeyRing(ring, second).ensure()
    from norrvakt.journal.keys import read_private

    KeyRing(ring).introduce(read_private(first), read_private(second), now_us=5)
    _seal(tmp_path, KeyRing(ring, second), 2)
    assert _codes(tmp_path, KeyRing(ring)) == []


def test_witness_and_key_within_reach_are_warnings(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    keys = KeyRing(data / "keys")
    codes = [
        w.code
        for w in setup_warnings(
            data, [DirectoryWitness(tmp_path / "data-witness")], keys.directory, keys.signing_key_file
        )
    ]
    assert codes == ["setup.witness_same_fs", "setup.key_in_data"]
    inside = setup_warnings(data, [DirectoryWitness(data / "witness")], keys.directory, keys.signing_key_file)
    assert "inside the same folder" in inside[0].detail
    local = setup_warnings(
        data, [HttpWitness("http://127.0.0.1:8470/")], keys.directory, keys.signing_key_file
    )
    assert local[0].code == "setup.witness_local"
    assert setup_warnings(data, [], keys.directory, keys.signing_key_file)[0].code == "setup.no_witness"
    remote = setup_warnings(
        data, [HttpWitness("https://witness.example.org/")], data / "keys", _key_file(tmp_path / "k")
    )
    assert remote == []


def test_a_garbage_public_key_file_is_a_finding_not_a_crash(tmp_path: Path) -> None:
    keys = KeyRing(tmp_path / "keys")
    _seal(tmp_path, keys, 2)
    (tmp_path / "keys" / "0123456789abcdef.pub").write_text("-----BEGIN PUBLIC KEY-----\nnot a key\n")
    trusted, problems = keys.trusted_keys()
    assert len(trusted) == 1 and any("0123456789abcdef" in p for p in problems)
