"""The rules around every action, on the blocklist (no outside system needed): a second person
approves, the asker cannot; a dry run changes nothing; the rate limit; the response module;
another tenant's case; reject; retry only after a failure."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from norrvakt.alerts.errors import NotFound as CaseNotFound
from norrvakt.event import now_us
from norrvakt.respond.base import Conflict, NotFound, Refused, ResponseError, TooMany
from norrvakt.state import response_actions as store
from norrvakt.state.accounts import Principal
from tests.respond.conftest import ANA, BO, BODEN_OFFICER, LULEA_OFFICER, World, make_world


def _block(w: World, who: Principal = ANA, target: str = "203.0.113.7", **kw: Any) -> dict[str, Any]:
    return asyncio.run(
        w.svc.request(who, w.scope(who), action="block.address", target=target, case_id=w.case_id, **kw)
    )


def test_the_asker_cannot_approve_a_second_person_can(world: World) -> None:
    row = _block(world, reason="C2 server")
    assert row["status"] == "pending_approval" and row["requested_by"] == "ana"
    assert store.active_blocks(world.engine, "lulea", now_us()) == []
    with pytest.raises(Refused, match="second person"):
        asyncio.run(world.svc.approve(ANA, world.scope(ANA), row["id"]))
    done = asyncio.run(world.svc.approve(LULEA_OFFICER, world.scope(LULEA_OFFICER), row["id"]))
    assert done["status"] == "done" and done["approved_by"] == "lena"
    assert [b["address"] for b in store.active_blocks(world.engine, "lulea", now_us())] == ["203.0.113.7/32"]
    with pytest.raises(Conflict, match="not waiting for approval"):  # approved once, run once
        asyncio.run(world.svc.approve(BO, world.scope(BO), row["id"]))


def test_reject_leaves_nothing_done(world: World) -> None:
    row = _block(world)
    out = asyncio.run(world.svc.reject(BO, world.scope(BO), row["id"], "a school's NAT address"))
    assert out["status"] == "rejected" and store.active_blocks(world.engine, "lulea", now_us()) == []
    assert world.history()[-1].action == "response-reject"


def test_dry_run_changes_nothing(world: World) -> None:
    row = _block(world, dry_run=True)
    assert row["status"] == "dry_run" and row["result"].startswith("dry run: would put 203.0.113.7/32")
    assert store.active_blocks(world.engine, "lulea", now_us()) == []
    with pytest.raises(Conflict, match="dry run"):
        asyncio.run(world.svc.undo(ANA, world.scope(ANA), row["id"]))


def test_rate_limit_per_tenant_and_hour(tmp_path: Path) -> None:
    w = make_world(tmp_path, {"response.max_per_hour": 2, "response.require_approval": {"*": []}})
    _block(w, target="203.0.113.1")
    _block(w, target="203.0.113.2")
    with pytest.raises(TooMany, match="2 response actions in the last hour"):
        _block(w, target="203.0.113.3")
    assert _block(w, target="203.0.113.3", dry_run=True)["status"] == "dry_run"  # dry runs not counted
    w.engine.dispose()


def test_a_tenant_without_the_module_is_refused(world: World) -> None:
    with pytest.raises(Refused, match="boden does not subscribe to the response module"):
        asyncio.run(
            world.svc.request(
                ANA,
                world.scope(ANA),
                action="block.address",
                target="198.51.100.9",
                case_id=world.boden_case_id,
            )
        )
    world.modules.set("lulea", {"response": False}, "admin")
    with pytest.raises(Refused):
        _block(world)


def test_another_tenants_case_and_action_are_not_found(world: World) -> None:
    with pytest.raises(CaseNotFound):  # as if Luleå's case did not exist
        _block(world, who=BODEN_OFFICER)
    row = _block(world)
    for step in ("approve", "retry", "undo"):
        with pytest.raises(NotFound):
            asyncio.run(getattr(world.svc, step)(BODEN_OFFICER, world.scope(BODEN_OFFICER), row["id"]))
    assert world.svc.listing(world.scope(BODEN_OFFICER)) == []


def test_bad_input_is_refused_with_the_value(world: World) -> None:
    with pytest.raises(ResponseError, match=r"'ad\.delete'"):
        asyncio.run(
            world.svc.request(ANA, world.scope(ANA), action="ad.delete", target="x", case_id=world.case_id)
        )
    with pytest.raises(Conflict, match="no Active Directory is set up for lulea"):
        asyncio.run(
            world.svc.request(ANA, world.scope(ANA), action="ad.disable", target="x", case_id=world.case_id)
        )
    row = _block(world, target="10.0.0.0/8")
    done = asyncio.run(world.svc.approve(BO, world.scope(BO), row["id"]))
    assert done["status"] == "failed" and "wider than /16" in done["result"]


def test_undo_takes_the_address_off_and_retry_only_after_a_failure(world: World) -> None:
    row = _block(world, params={"hours": 2})
    done = asyncio.run(world.svc.approve(BO, world.scope(BO), row["id"]))
    with pytest.raises(Conflict, match="only a failed action"):
        asyncio.run(world.svc.retry(ANA, world.scope(ANA), row["id"]))
    undone = asyncio.run(world.svc.undo(ANA, world.scope(ANA), done["id"]))
    assert undone["status"] == "undone" and undone["undone_by"] == "ana"
    assert store.active_blocks(world.engine, "lulea", now_us()) == []


def test_the_same_on_postgresql(tmp_path: Path) -> None:
    # the compare-and-set claim, the rate count and the blocklist queries on the other backend
    from tests.state.postgres import cluster

    w = make_world(tmp_path, {"response.max_per_hour": 1}, state_url=cluster().new_database())
    row = _block(w)
    with pytest.raises(Refused):
        asyncio.run(w.svc.approve(ANA, w.scope(ANA), row["id"]))
    assert asyncio.run(w.svc.approve(BO, w.scope(BO), row["id"]))["status"] == "done"
    with pytest.raises(Conflict):
        asyncio.run(w.svc.approve(LULEA_OFFICER, w.scope(LULEA_OFFICER), row["id"]))
    with pytest.raises(TooMany):
        _block(w, target="203.0.113.8")
    assert [b["address"] for b in store.active_blocks(w.engine, "lulea", now_us())] == ["203.0.113.7/32"]
    assert asyncio.run(w.svc.undo(ANA, w.scope(ANA), row["id"]))["status"] == "undone"
    assert store.active_blocks(w.engine, "lulea", now_us()) == []
    assert [c.action for c in w.history()][-4:] == [
        "response-request",
        "response-approve",
        "response-done",
        "response-undone",
    ]
    w.engine.dispose()
