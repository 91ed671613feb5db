"""Deterministic Windows-like events for the journal's golden test and its measurements.

The events look like what the HEC ingest of EVTX→JSON records produces (about 1.5 KB of
canonical bytes each, 3 tenants) and include the cases the canonical form treats specially:
non-ASCII text, quotes, backslashes and control characters, empty ECS values (omitted from the
canonical bytes), a raw that is not UTF-8 (``raw_b64``), no fields at all, and a long outlier.
Only ``random.Random`` with a fixed seed is used, so the same events come out on every run.
"""

from __future__ import annotations

import random

import orjson

from norrvakt.event import Event

TENANTS = ("lulea", "boden", "pitea")
_CODES = ("4624", "4625", "4634", "4672", "4688", "4720", "4740", "5140", "7045", "1102")
_USERS = (
    "anna.lind",
    "erik.öberg",
    "sara.näslund",
    "SYSTEM",
    "adm-jonas",
    "kiosk$",
    'o"brien',
    "back\\slash",
)
_HOSTS = ("DC01.lulea.kommun.se", "FS02.boden.local", "WS-1123", "srv-sql-01", "PITEA-EXCH01")
_WORDS = ("logon", "Åtkomst", "nekad", "service", "process", "created", "token", "elevated", "share", "ü€😀")


def _text(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(_WORDS) for _ in range(words))


def windows_like_events(n: int, seed: int = 12, start_ts: int = 1_795_729_970_000_000) -> list[Event]:
    """``n`` events spread over :data:`TENANTS`, the same ones for the same arguments."""
    rng = random.Random(seed)
    events = []
    for i in range(n):
        tenant = TENANTS[rng.randrange(len(TENANTS))]
        code = rng.choice(_CODES)
        user = rng.choice(_USERS)
        host = rng.choice(_HOSTS)
        sid = f"S-1-5-21-{rng.randrange(10**9)}-{rng.randrange(10**9)}-{rng.randrange(10**4)}"
        data = {
            "SubjectUserSid": sid,
            "SubjectUserName": user,
            "SubjectDomainName": "KOMMUN",
            "SubjectLogonId": hex(rng.randrange(1 << 32)),
            "TargetUserName": rng.choice(_USERS),
            "TargetDomainName": "KOMMUN",
            "LogonType": str(rng.choice((2, 3, 5, 7, 10, 11))),
            "LogonProcessName": "NtLmSsp ",
            "AuthenticationPackageName": rng.choice(("NTLM", "Kerberos", "Negotiate")),
            "WorkstationName": rng.choice(_HOSTS),
            "ProcessName": "C:\\Windows\\System32\\svchost.exe",
            "IpAddress": f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(256)}",
            "IpPort": str(rng.randrange(1024, 65536)),
            "CommandLine": f'"C:\\Program Files\\x.exe" /arg "{_text(rng, 3)}"\t-n',
            "Comment": _text(rng, rng.randrange(0, 6)),
        }
        ecs = {
            "event.kind": "event",
            "event.code": code,
            "event.provider": "Microsoft-Windows-Security-Auditing",
            "event.outcome": rng.choice(("success", "failure", "")),  # "" is left out of the bytes
            "winlog.channel": "Security",
            "winlog.record_id": str(1000 + i),
            "host.name": host,
            "user.name": user,
            "source.ip": data["IpAddress"],
            "process.command_line": data["CommandLine"],
        }
        fields = data
        head = dict(list(data.items())[:8])  # the sender's record: its first fields
        record = {"Event": {"System": {"EventID": int(code), "Computer": host}, "EventData": head}}
        raw = orjson.dumps(record)
        message = f"An account was logged on. {user} on {host}: {_text(rng, 12)}"
        if i % 37 == 5:
            raw = b"\xff\xfe" + raw[:200]  # not UTF-8: journaled as raw_b64
        if i % 53 == 7:
            fields = {}
            message = ""
        if i % 97 == 11:
            message = "\x00\x01\x1f control \u2028 " + "x" * 20_000  # a long outlier
        events.append(
            Event(
                tenant=tenant,
                ts=start_ts + i * 1_000 + rng.randrange(1_000),
                ingested=start_ts + i * 1_000 + 5_000,
                source=rng.choice(("hec", "syslog-tcp", "relp")),
                peer=f"192.0.2.{rng.randrange(256)}:{rng.randrange(1024, 65536)}",
                ecs=ecs,
                fields=dict(fields),
                message=message,
                raw=raw,
            )
        )
    return events
