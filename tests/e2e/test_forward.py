"""Fluent Forward against a real `norrvakt serve` (parse workers and the listener in them, the
default): fluent-logger, the real client, in Message mode; hand-built Forward, PackedForward and
CompressedPackedForward frames with ``chunk`` acks; the shared-key handshake in a worker; bad
msgpack kept as a pipeline_error; and kill -9 mid-stream losing nothing acknowledged."""

from __future__ import annotations

import gzip
import hashlib
import socket
import struct
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgpack
import pytest
from fluent import sender as fluent_sender

from tests.e2e.harness import Server, free_ports
from tests.e2e.test_durability import assert_stored_once
from tests.e2e.worker_kill import kill_the_receiving_worker, wait_stored

KEY = "delad-nyckel-for-test"


def _server(tmp: Path, server_toml: str = "") -> Server:
    u, t, s, r, h, f, k = free_ports(7)
    key_file = tmp / "fluent.key"
    key_file.write_text(KEY + "\n")
    extra = f"""
[[sources]]
id = "fluent"
type = "forward"
host = "127.0.0.1"
port = {f}
tenant = "lulea"

[[sources]]
id = "fluent-keyed"
type = "forward"
host = "127.0.0.1"
port = {k}
tenant = "boden"
shared_key_file = "{key_file}"
"""
    server = Server(
        tmp / "data",
        h,
        {"udp": u, "tcp": t, "tls": s, "relp": r, "forward": f, "keyed": k},
        extra_toml=extra,
        server_toml=server_toml,
    )
    server.data_dir.mkdir(parents=True)
    return server


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = _server(Path(tmp_path_factory.mktemp("fwd")), "workers = 2")
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


def _m() -> str:
    return "f" + uuid.uuid4().hex[:12]


def _read(sock: socket.socket, timeout: float = 10) -> Any:
    sock.settimeout(timeout)
    unpacker = msgpack.Unpacker(raw=False)
    while True:
        data = sock.recv(65536)
        if not data:
            raise ConnectionError("closed")
        unpacker.feed(data)
        for obj in unpacker:
            return obj


def test_fluent_logger_message_mode(server: Server) -> None:
    m = _m()
    logger = fluent_sender.FluentSender("app", host="127.0.0.1", port=server.ports["forward"])
    assert logger.emit("auth", {"user": "anna", "host": "web01", "message": f"login ok {m}"}), (
        logger.last_error
    )
    exact = fluent_sender.FluentSender(
        "app", host="127.0.0.1", port=server.ports["forward"], nanosecond_precision=True
    )
    assert exact.emit_with_time("auth", 1795729418.5, {"message": f"exact time {m}"}), exact.last_error
    logger.close()
    exact.close()
    assert server.wait_count(m, 2) == 2
    rows = {r["message"]: r for r in server.search(m)["rows"]}
    row = rows[f"login ok {m}"]
    assert (row["tenant"], row["source"]) == ("lulea", "fluent")
    assert row["ecs"]["host.name"] == "web01" and row["ecs"]["user.name"] == "anna"
    assert row["fields"]["fluent.tag"] == "app.auth"
    assert rows[f"exact time {m}"]["ts"] == 1795729418_500000


def test_fluent_logger_require_ack_response_is_accepted_but_sends_no_chunk(server: Server) -> None:
    """fluent-logger 0.11 takes ``require_ack_response`` and ignores it (its ``**kwargs`` are
    unused): it sends Message mode without ``chunk``, so the server answers nothing and the
    records are stored all the same. The ack itself is tested with hand-built frames below, as
    Fluent Bit and fluentd send them."""
    m = _m()
    logger = fluent_sender.FluentSender(
        "app", host="127.0.0.1", port=server.ports["forward"], require_ack_response=True
    )
    for i in range(20):
        assert logger.emit("acked", {"message": f"ack wanted {i} {m}"}), logger.last_error
    logger.close()
    assert server.wait_count(m, 20) == 20


def test_hand_built_modes_are_acknowledged_and_stored(server: Server) -> None:
    m = _m()
    et = msgpack.ExtType(0, struct.pack(">II", 1795729418, 250_000_000))
    packed = b"".join(msgpack.packb([et, {"log": f"packed {i} {m}"}]) for i in range(3))
    frames = [
        ["fwd", [[1795729418, {"log": f"forward {i} {m}"}] for i in range(3)], {"chunk": "Zm9yd2FyZA=="}],
        ["pk.bin", packed, {"chunk": "YmluLWNodW5r", "size": 3}],
        [
            "pk.gz",
            gzip.compress(packed[:20]) + gzip.compress(packed[20:]),
            {"compressed": "gzip", "chunk": "Z3o="},
        ],
    ]
    with socket.create_connection(("127.0.0.1", server.ports["forward"]), timeout=10) as sock:
        for frame in frames:
            sock.sendall(msgpack.packb(frame, use_bin_type=True))
            assert _read(sock) == {"ack": frame[2]["chunk"]}
        # old fluentd: entries as msgpack str
        as_str = b"\x93" + msgpack.packb("pk.str") + b"\xda" + struct.pack(">H", len(packed)) + packed
        sock.sendall(as_str + msgpack.packb({"chunk": "c3Ry"}))
        assert _read(sock) == {"ack": "c3Ry"}
    assert server.wait_count(m, 12) == 12
    tags = sorted(r["fields"]["fluent.tag"] for r in server.search(m)["rows"])
    assert tags == ["fwd"] * 3 + ["pk.bin"] * 3 + ["pk.gz"] * 3 + ["pk.str"] * 3


def test_shared_key_handshake_in_a_worker(server: Server) -> None:
    m = _m()
    with socket.create_connection(("127.0.0.1", server.ports["keyed"]), timeout=10) as sock:
        helo = _read(sock)
        assert helo[0] == "HELO"
        nonce, salt, host = helo[1]["nonce"], b"salt-for-the-test", "ws01.boden.kommun.local"
        digest = hashlib.sha512(salt + host.encode() + nonce + KEY.encode()).hexdigest()
        sock.sendall(msgpack.packb(["PING", host, salt, digest, "", ""], use_bin_type=True))
        pong = _read(sock)
        assert pong[1] is True
        assert pong[4] == hashlib.sha512(salt + pong[3].encode() + nonce + KEY.encode()).hexdigest()
        sock.sendall(msgpack.packb(["keyed", 1795729418, {"message": f"with key {m}"}, {"chunk": "a2V5"}]))
        assert _read(sock) == {"ack": "a2V5"}
    assert server.wait_count(m, 1, tenant="boden") == 1
    assert KEY not in server.log()


def test_wrong_key_is_refused(server: Server) -> None:
    with socket.create_connection(("127.0.0.1", server.ports["keyed"]), timeout=10) as sock:
        helo = _read(sock)
        digest = hashlib.sha512(b"s" + b"h" + helo[1]["nonce"] + b"wrong").hexdigest()
        sock.sendall(msgpack.packb(["PING", "h", b"s", digest, "", ""], use_bin_type=True))
        assert _read(sock)[:2] == ["PONG", False]
        assert sock.recv(10) == b""  # closed
    assert server.wait_count("error.type:forward.auth_failed", 1, tenant="boden") >= 1


def test_bad_msgpack_is_a_pipeline_error_and_closes(server: Server) -> None:
    m = _m()
    with socket.create_connection(("127.0.0.1", server.ports["forward"]), timeout=10) as sock:
        sock.sendall(msgpack.packb(["t", 1795729418, {"log": f"before {m}"}]) + b"\xc1 " + m.encode())
        sock.settimeout(10)
        try:
            assert sock.recv(10) == b""
        except ConnectionResetError:
            pass
    assert server.wait_count(f"before {m}", 1) == 1
    assert server.wait_count(f"event.kind:pipeline_error error.type:forward.bad_msgpack {m}", 1) == 1
    (row,) = server.search(f"event.kind:pipeline_error {m}")["rows"]
    assert "fluent:" in row["ecs"]["error.message"] and "stream offset" in row["ecs"]["error.message"]


def test_unknown_mode_keeps_the_connection(server: Server) -> None:
    m = _m()
    with socket.create_connection(("127.0.0.1", server.ports["forward"]), timeout=10) as sock:
        sock.sendall(msgpack.packb(["t", {"what": m}, {"chunk": "dW5r"}]))
        assert _read(sock) == {"ack": "dW5r"}
        sock.sendall(msgpack.packb(["t", 1795729418, {"log": f"after {m}"}, {"chunk": "YWZ0"}]))
        assert _read(sock) == {"ack": "YWZ0"}
    assert server.wait_count(f"error.type:forward.unknown_mode {m}", 1) == 1
    assert server.wait_count(f"after {m}", 1) == 1


class ForwardSender(threading.Thread):
    """Forward-mode frames of 50 entries with a chunk each, acks awaited: what Fluent Bit does
    with require_ack_response. Never resends, so an id is stored at most once."""

    def __init__(self, port: int, run: str, prefix: str) -> None:
        super().__init__(daemon=True)
        self.port = port
        self.run_id = run
        self.prefix = prefix
        self.acked: list[str] = []
        self.stop = threading.Event()

    def run(self) -> None:
        try:
            sock = socket.create_connection(("127.0.0.1", self.port), timeout=10)
            n = 0
            while not self.stop.is_set():
                ids = [f"{self.prefix}{n}x{i}" for i in range(50)]
                entries = [[int(time.time()), {"message": f"durability {self.run_id} {i}"}] for i in ids]
                chunk = f"chunk-{n}"
                sock.sendall(msgpack.packb(["durability", entries, {"chunk": chunk}]))
                if _read(sock) == {"ack": chunk}:
                    self.acked += ids
                n += 1
        except (OSError, ValueError):
            return  # the server died


def test_kill_9_of_the_receiving_worker_loses_nothing_acknowledged(server: Server) -> None:
    """The forward connection is accepted by a parse worker; kill -9 of that worker mid-stream:
    every chunk it acknowledged is stored once, and a new connection (as Fluent Bit makes, to
    the other worker) goes on."""
    run = uuid.uuid4().hex[:10]
    kill_the_receiving_worker(
        server, run, lambda tag: ForwardSender(server.ports["forward"], run, tag), "forward"
    )


def test_kill_9_mid_stream_loses_nothing_acknowledged(server: Server) -> None:
    # (last in the module: it kills the module's node and starts it again)
    run = uuid.uuid4().hex[:10]
    senders = [ForwardSender(server.ports["forward"], run, prefix) for prefix in ("a", "b")]
    for s in senders:
        s.start()
    time.sleep(3.0)
    server.kill9()
    for s in senders:
        s.stop.set()
        s.join(15)
    acked = [i for s in senders for i in s.acked]
    assert len(acked) > 300, len(acked)
    server.start()
    wait_stored(server)
    assert_stored_once(server, run, acked)
