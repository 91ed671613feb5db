"""The API documentation: /api/docs (Swagger UI) and /api/openapi.json.

``server.api_docs`` decides who may read them: ``login`` (default) — a signed-in user, or an
API token / HTTP Basic for the schema; ``public``; ``off`` — neither route exists. The schema
lists every route and parameter, which is a map for an attacker, so it is not public unless
asked for.

Swagger UI comes from the swagger-ui-dist npm package through ``/vendor`` (never a CDN: a
script from elsewhere would run with the console's origin and cookies, and the console must
work without Internet access). It is started by ``/static/api-docs.js``; the page's own
Content-Security-Policy adds only inline *styles*, which Swagger UI's components set.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response

from norrvakt.web.auth import current_principal
from norrvakt.web.headers import CONSOLE_CSP

DOCS_URL = "/api/docs"
OPENAPI_URL = "/api/openapi.json"
DOCS_CSP = CONSOLE_CSP.replace("style-src 'self'", "style-src 'self' 'unsafe-inline'")
BUNDLE = "swagger-ui-dist/swagger-ui-bundle.js"


def api_docs_router(app: FastAPI, mode: str, vendor: Path | None) -> APIRouter:
    """The two routes for ``mode`` (none for ``off``)."""
    router = APIRouter(include_in_schema=False)
    if mode == "off":
        return router
    has_bundle = vendor is not None and (vendor / BUNDLE).exists()

    @router.get(OPENAPI_URL)
    async def openapi(request: Request) -> Response:
        if mode == "login":
            await current_principal(request)  # 401 without a session, token or password
        schema: dict[str, Any] = app.openapi()
        return JSONResponse(schema)

    @router.get(DOCS_URL)
    async def docs(request: Request) -> Response:
        from norrvakt.web.views.pages import page_user

        if mode == "login":
            page_user(request)  # to the login page, and back here after
        return HTMLResponse(_page(app.title, has_bundle), headers={"Content-Security-Policy": DOCS_CSP})

    return router


def _page(title: str, has_bundle: bool) -> str:
    name = html.escape(f"{title} API")
    if not has_bundle:
        body = (
            f"<h1>{name}</h1><p>The interactive documentation needs the swagger-ui-dist package "
            "(installed by <code>make</code>). The schema is at "
            f'<a href="{OPENAPI_URL}">{OPENAPI_URL}</a>.</p>'
        )
        head = ""
    else:
        head = (
            '<link rel="stylesheet" href="/vendor/swagger-ui-dist/swagger-ui.css">\n'
            f'<script src="/vendor/{BUNDLE}" defer></script>\n'
            '<script src="/static/api-docs.js" defer></script>'
        )
        body = f'<div id="swagger-ui" data-openapi="{OPENAPI_URL}"></div>'
    return (
        '<!doctype html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{name}</title>\n{head}\n</head>\n<body>\n{body}\n</body>\n</html>\n"
    )
