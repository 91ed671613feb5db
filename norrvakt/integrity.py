"""`norrvakt verify`: the journal verified on its own, then the store checked against it.

The journal check lives in :mod:`norrvakt.journal.verify` (it needs nothing but files); the
store check lives here, above both layers, as DESIGN §4 asks: every row in the store must be
a record of the journal, byte for byte once put back in canonical form, and every record
still within the store's retention must have exactly one row.

Which tenants: all that anything knows of — the configured ones, the system tenant, every
journal folder, every tenant a witness holds checkpoints of and every tenant with rows in the
store — so deleting a tenant's journal cannot make it drop out of the verification.
"""

from __future__ import annotations

import asyncio
import logging
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from norrvakt.event import SYSTEM_TENANT, Event, canonical_bytes, event_from_canonical, now_us
from norrvakt.journal.checkpointer import Checkpointer
from norrvakt.journal.keys import KeyRing, load_public
from norrvakt.journal.log import Journal
from norrvakt.journal.merkle import HASH_SIZE, leaf_hash
from norrvakt.journal.placement import setup_warnings
from norrvakt.journal.proof import ProofError, make_proof
from norrvakt.journal.report import KEYS, STORE, Finding, TenantResult, VerifyReport
from norrvakt.journal.retention import read_disposals
from norrvakt.journal.verify import DEFAULT_WITNESS_LAG_S, Snapshot, verify_journal
from norrvakt.journal.witness import Witness
from norrvakt.journal.witness_check import is_folder_name
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
    """``tenants``: exactly these (default: every tenant anything knows of, see module doc).
    ``configured``: the configured tenants — verified even when nothing else names them.
    ``witness_lag_s``: how far a witness may be behind the local log (one checkpoint interval
    and some slack)."""

    tenants: list[str] | None = None
    since_us: int | None = None
    pinned_keys: list[str] | None = None  # public keys (hex or PEM) the operator trusts
    check_store: bool = True
    configured: list[str] = field(default_factory=list)
    witness_lag_s: float = DEFAULT_WITNESS_LAG_S


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
    snapshot: Snapshot | None = None,
) -> VerifyReport:
    """``indexed_upto``: per tenant, the seq up to which the running server has stored
    everything (records journaled after that are still on their way to the store).
    ``snapshot``: the running journal's cut (:meth:`Checkpointer.snapshot`) — take it, then
    ``indexed_upto``, right before calling; without one the files are taken as they are."""
    trusted, key_problems = trusted_keys(keys, options.pinned_keys)
    expected = {*options.configured, SYSTEM_TENANT}
    store_problems: list[Finding] = []
    use_store = store is not None and options.check_store
    if store is not None and use_store and options.tenants is None:
        stored, store_problems = stored_tenants(store)
        expected |= stored
    report = verify_journal(
        journal.root,
        trusted,
        witnesses,
        options.tenants,
        options.since_us,
        progress,
        expected=expected,
        snapshot=snapshot,
        witness_lag_s=options.witness_lag_s,
    )
    if key_problems:
        report.tenants.insert(
            0, TenantResult(KEYS, findings=[Finding(KEYS, "key.trust", p) for p in key_problems])
        )
    if store_problems:
        report.result(STORE).findings.extend(store_problems)
    if store is not None and use_store:
        for result in report.tenants:
            if not result.tenant.startswith("("):
                check_store(
                    journal,
                    store,
                    result,
                    store_retention_days,
                    None if indexed_upto is None else indexed_upto.get(result.tenant, 0),
                    None if snapshot is None else snapshot.get(result.tenant, (0, 0))[0],
                )
    report.warnings += setup_warnings(journal.root.parent, witnesses, keys)
    return report


def stored_tenants(store: ClickHouseStore) -> tuple[set[str], list[Finding]]:
    """Tenants with rows in the store; a tenant id that cannot name a journal folder is itself
    a finding (rows that no journal can ever vouch for)."""
    names: set[str] = set()
    problems = []
    for (tenant,) in store.query(f"SELECT DISTINCT tenant FROM {EVENTS_TABLE}"):
        name = str(tenant)
        if is_folder_name(name):
            names.add(name)
        else:
            count = store.query(
                f"SELECT count() FROM {EVENTS_TABLE} WHERE tenant = {{t:String}}", {"t": name}
            )
            problems.append(
                Finding(
                    STORE,
                    "store.tenant",
                    f"the store has {int(count[0][0])} rows of tenant id {name!r}, which no journal can hold",
                )
            )
    return names, problems


def check_store(
    journal: Journal,
    store: ClickHouseStore,
    result: TenantResult,
    retention_days: int,
    indexed_upto: int | None,
    snapshot_seq: int | None = None,
) -> None:
    """Every row of the tenant equals its journal record; no row is missing, extra or doubled.

    Records past ``indexed_upto`` (or, without a server, past the store's highest seq) are not
    in the store yet and are not expected there; nor are records past ``snapshot_seq``."""
    tenant = result.tenant
    rows = store.query(
        f"SELECT count(), uniqExact(seq), max(seq) FROM {EVENTS_TABLE} WHERE tenant = {{t:String}}",
        {"t": tenant},
    )
    count, unique, max_seq = (int(x) for x in rows[0])
    if not result.journal:
        if count:
            result.findings.append(
                Finding(
                    tenant,
                    "journal.missing",
                    f"the journal of tenant {tenant} is missing, but the store has {count} rows of it "
                    f"(up to seq {max_seq})",
                    seq=1,
                )
            )
        return
    tree = journal.tree(tenant)
    # Read after the rows: a row is stored only once its record is committed, so a row past
    # this seq was never journaled — however much was ingested meanwhile.
    journaled = journal.committed_seq(tenant)
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
    if snapshot_seq is not None:
        last = min(last, snapshot_seq)
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
    in the system tenant naming the first problem (the alert queue picks these up). A run that
    cannot complete — the store fails, a bug, anything — is logged with its traceback, raised
    as an alert of its own ("verification could not complete") and the next run comes all the
    same: the watch never stops because of what it watches. :meth:`health` says how it goes."""

    def __init__(self, runtime: Runtime, every_minutes: float) -> None:
        self.runtime = runtime
        self.every_s = every_minutes * 60
        self.last_report: VerifyReport | None = None
        self.last_run: int | None = None  # µs, start of the newest run
        self.last_success: int | None = None  # µs, end of the newest run that completed
        self.last_error: str | None = None  # why the newest run did not complete (None: it did)
        self.runs = 0
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

    async def run_once(self) -> VerifyReport | None:
        """One verification of everything; ``None`` if it could not complete (never raises)."""
        self.last_run = now_us()
        self.runs += 1
        try:
            report = await asyncio.to_thread(self._verify)
        except Exception as exc:
            self.last_error = f"{type(exc).__name__}: {exc}"
            log.error("background verification could not complete:\n%s", traceback.format_exc())
            await self._raise(incomplete_alert(self.last_error))
            return None
        self.last_report = report
        self.last_success = now_us()
        incomplete = [f for f in report.findings if f.code == "verify.incomplete"]
        self.last_error = str(incomplete[0]) if incomplete else None
        if report.findings:
            log.critical(
                "background verification found %d problem(s); first: %s",
                len(report.findings),
                report.findings[0],
            )
            await self._raise(integrity_alert(report))
        return report

    def _verify(self) -> VerifyReport:
        rt = self.runtime
        snapshot = rt.checkpointer.snapshot()  # first: the store has at most what was committed
        indexed = {t: rt.indexer.stored_seq(t) for t in snapshot}
        return verify(
            rt.journal,
            rt.keys,
            rt.checkpointer.witnesses,
            rt.store,
            options_for(rt),
            None,
            rt.settings.store.retention_days,
            indexed,
            snapshot,
        )

    async def _raise(self, alert: Event) -> None:
        try:
            await self.runtime.pipeline.commit([alert])
        except Exception:  # the journal refuses records: the log line above is all there is
            log.exception("the integrity alert could not be journaled")

    def setup_warnings(self) -> list[Finding]:
        """Where the witnesses and the signing key are, if that is within reach (the admin page)."""
        rt = self.runtime
        return setup_warnings(rt.settings.data_path, rt.checkpointer.witnesses, rt.keys)

    def health(self) -> dict[str, Any]:
        """For ``/api/health`` (which anyone may read): states and counts, no tenant details."""
        report = self.last_report
        rt = self.runtime
        problems = sorted(
            {f.code for f in report.findings if f.code.startswith("witness.")}
            if report is not None
            else set()
        )
        return {
            "running": self._task is not None and not self._task.done(),
            "every_minutes": self.every_s / 60,
            "runs": self.runs,
            "last_run_us": self.last_run,
            "last_success_us": self.last_success,
            "last_error": self.last_error,
            "last_findings": len(report.findings) if report is not None else None,
            "last_first_code": report.findings[0].code if report is not None and report.findings else None,
            "witness_problems": problems
            + [f"{name}: publishing fails" for name in sorted(rt.checkpointer.stats.witness_failing)],
            "warnings": [w.code for w in report.warnings] if report is not None else [],
        }


def options_for(rt: Runtime, **overrides: Any) -> VerifyOptions:
    """The options a verification of the running server uses (tolerance from its settings)."""
    ig = rt.settings.integrity
    base: dict[str, Any] = {
        "configured": list(rt.settings.tenants),
        # A checkpoint reaches the witnesses within one interval (a failed one at the next).
        "witness_lag_s": ig.checkpoint_every_seconds + 60,
    }
    return VerifyOptions(**{**base, **overrides})


def integrity_alert(report: VerifyReport) -> Event:
    first = report.findings[0]
    tenants = sorted({f.tenant for f in report.findings})
    return _alert(
        action="integrity-verification-failed",
        rule="Journal integrity verification failed",
        fields={
            "findings": str(len(report.findings)),
            "tenants": ",".join(tenants),
            "first.code": first.code,
            "first.where": first.where(),
        },
        message=f"Integrity verification failed: {len(report.findings)} problem(s) in {', '.join(tenants)}; "
        f"first: {first}",
        raw=str(first),
    )


def incomplete_alert(error: str) -> Event:
    """The background verification could not run to its end: nothing is known to be wrong, but
    nothing is known to be right either — the SOC must look."""
    return _alert(
        action="integrity-verification-incomplete",
        rule="Journal integrity verification could not complete",
        fields={
            "findings": "0",
            "tenants": "(all)",
            "first.code": "verify.incomplete",
            "error": error[:2000],
        },
        message=f"Integrity verification could not complete: {error}",
        raw=error,
    )


def _alert(*, action: str, rule: str, fields: dict[str, str], message: str, raw: str) -> Event:
    now = now_us()
    return Event(
        tenant=SYSTEM_TENANT,
        ts=now,
        ingested=now,
        source="norrvakt-integrity",
        peer="local",
        ecs={
            "event.kind": "alert",
            "event.category": "database",
            "event.action": action,
            "event.outcome": "failure",
            "event.dataset": "norrvakt.integrity",
            "log.level": "critical",
            "rule.name": rule,
        },
        fields=fields,
        message=message,
        raw=raw.encode("utf-8"),
    )
