"""The built-in source types, and building the configured sources. Importing this module
registers them: each module registers itself with
:func:`~norrvakt.sources.base.register_source`; the base never imports them."""

from __future__ import annotations

from norrvakt.config import Settings
from norrvakt.sources import audisp, beats, forward, gelf, journal_remote, relp, syslog
from norrvakt.sources.base import SOURCE_TYPES, Source
from norrvakt.sources.m365 import connector as m365

BUILTIN = (audisp, beats, forward, gelf, journal_remote, m365, relp, syslog)


def build_sources(settings: Settings) -> list[Source]:
    return [SOURCE_TYPES[src.type](src, settings).build() for src in settings.sources]
