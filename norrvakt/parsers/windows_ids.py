"""What common Windows event ids mean: ECS action/category/type, a title, whose user it is.

    4624  Microsoft-Windows-Security-Auditing  logged-in            authentication/start
    4688  Microsoft-Windows-Security-Auditing  process-created      process/start
    1     Microsoft-Windows-Sysmon             process-created      process/start
    1102  Microsoft-Windows-Eventlog           audit-log-cleared    configuration/deletion

Data, not code: adding an event id is adding a row. Security ids apply to the
Security-Auditing provider, or to an event that names no provider (some forwarders leave it
out); Sysmon ids only to the Sysmon provider, since small ids like 1 or 3 mean something
else for every other provider; other providers are looked up by (provider, id).
"""

from __future__ import annotations

SYSMON = "Microsoft-Windows-Sysmon"
SECURITY = "Microsoft-Windows-Security-Auditing"
EVENTLOG = "Microsoft-Windows-Eventlog"
SCM = "Service Control Manager"
POWERSHELL = "Microsoft-Windows-PowerShell"

# (action, category, type, title) per event id; category/type "" when ECS has none that fits.
EventInfo = tuple[str, str, str, str]
SECURITY_IDS: dict[str, EventInfo] = {
    "4624": ("logged-in", "authentication", "start", "An account was successfully logged on"),
    "4625": ("logon-failed", "authentication", "start", "An account failed to log on"),
    "4634": ("logged-out", "authentication", "end", "An account was logged off"),
    "4647": ("logged-out", "authentication", "end", "User initiated logoff"),
    "4648": (
        "logged-in-explicit",
        "authentication",
        "start",
        "A logon was attempted using explicit credentials",
    ),
    "4672": ("logged-in-special", "iam", "admin", "Special privileges assigned to new logon"),
    "4688": ("process-created", "process", "start", "A new process has been created"),
    "4689": ("process-terminated", "process", "end", "A process has exited"),
    "4697": ("service-installed", "configuration", "creation", "A service was installed in the system"),
    "4698": ("scheduled-task-created", "configuration", "creation", "A scheduled task was created"),
    "4699": ("scheduled-task-deleted", "configuration", "deletion", "A scheduled task was deleted"),
    "4702": ("scheduled-task-updated", "configuration", "change", "A scheduled task was updated"),
    "4719": ("changed-audit-config", "configuration", "change", "System audit policy was changed"),
    "4720": ("user-created", "iam", "creation", "A user account was created"),
    "4722": ("user-enabled", "iam", "change", "A user account was enabled"),
    "4723": (
        "password-change-attempt",
        "iam",
        "change",
        "An attempt was made to change an account's password",
    ),
    "4724": ("password-reset", "iam", "change", "An attempt was made to reset an account's password"),
    "4725": ("user-disabled", "iam", "change", "A user account was disabled"),
    "4726": ("user-deleted", "iam", "deletion", "A user account was deleted"),
    "4728": (
        "added-member-to-group",
        "iam",
        "change",
        "A member was added to a security-enabled global group",
    ),
    "4729": (
        "removed-member-from-group",
        "iam",
        "change",
        "A member was removed from a security-enabled global group",
    ),
    "4732": (
        "added-member-to-group",
        "iam",
        "change",
        "A member was added to a security-enabled local group",
    ),
    "4733": (
        "removed-member-from-group",
        "iam",
        "change",
        "A member was removed from a security-enabled local group",
    ),
    "4738": ("user-changed", "iam", "change", "A user account was changed"),
    "4740": ("user-locked-out", "iam", "change", "A user account was locked out"),
    "4756": (
        "added-member-to-group",
        "iam",
        "change",
        "A member was added to a security-enabled universal group",
    ),
    "4757": (
        "removed-member-from-group",
        "iam",
        "change",
        "A member was removed from a security-enabled universal group",
    ),
    "4767": ("user-unlocked", "iam", "change", "A user account was unlocked"),
    "4768": (
        "kerberos-authentication-ticket-requested",
        "authentication",
        "start",
        "A Kerberos authentication ticket (TGT) was requested",
    ),
    "4769": (
        "kerberos-service-ticket-requested",
        "authentication",
        "start",
        "A Kerberos service ticket was requested",
    ),
    "4771": ("kerberos-preauth-failed", "authentication", "start", "Kerberos pre-authentication failed"),
    "4776": (
        "credential-validated",
        "authentication",
        "start",
        "The computer attempted to validate the credentials for an account",
    ),
    "4778": (
        "session-reconnected",
        "authentication",
        "start",
        "A session was reconnected to a Window Station",
    ),
    "4779": (
        "session-disconnected",
        "authentication",
        "end",
        "A session was disconnected from a Window Station",
    ),
    "4794": (
        "set-dsrm-password",
        "iam",
        "change",
        "An attempt was made to set the Directory Services Restore Mode administrator password",
    ),
    "5140": ("network-share-accessed", "network", "access", "A network share object was accessed"),
    "5145": (
        "network-share-object-checked",
        "network",
        "access",
        "A network share object was checked for access",
    ),
    "5156": (
        "network-connection-allowed",
        "network",
        "connection",
        "The Windows Filtering Platform has permitted a connection",
    ),
}
OTHER_IDS: dict[tuple[str, str], EventInfo] = {
    (EVENTLOG, "1102"): ("audit-log-cleared", "configuration", "deletion", "The audit log was cleared"),
    (EVENTLOG, "104"): ("audit-log-cleared", "configuration", "deletion", "The event log was cleared"),
    (SCM, "7045"): (
        "service-installed",
        "configuration",
        "creation",
        "A service was installed in the system",
    ),
    (SCM, "7036"): ("service-state-changed", "configuration", "change", "A service entered a new state"),
    (POWERSHELL, "4104"): ("script-block-logged", "process", "info", "PowerShell script block logged"),
    (POWERSHELL, "4103"): ("module-logged", "process", "info", "PowerShell module logging"),
}
SYSMON_IDS: dict[str, EventInfo] = {
    "1": ("process-created", "process", "start", "Process Create"),
    "2": ("file-creation-time-changed", "file", "change", "File creation time changed"),
    "3": ("network-connection", "network", "connection", "Network connection detected"),
    "4": ("sysmon-state-changed", "", "", "Sysmon service state changed"),
    "5": ("process-terminated", "process", "end", "Process terminated"),
    "6": ("driver-loaded", "driver", "start", "Driver loaded"),
    "7": ("image-loaded", "process", "change", "Image loaded"),
    "8": ("remote-thread-created", "process", "change", "CreateRemoteThread detected"),
    "9": ("raw-access-read", "file", "access", "RawAccessRead detected"),
    "10": ("process-accessed", "process", "access", "Process accessed"),
    "11": ("file-created", "file", "creation", "File created"),
    "12": ("registry-object-added-or-deleted", "registry", "change", "Registry object added or deleted"),
    "13": ("registry-value-set", "registry", "change", "Registry value set"),
    "14": ("registry-object-renamed", "registry", "change", "Registry object renamed"),
    "15": ("file-stream-created", "file", "creation", "File stream created"),
    "16": ("sysmon-config-changed", "configuration", "change", "Sysmon config state changed"),
    "17": ("pipe-created", "file", "creation", "Pipe Created"),
    "18": ("pipe-connected", "file", "access", "Pipe Connected"),
    "19": ("wmi-filter-registered", "configuration", "creation", "WmiEventFilter activity detected"),
    "20": ("wmi-consumer-registered", "configuration", "creation", "WmiEventConsumer activity detected"),
    "21": ("wmi-consumer-bound", "configuration", "creation", "WmiEventConsumerToFilter activity detected"),
    "22": ("dns-query", "network", "protocol", "Dns query"),
    "23": ("file-deleted", "file", "deletion", "File Delete archived"),
    "24": ("clipboard-changed", "", "", "Clipboard changed"),
    "25": ("process-tampering", "process", "change", "Process Tampering"),
    "26": ("file-delete-detected", "file", "deletion", "File Delete logged"),
    "27": ("file-executable-blocked", "file", "denied", "File Block Executable"),
    "28": ("file-shredding-blocked", "file", "denied", "File Block Shredding"),
    "29": ("file-executable-detected", "file", "creation", "File Executable Detected"),
}

# Logon-type events describe the user that logs on (Target*); others the acting user (Subject*).
TARGET_IS_USER = frozenset(
    ("4624", "4625", "4634", "4647", "4648", "4768", "4769", "4771", "4776", "4778", "4779")
)
ACCOUNT_MGMT = frozenset(
    ("4720", "4722", "4723", "4724", "4725", "4726", "4738", "4740", "4767", "4781", "4794")
)
GROUP_MEMBER = frozenset(("4728", "4729", "4732", "4733", "4746", "4747", "4751", "4752", "4756", "4757"))
LEVELS = {
    "0": "information",
    "1": "critical",
    "2": "error",
    "3": "warning",
    "4": "information",
    "5": "verbose",
}
TRANSPORTS = {"6": "tcp", "17": "udp", "1": "icmp", "58": "ipv6-icmp"}
SUMMARY_KEYS = (
    "TargetUserName", "TargetDomainName", "SubjectUserName", "User", "LogonType", "IpAddress",
    "WorkstationName", "Status", "SubStatus", "Image", "NewProcessName", "CommandLine",
    "ParentImage", "ParentProcessName", "TargetFilename", "TargetObject", "Details", "ImageLoaded",
    "SourceIp", "DestinationIp", "DestinationPort", "QueryName", "PipeName", "ServiceName",
    "TaskName", "MemberName", "MemberSid", "ShareName", "RelativeTargetName", "ScriptBlockText",
    "param1", "param2", "Data",
)  # fmt: skip
SUMMARY_MAX_ITEMS = 8
SKIP = ("", "-")  # Windows writes "-" for "no value"
