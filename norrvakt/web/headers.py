"""Security headers on every answer: what the browser may load, frame and send on.

The console loads only its own files (``/static``, the allow-listed ``/vendor`` files) and
talks only to its own API, so the policy is ``'self'`` throughout — no inline script, no
``eval``. A page that needs something else (the API documentation) sets its own
``Content-Security-Policy`` and this middleware leaves it alone. HSTS is sent only on HTTPS:
over plain HTTP it would be ignored at best and, behind a TLS proxy that forwards as HTTP,
wrongly pin a host that has no certificate of its own.

Written as plain ASGI (not ``BaseHTTPMiddleware``) so streamed answers — the live tail's
server-sent events, CSV and PDF downloads — pass through untouched.
"""

from __future__ import annotations

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

CONSOLE_CSP = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",  # Chart.js exports and CSS icons may use data: images
        "font-src 'self'",
        "connect-src 'self'",  # fetch() of the API and the live tail's EventSource
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)

HEADERS = {
    "X-Frame-Options": "DENY",  # for browsers that predate frame-ancestors
    "X-Content-Type-Options": "nosniff",
    # Same-origin requests keep the full referrer (the language switch returns to the page);
    # nothing of a URL (queries, case ids) leaves for another site.
    "Referrer-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), payment=()",
}
HSTS = "max-age=31536000; includeSubDomains"


class SecurityHeaders:
    """ASGI middleware adding :data:`HEADERS`, the CSP (unless the answer has one) and, on
    HTTPS, HSTS to every HTTP response."""

    def __init__(self, app: ASGIApp, csp: str = CONSOLE_CSP) -> None:
        self.app = app
        self.csp = csp

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        secure = scope.get("scheme") == "https"

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in HEADERS.items():
                    headers.setdefault(name, value)
                headers.setdefault("Content-Security-Policy", self.csp)
                if secure:
                    headers.setdefault("Strict-Transport-Security", HSTS)
            await send(message)

        await self.app(scope, receive, send_with_headers)
