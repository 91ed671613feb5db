"""What every network source is: a frozen config with ``build()``, and a running listener.

A source turns bytes into :class:`~norrvakt.event.RawRecord` and hands them to the pipeline;
it acknowledges its sender only after the pipeline says the records are durable.
Built-in sources register here exactly as a plugin would (:mod:`norrvakt.sources.builtin`
imports them and builds the configured sources)::

    @register_source("syslog")
    @dataclass(frozen=True)
    class SyslogSourceConfig: ...
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from norrvakt.config import Settings, SourceSettings
    from norrvakt.event import Event, RawRecord


class Source(Protocol):
    id: str

    async def start(self, pipeline: RecordSink) -> None: ...

    async def stop(self) -> None: ...

    def describe(self) -> str: ...


class RecordSink(Protocol):
    """Where a stream listener hands what it receives: the node's
    :class:`~norrvakt.node.pipeline.Pipeline`, or in a worker process its
    :class:`~norrvakt.node.journal_link.JournalLink` to the node. Each future resolves when
    the records are durable, which is when the listener may acknowledge them."""

    def submit_nowait(self, records: Sequence[RawRecord]) -> asyncio.Future[None]: ...

    def commit_nowait(self, events: Sequence[Event]) -> asyncio.Future[None]: ...

    def transport_error(self, source_id: str, reason: str) -> None: ...


class SourceConfig(Protocol):
    def build(self) -> Source: ...


SourceFactory = Callable[["SourceSettings", "Settings"], SourceConfig]
SOURCE_TYPES: dict[str, SourceFactory] = {}


def register_source(name: str) -> Callable[[SourceFactory], SourceFactory]:
    def deco(factory: SourceFactory) -> SourceFactory:
        SOURCE_TYPES[name] = factory
        return factory

    return deco


def peer_of(transport: Any) -> tuple[str, int]:
    info = transport.get_extra_info("peername")
    if isinstance(info, tuple) and len(info) >= 2:
        return str(info[0]), int(info[1])
    return "unknown", 0
