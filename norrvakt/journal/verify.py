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
   journal holds — a truncated tail or a rolled-back data directory shows up here; a witness
   that cannot be read, holds nothing or is behind the local log is a finding too
   (:mod:`norrvakt.journal.witness_check`).

Which tenants: every folder under the journal, every tenant a witness holds checkpoints of,
and whatever the caller expects (the configured tenants, tenants with rows in the store, the
system tenant). A tenant that is known but has no folder is checked all the same — a deleted
journal is a finding ("journal.missing"), not a tenant that is left out.

A running journal is verified against a snapshot (:meth:`Checkpointer.snapshot`): the records
committed and the checkpoint lines written at one instant. Records and checkpoints added
while the run goes on are not part of it, so normal ingest never looks like a torn tail.

Every problem is a :class:`Finding` naming tenant, seq, segment and offset where they apply.
This module needs no store and no running server (``norrvakt verify`` and the offline
verifier of an archive package use it as is).
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import time
import zlib
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from norrvakt.journal.checkpoint import FILE_NAME, GENESIS, Checkpoint, CheckpointLine, parse_line
from norrvakt.journal.log import FRAME_HEADER, SEGMENT_SUFFIX, TREE_DIR
from norrvakt.journal.merkle import EMPTY_ROOT, HASH_SIZE, Frontier, TreeStore, verify_consistency
from norrvakt.journal.report import WITNESSES, Finding, TenantResult, VerifyReport, iso
from norrvakt.journal.retention import Disposal, read_disposals
from norrvakt.journal.witness import Witness
from norrvakt.journal.witness_check import WitnessView, known_tenants, lag_findings, read_witnesses

__all__ = ["Finding", "TenantResult", "VerifyReport", "verify_journal"]

log = logging.getLogger(__name__)

_sha256 = hashlib.sha256
_SEQ_KEY = b',"seq":'
MAX_RECORD_FINDINGS = 20

ProgressFn = Callable[[int], None]  # records verified so far (all tenants)
# Tenant → (committed records, bytes of the local checkpoint log) at the start of the run.
Snapshot = Mapping[str, tuple[int, int]]
DEFAULT_WITNESS_LAG_S = 120.0


class _TenantVerifier:
    def __init__(
        self,
        tenant: str,
        tenant_dir: Path,
        trusted: dict[str, Ed25519PublicKey],
        witnesses: list[Witness],
        since_us: int | None,
        progress: Callable[[int], None],
        snapshot: tuple[int, int] | None = None,
        witness_lag_s: float = DEFAULT_WITNESS_LAG_S,
    ) -> None:
        self.dir = tenant_dir
        self.tenant = tenant
        self.trusted = trusted
        self.witnesses = witnesses
        self.since_us = since_us
        self.progress = progress
        # Without a snapshot (the journal is not being written): everything on disk.
        self.limit: int | None = snapshot[0] if snapshot is not None else None
        self.checkpoint_bytes: int | None = snapshot[1] if snapshot is not None else None
        self.witness_lag_us = int(witness_lag_s * 1e6)
        self.result = TenantResult(tenant)
        self.tree: TreeStore | None = None
        self.roots: dict[int, bytes] = {0: EMPTY_ROOT}  # recomputed roots at sizes of interest
        self._stored_leaves: tuple[int, bytes] = (0, b"")  # (first index, buffer) of level-00
        self._record_problems = 0

    def _open_tree(self) -> None:
        path = self.dir / TREE_DIR
        if not path.exists():
            return
        if not path.is_dir():
            self.find("tree.unreadable", f"{TREE_DIR} is not a folder; the stored tree cannot be compared")
            return
        try:
            self.tree = TreeStore(path, reader=True)  # the journal may be writing beside us
        except (OSError, IndexError) as exc:
            self.find("tree.unreadable", f"the stored tree cannot be read: {exc}")

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
        for line in self._local_lines():
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

    def _local_lines(self) -> list[CheckpointLine]:
        """The local checkpoint lines — with a snapshot, only those written before it."""
        path = self.dir / FILE_NAME
        try:
            with open(path, "rb") as fh:
                data = fh.read() if self.checkpoint_bytes is None else fh.read(self.checkpoint_bytes)
        except FileNotFoundError:
            return []
        except OSError as exc:
            self.find("checkpoint.unreadable", f"{FILE_NAME} cannot be read: {exc}")
            return []
        return [parse_line(n, raw) for n, raw in enumerate(data.split(b"\n"), start=1) if raw]

    def _local_lines_now(self) -> set[bytes]:
        """The local checkpoint lines written since the snapshot, read after the witnesses (a
        line reaches a witness only once it is in the local log)."""
        try:
            with open(self.dir / FILE_NAME, "rb") as fh:
                fh.seek(self.checkpoint_bytes or 0)
                return {line for line in fh.read().split(b"\n") if line}
        except OSError:
            return set()

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
        segments = self._segment_files()
        limit = self.limit
        expected = 1
        for idx, (first, path) in enumerate(segments):
            if limit is not None and first > limit:
                break  # written after the snapshot
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
        if limit is not None:
            tree_size = min(tree_size, limit)
        if tree_size >= expected and any(
            d.first_seq <= expected and d.last_seq >= tree_size for d in disposals
        ):
            self._fill_gap(frontier, max(expected, skip_until + 1), tree_size, disposals, sizes, "(end)")
        return frontier

    def _segment_files(self) -> list[tuple[int, Path]]:
        """The segment files, by first seq. Anything else named ``*.seg`` is a finding — it was
        put there by hand — and is never read as a segment."""
        found = []
        for p in self.dir.glob(f"*{SEGMENT_SUFFIX}"):
            if not (p.stem.isdigit() and len(p.stem) == 20):
                self.find(
                    "segment.name",
                    f"{p.name} is not a segment name (20 digits + {SEGMENT_SUFFIX}): not written by Norrvakt",
                    segment=p.name,
                )
            elif not p.is_file() or p.is_symlink():
                kind = "a folder" if p.is_dir() else "a link" if p.is_symlink() else "not a regular file"
                self.find(
                    "segment.notfile",
                    f"{p.name} is {kind}, not a segment file: not written by Norrvakt",
                    segment=p.name,
                )
            else:
                found.append((int(p.stem), p))
        return sorted(found)

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
        try:
            data = path.read_bytes()
        except OSError as exc:
            self.find("segment.unreadable", f"the segment cannot be read: {exc}", seq=first, segment=name)
            return first
        n = len(data)
        pos = 0
        header = FRAME_HEADER.size
        unpack = FRAME_HEADER.unpack_from
        crc32 = zlib.crc32
        done = 0
        last = self.limit if self.limit is not None else 1 << 62
        while pos < n and expected <= last:
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
        views = read_witnesses(self.witnesses, self.tenant)
        if not self.dir.is_dir() or not self._holds_records():
            self.result.journal = False
            if self._missing(views):
                return self.result
        self._open_tree()
        checkpoints = self.checkpoints()
        local_now = self._local_lines_now() if self.checkpoint_bytes is not None else set()
        witnessed = [(v.name, line) for v in views for line in v.lines or []]
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
        self._check_sizes(frontier.size)
        for i, cp in enumerate(checkpoints, start=1):
            self._check_root(cp, f"checkpoint {i}", frontier.size)
        self._consistency(checkpoints)
        self.result.findings += lag_findings(self.tenant, views, checkpoints, self.witness_lag_us)
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
                if line.raw in local_now:
                    continue  # signed after the snapshot: the next run checks it
                self._check_root(
                    wcp,
                    f"witness {name} checkpoint (size {wcp.size}, line {line.number})",
                    frontier.size,
                    missing_locally=True,
                )
        return self.result

    def _check_sizes(self, walked: int) -> None:
        """The segments, the stored tree and (running) the committed count agree."""
        if self.limit is None:
            if self.tree is not None and self.tree.size != walked and not self.result.findings:
                self.find("tree.size", f"the stored tree has {self.tree.size} records, the segments {walked}")
            return
        if walked < self.limit and not self.result.findings:
            self.find(
                "journal.truncated",
                f"the running journal had committed {self.limit} records when this run began, but the "
                f"segments hold {walked}: records were removed while the server runs",
                seq=walked + 1,
            )
        elif self.tree is not None and self.tree.size < walked and not self.result.findings:
            self.find("tree.size", f"the stored tree has {self.tree.size} records, the segments {walked}")

    def _holds_records(self) -> bool:
        """Segments or a stored tree: a journal (the checkpointer alone writes only its log)."""
        return (self.dir / TREE_DIR).exists() or any(self.dir.glob(f"*{SEGMENT_SUFFIX}"))

    def _missing(self, views: list[WitnessView]) -> bool:
        """A tenant that is known — configured, witnessed, journaled by the running server — but
        has no journal: no folder, or one without segments and tree. With anything to show it
        once had records (a folder gone is shown by any witnessed checkpoint), that is a
        finding (True); otherwise (a tenant that never received anything) False."""
        folder = self.dir.is_dir()
        where = f"no segments in {self.dir}" if folder else f"no folder {self.dir}"
        evidence = []
        for view in views:
            newest = view.newest()
            if newest is not None and (newest.size or not folder):
                evidence.append(
                    f"{newest.size} records witnessed by {view.name} ({len(view.lines or [])} "
                    f"checkpoints, the newest signed {iso(newest.time)})"
                )
        local = [line.checkpoint for line in self._local_lines() if line.checkpoint is not None]
        if local and local[-1].size:
            evidence.append(f"{local[-1].size} records sealed by its local checkpoint log")
        if self.limit:
            evidence.append(f"{self.limit} records committed by the running server")
        if not evidence:
            return False
        self.result.witnessed = sum(len(v.lines or []) for v in views)
        for what in evidence:
            self.find(
                "journal.missing", f"the journal of tenant {self.tenant} is missing ({where}): {what}", seq=1
            )
        return True

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
                f"{label}, signed {iso(cp.time)}, covers {cp.size} records but the "
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


def verify_journal(
    journal_dir: Path,
    trusted: dict[str, Ed25519PublicKey],
    witnesses: Iterable[Witness] = (),
    tenants: Iterable[str] | None = None,
    since_us: int | None = None,
    progress: ProgressFn | None = None,
    *,
    expected: Iterable[str] = (),
    snapshot: Snapshot | None = None,
    witness_lag_s: float = DEFAULT_WITNESS_LAG_S,
) -> VerifyReport:
    """Verify ``tenants`` — or, without them, every tenant the journal's folders, the
    witnesses, the ``snapshot`` and ``expected`` name. ``snapshot``: the cut of a running
    journal (see module doc); ``witness_lag_s``: how far behind the local log a witness may be
    (one checkpoint interval and some slack)."""
    started = time.monotonic()
    report = VerifyReport()
    witnesses = list(witnesses)
    done = 0

    def tick(n: int) -> None:
        nonlocal done
        done += n
        if progress:
            progress(done)

    if tenants is not None:
        names = set(tenants)
    else:
        names = set(expected) | set(snapshot or {}) | set(_folders(journal_dir, report))
        listed, findings, warnings = known_tenants(witnesses)
        names |= listed
        if findings:
            report.result(WITNESSES).findings.extend(findings)
        report.warnings += warnings
    for tenant in sorted(names):
        limits = None if snapshot is None else snapshot.get(tenant, (0, 0))
        verifier = _TenantVerifier(
            tenant, journal_dir / tenant, trusted, witnesses, since_us, tick, limits, witness_lag_s
        )
        try:
            report.tenants.append(verifier.run())
        except Exception as exc:  # one tenant that cannot be read must not hide the others
            log.exception("verification of tenant %s could not complete", tenant)
            verifier.find(
                "verify.incomplete", f"verification could not complete: {type(exc).__name__}: {exc}"
            )
            report.tenants.append(verifier.result)
    report.seconds = time.monotonic() - started
    return report


def _folders(journal_dir: Path, report: VerifyReport) -> list[str]:
    """The tenant folders of the journal. Records in the root folder itself (an older version
    wrote senders mapped to no tenant there) are reported, not skipped in silence."""
    if not journal_dir.is_dir():
        return []
    names = []
    for path in sorted(journal_dir.iterdir()):
        if path.name == TREE_DIR and (path / "level-00.bin").exists():
            segments = len(list(journal_dir.glob(f"*{SEGMENT_SUFFIX}")))
            report.warnings.append(
                Finding(
                    "(unnamed)",
                    "journal.unnamed",
                    f"the journal's root folder {journal_dir} holds records of an unnamed tenant "
                    f"({segments} segment files), written by an older version for senders mapped to no "
                    "tenant: they are kept, but not verified or searchable as a tenant",
                )
            )
        elif path.is_dir():
            names.append(path.name)
    return names
