"""Local users and groups: shadow-utils (useradd, groupadd, usermod, userdel, groupdel,
groupmod, passwd, chage, gpasswd on RHEL 5-9, Debian, Ubuntu, SLES 12+) and pwdutils (SLES 10/11).

    useradd[2210]: new group: name=elin, GID=1001
    useradd[2210]: new user: name=elin, UID=1001, GID=1001, home=/home/elin, shell=/bin/bash, from=/dev/pts/0
    usermod[2301]: add 'elin' to group 'sudo'
    userdel[2402]: delete user 'elin'
    useradd[3120]: new account added - account=elin, uid=1001, gid=100, home=/home/elin, shell=/bin/bash, by=0

Sets ``event.category`` iam, ``event.type`` creation / change / deletion, ``event.action``
(``user_created``, ``group_created``, ``group_member_added``, ``user_deleted``,
``password_changed`` ...), ``user.target.name`` (the account acted on), ``user.name`` where the
line names who did it, and ``group.name`` / ``group.id`` (in fields, see
:func:`~norrvakt.parsers.linux_base.set_group`); the line's own values under ``account.*``.
shadow 4.0-4.6 quoted names as ```name'``, later releases as ``'name'``: both are read.
"""

from __future__ import annotations

import re

from norrvakt.event import Event
from norrvakt.parsers.linux_base import classify, set_group, set_target, set_user
from norrvakt.parsers.linux_pam import parse_pam

_Q = r"[`']([^`']*)'"  # a quoted name, in either quoting
_KV = re.compile(r"(\w+)=([^,]*)(?:, |$)")
_NEW = re.compile(r"new (user|group): (.*)$")
_ADD_TO_GROUP = re.compile(r"add " + _Q + r" to (shadow )?group " + _Q + "$")
_DELETE_USER = re.compile(r"delete user " + _Q)
_DELETE_FROM_GROUP = re.compile(r"delete " + _Q + r" from (shadow )?group " + _Q)
_REMOVED_GROUP = re.compile(r"removed (shadow )?group " + _Q + r" owned by " + _Q)
_GROUP_ADDED = re.compile(r"group added to (\S+): (.*)$")
_GROUP_REMOVED = re.compile(r"group " + _Q + r" removed(?: from (\S+))?$")
_GROUP_CHANGED = re.compile(r"group changed in (\S+) \(group ([^/\s,)]+)")
# usermod: "change user name 'a' to 'b'", "change user 'a' UID from '1' to '0'", "lock user 'a' password"
_RENAME = r" to " + _Q
_FIELD_CHANGE = r" (\w+)(?: from " + _Q + r" to " + _Q + ")?"
_CHANGE_USER = re.compile(
    r"(change|lock|unlock) user (?:name )?" + _Q + "(?:" + _RENAME + "|" + _FIELD_CHANGE + ")?"
)
_PASSWORD_BY = re.compile(r"password for " + _Q + r" changed by " + _Q)
_EXPIRY = re.compile(r"changed password expiry for (\S+)")
_FAILED_ADDING = re.compile(r"failed adding user " + _Q)
_GPASSWD = re.compile(r"user (\S+) (added|removed) by (\S+) (?:to|from) group (\S+)")
# pwdutils (SLES 10/11): "<what> - key=value, key=value, by=<uid>"
_PWDUTILS = re.compile(r"(new account added|account deleted|new group added|group deleted) - (.*)$")


def _kv(event: Event, text: str) -> dict[str, str]:
    values = {k.lower(): v for k, v in _KV.findall(text)}
    for key, value in values.items():
        if value:
            event.fields["account." + key] = value
    return values


def _iam(event: Event, type_: str, action: str, outcome: str = "success") -> None:
    classify(event, "iam", type_, action, outcome)


def _new(event: Event, msg: str) -> bool:
    m = _NEW.match(msg)
    if m is not None:
        values = _kv(event, m.group(2))
        if m.group(1) == "user":
            _iam(event, "creation", "user_created")
            set_target(event, "account.name", values.get("name"))
        else:
            _iam(event, "creation", "group_created")
            set_group(event, values.get("name"), values.get("gid"))
        return True
    return _pwdutils(event, msg)


def _pwdutils(event: Event, msg: str) -> bool:
    m = _PWDUTILS.match(msg)
    if m is None:
        return False
    what = m.group(1)
    values = _kv(event, m.group(2))
    new = what.startswith("new")
    kind = "group" if "group" in what else "user"
    _iam(event, "creation" if new else "deletion", f"{kind}_{'created' if new else 'deleted'}")
    if kind == "group":
        set_group(event, values.get("group"), values.get("gid"))
    else:
        set_target(event, "account.account", values.get("account"))
    return True


def _add(event: Event, msg: str) -> bool:
    m = _ADD_TO_GROUP.match(msg)
    if m is None:
        return False
    _iam(event, "change", "group_member_added")
    set_target(event, "account.name", m.group(1))
    set_group(event, m.group(3))
    if m.group(2):
        event.fields["account.shadow"] = "true"  # the same change in /etc/gshadow
    return True


def _delete(event: Event, msg: str) -> bool:
    m = _DELETE_USER.match(msg)
    if m is not None:
        _iam(event, "deletion", "user_deleted")
        set_target(event, "account.name", m.group(1))
        return True
    m = _DELETE_FROM_GROUP.match(msg)
    if m is None:
        return False
    _iam(event, "change", "group_member_removed")
    set_target(event, "account.name", m.group(1))
    set_group(event, m.group(3))
    if m.group(2):
        event.fields["account.shadow"] = "true"
    return True


def _removed(event: Event, msg: str) -> bool:
    m = _REMOVED_GROUP.match(msg)
    if m is None:
        return False
    _iam(event, "deletion", "group_deleted")
    set_group(event, m.group(2))
    set_target(event, "account.name", m.group(3))
    if m.group(1):
        event.fields["account.shadow"] = "true"
    return True


def _group(event: Event, msg: str) -> bool:
    m = _GROUP_ADDED.match(msg)
    if m is not None:
        values = _kv(event, m.group(2))
        _iam(event, "creation", "group_created")
        set_group(event, values.get("name"), values.get("gid"))
        event.fields["account.file"] = m.group(1)
        return True
    m = _GROUP_REMOVED.match(msg)
    if m is not None:
        _iam(event, "deletion", "group_deleted")
        set_group(event, m.group(1))
        if m.group(2):
            event.fields["account.file"] = m.group(2)
        return True
    m = _GROUP_CHANGED.match(msg)
    if m is not None:
        _iam(event, "change", "group_changed")
        set_group(event, m.group(2))
        event.fields["account.file"] = m.group(1)
        return True
    return _pwdutils(event, msg)


def _change(event: Event, msg: str) -> bool:
    m = _CHANGE_USER.match(msg)
    if m is None:
        return False
    verb, name, renamed, what = m.group(1), m.group(2), m.group(3), m.group(4)
    if verb != "change":
        _iam(event, "change", f"user_{verb}ed")
    elif renamed is not None:
        _iam(event, "change", "user_renamed")
        event.fields["account.new"] = renamed
    elif what == "password":
        _iam(event, "change", "password_changed")
    else:
        _iam(event, "change", "user_changed")
    set_target(event, "account.name", name)
    if what and m.group(5) is not None:
        event.fields["account.change"] = what  # UID, GID, home, shell, expiration, inactive
        event.fields["account.old"] = m.group(5)
        event.fields["account.new"] = m.group(6)
    return True


def _password(event: Event, msg: str) -> bool:
    m = _PASSWORD_BY.match(msg)
    if m is None:
        return False
    _iam(event, "change", "password_changed")
    set_target(event, "account.name", m.group(1))
    set_user(event, "account.by", m.group(2))
    return True


def _changed(event: Event, msg: str) -> bool:
    m = _EXPIRY.match(msg)
    if m is None:
        return False
    _iam(event, "change", "password_expiry_changed")
    set_target(event, "account.name", m.group(1))
    return True


def _failed(event: Event, msg: str) -> bool:
    m = _FAILED_ADDING.match(msg)
    if m is None:
        return False
    _iam(event, "creation", "user_created", "failure")
    set_target(event, "account.name", m.group(1))
    return True


def _user(event: Event, msg: str) -> bool:
    m = _GPASSWD.match(msg)
    if m is None:
        return False
    added = m.group(2) == "added"
    _iam(event, "change", "group_member_added" if added else "group_member_removed")
    set_target(event, "account.name", m.group(1))
    set_user(event, "account.by", m.group(3))
    set_group(event, m.group(4))
    return True


_BY_WORD = {
    "new": _new,
    "add": _add,
    "delete": _delete,
    "removed": _removed,
    "group": _group,
    "change": _change,
    "lock": _change,
    "unlock": _change,
    "password": _password,
    "changed": _changed,
    "failed": _failed,
    "user": _user,
    "account": _pwdutils,
}

# The shadow-utils and pwdutils programs whose messages this module reads.
PROGRAMS = (
    "useradd", "adduser", "groupadd", "addgroup", "usermod", "userdel", "deluser", "groupdel",
    "delgroup", "groupmod", "passwd", "chpasswd", "chage", "gpasswd", "newusers",
)  # fmt: skip


def parse_accounts(event: Event, msg: str) -> bool:
    if msg.startswith("pam_"):
        return parse_pam(event, msg)
    handler = _BY_WORD.get(msg.partition(" ")[0])
    return handler is not None and handler(event, msg)
