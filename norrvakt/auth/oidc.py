"""Single sign-on with OpenID Connect (authorization code flow with PKCE; Authlib and joserfc).

The municipality's identity provider says who the person is; Norrvakt maps claims to a role
and tenants (``oidc.role_map``: a value of ``oidc.roles_claim`` → role; ``oidc.tenants_claim``
names the municipalities of a tenant officer). The person is known by (issuer, ``sub``), never
by the name they claim: :func:`norrvakt.state.logins.sso_login` gives each identity an account
of its own, so sessions, audit and tenant scoping work exactly as for local users and no
claimed name reaches a local account. The ID token is validated (signature from the
provider's JWKS, issuer, audience, expiry, nonce).
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import httpx
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

ROLE_ORDER = ["admin", "soc_analyst", "auditor", "tenant_officer"]  # the strongest claim wins


class OidcError(Exception):
    """The provider's answer cannot be trusted or used."""


@dataclass(frozen=True)
class OidcConfig:
    """OpenID Connect client settings (see the ``[oidc]`` table in docs/configuration.md)."""

    issuer: str
    client_id: str
    client_secret: str
    redirect_uri: str
    scopes: str = "openid profile"
    username_claim: str = "preferred_username"
    roles_claim: str = "groups"
    role_map: dict[str, str] | None = None
    tenants_claim: str = "municipality"


@dataclass(frozen=True)
class OidcIdentity:
    username: str  # what the person is called (the claim): a wish for the account name
    role: str
    tenants: list[str]
    claims: dict[str, Any]
    issuer: str = ""  # with subject: who the person is
    subject: str = ""


class OidcClient:
    def __init__(self, config: OidcConfig) -> None:
        self.config = config
        self._metadata: dict[str, Any] | None = None
        self._jwks: Any = None
        self._fetched = 0.0

    async def metadata(self) -> dict[str, Any]:
        if self._metadata is None or time.time() - self._fetched > 3600:
            url = self.config.issuer.rstrip("/") + "/.well-known/openid-configuration"
            async with httpx.AsyncClient(timeout=10) as http:
                resp = await http.get(url)
                if resp.status_code != 200:
                    raise OidcError(f"{url} answered {resp.status_code}")
                self._metadata = resp.json()
                jwks = await http.get(self._metadata["jwks_uri"])
                self._jwks = KeySet.import_key_set(jwks.json())
            self._fetched = time.time()
        return self._metadata

    async def start(self) -> tuple[str, dict[str, str]]:
        """(URL to send the browser to, what to remember until the callback)."""
        meta = await self.metadata()
        verifier = secrets.token_urlsafe(48)
        nonce = secrets.token_urlsafe(16)
        state = secrets.token_urlsafe(16)
        query = {
            "response_type": "code",
            "client_id": self.config.client_id,
            "redirect_uri": self.config.redirect_uri,
            "scope": self.config.scopes,
            "state": state,
            "nonce": nonce,
            "code_challenge": create_s256_code_challenge(verifier),
            "code_challenge_method": "S256",
        }
        return meta["authorization_endpoint"] + "?" + urlencode(query), {
            "state": state,
            "nonce": nonce,
            "verifier": verifier,
        }

    async def finish(self, code: str, state: str, remembered: dict[str, str]) -> OidcIdentity:
        if not secrets.compare_digest(state, remembered.get("state", "")):
            raise OidcError("state does not match (a stale or forged callback)")
        meta = await self.metadata()
        async with httpx.AsyncClient(timeout=15) as http:
            resp = await http.post(
                meta["token_endpoint"],
                auth=(self.config.client_id, self.config.client_secret),
                data={
                    "grant_type": "authorization_code",
                    "code": code,
                    "redirect_uri": self.config.redirect_uri,
                    "code_verifier": remembered["verifier"],
                },
            )
            if resp.status_code != 200:
                raise OidcError(f"the token endpoint answered {resp.status_code}: {resp.text[:200]}")
            token = resp.json()
            try:
                decoded = jwt.decode(token["id_token"], self._jwks)
                jwt.JWTClaimsRegistry(
                    leeway=60,
                    iss={"essential": True, "value": meta["issuer"]},
                    aud={"essential": True, "value": self.config.client_id},
                    nonce={"essential": True, "value": remembered["nonce"]},
                    exp={"essential": True},
                    sub={"essential": True},
                ).validate(decoded.claims)
            except (JoseError, KeyError, ValueError) as exc:
                raise OidcError(f"ID token rejected: {exc}") from exc
            merged: dict[str, Any] = dict(decoded.claims)
            if meta.get("userinfo_endpoint") and token.get("access_token"):
                info = await http.get(
                    meta["userinfo_endpoint"], headers={"Authorization": f"Bearer {token['access_token']}"}
                )
                if info.status_code == 200 and info.json().get("sub") == merged.get("sub"):
                    # userinfo may add claims, never replace who the ID token says it is
                    merged.update({k: v for k, v in info.json().items() if k not in {"iss", "sub"}})
        return self.identity(merged)

    def identity(self, claims: dict[str, Any]) -> OidcIdentity:
        username = str(claims.get(self.config.username_claim) or claims.get("sub") or "")
        if not username:
            raise OidcError(f"the provider sent no {self.config.username_claim!r} or 'sub' claim")
        values = claims.get(self.config.roles_claim) or []
        values = [values] if isinstance(values, str) else list(values)
        mapped = {(self.config.role_map or {}).get(str(v)) for v in values} - {None}
        role = next((r for r in ROLE_ORDER if r in mapped), None)
        if role is None:
            raise OidcError(f"{username}: no role maps from {self.config.roles_claim}={values!r}")
        tenants_value = claims.get(self.config.tenants_claim) or []
        tenants = [tenants_value] if isinstance(tenants_value, str) else [str(t) for t in tenants_value]
        if role == "tenant_officer" and not tenants:
            raise OidcError(f"{username}: a tenant officer needs the {self.config.tenants_claim!r} claim")
        issuer = str(claims.get("iss") or self.config.issuer)
        subject = str(claims.get("sub") or "")
        if not subject:
            raise OidcError(f"{username}: the provider sent no 'sub' claim")
        return OidcIdentity(username, role, tenants, claims, issuer=issuer, subject=subject)
