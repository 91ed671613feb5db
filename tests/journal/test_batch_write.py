"""The batch write path (issue #12) against the per-event one it replaced, on varied inputs.

The journal writes a commit's frames with one join per segment (split by a search over their
cumulative sizes, not a loop per frame) and updates the Merkle tree level by level, a list
comprehension per level. The references here are the earlier per-event code, kept as small functions:
frames appended one at a time (a segment takes frames while it is smaller than
``segment_bytes``) and tree nodes merged one leaf at a time. Files must come out byte for byte
the same for random batch sizes, segment sizes (down to one frame per segment), tenants and
restarts; test_golden.py pins the same against files written by the old code itself.
"""

from __future__ import annotations

import hashlib
import random
from pathlib import Path

import pytest

from norrvakt.event import Event, canonical_bytes
from norrvakt.journal.log import Journal, JournalConfig, frame, segment_name
from norrvakt.journal.merkle import TreeStore, leaf_hash, root_of
from tests.journal.workload import TENANTS, windows_like_events


def _reference_segments(payloads: list[bytes], segment_bytes: int) -> dict[str, bytes]:
    """Segment files as the per-event code wrote them: frame by frame, a new segment (named
    after its first seq) whenever the current one has reached ``segment_bytes``."""
    segments: dict[str, bytearray] = {}
    current: bytearray | None = None
    for seq, payload in enumerate(payloads, 1):
        if current is None or len(current) >= segment_bytes:
            current = segments[segment_name(seq)] = bytearray()
        current += frame(payload)
    return {name: bytes(data) for name, data in segments.items()}


def _reference_append(store: TreeStore, leaves: list[bytes]) -> None:
    """TreeStore.append as it was: one leaf at a time, merging equal-sized neighbours."""
    pending = store._pending
    nodes = store.frontier.nodes
    for leaf in leaves:
        n = store.frontier.size
        pending.setdefault(0, []).append(leaf)
        nodes.append(leaf)
        level = 0
        while n & 1:
            right = nodes.pop()
            nodes[-1] = hashlib.sha256(b"\x01" + nodes[-1] + right).digest()
            level += 1
            pending.setdefault(level, []).append(nodes[-1])
            n >>= 1
        store.frontier.size += 1
    store.size = store.frontier.size


def _files(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir()) if p.is_file()}


@pytest.mark.parametrize("seed", range(12))
def test_tree_levels_match_the_leaf_by_leaf_merge(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    batch = TreeStore(tmp_path / "batch")
    one_by_one = TreeStore(tmp_path / "reference")
    leaves: list[bytes] = []
    for step in range(rng.randrange(5, 25)):
        new = [leaf_hash(f"{seed}/{step}/{i}".encode()) for i in range(rng.choice((0, 1, 2, 3, 7, 64, 200)))]
        leaves += new
        batch.append(new)
        _reference_append(one_by_one, new)
        assert batch._pending == one_by_one._pending  # the same new nodes, level by level, in order
        assert (batch.size, batch.frontier.nodes) == (one_by_one.size, one_by_one.frontier.nodes)
        assert batch.root() == root_of(leaves)
        if rng.random() < 0.6:
            batch.flush()
            one_by_one.flush()
        if rng.random() < 0.2:  # reopened from its files, as after a restart (closing flushes)
            batch.close()
            one_by_one.flush()
            batch = TreeStore(tmp_path / "batch")
    batch.close()
    one_by_one.close()
    assert _files(tmp_path / "batch") == _files(tmp_path / "reference")


def _commit_in_batches(
    directory: Path, events: list[Event], segment_bytes: int, rng: random.Random
) -> tuple[Journal, dict[str, list[bytes]]]:
    """Append and commit ``events`` in random batches with random restarts; returns the journal
    and, per tenant, the canonical bytes each record must have (taken right after its seq)."""
    config = JournalConfig(directory, segment_bytes=segment_bytes, fsync=False)
    journal = config.build()
    expected: dict[str, list[bytes]] = {}
    pos = 0
    while pos < len(events):
        for _ in range(rng.choice((1, 1, 2, 3))):  # several appends can share one commit
            chunk = events[pos : pos + rng.choice((1, 2, 5, 40, 500))]
            pos += len(chunk)
            journal.append(chunk)
            for e in chunk:
                expected.setdefault(e.tenant, []).append(canonical_bytes(e))
        journal.commit(journal.take_pending())
        if rng.random() < 0.15:
            journal.close()
            journal = config.build()
    return journal, expected


@pytest.mark.parametrize(
    ("seed", "segment_bytes"), [(1, 1), (2, 700), (3, 4096), (4, 9_000), (5, 64 * 1024), (6, 1 << 30)]
)
def test_segments_and_tree_match_the_per_event_writer(tmp_path: Path, seed: int, segment_bytes: int) -> None:
    rng = random.Random(seed)
    events = windows_like_events(600 if segment_bytes >= 9_000 else 150, seed=seed)  # a roll fsyncs a folder
    journal, expected = _commit_in_batches(tmp_path, events, segment_bytes, rng)
    journal.close()
    for tenant in TENANTS:
        payloads = expected[tenant]
        directory = tmp_path / tenant
        segments = {p.name: p.read_bytes() for p in sorted(directory.glob("*.seg"))}
        assert segments == _reference_segments(payloads, segment_bytes)
        reference = TreeStore(tmp_path / "reference" / tenant)
        _reference_append(reference, [leaf_hash(p) for p in payloads])
        reference.close()
        assert _files(directory / "tree") == _files(tmp_path / "reference" / tenant)
        again = Journal(JournalConfig(tmp_path, segment_bytes=segment_bytes), read_only=True)
        assert [p for _seq, p in again.read(tenant)] == payloads
        assert again.head(tenant) == (len(payloads), root_of([leaf_hash(p) for p in payloads]))


def test_the_same_event_twice_gets_two_seqs_in_its_two_records(tmp_path: Path) -> None:
    event = windows_like_events(1)[0]
    journal = JournalConfig(tmp_path, fsync=False).build()
    journal.append([event, event])
    journal.commit(journal.take_pending())
    seg = (tmp_path / event.tenant / segment_name(1)).read_bytes()
    event.seq = 1
    first = frame(canonical_bytes(event))
    event.seq = 2
    assert seg == first + frame(canonical_bytes(event))


def test_an_event_that_cannot_be_serialized_appends_nothing(tmp_path: Path) -> None:
    """A lone surrogate has no UTF-8 form: the whole append is refused and no seq is used up
    (per event, earlier records of the batch were queued and the seqs after it shifted)."""
    journal = JournalConfig(tmp_path, fsync=False).build()
    journal.append_and_commit(windows_like_events(5, seed=1))
    before = {t: journal.committed_seq(t) for t in journal.tenants()}
    bad = windows_like_events(9, seed=2)
    bad[0].tenant, bad[4].tenant = "lulea", "boden"  # two tenants, the bad one second
    bad[4].message = "lone \udc80 surrogate"
    with pytest.raises(TypeError):  # orjson.JSONEncodeError
        journal.append(bad)
    assert journal.take_pending() == {}
    assert journal.rewind() == 0
    good = windows_like_events(30, seed=3)
    journal.append_and_commit(good)
    for tenant in journal.tenants():
        records = list(journal.read(tenant))
        assert [s for s, _ in records] == list(range(1, journal.committed_seq(tenant) + 1))
        mine = [e for e in good if e.tenant == tenant]
        assert [e.seq for e in mine] == list(
            range(before.get(tenant, 0) + 1, journal.committed_seq(tenant) + 1)
        )
