"""Verifying a journal from its files alone: records, tree, checkpoints, signatures, witnesses.

For each tenant:

1. Checkpoints: every line parses, is for this tenant, is signed by a trusted key, chains to
   the previous one (``prev``), and sizes and times never go back.
2. Records: segments follow each other without gaps or overlaps; every frame is whole, its
   CRC matches, and it holds the seq its position says; its leaf hash matches the stored tree.
   Ranges removed by a recorded disposal are taken from the stored tree instead.
3. Roots: the tree recomputed from the records has, at every checkpoint's size, that
   checkpoint's root; consecutive checkpoints are linked by a valid consistency proof.
4. Tail and witnesses: no checkpoint (local or at a witness) covers more records than the
   journal holds — a truncated tail or a rolled-back data directory shows up here.

Every problem is a :class:`Finding` naming tenant, seq, segment and offset where they apply.
This module needs no store and no running server (``norrvakt verify`` and the offline
verifier of an archive package use it as is).
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import time
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from norrvakt.journal.checkpoint import FILE_NAME, GENESIS, Checkpoint, CheckpointLine, read_lines
from norrvakt.journal.log import FRAME_HEADER, SEGMENT_SUFFIX, TREE_DIR
from norrvakt.journal.merkle import EMPTY_ROOT, HASH_SIZE, Frontier, TreeStore, verify_consistency
from norrvakt.journal.retention import Disposal, read_disposals
from norrvakt.journal.witness import Witness, WitnessError

_sha256 = hashlib.sha256
_SEQ_KEY = b',"seq":'
MAX_RECORD_FINDINGS = 20

ProgressFn = Callable[[int], None]  # records verified so far (all tenants)


@dataclass(frozen=True)
class Finding:
    tenant: str
    code: str  # short machine-readable kind, e.g. "record.crc", "checkpoint.signature"
    detail: str
    seq: int | None = None
    segment: str | None = None
    offset: int | None = None

    def where(self) -> str:
        parts = [f"tenant {self.tenant}"]
        if self.seq is not None:
            parts.append(f"seq {self.seq}")
        if self.segment is not None:
            parts.append(f"segment {self.segment}")
        if self.offset is not None:
            parts.append(f"offset {self.offset}")
        return ", ".join(parts)

    def __str__(self) -> str:
        return f"{self.where()}: {self.detail} [{self.code}]"


@dataclass
class TenantResult:
    tenant: str
    records: int = 0  # records read from segments
    disposed: int = 0  # records covered by disposal decisions (hash kept, data deleted)
    tree_size: int = 0
    checkpoints: int = 0
    witnessed: int = 0
    findings: list[Finding] = field(default_factory=list)


@dataclass
class VerifyReport:
    tenants: list[TenantResult] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def findings(self) -> list[Finding]:
        return [f for t in self.tenants for f in t.findings]

    @property
    def ok(self) -> bool:
        return not self.findings

    @property
    def records(self) -> int:
        return sum(t.records for t in self.tenants)

    def as_dict(self) -> dict[str, object]:
        return {
            "ok": self.ok,
            "seconds": round(self.seconds, 3),
            "records": self.records,
            "tenants": [
                {
                    "tenant": t.tenant,
                    "records": t.records,
                    "disposed": t.disposed,
                    "checkpoints": t.checkpoints,
                    "witnessed": t.witnessed,
                    "findings": [f.__dict__ for f in t.findings],
                }
                for t in self.tenants
            ],
        }


class _TenantVerifier:
    def __init__(
        self,
        tenant_dir: Path,
        trusted: dict[str, Ed25519PublicKey],
        witnesses: list[Witness],
        since_us: int | None,
        progress: Callable[[int], None],
    ) -> None:
        self.dir = tenant_dir
        self.tenant = tenant_dir.name
        self.trusted = trusted
        self.witnesses = witnesses
        self.since_us = since_us
        self.progress = progress
        self.result = TenantResult(self.tenant)
        self.tree = TreeStore(tenant_dir / TREE_DIR) if (tenant_dir / TREE_DIR).exists() else None
        self.roots: dict[int, bytes] = {0: EMPTY_ROOT}  # recomputed roots at sizes of interest
        self._stored_leaves: tuple[int, bytes] = (0, b"")  # (first index, buffer) of level-00
        self._record_problems = 0

    def find(self, code: str, detail: str, **where: object) -> None:
        self.result.findings.append(Finding(self.tenant, code, detail, **where))  # type: ignore[arg-type]

    def record_problem(self, code: str, detail: str, **where: object) -> None:
        """Record-level findings: the first ones in full, the rest counted (one deleted record
        misaligns every record after it)."""
        self._record_problems += 1
        if self._record_problems <= MAX_RECORD_FINDINGS:
            self.find(code, detail, **where)

    # -- 1. checkpoints ---------------------------------------------------------------------

    def checkpoints(self) -> list[Checkpoint]:
        good: list[Checkpoint] = []
        prev_digest = GENESIS
        prev: Checkpoint | None = None
        for line in read_lines(self.dir / FILE_NAME):
            self.result.checkpoints += 1
            cp = line.checkpoint
            if cp is None:
                self.find("checkpoint.unreadable", f"checkpoint line {line.number}: {line.error}")
                prev_digest = _sha256(line.raw).hexdigest()
                continue
            label = f"checkpoint line {line.number} (size {cp.size})"
            if cp.tenant != self.tenant:
                self.find("checkpoint.tenant", f"{label} is for tenant {cp.tenant!r}")
            key = self.trusted.get(cp.key)
            if key is None:
                self.find(
                    "checkpoint.key", f"{label} is signed with key {cp.key}, which is not a trusted key"
                )
            elif not cp.signature_ok(key):
                self.find(
                    "checkpoint.signature",
                    f"{label}: the signature does not match its contents "
                    f"(altered after signing, or signed with another key)",
                )
            if cp.prev != prev_digest:
                self.find(
                    "checkpoint.chain",
                    f"{label} does not chain to the line before it: a checkpoint "
                    "before it is missing, was altered, or the order was changed",
                )
            if prev is not None and cp.size < prev.size:
                self.find(
                    "checkpoint.size",
                    f"{label} is smaller than the previous checkpoint ({prev.size}): the log went backwards",
                )
            if prev is not None and cp.time < prev.time:
                self.find("checkpoint.time", f"{label} is older than the checkpoint before it")
            prev_digest = _sha256(line.raw).hexdigest()
            prev = cp
            good.append(cp)
        return good

    # -- 2. records ---------------------------------------------------------------------------

    def _stored_leaf(self, index: int) -> bytes | None:
        if self.tree is None:
            return None
        start, buf = self._stored_leaves
        off = (index - start) * HASH_SIZE
        if not 0 <= off < len(buf):
            path = self.dir / TREE_DIR / "level-00.bin"
            if not path.exists():
                return None
            with open(path, "rb") as fh:
                fh.seek(index * HASH_SIZE)
                buf = fh.read(HASH_SIZE * 65536)
            self._stored_leaves = (index, buf)
            off = 0
        leaf = buf[off : off + HASH_SIZE]
        return leaf if len(leaf) == HASH_SIZE else None

    def records(self, sizes: set[int], start_frontier: Frontier) -> Frontier:
        """Walk the segments, recording the root at every size in ``sizes``.

        Records up to ``start_frontier.size`` (``--since``) are already accounted for by a
        verified checkpoint and are skipped."""
        frontier = start_frontier
        skip_until = frontier.size
        disposals = self._disposals()
        segments = sorted((int(p.stem), p) for p in self.dir.glob(f"*{SEGMENT_SUFFIX}") if p.stem.isdigit())
        expected = 1
        for idx, (first, path) in enumerate(segments):
            nxt = segments[idx + 1][0] if idx + 1 < len(segments) else None
            if nxt is not None and nxt - 1 <= skip_until:
                expected = nxt
                continue
            if first > expected:
                self._fill_gap(
                    frontier, max(expected, skip_until + 1), first - 1, disposals, sizes, path.name
                )
            elif first < expected:
                self.find(
                    "segment.overlap",
                    f"segment starts at seq {first} but the one before ends at seq {expected - 1}",
                    seq=first,
                    segment=path.name,
                )
            expected = self._segment(path, first, frontier, sizes, skip_until)
        tree_size = self.tree.size if self.tree is not None else 0
        if tree_size >= expected and any(
            d.first_seq <= expected and d.last_seq >= tree_size for d in disposals
        ):
            self._fill_gap(frontier, max(expected, skip_until + 1), tree_size, disposals, sizes, "(end)")
        return frontier

    def _disposals(self) -> list[Disposal]:
        """Disposal decisions that are validly signed; others are findings, not excuses."""
        good = []
        for d in read_disposals(self.dir):
            key = self.trusted.get(d.key)
            if d.tenant != self.tenant or key is None or not d.signature_ok(key):
                self.find(
                    "disposal.signature",
                    f"disposal record for seq {d.first_seq}..{d.last_seq} "
                    f"(by {d.decided_by}) is not validly signed by a trusted key",
                    seq=d.first_seq,
                )
                continue
            good.append(d)
        return good

    def _fill_gap(
        self,
        frontier: Frontier,
        first: int,
        last: int,
        disposals: list[Disposal],
        sizes: set[int],
        segment: str,
    ) -> None:
        if first > last:
            return
        covered = [d for d in disposals if d.first_seq <= first and d.last_seq >= last]
        if covered:
            self.result.disposed += last - first + 1
        else:
            self.find(
                "segment.missing",
                f"records {first}..{last} are missing (a segment file was deleted?)",
                seq=first,
                segment=f"before {segment}",
            )
        # Continue from the stored tree's leaves so the rest can still be checked.
        for seq in range(first, last + 1):
            leaf = self._stored_leaf(seq - 1)
            if leaf is None:
                self.find(
                    "tree.missing", f"no stored hash for seq {seq}; later roots cannot be checked", seq=seq
                )
                return
            frontier.append(leaf)
            if frontier.size in sizes:
                self.roots[frontier.size] = frontier.root()

    def _segment(self, path: Path, first: int, frontier: Frontier, sizes: set[int], skip_until: int) -> int:
        """Check one segment; returns the seq that should follow it."""
        name = path.name
        expected = first
        data = path.read_bytes()
        n = len(data)
        pos = 0
        header = FRAME_HEADER.size
        unpack = FRAME_HEADER.unpack_from
        crc32 = zlib.crc32
        done = 0
        while pos < n:
            if pos + header > n:
                self.find(
                    "record.truncated",
                    f"{n - pos} stray bytes after the last whole record",
                    seq=expected,
                    segment=name,
                    offset=pos,
                )
                break
            length, crc = unpack(data, pos)
            end = pos + header + length
            if end > n:
                self.find(
                    "record.truncated",
                    f"record announces {length} bytes but the file ends after {n - pos - header}",
                    seq=expected,
                    segment=name,
                    offset=pos,
                )
                break
            if expected <= skip_until:
                expected += 1
                pos = end
                continue
            payload = data[pos + header : end]
            # One finding per record: the most specific one.
            if crc32(payload) != crc:
                self.record_problem(
                    "record.crc",
                    "CRC mismatch: the record was altered or damaged",
                    seq=expected,
                    segment=name,
                    offset=pos,
                )
                bad = True
            else:
                bad = False
            at = payload.rfind(_SEQ_KEY)
            claimed = _int_at(payload, at + len(_SEQ_KEY)) if at >= 0 else None
            if claimed != expected and not bad:
                bad = True
                self.record_problem(
                    "record.seq",
                    f"record holds seq {claimed} where seq {expected} belongs "
                    "(records deleted, inserted or reordered)",
                    seq=expected,
                    segment=name,
                    offset=pos,
                )
            leaf = _sha256(b"\x00" + payload).digest()
            stored = self._stored_leaf(expected - 1)
            if stored is not None and stored != leaf and not bad:
                self.record_problem(
                    "record.hash",
                    "the record does not match the hash recorded when it was journaled",
                    seq=expected,
                    segment=name,
                    offset=pos,
                )
            frontier.append(leaf)
            if frontier.size in sizes:
                self.roots[frontier.size] = frontier.root()
            expected += 1
            pos = end
            done += 1
            if done & 0xFFFF == 0:
                self.progress(0x10000)
        self.progress(done & 0xFFFF)
        self.result.records += done
        return expected

    # -- the whole tenant ----------------------------------------------------------------------

    def run(self) -> TenantResult:
        checkpoints = self.checkpoints()
        witnessed: list[tuple[str, CheckpointLine]] = []
        for w in self.witnesses:
            try:
                lines = w.read(self.tenant)
            except WitnessError as exc:
                self.find("witness.unreachable", str(exc))
                continue
            witnessed += [(w.name, line) for line in lines]
        self.result.witnessed = len(witnessed)
        sizes = {cp.size for cp in checkpoints} | {
            line.checkpoint.size for _n, line in witnessed if line.checkpoint is not None
        }
        start = Frontier()
        if self.since_us is not None:
            start = self._frontier_before(checkpoints)
        frontier = self.records(sizes, start)
        if self._record_problems > MAX_RECORD_FINDINGS:
            self.find(
                "record.more",
                f"{self._record_problems - MAX_RECORD_FINDINGS} more records with problems (not listed)",
            )
        self.result.tree_size = frontier.size
        if self.tree is not None and self.tree.size != frontier.size and not self.result.findings:
            self.find(
                "tree.size", f"the stored tree has {self.tree.size} records, the segments {frontier.size}"
            )
        for i, cp in enumerate(checkpoints, start=1):
            self._check_root(cp, f"checkpoint {i}", frontier.size)
        self._consistency(checkpoints)
        local = {cp.line() for cp in checkpoints}
        for name, line in witnessed:
            wcp = line.checkpoint
            if wcp is None:
                self.find("witness.unreadable", f"witness {name} line {line.number}: {line.error}")
                continue
            key = self.trusted.get(wcp.key)
            if key is None or not wcp.signature_ok(key):
                self.find(
                    "witness.signature",
                    f"witness {name} line {line.number} is not validly signed by a trusted key",
                )
                continue
            if wcp.line() not in local:
                self._check_root(
                    wcp,
                    f"witness {name} checkpoint (size {wcp.size}, line {line.number})",
                    frontier.size,
                    missing_locally=True,
                )
        return self.result

    def _frontier_before(self, checkpoints: list[Checkpoint]) -> Frontier:
        assert self.since_us is not None
        before = [cp for cp in checkpoints if cp.time < self.since_us]
        if not before or self.tree is None:
            return Frontier()
        anchor = before[-1]
        f = _frontier_from_tree(self.tree, anchor.size)
        if f.root().hex() != anchor.root:
            self.find(
                "tree.anchor",
                f"the stored tree does not match checkpoint size {anchor.size}; verify without --since",
                seq=anchor.size,
            )
            return Frontier()
        self.roots[anchor.size] = bytes.fromhex(anchor.root)
        return f

    def _check_root(
        self, cp: Checkpoint, label: str, journal_size: int, missing_locally: bool = False
    ) -> None:
        if cp.size > journal_size:
            self.find(
                "journal.truncated",
                f"{label}, signed {_iso(cp.time)}, covers {cp.size} records but the "
                f"journal ends at seq {journal_size}: records were removed from the end, or the data "
                "directory was rolled back",
                seq=journal_size + 1,
            )
            return
        root = self.roots.get(cp.size)
        if root is None:
            return  # before --since
        if root.hex() != cp.root:
            self.find(
                "checkpoint.root",
                f"{label} does not match the journal: the first {cp.size} records "
                "are not the ones that were signed",
                seq=cp.size,
            )
        elif missing_locally:
            self.find("checkpoint.missing", f"{label} is at the witness but not in the local checkpoint log")

    def _consistency(self, checkpoints: list[Checkpoint]) -> None:
        if self.tree is None:
            return
        for a, b in itertools.pairwise(checkpoints):
            if b.size > self.tree.size or a.size > b.size:
                continue
            try:
                proof = self.tree.consistency_proof(a.size, b.size)
            except IndexError as exc:
                self.find("tree.proof", f"no consistency proof from {a.size} to {b.size}: {exc}")
                continue
            if not verify_consistency(a.size, b.size, bytes.fromhex(a.root), bytes.fromhex(b.root), proof):
                self.find(
                    "checkpoint.consistency",
                    f"checkpoints of size {a.size} and {b.size} are not "
                    "consistent: the log was rewritten between them",
                    seq=a.size + 1,
                )


def _frontier_from_tree(tree: TreeStore, size: int) -> Frontier:
    nodes = []
    start = 0
    for height in range(size.bit_length() - 1, -1, -1):
        if size >> height & 1:
            nodes.append(tree.node(height, start >> height))
            start += 1 << height
    return Frontier(size, nodes)


def _int_at(data: bytes, pos: int) -> int | None:
    end = pos
    n = len(data)
    while end < n and 48 <= data[end] <= 57:
        end += 1
    return int(data[pos:end]) if end > pos else None


def _iso(us: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(us / 1e6))


def verify_journal(
    journal_dir: Path,
    trusted: dict[str, Ed25519PublicKey],
    witnesses: Iterable[Witness] = (),
    tenants: Iterable[str] | None = None,
    since_us: int | None = None,
    progress: ProgressFn | None = None,
) -> VerifyReport:
    started = time.monotonic()
    report = VerifyReport()
    wanted = set(tenants) if tenants is not None else None
    done = 0

    def tick(n: int) -> None:
        nonlocal done
        done += n
        if progress:
            progress(done)

    for tenant_dir in sorted(p for p in journal_dir.iterdir() if p.is_dir()) if journal_dir.exists() else []:
        if wanted is not None and tenant_dir.name not in wanted:
            continue
        verifier = _TenantVerifier(tenant_dir, trusted, list(witnesses), since_us, tick)
        report.tenants.append(verifier.run())
    if wanted:
        for missing in sorted(wanted - {t.tenant for t in report.tenants}):
            report.tenants.append(TenantResult(missing))
    report.seconds = time.monotonic() - started
    return report


def decode_b64(text: str) -> bytes:
    return base64.b64decode(text)
