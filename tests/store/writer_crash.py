"""A store writer in its own process, for tests/store/test_exactly_once.py's crash tests.

``crash``: feed seqs 1..1300 with batch_rows 1000 and no linger — [1, 1000] is inserted and
checkpointed, then the partial range [1001, 1300] is inserted and the process dies (os._exit,
no clean-up) before the writer records its checkpoint.

``resume``: a new process on the same store and ledger; the stream redelivers from seq 1 (a
consumer's ack floor can be anywhere at or below what the writer checkpointed) and now has
1..1600; the writer stops cleanly. Then [1001, 1300] is replayed once more as the writer would
have sent it (the same rows, one block, its token — or, without dedupe, no token), which is what a
writer that did not ask the store, or asked a replica that did not show the insert yet, would do.
Prints what it found and what the store holds, as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from norrvakt.event import Event
from norrvakt.store.clickhouse import StoreConfig
from norrvakt.store.ledger import FileLedger
from norrvakt.store.ranges import dedupe_token
from norrvakt.store.writer import StoreWriter, StoreWriterConfig

TENANT = "lulea"


def stream(first: int, last: int) -> list[Event]:
    """The tenant's stream: seq n is always the same event."""
    return [
        Event(
            tenant=TENANT,
            seq=n,
            ts=1_795_729_970_000_000 + n,
            ingested=1_795_729_971_000_000 + n,
            source="syslog-tcp",
            peer="127.0.0.1:5000",
            ecs={"event.kind": "event", "host.name": f"vm{n % 7}"},
            fields={"n": str(n)},
            message=f"event {n}",
            raw=f"<13>1 - vm - - - - event {n}".encode(),
        )
        for n in range(first, last + 1)
    ]


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("phase", choices=["crash", "resume"])
    p.add_argument("--dir", type=Path, required=True)
    p.add_argument("--dedupe", action=argparse.BooleanOptionalAction, default=True)
    args = p.parse_args()
    store = StoreConfig(
        dsn=f"chdb://{args.dir / 'store'}",
        database="replica",
        retention_days=0,
        dedupe_window=1000 if args.dedupe else 0,
    ).build()
    config = StoreWriterConfig(
        ledger_dir=args.dir / "ledger", batch_rows=1000, linger_s=0.0, dedupe=args.dedupe
    )
    ledger = FileLedger(config.ledger_dir)
    config.build(store)  # the config's own checks

    if args.phase == "crash":

        def die_after(tenant: str, first: int, last: int) -> None:
            if first == 1001:
                os._exit(137)  # the insert landed; the checkpoint is never written

        writer = StoreWriter(config, store, ledger, after_insert=die_after)
        writer.resume(TENANT)
        writer.offer(stream(1, 1300))  # [1, 1000] is a full range: inserted now
        writer.flush_due()  # the linger (0 s) has passed: the partial [1001, 1300] goes
        raise SystemExit("the writer should have died after inserting [1001, 1300]")

    before = ledger.load(TENANT)
    writer = StoreWriter(config, store, ledger)
    next_seq = writer.resume(TENANT)
    ranges = writer.offer(stream(1, 1600)) + writer.stop()

    def counts() -> tuple[int, int]:
        (n, uniq) = store.query(
            "SELECT count(), uniqExact(seq) FROM events WHERE tenant = {t:String}", {"t": TENANT}
        )[0]
        return int(n), int(uniq)

    n, uniq = counts()
    after = ledger.load(TENANT)
    token = dedupe_token(TENANT, 1001, 1300) if args.dedupe else None
    store.insert_block(stream(1001, 1300), token=token, dedupe=args.dedupe)
    replayed, _ = counts()
    print(
        json.dumps(
            {
                "ledger_before": None if before is None else [before.stored_through, before.pending],
                "resumed_at": next_seq,
                "ranges": [[first, last] for _, first, last in ranges],
                "rows": n,
                "unique_seqs": uniq,
                "rows_after_replaying_1001_1300": replayed,
                "ledger_after": None if after is None else [after.stored_through, after.pending],
            }
        )
    )
    store.close()


if __name__ == "__main__":
    main()
