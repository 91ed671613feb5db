"""Idle connections cannot exhaust the server (issue 11, listeners).

An outsider who can reach the ports opens connections and sends nothing, or sends an HTTP
request head one byte at a time. Before the fix ~1,000 of them under a limit of 1,024
descriptors made asyncio's accept loop log 17,000 lines a second, the web server stop
answering and the journal fail with EMFILE. Now every TCP listener has caps per listener and
per peer sized from the descriptor budget (a reserve stays for the journal), connections over a
cap are closed at once and counted, idle ones are closed after a timeout, and the log stays
quiet.

The first server runs as systemd would start it with ``LimitNOFILE=1024`` (``prlimit``, soft =
hard, so it cannot raise it) and with the default settings: its caps come from the budget. The
second has small caps and timeouts set in its configuration. Attackers connect from loopback
addresses 127.0.2.0 and up; legitimate senders use 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import resource
import select
import selectors
import socket
import ssl
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path

import httpx
import pytest

from tests.e2e.harness import Rsyslog, Server, free_ports

NOFILE = 1024  # the server's RLIMIT_NOFILE in the first module server (systemd's default soft limit)

EXTRA = """
[integrity]
checkpoint_every_seconds = 2
verify_every_minutes = 0
"""

# The second server: caps and timeouts from its configuration.
SMALL_SOURCE = """max_connections = 50
max_connections_per_peer = 10
idle_timeout_s = 4
"""
SMALL_SERVER = """max_connections = 50
max_connections_per_peer = 10
request_head_timeout_s = 3
"""


class LimitedServer(Server):
    """`norrvakt serve` under ``prlimit --nofile=N:N``, with settings added to its tables."""

    nofile: int = 0
    source_toml: str = ""  # added to the tcp, tls and relp [[sources]] tables
    server_toml: str = ""  # added to [server]

    def write_config(self) -> Path:
        cfg = self.data_dir.parent / f"{self.data_dir.name}.toml"
        p = self.ports
        stream = "\n".join(
            f'[[sources]]\nid = "{sid}"\ntype = "{kind}"\nprotocol = "{proto}"\nhost = "127.0.0.1"\n'
            f'port = {p[key]}\ntenant = "{self.tenant}"\n{self.source_toml}'
            for sid, kind, proto, key in (
                ("syslog-tcp", "syslog", "tcp", "tcp"),
                ("syslog-tls", "syslog", "tls", "tls"),
                ("relp", "relp", "tcp", "relp"),
            )
        )
        cfg.write_text(
            f'data_dir = "{self.data_dir}"\ntimezone = "UTC"\nlog_level = "info"\n{self.extra_toml}\n'
            f'[server]\nhost = "127.0.0.1"\nport = {self.http_port}\n{self.server_toml}\n'
            f'[[sources]]\nid = "syslog-udp"\ntype = "syslog"\nprotocol = "udp"\nhost = "127.0.0.1"\n'
            f'port = {p["udp"]}\ntenant = "{self.tenant}"\n\n{stream}'
        )
        return cfg

    def start(self, *args: str, timeout: float = 60, launcher: tuple[str, ...] = ()) -> Server:
        if self.nofile:
            launcher = ("prlimit", f"--nofile={self.nofile}:{self.nofile}", "--", *launcher)
        return super().start(*args, timeout=timeout, launcher=launcher)


def _server(tmp: Path, **kwargs: object) -> LimitedServer:
    u, t, s, r, h = free_ports(5)
    server = LimitedServer(tmp / "data", h, {"udp": u, "tcp": t, "tls": s, "relp": r}, extra_toml=EXTRA)
    for key, value in kwargs.items():
        setattr(server, key, value)
    server.data_dir.mkdir(parents=True, exist_ok=True)
    return server


@pytest.fixture(scope="module", autouse=True)
def _many_descriptors() -> None:
    """This process holds a few thousand sockets at once."""
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 5000:
        pytest.skip(f"the test needs RLIMIT_NOFILE ≥ 5000 for its own sockets (hard limit {hard})")
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LimitedServer]:
    server = _server(Path(tmp_path_factory.mktemp("nofile")), nofile=NOFILE)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LimitedServer]:
    server = _server(
        Path(tmp_path_factory.mktemp("small")), source_toml=SMALL_SOURCE, server_toml=SMALL_SERVER
    )
    server.start()
    try:
        yield server
    finally:
        server.stop()


# -- attackers ------------------------------------------------------------------------------


def _addresses(block: int, n: int) -> list[str]:
    return [f"127.0.{block}.{i}" for i in range(1, n + 1)]


def _connect_many(port: int, count: int, sources: Sequence[str], timeout: float = 20) -> list[socket.socket]:
    """``count`` TCP connections to ``port``, round-robin from ``sources``, connected in parallel."""
    socks: list[socket.socket] = []
    sel = selectors.DefaultSelector()
    for i in range(count):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        s.bind((sources[i % len(sources)], 0))
        s.connect_ex(("127.0.0.1", port))
        socks.append(s)
        sel.register(s, selectors.EVENT_WRITE)
    deadline = time.monotonic() + timeout
    waiting = len(socks)
    while waiting and time.monotonic() < deadline:
        for key, _ in sel.select(timeout=0.5):
            sel.unregister(key.fileobj)
            waiting -= 1
    sel.close()
    return socks


def _closed_by_server(socks: Sequence[socket.socket], within: float) -> int:
    """How many of ``socks`` the server closes (EOF or reset) within ``within`` seconds."""
    poller = select.poll()
    by_fd = {s.fileno(): s for s in socks}
    for fd in by_fd:
        poller.register(fd, select.POLLIN | select.POLLERR | select.POLLHUP)
    closed = 0
    deadline = time.monotonic() + within
    while by_fd and (left := deadline - time.monotonic()) > 0:
        for fd, _ in poller.poll(int(left * 1000) + 1):
            try:
                data = by_fd[fd].recv(65536)
            except BlockingIOError:
                continue
            except OSError:  # reset, or the connect itself was refused
                data = b""
            if not data:
                closed += 1
                poller.unregister(fd)
                del by_fd[fd]
    return closed


def _close_all(socks: Sequence[socket.socket]) -> None:
    for s in socks:
        s.close()


# -- legitimate senders --------------------------------------------------------------------


def _marker() -> str:
    return "c" + uuid.uuid4().hex[:12]


def _syslog_tcp(port: int, marker: str, n: int = 3) -> bool:
    """Send n records and half-close; True when the server closed after they were durable
    (plain TCP syslog's only acknowledgement)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            s.sendall(
                b"".join(b"<13>1 - legit app - - - record %d %s\n" % (i, marker.encode()) for i in range(n))
            )
            s.shutdown(socket.SHUT_WR)
            return s.recv(100) == b""
    except OSError:
        return False


def _relp(port: int, marker: str, n: int = 3) -> list[bytes]:
    """A RELP session (open, n messages, close); the server's answers to the messages."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        reader = s.makefile("rb")
        offer = b"relp_version=0\nrelp_software=test\ncommands=syslog"
        s.sendall(b"1 open %d %s\n" % (len(offer), offer))
        reader.readline()
        while not reader.readline().startswith(b"commands="):  # the offers span lines
            pass
        answers = []
        for i in range(n):
            msg = b"<13>1 - relphost app - - - relp record %d %s" % (i, marker.encode())
            s.sendall(b"%d syslog %d %s\n" % (i + 2, len(msg), msg))
            answers.append(reader.readline())
        s.sendall(b"%d close 0\n" % (n + 2))
        return answers


def _established_to(port: int) -> int:
    """Established connections to 127.0.0.1:port seen from the client side (ss)."""
    out = subprocess.run(
        ["ss", "-Htn", "state", "established", f"( dport = :{port} )"], capture_output=True, text=True
    )
    return len([line for line in out.stdout.splitlines() if line.strip()])


def _health_fast(server: Server, limit_s: float = 2.0) -> float:
    t0 = time.monotonic()
    resp = httpx.get(f"{server.url}/api/health", timeout=10)
    took = time.monotonic() - t0
    assert resp.status_code == 200, resp.text
    assert took < limit_s, f"/api/health took {took:.2f} s"
    return took


def _transport_errors(server: Server) -> dict[str, int]:
    errors: dict[str, int] = server.api("GET", "/api/stats").json()["pipeline"]["transport_errors"]
    return errors


def _log_size(server: Server) -> int:
    assert server.log_path is not None
    return server.log_path.stat().st_size


def _checkpoints(server: Server, tenant: str = "lulea") -> int:
    path = server.data_dir / "journal" / tenant / "checkpoints.jsonl"
    return len(path.read_bytes().splitlines()) if path.exists() else 0


# -- caps sized from the descriptor budget (LimitNOFILE=1024, default settings) -------------


def test_one_address_cannot_hold_many_connections(limited: LimitedServer) -> None:
    log_before = _log_size(limited)
    crowd = _connect_many(limited.ports["tcp"], 200, ["127.0.2.1"])
    try:
        closed = _closed_by_server(crowd, within=5)
        # A per-peer cap sized from a 1,024-descriptor budget is far below 200: most are shut
        # at once; a few stay (a sender behind NAT may need several).
        assert 150 <= closed < 200, closed
        m = _marker()
        assert _syslog_tcp(limited.ports["tcp"], m), "a legitimate sender was not acknowledged"
        assert limited.wait_count(m, 3) == 3
        _health_fast(limited)
        assert _transport_errors(limited).get("syslog-tcp: connection.over_peer_limit", 0) >= closed
    finally:
        _close_all(crowd)
    assert _log_size(limited) - log_before < 20_000, limited.log()


def test_many_addresses_cannot_fill_the_listener(limited: LimitedServer) -> None:
    # 6 connections from each of 100 addresses: under the per-peer cap, over the listener's.
    crowd = _connect_many(limited.ports["tcp"], 600, _addresses(3, 100))
    try:
        closed = _closed_by_server(crowd, within=5)
        assert closed >= 400, closed
        assert _transport_errors(limited).get("syslog-tcp: connection.over_limit", 0) > 0
        # The other listeners keep their share of the budget.
        m = _marker()
        assert _relp(limited.ports["relp"], m) == [b"%d rsp 6 200 OK\n" % (i + 2) for i in range(3)]
        assert limited.wait_count(m, 3) == 3
        _health_fast(limited)
    finally:
        _close_all(crowd)
    # Once the crowd is gone the listener takes senders again.
    m = _marker()
    deadline = time.monotonic() + 10
    while not _syslog_tcp(limited.ports["tcp"], m, n=1) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert limited.wait_count(m, 1) >= 1


def test_2000_idle_connections_do_not_exhaust_the_descriptors(limited: LimitedServer) -> None:
    """The finding at scale: more idle connections than the process has descriptors."""
    assert limited.proc is not None
    token = limited.ingest_token("lulea", "limits-hec")
    log_before = _log_size(limited)
    senders = _addresses(4, 200)
    crowd = _connect_many(limited.ports["tcp"], 1000, senders) + _connect_many(
        limited.ports["relp"], 1000, senders
    )
    try:
        time.sleep(1)
        _health_fast(limited)
        # The reserve stays: connections never take the descriptors the journal needs.
        open_fds = len(os.listdir(f"/proc/{limited.proc.pid}/fd"))
        assert open_fds <= NOFILE - 256, open_fds
        # Ingest goes on: records are journaled (fsync), acknowledged and stored ...
        m = _marker()
        body = "\n".join(json.dumps({"event": f"hec record {i} {m}", "host": "legit"}) for i in range(5))
        resp = httpx.post(
            f"{limited.url}/services/collector/event",
            content=body,
            headers={"Authorization": f"Splunk {token}"},
            timeout=10,
        )
        assert resp.status_code == 200, resp.text
        assert limited.wait_count(m, 5, tenant="lulea") == 5
        # ... and checkpoints are still signed (every 2 s in this configuration).
        before = _checkpoints(limited)
        deadline = time.monotonic() + 10
        while _checkpoints(limited) < before + 2 and time.monotonic() < deadline:
            time.sleep(0.5)
        assert _checkpoints(limited) >= before + 2
        _health_fast(limited)
        # All but the few hundred the caps allow were closed at once, none left hanging.
        assert _closed_by_server(crowd, within=10) >= 1500
    finally:
        _close_all(crowd)
    grown = _log_size(limited) - log_before
    assert grown < 50_000, f"the log grew by {grown} bytes:\n{limited.log()}"
    m = _marker()
    deadline = time.monotonic() + 10
    while not _syslog_tcp(limited.ports["tcp"], m, n=1) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert limited.wait_count(m, 1) >= 1


def _slowloris(port: int, source: str, stop: threading.Event, closed_at: list[float]) -> None:
    """An HTTP request head, one header line a second, never finished."""
    t0 = time.monotonic()
    s = socket.socket()
    s.bind((source, 0))
    s.connect(("127.0.0.1", port))
    try:
        s.sendall(b"GET /api/health HTTP/1.1\r\nHost: norrvakt\r\n")
        i = 0
        while not stop.wait(1.0):
            i += 1
            s.sendall(b"X-Slow-%d: yes\r\n" % i)
    except OSError:
        closed_at.append(time.monotonic() - t0)
    finally:
        s.close()


def test_idle_http_connections_and_a_slowloris_head_are_closed(limited: LimitedServer) -> None:
    log_before = _log_size(limited)
    stop = threading.Event()
    closed_at: list[float] = []
    slow = threading.Thread(target=_slowloris, args=(limited.http_port, "127.0.5.99", stop, closed_at))
    slow.start()
    idle_http = _connect_many(limited.http_port, 40, _addresses(5, 10))
    idle_tls = _connect_many(limited.ports["tls"], 10, _addresses(5, 10))
    try:
        _health_fast(limited)
        # No request head within server.request_head_timeout_s (10 s); TLS: no handshake in 15 s.
        assert _closed_by_server(idle_http, within=16) == len(idle_http)
        assert _closed_by_server(idle_tls, within=8) == len(idle_tls)
        slow.join(timeout=10)
        assert closed_at and closed_at[0] < 16, closed_at  # bytes kept trickling in: still closed
        _health_fast(limited)
    finally:
        stop.set()
        slow.join()
        _close_all(idle_http + idle_tls)
    assert _log_size(limited) - log_before < 20_000, limited.log()


def test_one_address_cannot_hold_the_web_server(limited: LimitedServer) -> None:
    crowd = _connect_many(limited.http_port, 150, ["127.0.6.1"])
    try:
        assert _closed_by_server(crowd, within=3) >= 100
        _health_fast(limited)
        assert _transport_errors(limited).get("http: connection.over_peer_limit", 0) >= 100
    finally:
        _close_all(crowd)


# -- caps and timeouts from the configuration ------------------------------------------------


def test_configured_caps_hold_exactly(small: LimitedServer) -> None:
    one = _connect_many(small.ports["tcp"], 25, ["127.0.7.1"])
    try:
        assert _closed_by_server(one, within=1.5) == 15  # max_connections_per_peer = 10
    finally:
        _close_all(one)
    time.sleep(0.5)
    many = _connect_many(small.ports["relp"], 80, _addresses(8, 10))
    try:
        assert _closed_by_server(many, within=1.5) == 30  # max_connections = 50
    finally:
        _close_all(many)
    web = _connect_many(small.http_port, 25, ["127.0.9.1"])
    try:
        assert _closed_by_server(web, within=1.5) == 15  # server.max_connections_per_peer = 10
    finally:
        _close_all(web)


def test_idle_stream_connections_are_closed_after_the_timeout(small: LimitedServer) -> None:
    m = _marker()
    t0 = time.monotonic()
    tcp = socket.create_connection(("127.0.0.1", small.ports["tcp"]), timeout=15)
    tcp.sendall(b"<13>1 - idler app - - - sent before going quiet %s\n" % m.encode())
    relp = socket.create_connection(("127.0.0.1", small.ports["relp"]), timeout=15)
    offer = b"relp_version=0\nrelp_software=test\ncommands=syslog"
    relp.sendall(b"1 open %d %s\n" % (len(offer), offer))
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    tls = ctx.wrap_socket(
        socket.create_connection(("127.0.0.1", small.ports["tls"]), timeout=15), server_hostname="localhost"
    )
    try:
        assert tcp.recv(100) == b""  # closed by the server, after its record was durable
        took = time.monotonic() - t0
        assert 3 <= took < 10, took
        assert small.wait_count(m, 1) == 1
        relp_out = b""
        while chunk := relp.recv(4096):
            relp_out += chunk
        assert b"1 rsp" in relp_out and relp_out.endswith(b"0 serverclose 0\n"), relp_out
        assert tls.recv(100) == b""
        assert time.monotonic() - t0 < 12
    finally:
        tcp.close()
        relp.close()
        tls.close()


def test_rsyslog_loses_nothing_when_its_idle_connection_is_closed(
    small: LimitedServer, tmp_path: Path
) -> None:
    """A quiet host's rsyslog (omfwd TCP and omrelp) reconnects after the idle timeout closed
    its connection; the next messages arrive."""
    rsyslog = Rsyslog(tmp_path / "rsyslog")
    rsyslog.start(
        f'action(type="omfwd" target="127.0.0.1" port="{small.ports["tcp"]}" protocol="tcp" '
        'TCP_Framing="octet-counted" template="RSYSLOG_SyslogProtocol23Format")\n'
        f'action(type="omrelp" target="127.0.0.1" port="{small.ports["relp"]}" '
        'template="RSYSLOG_SyslogProtocol23Format")',
        modules='module(load="omrelp")',
    )
    try:
        before, after = _marker(), _marker()
        rsyslog.log(f"before the quiet spell {before}")
        assert small.wait_count(before, 2) == 2  # once over TCP, once over RELP
        assert _established_to(small.ports["tcp"]) == _established_to(small.ports["relp"]) == 1
        time.sleep(6)  # idle_timeout_s = 4: both connections are closed by now
        for port in (small.ports["tcp"], small.ports["relp"]):
            assert _established_to(port) == 0, port
        rsyslog.log(f"after the quiet spell {after}", f"and one more {after}")
        assert small.wait_count(after, 4) == 4
        sources = {r["source"] for r in small.search(after)["rows"]}
        assert sources == {"syslog-tcp", "relp"}
    finally:
        rsyslog.stop()
