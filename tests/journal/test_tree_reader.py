"""A verification of the running server opens the stored tree while the journal writes it.

A commit writes the level files one after another, leaves first: for a moment the leaves are
ahead of a higher level. A reader opened then must see a consistent, smaller tree — not report
"the stored tree cannot be read" (a false integrity alarm; CI once caught it under sustained
ingest: `tests/security/test_integrity.py::test_verification_under_sustained_ingest_finds_nothing`).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

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

    with pytest.raises(IndexError, match="does not exist yet"):
        TreeStore(tmp_path)  # the writer's view: the leaves say 4,800, level 7 is not there

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
