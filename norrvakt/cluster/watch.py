"""The cluster watch: what in the cluster's status the SOC must hear about, as alerts.

One process at a time watches (a detection worker holding the ``_watch`` key of the detection
leases; norrvakt/cluster/detect_worker.py): every tick it reads the status
(norrvakt/cluster/status.py) and raises an alert of the system tenant for each problem below.
Alerts are deduplicated on (check, subject), so a problem that lasts raises one alert whose
count grows, and one that comes back after the SOC closed it raises a new one.

| check | when | level |
|---|---|---|
| ``stream_full`` | ``full_at`` full, or less room than an envelope (senders get refused) | critical |
| ``no_leader`` | a tenant stream has no leader (no writes possible) | critical |
| ``replica_offline`` | a stream replica is offline or more than ``replica_lag`` behind | high |
| ``consumer_gone`` | an integrator or store replica stopped reporting, or the tenant's detection did | high |
| ``consumer_behind`` | one is more than ``behind_envelopes`` behind the stream | medium |
| ``no_signer`` / ``no_detector`` | integrators / detection workers report, none holds the lease | high |
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from norrvakt.alerts.model import AlertInput
from norrvakt.event import SYSTEM_TENANT

RULE_PREFIX = "norrvakt-cluster-"
TITLES = {
    "stream_full": "Cluster: a tenant's log stream is (nearly) full — senders are refused at 100 %",
    "no_leader": "Cluster: a tenant's log stream has no leader",
    "replica_offline": "Cluster: a log stream replica is offline or behind",
    "consumer_gone": "Cluster: a stage stopped reporting (integrator, store replica or detection)",
    "consumer_behind": "Cluster: a stage is falling behind its tenant's stream",
    "no_signer": "Cluster: no integrator signs a tenant's checkpoints",
    "no_detector": "Cluster: no detection worker holds a tenant",
}
LEVELS = {
    "stream_full": "critical",
    "no_leader": "critical",
    "replica_offline": "high",
    "consumer_gone": "high",
    "consumer_behind": "medium",
    "no_signer": "high",
    "no_detector": "high",
}


@dataclass(frozen=True)
class WatchConfig:
    full_at: float = 0.9
    free_below: int = 256 * 1024  # …or less room than one envelope (ingest packs ≤ 256 KB)
    replica_lag: int = 1000  # operations
    behind_envelopes: int = 2000  # ≈ 1M events of 500 per envelope
    silent_s: float = 30.0  # a consumer reports every 2 s, also while idle


@dataclass(frozen=True)
class Problem:
    check: str
    subject: str  # the tenant, or tenant/replica or tenant/stage/name
    detail: str

    def as_input(self, now: int) -> AlertInput:
        return AlertInput(
            tenant=SYSTEM_TENANT,
            rule_id=RULE_PREFIX + self.check,
            rule_title=TITLES[self.check],
            level=LEVELS[self.check],
            tags=["attack.impact", "attack.t1499"] if self.check == "stream_full" else [],
            event_seq=0,
            event_ts=now,
            entities={
                "norrvakt.check": self.check,
                "norrvakt.subject": self.subject,
                "norrvakt.detail": self.detail[:200],
            },
            dedupe_key_fields=["norrvakt.check", "norrvakt.subject"],
            source="cluster",
        )


def problems(status: dict[str, Any], cfg: WatchConfig) -> list[Problem]:
    out: list[Problem] = []
    for row in status.get("streams", []):
        tenant = str(row["tenant"])
        free = row.get("free_bytes")
        if row["full"] >= cfg.full_at or (free is not None and free < cfg.free_below):
            out.append(
                Problem(
                    "stream_full",
                    tenant,
                    f"{row['full']:.0%} full ({row['bytes']} of {row['max_bytes']} bytes, "
                    f"{row['envelopes']} envelopes)",
                )
            )
        if not row.get("leader"):
            out.append(Problem("no_leader", tenant, "the stream has no leader"))
        for r in row.get("replicas", []):
            if r["offline"] or (r.get("lag") or 0) > cfg.replica_lag:
                why = "offline" if r["offline"] else f"{r['lag']} operations behind"
                out.append(Problem("replica_offline", f"{tenant}/{r['name']}", f"replica {r['name']}: {why}"))
        stages: set[str] = set()
        consumers = row.get("consumers", [])
        # only the lease holder matches a tenant: the one that handed it over is not missed
        detecting = any(c["stage"] == "detect" and c["age_s"] <= cfg.silent_s for c in consumers)
        for c in consumers:
            stages.add(c["stage"])
            subject = f"{tenant}/{c['stage']}/{c['name']}"
            if c["age_s"] > cfg.silent_s and not (c["stage"] == "detect" and detecting):
                out.append(
                    Problem(
                        "consumer_gone",
                        subject,
                        f"{c['stage']} {c['name']}: no report for {c['age_s']:.0f} s "
                        f"(last at envelope {c['stream_seq']})",
                    )
                )
            elif c["behind_envelopes"] > cfg.behind_envelopes:
                out.append(
                    Problem(
                        "consumer_behind",
                        subject,
                        f"{c['stage']} {c['name']}: {c['behind_envelopes']} envelopes behind",
                    )
                )
        if "integrator" in stages and not row.get("signing_lease"):
            out.append(Problem("no_signer", tenant, "integrators report, none holds the signing lease"))
        if "detect" in stages and not row.get("detection_lease"):
            out.append(Problem("no_detector", tenant, "detection workers report, none holds the tenant"))
    return out
