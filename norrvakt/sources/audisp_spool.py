"""Records acknowledged to audisp-remote before their event is complete.

audisp-remote's managed format sends one record and waits for its acknowledgement before the
next, so the records of an event can only come together after the earlier ones were
acknowledged — and nothing may be acknowledged before it is durable. Each record of an open
event is therefore appended and fsynced to a spool file of that event first
(``<spool_dir>/<source>.<pid>.<n>.spool``: a JSON header line with peer, tenant and receive
time, then the records), acknowledged, and the file is removed once the assembled event is
journaled. Files left by a process that died are claimed (renamed to the claimer's pid) and
journaled by the next listener of the same source that starts; a record cut off in the middle
(never acknowledged: it had not been fsynced) is dropped, audisp-remote sends it again.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import orjson

log = logging.getLogger(__name__)

_counter = itertools.count(1)


@dataclass(frozen=True, slots=True)
class Spooled:
    path: Path
    peer: str
    tenant: str
    received_at: int
    lines: list[bytes]


def new_path(spool_dir: Path, source_id: str) -> Path:
    return spool_dir / f"{source_id}.{os.getpid()}.{next(_counter)}.spool"


def append(path: Path, line: bytes, header: dict[str, object] | None) -> None:
    """Append ``line`` (and, for a new file, the header first) and fsync; blocking."""
    new = header is not None
    if new:
        path.parent.mkdir(parents=True, exist_ok=True)
    data = (orjson.dumps(header) + b"\n" if header is not None else b"") + line + b"\n"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    if new:  # the file's name must survive a crash too
        dfd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)


def remove(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def claim_orphans(spool_dir: Path, source_id: str) -> list[Spooled]:
    """The spool files of ``source_id`` whose process is gone, renamed to this process (one
    claimer wins when several start at once) and read."""
    out: list[Spooled] = []
    if not spool_dir.is_dir():
        return out
    me = os.getpid()
    for path in sorted(spool_dir.glob(f"{source_id}.*.spool")):
        parts = path.name[len(source_id) + 1 :].split(".")
        if len(parts) != 3 or not parts[0].isdigit():
            continue
        pid = int(parts[0])
        if pid == me or _alive(pid):
            continue
        mine = new_path(spool_dir, source_id)
        try:
            os.rename(path, mine)
        except FileNotFoundError:
            continue  # another listener claimed it first
        spooled = read(mine)
        if spooled is None:
            remove(mine)
        else:
            out.append(spooled)
    return out


def read(path: Path) -> Spooled | None:
    """A spool file's records (None when it holds none); a last line without its LF was
    never acknowledged and is left out."""
    data = path.read_bytes()
    lines = data.split(b"\n")
    lines.pop()  # after the last LF: empty, or a torn record
    if not lines:
        return None
    try:
        header = orjson.loads(lines[0])
        peer, tenant, received_at = str(header["peer"]), str(header["tenant"]), int(header["received_at"])
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        log.error("%s: spool file header unreadable (%s); its records are kept without a tenant", path, exc)
        peer, tenant, received_at = "unknown:0", "", 0
        lines.insert(0, b"")
    records = [ln for ln in lines[1:] if ln]
    if not records:
        return None
    return Spooled(path, peer, tenant, received_at, records)
