"""Which directory account an alert is about: ``user.name`` (or ``user.target.name``) without
its domain — ``LULEA\\anna.l``, ``anna.l@lulea.se`` and ``Anna.L`` are the account ``anna.l``."""

from __future__ import annotations

from collections.abc import Mapping

from norrvakt.state.directory import Account

_USER_FIELDS = ("user.name", "user.target.name")


def account_name(value: str) -> str:
    value = value.strip()
    if "\\" in value:
        value = value.rsplit("\\", 1)[1]
    elif "@" in value:
        value = value.split("@", 1)[0]
    return value.lower()


def account_of(accounts: Mapping[str, Account], entities: Mapping[str, str]) -> Account | None:
    for name in _USER_FIELDS:
        value = entities.get(name)
        if value:
            found = accounts.get(account_name(value))
            if found is not None:
                return found
    return None
