"""One in-process Norrvakt (journal, chDB store, SQLite state, witness) for these tests, on an
event loop of its own thread, with a month of records, alerts and cases made through the real
components: Luleå busy in November 2026 (and October, for the trend), Boden with nothing."""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import os
import threading
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import pytest

from norrvakt.alerts.cases import CaseService
from norrvakt.alerts.model import AlertInput
from norrvakt.alerts.service import AlertService
from norrvakt.config import load_settings
from norrvakt.event import Event
from norrvakt.node.runtime import Runtime, bootstrap_accounts, open_runtime
from norrvakt.state import followup as followup_rows

T = TypeVar("T")
ZONE = ZoneInfo("Europe/Stockholm")
HOUR = 3600 * 1_000_000
_db = itertools.count()
TENANTS = {"lulea": "Luleå", "boden": "Boden", "pitea": "Piteå"}  # three keep the region report quick


def at(day: int, hour: int = 12, month: int = 11) -> int:
    return int(dt.datetime(2026, month, day, hour, tzinfo=ZONE).timestamp()) * 1_000_000


class Loop:
    """An event loop in a thread: the runtime lives on it across the module's tests."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 120) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@dataclass
class World:
    rt: Runtime
    loop: Loop
    tmp: Path
    case_ids: dict[str, int]


def _event(tenant: str, ts: int, source: str, dataset: str, host: str, i: int) -> Event:
    return Event(
        tenant=tenant,
        ts=ts,
        ingested=ts + 1000,
        source=source,
        peer="10.20.0.5",
        ecs={"event.kind": "event", "event.dataset": dataset, "host.name": host},
        message=f"{dataset} record {i} from {host}",
        raw=f"{tenant}|{dataset}|{i}".encode(),
    )


def _records() -> list[Event]:
    out = []
    for day in range(1, 31):  # November: domain controller every day, door locks until the 20th
        for i in range(4 + day % 3):
            out.append(_event("lulea", at(day, 8 + i), "syslog-tls", "windows.security", "lulea-dc01", i))
        if day <= 20 or day >= 23:
            out.append(_event("lulea", at(day, 9), "hec-lulea", "doorlock.access", "lulea-door01", day))
    for day in range(1, 32):  # October: fewer domain controller records, no e-service yet
        out.append(
            _event("lulea", at(day, 10, month=10), "syslog-tls", "windows.security", "lulea-dc01", day)
        )
    out.append(_event("lulea", at(12, 10), "hec-lulea", "eservice.audit", "e-tjanst01", 1))
    return out


def _alerts(rt: Runtime) -> dict[str, int]:
    now = [at(3)]
    svc = AlertService(rt.state, rt.settings.alerts, clock=lambda: now[0])
    cases = CaseService(rt.state, svc, clock=lambda: now[0])
    scope = ["lulea", "boden"]

    def raise_(rule: str, title: str, level: str, tags: list[str], ents: dict[str, str], day: int) -> int:
        now[0] = at(day)
        (alert,) = svc.ingest(
            [
                AlertInput(
                    tenant="lulea", rule_id=rule, rule_title=title, level=level, tags=tags,
                    event_seq=day, event_ts=at(day), entities=ents,
                )
            ]
        )  # fmt: skip
        assert alert.case_id is not None
        return alert.case_id

    spray = raise_(
        "win-password-spray", "Password spraying", "high", ["attack.credential_access", "attack.t1110.003"],
        {"source.ip": "185.220.101.7", "user.name": "anna.berg"}, 3,
    )  # fmt: skip
    now[0] = at(3) + 10 * 60 * 1_000_000  # acknowledged after 10 minutes
    cases.set_status(spray, "acknowledged", "soc.kim", scope)
    now[0] = at(3) + 5 * HOUR
    cases.set_status(spray, "resolved", "soc.kim", scope)
    fp = raise_(
        "win-new-service", "New service installed", "medium", ["attack.persistence", "attack.t1543.003"],
        {"host.name": "lulea-app02"}, 10,
    )  # fmt: skip
    now[0] = at(10) + 2 * HOUR
    cases.set_status(fp, "false_positive", "soc.kim", scope)
    ransom = raise_(
        "win-shadow-delete", "Shadow copies deleted", "critical", ["attack.impact", "attack.t1490"],
        {"host.name": "lulea-fs01", "source.ip": "185.220.101.7"}, 14,
    )  # fmt: skip
    now[0] = at(14) + 30 * 60 * 1_000_000  # 30 min: over the 15-minute target for critical
    cases.set_status(ransom, "acknowledged", "soc.kim", scope)
    now[0] = at(20)  # the reports were recorded as they were sent
    cases.set_nis2(
        ransom, "soc.kim", scope, significant=True, aware_at=at(14),
        early_warning_sent_at=at(14) + 20 * HOUR, notification_sent_at=at(14) + 80 * HOUR,
    )  # fmt: skip
    silent = raise_(
        "health:silence", "Log source went silent", "medium", ["norrvakt.health"],
        {"host": "lulea-door01", "silent_minutes": "180", "expected_gap_minutes": "1440.0"}, 21,
    )  # fmt: skip
    return {"spray": spray, "fp": fp, "ransom": ransom, "silent": silent}


def _followup(rt: Runtime) -> None:
    with rt.state.begin() as conn:
        plan = followup_rows.add_plan(
            conn,
            {
                "tenant": "lulea", "dataset": "socialtjanst.record_access", "title": "IFO",
                "frequency": "monthly", "random_sample": 5, "targeted_per_reason": 2,
                "reviewer": "lulea.granskare", "created_by": "admin", "created_at": at(1, month=10),
                "active": True,
            },
        )  # fmt: skip
        done = followup_rows.add_round(
            conn,
            {
                "plan_id": plan, "tenant": "lulea", "period_start": at(1, 0, month=10),
                "period_end": at(1, 0), "period_label": "2026-10", "population": 40,
                "created_by": "lulea.granskare", "created_at": at(2),
                "status": "signed_off", "signed_off_by": "lulea.granskare", "signed_off_at": at(9),
                "digest": "0" * 64, "signoff_seq": 1, "reason_totals": "{}",
            },
        )  # fmt: skip
        followup_rows.add_items(
            conn,
            [
                {
                    "round_id": done, "tenant": "lulea", "seq": i, "event_ts": at(5, month=10),
                    "user_name": "u", "subject": "s", "action": "read", "summary": "", "reasons": "random",
                    "decision": "justified", "decided_by": "lulea.granskare", "decided_at": at(6 + i),
                }
                for i in range(3)
            ],
        )  # fmt: skip


@pytest.fixture(scope="session")
def world(tmp_path_factory: pytest.TempPathFactory, chdb_path: Path) -> Iterator[World]:
    tmp = tmp_path_factory.mktemp("reports")
    settings = load_settings(
        overrides={
            "data_dir": str(tmp / "data"),
            "tenants": TENANTS,
            "sources": [],
            "store.dsn": f"chdb://{chdb_path}",
            "store.database": f"reports_{os.getpid()}_{next(_db)}",
            "store.retention_days": 0,
            "integrity.witnesses": [f"dir:{tmp / 'witness'}"],
            "integrity.checkpoint_every_seconds": 3600,
            "reports.recipients": {"lulea": "ciso@lulea.se, it@lulea.se", "boden": "sakerhet@boden.se"},
            "reports.region_recipients": ["e-namnden@norrbotten.se"],
        }
    )
    loop = Loop()
    rt = open_runtime(settings)
    bootstrap_accounts(rt)

    async def start() -> None:
        await rt.start(with_sources=False)
        await rt.pipeline.commit(_records())
        rt.checkpointer.checkpoint_all()
        await rt.indexer.wait_caught_up(timeout=60)

    loop.run(start())
    case_ids = _alerts(rt)
    _followup(rt)
    yield World(rt, loop, tmp, case_ids)
    loop.run(rt.close())
    loop.close()
