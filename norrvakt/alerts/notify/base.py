"""The channel contract and the registry that builds channels from their settings."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Protocol

from norrvakt.alerts.notify.message import Notice
from norrvakt.config import ChannelSettings


class DeliveryError(Exception):
    """A notification did not arrive. ``retry`` = worth another attempt (timeout, 5xx, refused)."""

    def __init__(self, message: str, *, retry: bool = True) -> None:
        super().__init__(message)
        self.retry = retry


class Channel(Protocol):
    """Sends one notice; raises :class:`DeliveryError` when it could not.

    Example::

        class Printer:
            name = "stdout"
            async def send(self, notice: Notice) -> str:
                print(notice.title)
                return "printed"
    """

    name: str

    async def send(self, notice: Notice) -> str:
        """Deliver; returns a short note for the log (e.g. the HTTP status)."""
        ...


def secret_from_env(settings: ChannelSettings, what: str) -> str:
    """``NORRVAKT_CHANNEL_<NAME>_<WHAT>`` (name upper-cased, - and . as _), so secrets need not
    sit in the settings file."""
    name = settings.name.upper().replace("-", "_").replace(".", "_")
    return os.environ.get(f"NORRVAKT_CHANNEL_{name}_{what}", "")


ChannelFactory = Callable[[ChannelSettings], Channel]
CHANNEL_TYPES: dict[str, ChannelFactory] = {}


def register_channel(name: str) -> Callable[[ChannelFactory], ChannelFactory]:
    """Register a channel type; its module registers itself (see :mod:`.builtin`, which builds
    channels from settings)."""

    def deco(factory: ChannelFactory) -> ChannelFactory:
        CHANNEL_TYPES[name] = factory
        return factory

    return deco
