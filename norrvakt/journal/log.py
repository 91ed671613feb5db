"""The append-only, per-tenant journal: the source of truth for every event.

Layout: ``<dir>/<tenant>/<first_seq:020d>.seg``. A segment is a sequence of frames::

    u32 big-endian length | u32 big-endian CRC-32 of the payload | payload (canonical event bytes)

Seqs are gapless per tenant and implicit: frame *i* of a segment named *s* holds seq *s + i*
(the payload repeats it, and verification checks that they agree). A segment is closed once it
exceeds ``segment_bytes``; the next one is named after its first seq.

Appends happen in two steps so many records share one fsync (group commit): :meth:`append`
assigns seqs and serializes in the caller's thread; :meth:`commit` writes and fsyncs everything
appended so far, typically from a worker thread while new appends accumulate. Only committed
records are acknowledged to senders and only committed records are visible to readers.

On open, a frame torn by a crash (shorter than its header says, or failing its CRC at the very
end of the last segment) is cut off: it was never committed, so no sender was acknowledged.
"""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import struct
import threading
import zlib
from bisect import bisect_left
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from itertools import accumulate
from pathlib import Path

from norrvakt.event import Event, canonical_bytes
from norrvakt.journal.merkle import EMPTY_ROOT, TreeStore, leaf_hash

log = logging.getLogger(__name__)

FRAME_HEADER = struct.Struct(">II")
SEGMENT_SUFFIX = ".seg"
MAX_FRAME_BYTES = 64 * 1024 * 1024
TREE_DIR = "tree"
_sha256 = hashlib.sha256


class JournalError(Exception):
    """The journal cannot be read or written as expected."""


class JournalWriteError(JournalError):
    """A commit failed and was undone: none of its records is in the journal."""


@dataclass(frozen=True, slots=True)
class JournalConfig:
    """Where and how the journal is written.

    ``directory``: root of the per-tenant folders. ``segment_bytes``: size at which a segment
    is closed. ``fsync``: make each commit durable before returning (turn off only for
    benchmarks — acknowledged records then survive a process crash but not a power loss).
    """

    directory: Path
    segment_bytes: int = 64 * 1024 * 1024
    fsync: bool = True
    merkle: bool = True  # off only to measure the cost of the tree (nothing is provable then)

    def build(self) -> Journal:
        return Journal(self)


@dataclass(slots=True)
class _TenantLog:
    directory: Path
    segments: list[int] = field(default_factory=list)  # first seqs, ascending
    next_seq: int = 1  # next seq to assign
    committed_seq: int = 0  # highest durable seq
    current_size: int = 0  # bytes in the last segment
    pending: list[bytes] = field(default_factory=list)  # framed, not yet written
    fh: object | None = None  # open append handle of the last segment
    tree: TreeStore | None = None  # the Merkle tree over every record ever committed


@dataclass(frozen=True, slots=True)
class _Mark:
    """Where a tenant's log stood before a commit, to cut it back to if the commit fails."""

    committed_seq: int
    current_size: int
    segments: tuple[int, ...]
    tree_size: int

    @classmethod
    def of(cls, tlog: _TenantLog) -> _Mark:
        return cls(
            tlog.committed_seq,
            tlog.current_size,
            tuple(tlog.segments),
            tlog.tree.size if tlog.tree is not None else 0,
        )

    def restore(self, tlog: _TenantLog, *, fsync: bool) -> None:
        if tlog.fh is not None:
            try:
                tlog.fh.close()  # type: ignore[attr-defined]
            except OSError:
                pass  # its unwritten buffer is part of what is being undone
            tlog.fh = None
        for first in tlog.segments:
            if first not in self.segments:  # opened by the failed commit
                (tlog.directory / segment_name(first)).unlink(missing_ok=True)
        if self.segments:
            path = tlog.directory / segment_name(self.segments[-1])
            with open(path, "r+b") as fh:
                fh.truncate(self.current_size)
                if fsync:
                    os.fsync(fh.fileno())
        tlog.segments = list(self.segments)
        tlog.current_size = self.current_size
        tlog.committed_seq = self.committed_seq
        if tlog.tree is not None and tlog.tree.size != self.tree_size:
            tlog.tree.roll_back(self.tree_size)


def is_folder_name(name: str) -> bool:
    """A tenant id that names one folder directly under the journal (never ``..`` or a path)."""
    return bool(name) and name not in {".", ".."} and not any(c in name for c in "/\\\0") and len(name) <= 128


def segment_name(first_seq: int) -> str:
    return f"{first_seq:020d}{SEGMENT_SUFFIX}"


def frame(payload: bytes) -> bytes:
    return FRAME_HEADER.pack(len(payload), zlib.crc32(payload)) + payload


class Journal:
    """Per-tenant append-only logs with group commit."""

    def __init__(self, config: JournalConfig, *, read_only: bool = False) -> None:
        """``read_only``: change nothing on disk — no crash recovery, no tree repair (for
        verification, which must see the files exactly as they are)."""
        self.config = config
        self.read_only = read_only
        self.root = Path(config.directory)
        if not read_only:
            self.root.mkdir(parents=True, exist_ok=True)
        self._tenants: dict[str, _TenantLog] = {}
        self._write_lock = threading.Lock()  # commit() may be called from worker threads
        self._unrepaired: dict[str, _Mark] = {}  # a failed commit not yet cut back (see probe)
        self._broken = ""
        for path in sorted(self.root.iterdir()) if self.root.exists() else []:
            if path.is_dir():
                if path.name == TREE_DIR and (path / "level-00.bin").exists():
                    # An older version wrote records of senders mapped to no tenant into the root
                    # itself (tenant ""); their tree is not a tenant. `norrvakt verify` lists them.
                    log.critical(
                        "journal %s holds records of an unnamed tenant in its root folder (written by an "
                        "older version); they are kept but not read as a tenant",
                        self.root,
                    )
                    continue
                self._tenants[path.name] = self._open_tenant(path)
        if not read_only and config.merkle:
            for tlog in self._tenants.values():
                self._sync_tree(tlog)

    # -- opening and recovery ------------------------------------------------------------

    def _open_tenant(self, directory: Path) -> _TenantLog:
        seg_firsts = sorted(int(p.stem) for p in directory.glob(f"*{SEGMENT_SUFFIX}") if p.stem.isdigit())
        tlog = _TenantLog(
            directory=directory,
            segments=seg_firsts,
            tree=TreeStore(directory / TREE_DIR, reader=self.read_only),
        )
        if not seg_firsts:
            # Nothing written yet, or every segment disposed of: the tree still counts them.
            tlog.next_seq = tlog.tree.size + 1 if tlog.tree else 1
            tlog.committed_seq = tlog.next_seq - 1
            return tlog
        last = seg_firsts[-1]
        path = directory / segment_name(last)
        count, good_end, size = _scan_segment_tail(path)
        if good_end < size and not self.read_only:
            log.warning(
                "journal %s: cutting %d bytes of an uncommitted torn frame at offset %d (crash recovery)",
                path,
                size - good_end,
                good_end,
            )
            with open(path, "r+b") as fh:
                fh.truncate(good_end)
                os.fsync(fh.fileno())
        tlog.next_seq = last + count
        tlog.committed_seq = tlog.next_seq - 1
        tlog.current_size = good_end
        return tlog

    def _sync_tree(self, tlog: _TenantLog) -> None:
        """Bring the stored tree to exactly the committed records (it is derived data)."""
        tree = tlog.tree
        assert tree is not None
        committed = tlog.committed_seq
        if tree.size > committed:
            log.critical(
                "journal %s: the Merkle tree has %d records but the segments end at seq %d — records were "
                "removed from the journal; cutting the tree back (run `norrvakt verify`: checkpoints and "
                "witnesses still show the larger size)",
                tlog.directory,
                tree.size,
                committed,
            )
            tree.truncate(committed)
        elif tree.size < committed:
            # Leaves written after the last tree flush (a crash in between): hash them again.
            tenant = tlog.directory.name
            missing = [leaf_hash(payload) for _seq, payload in self.read(tenant, tree.size + 1, committed)]
            tree.append(missing)
            tree.flush()

    def _tenant(self, tenant: str) -> _TenantLog:
        tlog = self._tenants.get(tenant)
        if tlog is None:
            if not is_folder_name(tenant):
                # The tenant names a folder: "" would be the root itself, "../x" another place.
                raise JournalError(f"refusing to journal records for tenant id {tenant!r}")
            directory = self.root / tenant
            directory.mkdir(parents=True, exist_ok=True)
            _fsync_dir(self.root)
            tlog = _TenantLog(
                directory=directory, tree=TreeStore(directory / TREE_DIR, reader=self.read_only)
            )
            self._tenants[tenant] = tlog
        return tlog

    # -- writing -------------------------------------------------------------------------

    def append(self, events: Sequence[Event]) -> None:
        """Assign seqs and queue the canonical bytes; durable only after :meth:`commit`.

        All or nothing: if an event cannot be put in canonical form, the error is raised and no
        seq is given out. Not thread-safe against itself: call from one thread (the event loop)."""
        tenants = self._tenants
        names = {e.tenant for e in events}
        for name in names - tenants.keys():
            self._tenant(name)  # a bad tenant id raises before any seq is given out
        # Frames are made here, not at commit: a frame is a compact copy and orjson's own buffer
        # is freed at once. Queuing orjson's buffers instead made the heap grow and shrink with
        # every batch (a page fault every other record, about 1 µs each).
        framed: dict[str, list[bytes]] = {name: [] for name in names}
        if len(names) == 1:  # the usual batch: one sender's records, one tenant
            (name,) = names
            add = framed[name].append
            for seq, event in enumerate(events, tenants[name].next_seq):
                event.seq = seq  # the seq is part of the bytes: set it first
                add(frame(canonical_bytes(event)))
        else:
            next_seq = {name: tenants[name].next_seq for name in names}
            for event in events:
                name = event.tenant
                event.seq = next_seq[name]
                next_seq[name] += 1
                framed[name].append(frame(canonical_bytes(event)))
        for name, frames in framed.items():  # nothing raises past this point
            tlog = tenants[name]
            tlog.pending.extend(frames)
            tlog.next_seq += len(frames)

    def take_pending(self) -> dict[str, list[bytes]]:
        """Detach everything appended so far (call in the appending thread): tenant → the
        frames of its records in seq order."""
        batch: dict[str, list[bytes]] = {}
        for name, tlog in self._tenants.items():
            if tlog.pending:
                batch[name], tlog.pending = tlog.pending, []
        return batch

    def commit(self, batch: dict[str, list[bytes]]) -> dict[str, int]:
        """Write and fsync a batch from :meth:`take_pending`; returns tenant → committed seq.

        All or nothing: if any write or fsync fails (disk full, no descriptors, I/O error),
        every tenant of the batch is cut back to where it was, so records whose senders are
        told "try again" never show up later, and :class:`JournalWriteError` is raised. Seqs
        become visible to readers only once the whole batch is durable."""
        committed: dict[str, int] = {}
        with self._write_lock:
            if self._unrepaired:
                raise JournalWriteError(f"an earlier failed commit is not undone yet: {self._broken}")
            marks = {name: _Mark.of(self._tenants[name]) for name in batch}
            try:
                for name, frames in batch.items():
                    committed[name] = self._write_frames(self._tenants[name], frames)
            except Exception as exc:
                self._undo(marks)
                raise JournalWriteError(f"{type(exc).__name__}: {exc}") from exc
            for name, seq in committed.items():
                self._tenants[name].committed_seq = seq
        return committed

    def rewind(self) -> int:
        """Forget every record appended but not committed (call in the appending thread after a
        failed commit, once their senders have been told): seqs continue from the committed
        ones, so the log stays gapless. Returns how many records were forgotten."""
        dropped = 0
        for tlog in self._tenants.values():
            dropped += tlog.next_seq - 1 - tlog.committed_seq
            tlog.pending = []
            tlog.next_seq = tlog.committed_seq + 1
        return dropped

    def probe(self, free_bytes: int = 4 * 1024 * 1024) -> None:
        """Raise OSError unless the journal can take records again: a failed commit is undone,
        ``free_bytes`` are free on its file system, and a file can be created, written and
        fsynced (which needs descriptors and space)."""
        with self._write_lock:
            if self._unrepaired:
                self._undo(self._unrepaired)
                if self._unrepaired:
                    raise OSError(f"the failed commit cannot be undone yet: {self._broken}")
        st = os.statvfs(self.root)
        free = st.f_bavail * st.f_frsize
        if free < free_bytes:
            raise OSError(errno.ENOSPC, f"only {free} bytes free in {self.root} (need {free_bytes})")
        path = self.root / ".write-probe"
        try:
            with open(path, "wb") as fh:
                fh.write(b"\0" * 65536)
                fh.flush()
                os.fsync(fh.fileno())
        finally:
            try:
                path.unlink()
            except FileNotFoundError:
                pass

    def _undo(self, marks: dict[str, _Mark]) -> None:
        """Cut each tenant back to its mark. What cannot be cut back now is kept for
        :meth:`probe` to retry; until then nothing is committed (a half-written tail must not
        be followed by new records)."""
        left: dict[str, _Mark] = {}
        for name, mark in marks.items():
            try:
                mark.restore(self._tenants[name], fsync=self.config.fsync)
            except OSError as exc:
                left[name] = mark
                self._broken = f"tenant {name}: {exc}"
                log.critical("journal %s: cannot undo a failed commit yet: %s", name, exc)
        self._unrepaired = left

    def forget_segments(self, tenant: str, first_seqs: list[int]) -> None:
        """Drop deleted (disposed) segments from the index; the tree keeps their hashes."""
        with self._write_lock:
            tlog = self._tenants[tenant]
            tlog.segments = [s for s in tlog.segments if s not in set(first_seqs)]

    def head(self, tenant: str) -> tuple[int, bytes]:
        """(tree size, root hash) of everything committed — consistent, under the write lock."""
        with self._write_lock:
            tlog = self._tenants.get(tenant)
            if tlog is None or tlog.tree is None:
                return 0, EMPTY_ROOT
            return tlog.tree.size, tlog.tree.root()

    def snapshot(self) -> dict[str, int]:
        """Tenant → committed seq, every tenant at the same instant (under the write lock): the
        cut a verification of the running journal checks up to. Records committed after it are
        not part of that run, so they cannot look like an unsealed or torn tail."""
        with self._write_lock:
            return {name: tlog.committed_seq for name, tlog in self._tenants.items()}

    def tree(self, tenant: str) -> TreeStore | None:
        tlog = self._tenants.get(tenant)
        return tlog.tree if tlog else None

    def append_and_commit(self, events: Sequence[Event]) -> None:
        """Synchronous convenience for imports and tests."""
        self.append(events)
        self.commit(self.take_pending())

    def _write_frames(self, tlog: _TenantLog, frames: list[bytes]) -> int:
        """Write (and fsync) ``frames``; returns the seq of the last one."""
        last = self._write_segments(tlog, frames)
        if not self.config.merkle:
            return last
        # The tree follows the durable segments; it is rebuilt from them if a crash cuts this short.
        assert tlog.tree is not None
        header = FRAME_HEADER.size
        tlog.tree.append([_sha256(b"\x00" + fr[header:]).digest() for fr in frames])
        tlog.tree.flush()
        return last

    def _write_segments(self, tlog: _TenantLog, frames: list[bytes]) -> int:
        """Write ``frames`` with one join per segment they go into: a segment takes frames while
        it is smaller than ``segment_bytes``, so the frame that fills it is its last."""
        limit = self.config.segment_bytes
        first_seq = tlog.committed_seq + 1
        count = len(frames)
        ends = list(accumulate(map(len, frames)))  # bytes of frames 0..i
        start = 0
        while start < count:
            if tlog.fh is None or tlog.current_size >= limit:
                self._roll(tlog, first_seq + start)
            # The first frame from ``start`` on that makes the segment reach the limit.
            reach = limit - tlog.current_size + (ends[start - 1] if start else 0)
            end = min(bisect_left(ends, reach, lo=start) + 1, count)
            data = b"".join(frames[start:end])
            tlog.current_size += len(data)
            self._flush(tlog, data)
            start = end
        return first_seq + count - 1

    def _flush(self, tlog: _TenantLog, data: bytes) -> None:
        if not data or tlog.fh is None:
            return
        fh = tlog.fh
        fh.write(data)  # type: ignore[attr-defined]
        fh.flush()  # type: ignore[attr-defined]
        if self.config.fsync:
            os.fsync(fh.fileno())  # type: ignore[attr-defined]

    def _roll(self, tlog: _TenantLog, first_seq: int) -> None:
        if tlog.fh is not None and tlog.current_size < self.config.segment_bytes:
            return
        if tlog.fh is not None:
            tlog.fh.close()  # type: ignore[attr-defined]
            tlog.fh = None
        if tlog.segments and tlog.current_size < self.config.segment_bytes:
            # Reopen the last, not yet full segment (after a restart).
            path = tlog.directory / segment_name(tlog.segments[-1])
        else:
            path = tlog.directory / segment_name(first_seq)
            tlog.segments.append(first_seq)
            tlog.current_size = 0
            path.touch()
            _fsync_dir(tlog.directory)
        tlog.fh = open(path, "ab")  # noqa: SIM115 - kept open across commits

    def close(self) -> None:
        with self._write_lock:
            for tlog in self._tenants.values():
                if tlog.fh is not None:
                    tlog.fh.close()  # type: ignore[attr-defined]
                    tlog.fh = None
                if tlog.tree is not None:
                    tlog.tree.close()

    # -- reading -------------------------------------------------------------------------

    def tenants(self) -> list[str]:
        return sorted(self._tenants)

    def committed_seq(self, tenant: str) -> int:
        tlog = self._tenants.get(tenant)
        return tlog.committed_seq if tlog else 0

    def segments(self, tenant: str) -> list[tuple[int, Path]]:
        tlog = self._tenants.get(tenant)
        if tlog is None:
            return []
        return [(s, tlog.directory / segment_name(s)) for s in tlog.segments]

    def read(self, tenant: str, from_seq: int = 1, to_seq: int | None = None) -> Iterator[tuple[int, bytes]]:
        """(seq, canonical bytes) of committed records from ``from_seq`` to ``to_seq`` inclusive."""
        last = self.committed_seq(tenant) if to_seq is None else min(to_seq, self.committed_seq(tenant))
        cursor = JournalCursor(self, tenant, from_seq)
        while cursor.next_seq <= last:
            got = cursor.read_batch(min(10_000, last - cursor.next_seq + 1))
            if not got:
                return
            yield from got


class JournalCursor:
    """Sequential reader of one tenant's committed records, resumable across calls."""

    def __init__(self, journal: Journal, tenant: str, from_seq: int = 1) -> None:
        self.journal = journal
        self.tenant = tenant
        self.next_seq = max(1, from_seq)
        self._path: Path | None = None
        self._seg_first = 0
        self._offset = 0
        self._positioned = False

    def _position(self) -> bool:
        segs = self.journal.segments(self.tenant)
        candidates = [s for s in segs if s[0] <= self.next_seq]
        if not candidates:
            if segs and segs[0][0] > self.next_seq:
                # Records before the first segment were disposed of; continue at the first kept one.
                self.next_seq = segs[0][0]
                candidates = [segs[0]]
            else:
                return False
        self._seg_first, self._path = candidates[-1]
        self._offset = 0
        with open(self._path, "rb") as fh:
            skip = self.next_seq - self._seg_first
            for _ in range(skip):
                header = fh.read(FRAME_HEADER.size)
                if len(header) < FRAME_HEADER.size:
                    return False
                length, _crc = FRAME_HEADER.unpack(header)
                fh.seek(length, os.SEEK_CUR)
            self._offset = fh.tell()
        self._positioned = True
        return True

    def read_batch(self, max_records: int) -> list[tuple[int, bytes]]:
        """Up to ``max_records`` committed records from the cursor on (fewer at the end)."""
        committed = self.journal.committed_seq(self.tenant)
        out: list[tuple[int, bytes]] = []
        while len(out) < max_records and self.next_seq <= committed:
            if not self._positioned and not self._position():
                break
            assert self._path is not None
            want = min(max_records - len(out), committed - self.next_seq + 1)
            got = self._read_from_segment(want)
            out.extend(got)
            if len(got) < want:
                # End of this segment: move to the next one if there is one.
                nxt = [s for s in self.journal.segments(self.tenant) if s[0] > self._seg_first]
                if not nxt:
                    break
                self._seg_first, self._path = nxt[0]
                self._offset = 0
        return out

    def _read_from_segment(self, want: int) -> list[tuple[int, bytes]]:
        assert self._path is not None
        out: list[tuple[int, bytes]] = []
        with open(self._path, "rb") as fh:
            fh.seek(self._offset)
            data = fh.read(min(MAX_FRAME_BYTES, max(1 << 20, want * 2048)))
        pos = 0
        while len(out) < want and pos + FRAME_HEADER.size <= len(data):
            length, crc = FRAME_HEADER.unpack_from(data, pos)
            end = pos + FRAME_HEADER.size + length
            if end > len(data):
                if pos == 0:  # a single frame larger than the read window
                    with open(self._path, "rb") as fh:
                        fh.seek(self._offset)
                        data = fh.read(end)
                    continue
                break
            payload = data[pos + FRAME_HEADER.size : end]
            if zlib.crc32(payload) != crc:
                raise JournalError(
                    f"journal {self._path}: CRC mismatch in frame for seq {self.next_seq} at offset "
                    f"{self._offset + pos} (the segment was altered or damaged)"
                )
            out.append((self.next_seq, payload))
            self.next_seq += 1
            pos = end
        self._offset += pos
        return out


def _scan_segment_tail(path: Path) -> tuple[int, int, int]:
    """(complete frames, offset after the last good frame, file size) of a segment.

    A crash can leave the last frame short or, on some file systems, zero-filled; such a tail
    was never committed and is reported for cutting. A CRC mismatch before the tail is not a
    crash artefact: it is counted as a frame (so seqs stay aligned) and logged; `norrvakt
    verify` reports it as tampering or damage."""
    size = path.stat().st_size
    count = 0
    pos = 0
    with open(path, "rb") as fh:
        while True:
            header = fh.read(FRAME_HEADER.size)
            if len(header) < FRAME_HEADER.size:
                break
            length, crc = FRAME_HEADER.unpack(header)
            end = pos + FRAME_HEADER.size + length
            if length == 0 or end > size:
                break
            payload = fh.read(length)
            if zlib.crc32(payload) != crc:
                if end == size:
                    break
                log.error("journal %s: CRC mismatch in frame at offset %d (damaged or altered)", path, pos)
            pos = end
            count += 1
    return count, pos, size


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
