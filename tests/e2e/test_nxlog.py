"""NXLog CE's two ways of sending Windows events, against a real `norrvakt serve`: ``to_json()``
lines over ``om_tcp`` to the syslog TCP listener, and ``xm_gelf`` over ``om_tcp``
(``OutputType GELF_TCP``) to a GELF listener. NXLog itself cannot be installed here, so the
bytes are what it sends, written over a plain TCP socket (field names as in
tests/sources/test_gelf_windows.py). Both become Windows events that the built-in Windows
rules alert on.
"""

from __future__ import annotations

import socket
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.e2e.harness import Server, free_ports, running_server
from tests.sources.test_gelf_windows import nxlog_gelf


@pytest.fixture(scope="module")
def nxlog(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, int]]:
    (gelf_tcp,) = free_ports(1)
    extra = f"""
[[sources]]
id = "nxlog-gelf"
type = "gelf"
protocol = "tcp"
host = "127.0.0.1"
port = {gelf_tcp}
tenant = "kiruna"
"""
    with running_server(Path(tmp_path_factory.mktemp("nxlog")), extra_toml=extra) as srv:
        yield srv, gelf_tcp


def _send(port: int, data: bytes) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
        s.recv(1)  # closed by the listener once the records are durable


def _wait(check: Callable[[], list[Any]], what: str, timeout: float = 30) -> list[Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.3)
    raise AssertionError(f"no {what} within {timeout:.0f} s")


def _alerts(server: Server, tenant: str, title: str) -> list[dict[str, Any]]:
    listed = server.api("GET", "/api/alerts", params={"tenant": tenant, "status": ""}).json()["alerts"]
    return [a for a in listed if a["rule"]["title"] == title]


def _event(event_id: int, host: str, **data: Any) -> dict[str, Any]:
    return {
        "EventTime": "2026-11-26 21:43:38",
        "Hostname": host,
        "Keywords": -9214364837600034816,
        "EventType": "AUDIT_SUCCESS",
        "SeverityValue": 2,
        "Severity": "INFO",
        "EventID": event_id,
        "SourceName": "Microsoft-Windows-Eventlog"
        if event_id == 1102
        else "Microsoft-Windows-Security-Auditing",
        "ProviderGuid": "{FC65DDD8-D6EF-4962-83D5-6E5CFE9CE148}",
        "Version": 0,
        "Task": 104 if event_id == 1102 else 13568,
        "OpcodeValue": 0,
        "RecordNumber": 4711,
        "ProcessID": 1088,
        "ThreadID": 5236,
        "Channel": "Security",
        "Message": "The audit log was cleared." if event_id == 1102 else "System audit policy was changed.",
        "EventReceivedTime": "2026-11-26 21:43:39",
        "SourceModuleName": "eventlog",
        "SourceModuleType": "im_msvistalog",
        **data,
    }


def test_to_json_lines_over_tcp_are_windows_events_and_alert(nxlog: tuple[Server, int]) -> None:
    server, _ = nxlog
    host = "dc" + uuid.uuid4().hex[:8]
    cleared = _event(1102, host, SubjectUserName="mallory", SubjectDomainName="KOMMUN")
    logon = _event(4624, host, TargetUserName="anna", IpAddress="10.1.2.3", LogonType="3")
    _send(server.ports["tcp"], orjson.dumps(cleared) + b"\n" + orjson.dumps(logon) + b"\r\n")
    assert server.wait_count(f"host.name:{host}", 2) == 2
    rows = {r["fields"]["EventID"]: r for r in server.search(f"host.name:{host}")["rows"]}
    row = rows["1102"]
    assert row["tenant"] == "lulea" and row["source"] == "syslog-tcp"
    assert row["fields"]["Provider_Name"] == "Microsoft-Windows-Eventlog"
    assert row["fields"]["Computer"] == host and row["ecs"]["host.name"] == host
    assert row["fields"]["Keywords"] == "0x8020000000000000"
    assert rows["4624"]["ecs"]["user.name"] == "anna" and rows["4624"]["ecs"]["source.ip"] == "10.1.2.3"
    (alert,) = _wait(lambda: _alerts(server, "lulea", "Security audit log cleared"), "log-cleared alert")
    assert alert["level"] in {"high", "critical"}


def test_to_json_file_lines_get_their_fields(nxlog: tuple[Server, int]) -> None:
    server, _ = nxlog
    host = "web" + uuid.uuid4().hex[:8]
    line = {
        "EventReceivedTime": "2026-11-26 21:43:39",
        "SourceModuleName": "app",
        "SourceModuleType": "im_file",
        "Hostname": host,
        "Message": "database connection lost",
    }
    _send(server.ports["tcp"], orjson.dumps(line) + b"\n")
    assert server.wait_count(f"host.name:{host}", 1) == 1
    (row,) = server.search(f"host.name:{host}")["rows"]
    assert row["message"] == "database connection lost"
    assert row["fields"]["SourceModuleType"] == "im_file" and row["fields"]["SourceModuleName"] == "app"


def test_gelf_tcp_from_xm_gelf_is_a_windows_event_and_alerts(nxlog: tuple[Server, int]) -> None:
    server, port = nxlog
    host = "dc" + uuid.uuid4().hex[:8]
    policy = _event(4719, host, SubjectUserName="mallory", CategoryId="%%8274", AuditPolicyChanges="%%8448")
    _send(port, orjson.dumps(nxlog_gelf(policy)) + b"\x00")
    assert server.wait_count(f"host.name:{host}", 1) == 1
    (row,) = server.search(f"host.name:{host}")["rows"]
    assert row["tenant"] == "kiruna" and row["source"] == "nxlog-gelf"
    assert row["fields"]["EventID"] == "4719" and row["fields"]["Channel"] == "Security"
    assert row["fields"]["SubjectUserName"] == "mallory"
    assert "_EventID" not in row["fields"]
    alerts = _wait(lambda: _alerts(server, "kiruna", "Auditing removed from the audit policy"), "audit alert")
    assert alerts
