"""Entra ID through Microsoft Graph: disable (and re-enable) a user, revoke their sessions.

    PATCH {graph}/v1.0/users/{id | userPrincipalName}   {"accountEnabled": false}   → 204
    POST  {graph}/v1.0/users/{id | userPrincipalName}/revokeSignInSessions           → 200 {"value": true}

The calls use the tenant's Microsoft 365 connector: its app registration (directory, client id,
login and Graph URLs, CA) and its credential stored encrypted in the state database; the app
needs the User.ReadWrite.All (or User.EnableDisableAccount.All + User.RevokeSessions.All)
application permission. Before a change the user is read (``GET …?$select=id,
userPrincipalName,accountEnabled``) so the answer says what it was, and after a disable it is
read again. Throttling (429 with Retry-After) and 5xx are retried by the connector's client
(:mod:`norrvakt.sources.m365.fetch`) a few times with short waits; when that is not enough the
outcome is a failure worth retrying, never "done". A dry run only reads the user.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from norrvakt.respond.base import ActionRequest, Outcome
from norrvakt.sources.m365.auth import AuthError, TokenSource
from norrvakt.sources.m365.credentials import Credential
from norrvakt.sources.m365.fetch import ApiClient, FetchError, Retry


@dataclass(frozen=True)
class EntraResponderConfig:
    """One tenant's Entra ID (its m365 source's settings plus the unsealed credential)."""

    connector: str
    directory_id: str
    client_id: str
    credential: Credential = field(repr=False)
    login_url: str = "https://login.microsoftonline.com"
    graph_url: str = "https://graph.microsoft.com"
    ca_file: str = ""
    timeout_s: float = 15.0
    # An analyst waits for the answer: a few quick tries, then "failed, retry" on the case.
    retry: Retry = field(
        default_factory=lambda: Retry(
            attempts=3, backoff_base_s=0.2, backoff_max_s=2.0, retry_after_max_s=5.0
        )
    )

    def build(self) -> EntraResponder:
        return EntraResponder(self)


class EntraResponder:
    actions: tuple[str, ...] = ("entra.disable", "entra.enable", "entra.revoke_sessions")

    def __init__(self, config: EntraResponderConfig) -> None:
        self.config = config
        self.scope = f"{config.graph_url.rstrip('/')}/.default"
        self.tokens = TokenSource(
            config.connector,
            config.login_url,
            config.directory_id,
            config.client_id,
            config.credential,
            verify=config.ca_file or True,
            timeout_s=config.timeout_s,
        )

    def _user_url(self, target: str) -> str:
        return f"{self.config.graph_url.rstrip('/')}/v1.0/users/{quote(target, safe='@')}"

    async def run(self, req: ActionRequest) -> Outcome:
        return await self._call(req.action, req.target, req.dry_run)

    async def undo(self, req: ActionRequest) -> Outcome:
        if req.action != "entra.disable":
            return Outcome(False, f"{req.action} cannot be undone in Entra ID")
        return await self._call("entra.enable", req.target, False)

    async def _call(self, action: str, target: str, dry_run: bool) -> Outcome:
        if not target or "/" in target or len(target) > 256:
            return Outcome(False, f"{target!r} is not a user id or userPrincipalName")
        r = self.config.retry
        retry = Retry(
            r.attempts, r.backoff_base_s, r.backoff_max_s, r.retry_after_max_s, self.config.timeout_s
        )
        api = ApiClient(
            self.config.connector,
            self.tokens,
            retry,
            verify=self.config.ca_file or True,
        )
        url = self._user_url(target)
        try:
            before = await self._read(api, url)
            if action in ("entra.disable", "entra.enable"):
                want = action == "entra.enable"
                change = f"accountEnabled {before.get('accountEnabled')} → {want}"
                if dry_run:
                    return Outcome(True, f"dry run: {before.get('userPrincipalName')}: would set {change}")
                await api.send_json("PATCH", url, self.scope, {"accountEnabled": want})
                after = await self._read(api, url)
                if after.get("accountEnabled") is not want:
                    return Outcome(
                        False, f"Graph reads accountEnabled {after.get('accountEnabled')} after the PATCH"
                    )
                return Outcome(
                    True, f"{after.get('userPrincipalName')} ({after.get('id')}): {change}, read back"
                )
            if action == "entra.revoke_sessions":
                if dry_run:
                    return Outcome(
                        True, f"dry run: {before.get('userPrincipalName')}: would revoke sign-in sessions"
                    )
                page = await api.send_json("POST", f"{url}/revokeSignInSessions", self.scope)
                value = page.body.get("value") if isinstance(page.body, dict) else None
                if value is not True:
                    return Outcome(False, f"revokeSignInSessions answered {page.body!r}")
                return Outcome(
                    True,
                    f"{before.get('userPrincipalName')} ({before.get('id')}): sign-in sessions revoked "
                    "(refresh tokens invalid; access tokens live until they expire, ≤ 1 h)",
                )
            return Outcome(False, f"{action}: not an Entra ID action")
        except FetchError as exc:
            return Outcome(False, str(exc), retry=exc.status == 0 or exc.status >= 500 or exc.status == 429)
        except AuthError as exc:
            return Outcome(False, str(exc), retry=False)
        finally:
            await api.close()

    async def _read(self, api: ApiClient, url: str) -> dict[str, Any]:
        page = await api.get_json(url, self.scope, {"$select": "id,userPrincipalName,accountEnabled"})
        if not isinstance(page.body, dict):
            raise FetchError(f"{self.config.connector}: GET {url} answered no user object", 0)
        return page.body
