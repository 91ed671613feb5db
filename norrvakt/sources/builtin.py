"""The built-in source types. Importing this module registers them (each module registers
itself with :func:`~norrvakt.sources.base.register_source`); the base never imports them."""

from __future__ import annotations

from norrvakt.sources import relp, syslog

BUILTIN = (relp, syslog)
