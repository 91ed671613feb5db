"""HTTP ingest on a stateless ingest node: HEC, ``_bulk`` and ``/ingest`` into the streams.

The routes are the single node's (norrvakt/sources/http.py) — the same authentication, limits,
error answers and ``pipeline_error`` events — served by an app that has only them, over the
node's :class:`~norrvakt.cluster.ingest_sink.JetStreamSink` instead of the journal. The ingest
tokens are read from the cluster's state database (``state.url``, PostgreSQL in a cluster),
cached for ten seconds as on a single node; a sender is answered 200 only after JetStream
acknowledged its events, 503 with ``Retry-After`` when the log refused them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI

from norrvakt.cluster.ingest_sink import JetStreamSink
from norrvakt.config import Settings
from norrvakt.event import Event, RawRecord
from norrvakt.parsers.records import parse_one
from norrvakt.sources.bulk_body import BulkPlan, parse_bulk_body
from norrvakt.sources.hec_body import BadPart, parse_hec_body


@dataclass
class SinkPipeline:
    """What the HTTP routes call on a node's pipeline, over the ingest node's sink. Parsing
    runs in this process (an ingest node is one process per core)."""

    sink: JetStreamSink

    def transport_error(self, source_id: str, reason: str) -> None:
        self.sink.transport_error(source_id, reason)

    def _count(self, source_id: str, events: Sequence[Event]) -> None:
        self.sink.counters.count([source_id] * len(events), events)

    async def commit(self, events: Sequence[Event]) -> None:
        await self.sink.commit_nowait(events)

    async def parse_async(self, records: Sequence[RawRecord]) -> list[Event]:
        events = [parse_one(r) for r in records]
        self.sink.counters.count([r.source_id for r in records], events)
        return events

    async def parse_hec(
        self, body: bytes, max_event_bytes: int, template: RawRecord
    ) -> tuple[list[Event], list[BadPart]]:
        _, events, bad = parse_hec_body(body, max_event_bytes, template)
        self._count(template.source_id, events)
        return events, bad

    async def parse_bulk(
        self, body: bytes, max_event_bytes: int, index: str | None, template: RawRecord
    ) -> tuple[BulkPlan, list[Event]]:
        plan, events = parse_bulk_body(body, max_event_bytes, index, template)
        self._count(template.source_id, events)
        return plan, events


@dataclass
class IngestNodeRuntime:
    """The part of a node's Runtime the ingest routes read."""

    settings: Settings
    state: Any  # the cluster's state database (tokens)
    pipeline: SinkPipeline
    token_cache: Any = None
    extras: dict[str, Any] = field(default_factory=dict)


def ingest_app(runtime: IngestNodeRuntime) -> FastAPI:
    """The same ingest routes a node's ingest port serves (HEC, ``_bulk``, ``/ingest``, OTLP
    ``/v1/logs``), with the same answers and headers, over the cluster's sink."""
    from norrvakt.node.ingest_port import ingest_routes_app

    return ingest_routes_app(runtime)
