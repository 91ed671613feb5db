"""Alert and case tests run on both state backends (SQLite and a real PostgreSQL)."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from dataclasses import replace

import pytest
import sqlalchemy as sa

from norrvakt.alerts.cases import CaseService
from norrvakt.alerts.model import AlertInput
from norrvakt.alerts.service import AlertService
from norrvakt.config import AlertSettings
from tests.state.conftest import engine  # noqa: F401 - the two-backend fixture

T0 = 1_767_225_600_000_000  # 2026-01-01 00:00 UTC in microseconds
MIN = 60 * 1_000_000


class Clock:
    """A settable wall clock (microseconds), so tests can age alerts and cases."""

    def __init__(self, now: int = T0) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += int(seconds * 1_000_000)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def settings() -> AlertSettings:
    return AlertSettings()


@pytest.fixture
def service(engine: sa.Engine, settings: AlertSettings, clock: Clock) -> Iterator[AlertService]:  # noqa: F811
    svc = AlertService(engine, settings, clock=clock)
    svc.warm()
    yield svc


@pytest.fixture
def cases(engine: sa.Engine, service: AlertService, clock: Clock) -> CaseService:  # noqa: F811
    return CaseService(engine, service, clock=clock)


_seq = itertools.count(1)


def spray_input(user: str = "anna.berg", ip: str = "185.220.101.7", **changes: object) -> AlertInput:
    """One failed logon matched by a password-spraying rule."""
    seq = next(_seq)
    base = AlertInput(
        tenant="lulea",
        rule_id="win-password-spray",
        rule_title="Password spraying",
        level="high",
        tags=["attack.credential_access", "attack.t1110.003"],
        event_seq=seq,
        event_ts=T0 + seq * 2_000_000,
        entities={"source.ip": ip, "user.name": user, "host.name": "lulea-dc01"},
    )
    return replace(base, **changes)  # type: ignore[arg-type]


@pytest.fixture
def make_input() -> Callable[..., AlertInput]:
    return spray_input
