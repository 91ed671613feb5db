"""Errors of the SOC workflow. The API maps them to HTTP answers; the CLI prints them.

AlertError
├── NotFound           404 — unknown id, or one outside the caller's tenants (same answer)
├── InvalidInput       400 — a bad value, named with where it came from
└── InvalidTransition  409 — a status change the workflow does not allow
"""

from __future__ import annotations

from norrvakt.errors import StatusError


class AlertError(StatusError):
    """Base of every SOC workflow error."""

    status_code = 400


class NotFound(AlertError):
    status_code = 404


class InvalidInput(AlertError):
    status_code = 400


class InvalidTransition(AlertError):
    status_code = 409
