"""Tenant isolation, route by route: a tenant_officer of Boden can neither read nor change
anything of Luleå's — through any API route or page.

Every route of the app's route table must have a case below; a new route without one fails
``test_every_route_has_an_isolation_case``. A case either probes the route with Luleå's
identifiers as Boden's officer (and checks the answer is a refusal or contains nothing of
Luleå's), or says why the route holds no tenant data (public, own session, admin only).
"""

from __future__ import annotations

import json
import socket
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest

from norrvakt.config import load_settings
from norrvakt.state.db import open_state
from norrvakt.web.app import create_app
from tests.e2e.harness import Server, running_server

DENIED = {401, 403, 404}


@dataclass(frozen=True)
class Probe:
    """How to call a route as Boden's officer with Luleå's identifiers."""

    method: str
    url: str  # may contain {seq} (a Luleå event) and {marker}
    body: Any = None
    expect: frozenset[int] = frozenset(DENIED)  # allowed status codes
    content_check: bool = True  # the answer must not contain Luleå's marker


@dataclass(frozen=True)
class NoTenantData:
    why: str


@dataclass
class Case:
    probes: list[Probe] = field(default_factory=list)
    exempt: NoTenantData | None = None


def _probe(
    method: str, url: str, body: Any = None, expect: set[int] | None = None, check: bool = True
) -> Case:
    return Case([Probe(method, url, body, frozenset(expect or DENIED), check)])


OK_NO_LULEA = {200}  # allowed, but the answer must not contain Luleå's data
# matches the message of Luleå's event ("Luleå secret <marker>"); a leak would show the marker
SPRAYING_RULE_ID = "d9ccd722-755c-4f41-b0c4-ff4b12abee75"  # a built-in rule
LULEA_KEYWORD_RULE = (
    "title: Lulea keyword\nid: 5d0f7c2e-1b7a-4c55-9d1e-6a1f00000001\nlogsource:\n  product: any\n"
    "detection:\n  keywords:\n    - Luleå secret\n  condition: keywords\nlevel: low\n"
)

# A saved search, as Boden's officer would save it
_SAVED = {"name": "iso", "query": "x", "since": "1h"}
# A rule exception's body, as Boden's officer would send it for Luleå (or for every tenant)
_EXCEPTION = {"rule_id": "iso-rule", "conditions": {"host.name": ["h"]}, "reason": "x", "days": 1}

CASES: dict[tuple[str, str], Case] = {
    # -- public or not tenant data ---------------------------------------------------------------
    ("GET", "/api/openapi.json"): Case(exempt=NoTenantData("the API's schema (behind login by default)")),
    ("GET", "/api/docs"): Case(exempt=NoTenantData("the API's documentation page (behind login by default)")),
    ("GET", "/api/health"): _probe("GET", "/api/health", expect=OK_NO_LULEA),
    # the cluster's status names every tenant: central staff only (403 for a tenant's officer)
    ("GET", "/api/cluster/status"): _probe("GET", "/api/cluster/status"),
    ("GET", "/cluster"): _probe("GET", "/cluster"),
    # Microsoft 365 connectors: Boden's officer sees none of Luleå's (not its id, feeds or whether a
    # credential is set); Luleå's connector by id is a 404, as one that does not exist
    ("GET", "/api/m365/connectors"): _probe("GET", "/api/m365/connectors", expect=OK_NO_LULEA),
    ("GET", "/api/m365/connectors/{connector_id}"): _probe("GET", "/api/m365/connectors/m365-lulea-iso"),
    ("MOUNT", "/static"): Case(exempt=NoTenantData("the console's own CSS and JavaScript")),
    ("MOUNT", "/vendor"): Case(exempt=NoTenantData("an allow-list of htmx, Chart.js and Swagger UI files")),
    ("GET", "/login"): Case(exempt=NoTenantData("the login form")),
    ("GET", "/login/oidc"): Case(exempt=NoTenantData("sends the browser to the identity provider")),
    ("GET", "/login/oidc/callback"): Case(
        exempt=NoTenantData("the provider's answer; yields one's own session")
    ),
    ("POST", "/login"): Case(exempt=NoTenantData("logging in yields only one's own session")),
    ("POST", "/logout"): Case(exempt=NoTenantData("ends one's own session")),
    ("GET", "/lang/{code}"): Case(exempt=NoTenantData("sets the language cookie")),
    ("GET", "/"): Case(exempt=NoTenantData("redirects to a page")),
    # -- ingest: the token decides the tenant; an officer's session is no ingest token ------------
    **{
        ("POST", p): _probe("POST", p, body={"event": "x", "tenant": "lulea"})
        for p in [
            "/services/collector",
            "/services/collector/event",
            "/services/collector/event/1.0",
            "/services/collector/raw",
            "/services/collector/raw/1.0",
            "/_bulk",
            "/ingest",
            "/api/ingest",
            "/v1/logs",  # OTLP/HTTP logs
        ]
    },
    ("POST", "/{index}/_bulk"): _probe("POST", "/siem-lulea/_bulk", body={"index": {}}),
    ("GET", "/_bulk"): Case(exempt=NoTenantData("answers 405: use POST")),
    ("GET", "/services/collector/health"): Case(exempt=NoTenantData("HEC health check")),
    ("GET", "/services/collector/health/1.0"): Case(exempt=NoTenantData("HEC health check")),
    # -- search and events --------------------------------------------------------------------------
    ("GET", "/api/search"): Case(
        [
            Probe("GET", "/api/search?q={marker}&tenant=lulea"),
            Probe("GET", "/api/search?q={marker}", expect=frozenset(OK_NO_LULEA)),
            Probe("GET", "/api/search?q=tenant:lulea {marker}", expect=frozenset(OK_NO_LULEA)),
        ]
    ),
    ("GET", "/api/search/histogram"): Case(
        [
            Probe("GET", "/api/search/histogram?q={marker}&tenant=lulea"),
        ]
    ),
    ("GET", "/api/search/facets"): Case(
        [
            Probe("GET", "/api/search/facets?q={marker}&tenant=lulea"),
            Probe("GET", "/api/search/facets?q={marker}&field=host.name", expect=frozenset(OK_NO_LULEA)),
        ]
    ),
    ("GET", "/api/search/fields"): _probe("GET", "/api/search/fields?tenant=lulea"),
    # the export streams the whole result: Luleå refused, Boden's own (nothing of Luleå's) allowed
    ("GET", "/api/search/export"): Case(
        [
            Probe("GET", "/api/search/export?q={marker}&tenant=lulea"),
            Probe("GET", "/api/search/export?q={marker}&format=ndjson", expect=frozenset(OK_NO_LULEA)),
            Probe("GET", "/api/search/export?q=tenant:lulea OR {marker}", expect=frozenset(OK_NO_LULEA)),
            Probe("GET", "/api/search/export?q={marker} | top host.name", expect=frozenset(OK_NO_LULEA)),
        ]
    ),
    ("GET", "/api/tail"): _probe("GET", "/api/tail?q={marker}&tenant=lulea"),
    ("GET", "/search"): _probe("GET", "/search?q={marker}&tenant=lulea", expect=OK_NO_LULEA),
    ("GET", "/ui/search"): _probe("GET", "/ui/search?q={marker}&tenant=lulea", expect=OK_NO_LULEA),
    ("GET", "/ui/event/{tenant}/{seq}"): _probe("GET", "/ui/event/lulea/{seq}"),
    ("GET", "/events/{tenant}/{seq}"): _probe("GET", "/events/lulea/{seq}"),
    ("GET", "/admin"): _probe("GET", "/admin", expect=OK_NO_LULEA),
    ("GET", "/alerts"): Case(
        [Probe("GET", "/alerts?tenant=lulea"), Probe("GET", "/alerts?status=", expect=frozenset(OK_NO_LULEA))]
    ),
    ("GET", "/ui/alerts/counts"): _probe("GET", "/ui/alerts/counts?tenant=lulea"),
    ("GET", "/cases"): Case(
        [Probe("GET", "/cases?tenant=lulea"), Probe("GET", "/cases?status=", expect=frozenset(OK_NO_LULEA))]
    ),
    ("GET", "/cases/{case_id}"): _probe("GET", "/cases/{case}"),
    ("GET", "/dashboards"): Case(
        [Probe("GET", "/dashboards?tenant=lulea"), Probe("GET", "/dashboards", expect=frozenset(OK_NO_LULEA))]
    ),
    ("GET", "/api/stats"): _probe("GET", "/api/stats", expect=OK_NO_LULEA),
    # -- imports -----------------------------------------------------------------------------------
    ("POST", "/api/import"): _probe("POST", "/api/import?tenant=lulea", body=""),
    ("GET", "/api/import/wait"): _probe("GET", "/api/import/wait?timeout=1", expect={200}, check=False),
    # -- integrity -----------------------------------------------------------------------------------
    ("POST", "/api/integrity/verify"): _probe("POST", "/api/integrity/verify?tenant=lulea"),
    ("GET", "/api/integrity/verify/{job_id}"): _probe("GET", "/api/integrity/verify/1"),
    ("GET", "/api/integrity/proof"): _probe("GET", "/api/integrity/proof?tenant=lulea&seq={seq}"),
    ("GET", "/api/integrity/keys"): _probe("GET", "/api/integrity/keys", expect=OK_NO_LULEA),
    ("POST", "/api/integrity/keys/rotate"): _probe("POST", "/api/integrity/keys/rotate"),
    # -- retention ---------------------------------------------------------------------------------
    ("GET", "/api/retention/plan"): Case(
        [
            Probe("GET", "/api/retention/plan?tenant=lulea"),
            Probe("GET", "/api/retention/plan", expect=frozenset(OK_NO_LULEA)),
        ]
    ),
    ("POST", "/api/retention/dispose"): _probe(
        "POST", "/api/retention/dispose", body={"tenant": "lulea", "up_to_seq": 1, "reason": "x"}
    ),
    ("GET", "/api/retention/holds"): _probe("GET", "/api/retention/holds", expect=OK_NO_LULEA),
    ("POST", "/api/retention/holds"): _probe(
        "POST", "/api/retention/holds", body={"tenant": "lulea", "reason": "x"}
    ),
    ("POST", "/api/retention/holds/{hold_id}/release"): _probe("POST", "/api/retention/holds/abc/release"),
    ("GET", "/api/admin/tokens"): _probe("GET", "/api/admin/tokens", expect=OK_NO_LULEA),
    ("POST", "/api/admin/tokens"): _probe(
        "POST", "/api/admin/tokens", body={"tenant": "lulea", "source": "x"}
    ),
    ("POST", "/api/admin/tokens/{token_id}/revoke"): _probe("POST", "/api/admin/tokens/1/revoke"),
    ("GET", "/api/admin/modules"): _probe("GET", "/api/admin/modules", expect=OK_NO_LULEA),
    ("PUT", "/api/admin/modules/{tenant}"): _probe(
        "PUT", "/api/admin/modules/lulea", body={"detection": False}
    ),
    ("POST", "/api/admin/users"): _probe(
        "POST", "/api/admin/users", body={"username": "x", "role": "tenant_officer", "tenants": ["lulea"]}
    ),
    # -- accounts: an officer manages nobody else's; their own account holds no tenant data ---------
    ("GET", "/api/admin/users"): _probe("GET", "/api/admin/users"),
    ("POST", "/api/admin/users/{username}/password"): _probe(
        "POST", "/api/admin/users/admin/password", body={}
    ),
    ("POST", "/api/admin/users/{username}/disable"): _probe("POST", "/api/admin/users/admin/disable"),
    ("POST", "/api/admin/users/{username}/enable"): _probe("POST", "/api/admin/users/admin/enable"),
    ("DELETE", "/api/admin/users/{username}"): _probe("DELETE", "/api/admin/users/admin"),
    ("POST", "/api/admin/users/{username}/sessions/revoke"): _probe(
        "POST", "/api/admin/users/admin/sessions/revoke"
    ),
    ("POST", "/api/admin/users/{username}/identities"): _probe(
        "POST", "/api/admin/users/boden.iso/identities", body={"issuer": "https://x", "subject": "admin"}
    ),
    ("POST", "/api/admin/users/{username}/identities/unlink"): _probe(
        "POST", "/api/admin/users/admin/identities/unlink", body={"issuer": "https://x", "subject": "a"}
    ),
    ("GET", "/api/account"): _probe("GET", "/api/account", expect=OK_NO_LULEA),
    ("POST", "/api/account/password"): _probe(
        "POST", "/api/account/password", body={"current_password": "x", "new_password": "y"}, expect={400}
    ),
    ("GET", "/api/account/sessions"): _probe("GET", "/api/account/sessions", expect=OK_NO_LULEA),
    ("POST", "/api/account/sessions/revoke"): _probe(
        "POST", "/api/account/sessions/revoke", expect=OK_NO_LULEA
    ),
    ("GET", "/api/account/tokens"): _probe("GET", "/api/account/tokens", expect=OK_NO_LULEA),
    ("POST", "/api/account/tokens"): _probe(
        "POST", "/api/account/tokens", body={"name": "x"}, expect=OK_NO_LULEA
    ),
    # token 1 is the admin's (the local CLI's), 2 Luleå's ingest token: neither is the officer's
    ("POST", "/api/account/tokens/{token_id}/revoke"): Case(
        [Probe("POST", "/api/account/tokens/1/revoke"), Probe("POST", "/api/account/tokens/2/revoke")]
    ),
    ("GET", "/account"): _probe("GET", "/account", expect=OK_NO_LULEA),
    ("POST", "/account/password"): _probe("POST", "/account/password", body="", expect={400}),
    ("GET", "/api/reports/subject-access"): _probe(
        "GET", "/api/reports/subject-access?tenant=lulea&subject=s-1"
    ),
    # periodic reports: Luleå's refused in every format, Boden's own holds nothing of Luleå's;
    # the region report (every municipality) is for central roles; the runs list keeps to the scope
    ("GET", "/api/reports/periodic/{tenant}/{period}"): Case(
        [
            Probe("GET", "/api/reports/periodic/lulea/2026-11?format=json"),
            Probe("GET", "/api/reports/periodic/lulea/2026-11?format=pdf"),
            Probe("GET", "/api/reports/periodic/boden/2026-11?format=json", expect=frozenset(OK_NO_LULEA)),
        ]
    ),
    ("GET", "/api/reports/region/{period}"): _probe("GET", "/api/reports/region/2026-11?format=json"),
    ("GET", "/api/reports/runs"): Case(
        [
            Probe("GET", "/api/reports/runs?tenant=lulea"),
            Probe("GET", "/api/reports/runs", expect=frozenset(OK_NO_LULEA)),
        ]
    ),
    ("POST", "/api/archive/export"): _probe(
        "POST", "/api/archive/export", body={"tenant": "lulea", "until": "now", "out_dir": "/tmp/x"}
    ),
    # -- alerts and cases ({alert} and {case} are Luleå's) --------------------------------------------
    ("GET", "/api/alerts"): Case(
        [Probe("GET", "/api/alerts?tenant=lulea"), Probe("GET", "/api/alerts", expect=frozenset(OK_NO_LULEA))]
    ),
    ("POST", "/api/alerts"): _probe(
        "POST", "/api/alerts", body={"tenant": "lulea", "rule_id": "x", "entities": {"host.name": "h"}}
    ),
    ("GET", "/api/alerts/indicators"): _probe("GET", "/api/alerts/indicators"),
    ("GET", "/api/alerts/stats"): _probe("GET", "/api/alerts/stats", expect=OK_NO_LULEA),
    ("GET", "/api/alerts/notifications"): Case(
        [
            Probe("GET", "/api/alerts/notifications?tenant=lulea"),
            Probe("GET", "/api/alerts/notifications", expect=frozenset(OK_NO_LULEA)),
        ]
    ),
    ("GET", "/api/alerts/rules"): _probe("GET", "/api/alerts/rules", expect=OK_NO_LULEA),
    ("PUT", "/api/alerts/rules/{rule_id}"): Case(
        [
            Probe("PUT", "/api/alerts/rules/iso-rule", body={"tenant": "lulea", "enabled": False}),
            Probe("PUT", "/api/alerts/rules/iso-rule", body={"tenant": "*", "enabled": False}),
        ]
    ),
    ("GET", "/api/alerts/{alert_id}"): _probe("GET", "/api/alerts/{alert}"),
    ("GET", "/api/alerts/{alert_id}/events"): _probe("GET", "/api/alerts/{alert}/events"),
    ("POST", "/api/alerts/{alert_id}/status"): _probe(
        "POST", "/api/alerts/{alert}/status", body={"status": "acknowledged"}
    ),
    ("GET", "/api/cases"): Case(
        [Probe("GET", "/api/cases?tenant=lulea"), Probe("GET", "/api/cases", expect=frozenset(OK_NO_LULEA))]
    ),
    ("POST", "/api/cases"): _probe(
        "POST", "/api/cases", body={"tenant": "lulea", "title": "x", "alert_ids": ["{alert}"]}
    ),
    ("GET", "/api/cases/sla"): Case(
        [
            Probe("GET", "/api/cases/sla?tenant=lulea"),
            Probe("GET", "/api/cases/sla", expect=frozenset(OK_NO_LULEA)),
        ]
    ),
    ("GET", "/api/cases/{case_id}"): _probe("GET", "/api/cases/{case}"),
    ("GET", "/api/cases/{case_id}/history"): _probe("GET", "/api/cases/{case}/history"),
    ("PATCH", "/api/cases/{case_id}"): _probe("PATCH", "/api/cases/{case}", body={"assignee": "bo"}),
    ("POST", "/api/cases/{case_id}/status"): _probe(
        "POST", "/api/cases/{case}/status", body={"status": "acknowledged"}
    ),
    ("POST", "/api/cases/{case_id}/comments"): _probe(
        "POST", "/api/cases/{case}/comments", body={"text": "x"}
    ),
    ("POST", "/api/cases/{case_id}/attachments"): _probe(
        "POST", "/api/cases/{case}/attachments", body={"query": "{marker}"}
    ),
    ("POST", "/api/cases/{case_id}/merge"): _probe("POST", "/api/cases/{case}/merge", body={"case_ids": [1]}),
    ("POST", "/api/cases/{case_id}/split"): _probe(
        "POST", "/api/cases/{case}/split", body={"alert_ids": ["{alert}"]}
    ),
    ("POST", "/api/cases/{case_id}/alerts"): _probe(
        "POST", "/api/cases/{case}/alerts", body={"alert_id": "{alert}"}
    ),
    ("PUT", "/api/cases/{case_id}/nis2"): _probe("PUT", "/api/cases/{case}/nis2", body={"significant": True}),
    # -- case tasks and observables (the world's Luleå case has the lost_device tasks; task 1 is its
    # first; its alert names Luleå's host, so observables or exports that leaked would show it) ------
    ("GET", "/api/case-templates"): _probe("GET", "/api/case-templates", expect=OK_NO_LULEA),
    ("GET", "/api/cases/{case_id}/tasks"): _probe("GET", "/api/cases/{case}/tasks"),
    ("POST", "/api/cases/{case_id}/template"): _probe(
        "POST", "/api/cases/{case}/template", body={"template": "ransomware"}
    ),
    ("POST", "/api/cases/{case_id}/tasks"): _probe("POST", "/api/cases/{case}/tasks", body={"title": "x"}),
    ("PATCH", "/api/cases/{case_id}/tasks/{task_id}"): _probe(
        "PATCH", "/api/cases/{case}/tasks/1", body={"state": "done", "assignee": "boden.iso"}
    ),
    ("GET", "/api/case-tasks/mttr"): Case(
        [
            Probe("GET", "/api/case-tasks/mttr?tenant=lulea"),
            Probe("GET", "/api/case-tasks/mttr?since=3650d", expect=frozenset({200})),
        ]
    ),
    ("GET", "/api/cases/{case_id}/observables"): _probe("GET", "/api/cases/{case}/observables"),
    # the pivot is refused to every tenant officer, for Luleå's case and any other
    ("GET", "/api/cases/{case_id}/observables/pivot"): _probe(
        "GET", "/api/cases/{case}/observables/pivot?kind=host&value=lulea-host-{marker}", expect={403}
    ),
    ("GET", "/api/cases/{case_id}/export/stix"): _probe("GET", "/api/cases/{case}/export/stix"),
    ("GET", "/api/cases/{case_id}/export/misp"): _probe("GET", "/api/cases/{case}/export/misp"),
    ("GET", "/ui/cases/{case_id}/work"): _probe("GET", "/ui/cases/{case}/work"),
    ("GET", "/ui/cases/{case_id}/pivot"): _probe(
        "GET", "/ui/cases/{case}/pivot?kind=host&value=lulea-host-{marker}", expect={403}
    ),
    # NIS2 report drafts and the case report: Luleå's case is significant and has an early warning
    # draft (its fields name Luleå's host); Boden's officer, who may approve drafts of Boden's,
    # can neither read, make, edit, approve, send nor export Luleå's
    ("GET", "/api/cases/{case_id}/nis2/reports"): _probe("GET", "/api/cases/{case}/nis2/reports"),
    ("POST", "/api/cases/{case_id}/nis2/reports/{kind}"): _probe(
        "POST", "/api/cases/{case}/nis2/reports/notification"
    ),
    ("GET", "/api/cases/{case_id}/nis2/reports/{kind}"): _probe(
        "GET", "/api/cases/{case}/nis2/reports/early_warning"
    ),
    ("PUT", "/api/cases/{case_id}/nis2/reports/{kind}"): _probe(
        "PUT", "/api/cases/{case}/nis2/reports/early_warning", body={"title": "x"}
    ),
    ("POST", "/api/cases/{case_id}/nis2/reports/{kind}/approve"): _probe(
        "POST", "/api/cases/{case}/nis2/reports/early_warning/approve"
    ),
    ("POST", "/api/cases/{case_id}/nis2/reports/{kind}/mark-sent"): _probe(
        "POST", "/api/cases/{case}/nis2/reports/early_warning/mark-sent", body={}
    ),
    ("GET", "/api/cases/{case_id}/nis2/reports/{kind}/export"): Case(
        [
            Probe("GET", "/api/cases/{case}/nis2/reports/early_warning/export?format=json"),
            Probe("GET", "/api/cases/{case}/nis2/reports/early_warning/export?format=pdf"),
        ]
    ),
    ("GET", "/api/cases/{case_id}/report"): Case(
        [
            Probe("GET", "/api/cases/{case}/report?format=html"),
            Probe("GET", "/api/cases/{case}/report?format=pdf&variant=police"),
        ]
    ),
    # -- log follow-up ({plan}, {round} and {item} are Luleå's) ------------------------------------------
    ("GET", "/api/followup/plans"): Case(
        [
            Probe("GET", "/api/followup/plans?tenant=lulea"),
            Probe("GET", "/api/followup/plans", expect=frozenset(OK_NO_LULEA)),
        ]
    ),
    ("POST", "/api/followup/plans"): _probe(
        "POST",
        "/api/followup/plans",
        body={"tenant": "lulea", "dataset": "socialtjanst.record_access", "reviewer": "boden.iso"},
    ),
    ("GET", "/api/followup/plans/{plan_id}"): _probe("GET", "/api/followup/plans/{plan}"),
    ("POST", "/api/followup/plans/{plan_id}/rounds"): _probe(
        "POST", "/api/followup/plans/{plan}/rounds", body={"period": "2026-10"}
    ),
    ("GET", "/api/followup/rounds"): Case(
        [
            Probe("GET", "/api/followup/rounds?tenant=lulea"),
            Probe("GET", "/api/followup/rounds", expect=frozenset(OK_NO_LULEA)),
        ]
    ),
    ("GET", "/api/followup/rounds/{round_id}"): _probe("GET", "/api/followup/rounds/{round}"),
    ("POST", "/api/followup/items/{item_id}/decision"): _probe(
        "POST", "/api/followup/items/{item}/decision", body={"decision": "justified"}
    ),
    ("POST", "/api/followup/items/{item_id}/annotations"): _probe(
        "POST", "/api/followup/items/{item}/annotations", body={"text": "x"}
    ),
    ("POST", "/api/followup/rounds/{round_id}/sign-off"): _probe(
        "POST", "/api/followup/rounds/{round}/sign-off"
    ),
    ("GET", "/api/followup/rounds/{round_id}/verify"): _probe("GET", "/api/followup/rounds/{round}/verify"),
    ("GET", "/api/followup/rounds/{round_id}/report"): Case(
        [
            Probe("GET", "/api/followup/rounds/{round}/report?format=html"),
            Probe("GET", "/api/followup/rounds/{round}/report?format=pdf"),
        ]
    ),
    ("PUT", "/api/followup/lookup/{tenant}/{kind}"): _probe(
        "PUT", "/api/followup/lookup/lulea/staff", body="id_hash,surname_hash,address_hash\n"
    ),
    # -- rules: the load report holds no tenant data; hits and tests keep to the caller's scope ----
    ("GET", "/api/rules"): Case(
        [Probe("GET", "/api/rules?tenant=lulea"), Probe("GET", "/api/rules", expect=frozenset(OK_NO_LULEA))]
    ),
    ("POST", "/api/rules/test"): Case(
        [
            Probe("POST", "/api/rules/test", body={"rule": LULEA_KEYWORD_RULE, "tenant": "lulea"}),
            Probe("POST", "/api/rules/test", body={"rule_id": SPRAYING_RULE_ID, "tenant": "lulea"}),
            # Boden's own events only: the keyword of Luleå's event must match nothing
            Probe("POST", "/api/rules/test", body={"rule": LULEA_KEYWORD_RULE}, expect=frozenset({200})),
        ]
    ),
    ("GET", "/rules"): _probe("GET", "/rules?q=&test=x", expect=OK_NO_LULEA),
    ("GET", "/followup"): Case(
        [Probe("GET", "/followup?tenant=lulea"), Probe("GET", "/followup", expect=frozenset(OK_NO_LULEA))]
    ),
    ("GET", "/followup/rounds/{round_id}"): _probe("GET", "/followup/rounds/{round}"),
    # -- rule exceptions ({exception} is Luleå's: its host and reason carry the marker) ----------------
    ("GET", "/api/exceptions"): Case(
        [
            Probe("GET", "/api/exceptions?tenant=lulea"),
            Probe("GET", "/api/exceptions", expect=frozenset(OK_NO_LULEA)),
        ]
    ),
    ("POST", "/api/exceptions"): Case(
        [
            Probe("POST", "/api/exceptions", body={**_EXCEPTION, "tenant": "lulea"}, expect=frozenset({403})),
            Probe("POST", "/api/exceptions", body={**_EXCEPTION, "tenant": "*"}, expect=frozenset({403})),
            Probe(
                "POST", "/api/exceptions", body={**_EXCEPTION, "alert_id": "{alert}"}, expect=frozenset({404})
            ),
        ]
    ),
    ("GET", "/api/exceptions/{exception_id}"): _probe("GET", "/api/exceptions/{exception}"),
    ("POST", "/api/exceptions/{exception_id}/disable"): _probe("POST", "/api/exceptions/{exception}/disable"),
    ("PATCH", "/api/exceptions/{exception_id}"): _probe(
        "PATCH", "/api/exceptions/{exception}", body={"days": 300}
    ),
    ("GET", "/exceptions"): Case(
        [
            Probe("GET", "/exceptions", expect=frozenset(OK_NO_LULEA)),
            Probe("GET", "/exceptions?alert={alert}", expect=frozenset({404})),
        ]
    ),
    ("GET", "/exceptions/{exception_id}"): _probe("GET", "/exceptions/{exception}"),
    # -- assets and directory accounts (Luleå's asset lulea-host-{marker}: its owner carries the marker) --
    ("GET", "/api/assets"): Case(
        [
            Probe("GET", "/api/assets?tenant=lulea"),
            Probe("GET", "/api/assets", expect=frozenset(OK_NO_LULEA)),
        ]
    ),
    ("PUT", "/api/assets/{tenant}/{host}"): _probe(
        "PUT", "/api/assets/lulea/lulea-host-{marker}", body={"criticality": "low", "owner": "boden"}
    ),
    ("DELETE", "/api/assets/{tenant}/{host}"): _probe("DELETE", "/api/assets/lulea/lulea-host-{marker}"),
    ("POST", "/api/assets/{tenant}/import"): _probe(
        "POST", "/api/assets/lulea/import", body="host,owner,criticality,system\nx,boden,low,x\n"
    ),
    ("GET", "/api/directory"): Case(
        [
            Probe("GET", "/api/directory?tenant=lulea"),
            Probe("GET", "/api/directory", expect=frozenset(OK_NO_LULEA)),
        ]
    ),
    # -- saved searches ({saved} is Luleå's, shared with Luleå; {saved_private} the admin's private one
    # of Boden; {saved_region} the SOC's region-wide one): names and queries carry the marker ---------
    ("GET", "/api/saved-searches"): _probe("GET", "/api/saved-searches", expect=OK_NO_LULEA),
    ("POST", "/api/saved-searches"): Case(
        [
            Probe("POST", "/api/saved-searches", body={**_SAVED, "tenant": "lulea"}, expect=frozenset({403})),
            Probe(
                "POST",
                "/api/saved-searches",
                body={**_SAVED, "visibility": "region"},
                expect=frozenset({403}),
            ),
            # a rule over Boden's own events only: the schedule is checked, nothing of Luleå's shows
            Probe(
                "POST",
                "/api/saved-searches",
                body={
                    **_SAVED,
                    "query": "{marker} | count > 0 in 10m",
                    "schedule": "5m",
                    "visibility": "tenant",
                },
                expect=frozenset({200}),
            ),
        ]
    ),
    ("GET", "/api/saved-searches/{search_id}"): Case(
        [
            Probe("GET", "/api/saved-searches/{saved}"),
            Probe("GET", "/api/saved-searches/{saved_private}"),
            Probe("GET", "/api/saved-searches/{saved_region}"),
        ]
    ),
    ("PATCH", "/api/saved-searches/{search_id}"): Case(
        [
            Probe("PATCH", "/api/saved-searches/{saved}", body={"name": "mine now"}),
            Probe("PATCH", "/api/saved-searches/{saved_private}", body={"name": "mine now"}),
        ]
    ),
    ("DELETE", "/api/saved-searches/{search_id}"): Case(
        [
            Probe("DELETE", "/api/saved-searches/{saved}"),
            Probe("DELETE", "/api/saved-searches/{saved_private}"),
        ]
    ),
    ("POST", "/api/saved-searches/{search_id}/run"): Case(
        [
            Probe("POST", "/api/saved-searches/{saved}/run", body={}),
            Probe("POST", "/api/saved-searches/{saved_private}/run", body={}),
            Probe("POST", "/api/saved-searches/{saved_region}/run", body={"tenant": "lulea"}),
        ]
    ),
    ("POST", "/api/saved-searches/{search_id}/pin"): Case(
        [
            Probe("POST", "/api/saved-searches/{saved}/pin"),
            Probe("POST", "/api/saved-searches/{saved_private}/pin"),
        ]
    ),
    ("DELETE", "/api/saved-searches/{search_id}/pin"): _probe("DELETE", "/api/saved-searches/{saved}/pin"),
    # -- response actions (Luleå's dry-run block of 203.0.113.77 carries the marker in its reason) --
    ("POST", "/api/response/actions"): _probe(
        "POST",
        "/api/response/actions",
        body={"action": "block.address", "target": "203.0.113.78", "alert_id": "{alert}", "dry_run": True},
    ),
    ("GET", "/api/response/actions"): Case(
        [
            Probe("GET", "/api/response/actions?tenant=lulea"),
            Probe("GET", "/api/response/actions", expect=frozenset(OK_NO_LULEA)),
            Probe("GET", "/api/response/actions?case_id={case}", expect=frozenset(OK_NO_LULEA)),
        ]
    ),
    ("GET", "/api/response/actions/{action_id}"): _probe("GET", "/api/response/actions/{response_action}"),
    ("POST", "/api/response/actions/{action_id}/approve"): _probe(
        "POST", "/api/response/actions/{response_action}/approve"
    ),
    ("POST", "/api/response/actions/{action_id}/reject"): _probe(
        "POST", "/api/response/actions/{response_action}/reject", body={"note": "x"}
    ),
    ("POST", "/api/response/actions/{action_id}/retry"): _probe(
        "POST", "/api/response/actions/{response_action}/retry"
    ),
    ("POST", "/api/response/actions/{action_id}/undo"): _probe(
        "POST", "/api/response/actions/{response_action}/undo"
    ),
    ("GET", "/api/response/blocklist"): Case(
        [
            Probe("GET", "/api/response/blocklist?tenant=lulea"),
            Probe("GET", "/api/response/blocklist", expect=frozenset(OK_NO_LULEA)),
        ]
    ),
    ("POST", "/api/response/feed-token/{tenant}"): _probe("POST", "/api/response/feed-token/lulea"),
    ("PUT", "/api/response/ad-credential/{tenant}"): _probe(
        "PUT", "/api/response/ad-credential/lulea", body={"password": "x"}
    ),
    # the feed answers a firewall's token, never a session: Boden's officer gets 401 for Luleå's
    ("GET", "/feeds/blocklist/{tenant}"): Case(
        [Probe("GET", "/feeds/blocklist/lulea"), Probe("GET", "/feeds/blocklist/lulea?format=json&token=x")]
    ),
    ("GET", "/ui/cases/{case_id}/response"): _probe("GET", "/ui/cases/{case}/response"),
}


def app_routes() -> set[tuple[str, str]]:
    """(method, path) of every route of the real app, included routers and mounts too."""
    with tempfile.TemporaryDirectory() as d:
        state = open_state(f"sqlite:///{d}/state.db")  # the app keeps its session key there
        runtime = SimpleNamespace(settings=load_settings(overrides={"data_dir": d}), extras={}, state=state)
        app = create_app(runtime)  # type: ignore[arg-type]
        state.dispose()
    found: set[tuple[str, str]] = set()

    def walk(routes: list[Any], prefix: str) -> None:
        for r in routes:
            if hasattr(r, "original_router"):
                walk(r.original_router.routes, prefix + r.include_context.prefix)
            elif hasattr(r, "methods") and r.methods:
                for m in r.methods - {"HEAD"}:
                    found.add((m, prefix + r.path))
            elif hasattr(r, "path"):
                found.add(("MOUNT", prefix + r.path))

    walk(app.routes, "")
    return found


def test_every_route_has_an_isolation_case() -> None:
    missing = sorted(app_routes() - set(CASES))
    assert missing == [], f"routes without a tenant-isolation case in {__file__}: {missing}"


def _lulea_followup(server: Server, marker: str) -> dict[str, int]:
    """A follow-up plan, round and sampled access of Luleå's (reviewed by the admin); the
    access is Luleå's second event with the marker."""
    now = time.gmtime()
    line = ";".join(
        [
            time.strftime("%Y-%m-%d %H:%M:%S", now),
            "u-7",
            f"secret {marker}",
            "handlaggare",
            "IFO",
            "read",
            f"s-{marker}",
            "skyddad_folkbokforing",
            "IFO-1",
            "u-1",
            "",
            "10.20.4.17",
        ]
    )
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", now)
    with socket.create_connection(("127.0.0.1", server.ports["tcp"])) as s:
        s.sendall(f"<134>1 {stamp} lulea-host-{marker} socialsystem - - - {line}\n".encode())
    assert server.wait_count(f"s-{marker}", 1, tenant="lulea") == 1
    plan = server.api(
        "POST",
        "/api/followup/plans",
        json={
            "tenant": "lulea",
            "dataset": "socialtjanst.record_access",
            "reviewer": "admin",
            "title": f"secret {marker} plan",
            "random_sample": 5,
        },
    )
    assert plan.status_code == 200, plan.text
    drawn = server.api(
        "POST",
        f"/api/followup/plans/{plan.json()['id']}/rounds",
        json={"period": time.strftime("%Y-%m", now)},
    )
    assert drawn.status_code == 200, drawn.text
    (item,) = drawn.json()["items"]
    return {"plan": plan.json()["id"], "round": drawn.json()["id"], "item": item["id"]}


# Luleå's Microsoft 365 connector (never pulls here: no credential is set, so it asks nothing of
# Microsoft); its id contains "lulea-iso", which the content check looks for in every answer.
LULEA_M365 = """
[[sources]]
id = "m365-lulea-iso"
type = "m365"
tenant = "lulea"
m365.directory_id = "6c1f0c2e-9a4b-4d7e-8f3a-2b5c7d9e1f00"
m365.client_id = "3f2e1d0c-b9a8-4765-9432-10fedcba9876"
m365.feeds = ["Audit.Exchange", "graph.signIns"]
m365.poll_interval_s = 3600
"""


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    with running_server(Path(tmp_path_factory.mktemp("iso")), extra_toml=LULEA_M365) as server:
        marker = "iso" + uuid.uuid4().hex[:10]
        token = server.ingest_token("lulea", "lulea-iso")
        resp = httpx.post(
            f"{server.url}/services/collector/event",
            headers={"Authorization": f"Splunk {token}"},
            content=json.dumps({"event": f"Luleå secret {marker}", "host": f"lulea-host-{marker}"}),
        )
        assert resp.status_code == 200
        assert server.wait_count(marker, 1, tenant="lulea") == 1
        seq = server.search(marker, tenant="lulea")["rows"][0]["seq"]
        made = server.api(
            "POST",
            "/api/alerts",
            json={
                "tenant": "lulea",
                "rule_id": "iso-rule",
                "level": "high",
                "event_seq": seq,
                "entities": {"host.name": f"lulea-host-{marker}"},
            },
        ).json()["alerts"][0]
        followup = _lulea_followup(server, marker)
        significant = server.api("PUT", f"/api/cases/{made['case_id']}/nis2", json={"significant": True})
        assert significant.status_code == 200, significant.text
        draft = server.api("POST", f"/api/cases/{made['case_id']}/nis2/reports/early_warning")
        assert draft.status_code == 201 and f"lulea-host-{marker}" in draft.text, draft.text
        exception = server.api(
            "POST",
            "/api/exceptions",
            json={
                "alert_id": made["id"],
                "conditions": {"host.name": [f"lulea-host-{marker}"]},
                "reason": f"Luleå secret {marker}",
                "days": 1,
            },
        )
        assert exception.status_code == 200, exception.text
        tasks = server.api("POST", f"/api/cases/{made['case_id']}/template", json={"template": "lost_device"})
        assert tasks.status_code == 201 and tasks.json()["tasks"][0]["id"] == 1, tasks.text
        saved = {
            key: server.api("POST", "/api/saved-searches", json=body)
            for key, body in {
                "saved": {
                    "name": f"Luleå secret {marker}",
                    "query": f"lulea-host-{marker}",
                    "tenant": "lulea",
                    "visibility": "tenant",
                },
                "saved_private": {
                    "name": f"Boden secret {marker}",
                    "query": f"lulea-host-{marker}",
                    "tenant": "boden",
                    "visibility": "private",
                },
                "saved_region": {
                    "name": f"Region secret {marker}",
                    "query": f"lulea-host-{marker}",
                    "visibility": "region",
                },
            }.items()
        }
        assert all(r.status_code == 200 for r in saved.values()), [r.text for r in saved.values()]
        pinned = server.api("POST", f"/api/saved-searches/{saved['saved'].json()['id']}/pin")
        assert pinned.status_code == 200, pinned.text
        asset = server.api(
            "PUT",
            f"/api/assets/lulea/lulea-host-{marker}",
            json={"owner": f"Luleå secret {marker}", "criticality": "critical", "system": marker},
        )
        assert asset.status_code == 200, asset.text
        on = server.api("PUT", "/api/admin/modules/lulea", json={"response": True})
        assert on.status_code == 200, on.text
        dry = server.api(
            "POST",
            "/api/response/actions",
            json={
                "action": "block.address",
                "target": "203.0.113.77",
                "alert_id": made["id"],
                "dry_run": True,
                "reason": f"Luleå secret {marker}",
            },
        )
        assert dry.status_code == 201 and dry.json()["status"] == "dry_run", dry.text
        password = server.add_user("boden.iso", "tenant_officer", "boden")
        client = server.login("boden.iso", password)  # through the login form, its CSRF token too
        csrf = client.get("/search").text.split('name="csrf_token" value="')[1].split('"')[0]
        yield {
            "server": server,
            "client": client,
            "marker": marker,
            "seq": seq,
            "csrf": csrf,
            "alert": made["id"],
            "case": made["case_id"],
            "exception": exception.json()["id"],
            "response_action": dry.json()["id"],
            **{key: r.json()["id"] for key, r in saved.items()},
            **followup,
        }
        client.close()


@pytest.mark.parametrize("route", sorted(CASES), ids=lambda r: f"{r[0]} {r[1]}")
def test_a_boden_officer_gets_nothing_of_lulea(world: dict[str, Any], route: tuple[str, str]) -> None:
    case = CASES[route]
    if case.exempt is not None:
        assert case.exempt.why
        return
    server: Server = world["server"]
    client: httpx.Client = world["client"]
    for probe in case.probes:
        ids = {
            k: world[k]
            for k in (
                "seq",
                "marker",
                "alert",
                "case",
                "plan",
                "round",
                "item",
                "exception",
                "saved",
                "saved_private",
                "saved_region",
                "response_action",
            )
        }
        url = probe.url.format(**ids)
        headers = {"X-CSRF-Token": world["csrf"]}
        if probe.method == "GET" and url.startswith("/api/tail"):
            with client.stream("GET", url, headers=headers) as resp:
                status, text = resp.status_code, resp.read().decode()
        else:
            kwargs: dict[str, Any] = {"headers": headers}
            if isinstance(probe.body, (dict, list)):
                kwargs["json"] = json.loads(json.dumps(probe.body).replace('"{alert}"', str(world["alert"])))
            elif probe.body is not None:
                kwargs["content"] = probe.body
            resp = client.request(probe.method, url, **kwargs)
            status, text = resp.status_code, resp.text
        assert status in probe.expect, f"{probe.method} {url} → {status}: {text[:300]}"
        if probe.content_check:  # the query may echo the marker; the event's own text must not appear
            assert f"secret {world['marker']}" not in text, (
                f"{probe.method} {url} leaked Luleå's event: {text[:300]}"
            )
            assert f"lulea-host-{world['marker']}" not in text, f"{probe.method} {url} leaked Luleå's host"
            assert "lulea-iso" not in text, f"{probe.method} {url} leaked Luleå's ingest token"
    assert server.count(world["marker"], tenant="lulea") == 2  # and nothing of Luleå's was changed
