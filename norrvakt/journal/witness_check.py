"""A tenant's local checkpoints against each witness: is the witness there, and up to date?

The verifier checks every line a witness holds against the journal (signature, root at its
size). This module adds what the lines alone cannot say: a witness that cannot be read, that
holds nothing of a tenant the local log has sealed for a while, or whose newest checkpoint is
older than the local log's beyond the tolerance (a checkpoint is published the moment it is
signed, and a witness that was down is brought up to date at the next checkpoint, so more than
one checkpoint interval behind means checkpoints are not reaching it). Such a witness is a
finding, not "no checkpoints": a deleted witness file and a deleted journal must not cancel out.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from norrvakt.journal.checkpoint import Checkpoint, CheckpointLine
from norrvakt.journal.log import is_folder_name
from norrvakt.journal.report import WITNESSES, Finding, iso
from norrvakt.journal.witness import Witness, WitnessError


@dataclass(frozen=True)
class WitnessView:
    """What one witness holds of one tenant; ``lines`` is ``None`` when it could not be read."""

    name: str
    lines: list[CheckpointLine] | None
    error: str = ""

    def newest(self) -> Checkpoint | None:
        parsed = [line.checkpoint for line in self.lines or [] if line.checkpoint is not None]
        return max(parsed, key=lambda c: (c.size, c.time)) if parsed else None


def read_witnesses(witnesses: Iterable[Witness], tenant: str) -> list[WitnessView]:
    views = []
    for w in witnesses:
        try:
            views.append(WitnessView(w.name, w.read(tenant)))
        except WitnessError as exc:
            views.append(WitnessView(w.name, None, str(exc)))
    return views


def lag_findings(
    tenant: str, views: list[WitnessView], local: list[Checkpoint], lag_us: int
) -> list[Finding]:
    """Witnesses that cannot be read, hold nothing, or are behind the local log: every local
    checkpoint signed more than ``lag_us`` before the newest one must be at every witness (the
    newest is the reference, not the clock, so a log verified long after the server stopped
    is judged as it was when it stopped)."""
    out = []
    cutoff = local[-1].time - lag_us if local else 0
    due = [cp for cp in local if cp.time <= cutoff]  # should have reached every witness
    for view in views:
        if view.lines is None:
            out.append(Finding(tenant, "witness.unreachable", view.error))
            continue
        if not due:
            continue
        newest = view.newest()
        if newest is None:
            out.append(
                Finding(
                    tenant,
                    "witness.empty",
                    f"witness {view.name} holds no checkpoint of {tenant}, but the local log has "
                    f"{len(local)} since {iso(local[0].time)}: the witness's file was deleted or emptied, "
                    "or checkpoints never reached it",
                )
            )
            continue
        expected = due[-1]
        if newest.time < expected.time and newest.size <= expected.size:
            out.append(
                Finding(
                    tenant,
                    "witness.behind",
                    f"witness {view.name} is behind: its newest checkpoint of {tenant} covers "
                    f"{newest.size} records ({iso(newest.time)}), the local log's covers "
                    f"{local[-1].size} ({iso(local[-1].time)}); checkpoints after {iso(newest.time)} "
                    "did not reach it",
                    seq=newest.size + 1 if expected.size > newest.size else None,
                )
            )
    return out


def known_tenants(witnesses: Iterable[Witness]) -> tuple[set[str], list[Finding], list[Finding]]:
    """(tenants the witnesses hold lines of, findings, warnings). A name that cannot be a
    journal folder is a finding — it is never used as a path."""
    names: set[str] = set()
    findings: list[Finding] = []
    warnings: list[Finding] = []
    for w in witnesses:
        try:
            listed = w.tenants()
        except WitnessError as exc:
            findings.append(Finding(WITNESSES, "witness.unreachable", f"cannot list its tenants: {exc}"))
            continue
        if listed is None:
            warnings.append(
                Finding(
                    WITNESSES,
                    "witness.cannot_list",
                    f"witness {w.name} cannot list the tenants it holds (GET ?list=1), so a tenant "
                    "whose journal and configuration were both removed is not found through it",
                )
            )
            continue
        for name in listed:
            if is_folder_name(name):
                names.add(name)
            else:
                findings.append(
                    Finding(
                        WITNESSES,
                        "witness.tenant",
                        f"witness {w.name} lists a tenant id {name!r} that cannot be one",
                    )
                )
    return names, findings, warnings
