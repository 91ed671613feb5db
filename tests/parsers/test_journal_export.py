"""The Journal Export Format stream reader: the same entries however the bytes are cut into
reads, never an exception, and every entry it gives parses to an event."""

from __future__ import annotations

import struct

from hypothesis import given, settings
from hypothesis import strategies as st

from norrvakt.event import RawRecord
from norrvakt.parsers import parse_record
from norrvakt.parsers.journal_export import MAX_FIELD_BYTES, Item, JournalExportReader


def _binary(name: bytes, value: bytes) -> bytes:
    return name + b"\n" + struct.pack("<Q", len(value)) + value + b"\n"


_FIELD = st.one_of(
    st.builds(
        lambda n, v: n + b"=" + v + b"\n",
        st.sampled_from([b"MESSAGE", b"_PID", b"__CURSOR"]),
        st.binary(max_size=30).map(lambda b: b.replace(b"\n", b" ")),
    ),
    st.builds(_binary, st.sampled_from([b"MESSAGE", b"BLOB"]), st.binary(max_size=40)),
)
_ENTRY = st.lists(_FIELD, min_size=1, max_size=5).map(lambda fs: b"".join(fs) + b"\n")


def _read(stream: bytes, cuts: list[int], limit: int = 4096) -> list[Item]:
    reader = JournalExportReader(limit)
    items: list[Item] = []
    last = 0
    for cut in sorted(set(cuts)):
        items += reader.feed(stream[last:cut])
        last = cut
    items += reader.feed(stream[last:])
    return items + reader.finish()


@settings(max_examples=300, deadline=None)
@given(entries=st.lists(_ENTRY, max_size=6), cuts=st.lists(st.integers(0, 600), max_size=12))
def test_cut_anywhere_same_entries(entries: list[bytes], cuts: list[int]) -> None:
    stream = b"".join(entries)
    whole = _read(stream, [])
    assert [i.data for i in whole] == [e[:-2] for e in entries]  # each without its separator
    assert _read(stream, cuts) == whole
    assert len(whole) == len(entries) and all(i.error is None for i in whole)
    for item in whole:
        event = parse_record(RawRecord("lulea", "j", 1, "p", item.data, "journal"))
        assert event.kind == "event", event.ecs.get("error.message")


@settings(max_examples=300, deadline=None)
@given(stream=st.binary(max_size=300), cuts=st.lists(st.integers(0, 300), max_size=8))
def test_random_bytes_never_raise(stream: bytes, cuts: list[int]) -> None:
    assert _read(stream, cuts, limit=64) == _read(stream, [], limit=64)


def test_a_huge_binary_value_is_not_held() -> None:
    reader = JournalExportReader(1024)
    head = b"MESSAGE=x\nBLOB\n" + struct.pack("<Q", 10 * 1024 * 1024)
    assert reader.feed(head) == []
    for _ in range(10 * 1024):
        assert reader.feed(b"y" * 1024) == []
    (item,) = reader.feed(b"\n\n")
    assert item.error == "journal.entry_too_large" and len(item.data) <= 1024
    assert MAX_FIELD_BYTES > 10 * 1024 * 1024
