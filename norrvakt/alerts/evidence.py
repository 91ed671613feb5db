"""An alert's evidence: the events it was raised on, by (tenant, seq).

They stay retrievable as long as the alert needs them: :func:`evidence_seqs` names the seqs
that retention must not dispose of (events of open alerts, of alerts in open cases and of
alerts in cases marked significant under NIS2), and :func:`fetch` reads them from the store,
falling back to the journal for events the store's TTL already removed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from norrvakt.state import alerts as alert_rows

if TYPE_CHECKING:
    from norrvakt.journal.log import Journal
    from norrvakt.store.clickhouse import ClickHouseStore


class EvidenceHeld(Exception):
    """A disposal would delete events an alert still needs."""


def evidence_seqs(engine: sa.Engine, tenant: str) -> list[tuple[int, int]]:
    """Sorted, merged (first, last) seq ranges of ``tenant`` that alerts hold."""
    return alert_rows.evidence_seqs(engine, tenant)


def check_disposal(engine: sa.Engine, tenant: str, first_seq: int, last_seq: int) -> None:
    """Raise :class:`EvidenceHeld` if any held seq of ``tenant`` lies in [first_seq, last_seq]."""
    hits = [(a, b) for a, b in evidence_seqs(engine, tenant) if a <= last_seq and b >= first_seq]
    if hits:
        shown = ", ".join(f"{a}" if a == b else f"{a}..{b}" for a, b in hits[:5])
        more = f" and {len(hits) - 5} more range(s)" if len(hits) > 5 else ""
        raise EvidenceHeld(
            f"{tenant} seq {first_seq}..{last_seq} holds evidence of open alerts or cases "
            f"(seq {shown}{more}); close those cases first"
        )


def fetch(
    store: ClickHouseStore, journal: Journal | None, tenant: str, seqs: Sequence[int]
) -> list[dict[str, Any]]:
    """The events as dictionaries (``to_dict`` form), store first, journal for the rest."""
    found = {e.seq: e for e in store.fetch_events(tenant, seqs)} if seqs else {}
    missing = [s for s in seqs if s not in found]
    if journal is not None and missing:
        from norrvakt.event import event_from_canonical

        for s in missing:
            for _seq, payload in journal.read(tenant, s, s):
                found[s] = event_from_canonical(payload)
    out = []
    for s in seqs:
        e = found.get(s)
        out.append(e.to_dict() if e is not None else {"tenant": tenant, "seq": s, "missing": True})
    return out
