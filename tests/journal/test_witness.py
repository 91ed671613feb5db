"""Witnesses: a directory and an HTTP endpoint (`norrvakt witness serve`) receive every
checkpoint; rotation keeps trust; a witness that was down catches up; the HTTP witness refuses
a rewritten history."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from norrvakt.event import Event
from norrvakt.journal.checkpoint import FILE_NAME, Checkpoint
from norrvakt.journal.checkpointer import Checkpointer
from norrvakt.journal.keys import KeyRing
from norrvakt.journal.log import JournalConfig
from norrvakt.journal.verify import verify_journal
from norrvakt.journal.witness import DirectoryWitness, HttpWitness, Witness
from norrvakt.journal.witness_server import witness_server


@pytest.fixture
def keys(tmp_path: Path) -> KeyRing:
    ring = KeyRing(tmp_path / "keys")
    ring.ensure()
    return ring


@pytest.fixture
def http_witness(tmp_path: Path, keys: KeyRing) -> Iterator[str]:
    """A real `norrvakt witness serve` (in a thread) trusting the journal's keys."""
    server = witness_server(tmp_path / "remote", keys.public_keys(), "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/witness"
    server.shutdown()
    server.server_close()


def _event(i: int) -> Event:
    return Event(tenant="kiruna", ts=i, ingested=i, source="t", peer="p", message=f"m{i}", raw=b"r")


def test_checkpoints_reach_both_witnesses_and_rotation_keeps_trust(
    tmp_path: Path, keys: KeyRing, http_witness: str
) -> None:
    journal = JournalConfig(tmp_path / "journal").build()
    witnesses: list[Witness] = [DirectoryWitness(tmp_path / "share"), HttpWitness(http_witness)]
    cp = Checkpointer(journal, keys, witnesses, ["kiruna", "boden"])
    journal.append_and_commit([_event(i) for i in range(10)])
    cp.checkpoint_all()
    keys.rotate(now_us=123)
    journal.append_and_commit([_event(i) for i in range(10, 20)])
    cp.checkpoint_all()
    assert len(witnesses[0].read("kiruna")) == 2 and len(witnesses[1].read("kiruna")) == 2
    assert len(witnesses[1].read("boden")) == 2  # a silent tenant is checkpointed too
    trusted, problems = keys.trusted_keys()
    assert len(trusted) == 2 and problems == []
    report = verify_journal(journal.root, trusted, witnesses)
    assert report.findings == []
    assert next(t for t in report.tenants if t.tenant == "kiruna").witnessed == 4


def test_a_key_added_by_hand_is_not_trusted(tmp_path: Path) -> None:
    keys = KeyRing(tmp_path / "keys")
    keys.ensure()
    other = KeyRing(tmp_path / "other")
    other_id = other.ensure()
    rotation = other.rotate(now_us=1)  # a rotation signed by a key this journal never trusted
    for suffix in (".pub", ".intro"):
        (tmp_path / "keys" / f"{rotation.new}{suffix}").write_bytes(
            (tmp_path / "other" / f"{rotation.new}{suffix}").read_bytes()
        )
    trusted, problems = keys.trusted_keys()
    assert rotation.new not in trusted and other_id not in trusted
    assert any(rotation.new in p for p in problems)


def test_a_witness_that_was_down_catches_up_in_order(tmp_path: Path, keys: KeyRing) -> None:
    journal = JournalConfig(tmp_path / "journal").build()
    share = tmp_path / "share"
    share.write_text("not a folder: the share is not there")  # every write fails
    witness = DirectoryWitness(share)
    cp = Checkpointer(journal, keys, [witness], ["kiruna"])
    journal.append_and_commit([_event(0)])
    cp.checkpoint("kiruna")
    share.unlink()
    share.mkdir()
    cp.checkpoint("kiruna")  # published: it was the witness's first line...
    share.rename(tmp_path / "share-gone")  # ...then the witness is down again for two
    for i in range(1, 3):
        journal.append_and_commit([_event(i)])
        cp.checkpoint("kiruna")
    assert cp.stats.witness_failing
    (tmp_path / "share-gone").rename(share)
    journal.append_and_commit([_event(3)])
    cp.checkpoint("kiruna")  # back: every missing line arrives, in order
    local = (journal.root / "kiruna" / FILE_NAME).read_bytes().splitlines()
    assert [line.raw for line in witness.read("kiruna")] == local and len(local) == 5
    assert not cp.stats.witness_failing


def test_the_http_witness_refuses_a_rewritten_history(
    tmp_path: Path, keys: KeyRing, http_witness: str
) -> None:
    journal = JournalConfig(tmp_path / "journal").build()
    cp = Checkpointer(journal, keys, [HttpWitness(http_witness)], ["kiruna"])
    journal.append_and_commit([_event(i) for i in range(5)])
    first = cp.checkpoint("kiruna")
    # The same key (stolen from the data directory) signs a different history of the same size.
    forged = Checkpoint(
        tenant="kiruna", size=5, root="00" * 32, time=first.time + 1, prev=first.prev, key=first.key
    ).signed(keys.private(first.key))
    resp = httpx.post(http_witness, content=forged.line() + b"\n")
    assert resp.status_code == 409 and "does not extend" in resp.json()["error"]
    smaller = Checkpoint(
        tenant="kiruna", size=2, root="00" * 32, time=first.time + 1, prev=first.digest(), key=first.key
    ).signed(keys.private(first.key))
    assert httpx.post(http_witness, content=smaller.line()).status_code == 409
    other = KeyRing(tmp_path / "other")
    stranger = Checkpoint(
        tenant="kiruna", size=6, root="00" * 32, time=first.time + 1, prev=first.digest(), key=other.ensure()
    ).signed(other.private(other.ensure()))
    assert httpx.post(http_witness, content=stranger.line()).status_code == 403
    assert [line.raw for line in HttpWitness(http_witness).read("kiruna")] == [first.line()]
    listed = httpx.get(http_witness, params={"list": "1"}).json()
    assert listed == {"tenants": ["kiruna"]}
    assert json.loads(HttpWitness(http_witness).read("kiruna")[0].raw)["size"] == 5


def test_the_http_witness_answers_when_its_newest_line_is_unreadable(tmp_path: Path, keys: KeyRing) -> None:
    journal = JournalConfig(tmp_path / "journal").build()
    journal.append_and_commit([_event(i) for i in range(3)])
    first = Checkpointer(journal, keys, [], ["kiruna"]).checkpoint("kiruna")
    held = tmp_path / "remote" / "kiruna" / FILE_NAME
    held.parent.mkdir(parents=True)
    held.write_bytes(first.line() + b'\n{"tenant": "kiruna", "size": \n')  # a damaged tail
    server = witness_server(tmp_path / "remote", keys.public_keys(), "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        nxt = Checkpoint(
            tenant="kiruna", size=3, root=first.root, time=first.time + 1, prev=first.digest(), key=first.key
        ).signed(keys.private(first.key))
        url = f"http://127.0.0.1:{server.server_address[1]}/witness"
        resp = httpx.post(url, content=nxt.line() + b"\n", timeout=10)
        assert resp.status_code == 500 and "unreadable" in resp.json()["error"]
    finally:
        server.shutdown()
        server.server_close()
