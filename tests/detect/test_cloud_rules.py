"""SigmaHQ's ``product: azure`` and ``product: m365`` rules, and Norrvakt's own (rules/m365.yml),
on Microsoft 365 / Entra ID records parsed by the real parser: each service and feed has a
rule that fires on a positive record and stays silent on a negative one. The records are our
own, shaped after Microsoft's documented schemas; the SigmaHQ rules are read from
../shared/data (skipped with the reason when it is absent)."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import orjson
import pytest

from norrvakt.detect.detection import DetectionEngine, builtin_rules_dir
from norrvakt.detect.engine import RuleSet
from norrvakt.event import Event, RawRecord
from norrvakt.parsers import parse_record
from tests.conftest import shared_data

RECEIVED = 1_795_729_500_000_000  # 2026-11-26T21:45:00Z
TENANT = "lulea"

SIGNIN: dict[str, Any] = {
    "id": "5e0d6c1a-1111-4c3e-9a51-0a1b2c3d4e01",
    "createdDateTime": "2026-11-26T21:00:00Z",
    "userPrincipalName": "anna.berg@lulea.se",
    "userId": "0c1b2a39-2222-4d4e-8f90-1a2b3c4d5e6f",
    "appId": "00000002-0000-0ff1-ce00-000000000000",
    "appDisplayName": "Office 365 Exchange Online",
    "ipAddress": "81.2.69.160",
    "clientAppUsed": "Browser",
    "userAgent": "Mozilla/5.0 (Windows NT 10.0; Win64; x64)",
    "conditionalAccessStatus": "success",
    "authenticationRequirement": "multiFactorAuthentication",
    "riskState": "none",
    "status": {"errorCode": 0},
    "deviceDetail": {"deviceId": "a1b2", "isCompliant": True, "trustType": "Azure AD joined"},
}
AUDIT: dict[str, Any] = {
    "id": "Directory_1",
    "category": "RoleManagement",
    "result": "success",
    "activityDisplayName": "Add member to role",
    "activityDateTime": "2026-11-26T21:00:00Z",
    "loggedByService": "Core Directory",
    "initiatedBy": {"user": {"userPrincipalName": "it-admin@lulea.se", "ipAddress": "10.20.1.9"}},
    "targetResources": [
        {
            "type": "User",
            "userPrincipalName": "erik.lind@lulea.se",
            "modifiedProperties": [
                {"displayName": "Role.DisplayName", "oldValue": None, "newValue": '"Global Administrator"'}
            ],
        }
    ],
}
MANAGEMENT: dict[str, Any] = {
    "CreationTime": "2026-11-26T21:00:00",
    "Id": "4b1f2c3d-1111-4e5f-8a9b-0c1d2e3f4a01",
    "RecordType": 15,
    "Operation": "UserLoggedIn",
    "ResultStatus": "Success",
    "Workload": "AzureActiveDirectory",
    "UserId": "anna.berg@lulea.se",
    "UserKey": "10032001A2B3C4D6",
    "ClientIP": "81.2.69.160",
    "ObjectId": "00000003-0000-0000-c000-000000000000",
}
ALERT: dict[str, Any] = {
    "CreationTime": "2026-11-26T21:00:00",
    "Id": "0a2e3f4a-4444-4b5c-8d9e-0f1a2b3c4d01",
    "RecordType": 40,
    "Operation": "AlertTriggered",
    "ResultStatus": "Succeeded",
    "Workload": "SecurityComplianceCenter",
    "UserId": "SecurityComplianceAlerts",
    "Name": "Suspicious inbox forwarding",
    "Severity": "Medium",
    "Source": "Cloud App Security",
    "Status": "Active",
}
MONITOR_SIGNIN: dict[str, Any] = {
    "time": "2026-11-26T21:00:00.1234567Z",
    "resourceId": "/tenants/9d8c7b6a-0000-4e5f-8a9b-0c1d2e3f4a5b/providers/Microsoft.aadiam",
    "operationName": "Sign-in activity",
    "category": "SignInLogs",
    "resultType": "50074",
    "resultDescription": "Strong Authentication is required.",
    "callerIpAddress": "81.2.69.160",
    "properties": {
        "createdDateTime": "2026-11-26T21:00:00.1234567+00:00",
        "userPrincipalName": "anna.berg@lulea.se",
        "appId": "00000002-0000-0ff1-ce00-000000000000",
        "ipAddress": "81.2.69.160",
        "status": {"errorCode": 50074, "failureReason": "Strong Auth required (interrupt)."},
    },
}
ACTIVITY: dict[str, Any] = {
    "time": "2026-11-26T21:00:00Z",
    "resourceId": "/SUBSCRIPTIONS/0A1B/RESOURCEGROUPS/RG-IT/PROVIDERS/MICROSOFT.KEYVAULT/VAULTS/KV-LULEA",
    "operationName": "MICROSOFT.KEYVAULT/VAULTS/DELETE",
    "category": "Administrative",
    "resultType": "Success",
    "callerIpAddress": "81.2.69.160",
    "properties": {"statusCode": "OK"},
}
RISK: dict[str, Any] = {
    "id": "6d7e",
    "riskEventType": "unlikelyTravel",
    "riskLevel": "medium",
    "riskState": "atRisk",
    "detectedDateTime": "2026-11-26T21:00:00Z",
    "userPrincipalName": "anna.berg@lulea.se",
    "ipAddress": "203.0.113.77",
}


def merged(base: dict[str, Any], **changes: Any) -> dict[str, Any]:
    out = orjson.loads(orjson.dumps(base))
    for key, value in changes.items():
        out[key] = value
    return out


def parsed(doc: dict[str, Any], feed: str | None, fmt: str = "m365") -> Event:
    hints = {"m365.feed": feed} if feed else None
    peer = f"m365:{feed}" if feed else "10.20.1.9:51000"
    record = RawRecord(TENANT, f"m365-{TENANT}", RECEIVED, peer, orjson.dumps(doc), fmt, hints=hints)
    event = parse_record(record)
    assert event.kind == "event", event.ecs.get("error.message")
    return event


@cache
def sigma_rule(relative: str) -> RuleSet:
    path = Path(shared_data("sigma", "rules", "cloud", relative))
    rules, report = RuleSet.load([path], use_cache=False)
    assert len(report.loaded) == 1, [(e.location, e.reason) for e in report.not_loaded]
    return rules


# (SigmaHQ rule, feed or None for plain JSON, positive record, negative record)
SIGMA_CASES: list[tuple[str, str | None, dict[str, Any], dict[str, Any]]] = [
    # --- azure / signinlogs: Graph signIn (graph.signIns) and Monitor SigninLogs (JSON)
    (
        "azure/signin_logs/azure_account_lockout.yml",
        "graph.signIns",
        merged(SIGNIN, status={"errorCode": 50053, "failureReason": "Account is locked"}),
        merged(SIGNIN, status={"errorCode": 50126, "failureReason": "Invalid username or password."}),
    ),
    (
        "azure/signin_logs/azure_mfa_denies.yml",
        "graph.signIns",
        merged(
            SIGNIN,
            status={
                "errorCode": 500121,
                "failureReason": "Authentication failed during strong authentication request.",
                "additionalDetails": "MFA denied; user declined the authentication",
            },
        ),
        merged(SIGNIN, status={"errorCode": 500121, "additionalDetails": "MFA completed in Azure AD"}),
    ),
    (
        "azure/signin_logs/azure_app_device_code_authentication.yml",
        "graph.signIns",
        merged(SIGNIN, authenticationProtocol="deviceCode"),
        merged(SIGNIN, authenticationProtocol="none"),
    ),
    (
        "azure/signin_logs/azure_ad_sign_ins_from_noncompliant_devices.yml",
        "graph.signIns",
        merged(SIGNIN, deviceDetail={"deviceId": "a1b2", "isCompliant": False}),
        SIGNIN,
    ),
    (
        "azure/signin_logs/azure_ad_risky_sign_ins_with_singlefactorauth_from_unknown_devices.yml",
        "graph.signIns",
        merged(
            SIGNIN,
            authenticationRequirement="singleFactorAuthentication",
            riskState="atRisk",
            deviceDetail={"deviceId": "", "trustType": ""},
        ),
        merged(SIGNIN, authenticationRequirement="singleFactorAuthentication", riskState="atRisk"),
    ),
    (
        "azure/signin_logs/azure_ad_azurehound_discovery.yml",
        "graph.signIns",
        merged(SIGNIN, userAgent="azurehound/v2.1.7"),
        merged(SIGNIN, userAgent="azurehound/v2.1.7", status={"errorCode": 50126}),
    ),
    (
        "azure/signin_logs/azure_mfa_interrupted.yml",
        None,
        MONITOR_SIGNIN,
        merged(
            MONITOR_SIGNIN,
            resultType="0",
            resultDescription="",
            properties={**MONITOR_SIGNIN["properties"], "status": {"errorCode": 0}},
        ),
    ),
    # --- azure / auditlogs: Graph directoryAudit (graph.directoryAudits) and Monitor AuditLogs
    (
        "azure/audit_logs/azure_ad_user_added_to_admin_role.yml",
        "graph.directoryAudits",
        AUDIT,
        merged(
            AUDIT,
            targetResources=[
                {
                    "type": "User",
                    "userPrincipalName": "erik.lind@lulea.se",
                    "modifiedProperties": [
                        {"displayName": "Role.DisplayName", "newValue": '"Reports Reader"'}
                    ],
                }
            ],
        ),
    ),
    (
        "azure/audit_logs/azure_app_end_user_consent.yml",
        "graph.directoryAudits",
        merged(
            AUDIT,
            category="ApplicationManagement",
            activityDisplayName="Consent to application",
            targetResources=[
                {
                    "type": "ServicePrincipal",
                    "displayName": "Mail Helper Pro",
                    "modifiedProperties": [
                        {"displayName": "ConsentContext.IsAdminConsent", "newValue": '"False"'}
                    ],
                }
            ],
        ),
        merged(
            AUDIT,
            category="ApplicationManagement",
            activityDisplayName="Consent to application",
            targetResources=[
                {
                    "type": "ServicePrincipal",
                    "modifiedProperties": [
                        {"displayName": "ConsentContext.IsAdminConsent", "newValue": '"True"'}
                    ],
                }
            ],
        ),
    ),
    (
        "azure/audit_logs/azure_auditlogs_laps_credential_dumping.yml",
        "graph.directoryAudits",
        merged(
            AUDIT,
            category="Device",
            activityDisplayName="Recover device local administrator password",
            loggedByService="Device Registration Service",
            additionalDetails=[
                {"key": "AdditionalInfo", "value": "Successfully recovered local credential by device id"}
            ],
        ),
        merged(
            AUDIT, category="Device", activityDisplayName="Update device", loggedByService="Core Directory"
        ),
    ),
    (
        "azure/audit_logs/azure_user_account_mfa_disable.yml",
        None,
        {
            "time": "2026-11-26T21:00:00Z",
            "operationName": "Update user",
            "category": "AuditLogs",
            "properties": merged(
                AUDIT,
                category="UserManagement",
                activityDisplayName="Update user",
                targetResources=[
                    {
                        "type": "User",
                        "userPrincipalName": "anna.berg@lulea.se",
                        "modifiedProperties": [
                            {
                                "displayName": "StrongAuthenticationRequirement",
                                "oldValue": '[{"RelyingParty":"*","State":1}]',
                                "newValue": '[{"RelyingParty":"*","State":0}]',
                            }
                        ],
                    }
                ],
            ),
        },
        {
            "time": "2026-11-26T21:00:00Z",
            "operationName": "Update user",
            "category": "AuditLogs",
            "properties": merged(
                AUDIT,
                category="UserManagement",
                activityDisplayName="Update user",
                targetResources=[
                    {
                        "type": "User",
                        "modifiedProperties": [
                            {"displayName": "StrongAuthenticationRequirement", "newValue": '[{"State":1}]'}
                        ],
                    }
                ],
            ),
        },
    ),
    # --- azure / activitylogs: Monitor Activity log (JSON)
    (
        "azure/activity_logs/azure_keyvault_modified_or_deleted.yml",
        None,
        ACTIVITY,
        merged(ACTIVITY, operationName="MICROSOFT.KEYVAULT/VAULTS/READ"),
    ),
    (
        "azure/activity_logs/azure_aadhybridhealth_adfs_service_delete.yml",
        None,
        merged(
            ACTIVITY,
            resourceId="/subscriptions/0a1b/resourceGroups/rg/providers/Microsoft.ADHybridHealthService/services/AdFederationService-sts.lulea.se",
            operationName="Microsoft.ADHybridHealthService/services/delete",
        ),
        merged(
            ACTIVITY,
            resourceId="/subscriptions/0a1b/resourceGroups/rg/providers/Microsoft.ADHybridHealthService/services/AdFederationService-sts.lulea.se",
            operationName="Microsoft.ADHybridHealthService/services/read",
        ),
    ),
    (
        "azure/activity_logs/azure_granting_permission_detection.yml",
        None,
        merged(ACTIVITY, operationName="Microsoft.Authorization/roleAssignments/write"),
        ACTIVITY,
    ),
    # --- azure / riskdetection and pim: Graph riskDetection (JSON)
    (
        "azure/identity_protection/azure_identity_protection_atypical_travel.yml",
        None,
        RISK,
        merged(RISK, riskEventType="unfamiliarFeatures"),
    ),
    (
        "azure/privileged_identity_management/azure_pim_too_many_global_admins.yml",
        None,
        merged(RISK, riskEventType="tooManyGlobalAdminsAssignedToTenantAlertIncident"),
        RISK,
    ),
    # --- m365 / audit: Management API (Audit.AzureActiveDirectory, Audit.General)
    (
        "m365/audit/microsoft365_bypass_conditional_access.yml",
        "Audit.AzureActiveDirectory",
        merged(
            MANAGEMENT,
            ApplicationId="9ba1a5c7-f17a-4de9-a1f1-6178c8d51223",
            ExtendedProperties=[{"Name": "RequestType", "Value": "Cmsi:Cmsi"}],
        ),
        merged(
            MANAGEMENT,
            ApplicationId="9ba1a5c7-f17a-4de9-a1f1-6178c8d51223",
            ObjectId="0000000a-0000-0000-c000-000000000000",
            ExtendedProperties=[{"Name": "RequestType", "Value": "Cmsi:Cmsi"}],
        ),
    ),
    (
        "m365/audit/microsoft365_disabling_mfa.yml",
        "Audit.AzureActiveDirectory",
        merged(
            MANAGEMENT,
            RecordType=8,
            Operation="Disable Strong Authentication.",
            ObjectId="anna.berg@lulea.se",
        ),
        merged(
            MANAGEMENT, RecordType=8, Operation="Enable Strong Authentication.", ObjectId="anna.berg@lulea.se"
        ),
    ),
    (
        "m365/audit/microsoft365_suspicious_email_delivered.yml",
        "Audit.General",
        merged(
            MANAGEMENT,
            RecordType=28,
            Workload="ThreatIntelligence",
            Operation="TIMailData",
            Directionality="Inbound",
            DeliveryAction="Delivered",
        ),
        merged(
            MANAGEMENT,
            RecordType=28,
            Workload="ThreatIntelligence",
            Operation="TIMailData",
            Directionality="Inbound",
            DeliveryAction="Blocked",
        ),
    ),
    # --- m365 / exchange: Management API Audit.Exchange
    (
        "m365/exchange/microsoft365_new_federated_domain_added_exchange.yml",
        "Audit.Exchange",
        merged(
            MANAGEMENT,
            RecordType=1,
            Workload="Exchange",
            Operation="Add-FederatedDomain",
            ResultStatus="True",
        ),
        merged(
            MANAGEMENT,
            RecordType=1,
            Workload="Exchange",
            Operation="Add-FederatedDomain",
            ResultStatus="False",
        ),
    ),
    # --- m365 / threat_management and threat_detection: Audit.General alerts and cmdlets
    (
        "m365/threat_management/microsoft365_susp_inbox_forwarding.yml",
        "Audit.General",
        ALERT,
        merged(ALERT, Name="Unusual volume of external file sharing"),
    ),
    (
        "m365/threat_management/microsoft365_pst_export_alert_using_new_compliancesearchaction.yml",
        "Audit.General",
        merged(
            MANAGEMENT,
            RecordType=18,
            Workload="SecurityComplianceCenter",
            Operation="New-ComplianceSearchAction",
            Parameters=[
                {"Name": "SearchName", "Value": "Alla brevlådor"},
                {"Name": "Export", "Value": "True"},
                {"Name": "ExchangeArchiveFormat", "Value": "PerUserPst"},
            ],
        ),
        merged(
            MANAGEMENT,
            RecordType=18,
            Workload="SecurityComplianceCenter",
            Operation="New-ComplianceSearchAction",
            Parameters=[
                {"Name": "SearchName", "Value": "Alla brevlådor"},
                {"Name": "Purge", "Value": "True"},
            ],
        ),
    ),
    (
        "m365/threat_detection/microsoft365_from_susp_ip_addresses.yml",
        "Audit.General",
        merged(ALERT, Name="Activity from suspicious IP addresses"),
        ALERT,
    ),
]


@pytest.mark.parametrize(
    ("rule", "feed", "positive", "negative"), SIGMA_CASES, ids=[Path(c[0]).stem for c in SIGMA_CASES]
)
def test_sigmahq_rule_fires_on_positive_only(
    rule: str, feed: str | None, positive: dict[str, Any], negative: dict[str, Any]
) -> None:
    rules = sigma_rule(rule)
    assert rules.match(parsed(positive, feed, "m365" if feed else "json")), "positive record did not fire"
    assert not rules.match(parsed(negative, feed, "m365" if feed else "json")), "negative record fired"


def test_every_cloud_service_and_feed_has_a_case() -> None:
    services = {c[0].split("/")[1] for c in SIGMA_CASES}
    assert services >= {
        "signin_logs",
        "audit_logs",
        "activity_logs",
        "identity_protection",
        "privileged_identity_management",
        "audit",
        "exchange",
        "threat_management",
        "threat_detection",
    }
    # graph.alerts_v2, Audit.SharePoint, DLP.All and Intune have no SigmaHQ rule: the built-in
    # rules below (and tests/detect/samples/builtin_rules.yml) cover them.
    assert {c[1] for c in SIGMA_CASES if c[1]} == {
        "graph.signIns",
        "graph.directoryAudits",
        "Audit.AzureActiveDirectory",
        "Audit.General",
        "Audit.Exchange",
    }


def test_azure_rules_never_meet_windows_events() -> None:
    rules = sigma_rule("azure/signin_logs/azure_account_lockout.yml")
    windows = parse_record(
        RawRecord(
            TENANT,
            "t",
            RECEIVED,
            "10.0.0.1:1",
            b'{"EventID":4625,"Channel":"Security","ResultType":"50053","EventTime":"2026-11-26 21:00:00"}',
            "json",
        )
    )
    assert not rules.match(windows)


def test_snapshot_azure_and_m365_rules_all_load() -> None:
    base = Path(shared_data("sigma", "rules", "cloud"))
    _, report = RuleSet.load([base / "azure", base / "m365"], use_cache=False)
    assert not report.not_loaded, [(e.location, e.reason) for e in report.not_loaded]
    assert len(report.loaded) >= 140
    assert not [e for e in report.entries if "every event" in e.reason]


# --- Norrvakt's own rules (rules/m365.yml), no data needed ----------------------------------


@pytest.fixture(scope="module")
def builtin() -> RuleSet:
    rules, report = RuleSet.load([builtin_rules_dir()], use_cache=False)
    assert not report.not_loaded
    return rules


def detections(rules: RuleSet, events: list[Event]) -> set[str]:
    for seq, event in enumerate(events, start=1):
        event.seq = seq
    engine = DetectionEngine(rules)
    return {d.rule.title for d in engine.process(events) + engine.flush()}


def _signin(second: int, user: str, code: int, ip: str = "185.220.101.45", **extra: Any) -> Event:
    doc = merged(
        SIGNIN,
        createdDateTime=f"2026-11-26T21:{second // 60:02d}:{second % 60:02d}Z",
        userPrincipalName=user,
        ipAddress=ip,
        status={"errorCode": code},
        **extra,
    )
    return parsed(doc, "graph.signIns")


SPRAY = "Entra ID password spraying from one address"
FATIGUE = "Entra ID MFA fatigue (prompts denied, then one approved)"
CONSENT = "Consent to an application with broad mail, file or directory permissions"


def test_password_spray_from_one_address_across_ten_users(builtin: RuleSet) -> None:
    events = [_signin(i, f"user{i}@lulea.se", 50126) for i in range(10)]
    assert SPRAY in detections(builtin, events)


def test_nine_users_or_ten_addresses_are_no_spray(builtin: RuleSet) -> None:
    assert SPRAY not in detections(builtin, [_signin(i, f"user{i}@lulea.se", 50126) for i in range(9)])
    spread = [_signin(i, f"user{i}@lulea.se", 50126, ip=f"185.220.101.{i}") for i in range(10)]
    assert SPRAY not in detections(builtin, spread)


def test_mfa_fatigue_denials_then_success(builtin: RuleSet) -> None:
    events = [_signin(i * 30, "anna.berg@lulea.se", 500121) for i in range(3)]
    events.append(_signin(120, "anna.berg@lulea.se", 0))
    assert FATIGUE in detections(builtin, events)


def test_mfa_denials_without_a_success_or_success_first_are_no_fatigue(builtin: RuleSet) -> None:
    denials = [_signin(60 + i * 30, "anna.berg@lulea.se", 500121) for i in range(3)]
    assert FATIGUE not in detections(builtin, denials)
    assert FATIGUE not in detections(builtin, [_signin(0, "anna.berg@lulea.se", 0), *denials])


def _consent(scope: str) -> Event:
    permissions = f'"[] => [[ConsentType: Principal, Scope: {scope}, CreatedDateTime: ]]; "'
    doc = merged(
        AUDIT,
        category="ApplicationManagement",
        activityDisplayName="Consent to application",
        targetResources=[
            {
                "type": "ServicePrincipal",
                "displayName": "Mail Helper Pro",
                "modifiedProperties": [
                    {"displayName": "ConsentContext.IsAdminConsent", "newValue": '"False"'},
                    {"displayName": "ConsentAction.Permissions", "newValue": permissions},
                ],
            }
        ],
    )
    return parsed(doc, "graph.directoryAudits")


def test_consent_with_broad_permissions(builtin: RuleSet) -> None:
    assert CONSENT in detections(builtin, [_consent("Mail.ReadWrite offline_access User.Read")])


def test_consent_to_sign_in_only_is_not_risky(builtin: RuleSet) -> None:
    assert CONSENT not in detections(builtin, [_consent("openid profile User.Read")])
