"""`norrvakt verify`: the journal verified on its own, then the store checked against it.

The journal check lives in :mod:`norrvakt.journal.verify` (it needs nothing but files); the
store check lives here, above both layers, as DESIGN §4 asks: every row in the store must be
a record of the journal, byte for byte once put back in canonical form, and every record
still within the store's retention must have exactly one row.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from norrvakt.event import SYSTEM_TENANT, Event, canonical_bytes, event_from_canonical, now_us
from norrvakt.journal.checkpointer import Checkpointer
from norrvakt.journal.keys import KeyRing, load_public
from norrvakt.journal.log import Journal
from norrvakt.journal.merkle import HASH_SIZE, leaf_hash
from norrvakt.journal.proof import ProofError, make_proof
from norrvakt.journal.retention import read_disposals
from norrvakt.journal.verify import Finding, TenantResult, VerifyReport, verify_journal
from norrvakt.journal.witness import Witness
from norrvakt.store.clickhouse import SELECT_EVENT_COLUMNS, ClickHouseStore, event_from_row
from norrvakt.store.schema import EVENTS_TABLE
from norrvakt.tasks import cancel_and_wait

if TYPE_CHECKING:
    from norrvakt.runtime import Runtime

log = logging.getLogger(__name__)

CHUNK = 50_000
DAY_US = 86_400_000_000


@dataclass
class VerifyOptions:
    tenants: list[str] | None = None
    since_us: int | None = None
    pinned_keys: list[str] | None = None  # public keys (hex or PEM) the operator trusts
    check_store: bool = True


def trusted_keys(
    keys: KeyRing, pinned: Iterable[str] | None
) -> tuple[dict[str, Ed25519PublicKey], list[str]]:
    """The keys checkpoints may be signed with. With ``pinned`` keys, only those and keys
    introduced from them by signed rotations count — the data directory's own key files
    are then not taken on trust."""
    trusted, problems = keys.trusted_keys()
    if pinned:
        from norrvakt.journal.keys import key_id_of, public_raw

        pinned_ids = {key_id_of(public_raw(load_public(p))) for p in pinned}
        untrusted_roots = [k for k in trusted if k in pinned_ids]
        if not untrusted_roots:
            problems.append("none of the pinned public keys is a key of this journal")
        trusted = {
            k: v for k, v in trusted.items() if k in pinned_ids or _introduced_after(keys, k, pinned_ids)
        }
    return trusted, problems


def _introduced_after(keys: KeyRing, key_id: str, roots: set[str]) -> bool:
    import json

    seen = set()
    current = key_id
    while current not in seen:
        seen.add(current)
        try:
            intro = json.loads((keys.directory / f"{current}.intro").read_text())
        except (OSError, ValueError):
            return False
        rotation = intro.get("rotation")
        if not rotation:
            return current in roots
        current = rotation.get("old", "")
        if current in roots:
            return True
    return False


def verify(
    journal: Journal,
    keys: KeyRing,
    witnesses: list[Witness],
    store: ClickHouseStore | None,
    options: VerifyOptions,
    progress: Callable[[int], None] | None = None,
    store_retention_days: int = 0,
    indexed_upto: dict[str, int] | None = None,
) -> VerifyReport:
    """``indexed_upto``: per tenant, the seq up to which the running server has stored
    everything (records journaled after that are still on their way to the store)."""
    trusted, key_problems = trusted_keys(keys, options.pinned_keys)
    report = verify_journal(journal.root, trusted, witnesses, options.tenants, options.since_us, progress)
    if key_problems:
        report.tenants.insert(
            0, TenantResult("(keys)", findings=[Finding("(keys)", "key.trust", p) for p in key_problems])
        )
    if store is not None and options.check_store:
        for result in report.tenants:
            if result.tenant != "(keys)":
                check_store(
                    journal,
                    store,
                    result,
                    store_retention_days,
                    None if indexed_upto is None else indexed_upto.get(result.tenant, 0),
                )
    return report


def check_store(
    journal: Journal,
    store: ClickHouseStore,
    result: TenantResult,
    retention_days: int,
    indexed_upto: int | None,
) -> None:
    """Every row of the tenant equals its journal record; no row is missing, extra or doubled.

    Records past ``indexed_upto`` (or, without a server, past the store's highest seq) are not
    in the store yet and are not expected there."""
    tenant = result.tenant
    tree = journal.tree(tenant)
    journaled = journal.committed_seq(tenant)
    rows = store.query(
        f"SELECT count(), uniqExact(seq), max(seq) FROM {EVENTS_TABLE} WHERE tenant = {{t:String}}",
        {"t": tenant},
    )
    count, unique, max_seq = (int(x) for x in rows[0])
    if count != unique:
        dup = store.query(
            f"SELECT seq FROM {EVENTS_TABLE} WHERE tenant = {{t:String}} GROUP BY seq HAVING count() > 1 "
            "ORDER BY seq LIMIT 1",
            {"t": tenant},
        )
        result.findings.append(
            Finding(
                tenant,
                "store.duplicate",
                f"{count - unique} row(s) stored more than once",
                seq=int(dup[0][0]) if dup else None,
            )
        )
    if max_seq > journaled:
        result.findings.append(
            Finding(
                tenant,
                "store.extra",
                f"the store has rows up to seq {max_seq}, the journal "
                f"ends at {journaled}: rows that were never journaled",
                seq=journaled + 1,
            )
        )
    last = min(journaled, indexed_upto if indexed_upto is not None else max_seq)
    disposed = read_disposals(journal.root / tenant)
    cutoff = now_us() - retention_days * DAY_US if retention_days > 0 else None
    leaves = _LeafReader(tree.directory / "level-00.bin" if tree is not None else None)
    missing_first: int | None = None
    missing_count = 0
    altered = 0
    start = 1
    while start <= last:
        end = min(last, start + CHUNK - 1)
        names, got = store.query_columns(
            f"SELECT {SELECT_EVENT_COLUMNS} FROM {EVENTS_TABLE} "
            "WHERE tenant = {t:String} AND seq BETWEEN {a:UInt64} AND {b:UInt64} ORDER BY seq",
            {"t": tenant, "a": start, "b": end},
        )
        by_seq = {}
        for row in got:
            stored_event = event_from_row(dict(zip(names, row, strict=True)))
            by_seq[stored_event.seq] = stored_event
        for seq in range(start, end + 1):
            event = by_seq.get(seq)
            if event is None:
                if any(d.first_seq <= seq <= d.last_seq for d in disposed):
                    continue
                if cutoff is not None and _ingested(journal, tenant, seq) < cutoff:
                    continue  # expired from the index by its TTL; the journal keeps it
                if missing_first is None:
                    missing_first = seq
                missing_count += 1
                continue
            expected = leaves.get(seq - 1)
            if expected is not None and leaf_hash(canonical_bytes(event)) != expected:
                altered += 1
                if altered <= 20:
                    result.findings.append(
                        Finding(tenant, "store.altered", _diff(journal, tenant, event), seq=seq)
                    )
        start = end + 1
    if altered > 20:
        result.findings.append(
            Finding(tenant, "store.altered", f"{altered - 20} more altered row(s) not listed")
        )
    if missing_count:
        result.findings.append(
            Finding(
                tenant,
                "store.missing",
                f"{missing_count} journaled record(s) have no row in the store (deleted from the store?)",
                seq=missing_first,
            )
        )


class _LeafReader:
    def __init__(self, path) -> None:  # type: ignore[no-untyped-def]
        self.path = path
        self.start = 0
        self.buf = b""

    def get(self, index: int) -> bytes | None:
        if self.path is None:
            return None
        off = (index - self.start) * HASH_SIZE
        if not 0 <= off < len(self.buf):
            try:
                with open(self.path, "rb") as fh:
                    fh.seek(index * HASH_SIZE)
                    self.buf = fh.read(HASH_SIZE * CHUNK)
            except OSError:
                return None
            self.start = index
            off = 0
        leaf = self.buf[off : off + HASH_SIZE]
        return leaf if len(leaf) == HASH_SIZE else None


def _journal_event(journal: Journal, tenant: str, seq: int):  # type: ignore[no-untyped-def]
    for _s, payload in journal.read(tenant, seq, seq):
        return event_from_canonical(payload)
    return None


def _ingested(journal: Journal, tenant: str, seq: int) -> int:
    event = _journal_event(journal, tenant, seq)
    return event.ingested if event is not None else now_us()


def _diff(journal: Journal, tenant: str, stored) -> str:  # type: ignore[no-untyped-def]
    original = _journal_event(journal, tenant, stored.seq)
    if original is None:
        return "the row does not match its journal record (which cannot be read)"
    a, b = original.to_dict(), stored.to_dict()
    changed = []
    for key in sorted(set(a) | set(b)):
        if isinstance(a.get(key), dict) or isinstance(b.get(key), dict):
            inner_a, inner_b = a.get(key) or {}, b.get(key) or {}
            for k in sorted(set(inner_a) | set(inner_b)):
                if inner_a.get(k) != inner_b.get(k):
                    changed.append(f"{key}.{k}: journal {inner_a.get(k)!r}, store {inner_b.get(k)!r}")
        elif a.get(key) != b.get(key):
            changed.append(f"{key}: journal {str(a.get(key))[:80]!r}, store {str(b.get(key))[:80]!r}")
    return "the row differs from its journal record — " + "; ".join(changed[:5])


def prove(journal: Journal, checkpointer: Checkpointer, tenant: str, seq: int) -> dict[str, object]:
    """An inclusion proof for one event against the newest checkpoint that covers it."""
    if not 1 <= seq <= journal.committed_seq(tenant):
        raise ProofError(f"tenant {tenant} has no record with seq {seq}")
    tree = journal.tree(tenant)
    if tree is None:
        raise ProofError(f"tenant {tenant} has no journal")
    checkpoint = checkpointer.last(tenant)
    if checkpoint is None or checkpoint.size < seq:
        checkpoint = checkpointer.checkpoint(tenant)
    payload = next((p for _s, p in journal.read(tenant, seq, seq)), None)
    if payload is None:
        raise ProofError(f"seq {seq} of {tenant} is not in the journal any more (disposed?)")
    return make_proof(tree, payload, tenant, seq, checkpoint)


class IntegrityWatch:
    """Runs the full verification in the background while the server runs.

    A failed verification raises a critical alert for the SOC: an ``event.kind = alert`` event
    in the system tenant naming the first problem (the alert queue picks these up)."""

    def __init__(self, runtime: Runtime, every_minutes: float) -> None:
        self.runtime = runtime
        self.every_s = every_minutes * 60
        self.last_report: VerifyReport | None = None
        self.last_run: int | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        if self.every_s > 0:
            self._task = asyncio.create_task(self._run(), name="integrity-watch")

    async def stop(self) -> None:
        await cancel_and_wait(self._task)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.every_s)
            await self.run_once()

    async def run_once(self) -> VerifyReport:
        rt = self.runtime
        report = await asyncio.to_thread(
            verify,
            rt.journal,
            rt.keys,
            rt.checkpointer.witnesses,
            rt.store,
            VerifyOptions(),
            None,
            rt.settings.store.retention_days,
            {t: rt.indexer.stored_seq(t) for t in rt.journal.tenants()},
        )
        self.last_report = report
        self.last_run = now_us()
        if report.findings:
            first = report.findings[0]
            log.critical(
                "background verification found %d problem(s); first: %s", len(report.findings), first
            )
            await rt.pipeline.commit([integrity_alert(report)])
        return report


def integrity_alert(report: VerifyReport) -> Event:
    first = report.findings[0]
    now = now_us()
    tenants = sorted({f.tenant for f in report.findings})
    return Event(
        tenant=SYSTEM_TENANT,
        ts=now,
        ingested=now,
        source="norrvakt-integrity",
        peer="local",
        ecs={
            "event.kind": "alert",
            "event.category": "database",
            "event.action": "integrity-verification-failed",
            "event.outcome": "failure",
            "event.dataset": "norrvakt.integrity",
            "log.level": "critical",
            "rule.name": "Journal integrity verification failed",
        },
        fields={
            "findings": str(len(report.findings)),
            "tenants": ",".join(tenants),
            "first.code": first.code,
            "first.where": first.where(),
        },
        message=f"Integrity verification failed: {len(report.findings)} problem(s) in {', '.join(tenants)}; "
        f"first: {first}",
        raw=str(first).encode("utf-8"),
    )
