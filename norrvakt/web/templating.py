"""Jinja2 pages: one place that knows the language, the user, the CSRF token and the assets."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.exceptions import HTTPException
from starlette.responses import Response
from starlette.types import Scope

from norrvakt.config import MUNICIPALITIES
from norrvakt.enrich.display import beside
from norrvakt.event import SYSTEM_TENANT
from norrvakt.state.accounts import Principal
from norrvakt.web.i18n import pick_language, translate
from norrvakt.web.session import COOKIE, SessionCodec

TEMPLATES = Jinja2Templates(directory=str(Path(__file__).with_name("templates")))


def _timestamp(seconds: float) -> str:
    """Seconds since the epoch as local (Swedish) time, minutes precision."""
    import time

    return time.strftime("%Y-%m-%d %H:%M", time.localtime(seconds)) if seconds else "–"


TEMPLATES.env.filters["timestamp"] = _timestamp
STATIC = Path(__file__).with_name("static")


def vendor_dir() -> Path | None:
    """node_modules with htmx and Chart.js (installed by `make`), if present."""
    env = os.environ.get("NORRVAKT_ASSETS")
    candidates = [Path(env)] if env else []
    here = Path(__file__).resolve()
    candidates += [p / "node_modules" for p in here.parents]
    for c in candidates:
        if (c / "htmx.org" / "dist" / "htmx.min.js").exists():
            return c
    return None


# The only files of node_modules that /vendor serves: what base.html and the API docs page
# load. The rest of node_modules (package.json files with versions, the OIDC test provider,
# source maps, READMEs) tells an attacker what to look for and serves no page.
VENDOR_FILES = frozenset(
    {
        "htmx.org/dist/htmx.min.js",
        "chart.js/dist/chart.umd.min.js",
        "swagger-ui-dist/swagger-ui-bundle.js",
        "swagger-ui-dist/swagger-ui.css",
    }
)


class VendorFiles(StaticFiles):
    """StaticFiles over node_modules that answers 404 for anything not in ``allowed``."""

    def __init__(self, directory: Path, allowed: frozenset[str] = VENDOR_FILES) -> None:
        super().__init__(directory=str(directory))
        self.allowed = allowed

    async def get_response(self, path: str, scope: Scope) -> Response:
        if Path(path).as_posix() not in self.allowed:
            raise HTTPException(status_code=404)
        return await super().get_response(path, scope)


def tenant_name(tenant: str) -> str:
    if tenant == SYSTEM_TENANT:
        return "Norrvakt (system)"
    return MUNICIPALITIES.get(tenant, tenant)


TEMPLATES.env.filters["tenant_label"] = tenant_name
TEMPLATES.env.globals["beside"] = beside  # enrichment next to the raw value (norrvakt.enrich.display)


def language(request: Request) -> str:
    return pick_language(request.cookies.get("nv_lang"), request.headers.get("accept-language"))


def render(
    request: Request, name: str, user: Principal | None, status_code: int = 200, **context: Any
) -> HTMLResponse:
    lang = language(request)
    csrf = ""
    codec: SessionCodec | None = request.app.state.runtime.extras.get("session_codec")
    raw = request.cookies.get(COOKIE)
    if codec is not None and raw:
        data = codec.decode(raw)
        csrf = data.csrf if data else ""
    rt = request.app.state.runtime
    scope = user.scope(rt.tenants) if user else []
    base = {
        "request": request,
        "t": lambda key: translate(lang, key),
        "lang": lang,
        "user": user,
        "csrf": csrf,
        "tenants": [(t, tenant_name(t)) for t in scope],
        "tenant_name": tenant_name,
        "path": request.url.path,
        "has_vendor": request.app.state.has_vendor,
        # the Cluster page, for central staff of a node that is part of a cluster
        "cluster_nav": bool(user and user.tenants is None and rt.settings.cluster.nats_dir),
    }
    return TEMPLATES.TemplateResponse(request, name, {**base, **context}, status_code=status_code)
