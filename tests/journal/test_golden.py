"""The journal writes exactly the bytes it wrote before the batch framing of issue #12.

``golden_journal.json`` holds the SHA-256 and size of every file (segments and Merkle tree
levels), each tenant's tree head and the seqs handed out, as written by the journal at commit
267ee2b — the per-event framing, before any change for issue #12 — for the workload below.
The journal's Merkle hashes cover these bytes: if they changed, old journals would stop
verifying against new ones and checkpoints would not extend. Never regenerate the file to
make this test pass; a difference is a change of the on-disk format.
"""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Any

import orjson

from norrvakt.event import CANONICAL_VERSION, Event, canonical_bytes
from norrvakt.journal.log import Journal, JournalConfig
from tests.journal.workload import TENANTS, windows_like_events

GOLDEN = Path(__file__).with_name("golden_journal.json")
# Batches as the pipeline hands them over: several appends can share one commit.
BATCHES: tuple[tuple[int, ...], ...] = ((1,), (500,), (7, 3), (500,), (333, 1, 1), (2,), (500,), (152,))
REOPEN_AFTER = 4  # close and reopen the journal after this many batches (the last segment is reused)
REWOUND = 50  # appended, then forgotten as after a failed commit: their seqs are handed out again


def run_workload(directory: Path) -> tuple[Journal, list[int]]:
    """Write the golden workload into ``directory``; returns the journal and every seq handed out."""
    config = JournalConfig(directory, segment_bytes=256 * 1024, fsync=False)
    events = windows_like_events(sum(sum(b) for b in BATCHES) + REWOUND)
    seqs: list[int] = []
    journal = config.build()
    pos = 0

    def take(n: int) -> list[Event]:
        nonlocal pos
        got = events[pos : pos + n]
        pos += n
        return got

    for number, batch in enumerate(BATCHES):
        if number == REOPEN_AFTER:
            journal.close()
            journal = config.build()
            forgotten = take(REWOUND)
            journal.append(forgotten)
            seqs.extend(e.seq for e in forgotten)
            assert journal.rewind() == REWOUND
        for size in batch:
            appended = take(size)
            journal.append(appended)
            seqs.extend(e.seq for e in appended)
        journal.commit(journal.take_pending())
    return journal, seqs


def fingerprint(directory: Path, journal: Journal, seqs: list[int]) -> dict[str, Any]:
    files = {
        str(p.relative_to(directory)): [p.stat().st_size, hashlib.sha256(p.read_bytes()).hexdigest()]
        for p in sorted(directory.rglob("*"))
        if p.is_file()
    }
    heads = {}
    for tenant in TENANTS:
        size, root = journal.head(tenant)
        heads[tenant] = [size, root.hex()]
    return {
        "files": files,
        "heads": heads,
        "seqs": hashlib.sha256(",".join(map(str, seqs)).encode()).hexdigest(),
        "events": len(seqs),
    }


def test_the_journal_writes_the_golden_bytes(tmp_path: Path) -> None:
    journal, seqs = run_workload(tmp_path)
    try:
        got = fingerprint(tmp_path, journal, seqs)
    finally:
        journal.close()
    want = json.loads(GOLDEN.read_text())
    assert got["events"] == want["events"]
    assert got["seqs"] == want["seqs"]
    assert got["heads"] == want["heads"]
    assert sorted(got["files"]) == sorted(want["files"])
    for name, size_digest in want["files"].items():
        assert got["files"][name] == size_digest, f"{name} differs from what the journal wrote before"


def test_the_golden_journal_reads_back_and_reopens(tmp_path: Path) -> None:
    journal, _seqs = run_workload(tmp_path)
    journal.close()
    again = Journal(JournalConfig(tmp_path), read_only=True)
    want = json.loads(GOLDEN.read_text())["heads"]
    for tenant in TENANTS:
        size, root = again.head(tenant)
        assert [size, root.hex()] == want[tenant]
        assert [s for s, _ in again.read(tenant)] == list(range(1, size + 1))


def _reference_canonical(e: Event) -> bytes:
    """canonical_bytes as it was at commit 267ee2b (to_dict copied the ecs map every time)."""
    doc = {
        "v": CANONICAL_VERSION,
        "tenant": e.tenant,
        "seq": e.seq,
        "ts": e.ts,
        "ingested": e.ingested,
        "source": e.source,
        "peer": e.peer,
        "ecs": {k: v for k, v in e.ecs.items() if v != ""},
        "fields": e.fields,
        "message": e.message,
    }
    try:
        doc["raw"] = e.raw.decode("utf-8")
    except UnicodeDecodeError:
        doc["raw_b64"] = base64.b64encode(e.raw).decode("ascii")
    return orjson.dumps(doc, option=orjson.OPT_SORT_KEYS)


def test_canonical_bytes_equal_the_reference() -> None:
    events = windows_like_events(400, seed=7)
    events[0].ecs = {}
    events[1].ecs = {"event.kind": "", "host.name": ""}
    events[2].ecs = {"event.kind": "event", "user.name": ""}
    for e in events:
        before = dict(e.ecs)
        assert canonical_bytes(e) == _reference_canonical(e)
        assert e.ecs == before  # the event's own map is left as it was
