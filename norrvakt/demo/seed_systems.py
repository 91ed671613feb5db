"""Demo traffic of the municipalities' own systems (docs/sources.md), and improper-use stories.

Normal life: citizens log in to e-services with BankID or Freja, case workers read the
records of their own cases, school nurses read student-health records, home-care staff open
clients' doors during their visits, phones check in to MDM, archivists search the e-archive,
staff connect over VPN and admins log in to ESXi. The stories are what the follow-up of
improper use looks for: a protected-identity record read by someone not on the case, a
door opened at three in the morning outside any visit, a bulk export of cases, and a
jailbroken phone whose owner then logs in.
"""

from __future__ import annotations

import datetime as dt
import json
import random
from collections.abc import Callable, Mapping
from typing import Any
from zoneinfo import ZoneInfo

from norrvakt.demo.generator import DemoMessage, TenantWorld, _iso
from norrvakt.detect.derived import DerivedFields, WorkingHours

UNITS = ["Individ- och familjeomsorg", "Äldreomsorg", "LSS", "Ekonomiskt bistånd"]
SCHOOLS = ["Hertsöskolan", "Centralskolan", "Tallkrogsskolan", "Björkskataskolan"]
SERVICES = ["bygglov-ansokan", "forskola-ansokan", "ekonomiskt-bistand", "felanmalan", "serveringstillstand"]
PROTECTION = ["none"] * 30 + ["sekretessmarkering", "skyddad_folkbokforing", "fingerade_personuppgifter"]


_ZONE = ZoneInfo("Europe/Stockholm")
_HOURS = DerivedFields(WorkingHours(zone="Europe/Stockholm"))


def office_hours(ts: float) -> bool:
    """Case workers and school nurses read records in working hours (norrvakt.after_hours false):
    the demo must not look like the after-hours misuse that live detection looks for."""
    return not _HOURS.off_hours(int(ts * 1_000_000))


def _local(ts: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(ts, dt.UTC).astimezone(dt.timezone(dt.timedelta(hours=1)))


class SeedSystems:
    """One municipality's systems and the people and cases in them."""

    def __init__(self, world: TenantWorld) -> None:
        self.w = world
        rng: random.Random = world.rng
        self.rng = rng
        self.staff = [f"u-{1000 + i}" for i in range(25)]
        self.names = {
            u: world.users[i % len(world.users)].replace(".", " ").title() for i, u in enumerate(self.staff)
        }
        self.cases: dict[str, dict[str, Any]] = {
            f"IFO-2026-{n:04d}": {
                "subject": f"s-{rng.getrandbits(24):06x}",
                "protection": rng.choice(PROTECTION),
                "users": rng.sample(self.staff[:12], 2),
            }
            for n in range(1, 60)
        }
        self.keys = {f"K-{1000 + i}": self.staff[12 + i % 8] for i in range(8)}
        self.clients = [f"C-{4400 + i}" for i in range(20)]

    # -- normal traffic ---------------------------------------------------------------------

    def eservice_login(self, ts: float, user: str | None = None, ip: str | None = None) -> DemoMessage:
        citizen = user or f"c-{self.rng.getrandbits(16):04x}"
        doc = {
            "ts": _local(ts).isoformat(timespec="milliseconds"),
            "platform": "etjanst",
            "event": "login",
            "user_id": citizen,
            "auth_method": self.rng.choice(["bankid"] * 8 + ["freja"]),
            "result": "success" if self.rng.random() > 0.03 else "failure",
            "client_ip": ip
            or f"81.{self.rng.randint(0, 255)}.{self.rng.randint(0, 255)}.{self.rng.randint(1, 254)}",
            "service": self.rng.choice(SERVICES),
            "session_id": f"s-{self.rng.getrandbits(32):08x}",
        }
        return self._hec(ts, "eservices", doc)

    def case_access(
        self, ts: float, user: str | None = None, case: str | None = None, action: str = "read"
    ) -> DemoMessage:
        case_id = case or self.rng.choice(list(self.cases))
        info = self.cases[case_id]
        who = user or self.rng.choice(info["users"])
        line = ";".join(
            [
                _local(ts).strftime("%Y-%m-%d %H:%M:%S"),
                who,
                self.names[who],
                "handlaggare",
                self.rng.choice(UNITS),
                action,
                info["subject"],
                info["protection"],
                case_id,
                ",".join(info["users"]),
                "",
                self.w.ip(),
            ]
        )
        return self.w.syslog5424(ts, f"{self.w.tenant}-app01", "socialsystem", 3321, line, pri=134)

    def health_access(self, ts: float) -> DemoMessage:
        nurse = self.rng.choice(self.staff[:6])
        doc = {
            "timestamp": _local(ts).isoformat(timespec="seconds"),
            "system": "elevhalsa",
            "user": nurse,
            "role": "skolskoterska",
            "unit": self.rng.choice(SCHOOLS),
            "action": self.rng.choice(["read"] * 5 + ["print"]),
            "patient_id": f"p-{self.rng.getrandbits(20):05x}",
            "protection": self.rng.choice(PROTECTION),
            "journal_id": f"J-{self.rng.randint(10000, 99999)}",
            "assigned_users": [nurse],
            "care_relation": "yes",
            "client_ip": self.w.ip(),
        }
        return self._hec(ts, "elevhalsa", doc)

    def door_unlock(self, ts: float, key: str | None = None, visit: bool = True) -> DemoMessage:
        key_id = key or self.rng.choice(list(self.keys))
        start = _local(ts - 600) if visit else _local(ts + 5 * 3600)
        end = start + dt.timedelta(minutes=30)
        line = (
            f"event=unlock result=granted key_id={key_id} user={self.keys[key_id]} "
            f"door_id=D-{self.rng.randint(100, 999)} client_id={self.rng.choice(self.clients)} "
            f"site=hemtjanst visit_start={start.isoformat(timespec='seconds')} "
            f"visit_end={end.isoformat(timespec='seconds')} "
            f"time={_local(ts).isoformat(timespec='seconds')}"
        )
        return self.w.syslog5424(ts, f"{self.w.tenant}-lockgw", "phoniro", 77, line, pri=134)

    def mdm_checkin(self, ts: float, user: str | None = None, jailbroken: bool = False) -> DemoMessage:
        owner = user or self.rng.choice(self.w.users)
        doc = {
            "time": _iso(ts),
            "source": "mdm",
            "event": "compliance_changed" if jailbroken else "check_in",
            "device_id": f"D-{abs(hash(owner)) % 9000 + 1000}",
            "device_name": f"iPhone-{owner.split('.')[0]}",
            "user": f"{owner}@{self.w.tenant}.se",
            "platform": "iOS 18.1",
            "compliance": "noncompliant" if jailbroken else "compliant",
            "jailbroken": jailbroken,
            "lost_mode": False,
            "ip": f"81.2.{self.rng.randint(0, 255)}.{self.rng.randint(1, 254)}",
        }
        return self._hec(ts, "mdm", doc)

    def archive_search(self, ts: float) -> DemoMessage:
        doc = {
            "timestamp": _local(ts).isoformat(timespec="seconds"),
            "system": "e-arkiv",
            "action": self.rng.choice(["search", "search", "retrieve", "delivery"]),
            "user": self.rng.choice(self.staff),
            "package_id": f"SIP-{self.rng.randint(2015, 2025)}-{self.rng.randint(1, 999):05d}",
            "archive_unit": self.rng.choice(
                ["Socialnämnden", "Barn- och utbildningsnämnden", "Kommunstyrelsen"]
            ),
            "record_count": self.rng.randint(1, 40),
            "result": "ok",
        }
        return self._hec(ts, "earkiv", doc)

    def vpn_login(self, ts: float) -> DemoMessage:
        user = self.rng.choice(self.w.users)
        ip = f"81.{self.rng.randint(0, 255)}.{self.rng.randint(0, 255)}.{self.rng.randint(1, 254)}"
        text = (
            f"%ASA-6-113039: Group <GroupPolicy_Kommun> User <{user}> IP <{ip}> "
            "AnyConnect parent session started."
        )
        return self.w.syslog5424(ts, f"{self.w.tenant}-asa01", "asa", 0, text, pri=166)

    def esxi_login(self, ts: float) -> DemoMessage:
        text = (
            "info hostd[2099] [Originator@6876 sub=Vimsvc.ha-eventmgr] "
            f"Event {self.rng.randint(1000, 9999)} : "
            f"User root@{self.w.ip()} logged in as VMware-client/6.5.0"
        )
        return self.w.syslog5424(ts, f"{self.w.tenant}-esxi01", "Hostd", 2099, text, pri=166)

    def background(self, ts: float) -> DemoMessage:
        records: list[Callable[[float], DemoMessage]] = (
            [self.case_access, self.case_access, self.health_access] if office_hours(ts) else []
        )
        makers: list[Callable[[float], DemoMessage]] = [
            self.eservice_login,
            self.eservice_login,
            *records,
            self.door_unlock,
            self.mdm_checkin,
            self.archive_search,
            self.vpn_login,
            self.esxi_login,
        ]
        return self.rng.choice(makers)(ts)

    def _hec(self, ts: float, sourcetype: str, doc: Mapping[str, object]) -> DemoMessage:
        return DemoMessage(
            "hec",
            {
                "time": round(ts, 3),
                "host": f"{self.w.tenant}-{sourcetype}",
                "sourcetype": sourcetype,
                "event": json.loads(json.dumps(doc)),
            },
        )


# -- improper-use stories ------------------------------------------------------------------------


def protected_identity_access(
    world: TenantWorld, systems: SeedSystems, ts: float
) -> list[tuple[float, DemoMessage]]:
    """A case worker who is not on the case reads a protected person's record."""
    case_id = next(
        (c for c, i in systems.cases.items() if i["protection"] != "none"), next(iter(systems.cases))
    )
    outsider = next(u for u in systems.staff[:12] if u not in systems.cases[case_id]["users"])
    return [
        (ts, systems.case_access(ts, user=outsider, case=case_id)),
        (ts + 40, systems.case_access(ts + 40, user=outsider, case=case_id, action="print")),
    ]


def night_door(world: TenantWorld, systems: SeedSystems, ts: float) -> list[tuple[float, DemoMessage]]:
    """A care worker's key opens a client's door far outside the scheduled visit."""
    return [(ts, systems.door_unlock(ts, visit=False))]


def bulk_export(world: TenantWorld, systems: SeedSystems, ts: float) -> list[tuple[float, DemoMessage]]:
    doc = {
        "ts": _local(ts).isoformat(timespec="milliseconds"),
        "platform": "etjanst",
        "event": "case.export",
        "user_id": systems.staff[3],
        "result": "success",
        "client_ip": world.ip(),
        "service": "arendehantering",
        "case_id": "*",
        "record_count": 4800,
    }
    return [(ts, systems._hec(ts, "eservices", doc))]


def jailbroken_then_login(
    world: TenantWorld, systems: SeedSystems, ts: float
) -> list[tuple[float, DemoMessage]]:
    user = world.users[0]
    return [
        (ts, systems.mdm_checkin(ts, user=user, jailbroken=True)),
        (ts + 60, systems.eservice_login(ts + 60, user=f"{user}@{world.tenant}.se")),
    ]


def night_reading(world: TenantWorld, systems: SeedSystems, ts: float) -> list[tuple[float, DemoMessage]]:
    """A case worker read six records late last evening (23:10–23:35, logged now): repeated
    access outside working hours, the pattern the follow-up and live detection look for."""
    now = dt.datetime.fromtimestamp(ts, _ZONE)
    evening = now.replace(hour=23, minute=10, second=0, microsecond=0)
    if evening + dt.timedelta(minutes=30) > now:
        evening -= dt.timedelta(days=1)
    reader = systems.staff[5]
    own = [c for c, info in systems.cases.items() if reader in info["users"]] or list(systems.cases)
    out = []
    for i in range(6):
        at = evening.timestamp() + i * 300
        out.append((ts + i, systems.case_access(at, user=reader, case=own[i % len(own)])))
    return out


IMPROPER_USE_STORIES = {
    "protected_identity_access": protected_identity_access,
    "door_outside_visit": night_door,
    "bulk_case_export": bulk_export,
    "jailbroken_device_login": jailbroken_then_login,
    "night_reading": night_reading,
}
