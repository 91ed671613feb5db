"""The Microsoft 365 / Entra ID connector: pulls one municipality's Microsoft tenant.

    [[sources]]
    id = "m365-lulea"
    type = "m365"
    tenant = "lulea"
    m365.directory_id = "<Entra ID tenant id>"
    m365.client_id = "<application (client) id>"
    m365.feeds = ["Audit.AzureActiveDirectory", "Audit.Exchange", "graph.signIns"]

The client secret or certificate is not in the configuration: `norrvakt m365 set-credential`
stores it encrypted (norrvakt/sources/m365/credentials.py). Every ``poll_interval_s`` the
connector pulls each feed window by window (norrvakt/sources/m365/checkpoints.py) and hands
each record to the pipeline as ``RawRecord(format="m365", hints={"m365.feed": feed})``; the
checkpoint moves only once the journal says the records are durable. The tenant is the
connector's, never anything in a record.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import sqlalchemy as sa

from norrvakt.event import Event, RawRecord, now_us
from norrvakt.parsers.records import pipeline_error_event
from norrvakt.sources.base import RecordSink, register_source
from norrvakt.sources.m365.auth import DEFAULT_LOGIN_URL, AuthError, TokenSource
from norrvakt.sources.m365.checkpoints import MINUTE, FeedState, WindowPlan
from norrvakt.sources.m365.credentials import CredentialBox, CredentialError
from norrvakt.sources.m365.feeds import ALL_FEEDS, GRAPH_FEEDS, MANAGEMENT_FEEDS, Chunk, FeedPuller, Item
from norrvakt.sources.m365.fetch import ApiClient, FetchError, Retry
from norrvakt.sources.m365.graph import DEFAULT_GRAPH_URL, GraphFeed
from norrvakt.sources.m365.health import gap_event, stale_event
from norrvakt.sources.m365.management_api import DEFAULT_MANAGE_URL, ManagementFeed
from norrvakt.state.db import make_engine
from norrvakt.state.m365 import load_credential

if TYPE_CHECKING:
    from norrvakt.config import Settings, SourceSettings

log = logging.getLogger(__name__)

FORMAT = "m365"


@dataclass(frozen=True)
class M365ConnectorConfig:
    """One municipality's Microsoft tenant (``directory_id``) pulled into Norrvakt tenant
    ``tenant``. ``feeds``: Management Activity API content types and ``graph.*`` feeds
    (norrvakt/sources/m365/feeds.py). The URLs are overridable for national clouds and tests;
    ``ca_file`` trusts a private CA for them (empty: the system's)."""

    id: str
    tenant: str
    directory_id: str
    client_id: str
    state_url: str
    data_dir: Path
    feeds: tuple[str, ...] = ALL_FEEDS
    poll_interval_s: float = 60.0
    plan: WindowPlan = field(default_factory=WindowPlan)
    graph_delay_s: float = 0.0  # Graph feeds' windows end this long before now
    stale_after_s: float = 3600.0
    login_url: str = DEFAULT_LOGIN_URL
    manage_url: str = DEFAULT_MANAGE_URL
    graph_url: str = DEFAULT_GRAPH_URL
    ca_file: str = ""
    retry: Retry = field(default_factory=Retry)
    max_windows_per_cycle: int = 200

    def build(self) -> M365Connector:
        unknown = [f for f in self.feeds if f not in ALL_FEEDS]
        if unknown:
            raise ValueError(f"{self.id}: unknown feeds {unknown}; known: {', '.join(ALL_FEEDS)}")
        return M365Connector(self)


@register_source("m365")
def _from_settings(src: SourceSettings, settings: Settings) -> M365ConnectorConfig:
    m = src.m365
    return M365ConnectorConfig(
        id=src.id,
        tenant=src.tenant,
        directory_id=m.directory_id,
        client_id=m.client_id,
        state_url=settings.state_url(),
        data_dir=settings.data_path,
        feeds=tuple(m.feeds),
        poll_interval_s=m.poll_interval_s,
        plan=WindowPlan(
            window=int(m.window_minutes * MINUTE),
            overlap=int(m.overlap_minutes * MINUTE),
            initial_lookback=int(m.initial_lookback_hours * 60 * MINUTE),
        ),
        stale_after_s=m.stale_after_minutes * 60,
        graph_delay_s=m.graph_delay_minutes * 60,
        login_url=m.login_url,
        manage_url=m.manage_url,
        graph_url=m.graph_url,
        ca_file=m.ca_file,
    )


class M365Connector:
    def __init__(self, config: M365ConnectorConfig) -> None:
        self.config = config
        self.id = config.id
        self._engine: sa.Engine | None = None
        self._sink: RecordSink | None = None
        self._task: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()
        self._api: ApiClient | None = None
        self._credential_version: int | None = None
        self._states: dict[str, FeedState] = {}
        self._pullers: dict[str, tuple[ApiClient, FeedPuller]] = {}
        self._stale_reported: set[str] = set()
        self._gap_reported: set[tuple[str, int]] = set()
        self.started_at = now_us()
        self.cycles = 0

    def describe(self) -> str:
        return f"m365 pull {self.config.directory_id} → {self.config.tenant} ({len(self.config.feeds)} feeds)"

    async def start(self, pipeline: RecordSink) -> None:
        self.attach(pipeline)
        self._stop.clear()
        self._task = asyncio.get_running_loop().create_task(self._run(), name=f"m365:{self.id}")

    def attach(self, pipeline: RecordSink) -> None:
        """Wire the connector without starting its loop (``start`` does both; a test drives
        :meth:`cycle` itself)."""
        self._sink = pipeline
        if self._engine is None:
            self._engine = make_engine(self.config.state_url)  # the node ran the migrations already

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._api is not None:
            await self._api.close()
            self._api = None
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None

    async def _run(self) -> None:
        while not self._stop.is_set():
            try:
                await self.cycle()
            except asyncio.CancelledError:
                raise
            except Exception:  # a bug must not end the pulling for good; it is logged each cycle
                log.exception("%s: pull cycle failed", self.id)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self.config.poll_interval_s)

    async def cycle(self) -> None:
        """One round over every feed (the loop calls this every ``poll_interval_s``)."""
        self.cycles += 1
        assert self._engine is not None
        api, why = await self._client()
        for feed in self.config.feeds:
            state = await self._state(feed)
            if api is None:
                await asyncio.to_thread(state.failed, why, now_us())
            else:
                await self._pull_feed(api, feed, state)
            await self._check_stale(feed, state)

    async def _state(self, feed: str) -> FeedState:
        state = self._states.get(feed)
        if state is None:
            assert self._engine is not None
            cfg = self.config
            plan = cfg.plan
            if feed in GRAPH_FEEDS and cfg.graph_delay_s:
                plan = dataclasses.replace(plan, delay=int(cfg.graph_delay_s * 1_000_000))
            state = await asyncio.to_thread(
                FeedState.load, self._engine, cfg.id, feed, cfg.tenant, plan, now_us()
            )
            self._states[feed] = state
        return state

    async def _client(self) -> tuple[ApiClient | None, str]:
        """The API client with the stored credential (made again when it was set anew)."""
        cfg = self.config
        assert self._engine is not None
        row = await asyncio.to_thread(load_credential, self._engine, cfg.id)
        if row is None:
            return None, f"no credential stored for {cfg.id} (norrvakt m365 set-credential)"
        if row["tenant"] != cfg.tenant:
            return None, f"the stored credential of {cfg.id} was set for another tenant"
        if self._api is not None and self._credential_version == row["updated_at"]:
            return self._api, ""
        try:
            cred = CredentialBox.open(cfg.data_dir).unseal(cfg.id, cfg.tenant, bytes(row["ciphertext"]))
        except CredentialError as exc:
            return None, str(exc)
        if self._api is not None:
            await self._api.close()
        verify: bool | str = cfg.ca_file or True
        tokens = TokenSource(cfg.id, cfg.login_url, cfg.directory_id, cfg.client_id, cred, verify=verify)
        self._api = ApiClient(cfg.id, tokens, cfg.retry, verify=verify)
        self._credential_version = row["updated_at"]
        return self._api, ""

    def _puller(self, api: ApiClient, feed: str) -> FeedPuller:
        """The feed's puller, kept while the client is (a subscription is started once per run)."""
        cfg = self.config
        found = self._pullers.get(feed)
        if found is not None and found[0] is api:
            return found[1]
        puller: FeedPuller
        if feed in MANAGEMENT_FEEDS:
            puller = ManagementFeed(api, cfg.manage_url, cfg.directory_id, feed)
        else:
            assert feed in GRAPH_FEEDS
            puller = GraphFeed(api, cfg.graph_url, feed)
        self._pullers[feed] = (api, puller)
        return puller

    async def _pull_feed(self, api: ApiClient, feed: str, state: FeedState) -> None:
        puller = self._puller(api, feed)
        # Up to the time the round began: a later "now" each window would make the loop pull the
        # overlap again and again, a few milliseconds further each time.
        until = now_us()
        try:
            for _ in range(self.config.max_windows_per_cycle):
                now = until
                window = state.next_window(until)
                if window is None:
                    break
                if window.gap is not None and (feed, window.gap[0]) not in self._gap_reported:
                    self._gap_reported.add((feed, window.gap[0]))
                    log.error("%s: %s content expired before it was pulled (%s)", self.id, feed, window.gap)
                    await self._commit([gap_event(self.id, self.config.tenant, feed, *window.gap, now)])
                async for chunk in puller.pull(window.start, window.end, state.seen_before):
                    await self._take(feed, state, chunk)
                await asyncio.to_thread(state.done, window.end, now_us())
                self._stale_reported.discard(feed)
        except (FetchError, AuthError) as exc:
            log.warning("%s: %s: %s", self.id, feed, exc)
            await asyncio.to_thread(state.failed, str(exc), now_us())
        except Exception as exc:  # the journal refused (disk full …): the window is pulled again later
            log.error("%s: %s: records not durable, the checkpoint stays: %s", self.id, feed, exc)
            await asyncio.to_thread(
                state.failed, f"records not durable: {type(exc).__name__}: {exc}", now_us()
            )

    async def _take(self, feed: str, state: FeedState, chunk: Chunk) -> None:
        """Hand a chunk's new records to the pipeline; remember them once durable."""
        assert self._sink is not None
        cfg = self.config
        received = now_us()
        records: list[RawRecord] = []
        fresh: list[Item] = []
        duplicates = 0
        for item in chunk.items:
            if state.seen_before(item.id):  # an earlier page or listing, or this one twice
                duplicates += 1
                continue
            state.remember(item.id, item.at)  # (undone below if the journal refuses)
            fresh.append(item)
            records.append(
                RawRecord(
                    tenant=cfg.tenant,
                    source_id=cfg.id,
                    received_at=received,
                    peer=f"m365:{feed}",
                    payload=item.payload,
                    format=FORMAT,
                    hints={"m365.feed": feed},
                )
            )
        errors = [
            pipeline_error_event(
                RawRecord(
                    cfg.tenant,
                    cfg.id,
                    received,
                    f"m365:{feed}",
                    value,
                    format=FORMAT,
                    hints={"m365.feed": feed},
                ),
                "m365.bad_record",
                why,
            )
            for value, why in chunk.bad
        ]
        try:
            if records:
                await self._sink.submit_nowait(records)
            if errors:
                await self._commit(errors)
        except BaseException:
            for item in fresh:
                state.forget(item.id)
            raise
        for key, at in chunk.marks:
            state.remember(key, at)
        await asyncio.to_thread(state.progress, len(records), duplicates)

    async def _commit(self, events: list[Event]) -> None:
        assert self._sink is not None
        await self._sink.commit_nowait(events)

    async def _check_stale(self, feed: str, state: FeedState) -> None:
        cp = state.cp
        now = now_us()
        since = cp.last_success_at or self.started_at
        if now - since < self.config.stale_after_s * 1_000_000 or feed in self._stale_reported:
            return
        self._stale_reported.add(feed)
        log.error("%s: %s has not been pulled successfully since %s: %s", self.id, feed, since, cp.last_error)
        await self._commit(
            [
                stale_event(
                    self.id, self.config.tenant, feed, cp.last_success_at, self.started_at, now, cp.last_error
                )
            ]
        )
