"""Tamper evidence: every kind of manipulation is detected and located.

A sealed data directory is built once per test (journal with several segments and signed
checkpoints, a witness, a store), one fault is injected, and `verify` must name it.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import shutil
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from norrvakt.config import Settings, load_settings
from norrvakt.event import Event
from norrvakt.integrity import VerifyOptions, verify
from norrvakt.journal.checkpoint import FILE_NAME, Checkpoint
from norrvakt.journal.keys import KeyRing
from norrvakt.journal.log import FRAME_HEADER, Journal, JournalConfig
from norrvakt.journal.verify import VerifyReport
from norrvakt.journal.witness import build_witness
from norrvakt.node.runtime import bootstrap_accounts, open_runtime
from norrvakt.store.clickhouse import ClickHouseStore, StoreConfig

_db = itertools.count()
EVENTS = 3000


@dataclass
class Sealed:
    settings: Settings
    data: Path
    witness: Path

    @property
    def lulea(self) -> Path:
        return self.data / "journal" / "lulea"

    def segments(self) -> list[Path]:
        return sorted(self.lulea.glob("*.seg"))

    def store(self) -> ClickHouseStore:
        return StoreConfig(
            dsn=self.settings.store_dsn(), database=self.settings.store.database, retention_days=0
        ).build()

    def verify(self, pinned: list[str] | None = None, with_store: bool = True) -> VerifyReport:
        journal = Journal(JournalConfig(self.data / "journal"), read_only=True)
        store = self.store() if with_store else None
        try:
            return verify(
                journal,
                KeyRing(self.data / "keys"),
                [build_witness(f"dir:{self.witness}")],
                store,
                VerifyOptions(pinned_keys=pinned),
            )
        finally:
            if store is not None:
                store.close()


def _events(tenant: str, n: int, start: int = 0) -> list[Event]:
    return [
        Event(
            tenant=tenant,
            ts=1_795_729_970_000_000 + (start + i) * 1000,
            ingested=1_795_729_971_000_000,
            source="test",
            peer="127.0.0.1:1",
            ecs={"event.kind": "event", "user.name": f"user{i % 50}"},
            fields={"EventID": "4625", "n": str(start + i)},
            message=f"event number {start + i} " + "x" * 300,
            raw=f"<13>1 - host app - - - event {start + i}".encode(),
        )
        for i in range(n)
    ]


async def _fill(settings: Settings, batches: list[list[Event]]) -> None:
    rt = open_runtime(settings)
    bootstrap_accounts(rt)  # a journal with records and no accounts is refused at the next start
    await rt.start(with_sources=False)
    try:
        for batch in batches:
            await rt.pipeline.commit(batch)
            await asyncio.to_thread(rt.checkpointer.checkpoint_all)
        await rt.indexer.wait_caught_up(60)
    finally:
        await rt.close()


def _settings(tmp: Path, chdb_path: Path) -> Settings:
    return load_settings(
        overrides={
            "data_dir": str(tmp / "data"),
            "store.dsn": f"chdb://{chdb_path}",
            "store.database": f"fault_{os.getpid()}_{next(_db)}",
            "journal.segment_mb": 1,
            "integrity.witnesses": [f"dir:{tmp / 'witness'}"],
            "integrity.checkpoint_every_events": 100000,
            "integrity.checkpoint_every_seconds": 3600,
        }
    )


@pytest.fixture
def sealed(tmp_path: Path, chdb_path: Path) -> Iterator[Sealed]:
    settings = _settings(tmp_path, chdb_path)
    batches = [_events("lulea", 1000, start=i * 1000) for i in range(EVENTS // 1000)] + [_events("boden", 10)]
    asyncio.run(_fill(settings, batches))
    s = Sealed(settings, tmp_path / "data", tmp_path / "witness")
    assert len(s.segments()) >= 2
    yield s


def _frames(path: Path) -> list[tuple[int, bytes]]:
    """(offset, whole frame) of every record in a segment."""
    data = path.read_bytes()
    out, pos = [], 0
    while pos < len(data):
        length, _crc = FRAME_HEADER.unpack_from(data, pos)
        end = pos + FRAME_HEADER.size + length
        out.append((pos, data[pos:end]))
        pos = end
    return out


def _codes(report: VerifyReport) -> list[str]:
    return [f.code for f in report.findings]


def test_clean_journal_verifies(sealed: Sealed) -> None:
    report = sealed.verify()
    assert report.findings == []
    assert report.records == EVENTS + 10


def test_1_one_flipped_byte_is_located(sealed: Sealed) -> None:
    seg = sealed.segments()[0]
    offset, _frame = _frames(seg)[100]
    data = bytearray(seg.read_bytes())
    data[offset + FRAME_HEADER.size + 40] ^= 0x01
    seg.write_bytes(bytes(data))
    report = sealed.verify()
    first = report.findings[0]
    assert first.code == "record.crc" and first.seq == 101 and first.offset == offset
    assert first.segment == seg.name
    assert "checkpoint.root" in _codes(report)


def test_2_a_deleted_record_is_located(sealed: Sealed) -> None:
    seg = sealed.segments()[0]
    frames = _frames(seg)
    offset, frame = frames[500]
    data = seg.read_bytes()
    seg.write_bytes(data[:offset] + data[offset + len(frame) :])
    report = sealed.verify()
    first = report.findings[0]
    assert first.code == "record.seq" and first.seq == 501 and first.offset == offset
    assert "holds seq 502 where seq 501 belongs" in first.detail


def test_3_two_swapped_records_are_located(sealed: Sealed) -> None:
    seg = sealed.segments()[0]
    frames = _frames(seg)
    (o1, f1), (o2, f2) = frames[10], frames[11]
    data = seg.read_bytes()
    seg.write_bytes(data[:o1] + f2 + f1 + data[o2 + len(f2) :])
    report = sealed.verify()
    assert [(f.code, f.seq) for f in report.findings[:2]] == [("record.seq", 11), ("record.seq", 12)]


def test_4_a_truncated_tail_is_detected(sealed: Sealed) -> None:
    seg = sealed.segments()[-1]
    frames = _frames(seg)
    cut = frames[-10][0]
    with open(seg, "r+b") as fh:
        fh.truncate(cut)
    report = sealed.verify()
    truncated = [f for f in report.findings if f.code == "journal.truncated"]
    assert truncated and truncated[0].seq == EVENTS - 10 + 1
    assert "covers 3000 records but the journal ends at seq 2990" in truncated[0].detail


def test_5_a_deleted_segment_file_is_detected(sealed: Sealed) -> None:
    segs = sealed.segments()
    second_first = int(segs[1].stem)
    segs[0].unlink()
    report = sealed.verify()
    first = report.findings[0]
    assert first.code == "segment.missing" and first.seq == 1
    assert f"records 1..{second_first - 1} are missing" in first.detail


def test_6_an_inserted_record_is_located(sealed: Sealed) -> None:
    seg = sealed.segments()[0]
    offset, frame = _frames(seg)[200]
    data = seg.read_bytes()
    seg.write_bytes(data[:offset] + frame + data[offset:])  # a copy of record 201 before itself
    report = sealed.verify()
    first = report.findings[0]
    assert first.code == "record.seq" and first.seq == 202 and first.offset == offset + len(frame)


def test_7a_an_altered_checkpoint_is_detected(sealed: Sealed) -> None:
    path = sealed.lulea / FILE_NAME
    lines = path.read_bytes().splitlines()
    doc = json.loads(lines[1])
    doc["root"] = "00" * 32
    lines[1] = json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()
    path.write_bytes(b"\n".join(lines) + b"\n")
    codes = _codes(sealed.verify())
    assert "checkpoint.signature" in codes
    assert "checkpoint.chain" in codes  # the next line chained to the original


def test_7b_a_checkpoint_resigned_with_another_key_is_detected(sealed: Sealed, tmp_path: Path) -> None:
    original_pub = (sealed.data / "keys" / f"{KeyRing(sealed.data / 'keys').current_id()}.pub").read_text()
    attacker = KeyRing(tmp_path / "attacker")
    attacker_id = attacker.ensure()
    for suffix in (".pub", ".intro"):  # the attacker plants their key as if it were a first key
        shutil.copy(tmp_path / "attacker" / f"{attacker_id}{suffix}", sealed.data / "keys")
    path = sealed.lulea / FILE_NAME
    lines = path.read_bytes().splitlines()
    cp = Checkpoint.parse(lines[-1])
    forged = Checkpoint(**{**cp.__dict__, "key": attacker_id, "sig": ""}).signed(
        attacker.private(attacker_id)
    )
    lines[-1] = forged.line()
    path.write_bytes(b"\n".join(lines) + b"\n")
    report = sealed.verify(pinned=[original_pub])
    details = " ".join(f.detail for f in report.findings)
    assert "checkpoint.key" in _codes(report)
    assert attacker_id in details


def test_8_a_rolled_back_data_directory_is_detected_by_the_witness(sealed: Sealed, tmp_path: Path) -> None:
    backup = tmp_path / "old-copy"
    shutil.copytree(sealed.data, backup)
    asyncio.run(_fill(sealed.settings, [_events("lulea", 500, start=EVENTS)]))
    assert sealed.verify(with_store=False).findings == []
    shutil.rmtree(sealed.data)
    shutil.copytree(backup, sealed.data)  # the whole directory, checkpoints and keys included
    report = sealed.verify(with_store=False)
    rolled = [f for f in report.findings if f.code == "journal.truncated"]
    assert rolled, report.findings
    assert "witness" in rolled[0].detail and f"covers {EVENTS + 500} records" in rolled[0].detail


def test_9_an_altered_store_row_is_detected(sealed: Sealed) -> None:
    store = sealed.store()
    store.command(
        "ALTER TABLE events UPDATE user_name = 'mallory' WHERE tenant = 'lulea' AND seq = 77 "
        "SETTINGS mutations_sync = 1"
    )
    store.close()
    report = sealed.verify()
    (finding,) = report.findings
    assert finding.code == "store.altered" and finding.seq == 77
    assert "user.name: journal 'user26', store 'mallory'" in finding.detail


def test_10_deleted_store_rows_are_detected(sealed: Sealed) -> None:
    store = sealed.store()
    store.command("DELETE FROM events WHERE tenant = 'lulea' AND seq BETWEEN 1500 AND 1504")
    store.close()
    (finding,) = sealed.verify().findings
    assert finding.code == "store.missing" and finding.seq == 1500
    assert "5 journaled record(s)" in finding.detail


def test_11_a_missing_checkpoint_breaks_the_chain(sealed: Sealed) -> None:
    path = sealed.lulea / FILE_NAME
    lines = path.read_bytes().splitlines()
    assert len(lines) >= 3
    del lines[1]
    path.write_bytes(b"\n".join(lines) + b"\n")
    report = sealed.verify()
    chain = [f for f in report.findings if f.code == "checkpoint.chain"]
    assert chain and "line 2" in chain[0].detail
    assert any(f.code == "checkpoint.missing" for f in report.findings)  # the witness still has it


def test_a_clean_journal_of_100_000_events_verifies(tmp_path: Path, chdb_path: Path) -> None:
    settings = _settings(tmp_path, chdb_path)
    asyncio.run(_fill(settings, [_events("pitea", 10_000, start=i * 10_000) for i in range(10)]))
    s = Sealed(settings, tmp_path / "data", tmp_path / "witness")
    report = s.verify()
    assert report.findings == []
    assert report.records == 100_000


def test_frame_header_layout() -> None:
    assert FRAME_HEADER.size == struct.calcsize(">II") == 8


def test_since_starts_at_a_signed_checkpoint_and_checks_only_what_follows(sealed: Sealed) -> None:
    lines = (sealed.lulea / FILE_NAME).read_bytes().splitlines()
    anchor = Checkpoint.parse(lines[2])  # a checkpoint of 2000 records
    assert anchor.size == 2000
    seg = sealed.segments()[0]
    offset, _frame = _frames(seg)[10]  # damage a record the anchor already covers
    data = bytearray(seg.read_bytes())
    data[offset + FRAME_HEADER.size + 40] ^= 0x01
    seg.write_bytes(bytes(data))
    journal = Journal(JournalConfig(sealed.data / "journal"), read_only=True)
    trusted, _ = KeyRing(sealed.data / "keys").trusted_keys()
    from norrvakt.journal.verify import verify_journal

    recent = verify_journal(journal.root, trusted, tenants=["lulea"], since_us=anchor.time + 1)
    assert recent.findings == []
    assert recent.records == EVENTS - 2000  # only what came after the anchor was re-read
    full = verify_journal(journal.root, trusted, tenants=["lulea"])
    assert full.findings[0].code == "record.crc" and full.findings[0].seq == 11
