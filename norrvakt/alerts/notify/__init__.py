"""Notification channels: webhook (signed JSON), e-mail (SMTP with STARTTLS) and syslog/CEF
forwarding. A channel is a settings table plus :func:`~norrvakt.alerts.notify.base.build_channel`;
each has one ``send(notice)`` that raises :class:`DeliveryError` when it could not deliver."""
