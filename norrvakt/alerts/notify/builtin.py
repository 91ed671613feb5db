"""The built-in notification channels. Importing this module registers them (each module
registers itself with :func:`~norrvakt.alerts.notify.base.register_channel`)."""

from __future__ import annotations

from norrvakt.alerts.notify import smtp, syslog, webhook

BUILTIN = (smtp, syslog, webhook)
