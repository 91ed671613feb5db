"""The stand-in, a state database, and a connector wired to a sink that keeps what it gets."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from norrvakt.event import Event, RawRecord
from norrvakt.sources.m365.checkpoints import MINUTE, WindowPlan
from norrvakt.sources.m365.connector import M365Connector, M365ConnectorConfig
from norrvakt.sources.m365.credentials import Credential, CredentialBox
from norrvakt.sources.m365.fetch import Retry
from norrvakt.state.db import open_state, sqlite_url
from norrvakt.state.m365 import save_credential
from tests.m365.standin import CLIENT_ID, DIRECTORY, SECRET, StandIn


class KeepingSink:
    """A RecordSink that is durable at once (the journal's part is tested elsewhere) and keeps
    the records and events, so a test can count them."""

    def __init__(self) -> None:
        self.records: list[RawRecord] = []
        self.events: list[Event] = []
        self.refuse = False

    def _done(self) -> asyncio.Future[None]:
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self.refuse:
            fut.set_exception(OSError("journal refused: disk full"))
        else:
            fut.set_result(None)
        return fut

    def submit_nowait(self, records: Sequence[RawRecord]) -> asyncio.Future[None]:
        fut = self._done()
        if not self.refuse:
            self.records.extend(records)
        return fut

    def commit_nowait(self, events: Sequence[Event]) -> asyncio.Future[None]:
        fut = self._done()
        if not self.refuse:
            self.events.extend(events)
        return fut

    def transport_error(self, source_id: str, reason: str) -> None:
        pass

    def ids(self) -> list[str]:
        import json

        out = []
        for r in self.records:
            doc: dict[str, Any] = json.loads(r.payload)
            out.append(str(doc.get("Id") or doc.get("id")))
        return out


@pytest.fixture
def standin(tmp_path: Path) -> Iterator[StandIn]:
    with StandIn(tmp_path) as ms:
        yield ms


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[sa.Engine]:
    eng = open_state(sqlite_url(tmp_path))
    yield eng
    eng.dispose()


def make_config(tmp_path: Path, ms: StandIn, feeds: tuple[str, ...], **kw: Any) -> M365ConnectorConfig:
    plan = kw.pop(
        "plan", WindowPlan(window=60 * MINUTE, overlap=10 * MINUTE, initial_lookback=6 * 60 * MINUTE)
    )
    return M365ConnectorConfig(
        id=kw.pop("id", "m365-lulea"),
        tenant=kw.pop("tenant", "lulea"),
        directory_id=DIRECTORY,
        client_id=CLIENT_ID,
        state_url=sqlite_url(tmp_path),
        data_dir=tmp_path,
        feeds=feeds,
        plan=plan,
        login_url=ms.base,
        manage_url=ms.base,
        graph_url=ms.base,
        ca_file=ms.ca_file,
        retry=kw.pop("retry", Retry(attempts=4, backoff_base_s=0.05, backoff_max_s=0.2, timeout_s=1.0)),
        **kw,
    )


def store_secret(
    engine: sa.Engine, data_dir: Path, connector: str = "m365-lulea", tenant: str = "lulea"
) -> None:
    blob = CredentialBox.open(data_dir).seal(connector, tenant, Credential.from_secret(SECRET))
    save_credential(engine, connector, tenant, "secret", blob, by="test")


def connector(
    tmp_path: Path, ms: StandIn, engine: sa.Engine, feeds: tuple[str, ...], sink: KeepingSink, **kw: Any
) -> M365Connector:
    store_secret(engine, tmp_path, kw.get("id", "m365-lulea"), kw.get("tenant", "lulea"))
    conn = make_config(tmp_path, ms, feeds, **kw).build()
    conn.attach(sink)
    return conn


def sync(fn: Any) -> Any:
    """Run an async test body in a fresh event loop (the project has no asyncio test plugin)."""
    import functools

    @functools.wraps(fn)
    def run(*args: Any, **kwargs: Any) -> Any:
        return asyncio.run(fn(*args, **kwargs))

    return run
