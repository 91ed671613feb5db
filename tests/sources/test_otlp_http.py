"""The answers of POST /v1/logs that a running server cannot easily be made to give: 429 when
too many export requests are being taken in, 503 when the journal refuses — both with
Retry-After, in the request's encoding. The route runs in a small app of its own with a
pipeline that stands for the node's (journal refusing on demand); the body is a real
ExportLogsServiceRequest."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from types import SimpleNamespace

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

from norrvakt.config import load_settings
from norrvakt.event import Event, RawRecord
from norrvakt.node.pipeline import PipelineUnavailable
from norrvakt.parsers import parse_record
from norrvakt.sources import otlp_http
from norrvakt.sources.http import TokenCache
from norrvakt.state.accounts import IngestToken


class Pipeline:
    def __init__(self) -> None:
        self.refuse = False
        self.events: list[Event] = []
        self.counted: list[tuple[str, str]] = []

    async def parse_async(self, records: Sequence[RawRecord]) -> list[Event]:
        return [parse_record(r) for r in records]

    async def commit(self, events: Sequence[Event]) -> None:
        if self.refuse:
            raise PipelineUnavailable("journal disk failed (test)")
        self.events.extend(events)

    def transport_error(self, source_id: str, reason: str) -> None:
        self.counted.append((source_id, reason))


@pytest.fixture()
def client() -> Iterator[tuple[TestClient, Pipeline]]:
    pipeline = Pipeline()
    token = IngestToken("t", "boden", "otel-boden")
    runtime = SimpleNamespace(
        settings=load_settings(None),
        pipeline=pipeline,
        token_cache=TokenCache(lambda t: token if t == "good" else None),
    )
    app = FastAPI()
    app.include_router(otlp_http.router)
    app.state.runtime = runtime
    with TestClient(app) as c:
        yield c, pipeline


def _body() -> bytes:
    req = ExportLogsServiceRequest()
    rec = req.resource_logs.add().scope_logs.add().log_records.add()
    rec.body.string_value = "hello"
    rec.time_unix_nano = 1795729418412345000
    return req.SerializeToString()


HEADERS = {"Authorization": "Bearer good", "Content-Type": "application/x-protobuf"}


def test_accepted(client: tuple[TestClient, Pipeline]) -> None:
    c, pipeline = client
    resp = c.post("/v1/logs", content=_body(), headers=HEADERS)
    assert resp.status_code == 200 and resp.content == b""  # an empty ExportLogsServiceResponse
    (event,) = pipeline.events
    assert event.tenant == "boden" and event.message == "hello" and event.ts == 1795729418412345


def test_journal_refusing_is_503_with_retry_after(client: tuple[TestClient, Pipeline]) -> None:
    c, pipeline = client
    pipeline.refuse = True
    resp = c.post("/v1/logs", content=_body(), headers={**HEADERS, "Content-Type": "application/json"})
    assert resp.status_code == 400  # a protobuf body sent as JSON is not JSON
    resp = c.post("/v1/logs", content=_body(), headers=HEADERS)
    assert resp.status_code == 503 and resp.headers["Retry-After"] == "5"
    assert resp.headers["content-type"] == "application/x-protobuf" and b"journal disk failed" in resp.content


def test_too_many_in_flight_is_429_with_retry_after(
    client: tuple[TestClient, Pipeline], monkeypatch: pytest.MonkeyPatch
) -> None:
    c, pipeline = client
    monkeypatch.setattr(otlp_http, "_in_flight", otlp_http.MAX_REQUESTS_IN_FLIGHT)
    resp = c.post("/v1/logs", content=b"{}", headers={**HEADERS, "Content-Type": "application/json"})
    assert resp.status_code == 429 and resp.headers["Retry-After"] == "5"
    assert resp.json()["code"] == 8 and "retry later" in resp.json()["message"]
    assert ("otel-boden", "otlp.overloaded") in pipeline.counted


def test_wrong_token_is_403(client: tuple[TestClient, Pipeline]) -> None:
    c, _ = client
    resp = c.post("/v1/logs", content=_body(), headers={**HEADERS, "Authorization": "Bearer bad"})
    assert resp.status_code == 403
