"""Inclusion proofs: evidence that one event belongs to a signed checkpoint, checkable offline.

A proof file (JSON) holds everything an investigator needs besides the public key::

    {"format": "norrvakt-inclusion-proof-v1",
     "tenant": "lulea", "seq": 42, "leaf_index": 41,
     "event": "<the canonical event bytes as journaled, UTF-8 text>",
     "leaf_hash": "<hex>", "tree_size": 1000, "audit_path": ["<hex>", …],
     "checkpoint": {…the signed checkpoint line…}}

Verification: leaf hash = SHA-256(0x00 ‖ event bytes); the audit path leads from it to the
checkpoint's root (RFC 9162 §2.1.3.2); the checkpoint's signature holds for the given key;
the event's own tenant and seq are the proof's.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from norrvakt.journal.checkpoint import Checkpoint
from norrvakt.journal.merkle import TreeStore, leaf_hash, verify_inclusion

FORMAT = "norrvakt-inclusion-proof-v1"


class ProofError(Exception):
    pass


def make_proof(
    tree: TreeStore, event_bytes: bytes, tenant: str, seq: int, checkpoint: Checkpoint
) -> dict[str, Any]:
    if checkpoint.size < seq:
        raise ProofError(f"checkpoint of size {checkpoint.size} does not cover seq {seq}")
    index = seq - 1
    leaf = leaf_hash(event_bytes)
    if tree.node(0, index) != leaf:
        raise ProofError(f"seq {seq} does not match its recorded hash; run `norrvakt verify`")
    path = tree.inclusion_proof(index, checkpoint.size)
    return {
        "format": FORMAT,
        "tenant": tenant,
        "seq": seq,
        "leaf_index": index,
        "event": event_bytes.decode("utf-8"),
        "leaf_hash": leaf.hex(),
        "tree_size": checkpoint.size,
        "audit_path": [p.hex() for p in path],
        "checkpoint": json.loads(checkpoint.line()),
    }


@dataclass
class ProofResult:
    ok: bool
    checks: list[tuple[str, bool]] = field(default_factory=list)

    def add(self, what: str, passed: bool) -> None:
        self.checks.append((what, passed))
        self.ok = self.ok and passed


def verify_proof(doc: dict[str, Any], public: Ed25519PublicKey) -> ProofResult:
    result = ProofResult(ok=True)
    try:
        if doc.get("format") != FORMAT:
            raise ProofError(f"not a {FORMAT} document")
        event_bytes = str(doc["event"]).encode("utf-8")
        event = json.loads(event_bytes)
        checkpoint = Checkpoint.parse(json.dumps(doc["checkpoint"]))
        index = int(doc["leaf_index"])
        path = [bytes.fromhex(p) for p in doc["audit_path"]]
    except (KeyError, ValueError, TypeError, ProofError) as exc:
        result.add(f"proof document readable ({exc})", False)
        return result
    leaf = leaf_hash(event_bytes)
    result.add("leaf hash = SHA-256(0x00 ‖ event)", leaf.hex() == doc.get("leaf_hash"))
    result.add(
        "event's tenant and seq are the proof's",
        event.get("tenant") == doc.get("tenant") == checkpoint.tenant
        and event.get("seq") == doc.get("seq")
        and index == int(doc["seq"]) - 1,
    )
    result.add(
        f"audit path leads to the checkpoint root (tree of {checkpoint.size} records)",
        verify_inclusion(leaf, index, checkpoint.size, path, bytes.fromhex(checkpoint.root)),
    )
    result.add(f"checkpoint signed by key {checkpoint.key}", checkpoint.signature_ok(public))
    return result
