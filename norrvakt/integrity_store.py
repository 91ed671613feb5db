"""The store checked against the journal: every row must be a record of the journal, byte for
byte once put back in canonical form, and every record still within the store's retention must
have exactly one row (DESIGN §4: this check lives above both layers, so each stays simple).
"""

from __future__ import annotations

from norrvakt.event import canonical_bytes, event_from_canonical, now_us
from norrvakt.journal.log import Journal, is_folder_name
from norrvakt.journal.merkle import HASH_SIZE, leaf_hash
from norrvakt.journal.report import STORE, Finding, TenantResult
from norrvakt.journal.retention import read_disposals
from norrvakt.store.clickhouse import SELECT_EVENT_COLUMNS, ClickHouseStore, event_from_row
from norrvakt.store.schema import EVENTS_TABLE

CHUNK = 50_000
DAY_US = 86_400_000_000


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
