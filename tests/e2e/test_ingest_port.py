"""The HTTP ingest port (`server.ingest_port`): HTTP ingest received in the parse workers.

The node binds the port and lends it to its workers, which serve the ingest routes alone on
it; the node journals what they send and answers after the fsync, and only then does the worker
answer the sender. Checked against a real `norrvakt serve`: the same answers as on the console's
port, received in a worker (its `received_events` count it; the console's port never does), the
console and the API not served there, a token's tenant never left, two senders on two workers,
and `kill -9` of the worker holding a HEC connection and of the node losing no acknowledged
event.
"""

from __future__ import annotations

import json
import os
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry.exporter.otlp.proto.common._log_encoder import encode_logs
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import (
    InMemoryLogRecordExporter,
    SimpleLogRecordProcessor,
)
from opentelemetry.sdk.resources import Resource

from tests.e2e.harness import Server, free_ports, wait_port
from tests.e2e.test_durability import HecSender, assert_stored_once
from tests.e2e.test_workers import _alive, _wait_ready, _wait_stored, _workers


def _server(tmp_path: Path, workers: int = 2, more: str = "") -> Server:
    u, t, s, r, h, i = free_ports(6)
    server = Server(
        tmp_path / "data",
        h,
        {"udp": u, "tcp": t, "tls": s, "relp": r, "ingest": i},
        server_toml=f"workers = {workers}\ningest_port = {i}\n{more}",
    )
    server.data_dir.mkdir(parents=True)
    return server


def _ingest_url(server: Server) -> str:
    return f"http://127.0.0.1:{server.ports['ingest']}"


def _start(server: Server, workers: int = 2) -> None:
    server.start()
    wait_port(server.ports["ingest"])
    ready = _wait_ready(server, workers)
    deadline = time.monotonic() + 20
    while not all(w["receiving"] for w in ready) and time.monotonic() < deadline:
        time.sleep(0.2)
        ready = _workers(server)
    assert all(w["receiving"] for w in ready), ready


def _received(server: Server) -> int:
    return sum(int(w["received_events"]) for w in _workers(server))


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One node with two workers for the tests that leave it running (start-up is seconds of
    each test otherwise); the kill -9 of the node and the node-served port get their own."""
    server = _server(Path(tmp_path_factory.mktemp("port")), more="max_body_bytes = 65536")
    _start(server)
    try:
        yield server
    finally:
        server.stop()


def _otlp_body(marker: str, n: int, attributes: dict[str, Any] | None = None) -> bytes:
    memory = InMemoryLogRecordExporter()
    provider = LoggerProvider(resource=Resource.create({"service.name": "e-tjanst", **(attributes or {})}))
    provider.add_log_record_processor(SimpleLogRecordProcessor(memory))
    logger = provider.get_logger("kommun")
    for k in range(n):
        logger.emit(body=f"otlp {marker} {k}", attributes={"user.name": "anna"})
    provider.shutdown()
    return bytes(encode_logs(list(memory.get_finished_logs())).SerializeToString())


def _requests(m: str, token: str) -> list[tuple[str, str, dict[str, str], bytes]]:
    """(method, path, headers, body) of a sender's requests, good and bad, marked ``m``."""
    splunk = {"Authorization": f"Splunk {token}"}
    bearer = {"Authorization": f"Bearer {token}"}
    hec = "\n".join(json.dumps({"event": f"hec {m} {k}", "host": "h"}) for k in range(3))
    bulk = b"".join(
        b'{"create": {"_index": "winlogbeat-8"}}\n{"message": "bulk %s %d"}\n' % (m.encode(), k)
        for k in range(3)
    )
    return [
        ("POST", "/services/collector/event", splunk, hec.encode()),
        ("POST", "/services/collector", splunk, f'{{"event": "hec {m} 9"}}\n{{"event": broken}}'.encode()),
        ("POST", "/services/collector/event", {}, hec.encode()),
        ("POST", "/services/collector/event", {"Authorization": "Splunk not-a-token"}, hec.encode()),
        ("POST", f"/services/collector/event?token={token}", {}, hec.encode()),
        ("POST", "/services/collector/event", splunk, b"  \n"),
        ("POST", "/services/collector/raw?sourcetype=text", splunk, f"raw {m} 1\nraw {m} 2\n".encode()),
        ("GET", "/services/collector/health", {}, b""),
        ("POST", "/services/collector/event", splunk, b'{"event": "' + b"x" * 70_000 + b'"}'),  # 413
        ("POST", "/_bulk", bearer, bulk + b"{broken\n"),
        ("POST", "/winlogbeat-8/_bulk", bearer, bulk),
        ("POST", "/_bulk", {}, bulk),
        ("GET", "/_bulk", {}, b""),
        ("POST", "/ingest", bearer, f'{{"message": "json {m} 1"}}\nnot json\n'.encode()),
        (
            "POST",
            "/api/ingest",
            bearer,
            f'[{{"message": "json {m} 2"}}, {{"message": "json {m} 3"}}]'.encode(),
        ),
        ("POST", "/v1/logs", {**bearer, "Content-Type": "application/x-protobuf"}, _otlp_body(m, 2)),
        ("POST", "/v1/logs", {**bearer, "Content-Type": "application/x-protobuf"}, b"\xff\xff\xff"),
        ("POST", "/v1/logs", {**bearer, "Content-Type": "text/plain"}, b"hello"),
        ("POST", "/v1/logs", {"Content-Type": "application/json"}, b"{}"),
    ]


def _answer(resp: httpx.Response) -> tuple[int, str, Any]:
    """What a sender sees of an answer; a _bulk answer's ``took`` and ``_id`` (the seq) vary."""
    kind = resp.headers.get("content-type", "")
    if "json" not in kind:
        return resp.status_code, kind, resp.content
    body = resp.json()
    if isinstance(body, dict) and "items" in body:
        body.pop("took", None)
        for item in body["items"]:
            next(iter(item.values())).pop("_id", None)
    return resp.status_code, kind, body


def test_the_ingest_port_answers_as_the_console_port_and_receives_in_the_workers(shared: Server) -> None:
    server = shared
    token = server.ingest_token("lulea", "port-hec")
    run = uuid.uuid4().hex[:8]
    console, ingest = f"c{run}", f"i{run}"
    received_before = _received(server)  # (other tests of the module share the node)
    on_console = [
        _answer(httpx.request(meth, server.url + path, headers=h, content=body or None, timeout=30))
        for meth, path, h, body in _requests(console, token)
    ]
    assert _received(server) == received_before  # the console's port: received by the node
    on_ingest = [
        _answer(httpx.request(meth, _ingest_url(server) + path, headers=h, content=body or None, timeout=30))
        for meth, path, h, body in _requests(ingest, token)
    ]
    for request, a, b in zip(_requests("", token), on_console, on_ingest, strict=True):
        assert a == b, (request[:2], a, b)
    assert [a[0] for a in on_console] == [
        *(200, 400, 401, 403, 401, 400, 200, 200, 413),
        *(200, 200, 401, 405),
        *(400, 200),
        *(200, 400, 415, 401),
    ]
    for what, n in (("hec", 4), ("raw", 2), ("bulk", 6), ("json", 3), ("otlp", 2)):
        for marker in (console, ingest):
            assert server.wait_count(f'"{what} {marker}"', n) == n, (what, marker)
    # the bad parts and refused bodies are pipeline_error events on both ports alike
    assert server.wait_count('event.kind:pipeline_error "HEC event 1"', 2) == 2
    workers = _workers(server)
    # 17 good events and the pipeline errors of the ingest port's requests, all in workers
    assert _received(server) - received_before >= 17, workers
    stats = server.api("GET", "/api/stats").json()
    assert "http-ingest-port" in stats["workers"]["receiving_in_workers"], stats["workers"]
    assert stats["workers"]["parsed_in_node"] == 0, stats["workers"]


def test_the_console_and_the_api_are_not_on_the_ingest_port(shared: Server) -> None:
    server = shared
    admin = {"Authorization": f"Bearer {server._token}"}
    base = _ingest_url(server)
    for method, path in [
        ("GET", "/"),
        ("GET", "/login"),
        ("POST", "/login"),
        ("GET", "/api/health"),
        ("GET", "/api/stats"),
        ("GET", "/api/search?q=*"),
        ("GET", "/api/docs"),
        ("GET", "/api/openapi.json"),
        ("POST", "/api/import?tenant=lulea"),
        ("GET", "/static/app.css"),
        ("GET", "/alerts"),
    ]:
        resp = httpx.request(method, base + path, headers=admin, timeout=10)
        assert resp.status_code == 404, (method, path, resp.status_code, resp.text[:200])
        assert "set-cookie" not in resp.headers
    assert server.api("GET", "/api/stats").status_code == 200  # (on the console's port)


def test_a_token_of_one_tenant_never_writes_into_another_on_the_ingest_port(shared: Server) -> None:
    server = shared
    lulea = server.ingest_token("lulea", "iso-lulea")
    boden = server.ingest_token("boden", "iso-boden")
    m = "t" + uuid.uuid4().hex[:10]
    base = _ingest_url(server)
    splunk = {"Authorization": f"Splunk {lulea}", "X-Norrvakt-Tenant": "boden"}
    hec = json.dumps({"event": {"message": f"iso {m} hec", "tenant": "boden"}, "index": "boden"})
    assert (
        httpx.post(f"{base}/services/collector/event?index=boden", headers=splunk, content=hec).status_code
        == 200
    )
    bulk = f'{{"index": {{"_index": "boden"}}}}\n{{"message": "iso {m} bulk", "tenant": "boden"}}\n'
    resp = httpx.post(f"{base}/boden/_bulk", headers={"Authorization": f"Bearer {lulea}"}, content=bulk)
    assert resp.status_code == 200 and resp.json()["errors"] is False, resp.text
    otlp = _otlp_body(f"{m}-o", 1, {"tenant": "boden", "norrvakt.tenant": "boden"})
    resp = httpx.post(
        f"{base}/v1/logs",
        headers={"Authorization": f"Bearer {lulea}", "Content-Type": "application/x-protobuf"},
        content=otlp,
    )
    assert resp.status_code == 200, resp.text
    resp = httpx.post(
        f"{base}/ingest", headers={"X-Norrvakt-Token": boden}, content=f'{{"message": "iso {m} own"}}'
    )
    assert resp.status_code == 200, resp.text
    assert server.wait_count(m, 4) == 4  # every tenant (the admin sees all)
    assert server.wait_count(f'"iso {m} hec"', 1, tenant="lulea") == 1
    assert server.count(f'"iso {m} bulk"', tenant="lulea") == 1
    assert server.count(f'"otlp {m}-o 0"', tenant="lulea") == 1
    assert server.count(m, tenant="boden") == 1  # only boden's own token's event
    assert server.search(m, tenant="boden")["rows"][0]["message"].endswith("own")
    rows = server.search(m, tenant="lulea")["rows"]
    assert {r["tenant"] for r in rows} == {"lulea"} and len(rows) == 3, rows


def test_a_token_revoked_through_the_cli_is_refused_by_the_workers_within_seconds(shared: Server) -> None:
    """Each worker reads the tokens from the state database and forgets its cache when the
    tokens' version moves: a revoked token stops working on every worker, not after a restart."""
    import csv
    import io

    server = shared
    token = server.ingest_token("lulea", "port-revoke")
    url = f"{_ingest_url(server)}/services/collector/event"
    clients = [httpx.Client(timeout=10) for _ in range(4)]  # connections on both workers

    def post(client: httpx.Client) -> httpx.Response:
        return client.post(url, content='{"event": "revoke"}', headers={"Authorization": f"Splunk {token}"})

    try:
        assert [post(c).status_code for c in clients] == [200] * 4
        assert all(w["received_events"] > 0 for w in _workers(server)), _workers(server)
        rows = list(csv.DictReader(io.StringIO(server.cli("tokens", "list"))))
        (row,) = [r for r in rows if r["source_id"] == "port-revoke"]
        server.cli("tokens", "revoke", row["id"])
        time.sleep(3)  # the watch looks at most once a second
        answers = [post(c) for c in clients]
        assert [a.status_code for a in answers] == [403] * 4, [a.text for a in answers]
        assert answers[0].json() == {"text": "Invalid token", "code": 4}
    finally:
        for c in clients:
            c.close()


def _post_for(url: str, token: str, tag: str, stop: threading.Event, sent: list[int]) -> None:
    """One sender on one keep-alive connection, posting HEC bodies until ``stop``."""
    with httpx.Client(timeout=30) as client:
        k = 0
        while not stop.is_set() and k < 400:
            body = "\n".join(json.dumps({"event": f"two {tag} {k}-{i}", "host": tag}) for i in range(200))
            assert (
                client.post(url, content=body, headers={"Authorization": f"Splunk {token}"}).status_code
                == 200
            )
            sent.append(200)
            k += 1


def test_two_senders_on_two_connections_are_served_by_two_workers(shared: Server) -> None:
    server = shared
    token = server.ingest_token("lulea", "two-hec")
    url = f"{_ingest_url(server)}/services/collector/event"
    run = uuid.uuid4().hex[:8]
    stop = threading.Event()
    sent: list[list[int]] = [[], []]
    posters = [
        threading.Thread(target=_post_for, args=(url, token, f"{run}{k}", stop, sent[k])) for k in (0, 1)
    ]
    posters[0].start()
    time.sleep(0.5)  # the first holds its connection on a worker
    posters[1].start()
    time.sleep(4)
    stop.set()
    for p in posters:
        p.join(60)
    workers = _workers(server)
    assert all(w["received_events"] > 0 for w in workers), workers  # both cores received
    for k in (0, 1):
        assert server.wait_count(f'"two {run}{k}"', sum(sent[k])) == sum(sent[k])


class ReconnectingHecSender(threading.Thread):
    """A HEC sender to the ingest port that, like a log shipper, opens a new connection when
    one dies and goes on; each connection's events carry their own run id, and nothing is
    resent (so an id stored twice would be the server's doing)."""

    def __init__(self, server: Server, token: str, run: str) -> None:
        super().__init__(daemon=True)
        self.server = server
        self.token = token
        self.run_id = run
        self.sessions: list[HecSender] = []
        self.stop = threading.Event()

    @property
    def acked(self) -> list[str]:
        return [i for s in self.sessions for i in s.acked]

    def run(self) -> None:
        while not self.stop.is_set():
            session = HecSender(self.server, self.token, f"{self.run_id}s{len(self.sessions)}")
            session.url = f"{_ingest_url(self.server)}/services/collector/event"
            session.stop = self.stop
            self.sessions.append(session)
            session.run()  # returns when the connection dies or we stop
            time.sleep(0.1)


def test_kill_9_of_the_worker_holding_a_hec_connection_loses_nothing_acknowledged(shared: Server) -> None:
    server = shared
    token = server.ingest_token("lulea", "port-kill")
    run = uuid.uuid4().hex[:10]
    senders = [ReconnectingHecSender(server, token, f"{run}{k}") for k in "ab"]
    senders[0].start()
    time.sleep(0.5)
    senders[1].start()
    time.sleep(2.0)
    before = _workers(server)
    # Which worker accepts which connection is the kernel's choice (on a loaded machine one
    # may take both): the victim is one that is serving a sender right now.
    victim = max(before, key=lambda w: w["received_events"])
    assert victim["received_events"] > 0, before
    os.kill(victim["pid"], 9)  # mid-stream: it holds a sender's connection
    time.sleep(4.0)
    for s in senders:
        s.stop.set()
    for s in senders:
        s.join(30)
    assert all(len(s.acked) > 300 for s in senders), [len(s.acked) for s in senders]
    reconnected = [s for s in senders if len(s.sessions) >= 2]
    assert reconnected, "no sender lost its connection with the worker"
    assert all(sum(len(x.acked) for x in s.sessions[1:]) > 100 for s in reconnected)
    after = _wait_ready(server, 2)
    replaced = after[victim["index"]]
    assert replaced["pid"] != victim["pid"] and replaced["restarts"] == 1, after
    _wait_stored(server)
    for s in senders:
        for session in s.sessions:
            assert_stored_once(server, session.run_id, session.acked)


def test_kill_9_of_the_node_mid_stream_on_the_ingest_port(tmp_path: Path) -> None:
    server = _server(tmp_path)
    _start(server)
    pids = [w["pid"] for w in _workers(server)]
    token = server.ingest_token("lulea", "port-node")
    run = uuid.uuid4().hex[:10]
    senders = [HecSender(server, token, f"{run}{k}") for k in "ab"]
    for s in senders:
        s.url = f"{_ingest_url(server)}/services/collector/event"
        s.start()
        time.sleep(0.3)
    time.sleep(2.5)
    server.kill9()  # the journal owner, mid-stream
    for s in senders:
        s.stop.set()
    for s in senders:
        s.join(30)
    assert all(len(s.acked) > 300 for s in senders), [len(s.acked) for s in senders]
    deadline = time.monotonic() + 10
    while any(_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [p for p in pids if _alive(p)], "workers outlived the node"
    server.start()
    try:
        _wait_stored(server)
        for s in senders:
            assert_stored_once(server, s.run_id, s.acked)
        # a stop with a keep-alive connection open on a worker is prompt and clean
        with httpx.Client(base_url=_ingest_url(server), timeout=10) as client:
            assert client.get("/services/collector/health").status_code == 200
            started = time.monotonic()
            server.stop()
            assert time.monotonic() - started < 20
        assert "did not finish its connections" not in server.log()
    finally:
        server.stop()


def test_the_node_serves_the_ingest_port_when_the_workers_do_not_receive(tmp_path: Path) -> None:
    """With server.receive_in_workers = false the port is the node's (the bodies still parsed in
    the workers), the same routes only; a stop with a keep-alive connection open is prompt."""
    server = _server(tmp_path, more="receive_in_workers = false")
    server.start()
    try:
        wait_port(server.ports["ingest"])
        _wait_ready(server, 2)
        token = server.ingest_token("lulea", "port-node-only")
        m = "n" + uuid.uuid4().hex[:10]
        with httpx.Client(base_url=_ingest_url(server), timeout=30) as client:
            resp = client.post(
                "/services/collector/event",
                content=json.dumps({"event": f"node-served {m}"}),
                headers={"Authorization": f"Splunk {token}"},
            )
            assert resp.json() == {"text": "Success", "code": 0}, resp.text
            assert client.get("/api/stats").status_code == 404
            assert server.wait_count(f'"node-served {m}"', 1) == 1
            stats = server.api("GET", "/api/stats").json()["workers"]
            assert sum(w["received_events"] for w in stats["workers"]) == 0, stats
            assert sum(w["batches"] for w in stats["workers"]) >= 1, stats  # parsed in a worker
            assert "http-ingest-port" not in stats["receiving_in_workers"], stats
            started = time.monotonic()
            server.stop()  # (the client's keep-alive connection is still open)
            assert time.monotonic() - started < 20
            assert "Traceback" not in server.log() and "Finished server process" in server.log()
    finally:
        server.stop()
