"""Who is calling the API: an API token (``Authorization: Bearer nva_…``) or a username and
password (HTTP Basic). Every API handler receives a :class:`Principal` and passes its scope
down to the store and state queries — tenant scoping never depends on the handler remembering."""

from __future__ import annotations

import base64
import binascii

from fastapi import HTTPException, Request

from norrvakt.state.accounts import Principal, authenticate, principal_for_token


def current_principal(request: Request) -> Principal:
    runtime = request.app.state.runtime
    auth = request.headers.get("authorization", "")
    scheme, _, value = auth.partition(" ")
    principal: Principal | None = None
    if scheme.lower() == "bearer" and value:
        principal = principal_for_token(runtime.state, value.strip())
    elif scheme.lower() == "basic" and value:
        try:
            user, _, password = base64.b64decode(value).decode("utf-8").partition(":")
        except (binascii.Error, UnicodeDecodeError):
            user, password = "", ""
        if user:
            principal = authenticate(runtime.state, user, password)
    if principal is None:
        raise HTTPException(
            status_code=401,
            detail="authentication required: Authorization: Bearer <API token> or HTTP Basic",
            headers={"WWW-Authenticate": 'Basic realm="norrvakt"'},
        )
    return principal


def tenant_scope(principal: Principal, all_tenants: list[str], requested: str | None) -> list[str]:
    """Tenants this request may read: the caller's scope, narrowed by ``?tenant=`` (comma list)."""
    scope = principal.scope(all_tenants)
    if not requested:
        return scope
    wanted = [t.strip() for t in requested.split(",") if t.strip()]
    denied = [t for t in wanted if t not in scope]
    if denied:
        # Same answer for "no such tenant" and "not yours": do not reveal which tenants exist.
        raise HTTPException(status_code=403, detail=f"no access to tenant(s): {', '.join(denied)}")
    return wanted
