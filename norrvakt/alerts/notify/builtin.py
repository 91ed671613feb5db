"""The built-in notification channels, and building a channel from its settings. Importing
this module registers them: each channel module registers itself with
:func:`~norrvakt.alerts.notify.base.register_channel`; the base never imports them."""

from __future__ import annotations

from norrvakt.alerts.notify import smtp, syslog, webhook
from norrvakt.alerts.notify.base import CHANNEL_TYPES, Channel
from norrvakt.config import ChannelSettings

BUILTIN = (smtp, syslog, webhook)


def build_channel(settings: ChannelSettings) -> Channel:
    try:
        return CHANNEL_TYPES[settings.type](settings)
    except KeyError:
        raise ValueError(f"channel {settings.name!r}: unknown type {settings.type!r}") from None
