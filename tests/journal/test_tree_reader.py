"""A verification of the running server opens the stored tree while the journal writes it.

A commit writes the level files one after another, leaves first: for a moment the leaves are
ahead of a higher level. A reader opened then must see a consistent, smaller tree — not report
"the stored tree cannot be read" (a false integrity alarm; CI once caught it under sustained
ingest: `tests/security/test_integrity.py::test_verification_under_sustained_ingest_finds_nothing`).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from norrvakt.journal.merkle import TreeStore


def _leaves(n: int, start: int = 0) -> list[bytes]:
    return [hashlib.sha256(b"\x00" + str(i).encode()).digest() for i in range(start, start + n)]


def test_a_reader_mid_commit_sees_the_tree_every_level_covers(tmp_path: Path) -> None:
    writer = TreeStore(tmp_path)
    writer.append(_leaves(4600))
    writer.flush()
    root_before = writer.root()
    # The next commit has written its leaves but no higher level yet (as if caught between
    # two files of TreeStore.flush).
    with open(tmp_path / "level-00.bin", "ab") as fh:
        fh.write(b"".join(_leaves(200, 4600)))

    reader = TreeStore(tmp_path, reader=True)
    assert reader.size <= 4800
    assert reader.size >= 4600
    # whatever size it settled on, its root is the tree of that many leaves
    reference = TreeStore(tmp_path / "ref")
    reference.append(_leaves(reader.size))
    assert reader.root() == reference.root()
    if reader.size == 4600:
        assert reader.root() == root_before


def test_a_reader_of_a_quiet_tree_sees_all_of_it(tmp_path: Path) -> None:
    writer = TreeStore(tmp_path)
    writer.append(_leaves(1234))
    writer.flush()
    assert TreeStore(tmp_path, reader=True).size == 1234
    assert TreeStore(tmp_path, reader=True).root() == writer.root()


def test_a_writer_after_a_crash_between_level_files_cuts_back_to_what_every_level_covers(
    tmp_path: Path,
) -> None:
    """kill -9 of the node between two level files of one commit: the journal's next open must
    not fail (it once refused to start: "tree node level 8 index 138 does not exist yet"). The
    writer cuts every level back to the size they all cover; the journal re-hashes the rest."""
    writer = TreeStore(tmp_path)
    writer.append(_leaves(4600))
    writer.flush()
    writer.close()
    with open(tmp_path / "level-00.bin", "ab") as fh:
        fh.write(b"".join(_leaves(200, 4600)))
    reopened = TreeStore(tmp_path)
    assert 4600 <= reopened.size < 4800
    assert (tmp_path / "level-00.bin").stat().st_size == reopened.size * 32  # the files agree again
    reopened.append(_leaves(4800 - reopened.size, reopened.size))
    reference = TreeStore(tmp_path / "ref")
    reference.append(_leaves(4800))
    assert reopened.root() == reference.root()


def test_a_journal_whose_tree_was_cut_between_level_files_opens_and_verifies(tmp_path: Path) -> None:
    from norrvakt.event import Event
    from norrvakt.journal.log import FRAME_HEADER, JournalConfig
    from norrvakt.journal.merkle import leaf_hash
    from norrvakt.journal.verify import verify_journal

    def events(start: int, n: int) -> list[Event]:
        return [Event("lulea", 1, 1, "t", "p", {}, {}, f"m{i}", b"") for i in range(start, start + n)]

    journal = JournalConfig(directory=tmp_path, fsync=False).build()
    journal.append_and_commit(events(0, 4600))
    journal.close()
    # the next commit's records reached the segment and the leaves, not the higher levels
    journal = JournalConfig(directory=tmp_path, fsync=False).build()
    journal.append(events(4600, 200))
    batch = journal.take_pending()
    journal._write_segments(journal._tenants["lulea"], batch["lulea"])
    journal.close()
    tree_dir = tmp_path / "lulea" / "tree"
    with open(tree_dir / "level-00.bin", "ab") as fh:  # their leaves, as TreeStore.flush writes first
        fh.write(b"".join(leaf_hash(frame[FRAME_HEADER.size :]) for frame in batch["lulea"]))
    reopened = JournalConfig(directory=tmp_path, fsync=False).build()
    assert reopened.committed_seq("lulea") == 4800
    reopened.close()
    report = verify_journal(tmp_path, {}, tenants=["lulea"])
    assert report.records == 4800
    assert not [f for f in report.findings if not f.code.startswith("checkpoint")], report.findings
