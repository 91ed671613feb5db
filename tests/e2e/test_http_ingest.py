"""HEC, Elasticsearch _bulk and JSON ingest: tokens decide the tenant; errors are HTTP errors."""

from __future__ import annotations

import base64
import json
import uuid

import httpx
import pytest

from tests.e2e.harness import Server


@pytest.fixture(scope="module")
def token(server: Server) -> str:
    return server.ingest_token("boden", "boden-hec")


def _m() -> str:
    return "h" + uuid.uuid4().hex[:12]


def test_hec_event_batch_goes_to_the_token_tenant(server: Server, token: str) -> None:
    m = _m()
    body = "".join(  # HEC allows concatenated objects without newlines
        json.dumps(
            {
                "time": 1795729970,
                "host": "vm",
                "sourcetype": "syslog",
                "event": {
                    "program": "sshd",
                    "message": f"Failed password for anna from 10.1.2.3 port 22 ssh2 {m}",
                    "tenant": "lulea",
                },
            }
        )
        for _ in range(3)
    )
    resp = httpx.post(
        f"{server.url}/services/collector/event", content=body, headers={"Authorization": f"Splunk {token}"}
    )
    assert resp.status_code == 200 and resp.json() == {"text": "Success", "code": 0}
    assert server.wait_count(m, 3, tenant="boden") == 3
    assert server.count(m, tenant="lulea") == 0  # "tenant" in the payload is just a field


def test_hec_raw(server: Server, token: str) -> None:
    m = _m()
    resp = httpx.post(
        f"{server.url}/services/collector/raw?host=web01&sourcetype=access_combined",
        content=f"line one {m}\nline two {m}\n",
        headers={"Authorization": f"Splunk {token}"},
    )
    assert resp.status_code == 200
    assert server.wait_count(m, 2, tenant="boden") == 2


@pytest.mark.parametrize(
    "headers,status,code",
    [
        ({}, 401, 2),
        ({"Authorization": "Splunk wrong-token"}, 403, 4),
        ({"Authorization": "Bearer nope"}, 403, 4),
    ],
)
def test_hec_bad_tokens(server: Server, headers: dict[str, str], status: int, code: int) -> None:
    resp = httpx.post(f"{server.url}/services/collector/event", content='{"event":"x"}', headers=headers)
    assert resp.status_code == status
    assert resp.json()["code"] == code


def test_hec_malformed_body_is_400_and_kept_as_pipeline_error(server: Server, token: str) -> None:
    m = _m()
    body = json.dumps({"event": f"good one {m}"}) + '\n{"event": "broken ' + m
    resp = httpx.post(
        f"{server.url}/services/collector/event", content=body, headers={"Authorization": f"Splunk {token}"}
    )
    assert resp.status_code == 400
    assert resp.json()["code"] == 6 and resp.json()["invalid-event-number"] == 1
    assert server.wait_count(f'"good one {m}"', 1, tenant="boden") == 1
    assert server.wait_count(f"event.kind:pipeline_error {m}", 1, tenant="boden") == 1


def test_hec_no_data(server: Server, token: str) -> None:
    resp = httpx.post(
        f"{server.url}/services/collector/event", content="", headers={"Authorization": f"Splunk {token}"}
    )
    assert resp.status_code == 400 and resp.json()["code"] == 5


def test_es_bulk_with_basic_auth_and_a_bad_document(server: Server, token: str) -> None:
    m = _m()
    auth = base64.b64encode(f"ingest:{token}".encode()).decode()
    body = (
        '{"index":{"_index":"siem-raw"}}\n'
        + json.dumps(
            {
                "@timestamp": "2026-11-26T21:52:50.576954+00:00",
                "host.name": "rs-testhost",
                "process.name": "sshd",
                "message": f"Failed password for root from 10.1.2.3 port 2 ssh2 {m}",
            }
        )
        + '\n{"create":{}}\n{"broken json '
        + m
        + "\n"
        + '{"delete":{"_id":"1"}}\n'
    )
    resp = httpx.post(
        f"{server.url}/_bulk",
        content=body,
        headers={"Authorization": f"Basic {auth}", "Content-Type": "application/x-ndjson"},
    )
    assert resp.status_code == 200
    out = resp.json()
    assert out["errors"] is True
    statuses = [next(iter(i.values()))["status"] for i in out["items"]]
    assert statuses == [201, 400, 400]
    assert server.wait_count(m, 2, tenant="boden") == 2  # the good document + the bad one as pipeline_error
    assert server.count(f"event.kind:pipeline_error {m}", tenant="boden") == 1


def test_es_bulk_wrong_token(server: Server) -> None:
    auth = base64.b64encode(b"ingest:wrong").decode()
    resp = httpx.post(
        f"{server.url}/_bulk", content='{"index":{}}\n{}\n', headers={"Authorization": f"Basic {auth}"}
    )
    assert resp.status_code == 403


def test_ndjson_ingest_reports_bad_lines(server: Server, token: str) -> None:
    m = _m()
    body = json.dumps({"MESSAGE": f"first {m}", "HOST": "vm", "PROGRAM": "app"}) + "\nnot json\n[1]\n"
    resp = httpx.post(f"{server.url}/ingest", content=body, headers={"Authorization": f"Bearer {token}"})
    assert resp.status_code == 400
    out = resp.json()
    assert out["accepted"] == 1
    assert [r["line"] for r in out["rejected"]] == [2, 3]
    assert server.wait_count(f'"first {m}"', 1, tenant="boden") == 1


def test_json_array_ingest(server: Server, token: str) -> None:
    m = _m()
    body = json.dumps([{"message": f"a {m}"}, {"message": f"b {m}"}])
    resp = httpx.post(f"{server.url}/api/ingest", content=body, headers={"X-Norrvakt-Token": token})
    assert resp.status_code == 200 and resp.json()["accepted"] == 2
    assert server.wait_count(m, 2, tenant="boden") == 2


def test_hec_objects_spanning_lines_or_holding_braces_in_strings(server: Server, token: str) -> None:
    m = _m()
    body = (
        json.dumps({"event": f"pretty {m}", "host": "vm"}, indent=2)
        + json.dumps({"event": f'braces }}{{ "}}\\n{{" {m}'})
        + "\n"
        + json.dumps({"event": f"last {m}"})
    )
    resp = httpx.post(
        f"{server.url}/services/collector/event", content=body, headers={"Authorization": f"Splunk {token}"}
    )
    assert resp.status_code == 200, resp.text
    assert server.wait_count(m, 3, tenant="boden") == 3
    assert server.count(f"event.kind:pipeline_error {m}", tenant="boden") == 0
