"""Microsoft 365 and Entra ID records: format ``m365`` (what the pulling connector delivers,
the feed in ``hints["m365.feed"]``), and the same records recognised by their shape when they
arrive as plain JSON (HEC, ``/ingest``, an Event Hub export). Sample records (values invented,
shaped after Microsoft's documented schemas)::

    {"Id":"4b1f…","RecordType":15,"CreationTime":"2026-11-26T21:03:12","Operation":"UserLoginFailed","OrganizationId":"…","UserType":0,"UserKey":"1003…","Workload":"AzureActiveDirectory","ResultStatus":"Failed","UserId":"anna@lulea.se","ClientIP":"81.2.69.160","ErrorNumber":"50126","ApplicationId":"00000002-0000-0ff1-ce00-000000000000"}
    {"Id":"9c1d…","RecordType":1,"CreationTime":"2026-11-26T21:05:00","Operation":"New-InboxRule","Workload":"Exchange","ResultStatus":"True","UserId":"anna@lulea.se","ClientIP":"[2001:db8::5]:50123","Parameters":[{"Name":"ForwardTo","Value":"x@example.net"}]}
    {"Id":"0a2e…","RecordType":40,"CreationTime":"2026-11-26T21:10:00","Operation":"AlertTriggered","Workload":"SecurityComplianceCenter","Name":"Suspicious inbox forwarding","Severity":"High","Status":"Active","Source":"Cloud App Security"}

Feeds (``m365.feed``) -> what the event is::

    Audit.AzureActiveDirectory, Audit.Exchange, Audit.SharePoint, Audit.General   m365.audit
    DLP.All                                                                      m365.dlp
    alert records of Audit.General (RecordType 40, AlertTriggered)               m365.alert
    graph.signIns                  azure.signinlogs     (entra.py)
    graph.directoryAudits          azure.auditlogs      (entra.py)
    graph.alerts_v2                m365.alert           (entra_alerts.py)
    graph.intune.auditEvents       intune.audit         (entra_alerts.py)
    by shape only: Azure Monitor SigninLogs/AuditLogs/UserRiskEvents/Activity log,
    Graph riskDetection            azure.signinlogs, azure.auditlogs, azure.riskdetection, azure.activitylogs

SigmaHQ's ``product: m365`` rules name Management API records ``eventSource`` (the
``Workload``), ``eventName`` (the ``Operation``; an alert's ``Name``) and ``status``
(success/failure); those aliases, ``ExtendedProperties``/``DeviceProperties`` by ``Name``, and
``Payload`` (a cmdlet with its parameters, ``New-ComplianceSearchAction -Export … -Format …``)
are added next to the original fields.
"""  # noqa: E501 - the sample lines are kept whole

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from norrvakt.event import Event, RawRecord
from norrvakt.parsers.base import ParseError, abbrev, flatten_json, load_json_object, new_event, scalar_str
from norrvakt.parsers.entra import audit_event, signin_event
from norrvakt.parsers.entra_alerts import DATASET_ALERT, activity_event, alert_event, intune_event, risk_event
from norrvakt.parsers.entra_base import bare_ip, objs, outcome, put, record_time, user_domain, verb_type

FEED_HINT = "m365.feed"
MANAGEMENT_FEEDS = (
    "Audit.AzureActiveDirectory",
    "Audit.Exchange",
    "Audit.SharePoint",
    "Audit.General",
    "DLP.All",
)
GRAPH_FEEDS = ("graph.signIns", "graph.directoryAudits", "graph.alerts_v2", "graph.intune.auditEvents")
FEEDS = MANAGEMENT_FEEDS + GRAPH_FEEDS

DATASET_AUDIT = "m365.audit"
DATASET_DLP = "m365.dlp"

# Azure Monitor diagnostic-settings categories -> which record the properties hold.
_MONITOR_SIGNIN = (
    "SignInLogs",
    "NonInteractiveUserSignInLogs",
    "ServicePrincipalSignInLogs",
    "ManagedIdentitySignInLogs",
)
_MONITOR_ACTIVITY = ("Administrative", "Security", "Policy", "ServiceHealth", "Alert", "Recommendation",
                     "Autoscale", "ResourceHealth")  # fmt: skip

# Management API RecordType numbers (AuditLogRecordType) that are alerts and DLP matches.
_ALERT_RECORDS = frozenset((40, 47))
_DLP_RECORDS = frozenset((11, 13, 33))

Builder = Callable[[RawRecord, dict[str, Any]], Event]


def parse_m365(record: RawRecord) -> Event:
    doc = load_json_object(record, "m365")
    feed = (record.hints or {}).get(FEED_HINT, "")
    if feed:
        builder = _BY_FEED.get(feed)
        if builder is None:
            raise ParseError(
                "m365.unknown_feed",
                "m365 record of an unknown feed",
                f"hint {FEED_HINT!r} is {abbrev(feed)}: not a known feed (known: {', '.join(FEEDS)})",
            )
        return builder(record, doc)
    event = m365_event(record, doc)
    if event is None:
        raise ParseError(
            "m365.unknown_shape",
            "m365 record of an unknown shape",
            f"m365 record has no {FEED_HINT!r} hint and none of the keys of a known shape "
            "(Management API CreationTime+Workload+Operation; Graph signIn createdDateTime+"
            "userPrincipalName+appId; directoryAudit activityDateTime+activityDisplayName; "
            "alert createdDateTime+serviceSource; "
            "Intune activityDateTime+componentName; Azure Monitor time+category+properties): "
            f"got keys {abbrev(', '.join(list(doc)[:12]), 120)}",
        )
    return event


def m365_event(record: RawRecord, doc: dict[str, Any]) -> Event | None:
    """The event of a Microsoft 365 / Entra ID record recognised by its keys, or None when
    ``doc`` is not one (cheap: a few key lookups, so :mod:`json_event` asks for every object)."""
    if "CreationTime" in doc and "Workload" in doc and "Operation" in doc:
        return management_event(record, doc)
    if "properties" in doc and "category" in doc and "time" in doc:
        props = doc["properties"]
        category = doc["category"]
        if not isinstance(props, dict) or not isinstance(category, str):
            return None
        if category in _MONITOR_SIGNIN:
            return signin_event(record, doc, props, category)
        if category == "AuditLogs":
            return audit_event(record, doc, props, category)
        if category == "UserRiskEvents":
            return risk_event(record, doc, props, category)
        if category in _MONITOR_ACTIVITY and "operationName" in doc and "resourceId" in doc:
            return activity_event(record, doc)
        return None
    if "createdDateTime" in doc:
        if "userPrincipalName" in doc and "appId" in doc:
            return signin_event(record, doc, doc, "signIns")
        if "serviceSource" in doc:
            return alert_event(record, doc)
    if "activityDateTime" in doc:
        if "activityDisplayName" in doc and "loggedByService" in doc:
            return audit_event(record, doc, doc, "directoryAudits")
        if "componentName" in doc and "activityType" in doc:
            return intune_event(record, doc)
    if "riskEventType" in doc and ("detectedDateTime" in doc or "activityDateTime" in doc):
        return risk_event(record, doc, doc, "riskDetections")
    return None


def management_event(record: RawRecord, doc: dict[str, Any]) -> Event:
    """A record of the Office 365 Management Activity API (common schema + its workload's)."""
    ts = record_time(record, doc, ("CreationTime",), "Management Activity API")
    fields: dict[str, str] = {}
    flatten_json(doc, "", fields)
    operation = scalar_str(doc.get("Operation") or "")
    workload = scalar_str(doc.get("Workload") or "")
    kind = doc.get("RecordType")
    if not isinstance(kind, int) or isinstance(kind, bool):
        kind = None  # a number in every documented record; anything else is kept as a field only
    alert = kind in _ALERT_RECORDS or operation in ("AlertTriggered", "AlertEntityGenerated")
    dlp = (
        kind in _DLP_RECORDS
        or operation.startswith("Dlp")
        or (record.hints or {}).get(FEED_HINT) == "DLP.All"
    )
    result = outcome(doc.get("ResultStatus"))
    if operation == "UserLoginFailed":
        result = "failure"
    elif operation == "UserLoggedIn" and not result:
        result = "success"

    for name, value in _named(doc.get("ExtendedProperties")) + _named(doc.get("DeviceProperties")):
        put(fields, name, value)
    put(fields, "eventSource", workload or None)
    put(fields, "eventName", (scalar_str(doc.get("Name") or "") if alert else "") or operation or None)
    put(fields, "status", "success" if alert else result or None)
    payload = _cmdlet(operation, doc.get("Parameters"))
    if payload:
        put(fields, "Payload", payload)
    if workload == "AzureActiveDirectory" and operation in ("UserLoggedIn", "UserLoginFailed"):
        error = doc.get("ErrorNumber")
        put(fields, "ResultType", error if isinstance(error, (str, int)) and error != "" else "0")
        put(fields, "userAgent", fields.get("UserAgent"))
        put(fields, "AppId", doc.get("ApplicationId"))
    if alert:
        put(fields, "AlertName", doc.get("Name"))

    ecs = {
        "event.dataset": DATASET_ALERT if alert else DATASET_DLP if dlp else DATASET_AUDIT,
        "event.module": "m365",
        "event.provider": workload or "m365",
        "observer.vendor": "Microsoft",
        "observer.product": "Microsoft 365",
    }
    ecs.update(_category(workload, operation, alert, dlp))
    if operation:
        ecs["event.action"] = operation
    if result:
        ecs["event.outcome"] = result
    if kind is not None:
        ecs["event.code"] = str(kind)
    user = scalar_str(doc.get("UserId") or "")
    if user:
        ecs["user.name"] = user
        if user_domain(user):
            ecs["user.domain"] = user_domain(user)
            put(fields, "user.email", user)
    key = doc.get("UserKey")
    if isinstance(key, str) and key:
        ecs["user.id"] = key
    ip = (
        bare_ip(doc.get("ClientIP"))
        or bare_ip(doc.get("ActorIpAddress"))
        or bare_ip(doc.get("ClientIPAddress"))
    )
    if ip:
        ecs["source.ip"] = ip
    agent = fields.get("UserAgent") or doc.get("ClientInfoString")
    if isinstance(agent, str) and agent:
        ecs["user_agent.original"] = agent
    if alert and doc.get("Name"):
        ecs["rule.name"] = scalar_str(doc["Name"])
    elif dlp:
        rule = _dlp_rule(doc.get("PolicyDetails"))
        if rule:
            ecs["rule.name"] = rule
    target = doc.get("ObjectId")
    on = f" on {target}" if isinstance(target, str) and target and not alert else ""
    what = f"alert {doc.get('Name')!s}" if alert else operation or "activity"
    status = doc.get("ResultStatus") or result or "result unknown"
    message = f"{workload or 'Microsoft 365'}: {what}{on} by {user or 'unknown'}: {status}"
    return new_event(record, ts, message, ecs, fields)


def _category(workload: str, operation: str, alert: bool, dlp: bool) -> dict[str, str]:
    if alert or dlp:
        return {"event.category": "intrusion_detection", "event.type": "info"}
    if operation in ("UserLoggedIn", "UserLoginFailed"):
        return {"event.category": "authentication", "event.type": "start"}
    if workload in ("SharePoint", "OneDrive"):
        return {
            "event.category": "file",
            "event.type": verb_type(operation) if " " in operation else "access",
        }
    if workload == "Exchange":
        return {"event.category": "email", "event.type": "info"}
    if workload == "AzureActiveDirectory":
        return {"event.category": "iam", "event.type": verb_type(operation)}
    return {"event.category": "configuration", "event.type": "info"}


def _named(value: Any) -> list[tuple[str, Any]]:
    """``[{"Name": "RequestType", "Value": "OAuth2:Authorize"}]`` -> [(RequestType, …)]."""
    out = []
    for item in objs(value):
        name = item.get("Name")
        if isinstance(name, str) and name and "Value" in item:
            out.append((name, item["Value"]))
    return out


def _cmdlet(operation: str, parameters: Any) -> str:
    """A cmdlet record (Exchange / Security & Compliance admin audit) as the command line it
    stands for: the operation, then ``-Name Value`` per parameter."""
    params = _named(parameters)
    if not params:
        return ""
    return " ".join(
        [operation, *(f"-{n} {scalar_str(v) if not isinstance(v, (dict, list)) else v}" for n, v in params)]
    )


def _dlp_rule(details: Any) -> str:
    for policy in objs(details):
        for rule in objs(policy.get("Rules")):
            name = rule.get("RuleName")
            if isinstance(name, str) and name:
                return name
        name = policy.get("PolicyName")
        if isinstance(name, str) and name:
            return name
    return ""


def _graph(
    builder: Callable[[RawRecord, dict[str, Any], dict[str, Any], str], Event], provider: str
) -> Builder:
    return lambda record, doc: builder(record, doc, doc, provider)


_BY_FEED: dict[str, Builder] = {
    **{feed: management_event for feed in MANAGEMENT_FEEDS},
    "graph.signIns": _graph(signin_event, "signIns"),
    "graph.directoryAudits": _graph(audit_event, "directoryAudits"),
    "graph.alerts_v2": alert_event,
    "graph.intune.auditEvents": intune_event,
}
