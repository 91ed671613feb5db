"""PAM module messages, whichever program logs them (sshd, su, sudo, login, cron, passwd ...).

    sshd[4123]: pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=10.1.2.3  user=root
    su[990]: pam_unix(su-l:session): session opened for user root by anna(uid=1000)
    CROND[5120]: pam_unix(crond:session): session opened for user root(uid=0) by (uid=0)
    passwd[3310]: pam_unix(passwd:chauthtok): password changed for elin

``pam.module``, ``pam.service`` (the PAM service name: sshd, su-l, crond ...), ``pam.type``
(auth, account, session, password/chauthtok) and the ``key=value`` pairs of a failure
(``pam.rhost``, ``pam.logname``, ...). RHEL 8+ and Debian 11+ write ``user root(uid=0)``,
older releases ``user root``; both are read.
"""  # noqa: E501 - the sample lines are real and kept whole

from __future__ import annotations

import re

from norrvakt.event import Event
from norrvakt.parsers.base import is_ip
from norrvakt.parsers.linux_base import DATASET, classify, set_user

_PAM = re.compile(r"pam_([\w-]+)\(([^:()]+):(\w+)\): (.*)$")
_PAM_KV = re.compile(r"(\w+)=(\S*)")
_PAM_SESSION = re.compile(
    r"session (opened|closed) for user ([^\s(]+)(?:\(uid=(\d+)\))?(?: by ([^\s(]*)(?:\(uid=(\d+)\))?)?"
)
_PAM_FOR_USER = re.compile(r"for (?:user )?\[?([^\s\]]+)\]?")
_PAM_PASSWORD = re.compile(r"password changed for (\S+)")


def pam_kv(event: Event, text: str) -> None:
    """The ``key=value`` pairs of a PAM failure line into ``pam.*``; user and rhost into ECS."""
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


def parse_pam(event: Event, msg: str) -> bool:
    m = _PAM.match(msg)
    if m is None:
        return False
    f = event.fields
    f["pam.module"] = "pam_" + m.group(1)
    f["pam.service"] = m.group(2)
    f["pam.type"] = m.group(3)
    rest = m.group(4)
    if rest.startswith("authentication failure"):
        classify(event, "authentication", "start", "pam_auth_failure", "failure")
        pam_kv(event, rest)
        return True
    s = _PAM_SESSION.match(rest)
    if s is not None:
        opened = s.group(1) == "opened"
        classify(event, "session", "start" if opened else "end", f"pam_session_{s.group(1)}", None)
        if opened:
            event.ecs["event.outcome"] = "success"
        set_user(event, "pam.user", s.group(2))
        if s.group(3):
            f["pam.uid"] = s.group(3)
            event.ecs["user.id"] = s.group(3)
        if s.group(4):
            f["pam.by_user"] = s.group(4)
        if s.group(5):
            f["pam.by_uid"] = s.group(5)
        return True
    if rest.startswith("password changed"):
        p = _PAM_PASSWORD.match(rest)
        classify(event, "iam", "change", "password_changed", "success")
        if p is not None:
            set_user(event, "pam.user", p.group(1))
            event.ecs["user.target.name"] = p.group(1)
        return True
    if "user unknown" in rest or "could not identify password" in rest or "login failures" in rest:
        locked = "locked" in rest
        action = "pam_account_locked" if locked else "pam_auth_failure"
        classify(event, "authentication", "start", action, "failure")
        u = _PAM_FOR_USER.search(rest)
        if u is not None:
            set_user(event, "pam.user", u.group(1))
        return True
    event.ecs["event.dataset"] = DATASET
    return True


_CHKPWD = re.compile(r"password check failed for user \(([^)]*)\)")


def parse_unix_chkpwd(event: Event, msg: str) -> bool:
    """pam_unix's helper (RHEL, SUSE): ``password check failed for user (root)``."""
    if msg.startswith("pam_"):
        return parse_pam(event, msg)
    m = _CHKPWD.match(msg)
    if m is None:
        return False
    # The helper's echo of the pam_unix "authentication failure" line of the same attempt.
    classify(event, "authentication", "start", "pam_chkpwd_failure", "failure")
    set_user(event, "pam.user", m.group(1))
    return True
