"""Retention, legal holds, disposal and archive export — as operations with an audit trail.

The API and the CLI both call these with a running :class:`~norrvakt.node.runtime.Runtime` (the CLI
opens one itself when no server runs). Each decision is journaled in the ``_norrvakt`` tenant
before anything is deleted or written.
"""

from __future__ import annotations

import asyncio
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from norrvakt import audit
from norrvakt.journal.archive import export as export_bag
from norrvakt.journal.retention import (
    HoldRegister,
    RetentionError,
    RetentionPolicy,
    dispose,
    segment_statuses,
)
from norrvakt.store.schema import EVENTS_TABLE

if TYPE_CHECKING:
    from norrvakt.node.runtime import Runtime


def policy(rt: Runtime) -> RetentionPolicy:
    r = rt.settings.retention
    return RetentionPolicy(r.default_days, dict(r.tenant_days), dict(r.class_days))


def holds(rt: Runtime) -> HoldRegister:
    return HoldRegister(rt.settings.data_path / "retention")


def plan(rt: Runtime, tenants: list[str], now: int) -> list[dict[str, Any]]:
    """Every segment of the tenants with its range, age, expiry, rule and what blocks it."""
    out = []
    register = holds(rt)
    for tenant in tenants:
        for s in segment_statuses(rt.journal, tenant, policy(rt), register.active(tenant)):
            out.append(
                {
                    "tenant": tenant,
                    "segment": s.path.name,
                    "first_seq": s.first_seq,
                    "last_seq": s.last_seq,
                    "oldest": s.oldest_us,
                    "newest": s.newest_us,
                    "expires": s.expires_us,
                    "rule": s.rule,
                    "holds": list(s.holds),
                    "open": s.open,
                    "eligible": s.eligible(now),
                }
            )
    return out


async def dispose_range(
    rt: Runtime, tenant: str, up_to_seq: int, actor: str, reason: str, peer: str = ""
) -> dict[str, Any]:
    """Record the decision (signed, journaled), then delete the segments and their store rows."""
    # SOC workflow: events that open alerts/cases (or significant NIS2 incidents) still need as
    # evidence are never disposed of; the error names the seqs and what holds them.
    from norrvakt.alerts.evidence import EvidenceHeld, check_disposal

    try:
        await asyncio.to_thread(check_disposal, rt.state, tenant, 1, up_to_seq)
    except EvidenceHeld as exc:
        raise RetentionError(str(exc)) from exc
    key_id = rt.keys.ensure()
    disposal = await asyncio.to_thread(
        dispose,
        rt.journal,
        tenant,
        up_to_seq,
        decided_by=actor,
        reason=reason,
        policy=policy(rt),
        holds=holds(rt),
        key_id=key_id,
        key=rt.keys.private(key_id),
    )
    await audit.record(
        rt.pipeline,
        actor,
        "dispose",
        peer=peer,
        tenant=tenant,
        first_seq=disposal.first_seq,
        last_seq=disposal.last_seq,
        reason=reason,
        rule=disposal.rule,
    )
    await asyncio.to_thread(
        rt.store.command,
        f"DELETE FROM {EVENTS_TABLE} WHERE tenant = {{t:String}} "
        "AND seq BETWEEN {a:UInt64} AND {b:UInt64}",
        {"t": tenant, "a": disposal.first_seq, "b": disposal.last_seq},
    )
    return asdict(disposal)


async def place_hold(
    rt: Runtime,
    tenant: str,
    reason: str,
    actor: str,
    from_us: int | None,
    until_us: int | None,
    peer: str = "",
) -> dict[str, Any]:
    hold = holds(rt).place(tenant, reason, actor, from_us, until_us)
    await audit.record(
        rt.pipeline,
        actor,
        "legal-hold",
        peer=peer,
        tenant=tenant,
        hold=hold.id,
        reason=reason,
        from_us=from_us or "",
        until_us=until_us or "",
    )
    return asdict(hold)


async def release_hold(rt: Runtime, hold_id: str, actor: str, peer: str = "") -> dict[str, Any]:
    hold = holds(rt).release(hold_id, actor)
    await audit.record(
        rt.pipeline, actor, "legal-hold", peer=peer, tenant=hold.tenant, hold=hold.id, released="true"
    )
    return asdict(hold)


async def archive_export(
    rt: Runtime, tenant: str, until_us: int, out_dir: Path, actor: str, peer: str = ""
) -> dict[str, Any]:
    """A BagIt package of ``tenant``'s records received up to ``until_us``, sealed by a fresh checkpoint."""
    checkpoint = await asyncio.to_thread(rt.checkpointer.checkpoint, tenant)
    info = await asyncio.to_thread(
        export_bag, rt.journal, rt.keys, tenant, until_us, out_dir, exported_by=actor, checkpoint=checkpoint
    )
    await audit.record(
        rt.pipeline,
        actor,
        "archive-export",
        peer=peer,
        tenant=tenant,
        out=str(out_dir),
        first_seq=info["first_seq"],
        last_seq=info["last_seq"],
    )
    return info
