"""Linux authentication messages: sshd, sudo, su and PAM (as Debian 12 writes them).

    sshd[4123]: Failed password for invalid user admin from 10.1.2.3 port 55222 ssh2
    sshd[4130]: Accepted publickey for anna from 10.1.2.3 port 51234 ssh2: ED25519 SHA256:Jb1x3kFh0pG8zWm2
    sudo:     anna : TTY=pts/0 ; PWD=/home/anna ; USER=root ; COMMAND=/bin/cat /etc/shadow
    su[990]: FAILED SU (to root) anna on pts/0
    sshd[4123]: pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=10.1.2.3  user=root

A recognizer: it runs on events whose ``process.name`` is sshd/sudo/su (or any program for a
``pam_*(...)`` message), and on events without a program whose message has one of these
shapes. It sets ``event.category`` (authentication / session / process / network),
``event.type``, ``event.action`` (``ssh_login``, ``ssh_invalid_user``, ``sudo``, ``su``,
``pam_auth_failure``, ``pam_session_opened``, ...), ``event.outcome``, ``user.name``,
``source.ip``/``source.port`` and keeps what it read in ``fields`` under ``sshd.*``,
``sudo.*``, ``su.*`` and ``pam.*`` (``pam.rhost``, ``sudo.command``, ...).

Messages from these programs that carry nothing about authentication ("Server listening on
0.0.0.0 port 22.") are left as they are.
"""  # noqa: E501 - the sample lines are real and kept whole

from __future__ import annotations

import re
from collections.abc import Callable

from norrvakt.event import Event, RawRecord
from norrvakt.parsers.base import is_ip

DATASET = "linux.auth"

_SSH_LOGIN = re.compile(
    r"(Accepted|Failed) (\S+) for (invalid user )?(.*?) from (\S+) port (\d+)(?: (ssh\d?))?"
    r"(?:: (\S+)(?: (\S+))?)?"
)
_SSH_INVALID_USER = re.compile(r"Invalid user (.*?) from (\S+)(?: port (\d+))?")
_SSH_CLOSED = re.compile(
    r"Connection (closed|reset) by (?:(authenticating user|invalid user|user) (.*?) )?(\S+) port (\d+)"
)
_SSH_DISCONNECTED = re.compile(
    r"Disconnect(?:ed from|ing) (?:(authenticating user|invalid user|user) (.*?) )?(\S+) port (\d+)"
    r"(?:: (.*?))?(?: \[preauth\])?$"
)
_SSH_MAX_AUTH = re.compile(
    r"error: maximum authentication attempts exceeded for (invalid user )?(.*?) from (\S+) port (\d+)"
)
_SSH_RECEIVED_DISCONNECT = re.compile(
    r"Received disconnect from (\S+) port (\d+):(\d+): (.*?)(?: \[preauth\])?$"
)
_SSH_NOT_ALLOWED = re.compile(r"User (\S+) from (\S+) not allowed because (.*)$")
_SSH_NO_IDENT = re.compile(r"Did not receive identification string from (\S+) port (\d+)")
_SSH_TIMEOUT = re.compile(r"fatal: Timeout before authentication for (\S+) port (\d+)")
_PAM_MORE = re.compile(r"PAM (\d+) more authentication failures?; (.*)$")

_PAM = re.compile(r"pam_([\w-]+)\(([^:()]+):(\w+)\): (.*)$")
_PAM_KV = re.compile(r"(\w+)=(\S*)")
_PAM_SESSION = re.compile(
    r"session (opened|closed) for user ([^\s(]+)(?:\(uid=(\d+)\))?(?: by ([^\s(]*)(?:\(uid=(\d+)\))?)?"
)
_PAM_FOR_USER = re.compile(r"for (?:user )?\[?([^\s\]]+)\]?")

_SUDO = re.compile(r"\s*([^\s:]+) : (.*)$")
_SU_TO = re.compile(r"(FAILED SU )?\(to ([^)\s]+)\) (\S+) on (\S+)")
_SU_OLD = re.compile(r"(Successful|FAILED) su for (\S+) by (\S+)")
_SU_SESSION = re.compile(r"([+-]) (\S+) ([^:\s]+):(\S+)$")


def _set(ecs: dict[str, str], category: str, type_: str, action: str, outcome: str | None) -> None:
    ecs["event.category"] = category
    ecs["event.type"] = type_
    ecs["event.action"] = action
    if outcome is not None:
        ecs["event.outcome"] = outcome
    ecs["event.dataset"] = DATASET


def _source(event: Event, prefix: str, addr: str, port: str | None) -> None:
    event.fields[prefix + "ip"] = addr
    if is_ip(addr):
        event.ecs["source.ip"] = addr
    else:  # sshd with UseDNS yes logs names
        event.ecs["source.domain"] = addr
    if port:
        event.fields[prefix + "port"] = port
        event.ecs["source.port"] = port


def _user(event: Event, key: str, name: str | None) -> None:
    if name:
        event.fields[key] = name
        event.ecs["user.name"] = name


# --- sshd ---------------------------------------------------------------------------------


def _ssh_login(event: Event, msg: str) -> bool:
    m = _SSH_LOGIN.match(msg)
    if m is None:
        return False
    ok = m.group(1) == "Accepted"
    _set(event.ecs, "authentication", "start", "ssh_login", "success" if ok else "failure")
    f = event.fields
    f["sshd.method"] = m.group(2)
    if m.group(3):
        f["sshd.invalid_user"] = "true"
    _user(event, "sshd.user", m.group(4))
    _source(event, "sshd.", m.group(5), m.group(6))
    if m.group(7):
        f["sshd.protocol"] = m.group(7)
    if m.group(8):
        if m.group(9):
            f["sshd.key_type"] = m.group(8)
            f["sshd.key_fingerprint"] = m.group(9)
        else:
            f["sshd.method_detail"] = m.group(8)
    return True


def _ssh_invalid_user(event: Event, msg: str) -> bool:
    m = _SSH_INVALID_USER.match(msg)
    if m is None:
        return False
    _set(event.ecs, "authentication", "start", "ssh_invalid_user", "failure")
    event.fields["sshd.invalid_user"] = "true"
    _user(event, "sshd.user", m.group(1))
    _source(event, "sshd.", m.group(2), m.group(3))
    return True


def _ssh_user_kind(event: Event, kind: str | None, user: str | None, preauth: bool, action: str) -> None:
    if kind is None:
        _set(event.ecs, "network", "end", action, None)
    elif kind == "user" and not preauth:
        _set(event.ecs, "session", "end", action, None)
    else:
        # The client went away while still authenticating: a failed attempt (brute force tools).
        _set(event.ecs, "authentication", "end", action, "failure")
    if kind == "invalid user":
        event.fields["sshd.invalid_user"] = "true"
    _user(event, "sshd.user", user)
    if preauth:
        event.fields["sshd.preauth"] = "true"


def _ssh_closed(event: Event, msg: str) -> bool:
    m = _SSH_CLOSED.match(msg)
    if m is None:
        return False
    _ssh_user_kind(event, m.group(2), m.group(3), msg.endswith("[preauth]"), f"ssh_connection_{m.group(1)}")
    _source(event, "sshd.", m.group(4), m.group(5))
    return True


def _ssh_disconnected(event: Event, msg: str) -> bool:
    m = _SSH_DISCONNECTED.match(msg)
    if m is None:
        return False
    reason = m.group(5)
    if reason and "Too many authentication failures" in reason:
        _set(event.ecs, "authentication", "end", "ssh_max_auth_attempts", "failure")
        _user(event, "sshd.user", m.group(2))
    else:
        _ssh_user_kind(event, m.group(1), m.group(2), msg.endswith("[preauth]"), "ssh_disconnect")
    if reason:
        event.fields["sshd.disconnect_reason"] = reason
    _source(event, "sshd.", m.group(3), m.group(4))
    return True


def _ssh_max_auth(event: Event, msg: str) -> bool:
    m = _SSH_MAX_AUTH.match(msg)
    if m is None:
        return False
    _set(event.ecs, "authentication", "start", "ssh_max_auth_attempts", "failure")
    if m.group(1):
        event.fields["sshd.invalid_user"] = "true"
    _user(event, "sshd.user", m.group(2))
    _source(event, "sshd.", m.group(3), m.group(4))
    return True


def _ssh_received_disconnect(event: Event, msg: str) -> bool:
    m = _SSH_RECEIVED_DISCONNECT.match(msg)
    if m is None:
        return False
    _set(event.ecs, "network", "end", "ssh_disconnect", None)
    event.fields["sshd.disconnect_code"] = m.group(3)
    event.fields["sshd.disconnect_reason"] = m.group(4)
    if msg.endswith("[preauth]"):
        event.fields["sshd.preauth"] = "true"
    _source(event, "sshd.", m.group(1), m.group(2))
    return True


def _ssh_not_allowed(event: Event, msg: str) -> bool:
    m = _SSH_NOT_ALLOWED.match(msg)
    if m is None:
        return False
    _set(event.ecs, "authentication", "start", "ssh_user_not_allowed", "failure")
    _user(event, "sshd.user", m.group(1))
    _source(event, "sshd.", m.group(2), None)
    event.fields["sshd.reason"] = m.group(3)
    return True


def _ssh_no_ident(event: Event, msg: str) -> bool:
    m = _SSH_NO_IDENT.match(msg)
    if m is None:
        return False
    _set(event.ecs, "network", "info", "ssh_no_identification", None)
    _source(event, "sshd.", m.group(1), m.group(2))
    return True


def _ssh_timeout(event: Event, msg: str) -> bool:
    m = _SSH_TIMEOUT.match(msg)
    if m is None:
        return False
    _set(event.ecs, "authentication", "end", "ssh_auth_timeout", "failure")
    _source(event, "sshd.", m.group(1), m.group(2))
    return True


def _ssh_pam_more(event: Event, msg: str) -> bool:
    m = _PAM_MORE.match(msg)
    if m is None:
        return False
    _set(event.ecs, "authentication", "start", "ssh_login", "failure")
    event.fields["sshd.more_failures"] = m.group(1)
    _pam_kv(event, m.group(2))
    return True


_SSHD_BY_WORD: dict[str, Callable[[Event, str], bool]] = {
    "Accepted": _ssh_login,
    "Failed": _ssh_login,
    "Invalid": _ssh_invalid_user,
    "Connection": _ssh_closed,
    "Disconnected": _ssh_disconnected,
    "Disconnecting": _ssh_disconnected,
    "error:": _ssh_max_auth,
    "Received": _ssh_received_disconnect,
    "User": _ssh_not_allowed,
    "Did": _ssh_no_ident,
    "fatal:": _ssh_timeout,
    "PAM": _ssh_pam_more,
}


def _sshd(event: Event, msg: str) -> bool:
    if msg.startswith("pam_"):
        return _pam(event, msg)
    handler = _SSHD_BY_WORD.get(msg.partition(" ")[0])
    return handler is not None and handler(event, msg)


# --- PAM ----------------------------------------------------------------------------------


def _pam_kv(event: Event, text: str) -> None:
    f = event.fields
    for key, value in _PAM_KV.findall(text):
        if value:
            f["pam." + key] = value
    user = f.get("pam.user")
    if user:
        event.ecs["user.name"] = user
    rhost = f.get("pam.rhost")
    if rhost:
        if is_ip(rhost):
            event.ecs["source.ip"] = rhost
        else:
            event.ecs["source.domain"] = rhost


def _pam(event: Event, msg: str) -> bool:
    m = _PAM.match(msg)
    if m is None:
        return False
    f = event.fields
    f["pam.module"] = "pam_" + m.group(1)
    f["pam.service"] = m.group(2)
    f["pam.type"] = m.group(3)
    rest = m.group(4)
    if rest.startswith("authentication failure"):
        _set(event.ecs, "authentication", "start", "pam_auth_failure", "failure")
        _pam_kv(event, rest)
        return True
    s = _PAM_SESSION.match(rest)
    if s is not None:
        opened = s.group(1) == "opened"
        _set(event.ecs, "session", "start" if opened else "end", f"pam_session_{s.group(1)}", None)
        if opened:
            event.ecs["event.outcome"] = "success"
        _user(event, "pam.user", s.group(2))
        if s.group(3):
            f["pam.uid"] = s.group(3)
            event.ecs["user.id"] = s.group(3)
        if s.group(4):
            f["pam.by_user"] = s.group(4)
        if s.group(5):
            f["pam.by_uid"] = s.group(5)
        return True
    if "user unknown" in rest or "could not identify password" in rest or "login failures" in rest:
        locked = "locked" in rest
        action = "pam_account_locked" if locked else "pam_auth_failure"
        _set(event.ecs, "authentication", "start", action, "failure")
        u = _PAM_FOR_USER.search(rest)
        if u is not None:
            _user(event, "pam.user", u.group(1))
        return True
    event.ecs["event.dataset"] = DATASET
    return True


# --- sudo, su -----------------------------------------------------------------------------


def _sudo(event: Event, msg: str) -> bool:
    if msg.startswith("pam_"):
        return _pam(event, msg)
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
        _set(event.ecs, "process", "start", "sudo", "success")
    else:
        f["sudo.error"] = problem
        category = "authentication" if "password" in problem else "process"
        _set(event.ecs, category, "info", "sudo", "failure")
    for key, value in values.items():
        f["sudo." + ("target_user" if key == "USER" else key.lower())] = value
    target = values.get("USER")
    if target:
        event.ecs["user.target.name"] = target
    if command is not None:
        f["sudo.command"] = command
        event.ecs["process.command_line"] = command
    event.ecs.setdefault("process.name", "sudo")
    return True


def _su(event: Event, msg: str) -> bool:
    if msg.startswith("pam_") and _pam(event, msg):
        return True
    f = event.fields
    m = _SU_TO.match(msg)
    if m is not None:
        ok = m.group(1) is None
        user, target, tty = m.group(3), m.group(2), m.group(4)
    else:
        m = _SU_OLD.match(msg)
        if m is not None:
            ok = m.group(1) == "Successful"
            user, target, tty = m.group(3), m.group(2), ""
        else:
            m = _SU_SESSION.match(msg)
            if m is None:
                if msg.startswith("pam_authenticate: Authentication failure"):
                    _set(event.ecs, "authentication", "start", "su", "failure")
                    event.ecs.setdefault("process.name", "su")
                    return True
                return False
            ok = m.group(1) == "+"
            user, target, tty = m.group(3), m.group(4), m.group(2)
    _set(event.ecs, "authentication", "start", "su", "success" if ok else "failure")
    _user(event, "su.user", user)
    f["su.target_user"] = target
    event.ecs["user.target.name"] = target
    if tty:
        f["su.tty"] = tty
    event.ecs.setdefault("process.name", "su")
    return True


_BY_PROGRAM: dict[str, Callable[[Event, str], bool]] = {
    "sshd": _sshd,
    "sshd-session": _sshd,  # OpenSSH 9.8+ logs authentication from this binary
    "sshd-auth": _sshd,
    "sudo": _sudo,
    "su": _su,
}


def recognize_linux_auth(event: Event, record: RawRecord) -> bool:
    """Enrich sshd / sudo / su / PAM messages; False when the message is none of them."""
    msg = event.message
    if not msg:
        return False
    program = event.ecs.get("process.name")
    if program is not None:
        handler = _BY_PROGRAM.get(program)
        if handler is not None:
            return handler(event, msg)
        return msg.startswith("pam_") and _pam(event, msg)
    # No program (a JSON document with only a message, a bare text line): go by shape.
    if msg.startswith("pam_"):
        return _pam(event, msg)
    word = msg.partition(" ")[0]
    handler = _SSHD_BY_WORD.get(word)
    if handler is not None and word not in ("User", "Did", "Received", "Connection", "error:", "fatal:"):
        if handler(event, msg):
            event.ecs["process.name"] = "sshd"
            return True
        return False
    if " : TTY=" in msg or " ; COMMAND=" in msg:
        return _sudo(event, msg)
    if msg.startswith(("(to ", "FAILED SU (to ")):
        return _su(event, msg)
    return False
