"""OTLP/HTTP logs into a real ``norrvakt serve``: the OpenTelemetry Python SDK's OTLP/HTTP log
exporter (protobuf, plain and gzip), OTLP JSON written by hand, and bad bodies."""

from __future__ import annotations

import gzip
import json
import uuid

import httpx
import pytest
from opentelemetry._logs import SeverityNumber
from opentelemetry.exporter.otlp.proto.common._log_encoder import encode_logs
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceResponse
from opentelemetry.sdk._logs import LoggerProvider, ReadableLogRecord
from opentelemetry.sdk._logs.export import (
    InMemoryLogRecordExporter,
    LogRecordExportResult,
    SimpleLogRecordProcessor,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider

from tests.e2e.harness import Server


@pytest.fixture(scope="module")
def token(server: Server) -> str:
    return server.ingest_token("boden", "otel-boden")


def _m() -> str:
    return "o" + uuid.uuid4().hex[:12]


def _records(marker: str, n: int = 3) -> tuple[list[ReadableLogRecord], str]:
    """n log records emitted through the SDK's logger inside a real span; the span's trace id
    in hex."""
    memory = InMemoryLogRecordExporter()
    provider = LoggerProvider(
        resource=Resource.create({"service.name": "e-tjanst", "host.name": f"app-{marker}"})
    )
    provider.add_log_record_processor(SimpleLogRecordProcessor(memory))
    logger = provider.get_logger("kommun.login", "1.2")
    tracer = TracerProvider().get_tracer("kommun")
    try:
        with tracer.start_as_current_span("login") as span:
            trace_id = format(span.get_span_context().trace_id, "032x")
            for i in range(n):
                logger.emit(
                    severity_number=SeverityNumber.WARN,
                    severity_text="WARN",
                    body=f"login failed for anna {marker} #{i}",
                    attributes={"user.name": "anna", "try": i, "client.address": "10.1.2.3"},
                )
    finally:
        provider.shutdown()
    return list(memory.get_finished_logs()), trace_id


@pytest.mark.parametrize("compression", [Compression.NoCompression, Compression.Gzip])
def test_sdk_exporter_protobuf(server: Server, token: str, compression: Compression) -> None:
    m = _m()
    batch, trace_id = _records(m)
    exporter = OTLPLogExporter(
        endpoint=f"{server.url}/v1/logs",
        headers={"authorization": f"Bearer {token}"},
        compression=compression,
    )
    try:
        assert exporter.export(batch) == LogRecordExportResult.SUCCESS
    finally:
        exporter.shutdown()
    assert server.wait_count(m, 3, tenant="boden") == 3
    rows = server.search(m, tenant="boden")["rows"]
    ecs, fields = rows[0]["ecs"], rows[0]["fields"]
    assert ecs["service.name"] == "e-tjanst" and ecs["host.name"] == f"app-{m}"
    assert ecs["log.level"] == "warn"
    assert fields["trace.id"] == trace_id  # hex, exactly the span's
    assert len(fields["span.id"]) == 16
    assert fields["user.name"] == "anna" and ecs["user.name"] == "anna" and ecs["source.ip"] == "10.1.2.3"
    assert fields["otel.scope.name"] == "kommun.login" and fields["otel.scope.version"] == "1.2"
    assert server.count(m, tenant="lulea") == 0


def _json_request(marker: str, trace_id: str, span_id: str, bad_trace: str = "") -> dict[str, object]:
    def kv(key: str, value: object) -> dict[str, object]:
        return {"key": key, "value": value}

    good = {
        "timeUnixNano": "1795729418412345000",
        "severityNumber": 17,
        "severityText": "ERROR",
        "body": {"stringValue": f"disk full {marker}"},
        "attributes": [kv("code.function", {"stringValue": "write"}), kv("retry", {"intValue": "3"})],
        "traceId": trace_id,
        "spanId": span_id,
    }
    records = [good]
    if bad_trace:
        records.append({**good, "traceId": bad_trace, "body": {"stringValue": f"bad id {marker}"}})
    return {
        "resourceLogs": [
            {
                "resource": {"attributes": [kv("service.name", {"stringValue": "ekonomi"})]},
                "scopeLogs": [{"scope": {"name": "ekonomi.batch"}, "logRecords": records}],
            }
        ]
    }


def test_json_by_hand_keeps_hex_ids(server: Server, token: str) -> None:
    m = _m()
    trace_id, span_id = "5b8efff798038103d269b633813fc60c", "eee19b7ec3c1b174"
    resp = httpx.post(
        f"{server.url}/v1/logs",
        content=json.dumps(_json_request(m, trace_id, span_id)),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"].startswith("application/json") and resp.json() == {}
    assert server.wait_count(m, 1, tenant="boden") == 1
    row = server.search(m, tenant="boden")["rows"][0]
    assert row["fields"]["trace.id"] == trace_id and row["fields"]["span.id"] == span_id
    assert row["fields"]["retry"] == "3" and row["ecs"]["log.level"] == "error"


def test_json_gzip_partial_success(server: Server, token: str) -> None:
    m = _m()
    before = server.count("error.type:otlp.bad_record", tenant="boden")
    body = gzip.compress(json.dumps(_json_request(m, "0" * 31 + "1", "1" * 16, bad_trace="xyz")).encode())
    resp = httpx.post(
        f"{server.url}/v1/logs",
        content=body,
        headers={
            "Authorization": f"Bearer {token}",
            "Content-Type": "application/json",
            "Content-Encoding": "gzip",
        },
    )
    assert resp.status_code == 200, resp.text
    partial = resp.json()["partialSuccess"]
    assert partial["rejectedLogRecords"] == "1"
    assert "logRecords[1]" in partial["errorMessage"] and "traceId" in partial["errorMessage"]
    assert server.wait_count(m, 1, tenant="boden") == 1
    # the bad one is kept as a pipeline error, naming where it was and why
    assert server.wait_count("error.type:otlp.bad_record", before + 1, tenant="boden") == before + 1
    newest = server.search("error.type:otlp.bad_record", tenant="boden")["rows"][0]["ecs"]
    assert "logRecords[1]" in newest["error.message"] and 'traceId is "xyz"' in newest["error.message"]


def test_protobuf_partial_success_answered_in_protobuf(server: Server, token: str) -> None:
    m = _m()
    batch, _ = _records(m, 2)
    request = encode_logs(batch)
    request.resource_logs[0].scope_logs[0].log_records[1].span_id = b"\x01\x02\x03"  # 3 bytes, not 8
    resp = httpx.post(
        f"{server.url}/v1/logs",
        content=request.SerializeToString(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/x-protobuf"},
    )
    assert resp.status_code == 200 and resp.headers["content-type"] == "application/x-protobuf"
    answer = ExportLogsServiceResponse.FromString(resp.content)
    assert answer.partial_success.rejected_log_records == 1
    assert "spanId is 3 bytes" in answer.partial_success.error_message


def test_bad_protobuf_is_400_and_a_pipeline_error(server: Server, token: str) -> None:
    before = server.count("error.type:otlp.bad_protobuf", tenant="boden")
    resp = httpx.post(
        f"{server.url}/v1/logs",
        content=b"\x0a\xff\xff\xff\xff\x0f garbage",
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/x-protobuf"},
    )
    assert resp.status_code == 400 and resp.headers["content-type"] == "application/x-protobuf"
    assert b"not a protobuf ExportLogsServiceRequest" in resp.content  # google.rpc.Status message
    assert server.wait_count("error.type:otlp.bad_protobuf", before + 1, tenant="boden") == before + 1


def test_oversize_after_gzip_is_413(server: Server, token: str) -> None:
    before = server.count("error.type:http.decompressed_too_large", tenant="boden")
    bomb = gzip.compress(b'{"resourceLogs":[' + b" " * (80 * 1024 * 1024) + b"]}")
    assert len(bomb) < 1024 * 1024
    resp = httpx.post(
        f"{server.url}/v1/logs",
        content=bomb,
        headers={
            "Authorization": f"Bearer {token}",
            "Content-Type": "application/json",
            "Content-Encoding": "gzip",
        },
        timeout=60,
    )
    assert resp.status_code == 413
    assert "max_decompressed_bytes" in resp.json()["message"]
    assert (
        server.wait_count("error.type:http.decompressed_too_large", before + 1, tenant="boden") == before + 1
    )


def test_unknown_content_type_is_415(server: Server, token: str) -> None:
    before = server.count("error.type:otlp.unsupported_content_type", tenant="boden")
    resp = httpx.post(
        f"{server.url}/v1/logs",
        content=b"hello",
        headers={"Authorization": f"Bearer {token}", "Content-Type": "text/plain"},
    )
    assert resp.status_code == 415 and "application/x-protobuf" in resp.json()["message"]
    assert (
        server.wait_count("error.type:otlp.unsupported_content_type", before + 1, tenant="boden")
        == before + 1
    )


def test_no_token_is_401_in_the_request_encoding(server: Server) -> None:
    resp = httpx.post(
        f"{server.url}/v1/logs", content=b"", headers={"Content-Type": "application/x-protobuf"}
    )
    assert resp.status_code == 401 and resp.headers["content-type"] == "application/x-protobuf"
