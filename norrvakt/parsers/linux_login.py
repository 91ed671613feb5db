"""login(1) on a console or a serial line: util-linux login (RHEL, SUSE, Debian 13+) and
shadow's login (Debian 12 and older, Ubuntu).

    login[771]: FAILED LOGIN 1 FROM tty1 FOR root, Authentication failure
    login[771]: ROOT LOGIN ON tty1
    login[1033]: LOGIN ON pts/2 BY anna FROM 10.1.2.3
    login[771]: FAILED LOGIN (1) on '/dev/tty1' FOR 'root', Authentication failure
    login[771]: ROOT LOGIN  on '/dev/tty1'

util-linux writes ``FROM <host or tty>``: an address goes to ``source.ip``, a terminal name
(tty1, pts/0, ttyS0, hvc0, console) to ``login.tty``, anything else to ``source.domain``.
"""

from __future__ import annotations

import re

from norrvakt.event import Event
from norrvakt.parsers.base import is_ip
from norrvakt.parsers.linux_base import classify, set_program, set_source, set_user
from norrvakt.parsers.linux_pam import parse_pam

# util-linux
_FAILED = re.compile(r"FAILED LOGIN (?:(\d+)|SESSION) FROM (\S+) FOR (.+?), (.*)$")
_TOO_MANY = re.compile(r"TOO MANY LOGIN TRIES \((\d+)\) FROM (\S+) FOR (.+?), (.*)$")
_ROOT = re.compile(r"ROOT LOGIN ON (\S+)(?: FROM (\S+))?$")
_LOGIN_ON = re.compile(r"LOGIN ON (\S+) BY (\S+)(?: FROM (\S+))?$")
# shadow: the place is " on '<tty>'" with " from '<host>'" for a remote login
_PLACE = r" +on '([^']*)'(?: from '([^']*)')?"
_FAILED_SHADOW = re.compile(r"FAILED LOGIN \((\d+)\)" + _PLACE + r" FOR '([^']*)', (.*)$")
_TOO_MANY_SHADOW = re.compile(r"TOO MANY LOGIN TRIES \((\d+)\)" + _PLACE + r" FOR '([^']*)'")
_ROOT_SHADOW = re.compile(r"ROOT LOGIN" + _PLACE + "$")
_LOGGED_IN_SHADOW = re.compile(r"'([^']*)' logged in" + _PLACE + "$")

_TTY_PREFIXES = ("tty", "pts/", "console", "hvc", "vc/", "/dev/", "xvc")


def _where(event: Event, place: str | None, host: str | None = None) -> None:
    """util-linux's FROM (``place``, a tty or a host) or shadow's on/from pair."""
    if place and (host is not None or place.startswith(_TTY_PREFIXES)):
        event.fields["login.tty"] = place
    elif place:
        host = place
    if host:
        if is_ip(host):
            set_source(event, "login.", host, None)
        else:
            event.fields["login.host"] = host
            event.ecs["source.domain"] = host


def _result(event: Event, ok: bool, action: str, user: str | None) -> None:
    classify(event, "authentication", "start", action, "success" if ok else "failure")
    if user and user != "UNKNOWN":  # both logins write UNKNOWN for a name that is not a user
        set_user(event, "login.user", user)
    set_program(event, "login")


def _failed(event: Event, msg: str) -> bool:
    m = _FAILED.match(msg)
    if m is not None:
        _result(event, False, "login", m.group(3))
        if m.group(1):
            event.fields["login.failures"] = m.group(1)
        _where(event, m.group(2))
        event.fields["login.error"] = m.group(4)
        return True
    m = _FAILED_SHADOW.match(msg)
    if m is None:
        return False
    _result(event, False, "login", m.group(4))
    event.fields["login.failures"] = m.group(1)
    _where(event, m.group(2), m.group(3) or "")
    event.fields["login.error"] = m.group(5)
    return True


def _too_many(event: Event, msg: str) -> bool:
    m = _TOO_MANY.match(msg)
    if m is not None:
        _result(event, False, "login_too_many_tries", m.group(3))
        _where(event, m.group(2))
        event.fields["login.error"] = m.group(4)
    else:
        m = _TOO_MANY_SHADOW.match(msg)
        if m is None:
            return False
        _result(event, False, "login_too_many_tries", m.group(4))
        _where(event, m.group(2), m.group(3) or "")
    event.fields["login.failures"] = m.group(1)
    return True


def _root(event: Event, msg: str) -> bool:
    m = _ROOT.match(msg)
    if m is not None:
        _result(event, True, "login", "root")
        event.fields["login.tty"] = m.group(1)
        _where(event, None, m.group(2))
        return True
    m = _ROOT_SHADOW.match(msg)
    if m is None:
        return False
    _result(event, True, "login", "root")
    _where(event, m.group(1), m.group(2) or "")
    return True


def _login_on(event: Event, msg: str) -> bool:
    m = _LOGIN_ON.match(msg)
    if m is None:
        return False
    _result(event, True, "login", m.group(2))
    event.fields["login.tty"] = m.group(1)
    _where(event, None, m.group(3))
    return True


def _logged_in(event: Event, msg: str) -> bool:
    m = _LOGGED_IN_SHADOW.match(msg)
    if m is None:
        return False
    _result(event, True, "login", m.group(1))
    _where(event, m.group(2), m.group(3) or "")
    return True


_BY_WORD = {"FAILED": _failed, "TOO": _too_many, "ROOT": _root, "LOGIN": _login_on}


def parse_login(event: Event, msg: str) -> bool:
    if msg.startswith("pam_"):
        return parse_pam(event, msg)
    if msg.startswith("'"):
        return _logged_in(event, msg)
    handler = _BY_WORD.get(msg.partition(" ")[0])
    return handler is not None and handler(event, msg)
