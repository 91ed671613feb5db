"""Entra ID sign-ins and directory audits: Microsoft Graph's ``signIn`` and ``directoryAudit``
resources, and the same objects inside Azure Monitor's ``SigninLogs`` / ``AuditLogs`` export
(diagnostic settings to Event Hub or storage: ``{"time", "category", "operationName",
"resultType", "properties": {<the Graph object>}}``). Sample shapes (values invented)::

    {"id":"7d3c…","createdDateTime":"2026-11-26T21:03:12Z","userPrincipalName":"anna@lulea.se","appDisplayName":"Office 365 Exchange Online","ipAddress":"81.2.69.160","status":{"errorCode":50126,"failureReason":"Invalid username or password."},…}
    {"id":"Directory_…","activityDateTime":"2026-11-26T21:04:00Z","activityDisplayName":"Add member to role","category":"RoleManagement","loggedByService":"Core Directory","result":"success","initiatedBy":{"user":{"userPrincipalName":"it-admin@lulea.se"}},"targetResources":[…]}
    {"time":"2026-11-26T21:03:12.1234567Z","category":"SignInLogs","operationName":"Sign-in activity","resultType":"50126","resultDescription":"Invalid username or password.","properties":{…}}

SigmaHQ's ``product: azure`` rules are written with Log Analytics (Sentinel) column names —
``ResultType``, ``ResultDescription``, ``Status``, ``AppDisplayName``, ``DeviceDetail.trusttype``,
``OperationName``, ``properties.message`` — so each event also carries those names, derived
from the Graph object, next to the original fields (which always win: see ``put``).
"""  # noqa: E501 - the sample lines are kept whole

from __future__ import annotations

from typing import Any

from norrvakt.event import Event, RawRecord
from norrvakt.parsers.base import flatten_json, new_event, scalar_str
from norrvakt.parsers.entra_base import (
    bare_ip,
    geo,
    obj,
    objs,
    outcome,
    put,
    record_time,
    text,
    user_domain,
    verb_type,
)

DATASET_SIGNIN = "azure.signinlogs"
DATASET_AUDIT = "azure.auditlogs"

# signIn.authenticationProtocol as Entra's portal shows it; two SigmaHQ rules look for the
# portal wording in properties.message ("Device Code", "ROPC").
_PROTOCOLS = {
    "deviceCode": "Device Code",
    "ropc": "ROPC",
    "saml20": "SAML 2.0",
    "wsFederation": "WS-Federation",
}

# Sentinel column name -> signIn property (same spelling in Graph and in Monitor's properties).
_SIGNIN_COLUMNS = (
    ("AppDisplayName", "appDisplayName"),
    ("AppId", "appId"),
    ("UserPrincipalName", "userPrincipalName"),
    ("UserDisplayName", "userDisplayName"),
    ("UserId", "userId"),
    ("IPAddress", "ipAddress"),
    ("ClientAppUsed", "clientAppUsed"),
    ("UserAgent", "userAgent"),
    ("userAgent", "userAgent"),
    ("AuthenticationRequirement", "authenticationRequirement"),
    ("ConditionalAccessStatus", "conditionalAccessStatus"),
    ("conditionalAccessStatus", "conditionalAccessStatus"),
    ("RiskState", "riskState"),
    ("RiskLevelAggregated", "riskLevelAggregated"),
    ("RiskLevelDuringSignIn", "riskLevelDuringSignIn"),
    ("ResourceDisplayName", "resourceDisplayName"),
    ("ResourceId", "resourceId"),
    ("IsInteractive", "isInteractive"),
    ("CorrelationId", "correlationId"),
)
_DEVICE_COLUMNS = (
    ("deviceId", "deviceId"),
    ("displayName", "displayName"),
    ("operatingSystem", "operatingSystem"),
    ("browser", "browser"),
    ("isCompliant", "isCompliant"),
    ("isManaged", "isManaged"),
    ("trusttype", "trustType"),  # the SigmaHQ rules spell it so
    ("trustType", "trustType"),
)


def signin_event(record: RawRecord, doc: dict[str, Any], inner: dict[str, Any], provider: str) -> Event:
    """A sign-in: ``doc`` is the whole record (kept in ``fields``), ``inner`` the signIn object
    (``doc`` itself from Graph, ``doc["properties"]`` from Azure Monitor)."""
    ts = record_time(
        record, inner if "createdDateTime" in inner else doc, ("createdDateTime", "time"), "sign-in"
    )
    fields: dict[str, str] = {}
    flatten_json(doc, "", fields)
    status = obj(inner.get("status"))
    code = status.get("errorCode", doc.get("resultType"))
    code_text = scalar_str(code) if isinstance(code, (int, str)) and not isinstance(code, bool) else ""
    reason = status.get("failureReason") or doc.get("resultDescription") or ""
    details = status.get("additionalDetails") or ""
    ok = code_text == "0"
    result = "success" if ok else "failure" if code_text else ""

    for column, key in _SIGNIN_COLUMNS:
        put(fields, column, inner.get(key))
    if code_text:
        put(fields, "ResultType", code_text)
        put(fields, "Status", "Success" if ok else "; ".join(p for p in ("Failure", str(details)) if p))
    if reason:
        put(fields, "ResultDescription", reason)
        put(fields, "event.reason", reason)
    device = obj(inner.get("deviceDetail"))
    for column, key in _DEVICE_COLUMNS:
        put(fields, f"DeviceDetail.{column}", device.get(key))
    if "networkLocationDetails" in inner:
        put(fields, "NetworkLocationDetails", text(inner.get("networkLocationDetails") or []))
    protocol = inner.get("authenticationProtocol")
    if isinstance(protocol, str) and protocol in _PROTOCOLS:
        put(fields, "properties.message", _PROTOCOLS[protocol])
    geo(fields, inner.get("location"))

    ecs = {
        "event.category": "authentication",
        "event.type": "start",
        "event.action": "Sign-in activity",
        "event.dataset": DATASET_SIGNIN,
        "event.module": "azure",
        "event.provider": provider,
        "observer.vendor": "Microsoft",
        "observer.product": "Entra ID",
    }
    if result:
        ecs["event.outcome"] = result
    upn = scalar_str(inner.get("userPrincipalName") or "")
    _user(ecs, fields, upn, inner.get("userId"), inner.get("userDisplayName"))
    ip = bare_ip(inner.get("ipAddress") or doc.get("callerIpAddress"))
    if ip:
        ecs["source.ip"] = ip
    agent = inner.get("userAgent")
    if isinstance(agent, str) and agent:
        ecs["user_agent.original"] = agent
    name = device.get("displayName")
    if isinstance(name, str) and name:
        ecs["host.name"] = name
    put(fields, "host.id", device.get("deviceId") or None)
    put(fields, "host.os.full", device.get("operatingSystem") or None)
    put(fields, "user_agent.name", device.get("browser") or None)
    app = scalar_str(inner.get("appDisplayName") or "")
    put(fields, "service.target.name", app or None)
    put(fields, "service.target.id", inner.get("appId") or None)

    where = f" from {ip}" if ip else ""
    to = f" to {app}" if app else ""
    why = f" ({code_text} {reason})".rstrip() if code_text and not ok else ""
    message = f"Sign-in of {upn or 'an unknown user'}{to}{where}: {result or 'result unknown'}{why}"
    return new_event(record, ts, message, ecs, fields)


def audit_event(record: RawRecord, doc: dict[str, Any], inner: dict[str, Any], provider: str) -> Event:
    """A directory audit (Graph ``directoryAudit``, or Monitor ``AuditLogs`` with it in
    ``properties``)."""
    ts = record_time(
        record, inner if "activityDateTime" in inner else doc, ("activityDateTime", "time"), "directory audit"
    )
    fields: dict[str, str] = {}
    flatten_json(doc, "", fields)
    activity = scalar_str(inner.get("activityDisplayName") or doc.get("operationName") or "")
    category = scalar_str(inner.get("category") or "")
    result = scalar_str(inner.get("result") or doc.get("resultType") or "")
    reason = inner.get("resultReason")
    targets = objs(inner.get("targetResources"))

    for column in (
        "properties.message",
        "ActivityDisplayName",
        "OperationName",
        "operationName",
        "activityType",
    ):
        put(fields, column, activity or None)
    put(fields, "Category", category or None)
    put(fields, "category", category or None)
    put(fields, "LoggedByService", inner.get("loggedByService"))
    put(fields, "CorrelationId", inner.get("correlationId"))
    if result:
        put(fields, "Result", result)
        put(fields, "Status", result[:1].upper() + result[1:])
        put(fields, "properties.result", result)
    if isinstance(reason, str) and reason:
        put(fields, "ResultReason", reason)
        put(fields, "event.reason", reason)
        if outcome(result) == "failure":
            put(fields, "failure_status_reason", reason)
    for item in objs(inner.get("additionalDetails")):
        key = item.get("key")
        if isinstance(key, str) and key:
            put(fields, f"additionalDetails.{key[:1].lower()}{key[1:]}", item.get("value"))
    _targets(fields, targets, inner.get("targetResources"))

    ecs = {
        "event.category": "iam" if category.endswith("Management") else "configuration",
        "event.type": verb_type(activity),
        "event.dataset": DATASET_AUDIT,
        "event.module": "azure",
        "event.provider": provider,
        "observer.vendor": "Microsoft",
        "observer.product": "Entra ID",
    }
    if activity:
        ecs["event.action"] = activity
    if outcome(result):
        ecs["event.outcome"] = outcome(result)
    initiated = obj(inner.get("initiatedBy"))
    user, app = obj(initiated.get("user")), obj(initiated.get("app"))
    upn = scalar_str(user.get("userPrincipalName") or "")
    if upn:
        _user(ecs, fields, upn, user.get("id"), user.get("displayName"))
    elif app:
        name = scalar_str(app.get("displayName") or app.get("servicePrincipalName") or "")
        if name:
            ecs["user.name"] = name
        if app.get("servicePrincipalId"):
            ecs["user.id"] = scalar_str(app["servicePrincipalId"])
    ip = bare_ip(user.get("ipAddress") or doc.get("callerIpAddress"))
    if ip:
        ecs["source.ip"] = ip
    for target in targets:
        found = target.get("userPrincipalName") or (
            target.get("displayName") if target.get("type") == "User" else ""
        )
        if isinstance(found, str) and found:
            ecs["user.target.name"] = found
            break

    by = f" by {ecs['user.name']}" if "user.name" in ecs else ""
    on = f" on {ecs['user.target.name']}" if "user.target.name" in ecs else ""
    message = f"{activity or 'Directory activity'}{by}{on}: {result or 'result unknown'}"
    return new_event(record, ts, message, ecs, fields)


def _user(ecs: dict[str, str], fields: dict[str, str], upn: str, user_id: Any, display: Any) -> None:
    if upn:
        ecs["user.name"] = upn
        domain = user_domain(upn)
        if domain:
            ecs["user.domain"] = domain
            put(fields, "user.email", upn)
    if isinstance(user_id, str) and user_id:
        ecs["user.id"] = user_id
    if isinstance(display, str) and display:
        put(fields, "user.full_name", display)


def _targets(fields: dict[str, str], targets: list[dict[str, Any]], raw: Any) -> None:
    """Target resources as the Sentinel-era rules test them: the whole list as JSON, the first
    target's type and first modified property, all modified properties, and each modified
    property's new value under its display name (``ConsentContext.IsAdminConsent`` = False)."""
    if raw is None:
        return
    put(fields, "TargetResources", raw)
    put(fields, "properties.targetResources", raw)
    if targets:
        put(fields, "targetResources.type", targets[0].get("type"))
    modified = [m for t in targets for m in objs(t.get("modifiedProperties"))]
    if not modified:
        return
    put(fields, "TargetResources.modifiedProperties", modified)
    put(
        fields,
        "TargetResources.modifiedProperties.newValue",
        ", ".join(text(m.get("newValue")) for m in modified),
    )
    put(fields, "TargetResources.ModifiedProperties.DisplayName", modified[0].get("displayName"))
    put(fields, "TargetResources.ModifiedProperties.NewValue", modified[0].get("newValue"))
    for prop in modified:
        name = prop.get("displayName")
        if isinstance(name, str) and name:
            put(fields, name, _unquoted(prop.get("newValue")))


def _unquoted(value: Any) -> Any:
    """Entra writes modified values as JSON text (``"\\"False\\""``, ``"[\\"Member\\"]"``): one
    quoted string becomes the bare string, anything else stays as written."""
    if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1]
    return value
