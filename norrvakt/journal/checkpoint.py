"""Signed checkpoints (signed tree heads): what the log looked like, signed, chained.

One JSON object per line in ``<journal>/<tenant>/checkpoints.jsonl``::

    {"key":"3f2a…","prev":"<hex>","root":"<hex>","sig":"<base64>","size":1234,
     "tenant":"lulea","time":1795729970123456,"v":1}

- ``size``/``root``: the RFC 9162 tree over the tenant's first ``size`` records.
- ``prev``: SHA-256 of the previous checkpoint's line (without the newline), 64 zeros for
  the first — so removing, reordering or editing a checkpoint breaks the chain.
- ``sig``: Ed25519 over ``b"norrvakt-checkpoint-v1\\n"`` + the canonical JSON of every other
  field (keys sorted, no whitespace), by the key named in ``key``.

Checkpoints are written every N records or T seconds — also when nothing arrived, so a silent
period is itself signed — and copied to the witnesses (see witness.py).
"""

from __future__ import annotations

import base64
import errno
import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from norrvakt.journal.keys import verify_signature

DOMAIN = b"norrvakt-checkpoint-v1\n"
FILE_NAME = "checkpoints.jsonl"
GENESIS = "0" * 64


@dataclass(frozen=True)
class Checkpoint:
    tenant: str
    size: int
    root: str  # hex
    time: int  # µs since epoch
    prev: str  # hex SHA-256 of the previous checkpoint line
    key: str  # key id
    sig: str = ""  # base64
    v: int = 1

    def body(self) -> dict[str, object]:
        return {
            "key": self.key,
            "prev": self.prev,
            "root": self.root,
            "size": self.size,
            "tenant": self.tenant,
            "time": self.time,
            "v": self.v,
        }

    def message(self) -> bytes:
        return DOMAIN + json.dumps(self.body(), sort_keys=True, separators=(",", ":")).encode()

    def line(self) -> bytes:
        doc = {**self.body(), "sig": self.sig}
        return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()

    def digest(self) -> str:
        return hashlib.sha256(self.line()).hexdigest()

    def signed(self, key: Ed25519PrivateKey) -> Checkpoint:
        sig = base64.b64encode(key.sign(self.message())).decode()
        return Checkpoint(**{**self.__dict__, "sig": sig})

    def signature_ok(self, public: Ed25519PublicKey) -> bool:
        try:
            raw = base64.b64decode(self.sig, validate=True)
        except ValueError:
            return False
        return verify_signature(public, raw, self.message())

    @classmethod
    def parse(cls, line: bytes | str) -> Checkpoint:
        doc = json.loads(line)
        if not isinstance(doc, dict):
            raise ValueError("checkpoint is not a JSON object")
        return cls(
            tenant=str(doc["tenant"]),
            size=int(doc["size"]),
            root=str(doc["root"]),
            time=int(doc["time"]),
            prev=str(doc["prev"]),
            key=str(doc["key"]),
            sig=str(doc["sig"]),
            v=int(doc.get("v", 1)),
        )


@dataclass(frozen=True)
class CheckpointLine:
    number: int  # 1-based line in the file
    raw: bytes
    checkpoint: Checkpoint | None
    error: str = ""


def parse_line(number: int, raw: bytes) -> CheckpointLine:
    """Line ``number`` of a checkpoint log; one that does not parse is kept, with why (the
    verifier reports it where it stands)."""
    try:
        return CheckpointLine(number, raw, Checkpoint.parse(raw))
    except (ValueError, KeyError, TypeError) as exc:
        return CheckpointLine(number, raw, None, f"unreadable checkpoint: {exc}")


def read_lines(path: Path) -> Iterator[CheckpointLine]:
    if not path.exists():
        return
    with open(path, "rb") as fh:
        for number, raw in enumerate(fh, start=1):
            raw = raw.rstrip(b"\n")
            if raw:
                yield parse_line(number, raw)


def tail_line(path: Path) -> bytes | None:
    """The last non-empty line of a checkpoint log, reading only its tail (the file grows for
    years); None for an empty file. Raises FileNotFoundError / OSError as ``open`` does."""
    with open(path, "rb") as fh:
        size = fh.seek(0, os.SEEK_END)
        fh.seek(max(0, size - 8192))
        lines = [line for line in fh.read().split(b"\n") if line.strip()]
    return lines[-1].strip() if lines else None


def last_checkpoint(path: Path) -> Checkpoint | None:
    """The last readable checkpoint of a file (reads the tail only)."""
    try:
        line = tail_line(path)
    except FileNotFoundError:
        return None
    return parse_line(0, line).checkpoint if line else None


def append_line(path: Path, line: bytes) -> None:
    """Append one line durably — or not at all: a write cut short (disk full) is cut off again,
    so a torn line never sits before the next good one (it would read as a forged checkpoint)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        before = os.fstat(fd).st_size
        try:
            data = line + b"\n"
            written = os.write(fd, data)
            if written != len(data):
                raise OSError(errno.ENOSPC, f"only {written} of {len(data)} bytes of a checkpoint written")
            os.fsync(fd)
        except OSError:
            os.ftruncate(fd, before)
            raise
    finally:
        os.close(fd)
