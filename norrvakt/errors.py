"""The base of the errors a request can cause: each knows the HTTP status the API answers
with, so one mapping (``norrvakt.web.api.alerts.http_error``) serves every workflow."""

from __future__ import annotations


class StatusError(Exception):
    status_code = 400
