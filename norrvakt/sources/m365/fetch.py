"""GET with what Microsoft's APIs ask of a client: a bearer token, and retries done right.

    api = ApiClient("m365-lulea", tokens, Retry(), verify=True)
    page = await api.get_json(url, scope, params={...})    # → Page(body, headers, url)

- 401: the token expired or was revoked early — msal's cache is dropped and the request
  repeated once with a new token.
- 429 (and 503 with ``Retry-After``): wait what ``Retry-After`` says (seconds, capped), then
  repeat; Microsoft throttles per app and tenant.
- other 5xx, timeouts, connection errors, and a body that is not whole JSON (a page cut off):
  exponential backoff with full jitter, ``Retry.attempts`` tries in all.
- any other 4xx: :class:`FetchError` at once (a wrong permission does not heal by retrying).
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import ssl
from dataclasses import dataclass
from typing import Any

import httpx

from norrvakt.sources.m365.auth import TokenSource

log = logging.getLogger(__name__)


class FetchError(Exception):
    """A request that failed for good; ``status`` 0 = no HTTP answer, ``body`` the excerpt."""

    def __init__(self, message: str, status: int = 0, body: bytes = b"", code: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.body = body
        self.code = code  # Microsoft's error code from the body, when it has one


@dataclass(frozen=True)
class Retry:
    attempts: int = 6
    backoff_base_s: float = 1.0
    backoff_max_s: float = 60.0
    retry_after_max_s: float = 300.0
    timeout_s: float = 60.0

    def backoff(self, attempt: int) -> float:
        # Full jitter: many connectors that failed together do not come back together.
        return random.uniform(0, min(self.backoff_max_s, self.backoff_base_s * 2**attempt))


@dataclass
class Page:
    body: Any
    headers: httpx.Headers
    url: str


@dataclass
class FetchCounters:
    requests: int = 0
    throttled: int = 0  # 429 answers
    server_errors: int = 0  # 5xx answers
    timeouts: int = 0  # timeouts and connection errors
    truncated: int = 0  # bodies that were not whole JSON
    reauth: int = 0  # 401 answers followed by a new token


class ApiClient:
    def __init__(self, connector: str, tokens: TokenSource, retry: Retry, verify: bool | str = True) -> None:
        self.connector = connector
        self.tokens = tokens
        self.retry = retry
        self.counters = FetchCounters()
        trust: bool | ssl.SSLContext = (
            ssl.create_default_context(cafile=verify) if isinstance(verify, str) else verify
        )
        self._http = httpx.AsyncClient(verify=trust, timeout=retry.timeout_s, follow_redirects=False)

    async def close(self) -> None:
        await self._http.aclose()

    async def post(self, url: str, scope: str, params: dict[str, str] | None = None) -> Page:
        return await self._request("POST", url, scope, params)

    async def get_json(self, url: str, scope: str, params: dict[str, str] | None = None) -> Page:
        return await self._request("GET", url, scope, params)

    async def send_json(self, method: str, url: str, scope: str, body: Any = None) -> Page:
        """PATCH/POST a JSON body (Graph's write calls, for response actions), retried as above."""
        return await self._request(method, url, scope, None, body)

    async def _request(
        self, method: str, url: str, scope: str, params: dict[str, str] | None, json_body: Any = None
    ) -> Page:
        retry = self.retry
        reauthed = False
        why = ""
        last_body = b""
        for attempt in range(retry.attempts):
            token = await self.tokens.get(scope)
            self.counters.requests += 1
            try:
                resp = await self._http.request(
                    method, url, params=params, headers={"Authorization": f"Bearer {token}"}, json=json_body
                )
                body = resp.content
            except (httpx.TimeoutException, httpx.TransportError) as exc:
                self.counters.timeouts += 1
                why = f"{type(exc).__name__}: {exc}"
                await self._wait(retry.backoff(attempt), url, why)
                continue
            status = resp.status_code
            if status == 401 and not reauthed:
                self.counters.reauth += 1
                reauthed = True
                self.tokens.forget()
                continue
            if status == 429 or (status == 503 and "retry-after" in resp.headers):
                self.counters.throttled += status == 429
                self.counters.server_errors += status == 503
                why = f"HTTP {status}"
                await self._wait(self._retry_after(resp, attempt), url, why)
                continue
            if status >= 500:
                self.counters.server_errors += 1
                why = f"HTTP {status}: {body[:200]!r}"
                await self._wait(retry.backoff(attempt), url, why)
                continue
            if status >= 400:
                raise FetchError(
                    f"{self.connector}: {method} {_bare(url)} → HTTP {status}: {body[:300]!r}",
                    status,
                    body[:2000],
                    _error_code(body),
                )
            if not body.strip():
                return Page(None, resp.headers, str(resp.url))
            try:
                return Page(json.loads(body), resp.headers, str(resp.url))
            except ValueError as exc:  # a page cut off in transit: ask again
                self.counters.truncated += 1
                why = f"body of {len(body)} bytes is not whole JSON ({exc})"
                await self._wait(retry.backoff(attempt), url, why)
                last_body = body
                continue
        raise FetchError(
            f"{self.connector}: {method} {_bare(url)} failed {retry.attempts} times; last: {why}",
            0,
            last_body[:2000],
        )

    def _retry_after(self, resp: httpx.Response, attempt: int) -> float:
        value = resp.headers.get("retry-after", "")
        try:
            return min(self.retry.retry_after_max_s, max(0.0, float(value)))
        except ValueError:  # an HTTP date, or nothing: back off as for an error
            return self.retry.backoff(attempt)

    async def _wait(self, delay: float, url: str, why: str) -> None:
        log.info("%s: %s on %s; again in %.1f s", self.connector, why, _bare(url), delay)
        await asyncio.sleep(delay)


def _bare(url: str) -> str:
    """The URL without its query (content URIs carry no secrets, but keep log lines short)."""
    return url.split("?", 1)[0]


def _error_code(body: bytes) -> str:
    try:
        doc = json.loads(body)
    except ValueError:
        return ""
    err = doc.get("error") if isinstance(doc, dict) else None
    if isinstance(err, dict):
        return str(err.get("code", ""))
    return ""
