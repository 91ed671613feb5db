"""OAuth2 client credentials for one municipality's Microsoft tenant, through msal.

    tokens = TokenSource(login_url, directory_id, client_id, credential, verify=True)
    token = await tokens.get(MANAGE_SCOPE)         # cached by msal until it nears expiry
    tokens.forget()                                # after a 401: the next get asks anew

msal validates an authority against Microsoft's instance discovery unless told not to; the
login URL is configurable (a sovereign cloud, the test stand-in), so instance discovery is
off and msal reads ``{login_url}/{directory}/v2.0/.well-known/openid-configuration`` for the
token endpoint — a wrong directory id fails there, with msal's message. msal only accepts
https authorities.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import msal  # untyped: pyproject.toml lets mypy take it as Any
import requests

from norrvakt.sources.m365.credentials import Credential

DEFAULT_LOGIN_URL = "https://login.microsoftonline.com"


class AuthError(Exception):
    """No token: the message names the connector and Entra ID's error code and text."""


class TokenSource:
    def __init__(
        self,
        connector: str,
        login_url: str,
        directory_id: str,
        client_id: str,
        credential: Credential,
        *,
        verify: bool | str = True,
        timeout_s: float = 30.0,
    ) -> None:
        self.connector = connector
        self._args: dict[str, Any] = {
            "client_id": client_id,
            "client_credential": credential.for_msal(),
            "authority": f"{login_url.rstrip('/')}/{directory_id}",
            "validate_authority": False,
            "instance_discovery": False,
            "http_client": _Session(verify),
            "timeout": timeout_s,
        }
        self._app: msal.ConfidentialClientApplication | None = None
        self._lock = threading.Lock()  # msal's app is used from worker threads, one at a time
        self.acquired = 0  # tokens fetched from the token endpoint (not from msal's cache)

    async def get(self, scope: str) -> str:
        return await asyncio.to_thread(self._get, scope)

    def _get(self, scope: str) -> str:
        with self._lock:
            if self._app is None:
                try:
                    self._app = msal.ConfidentialClientApplication(**self._args)
                except ValueError as exc:
                    raise AuthError(f"{self.connector}: login authority not usable: {exc}") from None
            result = self._app.acquire_token_for_client(scopes=[scope])
        if "access_token" not in result:
            codes = result.get("error_codes") or []
            raise AuthError(
                f"{self.connector}: no token for {scope}: {result.get('error')} "
                f"{codes} {str(result.get('error_description', ''))[:300]}"
            )
        if result.get("token_source") == "identity_provider":
            self.acquired += 1
        return str(result["access_token"])

    def forget(self) -> None:
        """Drop cached tokens (the API said 401: expired or revoked before its time)."""
        with self._lock:
            if self._app is not None:
                self._app.remove_tokens_for_client()


class _Session(requests.Session):
    """requests lets ``REQUESTS_CA_BUNDLE`` override a session's own ``verify`` (psf/requests
    #3829); the connector's ``ca_file`` must win, so each request carries it explicitly."""

    def __init__(self, verify: bool | str) -> None:
        super().__init__()
        self.verify = verify

    def request(self, *args: Any, **kwargs: Any) -> requests.Response:
        if kwargs.get("verify") is None:
            kwargs["verify"] = self.verify
        return super().request(*args, **kwargs)
