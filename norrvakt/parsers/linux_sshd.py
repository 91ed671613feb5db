"""OpenSSH's sshd (and sshd-session / sshd-auth of OpenSSH 9.8+), from OpenSSH 4.3 (RHEL 5)
to 9.x (RHEL 9, Debian 12, SLES 15, Ubuntu 24.04).

    sshd[4123]: Failed password for invalid user admin from 10.1.2.3 port 55222 ssh2
    sshd[4130]: Accepted publickey for anna from 10.1.2.3 port 51234 ssh2: ED25519 SHA256:Jb1x3kFh0pG8zWm2
    sshd[2901]: Invalid user admin from 203.0.113.50
    sshd[2901]: input_userauth_request: invalid user admin [preauth]
    sshd[2901]: Connection closed by 203.0.113.50 [preauth]
    sshd[2901]: Received disconnect from 203.0.113.50: 11: Bye Bye [preauth]

Older releases leave out the port (``Invalid user x from 1.2.3.4``, ``Connection closed by
1.2.3.4``, ``Received disconnect from 1.2.3.4: 11:``) and OpenSSH before 3.9 said "illegal
user": every form is read into the same ``event.action``. The first word of the message picks
the one regex that can match it, so a line costs one dict lookup and at most two regexes.
"""

from __future__ import annotations

import re

from norrvakt.event import Event
from norrvakt.parsers.base import is_ip
from norrvakt.parsers.linux_base import Handler, classify, set_source, set_user
from norrvakt.parsers.linux_pam import pam_kv, parse_pam

_LOGIN = re.compile(
    r"(Accepted|Failed) (\S+) for ((?:invalid|illegal) user )?(.*?) from (\S+) port (\d+)(?: (ssh\d?))?"
    r"(?:: (\S+)(?: (\S+))?)?"
)
_INVALID_USER = re.compile(r"(?:Invalid|Illegal) user (.*?) from (\S+)(?: port (\d+))?$")
_INVALID_USER_OLD = re.compile(r"input_userauth_request: (?:invalid|illegal) user (.*?)(?: \[preauth\])?$")
_CLOSED = re.compile(
    r"Connection (closed|reset) by (?:(authenticating user|invalid user|user) (.*?) )?(\S+)"
    r"(?: port (\d+))?(?: \[preauth\])?$"
)
_CONNECTION_FROM = re.compile(r"Connection from (\S+) port (\d+)(?: on (\S+) port (\d+))?")
_DISCONNECTED = re.compile(
    r"Disconnect(?:ed from|ing) (?:(authenticating user|invalid user|user) (.*?) )?(\S+) port (\d+)"
    r"(?:: (.*?))?(?: \[preauth\])?$"
)
_MAX_AUTH = re.compile(
    r"error: maximum authentication attempts exceeded for ((?:invalid|illegal) user )?(.*?)"
    r" from (\S+) port (\d+)"
)
_PAM_ERROR = re.compile(r"error: PAM: (.*?) for ((?:invalid|illegal) user )?(.*?) from (\S+)$")
# OpenSSH 7.3+ "from ADDR port N:CODE: why"; before that "from ADDR: CODE: why".
_RECEIVED_DISCONNECT = re.compile(
    r"Received disconnect from (\S+?)(?: port (\d+):|: )(\d+): (.*?)(?: \[preauth\])?$"
)
_NOT_ALLOWED = re.compile(r"User (\S+) from (\S+) not allowed because (.*)$")
_NO_IDENT = re.compile(r"Did not receive identification string from (\S+)(?: port (\d+))?")
_TIMEOUT = re.compile(r"fatal: Timeout before authentication for (\S+)(?: port (\d+))?")
_PAM_MORE = re.compile(r"PAM (\d+) more authentication failures?; (.*)$")
_REVERSE = re.compile(r"reverse mapping checking getaddrinfo for (\S+)(?: \[(\S+)\])? failed")
_ADDRESS_MAPS = re.compile(r"Address (\S+) maps to (\S+), but this does not map back")
_STARTING_SESSION = re.compile(r"Starting session: (.+?) for (\S+) from (\S+) port (\d+)(?: id (\d+))?$")
_CLOSE_SESSION = re.compile(r"Close session: user (\S+) from (\S+) port (\d+)(?: id (\d+))?$")
_NEGOTIATE = re.compile(r"Unable to negotiate with (\S+) port (\d+): (.*?)(?: \[preauth\])?$")


def _invalid(event: Event, kind: str | None) -> None:
    if kind:
        event.fields["sshd.invalid_user"] = "true"


def _login(event: Event, msg: str) -> bool:
    m = _LOGIN.match(msg)
    if m is None:
        return False
    ok = m.group(1) == "Accepted"
    classify(event, "authentication", "start", "ssh_login", "success" if ok else "failure")
    f = event.fields
    f["sshd.method"] = m.group(2)
    _invalid(event, m.group(3))
    set_user(event, "sshd.user", m.group(4))
    set_source(event, "sshd.", m.group(5), m.group(6))
    if m.group(7):
        f["sshd.protocol"] = m.group(7)
    if m.group(8):
        if m.group(9):
            f["sshd.key_type"] = m.group(8)
            f["sshd.key_fingerprint"] = m.group(9)
        else:
            f["sshd.method_detail"] = m.group(8)
    return True


def _invalid_user(event: Event, msg: str) -> bool:
    m = _INVALID_USER.match(msg)
    if m is None:
        return False
    classify(event, "authentication", "start", "ssh_invalid_user", "failure")
    event.fields["sshd.invalid_user"] = "true"
    set_user(event, "sshd.user", m.group(1))
    set_source(event, "sshd.", m.group(2), m.group(3))
    return True


def _invalid_user_old(event: Event, msg: str) -> bool:
    # OpenSSH 5.x-7.4 (RHEL 6/7, Debian 7-9) log this next to "Invalid user x from ADDR".
    m = _INVALID_USER_OLD.match(msg)
    if m is None:
        return False
    classify(event, "authentication", "start", "ssh_invalid_user", "failure")
    event.fields["sshd.invalid_user"] = "true"
    set_user(event, "sshd.user", m.group(1))
    if msg.endswith("[preauth]"):
        event.fields["sshd.preauth"] = "true"
    return True


def _user_kind(event: Event, kind: str | None, user: str | None, preauth: bool, action: str) -> None:
    if kind is None:
        classify(event, "network", "end", action, None)
    elif kind == "user" and not preauth:
        classify(event, "session", "end", action, None)
    else:
        # The client went away while still authenticating: a failed attempt (brute force tools).
        classify(event, "authentication", "end", action, "failure")
    if kind == "invalid user":
        event.fields["sshd.invalid_user"] = "true"
    set_user(event, "sshd.user", user)
    if preauth:
        event.fields["sshd.preauth"] = "true"


def _connection(event: Event, msg: str) -> bool:
    if msg.startswith("Connection from "):
        c = _CONNECTION_FROM.match(msg)
        if c is None:
            return False
        classify(event, "network", "start", "ssh_connection", None)
        set_source(event, "sshd.", c.group(1), c.group(2))
        if c.group(3):
            if is_ip(c.group(3)):
                event.ecs["destination.ip"] = c.group(3)
            event.ecs["destination.port"] = c.group(4)
        return True
    m = _CLOSED.match(msg)
    if m is None:
        return False
    _user_kind(event, m.group(2), m.group(3), msg.endswith("[preauth]"), f"ssh_connection_{m.group(1)}")
    set_source(event, "sshd.", m.group(4), m.group(5))
    return True


def _disconnected(event: Event, msg: str) -> bool:
    m = _DISCONNECTED.match(msg)
    if m is None:
        return False
    reason = m.group(5)
    if reason and "Too many authentication failures" in reason:
        classify(event, "authentication", "end", "ssh_max_auth_attempts", "failure")
        set_user(event, "sshd.user", m.group(2))
    else:
        _user_kind(event, m.group(1), m.group(2), msg.endswith("[preauth]"), "ssh_disconnect")
    if reason:
        event.fields["sshd.disconnect_reason"] = reason
    set_source(event, "sshd.", m.group(3), m.group(4))
    return True


def _error(event: Event, msg: str) -> bool:
    m = _MAX_AUTH.match(msg)
    if m is not None:
        classify(event, "authentication", "start", "ssh_max_auth_attempts", "failure")
        _invalid(event, m.group(1))
        set_user(event, "sshd.user", m.group(2))
        set_source(event, "sshd.", m.group(3), m.group(4))
        return True
    # "error: PAM: Authentication failure for root from 10.1.2.3" (keyboard-interactive / PAM,
    # RHEL 5-7); the address has no port here.
    p = _PAM_ERROR.match(msg)
    if p is None:
        return False
    # sshd logs the same attempt again as "Failed keyboard-interactive/pam for ...": a name of
    # its own lets counting rules skip this echo, as they skip "Invalid user".
    classify(event, "authentication", "start", "ssh_pam_failure", "failure")
    event.fields["sshd.method"] = "keyboard-interactive/pam"
    event.fields["sshd.error"] = p.group(1)
    _invalid(event, p.group(2))
    set_user(event, "sshd.user", p.group(3))
    set_source(event, "sshd.", p.group(4), None)
    return True


def _received_disconnect(event: Event, msg: str) -> bool:
    m = _RECEIVED_DISCONNECT.match(msg)
    if m is None:
        return False
    classify(event, "network", "end", "ssh_disconnect", None)
    event.fields["sshd.disconnect_code"] = m.group(3)
    event.fields["sshd.disconnect_reason"] = m.group(4)
    if msg.endswith("[preauth]"):
        event.fields["sshd.preauth"] = "true"
    set_source(event, "sshd.", m.group(1), m.group(2))
    return True


def _not_allowed(event: Event, msg: str) -> bool:
    m = _NOT_ALLOWED.match(msg)
    if m is None:
        return False
    classify(event, "authentication", "start", "ssh_user_not_allowed", "failure")
    set_user(event, "sshd.user", m.group(1))
    set_source(event, "sshd.", m.group(2), None)
    event.fields["sshd.reason"] = m.group(3)
    return True


def _no_ident(event: Event, msg: str) -> bool:
    m = _NO_IDENT.match(msg)
    if m is None:
        return False
    classify(event, "network", "info", "ssh_no_identification", None)
    set_source(event, "sshd.", m.group(1), m.group(2))
    return True


def _timeout(event: Event, msg: str) -> bool:
    m = _TIMEOUT.match(msg)
    if m is None:
        return False
    classify(event, "authentication", "end", "ssh_auth_timeout", "failure")
    set_source(event, "sshd.", m.group(1), m.group(2))
    return True


def _pam_more(event: Event, msg: str) -> bool:
    m = _PAM_MORE.match(msg)
    if m is None:
        return False
    classify(event, "authentication", "start", "ssh_login", "failure")
    event.fields["sshd.more_failures"] = m.group(1)
    pam_kv(event, m.group(2))
    return True


def _reverse(event: Event, msg: str) -> bool:
    # UseDNS yes on RHEL 5-7: "... for host.example [10.1.2.3] failed - POSSIBLE BREAK-IN ATTEMPT!"
    m = _REVERSE.match(msg)
    if m is None:
        return False
    classify(event, "network", "info", "ssh_reverse_mapping_failed", None)
    event.ecs["source.domain"] = m.group(1)
    if m.group(2):
        set_source(event, "sshd.", m.group(2), None)
    return True


def _address_maps(event: Event, msg: str) -> bool:
    m = _ADDRESS_MAPS.match(msg)
    if m is None:
        return False
    classify(event, "network", "info", "ssh_reverse_mapping_failed", None)
    set_source(event, "sshd.", m.group(1), None)
    event.ecs["source.domain"] = m.group(2)
    return True


def _starting_session(event: Event, msg: str) -> bool:
    # OpenSSH 7.7+: "Starting session: shell on pts/0 for anna from 10.1.2.3 port 51234 id 0"
    m = _STARTING_SESSION.match(msg)
    if m is None:
        return False
    classify(event, "session", "start", "ssh_session_start", "success")
    event.fields["sshd.session"] = m.group(1)
    set_user(event, "sshd.user", m.group(2))
    set_source(event, "sshd.", m.group(3), m.group(4))
    return True


def _close_session(event: Event, msg: str) -> bool:
    m = _CLOSE_SESSION.match(msg)
    if m is None:
        return False
    classify(event, "session", "end", "ssh_session_end", None)
    set_user(event, "sshd.user", m.group(1))
    set_source(event, "sshd.", m.group(2), m.group(3))
    return True


def _negotiate(event: Event, msg: str) -> bool:
    m = _NEGOTIATE.match(msg)
    if m is None:
        return False
    classify(event, "network", "info", "ssh_negotiation_failed", "failure")
    event.fields["sshd.reason"] = m.group(3)
    set_source(event, "sshd.", m.group(1), m.group(2))
    return True


BY_WORD: dict[str, Handler] = {
    "Accepted": _login,
    "Failed": _login,
    "Invalid": _invalid_user,
    "Illegal": _invalid_user,
    "input_userauth_request:": _invalid_user_old,
    "Connection": _connection,
    "Disconnected": _disconnected,
    "Disconnecting": _disconnected,
    "error:": _error,
    "Received": _received_disconnect,
    "User": _not_allowed,
    "Did": _no_ident,
    "fatal:": _timeout,
    "PAM": _pam_more,
    "reverse": _reverse,
    "Address": _address_maps,
    "Starting": _starting_session,
    "Close": _close_session,
    "Unable": _negotiate,
}

# First words distinctive enough to claim a message that came without a program name.
SHAPE_WORDS = frozenset({"Accepted", "Failed", "Invalid", "Illegal", "Disconnected", "Disconnecting", "PAM"})


def parse_sshd(event: Event, msg: str) -> bool:
    if msg.startswith("pam_"):
        return parse_pam(event, msg)
    handler = BY_WORD.get(msg.partition(" ")[0])
    return handler is not None and handler(event, msg)
