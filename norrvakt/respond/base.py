"""The contract of a response action's target system, and the actions Norrvakt knows.

A :class:`Responder` runs one kind of target (a tenant's AD, its Entra ID, its blocklist, its
service desk). It answers with an :class:`Outcome` — what the target said — and never raises
for a target that failed: a failure is an outcome (``ok=False``) that the case shows, with
``retry`` saying whether trying again may help (network, timeout, 429, 5xx).

Example::

    class Printer:
        actions = ("ticket.print",)
        async def run(self, req: ActionRequest) -> Outcome:
            if req.dry_run:
                return Outcome(True, f"would print {req.target}")
            print(req.target)
            return Outcome(True, "printed")
        async def undo(self, req: ActionRequest) -> Outcome:
            return Outcome(False, "a print cannot be taken back")
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from norrvakt.errors import StatusError

# action → the action that undoes it (None: the target cannot take it back)
UNDO: dict[str, str | None] = {
    "ad.disable": "ad.enable",
    "ad.enable": None,
    "ad.force_password_change": None,
    "entra.disable": "entra.enable",
    "entra.enable": None,
    "entra.revoke_sessions": None,
    "block.address": "block.remove",
    "ticket.email": None,
    "ticket.webhook": None,
}


class ResponseError(StatusError):
    """A request Norrvakt refuses before it reaches a target (the API maps ``status_code``)."""

    status_code = 400


class Refused(ResponseError):
    status_code = 403


class NotFound(ResponseError):
    status_code = 404


class Conflict(ResponseError):
    status_code = 409


class TooMany(ResponseError):
    status_code = 429


@dataclass(frozen=True)
class Outcome:
    ok: bool
    detail: str  # what the target system answered, in words (never a credential)
    retry: bool = False  # a failure that another attempt may heal


@dataclass(frozen=True)
class ActionRequest:
    action_id: int
    tenant: str
    action: str
    target: str
    dry_run: bool = False
    case_id: int | None = None
    actor: str = ""
    params: dict[str, Any] = field(default_factory=dict)


class Responder(Protocol):
    actions: tuple[str, ...]

    async def run(self, req: ActionRequest) -> Outcome:
        """Do ``req.action`` (or, with ``dry_run``, only find out what it would do)."""
        ...

    async def undo(self, req: ActionRequest) -> Outcome:
        """Take back what ``run`` did, where the target allows."""
        ...
