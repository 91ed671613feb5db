"""Events/s of each receiver of issue 14 with its real client, next to HEC on the same events.

One real `norrvakt serve` (tests/e2e/harness.py; fsync on, live detection with the built-in rules)
is configured with every listener of the run, and the m365 connector gets one of its own (it
polls the stand-in every second); ``--fresh``: a new server per receiver. Each
receiver gets ``--events`` events (20,000) from its real client, then the same events go to
Splunk HEC on the same server as the baseline (``--hec-posters`` 4 and ``--batch`` 500, as
bench/ingest_http.py posts):

- ``beats``: pylogbeat (Lumberjack v2, windows of ``--batch``), Winlogbeat 8 documents;
- ``gelf-tcp``, ``gelf-udp``: graypy's GELFTCPHandler / GELFUDPHandler (zlib, chunked), NXLog
  CE's im_msvistalog fields as xm_gelf sends them (tests/sources/test_gelf_windows.py);
- ``forward``: fluent-logger (Message mode, EventTime), Fluent Bit winevtlog records;
- ``otlp``: the OpenTelemetry SDK's OTLPLogExporter (protobuf, gzip, batches of ``--batch``),
  the Collector's windowseventlog bodies, to ``POST /v1/logs``;
  HEC for all five: ``/services/collector/event``, the same EVTX records as bench/ingest_http.py;
- ``journal``: systemd-journal-upload with a Journal Export Format file of sshd and sudo entries
  (made here); HEC: ``/services/collector/raw?sourcetype=syslog``, the same messages as syslog
  lines;
- ``audisp``: /sbin/audisp-remote (managed format, its default) fed audit events of SYSCALL,
  EXECVE, PATH, PROCTITLE and EOE records (made here); HEC: ``/services/collector/raw``, the
  record lines audisp-remote forwards (all but EOE);
- ``m365``: the pull connector against tests/m365's stand-in, half Audit.Exchange blobs of 100
  records, half Graph sign-ins, pages of 100; HEC: ``/services/collector/event``, the same
  records.

The Windows records are read from ../shared/data/evtx-attack-samples at bench time with the
``evtx`` package (never copied into the repo; the 8,255 records repeated as needed) and turned
into each receiver's shape here; the Linux events are generated here.

Measured per receiver and per HEC baseline, each on its own source id, one after the other:
events/s acknowledged in the client's view (pylogbeat's window ACKs, the OTLP exporter's 200,
journal-upload's exit after its 200, HEC's answers, the connector's journaled-record count;
graypy, fluent-logger in Message mode and audisp-remote report no acknowledgement: "-"), events/s
stored and searchable (the tenant's stored counter, then ``source:<id>`` counted), and the CPU
seconds of the server's processes from the first event until detection has matched them all,
per event. audisp's HEC baseline posts 4 record lines per audit event: its rate is given in
audit events. A lossy receiver (GELF over UDP) is counted as stored when its count has not moved
for ``--settle`` s after the client finished; what was lost is in the JSON.

    .venv/bin/python bench/sources.py [--events 20000] [--only beats,gelf] [--fresh]

``--only`` takes receiver names or prefixes (``gelf`` = gelf-tcp and gelf-udp). The result goes
to bench/results/<--name>.json (``sources``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
from _common import REPO, CpuClock, bench_server, write_result
from ingest_http import _attrs, _event_data, _text, hec_event, read_records, winlogbeat_doc

from tests.e2e.harness import Server, free_ports

UPLOAD = Path("/lib/systemd/systemd-journal-upload")
AUDISP_REMOTE = Path("/sbin/audisp-remote")
WINDOWS = ("beats", "gelf-tcp", "gelf-udp", "forward", "otlp")
ORDER = (*WINDOWS, "journal", "audisp", "m365")
# One tenant per receiver (its HEC baseline too), so the tenant's stored counter is the phase's.
TENANTS = dict(zip(ORDER, ("arjeplog", "arvidsjaur", "boden", "gallivare", "haparanda", "jokkmokk",
                           "kalix", "kiruna"), strict=True))  # fmt: skip
CLIENTS = {
    "beats": "pylogbeat (Lumberjack v2)",
    "gelf-tcp": "graypy GELFTCPHandler",
    "gelf-udp": "graypy GELFUDPHandler",
    "forward": "fluent-logger (Message mode)",
    "otlp": "OTel SDK OTLPLogExporter",
    "journal": "systemd-journal-upload",
    "audisp": "audisp-remote (managed)",
    "m365": "m365 connector ← stand-in",
}


# -- the run's server ----------------------------------------------------------------------------


@dataclass
class Ctx:
    """What a client needs: the server, its listener ports, the run's arguments."""

    server: Server
    ports: dict[str, int]
    args: argparse.Namespace
    workdir: Path
    standin: Any = None
    tokens: dict[str, str] = field(default_factory=dict)  # made before a phase's clock starts
    stored: threading.Event = field(default_factory=threading.Event)  # set once the phase is stored


def sources_toml(names: list[str], ports: dict[str, int], standin: Any) -> str:
    out = []
    stream = {"beats": "beats", "gelf-tcp": "gelf", "forward": "forward", "journal": "journal-remote"}
    for name in names:
        tenant = TENANTS[name]
        if name in stream:
            out.append(f'[[sources]]\nid = "{name}"\ntype = "{stream[name]}"\nprotocol = "tcp"\n'
                       f'host = "127.0.0.1"\nport = {ports[name]}\ntenant = "{tenant}"\n')  # fmt: skip
        elif name == "gelf-udp":
            out.append(f'[[sources]]\nid = "gelf-udp"\ntype = "gelf"\nprotocol = "udp"\nhost = "127.0.0.1"\n'
                       f'port = {ports[name]}\ntenant = "{tenant}"\n')  # fmt: skip
        elif name == "audisp":
            out.append(f'[[sources]]\nid = "audisp"\ntype = "audisp"\nhost = "127.0.0.1"\n'
                       f'port = {ports[name]}\ntenant = "{tenant}"\n')  # fmt: skip
        elif name == "m365":
            from tests.m365.standin import CLIENT_ID, DIRECTORY

            out.append(
                f'[[sources]]\nid = "m365"\ntype = "m365"\ntenant = "{tenant}"\n'
                f'm365.directory_id = "{DIRECTORY}"\nm365.client_id = "{CLIENT_ID}"\n'
                'm365.feeds = ["Audit.Exchange", "graph.signIns"]\nm365.poll_interval_s = 1\n'
                # the stand-in lists a sign-in at once: no need to wait out Graph's usual delay
                "m365.graph_delay_minutes = 0\n"
                f'm365.login_url = "{standin.base}"\nm365.manage_url = "{standin.base}"\n'
                f'm365.graph_url = "{standin.base}"\nm365.ca_file = "{standin.ca_file}"\n'
            )
    return "\n".join(out)


def set_m365_credential(server: Server, workdir: Path) -> None:
    from tests.m365.standin import SECRET

    secret = workdir / "m365-secret.txt"
    secret.write_text(SECRET)
    cfg = server.data_dir.parent / f"{server.data_dir.name}.toml"
    subprocess.run(
        [sys.executable, "-m", "norrvakt.cli", "--config", str(cfg), "m365", "set-credential", "-c", "m365",
         "--secret-file", str(secret)],
        check=True, capture_output=True, cwd=REPO,
    )  # fmt: skip
    secret.unlink()


@contextmanager
def run_server(names: list[str], workdir: Path, standin: Any) -> Iterator[tuple[Server, dict[str, int]]]:
    ports = dict(zip(names, free_ports(len(names)), strict=True))
    with bench_server(workdir, extra_toml=sources_toml(names, ports, standin)) as srv:
        if "m365" in names:
            set_m365_credential(srv, workdir)
        yield srv, ports


# -- the events: Windows records in each receiver's shape ------------------------------------------


def _system(rec: dict[str, Any]) -> dict[str, Any]:
    """The System values of an EVTX record the shapes below need."""
    system = rec["Event"]["System"]
    event_id = system.get("EventID")
    qualifiers = _attrs(event_id).get("Qualifiers")
    if isinstance(event_id, dict):
        event_id = event_id.get("#text")
    execution = _attrs(system.get("Execution"))
    correlation = _attrs(system.get("Correlation"))
    provider = _attrs(system.get("Provider"))
    guid = provider.get("Guid") or ""
    return {
        "provider": provider.get("Name", ""),
        "guid": ("{" + guid.strip("{}") + "}") if guid else "",
        "source": provider.get("EventSourceName") or "",
        "event_id": int(_text(event_id) or 0),
        "qualifiers": qualifiers,
        "version": system.get("Version") or 0,
        "level": system.get("Level") or 0,
        "task": system.get("Task") or 0,
        "opcode": system.get("Opcode") or 0,
        "keywords": str(system.get("Keywords") or "0x0"),
        "time": _attrs(system.get("TimeCreated")).get("SystemTime", ""),
        "record_id": system.get("EventRecordID") or 0,
        "pid": execution.get("ProcessID") or 0,
        "tid": execution.get("ThreadID") or 0,
        "channel": system.get("Channel") or "",
        "computer": system.get("Computer") or "",
        "user": _attrs(system.get("Security")).get("UserID") or "",
        "activity": correlation.get("ActivityID") or "",
    }


def _leaves(value: Any) -> list[str]:
    """UserData's values in document order (Fluent Bit's inserts of an event without EventData)."""
    if isinstance(value, dict):
        return [v for k, item in value.items() if k != "#attributes" for v in _leaves(item)]
    if isinstance(value, list):
        return [v for item in value for v in _leaves(item)]
    return [_text(value)]


def _when(iso: str) -> dt.datetime:
    """An EVTX SystemTime (UTC, up to 7 decimals) as a datetime."""
    try:
        return dt.datetime.fromisoformat(iso.rstrip("Z")[:26]).replace(tzinfo=dt.UTC)
    except ValueError:
        return dt.datetime.now(dt.UTC)


def fluentbit_record(rec: dict[str, Any]) -> dict[str, Any]:
    """The record Fluent Bit's winevtlog input makes of this event (parsers/windows_fluentbit.py
    shows the shape): system values by Fluent Bit's names, the insertion strings positional."""
    s = _system(rec)
    ev = rec["Event"]
    inserts = (
        list(_event_data(ev["EventData"]).values()) if "EventData" in ev else _leaves(ev.get("UserData"))
    )
    return {
        "ProviderName": s["provider"],
        "ProviderGuid": s["guid"],
        "Qualifiers": "" if s["qualifiers"] is None else s["qualifiers"],
        "EventID": s["event_id"],
        "Version": s["version"],
        "Level": s["level"],
        "Task": s["task"],
        "Opcode": s["opcode"],
        "Keywords": s["keywords"],
        "TimeCreated": _when(s["time"]).strftime("%Y-%m-%d %H:%M:%S +0000"),
        "EventRecordID": s["record_id"],
        "ActivityID": s["activity"],
        "RelatedActivityID": "",
        "ProcessID": s["pid"],
        "ThreadID": s["tid"],
        "Channel": s["channel"],
        "Computer": s["computer"],
        "UserID": s["user"],
        "Message": "",
        "StringInserts": inserts,
    }


_LEVEL_NAMES = {1: "Critical", 2: "Error", 3: "Warning", 4: "Information", 5: "Verbose"}
_OPCODE_NAMES = {0: "Info", 1: "Start", 2: "Stop"}
_KEYWORD_NAMES = {0x0010000000000000: "Audit Failure", 0x0020000000000000: "Audit Success",
                  0x0080000000000000: "Classic"}  # fmt: skip


def otel_body(rec: dict[str, Any]) -> dict[str, Any]:
    """The body the Collector's windowseventlog receiver makes of this event (the newer
    ``event_data.data`` list; parsers/windows_otel.py shows the shape)."""
    s = _system(rec)
    ev = rec["Event"]
    data: list[dict[str, str]] = []
    if isinstance(ev.get("EventData"), dict):
        for key, value in ev["EventData"].items():
            if key == "#attributes":
                continue
            if key == "Data":  # unnamed <Data> elements
                texts = value.get("#text") if isinstance(value, dict) else value
                data += [{"": _text(v)} for v in (texts if isinstance(texts, list) else [texts])]
            else:
                data.append({key: _text(value)})
    try:
        mask = int(s["keywords"], 0)
    except ValueError:
        mask = 0
    body: dict[str, Any] = {
        "channel": s["channel"],
        "computer": s["computer"],
        "event_id": {"id": s["event_id"], "qualifiers": int(s["qualifiers"] or 0)},
        "provider": {"name": s["provider"], "guid": s["guid"], "event_source": s["source"]},
        "record_id": int(s["record_id"]),
        "system_time": s["time"],
        "level": _LEVEL_NAMES.get(s["level"], str(s["level"])),
        "task": str(s["task"]),
        "opcode": _OPCODE_NAMES.get(s["opcode"], str(s["opcode"])),
        "keywords": [name for bit, name in _KEYWORD_NAMES.items() if mask & bit],
        "event_data": {"data": data},
        "execution": {"process_id": int(s["pid"]), "thread_id": int(s["tid"])},
        "message": "",
    }
    if s["user"]:
        body["security"] = {"user_id": s["user"]}
    return body


def _cycle(items: list[Any], n: int) -> list[Any]:
    return [items[i % len(items)] for i in range(n)]


# -- the events: Linux, generated here -------------------------------------------------------------

_USERS = ("anna", "erik", "maja", "olle", "admin", "backup", "svc-deploy")


def _linux_message(i: int) -> tuple[str, str, int, int]:
    """(program, message, syslog facility, priority) of Linux event ``i``: sshd and sudo lines."""
    user, ip = _USERS[i % len(_USERS)], f"10.{20 + i % 3}.{(i // 7) % 250}.{i % 250 + 1}"
    port = 40000 + i % 20000
    kind = i % 6
    if kind == 0:
        return "sshd", f"Failed password for invalid user {user} from {ip} port {port} ssh2", 10, 6
    if kind == 1:
        return "sshd", f"Failed password for {user} from {ip} port {port} ssh2", 10, 6
    if kind == 2:
        return (
            "sshd",
            f"Accepted publickey for {user} from {ip} port {port} ssh2: ED25519 SHA256:bench{i}",
            10,
            6,
        )
    if kind == 3:
        return "sshd", f"pam_unix(sshd:session): session opened for user {user}(uid=1000) by (uid=0)", 10, 6
    if kind == 4:
        return ("sudo", f"{user} : TTY=pts/{i % 4} ; PWD=/home/{user} ; USER=root ; "
                        f"COMMAND=/usr/bin/systemctl restart nginx-{i % 9}", 10, 5)  # fmt: skip
    return "sudo", f"pam_unix(sudo:session): session opened for user root(uid=0) by {user}(uid=1000)", 10, 6


def journal_entries(n: int, t0_us: int) -> tuple[bytes, list[bytes]]:
    """Journal Export Format of ``n`` entries as journald writes them, and the same messages as
    RFC 3164 syslog lines (what rsyslog would forward) for HEC raw."""
    export: list[bytes] = []
    lines: list[bytes] = []
    for i in range(n):
        prog, msg, fac, pri = _linux_message(i)
        host, pid, at = f"srv-{i % 20:02d}.lulea.kommun.local", 1000 + i % 30000, t0_us + i * 1000
        exe = "/usr/sbin/sshd" if prog == "sshd" else "/usr/bin/sudo"
        export.append(
            f"__REALTIME_TIMESTAMP={at}\n__MONOTONIC_TIMESTAMP={at - t0_us + 5_000_000}\n"
            f"_BOOT_ID=3f1c0b7e5a7d4e0e9b7c1d2e3f4a5b6c\n_MACHINE_ID=9a8b7c6d5e4f30211f2e3d4c5b6a7980\n"
            f"_HOSTNAME={host}\n_TRANSPORT=syslog\nPRIORITY={pri}\nSYSLOG_FACILITY={fac}\n"
            f"SYSLOG_IDENTIFIER={prog}\nSYSLOG_PID={pid}\n_PID={pid}\n_UID=0\n_GID=0\n_COMM={prog}\n"
            f"_EXE={exe}\n_CMDLINE={prog}: session\n_SYSTEMD_UNIT={'ssh' if prog == 'sshd' else 'session-3'}"
            f".service\n_SOURCE_REALTIME_TIMESTAMP={at - 17}\nMESSAGE={msg}\n\n".encode()
        )
        stamp = dt.datetime.fromtimestamp(at / 1e6, dt.UTC).strftime("%b %e %H:%M:%S")
        lines.append(f"<{fac * 8 + pri}>{stamp} {host} {prog}[{pid}]: {msg}".encode())
    return b"".join(export), lines


def _hex(text: str) -> str:
    return text.encode().hex().upper()


_COMMANDS = (
    ["sudo", "systemctl", "restart", "nginx"],
    ["curl", "-fsS", "http://192.0.2.10/health"],
    ["cat", "/etc/shadow"],
    ["bash", "-c", "id; uname -a"],
    ["python3", "/opt/app/run.py", "--once"],
)


def audit_events(n: int, t0_s: float) -> tuple[list[str], list[bytes]]:
    """``n`` audit events (SYSCALL, EXECVE, PATH, PROCTITLE, EOE of one serial, as auditd's
    dispatcher gives them to audisp-remote, node= first as with name_format = hostname), and the
    record lines audisp-remote forwards (all but EOE) for HEC raw."""
    fed: list[str] = []
    forwarded: list[bytes] = []
    for i in range(n):
        argv = list(_COMMANDS[i % len(_COMMANDS)])
        at, serial, node = t0_s + i / 1000, 10_000 + i, f"node=web{i % 8}"
        head = f"msg=audit({at:.3f}:{serial}):"
        exe = f"/usr/bin/{argv[0]}"
        args = " ".join(f"a{k}={_hex(a)}" if " " in a else f'a{k}="{a}"' for k, a in enumerate(argv))
        group = [
            f"{node} type=SYSCALL {head} arch=c000003e syscall=59 success=yes exit=0 a0=55d0c1 a1=55d0c2 "
            f"a2=55d0c3 a3=0 items=1 ppid={900 + i % 50} pid={4000 + i % 30000} auid={1000 + i % 7} uid=0 "
            f"gid=0 euid=0 suid=0 fsuid=0 egid=0 sgid=0 fsgid=0 tty=pts{i % 4} ses={3 + i % 5} "
            f'comm="{argv[0]}" exe="{exe}" subj=unconfined key="exec"',
            f"{node} type=EXECVE {head} argc={len(argv)} {args}",
            f'{node} type=PATH {head} item=0 name="{exe}" inode={100_000 + i % 500} dev=08:01 mode=0100755 '
            "ouid=0 ogid=0 rdev=00:00 nametype=NORMAL cap_fp=0 cap_fi=0 cap_fe=0 cap_fver=0",
            f"{node} type=PROCTITLE {head} proctitle={_hex(chr(0).join(argv))}",
        ]
        fed += [*group, f"{node} type=EOE {head} "]
        forwarded += [line.encode() for line in group]
    return fed, forwarded


# -- the receivers ---------------------------------------------------------------------------------

SendFn = Callable[[Ctx], float | None]  # runs the client; when all was acknowledged (None: no acks)


@dataclass
class Workload:
    events: int  # what the receiver should store
    send: SendFn
    hec_path: str  # with its query
    hec_items: list[bytes]  # one per HEC event (a JSON object, or a line for raw)
    hec_expected: int  # HEC events that make ``events`` (audit: 4 record lines an event)
    check: Callable[[dict[str, Any]], bool]  # does a stored row have the receiver's normalized form
    check_what: str
    note: str = ""
    prepare: Callable[[Ctx], None] | None = None  # before the clock starts (tokens, timestamps)


def _windows_row(row: dict[str, Any]) -> bool:
    f = row["fields"]  # 415 of the records (ETW providers) have no channel
    return "EventID" in f and ("Channel" in f or "Provider_Name" in f)


def _batches(n: int, size: int) -> Iterator[tuple[int, int]]:
    for start in range(0, n, size):
        yield start, min(size, n - start)


def beats_workload(records: list[dict[str, Any]], args: argparse.Namespace) -> Workload:
    n = args.events
    meta = {"beat": "winlogbeat", "type": "_doc", "version": "8.11.3"}
    docs = [{"@metadata": meta, **winlogbeat_doc(r)} for r in _cycle(records, n)]

    def send(ctx: Ctx) -> float:
        import pylogbeat

        with pylogbeat.PyLogBeatClient("127.0.0.1", ctx.ports["beats"], timeout=300) as client:
            for start, count in _batches(n, args.batch):  # one window each; send() waits for its ACK
                client.send(docs[start : start + count])
        return time.monotonic()

    return _windows(records, n, send)


_HEC_WINDOWS: dict[int, list[bytes]] = {}  # the same HEC bodies for every Windows receiver


def _windows(records: list[dict[str, Any]], n: int, send: SendFn, note: str = "") -> Workload:
    if n not in _HEC_WINDOWS:
        _HEC_WINDOWS[n] = [hec_event(r) for r in _cycle(records, n)]
    return Workload(
        n, send, "/services/collector/event", _HEC_WINDOWS[n], n,
        _windows_row, "EventID and Channel (or Provider_Name) fields", note,
    )  # fmt: skip


_PY_LEVELS = {1: logging.CRITICAL, 2: logging.ERROR, 3: logging.WARNING, 4: logging.INFO, 5: logging.DEBUG}


def gelf_workload(records: list[dict[str, Any]], args: argparse.Namespace, udp: bool) -> Workload:
    """NXLog's im_msvistalog fields (tests/sources/test_gelf_windows.py) sent by graypy: each
    field an additional ``_field``, the host as NXLog's Hostname, the time as EventTime."""
    from tests.sources.test_gelf_windows import nxlog_fields

    n = args.events
    prepared: list[tuple[str, logging.LogRecord]] = []
    clashes = 0
    for rec in _cycle(records, n):
        f = nxlog_fields(rec)
        level = _PY_LEVELS.get(int(f.get("Level") or 4), logging.INFO)
        lr = logging.LogRecord("eventlog", level, "", 0, f"{f.get('SourceName', '')} event {f['EventID']}",
                               None, None)  # fmt: skip
        lr.created = _when(_system(rec)["time"]).timestamp()
        for key, value in f.items():
            if key in {"Hostname", "EventTime"}:
                continue
            if key in lr.__dict__:  # a LogRecord attribute: graypy could not send it as a field
                clashes += 1
                continue
            lr.__dict__[key] = value
        prepared.append((str(f.get("Hostname", "")), lr))
    port_key = "gelf-udp" if udp else "gelf-tcp"

    def send(ctx: Ctx) -> None:
        import graypy

        port = ctx.ports[port_key]
        handler: logging.Handler = (
            graypy.GELFUDPHandler("127.0.0.1", port, debugging_fields=False)
            if udp
            else graypy.GELFTCPHandler("127.0.0.1", port, debugging_fields=False)
        )
        try:
            for host, lr in prepared:
                handler.localname = host  # type: ignore[attr-defined]  # graypy's GELF host field
                handler.handle(lr)
        finally:
            handler.close()
        return None

    note = f"{clashes} NXLog fields not sent (they are LogRecord attributes)" if clashes else ""
    return _windows(records, n, send, note)


def forward_workload(records: list[dict[str, Any]], args: argparse.Namespace) -> Workload:
    n = args.events
    entries = [(_when(_system(r)["time"]).timestamp(), fluentbit_record(r)) for r in _cycle(records, n)]

    def send(ctx: Ctx) -> None:
        from fluent import sender as fluent_sender

        logger = fluent_sender.FluentSender(
            "", host="127.0.0.1", port=ctx.ports["forward"], nanosecond_precision=True, timeout=30
        )
        try:
            for at, record in entries:
                if not logger.emit_with_time("winevtlog", at, record):
                    raise SystemExit(f"fluent-logger: {logger.last_error}")
        finally:
            logger.close()
        return None

    return _windows(records, n, send)


def otlp_workload(records: list[dict[str, Any]], args: argparse.Namespace) -> Workload:
    """The log records made through the SDK's LoggerProvider (in memory, before the clock
    starts), exported in batches of ``--batch`` by OTLPLogExporter as the BatchLogRecordProcessor
    would."""
    from opentelemetry._logs import SeverityNumber
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
    from opentelemetry.sdk.resources import Resource

    n = args.events
    memory = InMemoryLogRecordExporter()
    provider = LoggerProvider(resource=Resource.create({"service.name": "otelcol-windows"}))
    provider.add_log_record_processor(SimpleLogRecordProcessor(memory))
    logger = provider.get_logger("windowseventlog")
    for rec in _cycle(records, n):
        body = otel_body(rec)
        logger.emit(
            timestamp=int(_when(body["system_time"]).timestamp() * 1e9),
            severity_number=SeverityNumber.INFO,
            severity_text="INFO",
            body=body,
        )
    provider.shutdown()
    batch = list(memory.get_finished_logs())

    def send(ctx: Ctx) -> float:
        from opentelemetry.exporter.otlp.proto.http import Compression
        from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
        from opentelemetry.sdk._logs.export import LogRecordExportResult

        token = ctx.tokens["otlp"]
        exporter = OTLPLogExporter(
            endpoint=f"{ctx.server.url}/v1/logs",
            headers={"authorization": f"Bearer {token}"},
            compression=Compression.Gzip,
            timeout=300,
        )
        try:
            for start, count in _batches(n, args.batch):
                if exporter.export(batch[start : start + count]) != LogRecordExportResult.SUCCESS:
                    raise SystemExit(f"OTLPLogExporter: export of records {start}.. failed")
        finally:
            exporter.shutdown()
        return time.monotonic()

    def prepare(ctx: Ctx) -> None:
        ctx.tokens["otlp"] = ctx.server.ingest_token(TENANTS["otlp"], "otlp")

    work = _windows(records, n, send)
    work.prepare = prepare
    return work


def journal_workload(args: argparse.Namespace) -> Workload:
    n = args.events
    export, lines = journal_entries(n, int(time.time() * 1e6) - 3_600_000_000)

    def send(ctx: Ctx) -> float:
        path = ctx.workdir / "entries.export"
        path.write_bytes(export)
        done = subprocess.run([str(UPLOAD), f"--url=http://127.0.0.1:{ctx.ports['journal']}", str(path)],
                              capture_output=True, text=True, timeout=args.timeout)  # fmt: skip
        if done.returncode != 0:
            raise SystemExit(f"systemd-journal-upload exited with {done.returncode}: {done.stderr[-2000:]}")
        return time.monotonic()  # it exits once the 200 came, sent when every entry is journaled

    def check(row: dict[str, Any]) -> bool:
        return bool(row["ecs"].get("user.name"))

    return Workload(n, send, "/services/collector/raw?sourcetype=syslog", lines, n, check, "user.name set")


def audisp_workload(args: argparse.Namespace) -> Workload:
    n = args.events
    fed, forwarded = audit_events(n, time.time() - 3600)

    def send(ctx: Ctx) -> None:
        conf = ctx.workdir / "audisp-remote.conf"
        conf.write_text(
            f"remote_server = 127.0.0.1\nport = {ctx.ports['audisp']}\ntransport = tcp\nmode = immediate\n"
            f"format = managed\nqueue_depth = {len(fed) + 4096}\nnetwork_retry_time = 1\n"
            "max_tries_per_record = 5\nmax_time_per_record = 10\nheartbeat_timeout = 0\n"
            "network_failure_action = syslog\nremote_ending_action = reconnect\n"
            "overflow_action = syslog\nstartup_failure_action = warn_once_continue\n"
        )
        conf.chmod(0o640)
        # audisp-remote reads only /etc/audit/audisp-remote.conf: a private one in its own
        # mount namespace (needs root), as tests/e2e/test_audisp_remote.py does
        cmd = ["unshare", "-m", "sh", "-c",
               f"mount --bind {conf} /etc/audit/audisp-remote.conf && exec {AUDISP_REMOTE}"]  # fmt: skip
        proc = subprocess.Popen(
            cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        assert proc.stdin is not None
        try:
            proc.stdin.write(("\n".join(fed) + "\n").encode())
            proc.stdin.flush()
            ctx.stored.wait(args.timeout)  # it exits at the end of its input: keep it open till stored
        finally:
            proc.stdin.close()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        return None

    def check(row: dict[str, Any]) -> bool:
        return bool(row["ecs"].get("process.command_line")) and "auditd.types" in row["fields"]

    return Workload(n, send, "/services/collector/raw", forwarded, 4 * n, check,
                    "one event of its records (auditd.types, process.command_line)",
                    "HEC stores each of the 4 record lines of an audit event as an event of its own; "
                    "its rate is given in audit events")  # fmt: skip


def m365_workload(args: argparse.Namespace) -> Workload:
    from norrvakt.event import now_us
    from norrvakt.sources.m365.checkpoints import MINUTE
    from tests.m365.standin import audit_record, signin_record

    n = args.events
    audits, signins = n // 2, n - n // 2
    per_blob = 100
    made: dict[str, Any] = {}
    items: list[bytes] = []  # the HEC baseline's, filled by prepare()

    def prepare(ctx: Ctx) -> None:
        # stamped now, just before the phase: inside the overlap of the connector's next window
        base = now_us() - 2 * MINUTE
        made["audit"] = [audit_record(f"bench-ex-{i}", base - i * 1000) for i in range(audits)]
        made["signin"] = [signin_record(f"bench-si-{i}", base - i * 1000) for i in range(signins)]
        made["base"] = base
        items[:] = [
            orjson.dumps({"event": r, "sourcetype": "o365:management:activity"}) for r in made["audit"]
        ]
        items.extend(orjson.dumps({"event": r, "sourcetype": "azure:aad:signin"}) for r in made["signin"])

    def send(ctx: Ctx) -> float:
        ms, base = ctx.standin, made["base"]
        before = _m365_records(ctx.server)
        for start in range(0, audits, per_blob):
            ms.add_blob("Audit.Exchange", base - start * 1000, made["audit"][start : start + per_blob])
        for rec in made["signin"]:
            ms.add_graph("graph.signIns", rec)
        deadline = time.monotonic() + args.timeout
        while _m365_records(ctx.server) < before + n:
            if time.monotonic() > deadline:
                raise SystemExit(f"m365: {_m365_records(ctx.server) - before} of {n} records pulled")
            time.sleep(0.25)
        return time.monotonic()  # the connector counts a record once it is journaled

    def check(row: dict[str, Any]) -> bool:
        return row["ecs"].get("event.dataset") in {"m365.audit", "azure.signinlogs"}

    return Workload(n, send, "/services/collector/event", items, n, check,
                    "event.dataset m365.audit / azure.signinlogs",
                    f"{audits} Audit.Exchange records in blobs of {per_blob}, {signins} Graph sign-ins; "
                    "stand-in pages of 100", prepare)  # fmt: skip


def _m365_records(server: Server) -> int:
    resp = server.api("GET", "/api/m365/connectors/m365")
    resp.raise_for_status()
    return sum(int(f.get("records") or 0) for f in resp.json().get("feeds", []))


def m365_caught_up(server: Server, timeout: float) -> None:
    """Until every feed of the connector has pulled once and is within a minute of now (a new
    connector first walks back initial_lookback_hours, window by window)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        resp = server.api("GET", "/api/m365/connectors/m365")
        if resp.status_code == 200:
            feeds = resp.json().get("feeds", [])
            if feeds and all(f.get("last_success_at") and (f.get("lag_s") or 1e9) < 120 for f in feeds):
                return
        time.sleep(0.5)
    raise SystemExit(f"m365: the connector did not catch up within {timeout:.0f} s: {resp.text[:500]}")


# -- one phase: a client's events to one source id ---------------------------------------------------


def _stats(server: Server) -> dict[str, Any]:
    stats: dict[str, Any] = server.api("GET", "/api/stats").json()
    return stats


def _stored(server: Server, tenant: str) -> int:
    return int(_stats(server)["tenants"].get(tenant, {}).get("stored", 0))


def wait_idle(server: Server, timeout: float) -> None:
    """Until nothing waits to be parsed, indexed or matched by detection."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        s = _stats(server)
        if (
            s.get("indexer", {}).get("backlog", 0) == 0
            and s.get("detection", {}).get("backlog", 0) == 0
            and s.get("journal", {}).get("backlog", {}).get("parsing_batches", 0) == 0
        ):
            return
        time.sleep(0.25)


def phase(ctx: Ctx, tenant: str, source_id: str, expected: int, send: SendFn) -> dict[str, Any]:
    """``send`` run in a thread; the tenant's stored counter polled until ``expected`` more are
    stored (or, when the client is done, until it has not moved for --settle s); then the CPU
    of the server until detection is idle."""
    args, server = ctx.args, ctx.server
    assert server.proc is not None
    ctx.stored.clear()
    base = _stored(server, tenant)
    outcome: dict[str, Any] = {}

    def client() -> None:
        try:
            outcome["acked_at"] = send(ctx)
        except BaseException as exc:  # reported by the poller below
            outcome["error"] = exc
        outcome["done_at"] = time.monotonic()

    clock = CpuClock(server.proc.pid)
    start = time.monotonic()
    thread = threading.Thread(target=client, name=f"client-{source_id}", daemon=True)
    thread.start()
    stored, last_change, last_value = 0, start, 0
    while True:
        time.sleep(0.25)
        if "error" in outcome:
            ctx.stored.set()
            raise SystemExit(f"{source_id}: the client failed: {outcome['error']!r}")
        stored = _stored(server, tenant) - base
        now = time.monotonic()
        if stored != last_value:
            last_value, last_change = stored, now
        if stored >= expected:
            break
        if "done_at" in outcome and now - max(last_change, outcome["done_at"]) > args.settle:
            break  # lossy (UDP): what came is all that will come
        if now - start > args.timeout:
            ctx.stored.set()
            raise SystemExit(
                f"{source_id}: timed out after {args.timeout:.0f} s, {stored} of {expected} stored"
            )
    stored_at = last_change if stored < expected else time.monotonic()
    ctx.stored.set()
    thread.join(args.timeout)
    wait_idle(server, args.timeout)
    idle_at = time.monotonic()
    cpu, client_cpu = clock.server(), clock.client()
    searchable = server.count(f"source:{source_id}", tenant=tenant)
    errors = server.count(f"source:{source_id} event.kind:pipeline_error", tenant=tenant)
    acked_at = outcome.get("acked_at")
    return {
        "source_id": source_id,
        "tenant": tenant,
        "sent": expected,
        "stored": stored,
        "searchable": searchable,
        "pipeline_errors": errors,
        "lost": max(0, expected - searchable),
        "seconds_to_acknowledged": round(acked_at - start, 2) if acked_at else None,
        "events_per_s_acknowledged": round(expected / (acked_at - start)) if acked_at else None,
        "seconds_client_done": round(outcome["done_at"] - start, 2),
        "seconds_to_stored": round(stored_at - start, 2),
        "events_per_s_stored": round(stored / (stored_at - start)),
        "seconds_to_detection_idle": round(idle_at - start, 2),
        "server_cpu_s": round(cpu, 2),
        "server_cpu_us_per_event": round(cpu / max(stored, 1) * 1e6, 1),
        "bench_process_cpu_s": round(client_cpu, 2),
    }


def hec_send(path: str, items: list[bytes], tenant: str, source: str, args: argparse.Namespace) -> SendFn:
    """``--hec-posters`` threads (4, as bench/ingest_http.py), each with its own keep-alive
    client, POST ``--batch`` events at a time in turn; a 503 is retried after 0.5 s."""

    def send(ctx: Ctx) -> float:
        token = ctx.tokens[source]
        headers = {"Authorization": f"Splunk {token}"}
        todo = iter(list(_batches(len(items), args.batch)))
        lock = threading.Lock()

        def poster() -> None:
            with httpx.Client(base_url=ctx.server.url, timeout=300) as client:
                while True:
                    with lock:
                        batch = next(todo, None)
                    if batch is None:
                        return
                    start, count = batch
                    body = b"\n".join(items[start : start + count])
                    while True:
                        resp = client.post(path, content=body, headers=headers)
                        if resp.status_code != 503:
                            break
                        time.sleep(0.5)
                    if resp.status_code != 200 or resp.json().get("code") != 0:
                        raise SystemExit(
                            f"POST {path} at event {start}: {resp.status_code} {resp.text[:300]}"
                        )

        with ThreadPoolExecutor(args.hec_posters, thread_name_prefix="hec-poster") as pool:
            for f in [pool.submit(poster) for _ in range(args.hec_posters)]:
                f.result()
        return time.monotonic()

    return send


def sample_check(
    server: Server, source_id: str, tenant: str, check: Callable[[dict[str, Any]], bool]
) -> float:
    rows = server.search(f"source:{source_id}", tenant=tenant, limit=200)["rows"]
    return round(sum(1 for r in rows if check(r)) / len(rows), 3) if rows else 0.0


def measure(name: str, work: Workload, ctx: Ctx) -> dict[str, Any]:
    tenant = TENANTS[name]
    print(f"{name}: {work.events} events with {CLIENTS[name]} …", flush=True)
    if name == "m365":
        m365_caught_up(ctx.server, ctx.args.timeout)
    if work.prepare is not None:
        work.prepare(ctx)
    got = phase(ctx, tenant, name, work.events, work.send)
    got["normalized_in_sample"] = sample_check(ctx.server, name, tenant, work.check)
    wait_idle(ctx.server, ctx.args.timeout)
    hec_id = f"hec-{name}"
    ctx.tokens[hec_id] = ctx.server.ingest_token(tenant, hec_id)
    print(f"{name}: the same events through HEC {work.hec_path} …", flush=True)
    hec = phase(ctx, tenant, hec_id, work.hec_expected,
                hec_send(work.hec_path, work.hec_items, tenant, hec_id, ctx.args))  # fmt: skip
    hec["normalized_in_sample"] = sample_check(ctx.server, hec_id, tenant, work.check)
    per = work.hec_expected // work.events  # HEC events per receiver event (audit: 4)
    hec_rate = hec["stored"] / per / (hec["seconds_to_stored"] or 1e-9)
    hec_cpu = hec["server_cpu_s"] / max(hec["stored"] / per, 1) * 1e6
    result = {
        "receiver": name,
        "client": CLIENTS[name],
        "events": work.events,
        "normalized_check": work.check_what,
        "receiver_run": got,
        "hec_run": hec,
        "hec_events_per_receiver_event": per,
        "hec_events_per_s_stored_in_receiver_events": round(hec_rate),
        "hec_server_cpu_us_per_receiver_event": round(hec_cpu, 1),
        "ratio_stored_per_s_to_hec": round(got["events_per_s_stored"] / hec_rate, 2) if hec_rate else None,
    }
    if work.note:
        result["note"] = work.note
    return result


# -- the run -------------------------------------------------------------------------------------


def select(only: str) -> list[str]:
    if not only:
        return list(ORDER)
    wanted = [w.strip() for w in only.split(",") if w.strip()]
    chosen = [r for r in ORDER if any(r.startswith(w) for w in wanted)]
    unknown = [w for w in wanted if not any(r.startswith(w) for r in ORDER)]
    if unknown or not chosen:
        raise SystemExit(
            f"--only: unknown receiver(s) {', '.join(unknown) or only!r}; known: {', '.join(ORDER)}"
        )
    return chosen


def preflight(names: list[str]) -> None:
    """Refuse at once what this machine cannot run (rather than after the first receivers)."""
    problems = []
    if "journal" in names and not os.access(UPLOAD, os.X_OK):
        problems.append(f"journal: {UPLOAD} is missing (Debian's systemd-journal-remote package)")
    if "audisp" in names:
        if not AUDISP_REMOTE.exists():
            problems.append(f"audisp: {AUDISP_REMOTE} is missing (Debian's audispd-plugins package)")
        if os.geteuid() != 0:
            problems.append(
                "audisp: audisp-remote's private config is bind-mounted with unshare -m: run as root"
            )
    if problems:
        raise SystemExit("cannot run: " + "; ".join(problems) + " (or leave them out with --only)")


def workloads(names: list[str], args: argparse.Namespace) -> dict[str, Workload]:
    records = read_records() if any(n in WINDOWS for n in names) else []
    if records:
        print(f"{len(records)} evtx-attack-samples records read", flush=True)
    out: dict[str, Workload] = {}
    for name in names:
        if name == "beats":
            out[name] = beats_workload(records, args)
        elif name in {"gelf-tcp", "gelf-udp"}:
            out[name] = gelf_workload(records, args, udp=name == "gelf-udp")
        elif name == "forward":
            out[name] = forward_workload(records, args)
        elif name == "otlp":
            out[name] = otlp_workload(records, args)
        elif name == "journal":
            out[name] = journal_workload(args)
        elif name == "audisp":
            out[name] = audisp_workload(args)
        elif name == "m365":
            out[name] = m365_workload(args)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=20_000, help="events per receiver")
    ap.add_argument("--only", default="", help=f"comma-separated receivers or prefixes of {', '.join(ORDER)}")
    ap.add_argument("--batch", type=int, default=500, help="events per Beats window, OTLP export, HEC POST")
    ap.add_argument("--hec-posters", type=int, default=4, help="concurrent HEC posters (baseline)")
    ap.add_argument("--fresh", action="store_true", help="a new server for each receiver")
    ap.add_argument("--settle", type=float, default=10.0, help="s without progress that end a lossy run")
    ap.add_argument("--timeout", type=float, default=1800.0, help="seconds per phase")
    ap.add_argument("--name", default="sources", help="bench/results/<name>.json")
    args = ap.parse_args()
    names = select(args.only)
    preflight(names)
    work = workloads(names, args)
    results: list[dict[str, Any]] = []
    with ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="norrvakt-bench-sources-")))
        standin = None
        if "m365" in names:
            from tests.m365.standin import StandIn

            standin = stack.enter_context(StandIn(tmp))
            standin.state.page_size = 100
        # m365 on a server of its own: its connector polls the stand-in every second, which
        # would add to the other receivers' CPU
        push, pull = [n for n in names if n != "m365"], [n for n in names if n == "m365"]
        groups = [[n] for n in names] if args.fresh else [g for g in (push, pull) if g]
        for i, group in enumerate(groups):
            workdir = tmp / f"run{i}"
            workdir.mkdir()
            with run_server(group, workdir, standin) as (srv, ports):
                ctx = Ctx(srv, ports, args, workdir, standin)
                for name in group:
                    results.append(measure(name, work[name], ctx))
                    wait_idle(srv, args.timeout)
    result = {
        "events_per_receiver": args.events,
        "batch": args.batch,
        "hec_posters": args.hec_posters,
        "fresh_server_per_receiver": args.fresh,
        "fsync": True,
        "detection": True,
        "receivers": results,
    }
    path = write_result(args.name, result)
    headers = ["receiver", "client", "events", "acked/s", "stored/s", "HEC stored/s", "ratio",
               "CPU-µs/event", "HEC CPU-µs/event"]  # fmt: skip
    rows = []
    for r in results:
        got = r["receiver_run"]
        events = str(r["events"]) if not got["lost"] else f"{got['searchable']}/{r['events']}"
        rows.append([
            r["receiver"], r["client"], events,
            str(got["events_per_s_acknowledged"] or "-"), str(got["events_per_s_stored"]),
            str(r["hec_events_per_s_stored_in_receiver_events"]), f"{r['ratio_stored_per_s_to_hec']}",
            str(got["server_cpu_us_per_event"]), str(r["hec_server_cpu_us_per_receiver_event"]),
        ])  # fmt: skip
    print_wide(f"sources ({path.relative_to(REPO)})", headers, rows)


def print_wide(title: str, headers: list[str], rows: list[list[str]]) -> None:
    """_common.print_columns, at a width that fits the nine columns (rich takes 80 when the
    output is not a terminal)."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    for i, h in enumerate(headers):
        table.add_column(h, justify="left" if i < 2 else "right", no_wrap=True)
    for row in rows:
        table.add_row(*row)
    Console(width=max(160, Console().width)).print(table)


if __name__ == "__main__":
    main()
