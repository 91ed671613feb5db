"""Realistic log lines for the demo: Windows logons and process starts, sshd, sudo, firewall
CEF, web access — and attack stories (password spraying, brute force then success, an audit
log cleared). Pure functions of a random generator and a clock, so tests can replay them.
"""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass
from typing import Any

FIRST = [
    "anna",
    "erik",
    "maria",
    "lars",
    "karin",
    "johan",
    "eva",
    "per",
    "sara",
    "nils",
    "ida",
    "olof",
    "elin",
    "mats",
    "sofia",
    "jonas",
    "linnea",
    "gustav",
    "frida",
    "henrik",
]
LAST = [
    "lindqvist",
    "nilsson",
    "johansson",
    "karlsson",
    "andersson",
    "lundberg",
    "holmgren",
    "bergström",
    "öberg",
    "sundqvist",
    "strand",
    "lindberg",
    "isaksson",
    "marklund",
    "nordin",
    "wikström",
]
SPRAY_USERS = [
    "administrator",
    "admin",
    "backup",
    "svc_sql",
    "test",
    "guest",
    "scanner",
    "helpdesk",
    "it",
    "ekonomi",
    "reception",
    "support",
    "sql",
    "web",
    "print",
    "vpn",
    "user1",
    "kiosk",
    "skola",
    "rektor",
    "socialtjanst",
    "hr",
    "lon",
    "växel",
    "arkiv",
]
ATTACKER_IPS = ["185.220.101.45", "45.155.205.233", "194.26.192.64", "91.240.118.172", "103.145.13.5"]
PUBLIC_DESTS = ["93.184.216.34", "151.101.1.69", "142.250.74.110", "20.190.160.20", "13.107.42.14"]
PROCESSES = [
    (
        r"C:\Windows\System32\svchost.exe",
        r"C:\Windows\system32\svchost.exe -k netsvcs -p -s Schedule",
        r"C:\Windows\System32\services.exe",
    ),
    (
        r"C:\Program Files\Microsoft Office\root\Office16\OUTLOOK.EXE",
        r'"OUTLOOK.EXE"',
        r"C:\Windows\explorer.exe",
    ),
    (
        r"C:\Program Files\Google\Chrome\Application\chrome.exe",
        r'"chrome.exe" --type=renderer',
        r"C:\Windows\explorer.exe",
    ),
    (r"C:\Windows\System32\cmd.exe", r'cmd.exe /c "ipconfig /all"', r"C:\Windows\explorer.exe"),
    (
        r"C:\Windows\System32\WindowsPowerShell\v1.0\powershell.exe",
        r"powershell.exe -NoProfile Get-Service",
        r"C:\Windows\explorer.exe",
    ),
]
WEB_PATHS = [
    "/",
    "/e-tjanster/",
    "/e-tjanster/login",
    "/mina-sidor",
    "/api/arenden",
    "/static/app.js",
    "/bygglov/ansokan",
    "/skola/anmalan",
    "/favicon.ico",
    "/wp-login.php",
    "/.env",
]
AGENTS = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0 Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148",
    "curl/8.5.0",
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
]


@dataclass(frozen=True)
class DemoMessage:
    """One message and how to send it: ``transport`` is syslog (text) or hec (JSON event)."""

    transport: str  # "syslog" | "syslog-udp" | "hec"
    body: Any  # str for syslog, dict for hec


def _iso(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f") + "Z"


def _bsd(ts: float) -> str:
    """RFC 3164 timestamp in Swedish winter time (``Nov  6 23:05:01``), as local syslogds write it."""
    local = dt.datetime.fromtimestamp(ts, dt.UTC).astimezone(dt.timezone(dt.timedelta(hours=1)))
    return f"{local.strftime('%b')} {local.day:>2} {local.strftime('%H:%M:%S')}"


class TenantWorld:
    """The hosts, people and networks of one municipality."""

    def __init__(self, tenant: str, index: int, rng: random.Random) -> None:
        self.tenant = tenant
        self.rng = rng
        self.domain = tenant.upper()[:15]
        self.net = f"10.{20 + index}"
        self.users = sorted({f"{rng.choice(FIRST)}.{rng.choice(LAST)}" for _ in range(30)})
        self.dc = f"{tenant}-dc01"
        self.workstations = [f"{tenant}-ws{n:03d}" for n in range(1, 25)]
        self.servers = [f"{tenant}-app01", f"{tenant}-web01", f"{tenant}-db01"]
        self.firewall_host = f"{tenant}-fw01"
        self.record_id = rng.randint(100_000, 900_000)

    def ip(self) -> str:
        return f"{self.net}.{self.rng.randint(1, 20)}.{self.rng.randint(2, 250)}"

    def next_record(self) -> int:
        self.record_id += 1
        return self.record_id

    # -- Windows ---------------------------------------------------------------------------

    def windows(
        self,
        ts: float,
        event_id: int,
        computer: str,
        data: dict[str, Any],
        channel: str = "Security",
        provider: str = "Microsoft-Windows-Security-Auditing",
    ) -> DemoMessage:
        event = {
            "Event": {
                "#attributes": {"xmlns": "http://schemas.microsoft.com/win/2004/08/events/event"},
                "System": {
                    "Provider": {
                        "#attributes": {"Name": provider, "Guid": "{54849625-5478-4994-A5BA-3E3B0328C30D}"}
                    },
                    "EventID": event_id,
                    "Version": 2 if event_id == 4624 else 0,
                    "Level": 0,
                    "Task": 12544,
                    "Opcode": 0,
                    "Keywords": "0x8020000000000000" if event_id != 4625 else "0x8010000000000000",
                    "TimeCreated": {"#attributes": {"SystemTime": _iso(ts)}},
                    "EventRecordID": self.next_record(),
                    "Correlation": None,
                    "Execution": {"#attributes": {"ProcessID": 636, "ThreadID": self.rng.randint(700, 9000)}},
                    "Channel": channel,
                    "Computer": f"{computer}.{self.tenant}.local",
                    "Security": None,
                },
                "EventData": data,
            }
        }
        return DemoMessage(
            "hec",
            {
                "time": round(ts, 3),
                "host": computer,
                "sourcetype": "WinEventLog",
                "source": channel,
                "event": event,
            },
        )

    def logon(
        self, ts: float, user: str, ip: str, success: bool, logon_type: int = 3, computer: str | None = None
    ) -> DemoMessage:
        data: dict[str, Any] = {
            "SubjectUserSid": "S-1-0-0",
            "SubjectUserName": "-",
            "SubjectDomainName": "-",
            "SubjectLogonId": "0x0",
            "TargetUserSid": "S-1-0-0"
            if not success
            else f"S-1-5-21-3623811015-3361044348-30300820-{1000 + len(user)}",
            "TargetUserName": user,
            "TargetDomainName": self.domain,
            "LogonType": logon_type,
            "LogonProcessName": "NtLmSsp",
            "AuthenticationPackageName": "NTLM",
            "WorkstationName": "-",
            "IpAddress": ip,
            "IpPort": str(self.rng.randint(49152, 65535)),
            "ProcessName": "-",
        }
        if success:
            data.update(
                {
                    "TargetLogonId": hex(self.rng.randint(0x100000, 0xFFFFFF)),
                    "LogonGuid": "{00000000-0000-0000-0000-000000000000}",
                    "ElevatedToken": "%%1843",
                    "ImpersonationLevel": "%%1833",
                }
            )
            return self.windows(ts, 4624, computer or self.dc, data)
        data.update(
            {
                "Status": "0xc000006d",
                "SubStatus": "0xc0000064" if user in SPRAY_USERS else "0xc000006a",
                "FailureReason": "%%2313",
            }
        )
        return self.windows(ts, 4625, computer or self.dc, data)

    def process(self, ts: float) -> DemoMessage:
        image, cmd, parent = self.rng.choice(PROCESSES)
        host = self.rng.choice(self.workstations)
        user = self.rng.choice(self.users)
        data = {
            "RuleName": "-",
            "UtcTime": _iso(ts)[:-4].replace("T", " "),
            "ProcessGuid": f"{{{self.rng.getrandbits(32):08x}-1111-2222-3333-444455556666}}",
            "ProcessId": self.rng.randint(1000, 20000),
            "Image": image,
            "FileVersion": "10.0.19041.1",
            "CommandLine": cmd,
            "CurrentDirectory": "C:\\Users\\" + user + "\\",
            "User": f"{self.domain}\\{user}",
            "LogonId": "0x3e7",
            "IntegrityLevel": "Medium",
            "Hashes": f"SHA256={self.rng.getrandbits(256):064x}",
            "ParentImage": parent,
            "ParentCommandLine": parent,
            "ParentUser": f"{self.domain}\\{user}",
        }
        return self.windows(
            ts,
            1,
            host,
            data,
            channel="Microsoft-Windows-Sysmon/Operational",
            provider="Microsoft-Windows-Sysmon",
        )

    def audit_log_cleared(self, ts: float, user: str) -> DemoMessage:
        event = self.windows(ts, 1102, self.dc, {}, provider="Microsoft-Windows-Eventlog")
        body = event.body
        del body["event"]["Event"]["EventData"]
        body["event"]["Event"]["UserData"] = {
            "LogFileCleared": {
                "#attributes": {"xmlns": "http://manifests.microsoft.com/win/2004/08/windows/eventlog"},
                "SubjectUserSid": "S-1-5-21-3623811015-3361044348-30300820-1013",
                "SubjectUserName": user,
                "SubjectDomainName": self.domain,
                "SubjectLogonId": "0x1a2b3c",
            }
        }
        return event

    # -- Linux, firewall, web -----------------------------------------------------------------

    def syslog5424(self, ts: float, host: str, app: str, pid: int, msg: str, pri: int = 38) -> DemoMessage:
        return DemoMessage("syslog", f"<{pri}>1 {_iso(ts)} {host} {app} {pid} - - {msg}")

    def sshd(self, ts: float, user: str, ip: str, ok: bool, host: str | None = None) -> DemoMessage:
        verb = "Accepted password" if ok else "Failed password"
        port = self.rng.randint(30000, 65000)
        return self.syslog5424(
            ts,
            host or self.rng.choice(self.servers),
            "sshd",
            self.rng.randint(1000, 30000),
            f"{verb} for {user} from {ip} port {port} ssh2",
            pri=38 if ok else 36,
        )

    def sudo(self, ts: float) -> DemoMessage:
        user = self.rng.choice(self.users).split(".")[0]
        cmd = self.rng.choice(
            ["/usr/bin/systemctl restart nginx", "/usr/bin/apt-get update", "/bin/journalctl -u app"]
        )
        return self.syslog5424(
            ts,
            self.rng.choice(self.servers),
            "sudo",
            self.rng.randint(1000, 30000),
            f"{user} : TTY=pts/0 ; PWD=/home/{user} ; USER=root ; COMMAND={cmd}",
            pri=85,
        )

    def firewall(self, ts: float) -> DemoMessage:
        src = self.ip()
        dst = self.rng.choice(PUBLIC_DESTS)
        dpt = self.rng.choice([443, 443, 443, 80, 53, 123, 22, 3389])
        act = "deny" if dpt in (22, 3389) else "accept"
        sev = 5 if act == "deny" else 3
        cef = (
            f"CEF:0|Fortinet|FortiGate-100F|7.2.8|0000000013|traffic:forward {act}|{sev}|"
            f"src={src} spt={self.rng.randint(1024, 65535)} dst={dst} dpt={dpt} proto=6 act={act} "
            f"deviceInboundInterface=internal deviceOutboundInterface=wan1 cs1Label=policyid cs1=12"
        )
        return DemoMessage("syslog-udp", f"<134>{_bsd(ts)} {self.firewall_host} {cef}")

    def web(self, ts: float) -> DemoMessage:
        ip = self.rng.choice(
            [
                self.ip(),
                f"81.{self.rng.randint(0, 255)}.{self.rng.randint(0, 255)}.{self.rng.randint(1, 254)}",
            ]
        )
        path = self.rng.choice(WEB_PATHS)
        status = 404 if path in ("/wp-login.php", "/.env") else self.rng.choice([200, 200, 200, 302, 304])
        local = dt.datetime.fromtimestamp(ts, dt.UTC).astimezone(dt.timezone(dt.timedelta(hours=1)))
        line = (
            f'{ip} - - [{local.strftime("%d/%b/%Y:%H:%M:%S %z")}] "GET {path} HTTP/1.1" {status} '
            f'{self.rng.randint(200, 50000)} "-" "{self.rng.choice(AGENTS)}"'
        )
        return self.syslog5424(ts, f"{self.tenant}-web01", "nginx", 812, line, pri=190)

    def background(self, ts: float) -> DemoMessage:
        """One event of ordinary daily traffic."""
        roll = self.rng.random()
        if roll < 0.25:
            user = self.rng.choice(self.users)
            ok = self.rng.random() > 0.05
            return self.logon(
                ts,
                user,
                self.ip(),
                ok,
                logon_type=self.rng.choice([2, 3, 3, 10]),
                computer=self.rng.choice([self.dc, *self.workstations[:3]]),
            )
        if roll < 0.40:
            return self.process(ts)
        if roll < 0.50:
            return self.sshd(ts, self.rng.choice(self.users).split(".")[0], self.ip(), True)
        if roll < 0.55:
            return self.sudo(ts)
        if roll < 0.80:
            return self.firewall(ts)
        return self.web(ts)


# -- attack stories ----------------------------------------------------------------------------


def password_spray(world: TenantWorld, ts: float) -> list[tuple[float, DemoMessage]]:
    """One outside address tries many accounts with one password each, over a minute."""
    ip = world.rng.choice(ATTACKER_IPS)
    users = world.rng.sample(SPRAY_USERS, 20) + world.rng.sample(world.users, 5)
    return [(ts + i * 2.0, world.logon(ts + i * 2.0, u, ip, success=False)) for i, u in enumerate(users)]


def brute_force_then_success(world: TenantWorld, ts: float) -> list[tuple[float, DemoMessage]]:
    """Many failed SSH passwords for one account from one address, then a success."""
    ip = world.rng.choice(ATTACKER_IPS)
    user = world.rng.choice(world.users).split(".")[0]
    host = f"{world.tenant}-web01"
    out = [(ts + i * 0.5, world.sshd(ts + i * 0.5, user, ip, False, host)) for i in range(30)]
    out.append((ts + 16.0, world.sshd(ts + 16.0, user, ip, True, host)))
    return out


def audit_log_clear(world: TenantWorld, ts: float) -> list[tuple[float, DemoMessage]]:
    user = world.rng.choice(world.users)
    return [(ts, world.audit_log_cleared(ts, user))]


STORIES = {
    "password_spraying": password_spray,
    "brute_force_then_success": brute_force_then_success,
    "audit_log_cleared": audit_log_clear,
}
