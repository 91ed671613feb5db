"""`norrvakt verify`: the journal verified on its own, then the store checked against it.

The journal check lives in :mod:`norrvakt.journal.verify` (it needs nothing but files); the
store check in :mod:`norrvakt.integrity_store`, above both layers, as DESIGN §4 asks. This
module puts them together, and runs them in the background (:class:`IntegrityWatch`).

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
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from norrvakt.event import SYSTEM_TENANT, Event, now_us
from norrvakt.integrity_store import check_store, stored_tenants
from norrvakt.journal.checkpointer import Checkpointer
from norrvakt.journal.keys import KeyRing, load_public
from norrvakt.journal.log import Journal
from norrvakt.journal.placement import setup_warnings
from norrvakt.journal.proof import ProofError, make_proof
from norrvakt.journal.report import KEYS, STORE, Finding, TenantResult, VerifyReport
from norrvakt.journal.verify import DEFAULT_WITNESS_LAG_S, Snapshot, verify_journal
from norrvakt.journal.witness import Witness
from norrvakt.store.clickhouse import ClickHouseStore
from norrvakt.tasks import cancel_and_wait

if TYPE_CHECKING:
    from norrvakt.config import Settings
    from norrvakt.node.runtime import Runtime

log = logging.getLogger(__name__)


@dataclass
class VerifyOptions:
    """``tenants``: exactly these (default: every tenant anything knows of, see module doc).
    ``configured``: the configured tenants — verified even when nothing else names them.
    ``witness_lag_s``: how far a witness may be behind the local log (one checkpoint interval
    and some slack)."""

    tenants: list[str] | None = None
    since_us: int | None = None
    pinned_keys: list[str] | None = None  # public keys (hex or PEM) the operator trusts
    configured: list[str] = field(default_factory=list)
    witness_lag_s: float = DEFAULT_WITNESS_LAG_S
    signing_key_file: Path | None = None  # integrity.signing_key_file (where the key is, not read)


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
    ``snapshot``: the running journal's cut (:meth:`Checkpointer.snapshot`) — both from
    :func:`running_cut`; without one the files are taken as they are."""
    trusted, key_problems = trusted_keys(keys, options.pinned_keys)
    expected = {*options.configured, SYSTEM_TENANT}
    store_problems: list[Finding] = []
    if store is not None and options.tenants is None:
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
    if store is not None:
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
    report.warnings += setup_warnings(
        journal.root.parent, witnesses, keys.directory, options.signing_key_file
    )
    return report


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
        return verify_running(rt, running_cut(rt), options_for(rt.settings))

    async def _raise(self, alert: Event) -> None:
        try:
            await self.runtime.pipeline.commit([alert])
        except Exception:  # the journal refuses records: the log line above is all there is
            log.exception("the integrity alert could not be journaled")

    def setup_warnings(self) -> list[Finding]:
        """Where the witnesses and the signing key are, if that is within reach (the admin page)."""
        rt = self.runtime
        return setup_warnings(
            rt.settings.data_path,
            rt.checkpointer.witnesses,
            rt.keys.directory,
            rt.settings.signing_key_path(),
        )

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


def options_for(settings: Settings, **overrides: Any) -> VerifyOptions:
    """The options a verification of this installation uses (tolerance from its settings)."""
    ig = settings.integrity
    base: dict[str, Any] = {
        "configured": list(settings.tenants),
        # A checkpoint reaches the witnesses within one interval (a failed one at the next).
        "witness_lag_s": ig.checkpoint_every_seconds + 60,
        "signing_key_file": settings.signing_key_path(),
    }
    return VerifyOptions(**{**base, **overrides})


RunningCut = tuple[Snapshot, dict[str, int]]


def running_cut(rt: Runtime) -> RunningCut:
    """The running journal's snapshot, then how far the store has each tenant — in this order,
    so the store is never ahead of the snapshot (blocking: it waits for a checkpoint being
    signed)."""
    snapshot = rt.checkpointer.snapshot()
    return snapshot, {t: rt.indexer.stored_seq(t) for t in snapshot}


def verify_running(
    rt: Runtime,
    cut: RunningCut,
    options: VerifyOptions,
    progress: Callable[[int], None] | None = None,
    *,
    store: bool = True,
) -> VerifyReport:
    """:func:`verify` of the running server, up to ``cut`` (:func:`running_cut`)."""
    snapshot, indexed = cut
    return verify(
        rt.journal,
        rt.keys,
        rt.checkpointer.witnesses,
        rt.store if store else None,
        options,
        progress,
        rt.settings.store.retention_days,
        indexed,
        snapshot,
    )


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
