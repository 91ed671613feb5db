"""Follow-up errors, each with the HTTP status the API answers with."""

from __future__ import annotations

from norrvakt.errors import StatusError


class FollowupError(StatusError):
    pass


class Invalid(FollowupError):
    status_code = 400


class NotFound(FollowupError):
    """Unknown id and another tenant's id get the same answer."""

    status_code = 404


class NotReviewer(FollowupError):
    status_code = 403


class Locked(FollowupError):
    """The round is signed off (or the action needs an open round)."""

    status_code = 409
