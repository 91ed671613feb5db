"""sudo and su: who became whom, and what they ran.

    sudo:     anna : TTY=pts/0 ; PWD=/home/anna ; USER=root ; COMMAND=/bin/cat /etc/shadow
    sudo:      bob : 3 incorrect password attempts ; TTY=pts/1 ; PWD=/home/bob ; USER=root ; COMMAND=/bin/ls
    su[990]: FAILED SU (to root) anna on pts/0
    su: BAD SU anna to root on /dev/pts/0
    su[1201]: Successful su for root by anna

sudo writes the same ``user : [problem ;] KEY=value ; ...`` line from 1.6 (RHEL 5) to 1.9
(RHEL 9, Debian 12). su has three families: util-linux / coreutils ``(to root) anna on pts/0``
(RHEL, Debian 10+, SUSE), shadow's ``Successful su for root by anna`` with ``+ /dev/pts/0
anna:root`` (Debian 9 and older), and the BSD-style ``BAD SU anna to root on /dev/pts/0``.
"""

from __future__ import annotations

import re

from norrvakt.event import Event
from norrvakt.parsers.linux_base import classify, set_program, set_target, set_user
from norrvakt.parsers.linux_pam import parse_pam

_SUDO = re.compile(r"\s*([^\s:]+) : (.*)$")
_SU_TO = re.compile(r"(FAILED SU )?\(to ([^)\s]+)\) (\S+) on (\S+)")
_SU_OLD = re.compile(r"(Successful|FAILED) su for (\S+) by (\S+)")
_SU_SESSION = re.compile(r"([+-]) (\S+) ([^:\s]+):(\S+)$")
_SU_BSD = re.compile(r"(BAD SU )?(\S+) to (\S+)(?: on (\S+))?$")


def parse_sudo(event: Event, msg: str) -> bool:
    if msg.startswith("pam_"):
        return parse_pam(event, msg)
    m = _SUDO.match(msg)
    if m is None:
        return False
    body = m.group(2)
    if body.startswith("COMMAND="):
        head, command = "", body[8:]
    else:
        cut = body.find(" ; COMMAND=")
        # The command itself may contain " ; ", so it is everything after the first COMMAND=.
        head, command = (body, None) if cut < 0 else (body[:cut], body[cut + 11 :])
    values: dict[str, str] = {}
    problem = None
    for part in head.split(" ; ") if head else ():
        key, eq, value = part.partition("=")
        if eq and key.isupper() and key.isalpha():
            values[key] = value
        elif problem is None:
            problem = part
    if "TTY" not in values and command is None:
        return False
    f = event.fields
    user = m.group(1)
    f["sudo.user"] = user
    event.ecs["user.name"] = user
    if problem is None:
        classify(event, "process", "start", "sudo", "success")
    else:
        f["sudo.error"] = problem
        category = "authentication" if "password" in problem else "process"
        classify(event, category, "info", "sudo", "failure")
    for key, value in values.items():
        f["sudo." + ("target_user" if key == "USER" else key.lower())] = value
    target = values.get("USER")
    if target:
        event.ecs["user.target.name"] = target
    if command is not None:
        f["sudo.command"] = command
        event.ecs["process.command_line"] = command
    set_program(event, "sudo")
    return True


def _su_result(event: Event, ok: bool, user: str, target: str, tty: str | None) -> bool:
    classify(event, "authentication", "start", "su", "success" if ok else "failure")
    set_user(event, "su.user", user)
    set_target(event, "su.target_user", target)
    if tty:
        event.fields["su.tty"] = tty
    set_program(event, "su")
    return True


def parse_su(event: Event, msg: str) -> bool:
    if msg.startswith("pam_") and parse_pam(event, msg):
        return True
    m = _SU_TO.match(msg)
    if m is not None:
        return _su_result(event, m.group(1) is None, m.group(3), m.group(2), m.group(4))
    m = _SU_OLD.match(msg)
    if m is not None:
        return _su_result(event, m.group(1) == "Successful", m.group(3), m.group(2), None)
    m = _SU_SESSION.match(msg)
    if m is not None:
        return _su_result(event, m.group(1) == "+", m.group(3), m.group(4), m.group(2))
    if msg.startswith("pam_authenticate: Authentication failure"):
        classify(event, "authentication", "start", "su", "failure")
        set_program(event, "su")
        return True
    m = _SU_BSD.match(msg)
    if m is not None:
        return _su_result(event, m.group(1) is None, m.group(2), m.group(3), m.group(4))
    return False
