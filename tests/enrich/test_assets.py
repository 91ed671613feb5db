"""The asset list in the state database, its CSV import, and what an asset and a directory
account do to an alert at intake (severity moved, the reason kept) and at view (shown as now)."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from norrvakt.alerts.model import AlertInput
from norrvakt.alerts.service import AlertService
from norrvakt.config import AlertSettings
from norrvakt.enrich.severity import LEVEL_REASON, RULE_LEVEL, AlertContext
from norrvakt.state import assets as rows
from norrvakt.state import directory
from norrvakt.state.db import make_engine, open_state

CSV = (
    "host;owner;criticality;system\n"
    "TRESERVA-DB01;IT-enheten / Socialförvaltningen;critical;Treserva (socialtjänst)\n"
    "ws-skola-117;Skolförvaltningen;low;Elevdatorer\n"
    "\n"
)


@pytest.fixture(scope="module")
def migrated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("state") / "state.db"
    open_state(f"sqlite:///{path}").dispose()  # the migrations once; each test gets a copy
    return path


@pytest.fixture
def engine(migrated: Path, tmp_path: Path) -> Any:
    shutil.copy(migrated, tmp_path / "state.db")
    e = make_engine(f"sqlite:///{tmp_path / 'state.db'}")
    yield e
    e.dispose()


def _input(level: str, **entities: str) -> AlertInput:
    return AlertInput("lulea", "r-1", "Rule one", level, [], 7, 1_000_000, dict(entities))


def test_csv_import_stores_every_row_lower_cased(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        stored = rows.import_csv(conn, "lulea", CSV, "anna", 5)
    assert [a.host for a in stored] == ["treserva-db01", "ws-skola-117"]
    with engine.connect() as conn:
        found = rows.get(conn, "lulea", "Treserva-DB01")
        assert found is not None and found.criticality == "critical" and found.updated_by == "anna"
        assert rows.listed(conn, ["boden"]) == []


def test_a_bad_row_names_its_line_and_nothing_is_stored(engine: sa.Engine) -> None:
    bad = "host,owner,criticality,system\nweb01,IT,high,Web\nweb02,IT,urgent,Web\n"
    with pytest.raises(rows.AssetError, match=r"CSV line 3: criticality 'urgent' is not one of"):
        rows.parse_csv("lulea", bad)
    with pytest.raises(rows.AssetError, match="header lacks criticality"):
        rows.parse_csv("lulea", "host,owner,system\nweb01,IT,Web\n")
    with engine.connect() as conn:
        assert rows.listed(conn, None) == []


def test_critical_asset_raises_and_low_lowers_the_alert(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        rows.import_csv(conn, "lulea", CSV, "anna", 5)
    ctx = AlertContext(engine)
    up = ctx.adjust(_input("medium", **{"host.name": "treserva-db01.lulea.kommun.local"}))
    assert up.level == "critical"
    assert (
        up.entities[RULE_LEVEL] == "medium" and up.entities[LEVEL_REASON] == "asset treserva-db01: critical"
    )
    down = ctx.adjust(_input("medium", **{"host.name": "WS-SKOLA-117"}))
    assert down.level == "low"
    same = _input("high", **{"host.name": "unknown-host"})
    assert ctx.adjust(same) is same
    assert ctx.adjust(_input("high", **{"host.name": "treserva-db01"})).level == "critical"  # capped


def test_other_tenants_assets_do_not_apply(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        rows.import_csv(conn, "boden", CSV, "erik", 5)
    ctx = AlertContext(engine)
    assert ctx.adjust(_input("medium", **{"host.name": "treserva-db01"})).level == "medium"


def test_privileged_and_departed_accounts_raise_one_level(engine: sa.Engine) -> None:
    admin = directory.Account(
        "lulea", "adm-anna", "Anna (admin)", "CN=adm-anna", ("Domain Admins",), True, False
    )
    gone = directory.Account("lulea", "olle", "Olle", "CN=olle", ("Users",), False, False)
    with engine.begin() as conn:
        directory.replace_tenant(conn, "lulea", [admin, gone], 1)
        counts = directory.replace_tenant(conn, "lulea", [admin], 2)  # olle left
    assert counts == {"accounts": 1, "privileged": 1, "disabled": 0, "departed": 1}
    ctx = AlertContext(engine)
    raised = ctx.adjust(_input("medium", **{"user.name": "LULEA\\Adm-Anna"}))
    assert raised.level == "high" and raised.entities[LEVEL_REASON] == "user adm-anna: privileged"
    departed = ctx.adjust(_input("low", **{"user.target.name": "olle@lulea.se"}))
    assert departed.level == "medium" and "departed" in departed.entities[LEVEL_REASON]
    shown = ctx.describe("lulea", {"user.name": "olle"})
    assert shown["account"]["departed"] is True and shown["account"]["marks"] == ["departed"]


def test_the_intake_stores_the_moved_level_and_an_edit_reaches_it(engine: sa.Engine) -> None:
    service = AlertService(engine, AlertSettings())
    ctx = AlertContext(engine)
    service.level_hook = ctx.adjust
    (plain,) = service.ingest([_input("medium", **{"host.name": "web01"})])
    assert plain.level == "medium"
    with engine.begin() as conn:
        rows.put(conn, rows.checked("lulea", "web02", "IT", "high", "Web"), "anna", 9)
    ctx._asset_watch.every_s = 0  # look at the version now instead of within the second
    (moved,) = service.ingest([_input("medium", **{"host.name": "web02"})])
    assert moved.level == "high" and moved.entities[RULE_LEVEL] == "medium"
    described = ctx.describe("lulea", moved.entities)
    assert described["asset"]["system"] == "Web" and described["level"]["rule"] == "medium"


def test_the_events_address_enrichment_goes_with_the_alert(engine: sa.Engine) -> None:
    from norrvakt.event import Event

    event = Event("lulea", 1, 1, "s", "p", ecs={"source.ip": "83.255.1.1"},
                  fields={"source.geo.country_iso_code": "SE", "source.as.number": "1257",
                          "destination.as.number": "15169"})  # fmt: skip
    inp = _input("medium", **{"source.ip": "83.255.1.1"})
    out = AlertContext(engine).adjust(replace(inp, event=event))
    assert out.level == "medium"
    assert out.entities["source.geo.country_iso_code"] == "SE" and out.entities["source.as.number"] == "1257"
    assert "destination.as.number" not in out.entities  # no destination.ip among the entities
