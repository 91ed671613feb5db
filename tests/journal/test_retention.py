"""Retention: nothing disappears without a signed decision; holds block; proofs survive; archives verify."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
from pathlib import Path

import bagit
import pytest

from norrvakt.config import load_settings
from norrvakt.event import Event, now_us
from norrvakt.integrity import VerifyOptions, prove, verify
from norrvakt.journal.archive import verify as verify_bag
from norrvakt.journal.proof import verify_proof
from norrvakt.journal.retention import DISPOSALS_FILE, RetentionError
from norrvakt.node import lifecycle
from norrvakt.node.runtime import Runtime, bootstrap_accounts, open_runtime

DAY = 86_400_000_000
_db = itertools.count()


def _events(n: int, start: int, age_days: int, dataset: str = "windows.security") -> list[Event]:
    ingested = now_us() - age_days * DAY
    return [
        Event(
            tenant="lulea",
            ts=ingested,
            ingested=ingested + i,
            source="t",
            peer="p",
            ecs={"event.kind": "event", "event.dataset": dataset},
            fields={"n": str(start + i)},
            message=f"record {start + i} " + "y" * 400,
            raw=f"record {start + i}".encode(),
        )
        for i in range(n)
    ]


def _settings(tmp: Path, chdb_path: Path):  # type: ignore[no-untyped-def]
    return load_settings(
        overrides={
            "data_dir": str(tmp / "data"),
            "store.dsn": f"chdb://{chdb_path}",
            "store.database": f"retention_{os.getpid()}_{next(_db)}",
            "store.retention_days": 0,
            "journal.segment_mb": 1,
            "integrity.witnesses": [f"dir:{tmp / 'witness'}"],
            "integrity.checkpoint_every_seconds": 3600,
        }
    )


def _run(tmp: Path, chdb_path: Path, body):  # type: ignore[no-untyped-def]
    async def main() -> object:
        rt = open_runtime(_settings(tmp, chdb_path))
        bootstrap_accounts(rt)  # a journal with records and no accounts is refused at the next start
        await rt.start(with_sources=False)
        try:
            return await body(rt)
        finally:
            await rt.close()

    return asyncio.run(main())


async def _fill(rt: Runtime) -> None:
    # Two years old, then a health-record access log (kept 5 years), then fresh records.
    await rt.pipeline.commit(_events(4000, 0, age_days=800))
    await rt.pipeline.commit(_events(2000, 4000, age_days=700, dataset="health.record_access"))
    await rt.pipeline.commit(_events(500, 6000, age_days=1))
    await rt.indexer.wait_caught_up(60)
    await asyncio.to_thread(rt.checkpointer.checkpoint_all)


def test_plan_hold_dispose_verify_prove_archive(tmp_path: Path, chdb_path: Path) -> None:
    async def body(rt: Runtime) -> None:
        await _fill(rt)
        plan = lifecycle.plan(rt, ["lulea"], now_us())
        eligible = [s for s in plan if s["eligible"]]
        assert eligible, plan
        assert all(s["rule"].startswith("default") for s in eligible)
        health = [s for s in plan if "class health." in s["rule"]]
        assert health and not any(s["eligible"] for s in health)  # 5 years for health-record access
        up_to = eligible[-1]["last_seq"]

        hold = await lifecycle.place_hold(rt, "lulea", "police request 2026-4711", "admin", None, None)
        with pytest.raises(RetentionError, match="legal hold"):
            await lifecycle.dispose_range(rt, "lulea", up_to, "admin", "13 months passed")
        with pytest.raises(RetentionError, match="does not end a segment"):
            await lifecycle.dispose_range(rt, "lulea", up_to - 1, "admin", "13 months passed")
        await lifecycle.release_hold(rt, hold["id"], "admin")

        disposal = await lifecycle.dispose_range(rt, "lulea", up_to, "admin", "KS 2026/113: 13 months passed")
        assert disposal["first_seq"] == 1 and disposal["last_seq"] == up_to
        assert int(rt.journal.segments("lulea")[0][0]) == up_to + 1
        await rt.indexer.wait_caught_up(30)
        (n,) = rt.store.query(
            "SELECT count() FROM events WHERE tenant = 'lulea' AND seq <= {s:UInt64}", {"s": up_to}
        )[0]
        assert n == 0
        audit = [e for e in rt.journal.read("_norrvakt")]
        actions = [json.loads(p)["ecs"].get("event.action") for _s, p in audit]
        assert "dispose" in actions and "legal-hold" in actions

        report = verify(
            rt.journal,
            rt.keys,
            rt.checkpointer.witnesses,
            rt.store,
            VerifyOptions(),
            indexed_upto={t: rt.indexer.stored_seq(t) for t in rt.journal.tenants()},
        )
        assert report.findings == [], [str(f) for f in report.findings]
        lulea = next(t for t in report.tenants if t.tenant == "lulea")
        assert lulea.disposed == up_to and lulea.records == 6500 - up_to

        proof = prove(rt.journal, rt.checkpointer, "lulea", 6400)
        pub = rt.keys.public_keys()[rt.keys.current_id() or ""]
        assert verify_proof(proof, pub).ok

        bag_dir = tmp_path / "bag"
        info = await lifecycle.archive_export(rt, "lulea", now_us() - 600 * DAY, bag_dir, "admin")
        assert info["first_seq"] == up_to + 1 and info["last_seq"] == 6000
        assert (bag_dir / "data" / "leaves-before.bin").stat().st_size == 32 * up_to

    _run(tmp_path, chdb_path, body)
    bag_dir = tmp_path / "bag"
    report = verify_bag(bag_dir)
    assert report.ok, report.checks

    # An edited record is caught by the bag's checksums …
    events = bag_dir / "data" / "events.jsonl"
    original = events.read_bytes()
    events.write_bytes(original.replace(b"record 4500 ", b"record 4501 ", 1))
    assert not verify_bag(bag_dir).ok
    # … and, if the forger also rewrites the manifests, by the Merkle roots.
    bag = bagit.Bag(str(bag_dir))
    bag.save(manifests=True)
    report = verify_bag(bag_dir)
    assert not report.ok
    failed = [what for what, passed, _d in report.checks if not passed]
    assert failed == ["the last record is in the signed log (consistency proof to checkpoint of 6500)"]


def test_a_forged_disposal_record_does_not_excuse_a_gap(tmp_path: Path, chdb_path: Path) -> None:
    async def body(rt: Runtime) -> int:
        await _fill(rt)
        eligible = [s for s in lifecycle.plan(rt, ["lulea"], now_us()) if s["eligible"]]
        await lifecycle.dispose_range(rt, "lulea", eligible[0]["last_seq"], "admin", "ok")
        return int(eligible[0]["last_seq"])

    first_end = _run(tmp_path, chdb_path, body)
    tenant_dir = tmp_path / "data" / "journal" / "lulea"
    # Delete the next segment by hand and stretch the disposal record over it.
    victim = sorted(tenant_dir.glob("*.seg"))[0]
    victim_end = int(sorted(tenant_dir.glob("*.seg"))[1].stem) - 1
    victim.unlink()
    doc = json.loads((tenant_dir / DISPOSALS_FILE).read_text())
    doc["last_seq"] = victim_end
    (tenant_dir / DISPOSALS_FILE).write_text(json.dumps(doc) + "\n")

    async def check(rt: Runtime) -> list[str]:
        report = verify(rt.journal, rt.keys, rt.checkpointer.witnesses, None, VerifyOptions())
        return [f.code for f in report.findings]

    codes = _run(tmp_path, chdb_path, check)
    assert "disposal.signature" in codes
    assert "segment.missing" in codes
    assert first_end < victim_end
