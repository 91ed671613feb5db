"""Real senders → real listeners → searchable: util-linux logger, rsyslog 8.2302, syslog-ng 3.38."""

from __future__ import annotations

import subprocess
import time
import uuid
from pathlib import Path

import pytest

from tests.e2e.harness import Rsyslog, Server, SyslogNg


def _marker() -> str:
    return "m" + uuid.uuid4().hex[:12]


def _logger(*args: str) -> None:
    subprocess.run(["logger", *args], check=True, timeout=30)


def test_logger_tcp_octet_counting_rfc5424(server: Server) -> None:
    m = _marker()
    _logger(
        "--tcp",
        "--octet-count",
        "--rfc5424",
        "-n",
        "127.0.0.1",
        "-P",
        str(server.ports["tcp"]),
        "-t",
        "sshd",
        "-p",
        "auth.warning",
        f"Failed password for invalid user admin from 10.1.2.3 port 55222 ssh2 {m}",
    )
    assert server.wait_count(m, 1) == 1
    (row,) = server.search(m)["rows"]
    assert row["tenant"] == "lulea"
    assert row["source"] == "syslog-tcp"
    assert row["ecs"]["log.syslog.appname"] == "sshd"
    assert row["ecs"]["source.ip"] == "10.1.2.3"
    assert row["ecs"]["event.outcome"] == "failure"


def test_logger_tcp_lf_framing(server: Server) -> None:
    m = _marker()
    _logger(
        "--tcp",
        "--rfc5424",
        "-n",
        "127.0.0.1",
        "-P",
        str(server.ports["tcp"]),
        "-t",
        "mdm",
        f"device enrolled {m}",
    )
    assert server.wait_count(m, 1) == 1


def test_logger_udp_rfc3164(server: Server) -> None:
    m = _marker()
    _logger(
        "--udp",
        "--rfc3164",
        "-n",
        "127.0.0.1",
        "-P",
        str(server.ports["udp"]),
        "-t",
        "sshd",
        f"Failed password for root from 10.9.8.7 port 4022 ssh2 {m}",
    )
    assert server.wait_count(m, 1) == 1
    (row,) = server.search(m)["rows"]
    assert row["source"] == "syslog-udp"
    assert row["ecs"]["user.name"] == "root"


def test_logger_many_messages_arrive_exactly_once(server: Server, tmp_path: Path) -> None:
    m = _marker()
    lines = tmp_path / "lines.txt"
    lines.write_text("".join(f"line {i} of a burst {m}\n" for i in range(500)))
    _logger(
        "--tcp",
        "--octet-count",
        "--rfc5424",
        "-n",
        "127.0.0.1",
        "-P",
        str(server.ports["tcp"]),
        "-t",
        "burst",
        "-f",
        str(lines),
    )
    assert server.wait_count(m, 500) == 500
    time.sleep(0.5)
    assert server.count(m) == 500


@pytest.fixture
def rsyslog(tmp_path: Path):  # type: ignore[no-untyped-def]
    r = Rsyslog(tmp_path / "rsyslog")
    yield r
    r.stop()


@pytest.mark.parametrize("framing", ["octet-counted", "traditional"])
def test_rsyslog_omfwd_tcp(server: Server, rsyslog: Rsyslog, framing: str) -> None:
    rsyslog.start(
        f'action(type="omfwd" target="127.0.0.1" port="{server.ports["tcp"]}" protocol="tcp" '
        f'TCP_Framing="{framing}" template="RSYSLOG_SyslogProtocol23Format")'
    )
    m = _marker()
    rsyslog.log(
        f"Failed password for invalid user admin from 10.1.2.3 port 55222 ssh2 {m}",
        f"Åtkomst nekad kort=12345 dörr=Stadshuset-B2 {m}",
    )
    assert server.wait_count(m, 2) == 2
    rows = server.search(m)["rows"]
    assert {r["ecs"].get("host.name") for r in rows} != {""}


def test_rsyslog_omfwd_udp(server: Server, rsyslog: Rsyslog) -> None:
    rsyslog.start(f'action(type="omfwd" target="127.0.0.1" port="{server.ports["udp"]}" protocol="udp")')
    m = _marker()
    rsyslog.log(f"udp message one {m}", f"udp message two {m}")
    assert server.wait_count(m, 2) == 2


def test_rsyslog_tls(server: Server, rsyslog: Rsyslog) -> None:
    ca = server.data_dir / "tls" / "server.crt"
    rsyslog.start(
        f'action(type="omfwd" target="127.0.0.1" port="{server.ports["tls"]}" protocol="tcp" '
        'StreamDriver="gtls" StreamDriverMode="1" StreamDriverAuthMode="anon" '
        'template="RSYSLOG_SyslogProtocol23Format" TCP_Framing="octet-counted")',
        modules=f'global(DefaultNetstreamDriverCAFile="{ca}")',
    )
    m = _marker()
    rsyslog.log(f"over tls {m}")
    assert server.wait_count(m, 1) == 1
    (row,) = server.search(m)["rows"]
    assert row["source"] == "syslog-tls"


def test_rsyslog_relp(server: Server, rsyslog: Rsyslog) -> None:
    rsyslog.start(
        f'action(type="omrelp" target="127.0.0.1" port="{server.ports["relp"]}" '
        'template="RSYSLOG_SyslogProtocol23Format")',
        modules='module(load="omrelp")',
    )
    m = _marker()
    rsyslog.log(*(f"relp message {i} {m}" for i in range(20)))
    assert server.wait_count(m, 20) == 20
    assert {r["source"] for r in server.search(m)["rows"]} == {"relp"}


def test_rsyslog_omelasticsearch_bulk(server: Server, rsyslog: Rsyslog) -> None:
    token = server.ingest_token("pitea", "pitea-rsyslog-es")
    template = (
        'template(name="ecs" type="list" option.jsonf="on") {'
        ' property(outname="@timestamp" name="timereported" dateFormat="rfc3339" format="jsonf")'
        ' property(outname="host.name" name="hostname" format="jsonf")'
        ' property(outname="process.name" name="programname" format="jsonf")'
        ' property(outname="message" name="msg" format="jsonf") }'
    )
    rsyslog.start(
        f'action(type="omelasticsearch" server="127.0.0.1" serverport="{server.http_port}" '
        f'bulkmode="on" esVersion.major="8" uid="ingest" pwd="{token}" searchIndex="siem-raw" '
        'template="ecs")',
        modules=f'module(load="omelasticsearch")\n{template}',
    )
    m = _marker()
    rsyslog.log(f"Failed password for invalid user admin from 10.1.2.3 port 55222 ssh2 {m}")
    assert server.wait_count(m, 1, tenant="pitea") == 1
    (row,) = server.search(m, tenant="pitea")["rows"]
    assert row["tenant"] == "pitea"  # from the token, not from the listener or payload
    assert row["ecs"]["process.name"] == "sshd"


@pytest.fixture
def syslog_ng(tmp_path: Path):  # type: ignore[no-untyped-def]
    s = SyslogNg(tmp_path / "sng")
    yield s
    s.stop()


def _sng_feed(sock: Path, *messages: str) -> None:
    for msg in messages:
        subprocess.run(["logger", "-u", str(sock), "-t", "sshd", "-p", "auth.warning", msg], check=True)


def test_syslog_ng_network_destinations(server: Server, syslog_ng: SyslogNg, tmp_path: Path) -> None:
    sock = tmp_path / "sng" / "in.sock"
    p = server.ports
    syslog_ng.start(
        f"""
source s_in {{ unix-dgram("{sock}"); }};
destination d_tcp {{ syslog("127.0.0.1" transport("tcp") port({p["tcp"]})); }};
destination d_udp {{ network("127.0.0.1" transport("udp") port({p["udp"]})); }};
destination d_tls {{ syslog("127.0.0.1" transport("tls") port({p["tls"]}) tls(peer-verify(optional-untrusted))); }};
log {{ source(s_in); destination(d_tcp); destination(d_udp); destination(d_tls); }};
"""
    )
    m = _marker()
    _sng_feed(sock, f"Failed password for invalid user admin from 10.1.2.3 port 55222 ssh2 {m}")
    assert server.wait_count(m, 3) == 3, syslog_ng.output()
    assert {r["source"] for r in server.search(m)["rows"]} == {"syslog-tcp", "syslog-udp", "syslog-tls"}


def test_syslog_ng_http_hec_bulk_and_json(server: Server, syslog_ng: SyslogNg, tmp_path: Path) -> None:
    sock = tmp_path / "sng" / "in.sock"
    token = server.ingest_token("kiruna", "kiruna-syslog-ng")
    url = server.url
    syslog_ng.start(
        f"""
source s_in {{ unix-dgram("{sock}"); }};
destination d_hec {{ http(url("{url}/services/collector/event") method("POST")
  headers("Authorization: Splunk {token}")
  body('$(format-json time=$S_UNIXTIME sourcetype=syslog host=$HOST event.program=$PROGRAM event.message=$MESSAGE)')); }};
destination d_bulk {{ http(url("{url}/_bulk") method("POST") user("ingest") password("{token}")
  headers("Content-Type: application/x-ndjson")
  body("{{\\"index\\":{{\\"_index\\":\\"siem-raw\\"}}}}\\n$(format-json PROGRAM=$PROGRAM MESSAGE=$MESSAGE ISODATE=$ISODATE HOST=$HOST)\\n")); }};
destination d_json {{ http(url("{url}/ingest") method("POST") headers("Authorization: Bearer {token}")
  body('$(format-json PROGRAM=$PROGRAM MESSAGE=$MESSAGE ISODATE=$ISODATE HOST=$HOST)')); }};
log {{ source(s_in); destination(d_hec); destination(d_bulk); destination(d_json); }};
"""
    )
    m = _marker()
    _sng_feed(sock, f"Failed password for invalid user admin from 10.1.2.3 port 55222 ssh2 {m}")
    assert server.wait_count(m, 3, tenant="kiruna") == 3, syslog_ng.output()
    rows = server.search(m, tenant="kiruna")["rows"]
    assert {r["tenant"] for r in rows} == {"kiruna"}
    assert all(r["ecs"].get("source.ip") == "10.1.2.3" for r in rows)
