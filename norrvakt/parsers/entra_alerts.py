"""Microsoft Graph security alerts (v2), Intune audit events, Entra ID risk detections and the
Azure Activity log (Azure Monitor export). Sample shapes (values invented)::

    {"id":"da6374…","title":"Impossible travel activity","severity":"medium","status":"new","serviceSource":"microsoftDefenderForCloudApps","detectionSource":"cloudAppSecurity","category":"InitialAccess","createdDateTime":"2026-11-26T21:10:00Z","evidence":[{"@odata.type":"#microsoft.graph.security.userEvidence","userAccount":{"userPrincipalName":"anna@lulea.se"}}]}
    {"id":"1b2c…","displayName":"Delete ManagedDevice","componentName":"Devices","activityType":"Delete ManagedDevice","activityResult":"Success","activityDateTime":"2026-11-26T21:20:00Z","actor":{"userPrincipalName":"it-admin@lulea.se","ipAddress":"10.20.1.9"},"resources":[…]}
    {"id":"a1b2…","riskEventType":"unfamiliarFeatures","riskLevel":"medium","riskState":"atRisk","activityDateTime":"2026-11-26T21:00:00Z","detectedDateTime":"2026-11-26T21:01:00Z","userPrincipalName":"anna@lulea.se","ipAddress":"81.2.69.160"}
    {"time":"2026-11-26T21:30:00Z","resourceId":"/SUBSCRIPTIONS/…/PROVIDERS/MICROSOFT.KEYVAULT/VAULTS/KV1","operationName":"MICROSOFT.KEYVAULT/VAULTS/DELETE","category":"Administrative","resultType":"Success","callerIpAddress":"81.2.69.160","identity":{…},"properties":{…}}
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
    user_domain,
    verb_type,
)

DATASET_ALERT = "m365.alert"
DATASET_INTUNE = "intune.audit"
DATASET_RISK = "azure.riskdetection"
DATASET_ACTIVITY = "azure.activitylogs"

# The claim Azure Resource Manager puts the caller's sign-in name in (Activity log identity).
_UPN_CLAIM = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/upn"


def alert_event(record: RawRecord, doc: dict[str, Any]) -> Event:
    """A Graph ``security/alerts_v2`` alert (Defender XDR, Defender for Office 365 / Cloud Apps,
    Entra ID Protection, ...)."""
    ts = record_time(record, doc, ("createdDateTime", "firstActivityDateTime"), "alert")
    fields: dict[str, str] = {}
    flatten_json(doc, "", fields)
    title = scalar_str(doc.get("title") or "")
    ecs = _base(
        DATASET_ALERT, "m365", scalar_str(doc.get("serviceSource") or "alerts_v2"), "Microsoft 365 Defender"
    )
    ecs.update({"event.category": "intrusion_detection", "event.type": "info", "event.action": "alert"})
    if title:
        ecs["rule.name"] = title
    # The SigmaHQ threat_management rules name an alert eventName/eventSource/status (see m365.py).
    put(fields, "eventName", title or None)
    put(fields, "eventSource", doc.get("serviceSource"))
    put(fields, "status", doc.get("status"))
    for item in objs(doc.get("evidence")):
        kind = scalar_str(item.get("@odata.type") or "")
        if kind.endswith("userEvidence") and "user.name" not in ecs:
            account = obj(item.get("userAccount"))
            upn = scalar_str(account.get("userPrincipalName") or account.get("accountName") or "")
            if upn:
                ecs["user.name"] = upn
        elif kind.endswith("ipEvidence") and "source.ip" not in ecs:
            ip = bare_ip(item.get("ipAddress"))
            if ip:
                ecs["source.ip"] = ip
        elif kind.endswith("deviceEvidence") and "host.name" not in ecs:
            host = scalar_str(item.get("deviceDnsName") or "")
            if host:
                ecs["host.name"] = host
    who = f" ({ecs['user.name']})" if "user.name" in ecs else ""
    severity = scalar_str(doc.get("severity") or "unknown")
    return new_event(record, ts, f"Alert: {title or 'untitled'}{who}, severity {severity}", ecs, fields)


def intune_event(record: RawRecord, doc: dict[str, Any]) -> Event:
    """An Intune ``deviceManagement/auditEvents`` record."""
    ts = record_time(record, doc, ("activityDateTime",), "Intune audit event")
    fields: dict[str, str] = {}
    flatten_json(doc, "", fields)
    action = scalar_str(doc.get("activityType") or doc.get("displayName") or doc.get("activity") or "")
    ecs = _base(DATASET_INTUNE, "m365", "intune", "Intune")
    ecs.update({"event.category": "configuration", "event.type": verb_type(action)})
    if action:
        ecs["event.action"] = action
    result = outcome(doc.get("activityResult"))
    if result:
        ecs["event.outcome"] = result
    actor = obj(doc.get("actor"))
    upn = scalar_str(actor.get("userPrincipalName") or actor.get("applicationDisplayName") or "")
    _user(ecs, fields, upn, actor.get("userId"))
    ip = bare_ip(actor.get("ipAddress"))
    if ip:
        ecs["source.ip"] = ip
    names = [scalar_str(r.get("displayName") or "") for r in objs(doc.get("resources"))]
    on = f" on {', '.join(n for n in names if n)}" if any(names) else ""
    result_text = doc.get("activityResult") or "result unknown"
    message = f"Intune: {action or 'activity'}{on} by {upn or 'unknown'}: {result_text}"
    return new_event(record, ts, message, ecs, fields)


def risk_event(record: RawRecord, doc: dict[str, Any], inner: dict[str, Any], provider: str) -> Event:
    """An Entra ID Protection risk detection (Graph ``riskDetection``, or Monitor
    ``UserRiskEvents`` with it in ``properties``)."""
    ts = record_time(
        record,
        inner if "detectedDateTime" in inner else doc,
        ("detectedDateTime", "activityDateTime", "time"),
        "risk",
    )
    fields: dict[str, str] = {}
    flatten_json(doc, "", fields)
    kind = scalar_str(inner.get("riskEventType") or "")
    put(fields, "riskEventType", kind or None)
    put(fields, "RiskEventType", kind or None)
    put(fields, "RiskLevel", inner.get("riskLevel"))
    put(fields, "RiskState", inner.get("riskState"))
    ecs = _base(DATASET_RISK, "azure", provider, "Entra ID")
    ecs.update({"event.category": "intrusion_detection", "event.type": "indicator"})
    if kind:
        ecs["event.action"] = kind
        ecs["rule.name"] = kind
    upn = scalar_str(inner.get("userPrincipalName") or "")
    _user(ecs, fields, upn, inner.get("userId"))
    ip = bare_ip(inner.get("ipAddress"))
    if ip:
        ecs["source.ip"] = ip
    geo(fields, inner.get("location"))
    level = scalar_str(inner.get("riskLevel") or "unknown")
    message = f"Risk detection {kind or 'unknown'} for {upn or 'an unknown user'}, level {level}"
    return new_event(record, ts, message, ecs, fields)


def activity_event(record: RawRecord, doc: dict[str, Any]) -> Event:
    """An Azure Activity log entry (Azure Resource Manager operations, Monitor export)."""
    ts = record_time(record, doc, ("time",), "Azure Activity log")
    fields: dict[str, str] = {}
    flatten_json(doc, "", fields)
    operation = scalar_str(doc.get("operationName") or "")
    resource = scalar_str(doc.get("resourceId") or "")
    category = scalar_str(doc.get("category") or "")
    # Sentinel's AzureActivity columns, which the SigmaHQ activitylogs rules use.
    put(fields, "OperationNameValue", operation or None)
    put(fields, "CategoryValue", category or None)
    put(fields, "ResourceId", resource or None)
    put(fields, "ResourceProviderValue", _provider(resource, operation) or None)
    put(fields, "ActivityStatusValue", doc.get("resultType"))
    ecs = _base(DATASET_ACTIVITY, "azure", category or "activity", "Azure Resource Manager")
    upper = operation.upper()
    kind = (
        "deletion"
        if upper.endswith("/DELETE")
        else "change"
        if upper.endswith(("/WRITE", "/ACTION"))
        else "info"
    )
    ecs.update({"event.category": "configuration", "event.type": kind})
    if operation:
        ecs["event.action"] = operation
    result = outcome(doc.get("resultType"))
    if result:
        ecs["event.outcome"] = result
    claims = obj(obj(doc.get("identity")).get("claims"))
    caller = scalar_str(claims.get(_UPN_CLAIM) or doc.get("caller") or "")
    _user(ecs, fields, caller, None)
    ip = bare_ip(doc.get("callerIpAddress"))
    if ip:
        ecs["source.ip"] = ip
    message = f"Azure: {operation or 'operation'} on {resource or 'a resource'} by {caller or 'unknown'}"
    return new_event(record, ts, f"{message}: {doc.get('resultType') or 'result unknown'}", ecs, fields)


def _base(dataset: str, module: str, provider: str, product: str) -> dict[str, str]:
    return {
        "event.dataset": dataset,
        "event.module": module,
        "event.provider": provider,
        "observer.vendor": "Microsoft",
        "observer.product": product,
    }


def _user(ecs: dict[str, str], fields: dict[str, str], upn: str, user_id: Any) -> None:
    if upn:
        ecs["user.name"] = upn
        if user_domain(upn):
            ecs["user.domain"] = user_domain(upn)
            put(fields, "user.email", upn)
    if isinstance(user_id, str) and user_id:
        ecs["user.id"] = user_id


def _provider(resource: str, operation: str) -> str:
    """``Microsoft.KeyVault`` from ``/subscriptions/…/providers/Microsoft.KeyVault/vaults/kv1``,
    else the first segment of the operation name."""
    lower = resource.lower()
    at = lower.rfind("/providers/")
    if at >= 0:
        return resource[at + len("/providers/") :].split("/", 1)[0]
    return operation.split("/", 1)[0] if "/" in operation else ""
