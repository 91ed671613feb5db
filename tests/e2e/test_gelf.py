"""graypy, the real GELF client, → a real `norrvakt serve` with GELF listeners → searchable.

graypy's GELFUDPHandler defaults to port 12202 and its GELFTCPHandler to 12201 (Graylog's GELF
port is 12201 for both): each is pointed at the listener's port explicitly, as a sender's
configuration must be.
"""

from __future__ import annotations

import logging
import os
import socket
import time
import uuid
import zlib
from collections.abc import Iterator
from pathlib import Path

import graypy
import pytest

from tests.e2e.harness import Server, free_ports, running_server


@pytest.fixture(scope="module")
def gelf(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, int, int]]:
    udp, tcp = free_ports(2)
    extra = f"""
[[sources]]
id = "gelf-udp"
type = "gelf"
protocol = "udp"
host = "127.0.0.1"
port = {udp}
tenant = "pitea"
gelf_chunk_timeout_s = 1.0

[[sources]]
id = "gelf-tcp"
type = "gelf"
protocol = "tcp"
host = "127.0.0.1"
port = {tcp}
tenant = "pitea"
"""
    with running_server(Path(tmp_path_factory.mktemp("gelf")), extra_toml=extra) as srv:
        yield srv, udp, tcp


def _marker() -> str:
    return "g" + uuid.uuid4().hex[:12]


def _logger(handler: logging.Handler) -> logging.Logger:
    log = logging.getLogger("e2e-gelf-" + uuid.uuid4().hex[:8])
    log.propagate = False
    log.setLevel(logging.DEBUG)
    log.addHandler(handler)
    return log


def test_graypy_udp_chunked_and_whole(gelf: tuple[Server, int, int]) -> None:
    server, udp, _ = gelf
    handler = graypy.GELFUDPHandler("127.0.0.1", udp)  # not graypy's 12202
    log = _logger(handler)
    m = _marker()
    big = os.urandom(8000).hex()  # zlib leaves ~8.7 kB: 7 chunks of graypy's 1420 bytes
    log.warning("login failed for anna %s", m, extra={"detail": big, "client_ip": "10.1.2.3"})
    log.info("small %s", m)
    handler.close()
    assert server.wait_count(m, 2) == 2
    rows = {r["message"]: r for r in server.search(m)["rows"]}
    row = rows[f"login failed for anna {m}"]
    assert row["tenant"] == "pitea" and row["source"] == "gelf-udp"
    assert row["fields"]["detail"] == big and len(zlib.compress(big.encode())) > 5 * 1420
    assert row["ecs"]["host.name"] == socket.gethostname()
    assert row["ecs"]["log.level"] == "warning"
    assert rows[f"small {m}"]["ecs"]["log.level"] == "info"


def test_graypy_tcp(gelf: tuple[Server, int, int]) -> None:
    server, _, tcp = gelf
    handler = graypy.GELFTCPHandler("127.0.0.1", tcp)
    log = _logger(handler)
    m = _marker()
    for i in range(200):
        log.error("disk full %d %s", i, m, extra={"volume": "/var"})
    handler.close()
    assert server.wait_count(m, 200) == 200
    rows = server.search(m)["rows"]
    assert {r["source"] for r in rows} == {"gelf-tcp"}
    assert all(r["fields"]["volume"] == "/var" and r["ecs"]["log.level"] == "err" for r in rows)


def test_missing_chunk_is_a_pipeline_error_naming_the_message(gelf: tuple[Server, int, int]) -> None:
    server, udp, _ = gelf
    msg_id = os.urandom(8)
    body = zlib.compress(
        b'{"version":"1.1","host":"h","short_message":"' + os.urandom(3000).hex().encode() + b'"}'
    )
    parts = [body[i : i + 1000] for i in range(0, len(body), 1000)]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for i, part in enumerate(parts):
            if i != 1:
                s.sendto(b"\x1e\x0f" + msg_id + bytes([i, len(parts)]) + part, ("127.0.0.1", udp))
        m = _marker()
        s.sendto(b'{"version":"1.1","host":"h","short_message":"after %s"}' % m.encode(), ("127.0.0.1", udp))
    assert server.wait_count(m, 1) == 1
    deadline = time.monotonic() + 15
    rows: list[dict[str, object]] = []
    while time.monotonic() < deadline and not rows:
        rows = server.search(f"error.type:gelf.incomplete {msg_id.hex()}")["rows"]
        time.sleep(0.3)
    (row,) = rows
    text = str(row["ecs"]["error.message"])  # type: ignore[index]
    assert text.startswith("gelf-udp: ") and msg_id.hex() in text
    assert "missing 1" in text and "not complete after 1 s" in text
    assert row["tenant"] == "pitea"
