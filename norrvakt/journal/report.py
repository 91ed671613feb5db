"""What a verification found: findings (something is wrong) and warnings (the setup is weak).

A **finding** means the logs or their seals are not what they should be — a record altered,
a journal missing, a witness that does not hold what was signed. Any finding makes the
verification fail (``norrvakt verify`` exits 1, the background watch raises a critical
alert). A **warning** says the evidence is weaker than it looks — a witness on the same file
system as the data, the signing key inside the data directory — without anything being wrong
yet; it is printed and reported, and the verification still passes.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

# Pseudo-tenants for what concerns no single tenant.
KEYS = "(keys)"
WITNESSES = "(witnesses)"
SETUP = "(setup)"
STORE = "(store)"


def iso(us: int) -> str:
    """A time in a finding's text: ``2026-12-01T21:45:40Z`` for µs since the epoch."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(us / 1e6))


@dataclass(frozen=True)
class Finding:
    tenant: str
    code: str  # short machine-readable kind, e.g. "record.crc", "checkpoint.signature"
    detail: str
    seq: int | None = None
    segment: str | None = None
    offset: int | None = None

    def where(self) -> str:
        parts = [f"tenant {self.tenant}"]
        if self.seq is not None:
            parts.append(f"seq {self.seq}")
        if self.segment is not None:
            parts.append(f"segment {self.segment}")
        if self.offset is not None:
            parts.append(f"offset {self.offset}")
        return ", ".join(parts)

    def __str__(self) -> str:
        return f"{self.where()}: {self.detail} [{self.code}]"


@dataclass
class TenantResult:
    tenant: str
    records: int = 0  # records read from segments
    disposed: int = 0  # records covered by disposal decisions (hash kept, data deleted)
    tree_size: int = 0
    checkpoints: int = 0
    witnessed: int = 0
    findings: list[Finding] = field(default_factory=list)
    journal: bool = True  # False: the tenant has no journal folder (see the findings for why)


@dataclass
class VerifyReport:
    tenants: list[TenantResult] = field(default_factory=list)
    seconds: float = 0.0
    warnings: list[Finding] = field(default_factory=list)

    @property
    def findings(self) -> list[Finding]:
        return [f for t in self.tenants for f in t.findings]

    @property
    def ok(self) -> bool:
        return not self.findings

    @property
    def records(self) -> int:
        return sum(t.records for t in self.tenants)

    def result(self, tenant: str) -> TenantResult:
        """The result of ``tenant`` (added, empty, if the run had none)."""
        for t in self.tenants:
            if t.tenant == tenant:
                return t
        added = TenantResult(tenant, journal=False)
        self.tenants.append(added)
        return added

    def as_dict(self) -> dict[str, object]:
        return {
            "ok": self.ok,
            "seconds": round(self.seconds, 3),
            "records": self.records,
            "tenants": [
                {
                    "tenant": t.tenant,
                    "records": t.records,
                    "disposed": t.disposed,
                    "checkpoints": t.checkpoints,
                    "witnessed": t.witnessed,
                    "journal": t.journal,
                    "findings": [f.__dict__ for f in t.findings],
                }
                for t in self.tenants
            ],
            "warnings": [w.__dict__ for w in self.warnings],
        }
