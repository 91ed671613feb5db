"""What the Linux recognizers share: the ECS classification and the user/address setters.

    sshd[4123]: Failed password for invalid user admin from 10.1.2.3 port 55222 ssh2
    useradd[2210]: new user: name=elin, UID=1001, GID=1001, home=/home/elin, shell=/bin/bash

Each program's module (``linux_sshd``, ``linux_pam``, ``linux_su``, ``linux_login``,
``linux_cron``, ``linux_accounts``) reads its own message shapes and sets the event through
these helpers, so every one of them writes the same ECS names the same way.
"""

from __future__ import annotations

from collections.abc import Callable

from norrvakt.event import Event
from norrvakt.parsers.base import is_ip

# event.dataset per kind of message; norrvakt.family (the rule index key) is "linux" for all.
DATASET = "linux.auth"  # sshd, sudo, su, PAM, login, user and group management (auth.log/secure)
DATASET_CRON = "linux.cron"

# A handler reads one program's message; False when the message is none of its shapes.
Handler = Callable[[Event, str], bool]


def classify(
    event: Event, category: str, type_: str, action: str, outcome: str | None, dataset: str = DATASET
) -> None:
    ecs = event.ecs
    ecs["event.category"] = category
    ecs["event.type"] = type_
    ecs["event.action"] = action
    if outcome is not None:
        ecs["event.outcome"] = outcome
    ecs["event.dataset"] = dataset


def set_source(event: Event, prefix: str, addr: str, port: str | None) -> None:
    """``source.ip`` (or ``source.domain`` for a name) and ``source.port``, and the same under
    ``<prefix>ip`` / ``<prefix>port`` in fields as the line wrote them."""
    event.fields[prefix + "ip"] = addr
    if addr.startswith("::ffff:") and is_ip(addr[7:]):
        # OpenSSH on a dual-stack socket (RHEL 4/5) logs IPv4 clients as mapped IPv6 addresses:
        # the IPv4 form is what the rest of the logs (and the intel lists) use.
        event.ecs["source.ip"] = addr[7:]
    elif is_ip(addr):
        event.ecs["source.ip"] = addr
    else:  # sshd with UseDNS yes, login FROM a host name
        event.ecs["source.domain"] = addr
    if port:
        event.fields[prefix + "port"] = port
        event.ecs["source.port"] = port


def set_user(event: Event, key: str, name: str | None) -> None:
    if name:
        event.fields[key] = name
        event.ecs["user.name"] = name


def set_target(event: Event, key: str, name: str | None) -> None:
    if name:
        event.fields[key] = name
        event.ecs["user.target.name"] = name


def set_group(event: Event, name: str | None, gid: str | None = None) -> None:
    # ECS group.name / group.id have no column of their own (norrvakt.event.ECS_FIELDS): they
    # are kept in fields under their ECS names, where rules and searches find them by name.
    if name:
        event.fields["group.name"] = name
    if gid:
        event.fields["group.id"] = gid


def set_program(event: Event, name: str) -> None:
    event.ecs.setdefault("process.name", name)
