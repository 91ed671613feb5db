"""HTTP ingest (HEC, _bulk, /ingest) cannot be used to exhaust memory or crash a request.

An ingest-token holder (or whoever stole one) sends what a real sender never would: a gzip
bomb, a body or an event far over any sane size, JSON nested 100,000 levels deep, the token
in the URL, or a token stored for a tenant that is not exactly a configured one. All against
one real ``norrvakt serve`` (default limits: 16 MiB body, 64 MiB decompressed, 1 MiB event).
"""

from __future__ import annotations

import base64
import functools
import gzip
import json
import sqlite3
import threading
import time
import uuid
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.harness import Server, running_server

MIB = 1024 * 1024
EVENT_LIMIT = MIB  # server.max_event_bytes default
BODY_LIMIT = 16 * MIB  # server.max_body_bytes default


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with running_server(Path(tmp_path_factory.mktemp("http-limits"))) as srv:
        yield srv


@pytest.fixture(scope="module")
def token(server: Server) -> str:
    return server.ingest_token("boden", "boden-limits")


def _m() -> str:
    return "q" + uuid.uuid4().hex[:12]


def _post(server: Server, path: str, body: bytes | Iterator[bytes], **headers: str) -> httpx.Response:
    return httpx.post(f"{server.url}{path}", content=body, headers=headers, timeout=120)


def _bomb(marker: str, inflated: int) -> bytes:
    """A gzip body of ``inflated`` bytes — one small JSON line, then spaces — about 1/1000 the size.

    Built from gzip members of 64 MiB each (a body may hold several, as gzip.decompress reads
    them): quick to make, and the same bomb for the code before the fix."""
    head = gzip.compress(json.dumps({"m": marker}).encode() + b"\n")
    return head + _spaces_member() * (inflated // (64 * MIB))


@functools.cache
def _spaces_member() -> bytes:
    return gzip.compress(b" " * (64 * MIB), compresslevel=9)


def _rss_mb(pid: int) -> tuple[int, int]:
    """(current, peak) resident set of the server process, in MB."""
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        values[key] = value.strip()
    return int(values["VmRSS"].split()[0]) // 1024, int(values["VmHWM"].split()[0]) // 1024


def _reset_peak(pid: int) -> None:
    Path(f"/proc/{pid}/clear_refs").write_text("5")  # Linux: VmHWM starts again from VmRSS


# -- body limits -------------------------------------------------------------------------------


def test_three_concurrent_gzip_bombs_are_refused_within_the_cap(server: Server, token: str) -> None:
    """3 × 1 MB gzip inflating to 1 GB each: 413 at 64 MiB, and the server stays small."""
    markers = [_m() for _ in range(3)]
    bombs = [_bomb(m, 1024 * MIB) for m in markers]
    assert all(len(b) < 1_100_000 for b in bombs)  # 1 MB each
    assert server.proc is not None
    pid = server.proc.pid
    _reset_peak(pid)
    before, _ = _rss_mb(pid)
    answers: list[httpx.Response] = []

    def send(body: bytes) -> None:
        answers.append(
            _post(server, "/ingest", body, Authorization=f"Bearer {token}", **{"Content-Encoding": "gzip"})
        )

    threads = [threading.Thread(target=send, args=(b,)) for b in bombs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    _, peak = _rss_mb(pid)
    assert [a.status_code for a in answers] == [413, 413, 413], [a.text for a in answers]
    for a in answers:
        assert "server.max_decompressed_bytes" in a.json()["error"]
    # Before the fix each bomb was inflated whole: +1 GB per request (0.9 → 4.1 GB with three).
    assert peak - before < 600, f"server RSS grew from {before} MB to a peak of {peak} MB"
    # Each refusal is kept (first bytes only) as the tenant's pipeline_error and counted.
    for m in markers:
        assert server.wait_count(f"error.type:http.decompressed_too_large {m}", 1, tenant="boden") == 1


def test_other_requests_are_served_while_bombs_inflate(server: Server, token: str) -> None:
    bombs = [_bomb(_m(), 1024 * MIB) for _ in range(3)]
    threads = [
        threading.Thread(
            target=_post,
            args=(server, "/ingest", b),
            kwargs={"Authorization": f"Bearer {token}", "Content-Encoding": "gzip"},
        )
        for b in bombs
    ]
    for t in threads:
        t.start()
    time.sleep(0.05)
    started = time.monotonic()
    health = httpx.get(f"{server.url}/api/health", timeout=120)
    waited = time.monotonic() - started
    for t in threads:
        t.join()
    assert health.status_code == 200
    # Before the fix gzip.decompress ran on the event loop: 8 s for this answer.
    assert waited < 2.0, f"/api/health took {waited:.1f} s while bombs were inflating"


@pytest.mark.parametrize(
    "path,auth",
    [("/services/collector/event", "Splunk"), ("/_bulk", "Basic"), ("/ingest", "Bearer")],
)
def test_a_gzip_bomb_is_413_in_each_protocols_own_format(
    server: Server, token: str, path: str, auth: str
) -> None:
    secret = base64.b64encode(f"ingest:{token}".encode()).decode() if auth == "Basic" else token
    resp = _post(
        server, path, _bomb(_m(), 128 * MIB), Authorization=f"{auth} {secret}", **{"Content-Encoding": "gzip"}
    )
    assert resp.status_code == 413, resp.text
    _assert_protocol_error(path, resp.json(), 413, "server.max_decompressed_bytes")


def _assert_protocol_error(path: str, out: dict[str, Any], status: int, names: str) -> None:
    if path.startswith("/services/collector"):
        assert set(out) == {"text", "code"} and names in out["text"]
    elif path == "/_bulk":
        assert out["status"] == status and names in out["error"]["reason"] and out["error"]["type"]
    else:
        assert names in out["error"]


def test_a_100_mb_hec_event_is_refused_before_it_is_read(server: Server, token: str) -> None:
    m = _m()
    body = b'{"event":"' + m.encode() + b" " + b"A" * (100 * MIB) + b'"}'
    assert server.proc is not None
    pid = server.proc.pid
    _reset_peak(pid)
    before, _ = _rss_mb(pid)
    started = time.monotonic()
    resp = _post(server, "/services/collector/event", body, Authorization=f"Splunk {token}")
    took = time.monotonic() - started
    _, peak = _rss_mb(pid)
    assert resp.status_code == 413, resp.text
    _assert_protocol_error("/services/collector", resp.json(), 413, "server.max_body_bytes")
    assert peak - before < 100, f"server RSS grew from {before} MB to a peak of {peak} MB"
    assert took < 30
    assert server.count(m, tenant="boden") == 0  # nothing of it journaled (before: 200, all 100 MB)


def test_a_chunked_body_over_the_limit_is_cut_off_while_streaming(server: Server, token: str) -> None:
    """No Content-Length to check up front: the count stops the read at 16 MiB."""
    m = _m()
    line = json.dumps({"message": f"streamed {m}", "pad": "x" * 1000}).encode() + b"\n"
    sent = 0

    def chunks() -> Iterator[bytes]:
        nonlocal sent
        block = line * 64
        while sent < 40 * MIB:
            sent += len(block)
            yield block

    resp = _post(server, "/ingest", chunks(), Authorization=f"Bearer {token}")
    assert resp.status_code == 413, resp.text
    assert "server.max_body_bytes" in resp.json()["error"]
    time.sleep(1)
    # Only the refusal is kept (with the first bytes); none of the lines became events.
    assert server.count(f'"streamed {m}"', tenant="boden") == 1
    assert server.count(f'event.kind:event "streamed {m}"', tenant="boden") == 0


def test_a_truncated_gzip_body_is_a_clear_400(server: Server, token: str) -> None:
    body = gzip.compress(b'{"message":"cut short"}\n' * 1000)[:-20]
    resp = _post(server, "/ingest", body, Authorization=f"Bearer {token}", **{"Content-Encoding": "gzip"})
    assert resp.status_code == 400, resp.text  # before: EOFError, a 500
    assert "truncated" in resp.json()["error"]


def test_gzip_and_deflate_bodies_still_work(server: Server, token: str) -> None:
    m = _m()
    lines = b"".join(json.dumps({"message": f"z{i} {m}"}).encode() + b"\n" for i in range(4))
    two_members = gzip.compress(lines[: len(lines) // 2]) + gzip.compress(lines[len(lines) // 2 :])
    resp = _post(
        server, "/ingest", two_members, Authorization=f"Bearer {token}", **{"Content-Encoding": "gzip"}
    )
    assert resp.status_code == 200 and resp.json()["accepted"] == 4, resp.text
    resp = _post(
        server,
        "/ingest",
        zlib.compress(lines),
        Authorization=f"Bearer {token}",
        **{"Content-Encoding": "deflate"},
    )
    assert resp.status_code == 200 and resp.json()["accepted"] == 4, resp.text
    assert server.wait_count(m, 8, tenant="boden") == 8


# -- per-event size ----------------------------------------------------------------------------


def test_an_oversized_hec_event_is_kept_cut_as_a_pipeline_error(server: Server, token: str) -> None:
    m = _m()
    big = json.dumps({"event": f"big {m} " + "B" * (2 * MIB)})
    body = "\n".join([json.dumps({"event": f"first {m}"}), big, json.dumps({"event": f"third {m}"})])
    resp = _post(server, "/services/collector/event", body.encode(), Authorization=f"Splunk {token}")
    assert resp.status_code == 400
    assert resp.json() == {"text": "Invalid data format", "code": 6, "invalid-event-number": 1}
    assert server.wait_count(f'"first {m}"', 1, tenant="boden") == 1
    assert server.wait_count(f'"third {m}"', 1, tenant="boden") == 1  # its neighbours are kept
    assert server.wait_count(f"event.kind:pipeline_error {m}", 1, tenant="boden") == 1
    (row,) = server.search(f"event.kind:pipeline_error {m}", tenant="boden")["rows"]
    assert row["ecs"]["error.type"] == "hec.event_too_large"
    error = row["ecs"]["error.message"]
    assert "boden-limits" in error and "HEC event 1" in error and str(len(big)) in error
    assert len(row["raw"].encode()) == EVENT_LIMIT  # journaled cut to the limit, not whole


def test_an_oversized_bulk_document_is_an_item_error(server: Server, token: str) -> None:
    m = _m()
    auth = base64.b64encode(f"ingest:{token}".encode()).decode()
    body = (
        '{"index":{}}\n'
        + json.dumps({"message": f"big {m} " + "C" * (2 * MIB)})
        + '\n{"index":{}}\n'
        + json.dumps({"message": f"small {m}"})
        + "\n"
    )
    resp = _post(server, "/_bulk", body.encode(), Authorization=f"Basic {auth}")
    assert resp.status_code == 200
    out = resp.json()
    assert out["errors"] is True
    first, second = (next(iter(i.values())) for i in out["items"])
    assert first["status"] == 400 and "server.max_event_bytes" in first["error"]["reason"]
    assert "line 2" in first["error"]["reason"]
    assert second["status"] == 201
    assert server.wait_count(f"error.type:bulk.document_too_large {m}", 1, tenant="boden") == 1


def test_an_oversized_ndjson_line_is_rejected_by_line(server: Server, token: str) -> None:
    m = _m()
    body = json.dumps({"message": f"ok {m}"}) + "\n" + json.dumps({"message": f"big {m} " + "D" * (2 * MIB)})
    resp = _post(server, "/ingest", body.encode(), Authorization=f"Bearer {token}")
    assert resp.status_code == 400
    out = resp.json()
    assert out["accepted"] == 1
    (rejected,) = out["rejected"]
    assert rejected["line"] == 2 and "server.max_event_bytes" in rejected["error"]
    assert server.wait_count(f"error.type:json.event_too_large {m}", 1, tenant="boden") == 1


# -- deep nesting ------------------------------------------------------------------------------


def test_deeply_nested_hec_event_is_a_pipeline_error_not_a_500(server: Server, token: str) -> None:
    m = _m()
    deep = '{"m":"' + m + '","event":' + "[" * 100_000 + "]" * 100_000 + "}"
    # Concatenated, as HEC allows: the line-by-line fast path cannot be used.
    body = json.dumps({"event": f"before {m}"}) + deep + json.dumps({"event": f"after {m}"})
    resp = _post(server, "/services/collector/event", body.encode(), Authorization=f"Splunk {token}")
    assert resp.status_code == 400, resp.text  # before: RecursionError, a 500
    assert resp.json()["invalid-event-number"] == 1
    assert server.wait_count(f'"before {m}"', 1, tenant="boden") == 1
    assert server.wait_count(f'"after {m}"', 1, tenant="boden") == 1
    assert server.wait_count(f"event.kind:pipeline_error {m}", 1, tenant="boden") == 1
    (row,) = server.search(f"event.kind:pipeline_error {m}", tenant="boden")["rows"]
    assert row["ecs"]["error.type"] == "hec.too_deep"
    assert "HEC event 1" in row["ecs"]["error.message"] and "100001 levels" in row["ecs"]["error.message"]


def test_deeply_nested_ndjson_line_names_line_and_depth(server: Server, token: str) -> None:
    m = _m()
    body = json.dumps({"message": f"fine {m}"}) + "\n" + "[" * 100_000 + "\n"
    resp = _post(server, "/ingest", body.encode(), Authorization=f"Bearer {token}")
    assert resp.status_code == 400
    (rejected,) = resp.json()["rejected"]
    assert rejected["line"] == 2 and "100000 levels" in rejected["error"]
    assert server.wait_count(f'"fine {m}"', 1, tenant="boden") == 1


def test_orjson_refuses_exactly_beyond_the_chosen_depth() -> None:
    """MAX_JSON_DEPTH is orjson's own limit; an orjson upgrade that moves it must be noticed."""
    import orjson

    from norrvakt.sources.http_json import MAX_JSON_DEPTH  # new in this fix

    orjson.loads(b"[" * MAX_JSON_DEPTH + b"]" * MAX_JSON_DEPTH)
    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads(b"[" * (MAX_JSON_DEPTH + 1) + b"]" * (MAX_JSON_DEPTH + 1))


# -- tokens ------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/services/collector/event", "/ingest", "/_bulk"])
def test_a_token_in_the_url_is_refused(server: Server, token: str, path: str) -> None:
    m = _m()
    body = json.dumps({"event": m, "message": m}).encode()
    if path == "/_bulk":
        body = b'{"index":{}}\n' + body + b"\n"
    resp = httpx.post(f"{server.url}{path}", params={"token": token}, content=body, timeout=30)
    assert resp.status_code == 401, resp.text
    assert "header" in resp.text and "URL" in resp.text
    assert token not in resp.text
    # Also with a header beside it: the token has leaked into the URL either way.
    resp = httpx.post(
        f"{server.url}{path}", params={"token": token}, content=body, headers={"X-Norrvakt-Token": token}
    )
    assert resp.status_code == 401
    time.sleep(1)
    assert server.count(m, tenant="boden") == 0


def _stored_token(server: Server, tenant: str) -> str:
    """A token stored as an older version (or a hand edit) left it: no check on its tenant."""
    import hashlib

    secret = "nvi_" + uuid.uuid4().hex
    with sqlite3.connect(server.data_dir / "state.db") as db:
        db.execute(
            "INSERT INTO tokens (token_hash, kind, name, tenant, source_id, created_at) "
            "VALUES (?, 'ingest', ?, ?, 'odd-source', ?)",
            (hashlib.sha256(secret.encode()).hexdigest(), f"odd {tenant!r}", tenant, time.time_ns() // 1000),
        )
    return secret


@pytest.mark.parametrize("tenant", ["boden,", " boden", "Boden", "_norrvakt", "stockholm"])
def test_a_stored_token_for_no_exact_tenant_is_refused(server: Server, tenant: str) -> None:
    secret = _stored_token(server, tenant)
    m = _m()
    resp = _post(
        server,
        "/services/collector/event",
        json.dumps({"event": m}).encode(),
        Authorization=f"Splunk {secret}",
    )
    assert resp.status_code == 403, resp.text
    assert repr(tenant) in resp.json()["text"] and "new token" in resp.json()["text"]
    resp = _post(server, "/ingest", json.dumps({"message": m}).encode(), **{"X-Norrvakt-Token": secret})
    assert resp.status_code == 403
    time.sleep(1)
    assert server.count(m) == 0  # in no tenant at all — not in boden, not in the audit trail
