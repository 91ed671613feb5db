"""RFC 9162 tree hashes, proofs and verification, against a reference implementation."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from norrvakt.journal.merkle import (
    EMPTY_ROOT,
    Frontier,
    TreeStore,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    root_of,
    verify_consistency,
    verify_inclusion,
)

LEAVES = [leaf_hash(f"event {i}".encode()) for i in range(70)]


def _subtree(start: int, size: int) -> bytes:
    return root_of(LEAVES[start : start + size])


def test_hashing_follows_rfc_9162() -> None:
    assert hashlib.sha256(b"").digest() == EMPTY_ROOT
    assert leaf_hash(b"x") == hashlib.sha256(b"\x00x").digest()
    a, b = LEAVES[0], LEAVES[1]
    assert root_of([a, b]) == hashlib.sha256(b"\x01" + a + b).digest()
    # three leaves: the split is at 2 (largest power of two below 3)
    c = LEAVES[2]
    assert root_of([a, b, c]) == hashlib.sha256(b"\x01" + root_of([a, b]) + c).digest()


@pytest.mark.parametrize("n", [0, 1, 2, 3, 5, 8, 13, 64, 70])
def test_frontier_root_equals_reference(n: int) -> None:
    f = Frontier()
    f.extend(LEAVES[:n])
    assert f.root() == root_of(LEAVES[:n])


def test_every_inclusion_proof_verifies_and_tampering_fails() -> None:
    for n in range(1, 40):
        root = root_of(LEAVES[:n])
        for m in range(n):
            path = inclusion_proof(_subtree, m, n)
            assert verify_inclusion(LEAVES[m], m, n, path, root), (m, n)
            assert not verify_inclusion(LEAVES[m + 1], m, n, path, root)
            if path:
                bad = [*path[:-1], bytes(32)]
                assert not verify_inclusion(LEAVES[m], m, n, bad, root)


def test_every_consistency_proof_verifies_and_forks_fail() -> None:
    for n in range(1, 40):
        new_root = root_of(LEAVES[:n])
        for m in range(1, n + 1):
            proof = consistency_proof(_subtree, m, n)
            assert verify_consistency(m, n, root_of(LEAVES[:m]), new_root, proof), (m, n)
            if m < n:
                forked = root_of([LEAVES[0], bytes(32), *LEAVES[2:m]]) if m > 1 else bytes(32)
                assert not verify_consistency(m, n, forked, new_root, proof)


def test_tree_store_persists_nodes_and_proves(tmp_path: Path) -> None:
    store = TreeStore(tmp_path / "t")
    store.append(LEAVES[:33])
    store.flush()
    store.append(LEAVES[33:70])
    assert store.root() == root_of(LEAVES)  # pending nodes count before flush
    store.flush()
    again = TreeStore(tmp_path / "t")
    assert again.size == 70
    assert again.root() == root_of(LEAVES)
    assert again.root(45) == root_of(LEAVES[:45])
    path = again.inclusion_proof(44, 70)
    assert path == inclusion_proof(_subtree, 44, 70)
    assert again.consistency_proof(45, 70) == consistency_proof(_subtree, 45, 70)
    again.truncate(50)
    assert TreeStore(tmp_path / "t").root() == root_of(LEAVES[:50])
