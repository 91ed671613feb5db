"""The ASGI application: HTTP ingest, the JSON API and the web console.

Thin by design: handlers check who is calling, then call the library with the caller's
tenant scope. The running :class:`~norrvakt.node.runtime.Runtime` is ``app.state.runtime``.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from fastapi.staticfiles import StaticFiles

from norrvakt import __version__
from norrvakt.node.pipeline import PipelineUnavailable
from norrvakt.sources import http as http_ingest
from norrvakt.sources import otlp_http
from norrvakt.web.api import account as account_api
from norrvakt.web.api import admin, imports, integrity, reports, retention, search, system
from norrvakt.web.api import alerts as alerts_api
from norrvakt.web.api import assets as assets_api
from norrvakt.web.api import case_observables as case_observables_api
from norrvakt.web.api import case_report as case_report_api
from norrvakt.web.api import case_tasks as case_tasks_api
from norrvakt.web.api import cases as cases_api
from norrvakt.web.api import cluster as cluster_api
from norrvakt.web.api import exceptions as exceptions_api
from norrvakt.web.api import followup as followup_api
from norrvakt.web.api import m365 as m365_api
from norrvakt.web.api import nis2_reports as nis2_reports_api
from norrvakt.web.api import periodic_reports as periodic_reports_api
from norrvakt.web.api import response as response_api
from norrvakt.web.api import response_feed as response_feed_api
from norrvakt.web.api import rules as rules_api
from norrvakt.web.api import saved_searches as saved_searches_api
from norrvakt.web.headers import SecurityHeaders
from norrvakt.web.limits import UserLimiter
from norrvakt.web.session import SessionCodec, session_key
from norrvakt.web.templating import STATIC, VendorFiles, vendor_dir
from norrvakt.web.views import account as account_pages
from norrvakt.web.views import admin as admin_pages
from norrvakt.web.views import case_work as case_work_pages
from norrvakt.web.views import cluster as cluster_pages
from norrvakt.web.views import dashboards, exceptions, followup, pages, rules, soc, sso
from norrvakt.web.views import response_panel as response_pages
from norrvakt.web.views.api_docs import api_docs_router

if TYPE_CHECKING:
    from norrvakt.node.runtime import Runtime

log = logging.getLogger(__name__)


def create_app(runtime: Runtime) -> FastAPI:
    app = FastAPI(
        title="Norrvakt",
        version=__version__,
        # The docs and schema routes are Norrvakt's own (norrvakt.web.views.api_docs):
        # behind login by default, Swagger UI served locally, no CDN.
        openapi_url=None,
        docs_url=None,
        redoc_url=None,
    )
    app.state.runtime = runtime
    app.add_middleware(SecurityHeaders)
    limits = runtime.settings.search
    runtime.extras[search.LIMITER] = UserLimiter(
        {"search": limits.max_concurrent, "tail": limits.max_live_tails}
    )
    app.state.has_alerts = True
    # The same key on every web node of the state database (an older data directory's key
    # file is moved in at the first start).
    runtime.extras["session_codec"] = SessionCodec(
        session_key(runtime.state, runtime.settings.data_path / "keys" / "session.key")
    )
    app.include_router(http_ingest.router)
    app.include_router(otlp_http.router)
    app.include_router(system.router)
    app.include_router(search.router)
    app.include_router(imports.router)
    app.include_router(integrity.router)
    app.include_router(retention.router)
    app.include_router(admin.router)
    app.include_router(reports.router)
    app.include_router(periodic_reports_api.router)
    app.include_router(alerts_api.router)
    app.include_router(cases_api.router)
    app.include_router(case_tasks_api.router)
    app.include_router(case_observables_api.router)
    app.include_router(nis2_reports_api.router)
    app.include_router(case_report_api.router)
    app.include_router(followup_api.router)
    app.include_router(rules_api.router)
    app.include_router(exceptions_api.router)
    app.include_router(assets_api.router)
    app.include_router(saved_searches_api.router)
    app.include_router(pages.router)
    app.include_router(dashboards.router)
    app.include_router(sso.router)
    app.include_router(admin_pages.router)
    app.include_router(soc.router)
    app.include_router(case_work_pages.router)
    app.include_router(response_pages.router)
    app.include_router(followup.router)
    app.include_router(rules.router)
    app.include_router(exceptions.router)
    app.include_router(account_api.router)
    app.include_router(account_pages.router)
    app.include_router(cluster_api.router)
    app.include_router(cluster_pages.router)
    app.include_router(m365_api.router)
    app.include_router(response_api.router)
    app.include_router(response_feed_api.router)
    vendor = vendor_dir()
    app.include_router(api_docs_router(app, runtime.settings.server.api_docs, vendor))
    _configure_sso(runtime)
    app.add_exception_handler(pages.LoginRequired, pages.login_redirect)  # type: ignore[arg-type]
    app.add_exception_handler(PipelineUnavailable, _journal_unavailable)  # type: ignore[arg-type]
    app.mount("/static", StaticFiles(directory=str(STATIC)), name="static")
    app.state.has_vendor = vendor is not None
    if vendor is not None:
        app.mount("/vendor", VendorFiles(vendor), name="vendor")
    else:
        log.warning(
            "htmx and Chart.js are not installed (run `make`); the console works without them, plainer"
        )
    return app


def _journal_unavailable(request: Request, exc: PipelineUnavailable) -> Response:
    """A change that must be journaled (a case note, an alert) while the journal cannot write:
    503 with the reason, so the caller retries — never a 500, never done without its record."""
    return JSONResponse(
        {"detail": f"cannot be recorded now, try again shortly: {exc}"},
        status_code=503,
        headers={"Retry-After": "5"},
    )


def _configure_sso(runtime: Runtime) -> None:
    import os

    from norrvakt.auth.oidc import OidcClient, OidcConfig
    from norrvakt.node.address import public_url

    oc = runtime.settings.oidc
    if not oc.issuer:
        return
    runtime.extras["oidc"] = OidcClient(
        OidcConfig(
            issuer=oc.issuer,
            client_id=oc.client_id,
            client_secret=oc.client_secret or os.environ.get("NORRVAKT_OIDC_SECRET", ""),
            redirect_uri=public_url(runtime.settings) + "/login/oidc/callback",
            scopes=oc.scopes,
            username_claim=oc.username_claim,
            roles_claim=oc.roles_claim,
            role_map=dict(oc.role_map),
            tenants_claim=oc.tenants_claim,
        )
    )
