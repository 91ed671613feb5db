"""RFC 9162 (Certificate Transparency 2.0) Merkle tree hashing, proofs and their verification.

    leaf hash  = SHA-256(0x00 ‖ leaf bytes)
    node hash  = SHA-256(0x01 ‖ left ‖ right)
    MTH({})    = SHA-256()                        (the empty tree)
    MTH(D[n])  = node(MTH(D[0:k]), MTH(D[k:n]))  with k the largest power of two < n

:class:`Frontier` appends leaves in O(1) amortized and gives the root of everything so far.
:class:`TreeStore` keeps every complete subtree on disk (one file per level, 32 bytes per
node), so inclusion and consistency proofs at any size take O(log² n) reads — no rehashing.
The ``verify_*`` functions are what an investigator's independent verifier needs: they use
nothing but hashes (RFC 9162 §2.1.3.2 and §2.1.4.2).
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()

_sha256 = hashlib.sha256

log = logging.getLogger(__name__)


def leaf_hash(data: bytes) -> bytes:
    return _sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return _sha256(b"\x01" + left + right).digest()


def _set_bits(n: int) -> list[int]:
    """Heights of the perfect subtrees covering ``n`` leaves, highest first."""
    return [h for h in range(n.bit_length() - 1, -1, -1) if n >> h & 1]


def _split(n: int) -> int:
    """Largest power of two strictly less than n (n ≥ 2)."""
    return 1 << ((n - 1).bit_length() - 1)


class Frontier:
    """The roots of the perfect subtrees covering the leaves so far (a 'compact range').

    ``nodes[i]`` is the root of a perfect subtree; sizes strictly decrease left to right and
    are the set bits of ``size``. Appending merges equal-sized neighbours like a binary carry.
    """

    __slots__ = ("nodes", "size")

    def __init__(self, size: int = 0, nodes: Sequence[bytes] = ()) -> None:
        self.size = size
        self.nodes = list(nodes)

    def append(self, leaf: bytes) -> None:
        """Add a leaf *hash*."""
        nodes = self.nodes
        nodes.append(leaf)
        n = self.size
        while n & 1:
            right = nodes.pop()
            nodes[-1] = _sha256(b"\x01" + nodes[-1] + right).digest()
            n >>= 1
        self.size += 1

    def extend(self, leaves: Iterable[bytes]) -> None:
        for leaf in leaves:
            self.append(leaf)

    def root(self) -> bytes:
        if not self.nodes:
            return EMPTY_ROOT
        acc = self.nodes[-1]
        for node in reversed(self.nodes[:-1]):
            acc = node_hash(node, acc)
        return acc

    def copy(self) -> Frontier:
        return Frontier(self.size, self.nodes)


def root_of(leaves: Sequence[bytes]) -> bytes:
    """MTH of a list of leaf hashes (reference implementation, for tests and small trees)."""
    if not leaves:
        return EMPTY_ROOT
    if len(leaves) == 1:
        return leaves[0]
    k = _split(len(leaves))
    return node_hash(root_of(leaves[:k]), root_of(leaves[k:]))


# -- proofs from any source of subtree hashes ---------------------------------------------------

# subtree(start, size) → MTH of leaves [start, start+size); size is a power of two and start a
# multiple of it whenever the prover asks for a stored node.
SubtreeFn = Callable[[int, int], bytes]


def _mth(subtree: SubtreeFn, start: int, size: int) -> bytes:
    """MTH of leaves [start, start+size) for any size, from perfect subtrees."""
    if size == 0:
        return EMPTY_ROOT
    if size & (size - 1) == 0 and start % size == 0:
        return subtree(start, size)
    k = _split(size)
    return node_hash(_mth(subtree, start, k), _mth(subtree, start + k, size - k))


def inclusion_proof(subtree: SubtreeFn, index: int, size: int) -> list[bytes]:
    """PATH(m, D[n]) of RFC 9162 §2.1.3.1 for leaf ``index`` in a tree of ``size`` leaves."""
    if not 0 <= index < size:
        raise ValueError(f"leaf {index} is not in a tree of {size} leaves")
    path: list[bytes] = []
    start, n, m = 0, size, index
    while n > 1:
        k = _split(n)
        if m < k:
            path.append(_mth(subtree, start + k, n - k))
            n = k
        else:
            path.append(_mth(subtree, start, k))
            start, n, m = start + k, n - k, m - k
    path.reverse()
    return path


def consistency_proof(subtree: SubtreeFn, old_size: int, new_size: int) -> list[bytes]:
    """PROOF(m, D[n]) of RFC 9162 §2.1.4.1."""
    if not 0 <= old_size <= new_size:
        raise ValueError(f"no consistency proof from {old_size} to {new_size} leaves")
    if old_size == 0 or old_size == new_size:
        return []
    proof: list[bytes] = []

    def subproof(m: int, start: int, n: int, complete: bool) -> None:
        if m == n:
            if not complete:
                proof.append(_mth(subtree, start, n))
            return
        k = _split(n)
        if m <= k:
            subproof(m, start, k, complete)
            proof.append(_mth(subtree, start + k, n - k))
        else:
            subproof(m - k, start + k, n - k, False)
            proof.append(_mth(subtree, start, k))

    subproof(old_size, 0, new_size, True)
    return proof


def verify_inclusion(leaf: bytes, index: int, size: int, path: Sequence[bytes], root: bytes) -> bool:
    """RFC 9162 §2.1.3.2: does ``path`` prove leaf hash ``leaf`` at ``index`` under ``root``?"""
    if not 0 <= index < size:
        return False
    fn, sn = index, size - 1
    r = leaf
    for p in path:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> bool:
    """RFC 9162 §2.1.4.2: is the tree of ``new_size`` an append-only extension of ``old_size``?"""
    if old_size > new_size:
        return False
    if old_size == new_size:
        return not proof and old_root == new_root
    if old_size == 0:
        return not proof
    if not proof:
        return False
    path = list(proof)
    if old_size & (old_size - 1) == 0:  # a power of two: the old root is the first node
        path.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            while fn and not fn & 1:
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return fr == old_root and sr == new_root and sn == 0


# -- the stored tree -------------------------------------------------------------------------


class TreeStore:
    """Every complete subtree of one tenant's log, one file per level.

    ``level-00.bin`` holds the leaf hashes, ``level-01.bin`` the roots of pairs, and so on; a
    level grows by one node each time a perfect subtree of that height completes. The files
    are derived data: :meth:`truncate` cuts them back to a size, and the journal rebuilds
    missing tails from the segments. The leaf hashes of disposed (deleted) ranges stay here,
    so checkpoints signed before a deletion remain provable.
    """

    def __init__(self, directory: Path, *, reader: bool = False) -> None:
        """``reader``: opened beside a running journal that may be writing (a verification of
        the running server). A commit writes the level files one after another, leaves first,
        so for a moment the leaves can be ahead of a higher level; a reader then takes the
        largest size every level already covers instead of failing on a node "not there yet"."""
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self.size = self._consistent_size()
        self._pending: dict[int, list[bytes]] = {}
        self._writers: dict[int, Any] = {}  # open append handles, one per level (flushed each commit)
        self.frontier = self._load_frontier()
        if not reader and self.size < self._level_count(0):
            # A crash (kill -9, power) between the level files of one commit left the leaves
            # ahead of a higher level: cut every level back to the size they all cover. The
            # tree is derived data; the journal hashes the leaves after it again from its
            # segments (Journal._sync_tree).
            log.warning(
                "Merkle tree %s: %d leaves stored but the higher levels cover %d (a commit cut short); "
                "cutting back and rebuilding from the segments",
                directory,
                self._level_count(0),
                self.size,
            )
            self.truncate(self.size)

    def _consistent_size(self) -> int:
        """The largest size ≤ the leaves stored whose nodes every level holds: level h must
        hold floor(size / 2^h) nodes, so size ≤ (count_h + 1)·2^h − 1 for each level."""
        size = self._level_count(0)
        level = 1
        while 1 << level <= size:
            size = min(size, ((self._level_count(level) + 1) << level) - 1)
            level += 1
        return size

    def _path(self, level: int) -> Path:
        return self.directory / f"level-{level:02d}.bin"

    def _level_count(self, level: int) -> int:
        path = self._path(level)
        return path.stat().st_size // HASH_SIZE if path.exists() else 0

    def _load_frontier(self) -> Frontier:
        nodes = []
        start = 0
        for height in range(self.size.bit_length() - 1, -1, -1):
            if self.size >> height & 1:
                nodes.append(self.node(height, start >> height))
                start += 1 << height
        return Frontier(self.size, nodes)

    def node(self, level: int, index: int) -> bytes:
        """Root of the perfect subtree of height ``level`` covering leaves [index·2^level, …)."""
        pending = self._pending.get(level)
        stored = self._level_count(level)
        if index >= stored:
            if pending is None or index - stored >= len(pending):
                raise IndexError(f"tree node level {level} index {index} does not exist yet")
            return pending[index - stored]
        with open(self._path(level), "rb") as fh:
            fh.seek(index * HASH_SIZE)
            data = fh.read(HASH_SIZE)
        if len(data) != HASH_SIZE:
            raise IndexError(f"tree file {self._path(level)} is short at node {index}")
        return data

    def subtree(self, start: int, size: int) -> bytes:
        level = size.bit_length() - 1
        return self.node(level, start >> level)

    def append(self, leaves: Iterable[bytes]) -> None:
        """Add leaf hashes; the new nodes are buffered until :meth:`flush`.

        Level by level for the whole batch rather than leaf by leaf: the new nodes of a level
        are its new row paired up, each row one list comprehension. A row whose first new node
        has an odd index pairs it with the level's last stored node — the frontier's node of
        that height. The result is the same nodes, in the same order, as adding one leaf at a
        time (tests/journal/test_merkle.py compares the two)."""
        row = list(leaves)
        if not row:
            return
        frontier = self.frontier
        old_size = frontier.size
        new_size = old_size + len(row)
        # The frontier's nodes, by height: one per set bit of the size, highest first.
        old_nodes = dict(zip(_set_bits(old_size), frontier.nodes, strict=True))
        new_nodes: dict[int, bytes] = {}
        pending = self._pending
        level = 0
        while row:
            pending.setdefault(level, []).extend(row)
            if old_size >> level & 1:  # the row starts at an odd index: its left sibling is stored
                row.insert(0, old_nodes[level])
            if len(row) & 1:  # the last node has no sibling yet: it is the new frontier's
                new_nodes[level] = row[-1]
            pairs = zip(row[0::2], row[1::2], strict=False)  # an odd last node was kept above
            row = [_sha256(b"\x01" + left + right).digest() for left, right in pairs]
            level += 1
        # Heights above the last new row keep their stored node.
        frontier.nodes = [new_nodes[h] if h in new_nodes else old_nodes[h] for h in _set_bits(new_size)]
        frontier.size = self.size = new_size

    def flush(self, fsync: bool = False) -> None:
        for level, nodes in sorted(self._pending.items()):
            fh = self._writers.get(level)
            if fh is None:
                fh = self._writers[level] = open(self._path(level), "ab")  # noqa: SIM115 - kept open
            fh.write(b"".join(nodes))
            fh.flush()
            if fsync:
                os.fsync(fh.fileno())
        self._pending.clear()

    def close(self) -> None:
        self.flush()
        for fh in self._writers.values():
            fh.close()
        self._writers.clear()

    def root(self, size: int | None = None) -> bytes:
        if size is None or size == self.size:
            return self.frontier.root()
        return _mth(self.subtree, 0, size)

    def truncate(self, size: int) -> None:
        """Cut the stored tree back to ``size`` leaves (used when the journal is shorter)."""
        self.close()
        level = 0
        while True:
            path = self._path(level)
            if not path.exists():
                break
            keep = (size >> level) * HASH_SIZE
            if path.stat().st_size > keep:
                with open(path, "r+b") as fh:
                    fh.truncate(keep)
            level += 1
        self.size = size
        self.frontier = self._load_frontier()

    def roll_back(self, size: int) -> None:
        """Undo a commit that failed half-way (disk full, no descriptors): forget buffered nodes,
        close the append handles — whatever they still buffer is lost on purpose — and cut the
        files back to ``size`` leaves. Raises OSError when the files cannot be cut back."""
        self._pending.clear()
        for fh in self._writers.values():
            try:
                fh.close()
            except OSError:
                pass  # the unwritten tail is exactly what is being undone
        self._writers.clear()
        self.truncate(size)

    def inclusion_proof(self, index: int, size: int) -> list[bytes]:
        return inclusion_proof(self.subtree, index, size)

    def consistency_proof(self, old_size: int, new_size: int) -> list[bytes]:
        return consistency_proof(self.subtree, old_size, new_size)
