"""Witnesses: a directory and an HTTP endpoint receive every checkpoint; rotation keeps trust."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar
from urllib.parse import parse_qs, urlparse

import pytest

from norrvakt.event import Event
from norrvakt.journal.checkpointer import Checkpointer
from norrvakt.journal.keys import KeyRing
from norrvakt.journal.log import JournalConfig
from norrvakt.journal.verify import verify_journal
from norrvakt.journal.witness import DirectoryWitness, HttpWitness


class _WitnessServer(BaseHTTPRequestHandler):
    lines: ClassVar[dict[str, list[bytes]]] = {}

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        tenant = __import__("json").loads(body)["tenant"]
        self.lines.setdefault(tenant, []).append(body)
        self.send_response(201)
        self.end_headers()

    def do_GET(self) -> None:
        tenant = parse_qs(urlparse(self.path).query)["tenant"][0]
        data = b"".join(line + b"\n" for line in self.lines.get(tenant, []))
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def http_witness() -> Iterator[str]:
    _WitnessServer.lines = {}
    server = ThreadingHTTPServer(("127.0.0.1", 0), _WitnessServer)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/witness"
    server.shutdown()


def _event(i: int) -> Event:
    return Event(tenant="kiruna", ts=i, ingested=i, source="t", peer="p", message=f"m{i}", raw=b"r")


def test_checkpoints_reach_both_witnesses_and_rotation_keeps_trust(tmp_path: Path, http_witness: str) -> None:
    journal = JournalConfig(tmp_path / "journal").build()
    keys = KeyRing(tmp_path / "keys")
    witnesses = [DirectoryWitness(tmp_path / "share"), HttpWitness(http_witness)]
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
