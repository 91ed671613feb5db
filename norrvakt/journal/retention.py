"""Retention without silent deletion: policies, legal holds and signed disposal decisions.

Records are never deleted by a timer. A record becomes *eligible* once it is older than the
retention of its log class (per tenant, e.g. health-record access logs 5 years, others 13
months). Deleting requires a disposal decision — who, when, which range, under which rule —
that is signed with the checkpoint key, kept next to the segments
(``disposals.jsonl``) and journaled as an audit event. A legal hold on a tenant (or a time
range of it) blocks disposal. Only whole, closed segments are deleted; the Merkle tree keeps
the hashes of deleted records, so earlier checkpoints and proofs of later records stay valid,
and verification accepts exactly the gaps a valid disposal record covers.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from norrvakt.event import now_us
from norrvakt.journal.checkpoint import append_line
from norrvakt.journal.keys import verify_signature
from norrvakt.journal.log import FRAME_HEADER, Journal

DISPOSALS_FILE = "disposals.jsonl"
HOLDS_FILE = "holds.jsonl"
DOMAIN = b"norrvakt-disposal-v1\n"
DAY_US = 86_400_000_000


class RetentionError(Exception):
    """A disposal that may not happen (hold, not expired, open segment, bad range)."""


@dataclass(frozen=True)
class RetentionPolicy:
    default_days: int = 395
    tenant_days: dict[str, int] = field(default_factory=dict)  # tenant → default for that tenant
    class_days: dict[str, int] = field(default_factory=dict)  # event.dataset prefix → days

    def days_for(self, tenant: str, dataset: str) -> tuple[int, str]:
        """(days, rule) for a record of ``tenant`` with ``event.dataset`` = ``dataset``."""
        best = ""
        for prefix in self.class_days:
            if dataset.startswith(prefix) and len(prefix) > len(best):
                best = prefix
        if best:
            return self.class_days[best], f"class {best}: {self.class_days[best]} days"
        if tenant in self.tenant_days:
            return self.tenant_days[tenant], f"tenant {tenant}: {self.tenant_days[tenant]} days"
        return self.default_days, f"default: {self.default_days} days"


@dataclass(frozen=True)
class Disposal:
    tenant: str
    first_seq: int
    last_seq: int
    decided_by: str
    decided_at: int
    reason: str
    rule: str
    key: str
    sig: str = ""

    def message(self) -> bytes:
        body = {k: v for k, v in asdict(self).items() if k != "sig"}
        return DOMAIN + json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()

    def signed(self, key: Ed25519PrivateKey) -> Disposal:
        return Disposal(**{**asdict(self), "sig": base64.b64encode(key.sign(self.message())).decode()})

    def signature_ok(self, public: Ed25519PublicKey) -> bool:
        try:
            return verify_signature(public, base64.b64decode(self.sig), self.message())
        except ValueError:
            return False

    def line(self) -> bytes:
        return json.dumps(asdict(self), sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def read_disposals(tenant_dir: Path) -> list[Disposal]:
    path = tenant_dir / DISPOSALS_FILE
    out = []
    if path.exists():
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                out.append(Disposal(**json.loads(line)))
    return sorted(out, key=lambda d: d.first_seq)


@dataclass(frozen=True)
class LegalHold:
    id: str
    tenant: str
    from_us: int | None  # None = from the beginning
    until_us: int | None  # None = open-ended
    reason: str
    placed_by: str
    placed_at: int
    released_at: int | None = None
    released_by: str | None = None

    def covers(self, tenant: str, oldest_us: int, newest_us: int) -> bool:
        if self.released_at is not None or tenant != self.tenant:
            return False
        lo = self.from_us if self.from_us is not None else -(1 << 62)
        hi = self.until_us if self.until_us is not None else 1 << 62
        return oldest_us <= hi and newest_us >= lo


class HoldRegister:
    """Legal holds, append-only: placing and releasing are both lines; the last word counts."""

    def __init__(self, directory: Path) -> None:
        self.path = directory / HOLDS_FILE

    def all(self) -> list[LegalHold]:
        holds: dict[str, LegalHold] = {}
        if self.path.exists():
            for line in self.path.read_text(encoding="utf-8").splitlines():
                if line.strip():
                    hold = LegalHold(**json.loads(line))
                    holds[hold.id] = hold
        return list(holds.values())

    def active(self, tenant: str | None = None) -> list[LegalHold]:
        return [h for h in self.all() if h.released_at is None and (tenant is None or h.tenant == tenant)]

    def place(
        self,
        tenant: str,
        reason: str,
        placed_by: str,
        from_us: int | None = None,
        until_us: int | None = None,
    ) -> LegalHold:
        hold = LegalHold(secrets.token_hex(4), tenant, from_us, until_us, reason, placed_by, now_us())
        append_line(self.path, json.dumps(asdict(hold), sort_keys=True, ensure_ascii=False).encode())
        return hold

    def release(self, hold_id: str, released_by: str) -> LegalHold:
        current = {h.id: h for h in self.all()}.get(hold_id)
        if current is None or current.released_at is not None:
            raise RetentionError(f"no active legal hold {hold_id}")
        released = LegalHold(**{**asdict(current), "released_at": now_us(), "released_by": released_by})
        append_line(self.path, json.dumps(asdict(released), sort_keys=True, ensure_ascii=False).encode())
        return released


@dataclass(frozen=True)
class SegmentStatus:
    tenant: str
    path: Path
    first_seq: int
    last_seq: int
    oldest_us: int  # earliest ingested time in the segment
    newest_us: int
    expires_us: int  # when every record in it is past its retention
    rule: str  # the longest retention that applies to it
    holds: tuple[str, ...]  # ids of legal holds that block it
    open: bool  # the segment still being written

    def eligible(self, now: int) -> bool:
        return not self.open and not self.holds and self.expires_us <= now


def segment_statuses(
    journal: Journal, tenant: str, policy: RetentionPolicy, holds: Iterable[LegalHold]
) -> list[SegmentStatus]:
    """Per segment of ``tenant``: its seq range, age, when it expires, what blocks it."""
    holds = list(holds)
    segments = journal.segments(tenant)
    out = []
    for i, (first, path) in enumerate(segments):
        oldest, newest, expires, rule, count = _scan(path, tenant, policy)
        blocking = tuple(h.id for h in holds if h.covers(tenant, oldest, newest))
        out.append(
            SegmentStatus(
                tenant,
                path,
                first,
                first + count - 1,
                oldest,
                newest,
                expires,
                rule,
                blocking,
                open=i == len(segments) - 1,
            )
        )
    return out


def _scan(path: Path, tenant: str, policy: RetentionPolicy) -> tuple[int, int, int, str, int]:
    data = path.read_bytes()
    pos = 0
    oldest, newest, expires, rule, count = 1 << 62, 0, 0, "", 0
    while pos + FRAME_HEADER.size <= len(data):
        length, _crc = FRAME_HEADER.unpack_from(data, pos)
        doc = json.loads(data[pos + FRAME_HEADER.size : pos + FRAME_HEADER.size + length])
        pos += FRAME_HEADER.size + length
        count += 1
        ingested = int(doc.get("ingested", 0))
        oldest, newest = min(oldest, ingested), max(newest, ingested)
        days, why = policy.days_for(tenant, str(doc.get("ecs", {}).get("event.dataset", "")))
        until = ingested + days * DAY_US
        if until > expires:
            expires, rule = until, why
    return oldest, newest, expires, rule, count


def dispose(
    journal: Journal,
    tenant: str,
    up_to_seq: int,
    *,
    decided_by: str,
    reason: str,
    policy: RetentionPolicy,
    holds: HoldRegister,
    key_id: str,
    key: Ed25519PrivateKey,
    now: int | None = None,
) -> Disposal:
    """Delete the closed segments of ``tenant`` holding seqs ≤ ``up_to_seq``, after recording a
    signed disposal decision. Refuses when any of them is under a legal hold, not yet expired,
    or when ``up_to_seq`` does not end a segment."""
    now = now or now_us()
    statuses = [
        s for s in segment_statuses(journal, tenant, policy, holds.active(tenant)) if s.first_seq <= up_to_seq
    ]
    if not statuses:
        raise RetentionError(f"{tenant} has no segment starting at or before seq {up_to_seq}")
    if statuses[-1].last_seq != up_to_seq:
        raise RetentionError(
            f"seq {up_to_seq} does not end a segment; the nearest segment ends at "
            f"{statuses[-1].last_seq} (only whole segments are disposed of)"
        )
    for s in statuses:
        if s.open:
            raise RetentionError(f"segment {s.path.name} is still being written")
        if s.holds:
            raise RetentionError(
                f"segment {s.path.name} (seq {s.first_seq}..{s.last_seq}) is under legal "
                f"hold {', '.join(s.holds)}"
            )
        if s.expires_us > now:
            raise RetentionError(
                f"segment {s.path.name} (seq {s.first_seq}..{s.last_seq}) is kept until "
                f"{_date(s.expires_us)} ({s.rule})"
            )
    rule = max(statuses, key=lambda s: s.expires_us).rule
    disposal = Disposal(
        tenant, statuses[0].first_seq, up_to_seq, decided_by, now, reason, rule, key_id
    ).signed(key)
    append_line(journal.root / tenant / DISPOSALS_FILE, disposal.line())
    journal.forget_segments(tenant, [s.first_seq for s in statuses])
    for s in statuses:
        os.unlink(s.path)
    return disposal


def _date(us: int) -> str:
    import time

    return time.strftime("%Y-%m-%d", time.gmtime(us / 1e6))
