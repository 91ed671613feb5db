"""A local stand-in for Entra ID's token endpoint, the Office 365 Management Activity API and
Microsoft Graph, written from Microsoft's public documentation of those endpoints (no copied
payloads: the records are invented, shaped after the documented schemas).

    with StandIn(tmp_path) as ms:                      # https on 127.0.0.1, a self-signed CA
        ms.add_blob("Audit.Exchange", created_us, [record, …])
        ms.add_graph("graph.signIns", record)
        ms.fault("429", path="/subscriptions/content", retry_after=1)
        ms.base, ms.ca_file, ms.requests, ms.tokens_issued

Users for response actions: ``ms.add_user(upn, id)``; ``GET``/``PATCH /v1.0/users/{id|upn}``
(accountEnabled) and ``POST /v1.0/users/{id|upn}/revokeSignInSessions`` as Graph documents them.

Faults are one-shot, taken by the first request whose path contains ``path``:
``429`` (with Retry-After), ``500``, ``timeout`` (answers after ``delay`` s), ``truncate``
(the body cut in half), ``401`` (the token is declared expired: every token issued so far is
refused from then on, so the client must get a new one).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from norrvakt.sources.tls import ensure_self_signed

DIRECTORY = "6c1f0c2e-9a4b-4d7e-8f3a-2b5c7d9e1f00"
CLIENT_ID = "3f2e1d0c-b9a8-4765-9432-10fedcba9876"
SECRET = "stand-in-secret-Xq7~not-a-real-one"


@dataclass
class Fault:
    kind: str
    path: str
    retry_after: int = 1
    delay: float = 3.0


@dataclass
class Blob:
    content_type: str
    content_id: str
    created: int
    records: list[dict[str, Any]]


@dataclass
class State:
    base: str = ""
    blobs: list[Blob] = field(default_factory=list)
    graph: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    faults: list[Fault] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    subscriptions: set[str] = field(default_factory=set)
    valid_tokens: set[str] = field(default_factory=set)
    tokens_issued: int = 0
    certificates: dict[str, Any] = field(default_factory=dict)  # SHA-1 thumbprint hex → x509 certificate
    page_size: int = 2
    next_tokens: dict[str, int] = field(default_factory=dict)
    users: dict[str, dict[str, Any]] = field(default_factory=dict)  # object id → user (response actions)
    revoked: dict[str, int] = field(default_factory=dict)  # object id → revokeSignInSessions calls
    lock: threading.Lock = field(default_factory=threading.Lock)


def _iso(us: int) -> str:
    return dt.datetime.fromtimestamp(us / 1e6, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _parse(text: str) -> int:
    text = text.strip().rstrip("Z")
    when = dt.datetime.fromisoformat(text[:26]).replace(tzinfo=dt.UTC)
    return int(when.timestamp() * 1_000_000)


_GRAPH = {
    "/beta/auditLogs/signIns": ("graph.signIns", "createdDateTime"),
    "/v1.0/auditLogs/directoryAudits": ("graph.directoryAudits", "activityDateTime"),
    "/v1.0/security/alerts_v2": ("graph.alerts_v2", "createdDateTime"),
    "/v1.0/deviceManagement/auditEvents": ("graph.intune.auditEvents", "activityDateTime"),
}


def raw_param(request: Request, key: str) -> str | None:
    """A query parameter exactly as sent (Starlette's parser turns ``+`` into a space)."""
    from urllib.parse import unquote

    for part in request.url.query.split("&"):
        name, _, value = part.partition("=")
        if unquote(name) == key:
            return unquote(value)
    return None


def _b64(part: str) -> bytes:
    import base64

    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def _assertion_ok(st: State, assertion: str, token_url: str) -> bool:
    """A client assertion (RFC 7523) as Entra ID checks it: RS256 over header.payload by the key of
    a certificate registered for the app (named by its SHA-1 thumbprint ``x5t``), audience the
    token endpoint, issuer and subject the client id, not expired."""
    import time

    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding, rsa

    try:
        head_b64, body_b64, sig_b64 = assertion.split(".")
        head, body = json.loads(_b64(head_b64)), json.loads(_b64(body_b64))
        cert = st.certificates.get(_b64(head["x5t"]).hex())
        if cert is None or head.get("alg") != "RS256":
            return False
        key = cert.public_key()
        assert isinstance(key, rsa.RSAPublicKey)
        key.verify(_b64(sig_b64), f"{head_b64}.{body_b64}".encode(), padding.PKCS1v15(), hashes.SHA256())
    except (ValueError, KeyError, InvalidSignature):
        return False
    return bool(
        body.get("aud") == token_url
        and body.get("iss") == body.get("sub") == CLIENT_ID
        and float(body.get("exp", 0)) > time.time()
    )


def build_app(st: State) -> Starlette:
    def error(status: int, code: str, message: str) -> JSONResponse:
        return JSONResponse({"error": {"code": code, "message": message}}, status)

    async def faulted(request: Request) -> Response | None:
        path = request.url.path
        with st.lock:
            st.requests.append(f"{request.method} {path}?{request.url.query}")
            found = next((f for f in st.faults if f.path in path), None)
            if found is not None:
                st.faults.remove(found)
        if found is None:
            return None
        if found.kind == "429":
            return JSONResponse(
                {"error": {"code": "TooManyRequests", "message": "throttled"}},
                429,
                headers={"Retry-After": str(found.retry_after)},
            )
        if found.kind == "500":
            return error(500, "InternalServerError", "the stand-in failed on purpose")
        if found.kind == "timeout":
            await asyncio.sleep(found.delay)
            return None
        if found.kind == "401":
            with st.lock:
                st.valid_tokens.clear()
            return None
        if found.kind == "truncate":
            return Response(b"", headers={"x-truncate": "1"})
        raise AssertionError(found.kind)

    def authorized(request: Request) -> bool:
        auth = request.headers.get("authorization", "")
        return auth.startswith("Bearer ") and auth[7:] in st.valid_tokens

    async def api(request: Request, handler: Any) -> Response:
        early = await faulted(request)
        truncate = early is not None and early.headers.get("x-truncate") == "1"
        if early is not None and not truncate:
            return early
        if not authorized(request):
            return error(401, "InvalidAuthenticationToken", "Access token has expired or is not yet valid.")
        resp: Response = await handler(request)
        if truncate:
            body = bytes(resp.body)
            headers = {k: v for k, v in resp.headers.items() if k.lower() != "content-length"}
            return Response(body[: len(body) // 2], resp.status_code, headers=headers)
        return resp

    async def openid(request: Request) -> Response:
        await faulted(request)
        tenant = request.path_params["tenant"]
        root = f"{st.base}/{tenant}"
        return JSONResponse(
            {
                "issuer": f"{root}/v2.0",
                "authorization_endpoint": f"{root}/oauth2/v2.0/authorize",
                "token_endpoint": f"{root}/oauth2/v2.0/token",
                "jwks_uri": f"{st.base}/discovery/v2.0/keys",
                "response_types_supported": ["code", "id_token", "token"],
                "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt"],
            }
        )

    async def token(request: Request) -> Response:
        early = await faulted(request)
        if early is not None:
            return early
        form = await request.form()
        if request.path_params["tenant"] != DIRECTORY:
            return JSONResponse(
                {
                    "error": "invalid_request",
                    "error_codes": [90002],
                    "error_description": "AADSTS90002: Tenant not found.",
                },
                400,
            )
        if form.get("grant_type") != "client_credentials" or form.get("client_id") != CLIENT_ID:
            return JSONResponse(
                {
                    "error": "unauthorized_client",
                    "error_codes": [700016],
                    "error_description": "AADSTS700016: Application not found.",
                },
                400,
            )
        secret = form.get("client_secret")
        assertion = form.get("client_assertion")
        if secret != SECRET and not (assertion and _assertion_ok(st, str(assertion), str(request.url))):
            return JSONResponse(
                {
                    "error": "invalid_client",
                    "error_codes": [7000215],
                    "error_description": "AADSTS7000215: Invalid client secret provided.",
                },
                401,
            )
        with st.lock:
            st.tokens_issued += 1
            tok = f"standin-token-{st.tokens_issued}"
            st.valid_tokens.add(tok)
        return JSONResponse(
            {"token_type": "Bearer", "expires_in": 3599, "ext_expires_in": 3599, "access_token": tok}
        )

    async def start(request: Request) -> Response:
        ctype = request.query_params.get("contentType", "")
        if ctype in st.subscriptions:
            return error(400, "AF20024", "The subscription is already enabled. No property change.")
        st.subscriptions.add(ctype)
        return JSONResponse({"contentType": ctype, "status": "enabled", "webhook": None})

    def page_of(items: list[Any], request: Request, key: str) -> tuple[list[Any], str | None]:
        """One page of ``items`` and the opaque token of the next (tokens carry + and =, so a
        client that re-encodes the link it was given is found out)."""
        nxt = raw_param(request, key)
        offset = 0
        if nxt is not None:
            with st.lock:
                if nxt not in st.next_tokens:
                    raise ValueError(nxt)
                offset = st.next_tokens[nxt]
        page = items[offset : offset + st.page_size]
        if offset + st.page_size >= len(items):
            return page, None
        tok = f"{offset + st.page_size}+{len(st.next_tokens)}=="
        with st.lock:
            st.next_tokens[tok] = offset + st.page_size
        return page, tok

    async def content(request: Request) -> Response:
        q = request.query_params
        ctype = q.get("contentType", "")
        if ctype not in st.subscriptions:
            return error(400, "AF20022", "No subscription found for the specified content type")
        start_us, end_us = _parse(q["startTime"]), _parse(q["endTime"])
        if end_us - start_us > 24 * 3600 * 1_000_000:
            return error(
                400,
                "AF20055",
                "Start time and end time must both be specified (or both omitted) and must be "
                "less than or equal to 24 hours apart.",
            )
        blobs = [b for b in st.blobs if b.content_type == ctype and start_us <= b.created < end_us]
        try:
            page, tok = page_of(blobs, request, "nextpage")
        except ValueError as exc:
            return error(400, "AF20001", f"unknown next page token {exc}")
        body = [
            {
                "contentType": b.content_type,
                "contentId": b.content_id,
                "contentUri": f"{st.base}/api/v1.0/{DIRECTORY}/activity/feed/audit/{b.content_id}",
                "contentCreated": _iso(b.created),
                "contentExpiration": _iso(b.created + 7 * 86400 * 1_000_000),
            }
            for b in page
        ]
        headers = {}
        if tok is not None:
            headers["NextPageUri"] = (
                f"{st.base}/api/v1.0/{DIRECTORY}/activity/feed/subscriptions/content?contentType={ctype}"
                f"&startTime={q['startTime']}&endTime={q['endTime']}&nextpage={tok}"
            )
        return JSONResponse(body, headers=headers)

    async def blob(request: Request) -> Response:
        cid = request.path_params["cid"]
        found = next((b for b in st.blobs if b.content_id == cid), None)
        if found is None:
            return error(404, "AF20051", "Content requested with the key does not exist.")
        return JSONResponse(found.records)

    async def graph(request: Request) -> Response:
        feed, time_field = _GRAPH[request.url.path]
        flt = request.query_params.get("$filter", "")
        items = st.graph.get(feed, [])
        parts = flt.split(" and ")
        lo = hi = None
        kind = None
        for part in parts:
            words = part.split(" ")
            if len(words) == 3 and words[0] == time_field and words[1] == "ge":
                lo = _parse(words[2])
            elif len(words) == 3 and words[0] == time_field and words[1] == "lt":
                hi = _parse(words[2])
            elif part.startswith("signInEventTypes/any("):
                kind = part.split("'")[1]
        if "$skiptoken" not in request.query_params and (lo is None or hi is None):
            return error(400, "BadRequest", f"the stand-in wants a time window in $filter: {flt!r}")
        # A nextLink carries no $filter: the window travels in the token (as Graph's does).
        skip = raw_param(request, "$skiptoken")
        if skip is not None:
            with st.lock:
                saved = st.next_tokens.get("w:" + skip)
            if saved is None:
                return error(400, "BadRequest", f"unknown $skiptoken {skip!r}")
            lo, hi, kind, offset = saved  # type: ignore[misc]
        else:
            offset = 0
        assert lo is not None and hi is not None
        chosen = [
            r
            for r in items
            if lo <= _parse(r[time_field]) < hi
            and (kind is None or kind in r.get("signInEventTypes", [kind]))
        ]
        page = chosen[offset : offset + st.page_size]
        body: dict[str, Any] = {"@odata.context": f"{st.base}{request.url.path}/$metadata", "value": page}
        if offset + st.page_size < len(chosen):
            tok = f"{offset + st.page_size}+{len(st.next_tokens)}=="
            with st.lock:
                st.next_tokens["w:" + tok] = (lo, hi, kind, offset + st.page_size)  # type: ignore[assignment]
            body["@odata.nextLink"] = f"{st.base}{request.url.path}?$skiptoken={tok}"
        return JSONResponse(body)

    def find_user(request: Request) -> dict[str, Any] | None:
        # /users/{id | userPrincipalName} (Graph takes either; a UPN matches case-insensitively)
        key = request.path_params["uid"]
        with st.lock:
            return st.users.get(key) or next(
                (u for u in st.users.values() if u["userPrincipalName"].lower() == key.lower()), None
            )

    def no_user(request: Request) -> JSONResponse:
        uid = request.path_params["uid"]
        return error(404, "Request_ResourceNotFound", f"Resource '{uid}' does not exist.")

    async def user(request: Request) -> Response:
        found = find_user(request)
        if found is None:
            return no_user(request)
        if request.method == "GET":
            select = request.query_params.get("$select", "")
            wanted = [f for f in select.split(",") if f] or list(found)
            doc = {"@odata.context": f"{st.base}/v1.0/$metadata#users/$entity"}
            return JSONResponse(doc | {k: found[k] for k in wanted if k in found})
        # PATCH: only the properties sent change; answer 204 No Content (Graph's "Update user")
        try:
            body = json.loads(await request.body())
        except ValueError:
            return error(400, "BadRequest", "Unable to read JSON request payload.")
        if not isinstance(body, dict) or any(k not in ("accountEnabled", "displayName") for k in body):
            return error(400, "Request_BadRequest", f"the stand-in updates accountEnabled only: {body!r}")
        if "accountEnabled" in body and not isinstance(body["accountEnabled"], bool):
            return error(400, "Request_BadRequest", "accountEnabled must be a Boolean")
        with st.lock:
            found.update(body)
        return Response(status_code=204)

    async def revoke(request: Request) -> Response:
        found = find_user(request)
        if found is None:
            return no_user(request)
        with st.lock:
            st.revoked[found["id"]] = st.revoked.get(found["id"], 0) + 1
        return JSONResponse({"@odata.context": f"{st.base}/v1.0/$metadata#Edm.Boolean", "value": True})

    def wrap(handler: Any) -> Any:
        async def endpoint(request: Request) -> Response:
            return await api(request, handler)

        return endpoint

    routes = [
        Route("/{tenant}/v2.0/.well-known/openid-configuration", openid),
        Route("/{tenant}/oauth2/v2.0/token", token, methods=["POST"]),
        Route("/api/v1.0/{tenant}/activity/feed/subscriptions/start", wrap(start), methods=["POST"]),
        Route("/api/v1.0/{tenant}/activity/feed/subscriptions/content", wrap(content)),
        Route("/api/v1.0/{tenant}/activity/feed/audit/{cid}", wrap(blob)),
        *[Route(path, wrap(graph)) for path in _GRAPH],
        Route("/v1.0/users/{uid}", wrap(user), methods=["GET", "PATCH"]),
        Route("/v1.0/users/{uid}/revokeSignInSessions", wrap(revoke), methods=["POST"]),
    ]
    return Starlette(routes=routes)


class StandIn:
    def __init__(self, workdir: Path) -> None:
        self.cert = workdir / "standin.crt"
        self.key = workdir / "standin.key"
        ensure_self_signed(self.cert, self.key, hostname="localhost")
        self.state = State()
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    def __enter__(self) -> StandIn:
        config = uvicorn.Config(
            build_app(self.state),
            host="127.0.0.1",
            port=0,
            ssl_certfile=str(self.cert),
            ssl_keyfile=str(self.key),
            log_level="warning",
            lifespan="off",
            timeout_graceful_shutdown=1,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)
        self._thread.start()
        for _ in range(200):
            if self._server.started:
                break
            threading.Event().wait(0.05)
        port = self._server.servers[0].sockets[0].getsockname()[1]
        self.state.base = f"https://127.0.0.1:{port}"
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._server is not None and self._thread is not None
        self._server.should_exit = True
        self._server.force_exit = True  # msal's and httpx's kept-alive connections need not finish
        self._thread.join(10)

    @property
    def base(self) -> str:
        return self.state.base

    @property
    def ca_file(self) -> str:
        return str(self.cert)

    @property
    def requests(self) -> list[str]:
        return self.state.requests

    def add_blob(
        self, content_type: str, created: int, records: list[dict[str, Any]], content_id: str = ""
    ) -> None:
        cid = content_id or f"{content_type}-{len(self.state.blobs):04d}"
        self.state.blobs.append(Blob(content_type, cid, created, records))

    def add_graph(self, feed: str, record: dict[str, Any]) -> None:
        self.state.graph.setdefault(feed, []).append(record)

    def add_user(self, upn: str, object_id: str, enabled: bool = True) -> None:
        """An Entra ID user that response actions can disable, enable and sign out."""
        self.state.users[object_id] = {
            "id": object_id,
            "userPrincipalName": upn,
            "displayName": upn.split("@")[0],
            "accountEnabled": enabled,
        }

    def register_certificate(self, pem: bytes) -> None:
        """A certificate uploaded to the app registration (its key may sign client assertions)."""
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes

        cert = x509.load_pem_x509_certificate(pem)
        self.state.certificates[cert.fingerprint(hashes.SHA1()).hex()] = cert

    def fault(self, kind: str, path: str, **kw: Any) -> None:
        with self.state.lock:
            self.state.faults.append(Fault(kind, path, **kw))


def audit_record(
    rid: str, at: int, workload: str = "Exchange", user: str = "anna.berg@lulea.example"
) -> dict[str, Any]:
    """An invented record in the shape of the Management Activity API's common schema."""
    return {
        "Id": rid,
        "RecordType": 2 if workload == "Exchange" else 15,
        "CreationTime": dt.datetime.fromtimestamp(at / 1e6, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S"),
        "Operation": "MailItemsAccessed" if workload == "Exchange" else "UserLoggedIn",
        "OrganizationId": DIRECTORY,
        "UserType": 0,
        "UserKey": "10032001A2B3C4D5",
        "Workload": workload,
        "ResultStatus": "Succeeded",
        "UserId": user,
        "ClientIP": "192.0.2.44",
    }


def signin_record(rid: str, at: int, kind: str = "interactiveUser", error_code: int = 0) -> dict[str, Any]:
    """An invented sign-in shaped after Graph's signIn resource."""
    return {
        "id": rid,
        "createdDateTime": _iso(at),
        "userPrincipalName": "erik.nilsson@lulea.example",
        "userId": "0f6c2d4e-1111-4a2b-9c3d-5e6f7a8b9c0d",
        "appDisplayName": "Office 365 Exchange Online",
        "appId": "00000002-0000-0ff1-ce00-000000000000",
        "ipAddress": "198.51.100.23",
        "clientAppUsed": "Browser",
        "isInteractive": kind == "interactiveUser",
        "signInEventTypes": [kind],
        "status": {
            "errorCode": error_code,
            "failureReason": "" if not error_code else "Invalid username or password.",
        },
        "location": {"city": "Luleå", "countryOrRegion": "SE"},
    }


def audit_event(rid: str, at: int, feed: str = "graph.directoryAudits") -> dict[str, Any]:
    """An invented directoryAudit / Intune auditEvent / alert, only the fields the feed filters on."""
    field = {"graph.alerts_v2": "createdDateTime"}.get(feed, "activityDateTime")
    return {"id": rid, field: _iso(at), "activityDisplayName": "Add member to role", "result": "success"}


def dumps(doc: Any) -> bytes:
    return json.dumps(doc).encode()
