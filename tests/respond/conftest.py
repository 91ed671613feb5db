"""A state database with one Luleå case, the response module switched on for Luleå (not for
Boden), and a ResponseService whose journal keeps what it is given."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from norrvakt.alerts.cases import CaseService
from norrvakt.alerts.model import Change
from norrvakt.alerts.service import AlertService
from norrvakt.config import load_settings
from norrvakt.modules import TenantModules
from norrvakt.respond.service import ResponseService
from norrvakt.state.accounts import Principal
from norrvakt.state.db import open_state, sqlite_url

ANA = Principal("ana", "soc_analyst", None)
BO = Principal("bo", "soc_analyst", None)
LULEA_OFFICER = Principal("lena", "tenant_officer", frozenset({"lulea"}))
BODEN_OFFICER = Principal("bert", "tenant_officer", frozenset({"boden"}))
ALL = ["lulea", "boden"]


@dataclass
class World:
    engine: sa.Engine
    svc: ResponseService
    cases: CaseService
    case_id: int
    boden_case_id: int
    modules: TenantModules
    journaled: list[Change] = field(default_factory=list)

    def history(self, case_id: int | None = None) -> list[Change]:
        return self.cases.history(case_id or self.case_id, ALL)

    def scope(self, p: Principal) -> list[str]:
        return p.scope(ALL)


_MIGRATED: list[Path] = []


def _state(tmp_path: Path) -> sa.Engine:
    """A migrated state database: migrated once per session (~1 s), copied for each test."""
    if not _MIGRATED:
        first = Path(tempfile.mkdtemp(prefix="norrvakt-respond-state-"))
        open_state(sqlite_url(first)).dispose()
        _MIGRATED.append(first / "state.db")
    shutil.copy(_MIGRATED[0], tmp_path / "state.db")
    return open_state(sqlite_url(tmp_path))


def make_world(
    tmp_path: Path, overrides: dict[str, Any] | None = None, state_url: str | None = None
) -> World:
    settings = load_settings(overrides={"data_dir": str(tmp_path), **(overrides or {})})
    engine = open_state(state_url) if state_url else _state(tmp_path)
    alerts = AlertService(engine, settings.alerts)
    cases = CaseService(engine, alerts)
    case, _ = cases.create(ALL, "lulea", "Konto kapat: kim.target", "ana")
    boden, _ = cases.create(ALL, "boden", "Boden's own case", "bert")
    modules = TenantModules(engine)
    modules.set("lulea", {"response": True}, "admin")
    journaled: list[Change] = []

    async def journal(changes: Sequence[Change]) -> None:
        journaled.extend(changes)

    svc = ResponseService(engine, settings, cases, modules, journal, public_url="https://norrvakt.test")
    return World(engine, svc, cases, case.id, boden.id, modules, journaled)


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    w = make_world(tmp_path)
    yield w
    w.engine.dispose()
