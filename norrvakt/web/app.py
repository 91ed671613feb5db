"""The ASGI application: HTTP ingest, the JSON API and (later) the web console.

Thin by design: handlers check who is calling, then call the library with the caller's
tenant scope. The running :class:`~norrvakt.runtime.Runtime` is ``app.state.runtime``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import FastAPI
from fastapi.responses import HTMLResponse

from norrvakt import __version__
from norrvakt.sources import http as http_ingest
from norrvakt.web.api import imports, integrity, retention, search, system

if TYPE_CHECKING:
    from norrvakt.runtime import Runtime


def create_app(runtime: Runtime) -> FastAPI:
    app = FastAPI(
        title="Norrvakt",
        version=__version__,
        openapi_url="/api/openapi.json",
        docs_url="/api/docs",
        redoc_url=None,
    )
    app.state.runtime = runtime
    app.include_router(http_ingest.router)
    app.include_router(system.router)
    app.include_router(search.router)
    app.include_router(imports.router)
    app.include_router(integrity.router)
    app.include_router(retention.router)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def index() -> str:
        return _INDEX

    return app


_INDEX = """<!doctype html>
<html lang="sv"><head><meta charset="utf-8"><title>Norrvakt</title></head>
<body style="font-family: system-ui, sans-serif; max-width: 48rem; margin: 2rem auto">
<h1>Norrvakt</h1>
<p>Central loggning och intrångsdetektering för Norrbottens kommuner.</p>
<ul>
<li><a href="/api/docs">API (OpenAPI)</a> — <code>GET /api/search?q=...</code></li>
<li><a href="/api/health">Hälsa</a></li>
</ul>
</body></html>
"""
