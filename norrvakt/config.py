"""Settings: one TOML file, documented defaults, validated all at once.

Every setting is declared once below (name, type, default, help) and that declaration is what
the loader validates, what `norrvakt config defaults` prints and what docs/configuration.md
lists — a test fails when they drift apart. Validation collects *all* problems and reports
them together as ``key: bad value — why``.

Example::

    data_dir = "var"
    timezone = "Europe/Stockholm"

    [server]
    port = 8080

    [[sources]]
    id = "syslog-tcp"
    type = "syslog"
    protocol = "tcp"
    port = 5514
    tenant = "lulea"
    networks = { "10.20.0.0/16" = "boden" }
"""

from __future__ import annotations

import ipaddress
import re
import tomllib
import zoneinfo
from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any

from norrvakt.event import SYSTEM_TENANT

MUNICIPALITIES: dict[str, str] = {
    "arjeplog": "Arjeplog",
    "arvidsjaur": "Arvidsjaur",
    "boden": "Boden",
    "gallivare": "Gällivare",
    "haparanda": "Haparanda",
    "jokkmokk": "Jokkmokk",
    "kalix": "Kalix",
    "kiruna": "Kiruna",
    "lulea": "Luleå",
    "pajala": "Pajala",
    "pitea": "Piteå",
    "alvsbyn": "Älvsbyn",
    "overkalix": "Överkalix",
    "overtornea": "Övertorneå",
}

_TENANT_ID = re.compile(r"^[a-z][a-z0-9_-]{1,31}$")
_EMAIL = re.compile(r"^[^@\s,;<>]+@[^@\s,;<>]+\.[^@\s,;<>]+$")  # what a report may be sent to


class ConfigError(ValueError):
    """One or more settings are invalid. ``problems`` lists each as (key, message)."""

    def __init__(self, problems: list[tuple[str, str]], origin: str = "") -> None:
        self.problems = problems
        where = f" in {origin}" if origin else ""
        lines = [f"{len(problems)} invalid setting(s){where}:"]
        lines += [f"  {key}: {msg}" for key, msg in problems]
        super().__init__("\n".join(lines))


def _doc(text: str) -> dict[str, str]:
    return {"doc": text}


@dataclass(frozen=True)
class ServerSettings:
    host: str = field(default="127.0.0.1", metadata=_doc("Address the web console and HTTP API listen on."))
    port: int = field(default=8080, metadata=_doc("Port of the web console, the API and HTTP ingest."))
    ingest_port: int = field(
        default=0,
        metadata=_doc(
            "A second port, on host, for HTTP ingest only (HEC, _bulk, /ingest, /api/ingest, OTLP "
            "/v1/logs; everything else 404): its requests are received, read and parsed in the worker "
            "processes, so HTTP senders use every core. 0 = off: HTTP ingest on port only, received "
            "by the node. The ingest routes stay on port either way."
        ),
    )
    trusted_proxies: list[str] = field(
        default_factory=list,
        metadata=_doc(
            "Reverse proxies (addresses or CIDR networks) whose X-Forwarded-For and X-Forwarded-Proto "
            "are believed: the audit trail and the login throttle then see the real client. From "
            "anyone else the headers are ignored. Empty = none."
        ),
    )
    secure_cookies: bool = field(
        default=False,
        metadata=_doc(
            "Mark the session and login cookies Secure always (behind a TLS proxy). They are Secure "
            "anyway when the request came over https or public_url is https."
        ),
    )
    public_url: str = field(
        default="", metadata=_doc("URL users open, if different from http://host:port (behind a proxy).")
    )
    api_docs: str = field(
        default="login",
        metadata=_doc(
            "Who may read the API documentation (/api/docs, /api/openapi.json): login (signed-in "
            "users and API tokens), public, or off."
        ),
    )
    max_connections: int = field(
        default=0,
        metadata=_doc(
            "Open connections to the web server at most; 0 = an equal share of the descriptor budget "
            "(logged at start). Beyond, a new connection is closed at once and counted."
        ),
    )
    max_connections_per_peer: int = field(
        default=0,
        metadata=_doc(
            "Open connections from one address (IPv6: one /64) at most; 0 = an eighth of "
            "max_connections. Behind a reverse proxy, set it to max_connections."
        ),
    )
    idle_timeout_s: float = field(
        default=5.0,
        metadata=_doc("Keep-alive: close a connection idle this long after a response (whole seconds)."),
    )
    request_head_timeout_s: float = field(
        default=10.0,
        metadata=_doc(
            "A request line and headers must arrive within this time of connecting or of the "
            "previous response, however slowly the bytes trickle in (slowloris)."
        ),
    )
    read_timeout_s: float = field(
        default=30.0, metadata=_doc("Close a connection whose request body stalls this long.")
    )
    workers: int = field(
        default=0,
        metadata=_doc(
            "Parse worker processes beside the node: 0 = one per core. Received records are parsed "
            "and normalised there; the node journals, stores and detects. While no worker is ready "
            "(at start, or after one died) the node parses in its own process."
        ),
    )
    receive_in_workers: bool = field(
        default=True,
        metadata=_doc(
            "The worker processes also accept the stream listeners' connections (syslog TCP/TLS, "
            "RELP) on the node's listening sockets, and frame and parse them there; the node "
            "journals what they receive and they acknowledge it once durable. The node accepts "
            "itself only while no worker does; it admits every connection under the listener's "
            "caps. UDP syslog, and HTTP ingest on port, are received by the node; ingest_port is lent "
            "to the workers as well."
        ),
    )
    worker_batch_timeout_s: float = field(
        default=30.0,
        metadata=_doc(
            "A worker that holds a batch longer than this (stopped, or stuck in a parse), or that "
            "leaves the node's ping unanswered this long while it holds connections, is killed; "
            "its batches are parsed in the node, its senders reconnect, and a new worker starts."
        ),
    )
    fd_reserve: int = field(
        default=512,
        metadata=_doc(
            "File descriptors never given to connections: kept for the journal, store, state, "
            "TLS files and checkpoints. The rest of the open-file limit is the connection budget."
        ),
    )
    max_body_bytes: int = field(
        default=16 * 1024 * 1024,
        metadata=_doc(
            "HTTP ingest: largest request body as sent (compressed or not). A larger one is refused "
            "with 413 as soon as the count passes it, in the protocol's own error format."
        ),
    )
    max_decompressed_bytes: int = field(
        default=64 * 1024 * 1024,
        metadata=_doc(
            "HTTP ingest: largest body after gzip/deflate decoding (a gzip bomb stops here with 413). "
            "An uncompressed body is held to the smaller of this and max_body_bytes."
        ),
    )
    max_event_bytes: int = field(
        default=1024 * 1024,
        metadata=_doc(
            "HTTP ingest: largest single event (HEC event, _bulk document, JSON line). A longer one "
            "is not parsed; its first max_event_bytes are kept as a pipeline_error event."
        ),
    )


@dataclass(frozen=True)
class JournalSettings:
    segment_mb: int = field(default=64, metadata=_doc("Size at which a journal segment file is closed."))
    fsync: bool = field(
        default=True,
        metadata=_doc(
            "fsync before acknowledging senders. Off only for benchmarks: acks then survive "
            "a process crash but not a power loss."
        ),
    )
    group_commit_ms: float = field(
        default=2.0,
        metadata=_doc("How long a commit waits for more records before fsync (latency vs. IOPS)."),
    )


@dataclass(frozen=True)
class StoreSettings:
    dsn: str = field(
        default="",
        metadata=_doc(
            "ClickHouse address. Empty = embedded chDB under <data_dir>/store; "
            "http://user:pass@host:8123 for a server."
        ),
    )
    database: str = field(default="norrvakt", metadata=_doc("Database holding the events table."))
    retention_days: int = field(
        default=395,
        metadata=_doc(
            "Days events stay searchable in the store (TTL); 0 = forever. "
            "The journal keeps its own retention."
        ),
    )
    batch_rows: int = field(default=20000, metadata=_doc("Maximum rows per insert into the store."))


@dataclass(frozen=True)
class IntegritySettings:
    enabled: bool = field(
        default=True,
        metadata=_doc(
            "Merkle tree and checkpoints. false only to measure their cost: nothing is provable then."
        ),
    )
    checkpoint_every_events: int = field(
        default=10000, metadata=_doc("Sign a checkpoint after this many new records of a tenant.")
    )
    checkpoint_every_seconds: float = field(
        default=60.0,
        metadata=_doc("Sign a checkpoint of every tenant this often, also when nothing arrived."),
    )
    witnesses: list[str] = field(
        default_factory=lambda: ["dir:{data_dir}-witness"],
        metadata=_doc(
            "Where checkpoints are copied: dir:/path (another machine's share, the e-archive) or an "
            "http(s):// URL (e.g. `norrvakt witness serve` on another host). {data_dir} is replaced; "
            "the default is a sibling folder, which verify reports as a warning — use another machine "
            "in production."
        ),
    )
    verify_every_minutes: float = field(
        default=60.0,
        metadata=_doc("Run the full verification in the background this often (0 = never)."),
    )
    signing_key_file: str = field(
        default="",
        metadata=_doc(
            "Ed25519 private key (PEM) to sign checkpoints with, read once at start — keep it outside "
            "the data directory, unreadable to its users (docs/operations.md). Empty: a key generated "
            "under <data_dir>/keys."
        ),
    )


@dataclass(frozen=True)
class RetentionSettings:
    default_days: int = field(
        default=395,
        metadata=_doc("How long the journal keeps a record before it may be disposed of (13 months)."),
    )
    tenant_days: dict[str, int] = field(
        default_factory=dict, metadata=_doc("Tenant → its own default, e.g. { boden = 730 }.")
    )
    class_days: dict[str, int] = field(
        default_factory=lambda: {"health.": 1825, "socialtjanst.": 1825},
        metadata=_doc(
            "event.dataset prefix → days, the longest matching prefix wins (health-record access logs "
            "5 years, Patientdatalagen / HSLF-FS 2016:40)."
        ),
    )


@dataclass(frozen=True)
class DetectionSettings:
    enabled: bool = field(default=True, metadata=_doc("Run the rules on every stored event."))
    builtin: bool = field(default=True, metadata=_doc("Load Norrvakt's built-in rules (docs/rules.md)."))
    rule_dirs: list[str] = field(
        default_factory=list,
        metadata=_doc(
            "More Sigma rule folders, e.g. a SigmaHQ checkout's rules/windows. {data_dir} is replaced."
        ),
    )
    live_status: list[str] = field(
        default_factory=lambda: ["stable", "test"],
        metadata=_doc("Statuses of the loaded Sigma rules that run live (docs/rules.md, What runs live)."),
    )
    live_min_level: str = field(
        default="medium", metadata=_doc("The lowest level of a loaded Sigma rule that runs live.")
    )
    live_packs: list[str] = field(
        default_factory=lambda: ["core", "emerging-threats", "local"],
        metadata=_doc(
            "Packs whose rules run live: core, emerging-threats, threat-hunting, compliance, dfir, "
            "placeholder, deprecated (SigmaHQ's folders), local (other folders). Built-in rules always."
        ),
    )
    placeholders: dict[str, dict[str, list[str]]] = field(
        default_factory=dict,
        metadata=_doc(
            'Values of the %placeholders% of the Sigma expand modifier: tenant (or "*" for all) → name → '
            'values, e.g. [detection.placeholders.lulea] admins = ["adm-*"] (docs/rules.md).'
        ),
    )
    intel_dir: str = field(
        default="{data_dir}/intel",
        metadata=_doc("Threat-intel lists (CSV, STIX 2.1, MISP JSON), reloaded on change."),
    )
    source_health: bool = field(default=True, metadata=_doc("Alert when a source or host goes silent."))
    work_start_hour: int = field(default=7, metadata=_doc("Working hours start (norrvakt.after_hours)."))
    work_end_hour: int = field(default=18, metadata=_doc("Working hours end."))
    baseline_days: int = field(
        default=30,
        metadata=_doc("Days behind a user's record-access volume baseline (improper use, docs/rules.md)."),
    )
    after_hours_accesses: int = field(
        default=5,
        metadata=_doc("Off-hours record accesses by one user in one night that raise an alert."),
    )
    rule_test_seconds: float = field(
        default=30.0,
        metadata=_doc(
            "Wall-clock budget of one rule test (POST /api/rules/test); then it stops and answers "
            "with what it scanned so far."
        ),
    )
    content_release_url: str = field(
        default="https://api.github.com/repos/SigmaHQ/sigma/releases/latest",
        metadata=_doc("GitHub releases API answer `norrvakt rules update` reads (docs/rules.md)."),
    )
    content_packages: list[str] = field(
        default_factory=lambda: [
            "sigma_core",
            "sigma_core+",
            "sigma_emerging_threats_addon",
            "sigma_all_rules",
        ],
        metadata=_doc("Release zips (without .zip) `norrvakt rules update` fetches and keeps."),
    )
    content_timeout_s: float = field(
        default=30.0, metadata=_doc("Network timeout of `norrvakt rules update` (5 s with --if-reachable).")
    )
    content_max_bytes: int = field(
        default=100 * 1024 * 1024, metadata=_doc("Largest content zip taken (download or import), bytes.")
    )
    content_max_unpacked_bytes: int = field(
        default=400 * 1024 * 1024,
        metadata=_doc("Largest uncompressed total of one content zip or folder, bytes (zip bombs)."),
    )


@dataclass(frozen=True)
class OidcSettings:
    issuer: str = field(default="", metadata=_doc("OpenID Connect issuer URL; empty = single sign-on off."))
    client_id: str = field(default="", metadata=_doc("Client id registered at the provider."))
    client_secret: str = field(
        default="", metadata=_doc("Client secret (or read it from NORRVAKT_OIDC_SECRET).")
    )
    scopes: str = field(default="openid profile", metadata=_doc("Scopes to ask for."))
    username_claim: str = field(default="preferred_username", metadata=_doc("Claim used as the user name."))
    roles_claim: str = field(default="groups", metadata=_doc("Claim listing the person's groups or roles."))
    role_map: dict[str, str] = field(
        default_factory=dict,
        metadata=_doc("Value of roles_claim → role (admin, soc_analyst, tenant_officer, auditor)."),
    )
    tenants_claim: str = field(
        default="municipality", metadata=_doc("Claim naming a tenant officer's tenant(s).")
    )


@dataclass(frozen=True)
class M365SourceSettings:
    """A Microsoft 365 / Entra ID connector (``type = "m365"``; docs/sources.md)."""

    directory_id: str = field(
        default="", metadata=_doc("m365: the municipality's Entra ID tenant (directory) id.")
    )
    client_id: str = field(
        default="",
        metadata=_doc(
            "m365: application (client) id; its secret or certificate: `norrvakt m365 set-credential`."
        ),
    )
    feeds: list[str] = field(
        default_factory=lambda: [
            "Audit.AzureActiveDirectory",
            "Audit.Exchange",
            "Audit.SharePoint",
            "Audit.General",
            "DLP.All",
            "graph.signIns",
            "graph.directoryAudits",
            "graph.alerts_v2",
            "graph.intune.auditEvents",
        ],
        metadata=_doc("m365: Management Activity API content types and graph.* feeds to pull."),
    )
    poll_interval_s: float = field(default=60.0, metadata=_doc("m365: seconds between pulls."))
    window_minutes: float = field(
        default=60.0, metadata=_doc("m365: time window per listing (at most 1440).")
    )
    overlap_minutes: float = field(
        default=10.0,
        metadata=_doc("m365: each window overlaps the last (late content, clock skew); deduplicated."),
    )
    graph_delay_minutes: float = field(
        default=5.0,
        metadata=_doc("m365: Graph windows end this long before now (sign-ins are listed minutes late)."),
    )
    initial_lookback_hours: float = field(
        default=24.0, metadata=_doc("m365: how far back a new connector starts (at most 7 days).")
    )
    stale_after_minutes: float = field(
        default=60.0,
        metadata=_doc("m365: a source-health alert when a feed has not been pulled this long."),
    )
    login_url: str = field(
        default="https://login.microsoftonline.com", metadata=_doc("m365: Entra ID login URL.")
    )
    manage_url: str = field(
        default="https://manage.office.com", metadata=_doc("m365: Office 365 Management Activity API URL.")
    )
    graph_url: str = field(default="https://graph.microsoft.com", metadata=_doc("m365: Microsoft Graph URL."))
    ca_file: str = field(
        default="", metadata=_doc("m365: PEM CA to trust for those URLs; empty = the system's.")
    )


@dataclass(frozen=True)
class SourceSettings:
    id: str = field(default="", metadata=_doc("Unique name of this source; shown on every event it yields."))
    type: str = field(
        default="syslog",
        metadata=_doc("syslog | relp | gelf | journal-remote | forward | beats | audisp | m365."),
    )
    protocol: str = field(
        default="tcp",
        metadata=_doc(
            "For syslog and gelf: udp | tcp | tls. For relp, beats, forward and journal-remote: tcp | tls. "
            "For audisp: tcp. Not used by m365."
        ),
    )
    host: str = field(default="0.0.0.0", metadata=_doc("Address to listen on."))
    port: int = field(default=5514, metadata=_doc("Port to listen on."))
    tenant: str = field(
        default="",
        metadata=_doc(
            "Tenant of records from senders not matched by `networks`. "
            "Empty: such records go to the system tenant as pipeline errors."
        ),
    )
    networks: dict[str, str] = field(
        default_factory=dict, metadata=_doc("Sender network (CIDR) → tenant, most specific wins.")
    )
    max_message_bytes: int = field(
        default=65536, metadata=_doc("Longer messages are cut and kept as pipeline errors.")
    )
    timezone: str = field(
        default="", metadata=_doc("Zone for timestamps without one; default: top-level timezone.")
    )
    tls_cert: str = field(
        default="", metadata=_doc("PEM certificate for tls; generated at first start if empty.")
    )
    tls_key: str = field(
        default="", metadata=_doc("PEM private key for tls; generated at first start if empty.")
    )
    max_connections: int = field(
        default=0,
        metadata=_doc(
            "tcp/tls: open connections at most; 0 = an equal share of the descriptor budget (logged "
            "at start). Beyond, a new connection is closed at once and counted."
        ),
    )
    max_connections_per_peer: int = field(
        default=0,
        metadata=_doc(
            "tcp/tls: open connections from one address (IPv6: one /64) at most; "
            "0 = an eighth of max_connections."
        ),
    )
    idle_timeout_s: float = field(
        default=300.0,
        metadata=_doc(
            "tcp/tls: close a connection that sent nothing this long, once its records are "
            "durable; 0 = never."
        ),
    )
    tls_handshake_timeout_s: float = field(
        default=15.0, metadata=_doc("tls: a TLS handshake must be done within this time.")
    )
    shared_key_file: str = field(
        default="",
        metadata=_doc(
            "forward: file holding the Fluent Forward shared key (HELO/PING/PONG handshake); empty = "
            "the variable NORRVAKT_SOURCE_<ID>_SHARED_KEY, else no handshake. Never logged."
        ),
    )
    m365: M365SourceSettings = field(
        default_factory=M365SourceSettings, metadata=_doc("m365: the connector's settings.")
    )
    gelf_chunk_timeout_s: float = field(
        default=5.0,
        metadata=_doc(
            "gelf/udp: a chunked message must be complete this long after its first chunk; "
            "else it is kept as a pipeline error naming the chunks that came."
        ),
    )
    gelf_max_pending_bytes: int = field(
        default=64 * 1024 * 1024,
        metadata=_doc(
            "gelf/udp: chunks of incomplete messages held at most; beyond, the oldest is given up."
        ),
    )


LEVELS = ("informational", "low", "medium", "high", "critical")


@dataclass(frozen=True)
class StateSettings:
    url: str = field(
        default="",
        metadata=_doc(
            "State database (users, tokens, alerts, cases). Empty = SQLite <data_dir>/state.db; "
            "postgresql://user:password@host/db for PostgreSQL."
        ),
    )


@dataclass(frozen=True)
class ReportSettings:
    """Scheduled municipality and region reports (docs/reports.md), sent by e-mail."""

    channel: str = field(
        default="",
        metadata=_doc(
            "Name of the email channel ([[alerts.channels]]) whose SMTP server sends the reports; "
            "empty = reports are not sent (they can still be rendered)."
        ),
    )
    schedule: str = field(default="monthly", metadata=_doc("monthly | weekly: the period of each report."))
    send_hour: int = field(
        default=6, metadata=_doc("Local hour (0..23) after a period's end at which its reports go out.")
    )
    language: str = field(default="sv", metadata=_doc("sv | en: the language of a report by default."))
    languages: dict[str, str] = field(
        default_factory=dict,
        metadata=_doc("Tenant (or 'region') → its own language, e.g. { kiruna = 'en' }."),
    )
    recipients: dict[str, str] = field(
        default_factory=dict,
        metadata=_doc(
            "Tenant → comma-separated addresses its report goes to (only its own report), e.g. "
            "{ lulea = 'ciso@lulea.se, it@lulea.se' }; a tenant without any gets none."
        ),
    )
    region_recipients: list[str] = field(
        default_factory=list, metadata=_doc("Addresses the region report (all tenants) goes to.")
    )
    mtta_target_minutes: dict[str, int] = field(
        default_factory=lambda: {
            "critical": 15,
            "high": 60,
            "medium": 240,
            "low": 1440,
            "informational": 2880,
        },
        metadata=_doc("Target time to acknowledge a case, per severity (minutes)."),
    )
    mttr_target_minutes: dict[str, int] = field(
        default_factory=lambda: {
            "critical": 240,
            "high": 1440,
            "medium": 4320,
            "low": 10080,
            "informational": 20160,
        },
        metadata=_doc("Target time to resolve a case, per severity (minutes)."),
    )
    top_rules: int = field(default=10, metadata=_doc("Rules listed in a report's top rules (1..50)."))
    retry_minutes: float = field(
        default=15.0, metadata=_doc("Wait before a report whose sending failed is tried again.")
    )
    max_attempts: int = field(
        default=5, metadata=_doc("Sending attempts of one report before it is left as failed (1..50).")
    )


@dataclass(frozen=True)
class ClusterSettings:
    nats_dir: str = field(
        default="",
        metadata=_doc(
            "On a web node of a cluster: the folder of the cluster's cluster.json (NATS addresses "
            "and client password), for the console's Cluster page. Empty = a single node."
        ),
    )


@dataclass(frozen=True)
class ChannelSettings:
    """A notification channel ([[alerts.channels]] tables)."""

    name: str = field(default="", metadata=_doc("Unique name routes refer to, e.g. 'soc-oncall'."))
    type: str = field(default="webhook", metadata=_doc("webhook | email | syslog."))
    url: str = field(
        default="",
        metadata=_doc(
            "webhook: https://host/path; email: smtp://host:587; syslog: udp://host:514 or tcp://host:514."
        ),
    )
    secret: str = field(
        default="",
        metadata=_doc(
            "webhook: HMAC-SHA256 key for the X-Norrvakt-Signature header "
            "(or NORRVAKT_CHANNEL_<NAME>_SECRET)."
        ),
    )
    recipients: list[str] = field(default_factory=list, metadata=_doc("email: addresses to send to."))
    sender: str = field(default="norrvakt@localhost", metadata=_doc("email: From address."))
    username: str = field(default="", metadata=_doc("email: SMTP login (empty = none)."))
    password: str = field(
        default="", metadata=_doc("email: SMTP password (or NORRVAKT_CHANNEL_<NAME>_PASSWORD).")
    )
    starttls: bool = field(
        default=True, metadata=_doc("email: require STARTTLS (never falls back to plain text).")
    )
    ca_file: str = field(
        default="", metadata=_doc("email: PEM file of CAs to trust for STARTTLS (default: the system's).")
    )
    format: str = field(default="cef", metadata=_doc("syslog: cef | json (message body after the header)."))
    rate_per_minute: int = field(
        default=30,
        metadata=_doc(
            "At most this many messages a minute; the rest are counted and summed up in the next one."
        ),
    )
    retries: int = field(default=3, metadata=_doc("Further attempts after a failed delivery."))
    retry_backoff_s: float = field(
        default=1.0, metadata=_doc("Wait before the first retry; doubled for every further one.")
    )
    timeout_s: float = field(default=10.0, metadata=_doc("Time limit of one delivery attempt."))


@dataclass(frozen=True)
class RouteSettings:
    """Which alerts go to which channels ([[alerts.routes]] tables); every matching route applies."""

    tenants: list[str] = field(default_factory=list, metadata=_doc("Tenants this route covers; empty = all."))
    min_level: str = field(
        default="high", metadata=_doc("Lowest level routed: informational, low, medium, high, critical.")
    )
    channels: list[str] = field(default_factory=list, metadata=_doc("Names of channels to notify."))


@dataclass(frozen=True)
class AlertSettings:
    dedupe_fields: list[str] = field(
        default_factory=lambda: ["host.name", "source.ip"],
        metadata=_doc(
            "Event fields that, with tenant and rule, make an alert's dedupe key (a rule or its "
            "settings may name others): repeats with the same key raise the count."
        ),
    )
    suppression_window_minutes: float = field(
        default=60.0,
        metadata=_doc(
            "Repeats within this time of an open alert's last event join it; later ones start a new one."
        ),
    )
    max_new_per_rule_per_minute: int = field(
        default=100,
        metadata=_doc(
            "Flood guard: beyond this many new alerts of one rule and tenant a minute, the rest "
            "are counted on one flood alert of that rule."
        ),
    )
    evidence_cap: int = field(
        default=100,
        metadata=_doc("Events linked to an alert as evidence (the first ones; the count goes on)."),
    )
    auto_case: bool = field(
        default=True,
        metadata=_doc("Put every new alert into a case: the open case of a shared entity, or a new one."),
    )
    group_fields: list[str] = field(
        default_factory=lambda: ["user.name", "host.name", "source.ip"],
        metadata=_doc("Entities that group alerts into one case."),
    )
    group_window_minutes: float = field(
        default=60.0, metadata=_doc("Alerts on the same entity within this time are grouped.")
    )
    escalate_after_minutes: float = field(
        default=15.0, metadata=_doc("Escalate a case still not acknowledged after this time (0 = never).")
    )
    escalate_min_level: str = field(default="high", metadata=_doc("Lowest case severity that escalates."))
    escalation_channels: list[str] = field(
        default_factory=list,
        metadata=_doc("Channels told of an escalation (in addition to the case's routes)."),
    )
    channels: list[ChannelSettings] = field(
        default_factory=list, metadata=_doc("Notification channels ([[alerts.channels]] tables).")
    )
    routes: list[RouteSettings] = field(
        default_factory=list, metadata=_doc("Routing per tenant and level ([[alerts.routes]] tables).")
    )


@dataclass(frozen=True)
class SearchRuleSettings:
    """Saved searches that run on a schedule as alert rules (docs/search.md, Scheduled searches)."""

    check_every_s: float = field(
        default=15.0, metadata=_doc("How often the server looks for scheduled searches that are due (s).")
    )
    min_every_s: int = field(
        default=60, metadata=_doc("Shortest schedule a scheduled search may have (s); shorter gets 400.")
    )
    max_window_s: int = field(
        default=7 * 86400, metadata=_doc("Longest window a scheduled search may count over (seconds).")
    )
    max_scan_events: int = field(
        default=5_000_000,
        metadata=_doc(
            "Most stored events one run of a scheduled search may read (its tenants over its window and"
            " look-back); more is refused when it is saved, and a run that grows beyond is skipped with the"
            " reason."
        ),
    )
    max_per_user: int = field(default=200, metadata=_doc("Saved searches one user may own."))


@dataclass(frozen=True)
class EnrichSettings:
    """What ingest and the console add to events and alerts (docs/enrichment.md)."""

    enabled: bool = field(
        default=True,
        metadata=_doc("Add enrichment fields to events at ingest (off: events are stored as parsed)."),
    )
    windows_codes: bool = field(
        default=True,
        metadata=_doc(
            "Windows codes in words at ingest: logon types, 4625 status/sub-status, Kerberos result codes,"
            " UAC flags (winlog.logon.type_name, event.reason, winlog.kerberos.*, winlog.uac.*)."
        ),
    )
    ip: bool = field(
        default=True,
        metadata=_doc(
            "Country and AS of public source/destination addresses at ingest, from the offline databases"
            " of the installed iptocc and plevin-db-network packages (source.geo.country_iso_code,"
            " source.as.number, source.as.organization.name)."
        ),
    )
    networks: dict[str, dict[str, list[str]]] = field(
        default_factory=dict,
        metadata=_doc(
            'Named ranges per tenant (or "*" for all): tenant → name → CIDRs, e.g. [enrich.networks.lulea]'
            ' "VPN-pool" = ["10.20.200.0/22"]; the narrowest range holding an address names it'
            " (source.network.name)."
        ),
    )
    privileged_groups: dict[str, list[str]] = field(
        default_factory=lambda: {
            "*": ["Domain Admins", "Enterprise Admins", "Schema Admins", "Administrators"]
        },
        metadata=_doc(
            'Directory groups whose members are privileged, per tenant (or "*" for all): an alert about'
            " such a user is raised one level (docs/enrichment.md)."
        ),
    )


RESPONSE_ACTIONS = (
    "ad.disable",
    "ad.enable",
    "ad.force_password_change",
    "entra.disable",
    "entra.enable",
    "entra.revoke_sessions",
    "block.address",
    "ticket.email",
    "ticket.webhook",
)
# what a second person approves by default (response.require_approval)
DESTRUCTIVE_ACTIONS = (
    "ad.disable",
    "ad.force_password_change",
    "entra.disable",
    "entra.revoke_sessions",
    "block.address",
)


@dataclass(frozen=True)
class AdTargetSettings:
    """A municipality's Active Directory for response actions ([[response.ad]] tables)."""

    tenant: str = field(default="", metadata=_doc("ad: the tenant whose directory this is."))
    url: str = field(default="", metadata=_doc("ad: ldaps://dc.example.se:636 (LDAPS only)."))
    base_dn: str = field(default="", metadata=_doc("ad: where accounts are looked up, e.g. DC=lulea,DC=se."))
    bind_dn: str = field(
        default="",
        metadata=_doc(
            "ad: the delegated service account; its password is stored encrypted "
            "(PUT /api/response/ad-credential/{tenant}), never in this file."
        ),
    )
    ca_file: str = field(
        default="", metadata=_doc("ad: PEM CA to verify the DC's certificate (empty: the system's).")
    )
    tls_name: str = field(
        default="", metadata=_doc("ad: the name in the DC's certificate, when the URL holds an address.")
    )
    protected_groups: list[str] = field(
        default_factory=lambda: ["Domain Admins", "Enterprise Admins", "Schema Admins", "Administrators"],
        metadata=_doc("ad: accounts in these groups are never disabled or changed by Norrvakt."),
    )


@dataclass(frozen=True)
class ResponseSettings:
    """Response actions on other systems, with a human in the loop (docs/response.md)."""

    require_approval: dict[str, list[str]] = field(
        default_factory=lambda: {"*": list(DESTRUCTIVE_ACTIONS)},
        metadata=_doc(
            "Actions that need a second person's approval, per tenant (or '*' for the others): "
            "tenant → actions; a tenant's own list replaces the '*' one."
        ),
    )
    max_per_hour: int = field(
        default=30,
        metadata=_doc(
            "Actions run against other systems per tenant and hour (dry runs not counted); more get 429."
        ),
    )
    timeout_s: float = field(
        default=15.0,
        metadata=_doc("How long one call to a target system (LDAP, Graph, webhook) may take (s)."),
    )
    ad: list[AdTargetSettings] = field(
        default_factory=list, metadata=_doc("Active Directories, one per tenant ([[response.ad]] tables).")
    )
    entra: dict[str, str] = field(
        default_factory=dict,
        metadata=_doc(
            "Entra ID per tenant: tenant → the id of its m365 source, whose app registration and stored"
            " credential the Graph calls use (the app needs User.ReadWrite.All)."
        ),
    )
    block_hours: float = field(
        default=24.0,
        metadata=_doc("How long a blocked address stays on the tenant's blocklist by default (h)."),
    )
    block_max_days: int = field(default=90, metadata=_doc("Longest block an analyst may set (days)."))
    firewall_webhooks: dict[str, str] = field(
        default_factory=dict,
        metadata=_doc(
            "tenant → URL told of every block and unblock (signed JSON POST), for firewalls with an API."
        ),
    )
    ticket_channel: str = field(
        default="",
        metadata=_doc(
            "The [[alerts.channels]] e-mail channel (its SMTP server) that ticket e-mails go through."
        ),
    )
    ticket_email: dict[str, list[str]] = field(
        default_factory=dict, metadata=_doc("tenant → the municipality's service desk address(es).")
    )
    ticket_webhooks: dict[str, str] = field(
        default_factory=dict, metadata=_doc("tenant → URL a ticket is POSTed to (signed JSON).")
    )
    webhook_secret: str = field(
        default="",
        metadata=_doc(
            "HMAC-SHA256 key of the X-Norrvakt-Signature header of firewall and ticket webhooks "
            "(or NORRVAKT_RESPONSE_WEBHOOK_SECRET)."
        ),
    )


TLP_LEVELS = ("clear", "white", "green", "amber", "red")


@dataclass(frozen=True)
class CaseSettings:
    templates_dir: str = field(
        default="",
        metadata=_doc(
            "Folder of case templates (YAML, docs/soc.md) added to the built-in ones; one with the "
            "id of a built-in template replaces it. Empty = the built-in ones only."
        ),
    )
    producer_name: str = field(
        default="Norrvakt SOC",
        metadata=_doc("Who shares a case's indicators: the STIX identity and the MISP event's creator org."),
    )
    tlp: str = field(
        default="amber",
        metadata=_doc("TLP marking of exported indicators (STIX 2.1 and MISP): clear, green, amber or red."),
    )
    misp_distribution: int = field(
        default=1,
        metadata=_doc("MISP distribution of an exported event: 0 your organisation, 1 this community, 2, 3."),
    )
    pivot_days: int = field(
        default=30,
        metadata=_doc(
            "How far back the SOC's 'seen in other municipalities' pivot counts events and alerts."
        ),
    )


@dataclass(frozen=True)
class SearchSettings:
    max_concurrent: int = field(
        default=4,
        metadata=_doc("Searches one user may run at once (API, console, histogram, facets); more get 429."),
    )
    max_live_tails: int = field(default=2, metadata=_doc("Live tails one user may keep open at once."))
    max_query_length: int = field(
        default=10_000, metadata=_doc("Longest query, in characters (at most 100000); longer gets 400.")
    )
    max_query_depth: int = field(
        default=32,
        metadata=_doc("Deepest nesting of parentheses and NOT in a query (at most 100); deeper gets 400."),
    )
    export_max_rows: int = field(
        default=1_000_000,
        metadata=_doc(
            "Most rows one export (CSV / NDJSON) holds; beyond, it ends with a line saying it was cut."
        ),
    )
    export_max_bytes: int = field(
        default=1_073_741_824,
        metadata=_doc(
            "Most bytes one export holds (default 1 GiB); beyond, it ends with a line saying it was cut."
        ),
    )


@dataclass(frozen=True)
class Settings:
    data_dir: str = field(default="var", metadata=_doc("Where journal, store, state and keys live."))
    timezone: str = field(
        default="Europe/Stockholm",
        metadata=_doc("Zone assumed for log timestamps that carry none (RFC 3164)."),
    )
    tenants: dict[str, str] = field(
        default_factory=lambda: dict(MUNICIPALITIES),
        metadata=_doc("Tenant id → display name. Default: the 14 municipalities."),
    )
    log_level: str = field(default="info", metadata=_doc("debug | info | warning | error."))
    mapping_dirs: list[str] = field(
        default_factory=lambda: ["{data_dir}/mappings"],
        metadata=_doc("Directories of source mapping files (docs/sources.md) added to the built-in ones."),
    )
    server: ServerSettings = field(default_factory=ServerSettings, metadata=_doc("Web console and HTTP API."))
    journal: JournalSettings = field(default_factory=JournalSettings, metadata=_doc("Durable journal."))
    store: StoreSettings = field(default_factory=StoreSettings, metadata=_doc("Event store (ClickHouse)."))
    retention: RetentionSettings = field(
        default_factory=RetentionSettings,
        metadata=_doc("Journal retention; disposal needs a recorded decision."),
    )
    detection: DetectionSettings = field(default_factory=DetectionSettings, metadata=_doc("Detection rules."))
    search: SearchSettings = field(
        default_factory=SearchSettings, metadata=_doc("Search limits per user and per query.")
    )
    search_rules: SearchRuleSettings = field(
        default_factory=SearchRuleSettings, metadata=_doc("Saved and scheduled searches (alert rules).")
    )
    oidc: OidcSettings = field(default_factory=OidcSettings, metadata=_doc("Single sign-on (optional)."))
    enrich: EnrichSettings = field(
        default_factory=EnrichSettings, metadata=_doc("Enrichment of events and alerts (docs/enrichment.md).")
    )
    response: ResponseSettings = field(
        default_factory=ResponseSettings,
        metadata=_doc("Response actions on other systems (docs/response.md)."),
    )
    integrity: IntegritySettings = field(
        default_factory=IntegritySettings, metadata=_doc("Checkpoints, witnesses, verification.")
    )
    sources: list[SourceSettings] = field(
        default_factory=lambda: default_sources(), metadata=_doc("Network listeners ([[sources]] tables).")
    )
    state: StateSettings = field(default_factory=StateSettings, metadata=_doc("State database."))
    alerts: AlertSettings = field(
        default_factory=AlertSettings, metadata=_doc("Alerts, cases, notification and escalation.")
    )
    cases: CaseSettings = field(
        default_factory=CaseSettings, metadata=_doc("Case templates, observables and indicator export.")
    )
    reports: ReportSettings = field(
        default_factory=ReportSettings, metadata=_doc("Scheduled municipality and region reports.")
    )
    cluster: ClusterSettings = field(
        default_factory=ClusterSettings, metadata=_doc("Part of a cluster (docs/operations.md).")
    )

    @property
    def data_path(self) -> Path:
        return Path(self.data_dir)

    def mapping_paths(self) -> list[Path]:
        return [Path(d.replace("{data_dir}", str(self.data_path))) for d in self.mapping_dirs]

    def witness_specs(self) -> list[str]:
        return [w.replace("{data_dir}", str(self.data_path.resolve())) for w in self.integrity.witnesses]

    def signing_key_path(self) -> Path | None:
        return Path(self.integrity.signing_key_file) if self.integrity.signing_key_file else None

    def state_url(self) -> str:
        if self.state.url:
            return self.state.url
        return f"sqlite:///{(self.data_path / 'state.db').resolve()}"

    def store_dsn(self) -> str:
        if self.store.dsn:
            return self.store.dsn
        return f"chdb://{(self.data_path / 'store').resolve()}"


def default_sources() -> list[SourceSettings]:
    """Listeners of a fresh install. Loopback senders 127.0.1.N map to tenant N (the demo
    uses this); other senders land in Luleå until the operator maps their networks."""
    demo_nets = {f"127.0.1.{i + 1}/32": t for i, t in enumerate(MUNICIPALITIES)}
    common: dict[str, Any] = {"tenant": "lulea", "networks": demo_nets}
    return [
        SourceSettings(id="syslog-udp", type="syslog", protocol="udp", port=5514, **common),
        SourceSettings(id="syslog-tcp", type="syslog", protocol="tcp", port=5514, **common),
        SourceSettings(id="syslog-tls", type="syslog", protocol="tls", port=6514, **common),
        SourceSettings(id="relp", type="relp", protocol="tcp", port=2514, **common),
    ]


# -- loading and validation ---------------------------------------------------------------


def load_settings(path: str | Path | None = None, overrides: dict[str, Any] | None = None) -> Settings:
    """Read TOML (if given), apply ``overrides`` (dotted keys), validate everything."""
    raw: dict[str, Any] = {}
    origin = ""
    if path is not None:
        origin = str(path)
        try:
            raw = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError([("(file)", f"{path} does not exist")], origin) from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError([("(file)", f"not valid TOML: {exc}")], origin) from None
    for dotted, value in (overrides or {}).items():
        node = raw
        *parents, last = dotted.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[last] = value
    problems: list[tuple[str, str]] = []
    # Values of the wrong type keep their default, so the semantic checks below still run
    # and every problem is reported in one go.
    settings: Settings = _build(Settings, raw, "", problems)
    _check_semantics(settings, problems)
    if problems:
        raise ConfigError(problems, origin)
    return settings


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", str(tp))


def _build(cls: Any, raw: Any, prefix: str, problems: list[tuple[str, str]]) -> Any:
    if not isinstance(raw, dict):
        problems.append((prefix.rstrip(".") or "(root)", f"{raw!r} — expected a table"))
        return cls()
    known = {f.name: f for f in fields(cls)}
    for key in raw:
        if key not in known:
            problems.append((f"{prefix}{key}", f"unknown setting (known: {', '.join(sorted(known))})"))
    values: dict[str, Any] = {}
    hints = _resolved_hints(cls)
    for name, _f in known.items():
        if name not in raw:
            continue
        tp = hints[name]
        value = raw[name]
        key = f"{prefix}{name}"
        if is_dataclass(tp):
            values[name] = _build(tp, value, key + ".", problems)
        elif (item_cls := _table_array_item(tp)) is not None:
            if not isinstance(value, list):
                problems.append((key, f"{value!r} — expected an array of tables [[{key}]]"))
                continue
            values[name] = [_build(item_cls, item, f"{key}[{i}].", problems) for i, item in enumerate(value)]
        elif tp == list[str]:
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                problems.append((key, f"{value!r} — expected a list of strings"))
                continue
            values[name] = list(value)
        elif tp == dict[str, int]:
            if not isinstance(value, dict) or not all(
                isinstance(k, str) and isinstance(v, int) and not isinstance(v, bool)
                for k, v in value.items()
            ):
                problems.append((key, f"{value!r} — expected a table of string → integer"))
                continue
            values[name] = dict(value)
        elif tp == dict[str, dict[str, list[str]]]:
            if not isinstance(value, dict) or not all(
                isinstance(k, str)
                and isinstance(v, dict)
                and all(isinstance(n, str) and isinstance(xs, list) for n, xs in v.items())
                and all(isinstance(x, str) for xs in v.values() for x in xs)
                for k, v in value.items()
            ):
                problems.append((key, f"{value!r} — expected tables of name → list of strings"))
                continue
            values[name] = {k: {n: list(xs) for n, xs in v.items()} for k, v in value.items()}
        elif tp == dict[str, list[str]]:
            if not isinstance(value, dict) or not all(
                isinstance(k, str) and isinstance(v, list) and all(isinstance(x, str) for x in v)
                for k, v in value.items()
            ):
                problems.append((key, f"{value!r} — expected a table of name → list of strings"))
                continue
            values[name] = {k: list(v) for k, v in value.items()}
        elif tp == dict[str, str]:
            if not isinstance(value, dict) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in value.items()
            ):
                problems.append((key, f"{value!r} — expected a table of string → string"))
                continue
            values[name] = dict(value)
        elif tp is float:
            if isinstance(value, bool) or not isinstance(value, int | float):
                problems.append((key, f"{value!r} — expected a number"))
                continue
            values[name] = float(value)
        elif tp is int:
            if isinstance(value, bool) or not isinstance(value, int):
                problems.append((key, f"{value!r} — expected an integer"))
                continue
            values[name] = value
        elif tp is bool:
            if not isinstance(value, bool):
                problems.append((key, f"{value!r} — expected true or false"))
                continue
            values[name] = value
        elif tp is str:
            if not isinstance(value, str):
                problems.append((key, f"{value!r} — expected a string"))
                continue
            values[name] = value
        else:  # pragma: no cover - a new setting type must be added above
            raise TypeError(f"setting {key} has unsupported type {_type_name(tp)}")
    return cls(**values)


def _table_array_item(tp: Any) -> Any:
    """The dataclass of a ``list[SomeSettings]`` setting (an array of TOML tables), else None."""
    import typing

    if typing.get_origin(tp) is list:
        (item,) = typing.get_args(tp)
        if is_dataclass(item):
            return item
    return None


def _resolved_hints(cls: Any) -> dict[str, Any]:
    import typing

    return typing.get_type_hints(cls)


def _check_port(key: str, port: int, problems: list[tuple[str, str]]) -> None:
    if not 1 <= port <= 65535:
        problems.append((key, f"{port} — a port must be 1..65535"))


def _check_zone(key: str, zone: str, problems: list[tuple[str, str]]) -> None:
    try:
        zoneinfo.ZoneInfo(zone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        problems.append((key, f"{zone!r} — not a known time zone (e.g. Europe/Stockholm, UTC)"))


def _check_ingest_limits(sv: ServerSettings, problems: list[tuple[str, str]]) -> None:
    """Body and event limits of HTTP ingest (norrvakt.sources.http_body)."""
    for key, value, low, high in (
        ("server.max_body_bytes", sv.max_body_bytes, 64 * 1024, 1024**3),
        ("server.max_decompressed_bytes", sv.max_decompressed_bytes, 64 * 1024, 4 * 1024**3),
        ("server.max_event_bytes", sv.max_event_bytes, 1024, 64 * 1024 * 1024),
    ):
        if not low <= value <= high:
            problems.append((key, f"{value} — must be {low}..{high} bytes"))
    if sv.max_event_bytes > sv.max_decompressed_bytes:
        why = f"{sv.max_event_bytes} — more than server.max_decompressed_bytes ({sv.max_decompressed_bytes})"
        problems.append(("server.max_event_bytes", why))


def _check_cases(c: CaseSettings, problems: list[tuple[str, str]]) -> None:
    if c.tlp not in TLP_LEVELS:
        problems.append(("cases.tlp", f"{c.tlp!r} — one of clear, green, amber, red"))
    if c.misp_distribution not in (0, 1, 2, 3):
        problems.append(("cases.misp_distribution", f"{c.misp_distribution} — 0, 1, 2 or 3"))
    if not c.producer_name.strip():
        problems.append(("cases.producer_name", "'' — the name others see the indicators come from"))
    if not 1 <= c.pivot_days <= 3660:
        problems.append(("cases.pivot_days", f"{c.pivot_days} — must be 1..3660"))
    if c.templates_dir and not Path(c.templates_dir).is_dir():
        problems.append(("cases.templates_dir", f"{c.templates_dir!r} — not a directory"))


def _check_semantics(s: Settings, problems: list[tuple[str, str]]) -> None:
    _check_zone("timezone", s.timezone, problems)
    if s.log_level not in {"debug", "info", "warning", "error"}:
        problems.append(("log_level", f"{s.log_level!r} — one of debug, info, warning, error"))
    if not s.tenants:
        problems.append(("tenants", "{} — at least one tenant is needed"))
    for tid in s.tenants:
        if not _TENANT_ID.match(tid) or tid == SYSTEM_TENANT:
            problems.append(
                (f"tenants.{tid}", f"{tid!r} — tenant ids are 2–32 of a-z 0-9 _ -, starting with a letter")
            )
    _check_port("server.port", s.server.port, problems)
    if s.server.ingest_port:
        _check_port("server.ingest_port", s.server.ingest_port, problems)
        if s.server.ingest_port == s.server.port:
            problems.append(("server.ingest_port", f"{s.server.ingest_port} — the same as server.port"))
    if s.server.api_docs not in {"login", "public", "off"}:
        problems.append(("server.api_docs", f"{s.server.api_docs!r} — one of login, public, off"))
    _check_search(s.search, problems)
    _check_cases(s.cases, problems)
    _check_response(s, problems)
    _check_enrich(s.enrich, problems)
    _check_search_rules(s.search_rules, problems)
    _check_ingest_limits(s.server, problems)
    for i, proxy in enumerate(s.server.trusted_proxies):
        try:
            ipaddress.ip_network(proxy, strict=False)
        except ValueError:
            problems.append((f"server.trusted_proxies[{i}]", f"{proxy!r} — an IP address or CIDR network"))
    if s.journal.segment_mb < 1 or s.journal.segment_mb > 4096:
        problems.append(("journal.segment_mb", f"{s.journal.segment_mb} — must be 1..4096"))
    if not 0 <= s.journal.group_commit_ms <= 1000:
        problems.append(("journal.group_commit_ms", f"{s.journal.group_commit_ms} — must be 0..1000"))
    if s.store.retention_days < 0:
        problems.append(("store.retention_days", f"{s.store.retention_days} — must be ≥ 0"))
    if not 100 <= s.store.batch_rows <= 1_000_000:
        problems.append(("store.batch_rows", f"{s.store.batch_rows} — must be 100..1000000"))
    if s.store.dsn and not s.store.dsn.startswith(("chdb://", "http://", "https://")):
        problems.append(("store.dsn", f"{s.store.dsn!r} — must start with chdb://, http:// or https://"))
    rt = s.retention
    for key, days in (
        [("retention.default_days", rt.default_days)]
        + [(f"retention.tenant_days.{t}", d) for t, d in rt.tenant_days.items()]
        + [(f"retention.class_days.{c}", d) for c, d in rt.class_days.items()]
    ):
        if days < 1:
            problems.append((key, f"{days} — days must be ≥ 1"))
    for t in rt.tenant_days:
        if t not in s.tenants:
            problems.append((f"retention.tenant_days.{t}", f"{t!r} — not a configured tenant"))
    dt = s.detection
    for t in dt.placeholders:
        if t != "*" and t not in s.tenants:
            problems.append((f"detection.placeholders.{t}", f'{t!r} — not a configured tenant (or "*")'))
    if not 1 <= dt.baseline_days <= 366:
        problems.append(("detection.baseline_days", f"{dt.baseline_days} — must be 1..366"))
    if dt.after_hours_accesses < 1:
        problems.append(("detection.after_hours_accesses", f"{dt.after_hours_accesses} — must be ≥ 1"))
    if not 0.1 <= dt.rule_test_seconds <= 3600:
        problems.append(("detection.rule_test_seconds", f"{dt.rule_test_seconds} — must be 0.1..3600"))
    if not 0 <= dt.work_start_hour <= dt.work_end_hour <= 24:
        problems.append(
            (
                "detection.work_start_hour",
                f"{dt.work_start_hour}-{dt.work_end_hour} — 0 <= start <= end <= 24",
            )
        )
    oc = s.oidc
    if oc.issuer:
        if not oc.issuer.startswith(("https://", "http://")):
            problems.append(("oidc.issuer", f"{oc.issuer!r} — an http(s) URL"))
        if not oc.client_id:
            problems.append(("oidc.client_id", "'' — required when oidc.issuer is set"))
        if not oc.role_map:
            problems.append(("oidc.role_map", "{} — map at least one claim value to a role"))
        for value, role in oc.role_map.items():
            if role not in {"admin", "soc_analyst", "tenant_officer", "auditor"}:
                problems.append(
                    (f"oidc.role_map.{value}", f"{role!r} — admin, soc_analyst, tenant_officer or auditor")
                )
    ig = s.integrity
    if not 1 <= ig.checkpoint_every_events <= 100_000_000:
        problems.append(("integrity.checkpoint_every_events", f"{ig.checkpoint_every_events} — must be ≥ 1"))
    if not 1 <= ig.checkpoint_every_seconds <= 86400:
        problems.append(
            ("integrity.checkpoint_every_seconds", f"{ig.checkpoint_every_seconds} — must be 1..86400")
        )
    if ig.verify_every_minutes < 0:
        problems.append(("integrity.verify_every_minutes", f"{ig.verify_every_minutes} — must be ≥ 0"))
    for i, spec in enumerate(ig.witnesses):
        if not spec.startswith(("dir:", "http://", "https://")):
            problems.append((f"integrity.witnesses[{i}]", f"{spec!r} — use dir:/path or an http(s):// URL"))
    if ig.signing_key_file and not Path(ig.signing_key_file).is_absolute():
        problems.append(("integrity.signing_key_file", f"{ig.signing_key_file!r} — use an absolute path"))
    seen_ids: set[str] = set()
    seen_ports: set[tuple[str, int]] = set()
    for i, src in enumerate(s.sources):
        key = f"sources[{i}]"
        if not src.id:
            problems.append((f"{key}.id", "'' — every source needs an id"))
        elif src.id in seen_ids:
            problems.append((f"{key}.id", f"{src.id!r} — duplicate source id"))
        seen_ids.add(src.id)
        if src.type == "m365":  # pulls: no listener, no port
            _check_m365(key, src, s, problems)
            continue
        if src.type not in {"syslog", "relp", "gelf", "journal-remote", "forward", "audisp", "beats"}:
            problems.append(
                (
                    f"{key}.type",
                    f"{src.type!r} — one of syslog, relp, gelf, journal-remote, forward, audisp, beats",
                )
            )
        allowed = {"udp", "tcp", "tls"} if src.type in {"syslog", "gelf"} else {"tcp", "tls"}
        if src.type == "audisp":  # audisp-remote speaks plain TCP or Kerberos, never TLS
            allowed = {"tcp"}
        if src.protocol not in allowed:
            problems.append((f"{key}.protocol", f"{src.protocol!r} — one of {', '.join(sorted(allowed))}"))
        _check_port(f"{key}.port", src.port, problems)
        transport = "udp" if src.protocol == "udp" else "tcp"
        # A gelf or journal-remote source left at the general default port listens on its
        # protocol's own (Graylog's 12201, journal-remote's 19532; sources/gelf.py, journal_remote.py).
        own = {"gelf": 12201, "journal-remote": 19532, "beats": 5044}.get(src.type)  # beats.py
        port = own if own is not None and src.port == 5514 else src.port
        port = 6060 if src.type == "audisp" and src.port == 5514 else port  # sources/audisp.py
        if (transport, port) in seen_ports:
            problems.append((f"{key}.port", f"{port} — another {transport} source already uses it"))
        seen_ports.add((transport, port))
        if src.tenant and src.tenant not in s.tenants:
            problems.append((f"{key}.tenant", f"{src.tenant!r} — not a configured tenant"))
        for net, tenant in src.networks.items():
            try:
                ipaddress.ip_network(net, strict=False)
            except ValueError:
                problems.append(
                    (f"{key}.networks.{net}", f"{net!r} — not a network (CIDR, e.g. 10.1.0.0/16)")
                )
            if tenant not in s.tenants:
                problems.append((f"{key}.networks.{net}", f"{tenant!r} — not a configured tenant"))
        if not 256 <= src.max_message_bytes <= 16 * 1024 * 1024:
            problems.append((f"{key}.max_message_bytes", f"{src.max_message_bytes} — must be 256..16777216"))
        if src.timezone:
            _check_zone(f"{key}.timezone", src.timezone, problems)
        if bool(src.tls_cert) != bool(src.tls_key):
            problems.append((f"{key}.tls_cert", "set both tls_cert and tls_key, or neither"))
        if not 0.1 <= src.gelf_chunk_timeout_s <= 300:
            problems.append(
                (f"{key}.gelf_chunk_timeout_s", f"{src.gelf_chunk_timeout_s} — must be 0.1..300 seconds")
            )
        if not 1024 * 1024 <= src.gelf_max_pending_bytes <= 4 * 1024**3:
            problems.append(
                (f"{key}.gelf_max_pending_bytes", f"{src.gelf_max_pending_bytes} — must be 1 MiB..4 GiB")
            )
    _check_connection_limits(s, problems)
    _check_alerts(s, problems)
    _check_reports(s, problems)


def _check_connection_limits(s: Settings, problems: list[tuple[str, str]]) -> None:
    """Caps and timeouts of the TCP listeners and the web server (norrvakt.sources.limits)."""
    sv = s.server
    tables = [("server", sv.max_connections, sv.max_connections_per_peer)]
    tables += [
        (f"sources[{i}]", x.max_connections, x.max_connections_per_peer) for i, x in enumerate(s.sources)
    ]
    for key, cap, per_peer in tables:
        for name, value in (("max_connections", cap), ("max_connections_per_peer", per_peer)):
            if not 0 <= value <= 1_000_000:
                problems.append((f"{key}.{name}", f"{value} — must be 0 (automatic) .. 1000000"))
        if cap and per_peer > cap:
            problems.append(
                (f"{key}.max_connections_per_peer", f"{per_peer} — more than max_connections ({cap})")
            )
    if not 0.5 <= sv.worker_batch_timeout_s <= 3600:
        problems.append(("server.worker_batch_timeout_s", f"{sv.worker_batch_timeout_s} — must be 0.5..3600"))
    if not 0 <= sv.workers <= 256:
        problems.append(("server.workers", f"{sv.workers} — must be 0 (one per core) .. 256"))
    if not 64 <= sv.fd_reserve <= 1_000_000:
        problems.append(("server.fd_reserve", f"{sv.fd_reserve} — must be 64..1000000"))
    for key, seconds, low, high in (
        ("server.idle_timeout_s", sv.idle_timeout_s, 1, 3600),
        ("server.request_head_timeout_s", sv.request_head_timeout_s, 1, 600),
        ("server.read_timeout_s", sv.read_timeout_s, 1, 3600),
    ):
        if not low <= seconds <= high:
            problems.append((key, f"{seconds} — must be {low}..{high} seconds"))
    for i, src in enumerate(s.sources):
        if src.idle_timeout_s != 0 and not 1 <= src.idle_timeout_s <= 86400:
            problems.append(
                (f"sources[{i}].idle_timeout_s", f"{src.idle_timeout_s} — 0 (never) or 1..86400 seconds")
            )
        if not 1 <= src.tls_handshake_timeout_s <= 300:
            why = f"{src.tls_handshake_timeout_s} — must be 1..300 seconds"
            problems.append((f"sources[{i}].tls_handshake_timeout_s", why))


def _check_enrich(en: EnrichSettings, problems: list[tuple[str, str]]) -> None:
    from norrvakt.enrich.networks import NetworkSettingError, TenantNetworks

    try:
        TenantNetworks.from_setting(en.networks)
    except NetworkSettingError as exc:
        problems.append(("enrich.networks", str(exc)))


def _check_response(s: Settings, problems: list[tuple[str, str]]) -> None:
    r = s.response
    for tenant, actions in r.require_approval.items():
        if tenant != "*" and tenant not in s.tenants:
            problems.append((f"response.require_approval.{tenant}", "not a tenant"))
        for a in actions:
            if a not in RESPONSE_ACTIONS:
                problems.append(
                    (f"response.require_approval.{tenant}", f"{a!r}: one of {', '.join(RESPONSE_ACTIONS)}")
                )
    for i, ad in enumerate(r.ad):
        key = f"response.ad[{i}]"
        if ad.tenant not in s.tenants:
            problems.append((f"{key}.tenant", f"{ad.tenant!r} is not a tenant"))
        if not ad.url.startswith("ldaps://"):
            problems.append(
                (f"{key}.url", f"{ad.url!r}: ldaps://host[:port] (passwords never go over plain LDAP)")
            )
        if not ad.base_dn or not ad.bind_dn:
            problems.append((key, "base_dn and bind_dn are needed"))
    tables: dict[str, dict[str, Any]] = {
        "entra": r.entra,
        "firewall_webhooks": r.firewall_webhooks,
        "ticket_email": r.ticket_email,
        "ticket_webhooks": r.ticket_webhooks,
    }
    for what, table in tables.items():
        for tenant in table:
            if tenant not in s.tenants:
                problems.append((f"response.{what}.{tenant}", "not a tenant"))
    if r.max_per_hour < 1:
        problems.append(("response.max_per_hour", f"{r.max_per_hour}: at least 1"))
    if r.block_hours <= 0 or r.block_hours > r.block_max_days * 24:
        problems.append(("response.block_hours", f"{r.block_hours}: more than 0, at most block_max_days"))


def _check_search(se: SearchSettings, problems: list[tuple[str, str]]) -> None:
    # The upper bounds are the parser's hard caps (norrvakt.store.query_parse).
    for key, value, low, high in (
        ("search.max_concurrent", se.max_concurrent, 1, 1000),
        ("search.max_live_tails", se.max_live_tails, 1, 1000),
        ("search.max_query_length", se.max_query_length, 1, 100_000),
        ("search.max_query_depth", se.max_query_depth, 1, 100),
        ("search.export_max_rows", se.export_max_rows, 1, 10**10),
        ("search.export_max_bytes", se.export_max_bytes, 1024, 2**50),
    ):
        if not low <= value <= high:
            problems.append((key, f"{value} — must be {low}..{high}"))


def _check_search_rules(sr: SearchRuleSettings, problems: list[tuple[str, str]]) -> None:
    for key, value, low, high in (
        ("search_rules.check_every_s", sr.check_every_s, 1, 3600),
        ("search_rules.min_every_s", sr.min_every_s, 10, 86400),
        ("search_rules.max_window_s", sr.max_window_s, 60, 90 * 86400),
        ("search_rules.max_scan_events", sr.max_scan_events, 1, 10**12),
        ("search_rules.max_per_user", sr.max_per_user, 1, 100_000),
    ):
        if not low <= value <= high:
            problems.append((key, f"{value} — must be {low}..{high}"))


def _check_alerts(s: Settings, problems: list[tuple[str, str]]) -> None:
    a = s.alerts
    if s.state.url and not s.state.url.startswith(("sqlite:", "postgresql", "postgres://")):
        problems.append(("state.url", f"{s.state.url!r} — sqlite:///path or postgresql://user@host/db"))
    if a.suppression_window_minutes < 0:
        problems.append(
            ("alerts.suppression_window_minutes", f"{a.suppression_window_minutes} — must be ≥ 0")
        )
    if a.max_new_per_rule_per_minute < 1:
        problems.append(
            ("alerts.max_new_per_rule_per_minute", f"{a.max_new_per_rule_per_minute} — must be ≥ 1")
        )
    if not 1 <= a.evidence_cap <= 10_000:
        problems.append(("alerts.evidence_cap", f"{a.evidence_cap} — must be 1..10000"))
    if a.group_window_minutes < 0:
        problems.append(("alerts.group_window_minutes", f"{a.group_window_minutes} — must be ≥ 0"))
    if a.escalate_after_minutes < 0:
        problems.append(("alerts.escalate_after_minutes", f"{a.escalate_after_minutes} — must be ≥ 0"))
    if a.escalate_min_level not in LEVELS:
        problems.append(
            ("alerts.escalate_min_level", f"{a.escalate_min_level!r} — one of {', '.join(LEVELS)}")
        )
    names: set[str] = set()
    for i, ch in enumerate(a.channels):
        key = f"alerts.channels[{i}]"
        if not ch.name:
            problems.append((f"{key}.name", "'' — every channel needs a name"))
        elif ch.name in names:
            problems.append((f"{key}.name", f"{ch.name!r} — duplicate channel name"))
        names.add(ch.name)
        schemes = {"webhook": ("http://", "https://"), "email": ("smtp://",), "syslog": ("udp://", "tcp://")}
        if ch.type not in schemes:
            problems.append((f"{key}.type", f"{ch.type!r} — one of webhook, email, syslog"))
        elif not ch.url.startswith(schemes[ch.type]):
            problems.append(
                (f"{key}.url", f"{ch.url!r} — a {ch.type} channel needs {' or '.join(schemes[ch.type])}…")
            )
        if ch.type == "email" and not ch.recipients:
            problems.append((f"{key}.recipients", "[] — an email channel needs at least one recipient"))
        if ch.format not in {"cef", "json"}:
            problems.append((f"{key}.format", f"{ch.format!r} — cef or json"))
        if ch.rate_per_minute < 1:
            problems.append((f"{key}.rate_per_minute", f"{ch.rate_per_minute} — must be ≥ 1"))
        if not 0 <= ch.retries <= 20:
            problems.append((f"{key}.retries", f"{ch.retries} — must be 0..20"))
        if ch.retry_backoff_s < 0 or ch.timeout_s <= 0:
            problems.append((f"{key}.timeout_s", "retry_backoff_s must be ≥ 0 and timeout_s > 0"))
    for i, route in enumerate(a.routes):
        key = f"alerts.routes[{i}]"
        if route.min_level not in LEVELS:
            problems.append((f"{key}.min_level", f"{route.min_level!r} — one of {', '.join(LEVELS)}"))
        for t in route.tenants:
            if t not in s.tenants and t != SYSTEM_TENANT:
                problems.append((f"{key}.tenants", f"{t!r} — not a configured tenant"))
        if not route.channels:
            problems.append((f"{key}.channels", "[] — a route needs at least one channel"))
        for c in route.channels:
            if c not in names:
                problems.append((f"{key}.channels", f"{c!r} — no channel of that name"))
    for c in a.escalation_channels:
        if c not in names:
            problems.append(("alerts.escalation_channels", f"{c!r} — no channel of that name"))


def _check_reports(s: Settings, problems: list[tuple[str, str]]) -> None:
    """A bad schedule or an unknown recipient is refused at start, never found at sending time."""
    r = s.reports
    if r.schedule not in ("monthly", "weekly"):
        problems.append(("reports.schedule", f"{r.schedule!r} — monthly or weekly"))
    if not 0 <= r.send_hour <= 23:
        problems.append(("reports.send_hour", f"{r.send_hour} — must be 0..23"))
    if r.language not in ("sv", "en"):
        problems.append(("reports.language", f"{r.language!r} — sv or en"))
    for who, lang in r.languages.items():
        if who not in s.tenants and who != "region":
            problems.append(("reports.languages", f"{who!r} — not a configured tenant (or 'region')"))
        if lang not in ("sv", "en"):
            problems.append((f"reports.languages.{who}", f"{lang!r} — sv or en"))
    if r.channel:
        channel = next((c for c in s.alerts.channels if c.name == r.channel), None)
        if channel is None:
            problems.append(("reports.channel", f"{r.channel!r} — no channel of that name"))
        elif channel.type != "email":
            problems.append(
                ("reports.channel", f"{r.channel!r} is a {channel.type} channel; reports need email")
            )
    for tenant, addresses in r.recipients.items():
        if tenant not in s.tenants:
            problems.append(("reports.recipients", f"{tenant!r} — not a configured tenant"))
        for address in addresses.split(","):
            if not _EMAIL.match(address.strip()):
                problems.append(
                    (f"reports.recipients.{tenant}", f"{address.strip()!r} — not an e-mail address")
                )
    for address in r.region_recipients:
        if not _EMAIL.match(address.strip()):
            problems.append(("reports.region_recipients", f"{address!r} — not an e-mail address"))
    for key, targets in (
        ("mtta_target_minutes", r.mtta_target_minutes),
        ("mttr_target_minutes", r.mttr_target_minutes),
    ):
        for level, minutes in targets.items():
            if level not in LEVELS:
                problems.append((f"reports.{key}", f"{level!r} — one of {', '.join(LEVELS)}"))
            elif minutes < 1:
                problems.append((f"reports.{key}.{level}", f"{minutes} — must be ≥ 1"))
    if not 1 <= r.top_rules <= 50:
        problems.append(("reports.top_rules", f"{r.top_rules} — must be 1..50"))
    if not 1 <= r.max_attempts <= 50:
        problems.append(("reports.max_attempts", f"{r.max_attempts} — must be 1..50"))
    if r.retry_minutes <= 0:
        problems.append(("reports.retry_minutes", f"{r.retry_minutes} — must be > 0"))


def _check_m365(key: str, src: SourceSettings, s: Settings, problems: list[tuple[str, str]]) -> None:
    m = src.m365
    if src.tenant not in s.tenants:
        problems.append((f"{key}.tenant", f"{src.tenant!r} — an m365 connector needs a configured tenant"))
    for name in ("directory_id", "client_id"):
        if not getattr(m, name):
            problems.append((f"{key}.m365.{name}", "'' — required for an m365 connector"))
    known = M365SourceSettings().feeds
    for feed in m.feeds:
        if feed not in known:
            problems.append((f"{key}.m365.feeds", f"{feed!r} — one of {', '.join(known)}"))
    if not 1 <= m.window_minutes <= 1440 or not 0 <= m.overlap_minutes < m.window_minutes:
        problems.append((f"{key}.m365.window_minutes", "window 1..1440 minutes, overlap 0..window"))
    if not 0 <= m.graph_delay_minutes <= 120:
        problems.append((f"{key}.m365.graph_delay_minutes", f"{m.graph_delay_minutes} — 0..120 minutes"))
    if not 0 < m.initial_lookback_hours <= 167 or m.poll_interval_s < 1 or m.stale_after_minutes < 1:
        why = "0..167 hours; poll_interval_s ≥ 1; stale_after_minutes ≥ 1"
        problems.append((f"{key}.m365.initial_lookback_hours", why))
    for name in ("login_url", "manage_url", "graph_url"):
        if not getattr(m, name).startswith("https://"):
            problems.append((f"{key}.m365.{name}", f"{getattr(m, name)!r} — an https:// URL"))


def settings_table() -> list[tuple[str, str, str]]:
    """(key, default, help) for every setting — the CLI, docs and a test read this."""
    rows: list[tuple[str, str, str]] = []

    def walk(cls: Any, prefix: str) -> None:
        hints = _resolved_hints(cls)
        for f in fields(cls):
            tp = hints[f.name]
            if is_dataclass(tp):
                walk(tp, f"{prefix}{f.name}.")
                continue
            if (item_cls := _table_array_item(tp)) is not None:
                walk(item_cls, f"{prefix}{f.name}[].")
                continue
            default: Any = f.default_factory() if callable(f.default_factory) else f.default
            if (not prefix and f.name in {"tenants", "sources"}) or (
                isinstance(default, dict) and len(default) > 3
            ):
                shown = "(see below)"
            else:
                shown = repr(default)
            rows.append((f"{prefix}{f.name}", shown, f.metadata.get("doc", "")))

    walk(Settings, "")
    return rows
