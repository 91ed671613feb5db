"""BagIt packages of a tenant's log for the e-archive, verifiable offline.

``export`` writes a bag (RFC 8493, PyPI ``bagit``) holding, under ``data/``::

    events.jsonl          the records as journaled (canonical bytes, one per line, seq order)
    leaves-before.bin     leaf hashes of earlier records already disposed of (if any)
    checkpoints.jsonl     every checkpoint of the tenant
    consistency.json      links the last exported record to the first checkpoint covering it
    keys/<id>.pub|.intro  the public signing keys and how each was introduced
    README.txt            what this is and how to check it

``verify`` checks the bag's checksums, then recomputes the Merkle tree from the records,
compares it with every checkpoint it covers, checks signatures, the checkpoint chain and the
consistency proof — without Norrvakt's data directory.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import bagit

from norrvakt.event import now_us
from norrvakt.journal.checkpoint import FILE_NAME, GENESIS, Checkpoint, read_lines
from norrvakt.journal.keys import KeyRing, load_public
from norrvakt.journal.log import Journal
from norrvakt.journal.merkle import HASH_SIZE, Frontier, verify_consistency

README = """Norrvakt log archive package (BagIt).

Tenant: {tenant}
Records: seq {first_seq}..{last_seq} ({count} records), received up to {until}
Exported: {exported} by {by}

data/events.jsonl holds each record exactly as it was journaled. A record's leaf hash is
SHA-256(0x00 || line bytes); the tree is RFC 9162's. data/checkpoints.jsonl are the signed
tree heads; see docs/integrity.md of Norrvakt for the exact format. Check the package with:

    norrvakt archive verify <this directory> [--pubkey KEY]
"""


class ArchiveError(Exception):
    pass


@dataclass
class ArchiveReport:
    ok: bool = True
    checks: list[tuple[str, bool, str]] = field(default_factory=list)

    def add(self, what: str, passed: bool, detail: str = "") -> None:
        self.checks.append((what, passed, detail))
        self.ok = self.ok and passed


def export(
    journal: Journal,
    keys: KeyRing,
    tenant: str,
    until_us: int,
    out_dir: Path,
    *,
    exported_by: str,
    checkpoint: Checkpoint | None = None,
) -> dict[str, Any]:
    """Write the bag for ``tenant``'s records received up to ``until_us``."""
    if out_dir.exists() and any(out_dir.iterdir()):
        raise ArchiveError(f"{out_dir} exists and is not empty")
    tree = journal.tree(tenant)
    if tree is None or tree.size == 0:
        raise ArchiveError(f"tenant {tenant} has no records")
    segments = journal.segments(tenant)
    first_present = segments[0][0] if segments else tree.size + 1
    out_dir.mkdir(parents=True, exist_ok=True)
    data = out_dir
    last = first_present - 1
    with open(data / "events.jsonl", "wb") as fh:
        for seq, payload in journal.read(tenant, first_present):
            if json.loads(payload).get("ingested", 0) > until_us:
                break
            fh.write(payload + b"\n")
            last = seq
    if last < first_present:
        shutil.rmtree(out_dir)
        raise ArchiveError(f"tenant {tenant} has no records received before that time")
    if first_present > 1:
        with open(data / "leaves-before.bin", "wb") as fh:
            for index in range(first_present - 1):
                fh.write(tree.node(0, index))
    cp_lines = [line.raw for line in read_lines(journal.root / tenant / FILE_NAME)]
    (data / "checkpoints.jsonl").write_bytes(b"".join(raw + b"\n" for raw in cp_lines))
    covering = checkpoint
    if covering is None or covering.size < last:
        covering = next(
            (
                c.checkpoint
                for c in read_lines(journal.root / tenant / FILE_NAME)
                if c.checkpoint is not None and c.checkpoint.size >= last
            ),
            None,
        )
    if covering is None:
        raise ArchiveError("no checkpoint covers the exported records yet; wait for the next checkpoint")
    proof = tree.consistency_proof(last, covering.size)
    (data / "consistency.json").write_text(
        json.dumps(
            {
                "from_size": last,
                "to_size": covering.size,
                "proof": [p.hex() for p in proof],
                "checkpoint": json.loads(covering.line()),
            },
            indent=1,
        )
    )
    (data / "keys").mkdir()
    for path in keys.directory.glob("*"):
        if path.suffix in (".pub", ".intro"):
            shutil.copy(path, data / "keys" / path.name)
    info: dict[str, Any] = {
        "tenant": tenant,
        "first_seq": first_present,
        "last_seq": last,
        "count": last - first_present + 1,
        "until": until_us,
        "exported": now_us(),
        "by": exported_by,
    }
    (data / "README.txt").write_text(
        README.format(**{**info, "until": _iso(until_us), "exported": _iso(info["exported"])})
    )
    bagit.make_bag(
        str(out_dir),
        {
            "Source-Organization": "Norrvakt (Norrbotten e-committee)",
            "External-Description": f"Security log of tenant {tenant}, seq {first_present}..{last}",
            "External-Identifier": f"norrvakt:{tenant}:{first_present}-{last}",
            "Norrvakt-Tenant": tenant,
            "Norrvakt-First-Seq": str(first_present),
            "Norrvakt-Last-Seq": str(last),
            "Norrvakt-Exported-By": exported_by,
        },
        checksums=["sha256"],
    )
    return info


def verify(bag_dir: Path, pinned: list[str] | None = None) -> ArchiveReport:
    report = ArchiveReport()
    try:
        bag = bagit.Bag(str(bag_dir))
        bag.validate()
        report.add("BagIt checksums and completeness", True)
    except (bagit.BagError, bagit.BagValidationError) as exc:
        report.add("BagIt checksums and completeness", False, str(exc))
        return report
    data = bag_dir / "data"
    ring = KeyRing(data / "keys")
    trusted, problems = ring.trusted_keys()
    if pinned:
        from norrvakt.journal.keys import key_id_of, public_raw

        ids = {key_id_of(public_raw(load_public(p))) for p in pinned}
        report.add(
            "the package's first key is a pinned key", bool(ids & set(trusted)), ", ".join(sorted(ids))
        )
    for p in problems:
        report.add("signing key trusted", False, p)
    frontier = Frontier()
    before = data / "leaves-before.bin"
    if before.exists():
        raw = before.read_bytes()
        for i in range(0, len(raw), HASH_SIZE):
            frontier.append(raw[i : i + HASH_SIZE])
    expected = frontier.size + 1
    roots = {frontier.size: frontier.root()}
    tenant = bag.info.get("Norrvakt-Tenant", "")
    seq_ok = True
    with open(data / "events.jsonl", "rb") as fh:
        for raw_line in fh:
            record = raw_line.rstrip(b"\n")
            doc = json.loads(record)
            if doc.get("seq") != expected or doc.get("tenant") != tenant:
                seq_ok = False
                report.add(
                    f"record {expected} in place",
                    False,
                    f"line holds {doc.get('tenant')} seq {doc.get('seq')}",
                )
                break
            frontier.append(hashlib.sha256(b"\x00" + record).digest())
            roots[frontier.size] = frontier.root()
            expected += 1
    if seq_ok:
        report.add(f"records in seq order, {frontier.size} leaves", True)
    prev = GENESIS
    matched = 0
    for line in read_lines(data / "checkpoints.jsonl"):
        cp = line.checkpoint
        if cp is None:
            report.add(f"checkpoint line {line.number} readable", False, line.error)
            continue
        key = trusted.get(cp.key)
        if key is None or not cp.signature_ok(key):
            report.add(f"checkpoint line {line.number} signature", False, f"key {cp.key}")
        if cp.prev != prev:
            report.add(f"checkpoint line {line.number} chain", False, "does not chain to the line before")
        prev = hashlib.sha256(line.raw).hexdigest()
        if cp.size in roots:
            ok = roots[cp.size].hex() == cp.root
            matched += ok
            if not ok:
                report.add(f"checkpoint line {line.number} (size {cp.size}) matches the records", False)
    # Informational: checkpoints whose size falls inside the export (mismatches are failures above).
    report.add(f"{matched} checkpoint(s) inside the exported range match the records", True)
    link = json.loads((data / "consistency.json").read_text())
    cp = Checkpoint.parse(json.dumps(link["checkpoint"]))
    key = trusted.get(cp.key)
    proof = [bytes.fromhex(p) for p in link["proof"]]
    ok = (
        link["from_size"] == frontier.size
        and key is not None
        and cp.signature_ok(key)
        and verify_consistency(frontier.size, cp.size, frontier.root(), bytes.fromhex(cp.root), proof)
    )
    report.add(f"the last record is in the signed log (consistency proof to checkpoint of {cp.size})", ok)
    return report


def _iso(us: int) -> str:
    import time

    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(us / 1e6))
