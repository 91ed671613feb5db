"""Linux authentication and account messages from syslog: sshd, sudo, su, PAM, login, cron,
useradd/groupadd/usermod/userdel/groupdel/passwd/chpasswd, as RHEL/CentOS 5-9, Debian,
Ubuntu and SUSE write them.

    sshd[4123]: Failed password for invalid user admin from 10.1.2.3 port 55222 ssh2
    sudo:     anna : TTY=pts/0 ; PWD=/home/anna ; USER=root ; COMMAND=/bin/cat /etc/shadow
    su[990]: FAILED SU (to root) anna on pts/0
    CROND[5120]: (root) CMD (run-parts /etc/cron.hourly)
    useradd[2210]: new user: name=elin, UID=1001, GID=1001, home=/home/elin, shell=/bin/bash

A recognizer: it runs on events whose ``process.name`` is one of the programs in
:data:`BY_PROGRAM` (a dict lookup; every other syslog message costs that lookup and one
``startswith("pam_")``), on a ``pam_*(...)`` message of any program, and on events without a
program whose message has one of the distinctive shapes. Each program's module
(:mod:`~norrvakt.parsers.linux_sshd`, ``linux_su``, ``linux_pam``, ``linux_login``,
``linux_cron``, ``linux_accounts``) sets ``event.category``, ``event.type``,
``event.action``, ``event.outcome``, ``user.name``, ``user.target.name``,
``source.ip``/``source.port`` where the line has them, ``event.dataset`` ``linux.auth`` (cron:
``linux.cron``), and keeps what it read in ``fields`` under ``sshd.*``, ``sudo.*``, ``su.*``,
``pam.*``, ``login.*``, ``cron.*``, ``account.*`` (and ``group.name``/``group.id``).

rsyslog's ``message repeated 3 times: [ Failed password for ...]`` is read as the repeated
message, with ``syslog.repeated`` = 3. Messages from these programs that carry nothing about
authentication ("Server listening on 0.0.0.0 port 22.") are left as they are.
"""

from __future__ import annotations

import re

from norrvakt.event import Event, RawRecord
from norrvakt.parsers.linux_accounts import PROGRAMS as ACCOUNT_PROGRAMS
from norrvakt.parsers.linux_accounts import parse_accounts
from norrvakt.parsers.linux_base import Handler
from norrvakt.parsers.linux_cron import parse_cron
from norrvakt.parsers.linux_login import parse_login
from norrvakt.parsers.linux_pam import parse_pam, parse_unix_chkpwd
from norrvakt.parsers.linux_sshd import SHAPE_WORDS, parse_sshd
from norrvakt.parsers.linux_su import parse_su, parse_sudo

BY_PROGRAM: dict[str, Handler] = {
    "sshd": parse_sshd,
    "sshd-session": parse_sshd,  # OpenSSH 9.8+ logs authentication from these binaries
    "sshd-auth": parse_sshd,
    "sudo": parse_sudo,
    "su": parse_su,
    "login": parse_login,
    "unix_chkpwd": parse_unix_chkpwd,
    "cron": parse_cron,  # Debian/Ubuntu's daemon, SUSE's cronie
    "CRON": parse_cron,  # Debian/Ubuntu's job runs
    "crond": parse_cron,  # RHEL 5-7 daemon
    "CROND": parse_cron,  # cronie's job runs (RHEL 6-9)
    "crontab": parse_cron,
    "anacron": parse_cron,
}
BY_PROGRAM.update(dict.fromkeys(ACCOUNT_PROGRAMS, parse_accounts))

_REPEATED = re.compile(r"message repeated (\d+) times: \[ ?(.*?)\]$")


def _repeated(event: Event, msg: str, handler: Handler) -> bool:
    m = _REPEATED.match(msg)
    if m is None or not handler(event, m.group(2)):
        return False
    event.fields["syslog.repeated"] = m.group(1)
    return True


def recognize_linux_auth(event: Event, record: RawRecord) -> bool:
    """Enrich the messages of the Linux programs above; False when the message is none of them."""
    msg = event.message
    if not msg:
        return False
    program = event.ecs.get("process.name")
    if program is not None:
        handler = BY_PROGRAM.get(program)
        if handler is not None:
            if msg.startswith("message repeated "):
                return _repeated(event, msg, handler)
            return handler(event, msg)
        return msg.startswith("pam_") and parse_pam(event, msg)
    return _by_shape(event, msg)


def _by_shape(event: Event, msg: str) -> bool:
    # No program (a JSON document with only a message, a bare text line): shapes that only
    # these programs write. Cheap tests first; most messages fail the first character checks.
    if msg.startswith("pam_"):
        return parse_pam(event, msg)
    word = msg.partition(" ")[0]
    if word in SHAPE_WORDS:
        if parse_sshd(event, msg):
            event.ecs["process.name"] = "sshd"
            return True
        return False
    if " : TTY=" in msg or " ; COMMAND=" in msg:
        return parse_sudo(event, msg)
    if msg.startswith(("(to ", "FAILED SU (to ")):
        return parse_su(event, msg)
    if msg.startswith(("new user: name=", "new group: name=")):
        return parse_accounts(event, msg)
    return False
