"""Verification speed over a large journal, and one inclusion proof at that size.

Builds a journal of N synthetic events for one tenant (fsync off while building; ~450-byte
canonical records), signs a checkpoint every million records, then times `verify_journal`
(every record re-read, CRC-checked, seq-checked, hashed, the tree recomputed and compared at
every checkpoint, consistency proofs between checkpoints) on one core, and one inclusion proof.

    .venv/bin/python bench/verify.py [--events 10000000]
"""

from __future__ import annotations

import argparse
import json
import resource
import tempfile
import time
from pathlib import Path

from _common import REPO, print_table, write_result

from norrvakt.event import Event
from norrvakt.journal.checkpoint import FILE_NAME, GENESIS, Checkpoint, append_line
from norrvakt.journal.keys import KeyRing
from norrvakt.journal.log import JournalConfig
from norrvakt.journal.proof import make_proof, verify_proof
from norrvakt.journal.verify import verify_journal


def build(root: Path, events: int, keys: KeyRing) -> float:
    journal = JournalConfig(root / "journal", fsync=False).build()
    key_id = keys.ensure()
    key = keys.private(key_id)
    prev = GENESIS
    start = time.monotonic()
    batch = 50_000
    for base in range(0, events, batch):
        n = min(batch, events - base)
        journal.append_and_commit(
            [
                Event(
                    tenant="lulea",
                    ts=1_795_000_000_000_000 + (base + i) * 1000,
                    ingested=1_795_000_000_000_000,
                    source="syslog-tcp",
                    peer="10.20.4.17:51234",
                    ecs={
                        "event.kind": "event",
                        "event.code": "4625",
                        "user.name": f"user{(base + i) % 5000}",
                        "source.ip": f"10.0.{i % 256}.{(base + i) % 250}",
                        "host.name": "lulea-dc01",
                    },
                    fields={
                        "EventID": "4625",
                        "LogonType": "3",
                        "TargetUserName": f"user{(base + i) % 5000}",
                    },
                    message=f"An account failed to log on: user{(base + i) % 5000}",
                    raw=f"<13>1 2026-11-26T21:00:00Z lulea-dc01 app - - - logon failure {base + i}".encode(),
                )
                for i in range(n)
            ]
        )
        done = base + n
        if done % 1_000_000 == 0 or done == events:
            size, root_hash = journal.head("lulea")
            cp = Checkpoint("lulea", size, root_hash.hex(), int(time.time() * 1e6), prev, key_id).signed(key)
            append_line(root / "journal" / "lulea" / FILE_NAME, cp.line())
            prev = cp.digest()
            print(f"  journaled {done:,} events", flush=True)
    journal.close()
    return time.monotonic() - start


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=10_000_000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="norrvakt-verify-") as tmp:
        root = Path(tmp)
        keys = KeyRing(root / "keys")
        build_s = build(root, args.events, keys)
        size_mb = sum(p.stat().st_size for p in (root / "journal").rglob("*") if p.is_file()) / 1e6
        trusted, _ = keys.trusted_keys()
        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        t = time.monotonic()
        report = verify_journal(root / "journal", trusted)
        verify_s = time.monotonic() - t
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        assert report.ok, [str(f) for f in report.findings[:5]]
        from norrvakt.journal.log import Journal

        journal = Journal(JournalConfig(root / "journal"), read_only=True)
        tree = journal.tree("lulea")
        assert tree is not None
        cp = Checkpoint.parse((root / "journal" / "lulea" / FILE_NAME).read_bytes().splitlines()[-1])
        seq = args.events // 3
        payload = next(p for _s, p in journal.read("lulea", seq, seq))
        t = time.perf_counter()
        proof = make_proof(tree, payload, "lulea", seq, cp)
        proof_ms = (time.perf_counter() - t) * 1000
        pub = keys.public_keys()[keys.current_id() or ""]
        t = time.perf_counter()
        ok = verify_proof(proof, pub).ok
        check_ms = (time.perf_counter() - t) * 1000
        assert ok
    result = {
        "events": args.events,
        "journal_mb": round(size_mb, 1),
        "build_seconds": round(build_s, 1),
        "verify_seconds": round(verify_s, 2),
        "verify_events_per_s": round(args.events / verify_s),
        "peak_rss_mb": round(peak, 1),
        "rss_before_verify_mb": round(rss_before, 1),
        "proof_hashes": len(proof["audit_path"]),
        "proof_bytes": len(json.dumps(proof)),
        "proof_ms": round(proof_ms, 2),
        "proof_check_ms": round(check_ms, 2),
        "goal_events_per_s": 200_000,
        "checkpoints": (args.events + 999_999) // 1_000_000,
        "note": "one core, journal only (records, CRC, seqs, leaf hashes vs stored tree, roots at every "
        "checkpoint, consistency proofs between them)",
    }
    path = write_result("verify", result)
    print_table(f"verify ({path.relative_to(REPO)})", [(k, str(v)) for k, v in result.items()])


if __name__ == "__main__":
    main()
