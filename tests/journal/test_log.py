from __future__ import annotations

from pathlib import Path

from norrvakt.event import Event, event_from_canonical
from norrvakt.journal.log import FRAME_HEADER, JournalConfig


def _events(tenant: str, n: int, start: int = 0) -> list[Event]:
    return [
        Event(
            tenant=tenant,
            ts=1_000_000 + i,
            ingested=2_000_000 + i,
            source="t",
            peer="p",
            message=f"m{start + i}",
            raw=f"raw {start + i}".encode(),
        )
        for i in range(n)
    ]


def test_seqs_are_gapless_per_tenant_and_readable(tmp_path: Path) -> None:
    j = JournalConfig(tmp_path, segment_bytes=4096).build()
    j.append_and_commit(_events("lulea", 300) + _events("boden", 5))
    assert j.committed_seq("lulea") == 300
    assert j.committed_seq("boden") == 5
    assert len(j.segments("lulea")) > 1  # rolled over
    got = list(j.read("lulea"))
    assert [s for s, _ in got] == list(range(1, 301))
    assert [event_from_canonical(p).message for _, p in got[:3]] == ["m0", "m1", "m2"]
    assert [event_from_canonical(p).seq for _, p in got] == list(range(1, 301))
    assert [s for s, _ in j.read("lulea", 150, 152)] == [150, 151, 152]


def test_reopen_continues_sequence(tmp_path: Path) -> None:
    j = JournalConfig(tmp_path, segment_bytes=4096).build()
    j.append_and_commit(_events("lulea", 50))
    j.close()
    j2 = JournalConfig(tmp_path, segment_bytes=4096).build()
    assert j2.committed_seq("lulea") == 50
    j2.append_and_commit(_events("lulea", 10, start=50))
    assert [s for s, _ in j2.read("lulea")] == list(range(1, 61))
    assert event_from_canonical(next(iter(j2.read("lulea", 60)))[1]).message == "m59"


def test_torn_tail_is_cut_on_open(tmp_path: Path) -> None:
    j = JournalConfig(tmp_path).build()
    j.append_and_commit(_events("lulea", 10))
    j.close()
    seg = sorted((tmp_path / "lulea").glob("*.seg"))[-1]
    good = seg.stat().st_size
    with open(seg, "ab") as fh:  # a crash in the middle of writing frame 11
        fh.write(FRAME_HEADER.pack(500, 0) + b"partial")
    j2 = JournalConfig(tmp_path).build()
    assert j2.committed_seq("lulea") == 10
    assert seg.stat().st_size == good
    j2.append_and_commit(_events("lulea", 1, start=10))
    assert [s for s, _ in j2.read("lulea")] == list(range(1, 12))


def test_zero_filled_tail_is_cut(tmp_path: Path) -> None:
    j = JournalConfig(tmp_path).build()
    j.append_and_commit(_events("lulea", 3))
    j.close()
    seg = sorted((tmp_path / "lulea").glob("*.seg"))[-1]
    with open(seg, "ab") as fh:
        fh.write(b"\x00" * 4096)
    assert JournalConfig(tmp_path).build().committed_seq("lulea") == 3
