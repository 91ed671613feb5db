"""How far each consumer of each tenant stream is, as the cluster itself records it.

Every integrator, store replica feed and detection worker puts its position into the JetStream
key-value bucket ``NV-PROGRESS`` (R3) — at most every ``every_s`` per tenant, and also while idle,
so an entry that stops changing means a process that went away. `norrvakt cluster status`, the
cluster watch and the console read it from any machine, with nothing but a NATS connection:
no stage's local files need to be reachable.

Key: ``<stage>.<name>.<tenant>`` (``integrator`` | ``store`` | ``detect``; the process's name).
Value: JSON ``{"stage", "name", "tenant", "stream_seq", "journal_seq", "at"}`` (``at`` in µs).
"""

from __future__ import annotations

import json
import logging
import re
import time
from dataclasses import dataclass, field
from typing import Any

from nats.js import JetStreamContext
from nats.js import api as js_api
from nats.js.errors import BucketNotFoundError, NoKeysError
from nats.js.kv import KeyValue

from norrvakt.cluster.buckets import open_bucket
from norrvakt.cluster.position import Position
from norrvakt.event import now_us

log = logging.getLogger(__name__)

PROGRESS_BUCKET = "NV-PROGRESS"
STAGES = ("integrator", "store", "detect")
_UNSAFE = re.compile(r"[^A-Za-z0-9_=-]")  # what a KV key token may hold (dots separate tokens)


def key_token(text: str) -> str:
    return _UNSAFE.sub("_", text) or "_"


@dataclass(frozen=True)
class Progress:
    stage: str
    name: str
    tenant: str
    stream_seq: int
    journal_seq: int
    at: int  # when it was reported (µs)

    def as_dict(self) -> dict[str, Any]:
        return {
            "stage": self.stage,
            "name": self.name,
            "tenant": self.tenant,
            "stream_seq": self.stream_seq,
            "journal_seq": self.journal_seq,
            "at": self.at,
        }


async def progress_bucket(js: JetStreamContext, replicas: int = 3) -> KeyValue:
    return await open_bucket(js, js_api.KeyValueConfig(bucket=PROGRESS_BUCKET, replicas=replicas, history=1))


@dataclass
class ProgressReporter:
    """Reports one process's positions (``stage``, ``name``) — cheap enough for the hot loop:
    a put at most every ``every_s`` per tenant, and a failed put only logged (progress is for
    watching; it must never stop the work it describes)."""

    kv: KeyValue
    stage: str
    name: str
    every_s: float = 2.0
    _sent: dict[str, tuple[float, Position]] = field(default_factory=dict)

    @classmethod
    async def open(cls, js: JetStreamContext, stage: str, name: str, replicas: int = 3) -> ProgressReporter:
        if stage not in STAGES:
            raise ValueError(f"progress stage {stage!r}: one of {', '.join(STAGES)}")
        return cls(await progress_bucket(js, replicas), stage, name)

    async def report(self, tenant: str, pos: Position) -> None:
        now = time.monotonic()
        last = self._sent.get(tenant)
        if last is not None and now - last[0] < self.every_s:
            return
        self._sent[tenant] = (now, pos)
        doc = Progress(self.stage, self.name, tenant, pos.stream_seq, pos.journal_seq, now_us()).as_dict()
        key = ".".join(key_token(p) for p in (self.stage, self.name, tenant))
        try:
            await self.kv.put(key, json.dumps(doc).encode())
        except Exception as exc:  # (a leader election, the cluster away: the next report will do)
            log.debug("progress of %s not reported: %s: %s", key, type(exc).__name__, exc)


async def read_all(js: JetStreamContext) -> list[Progress]:
    """Every consumer's last report (none when nothing reported yet)."""
    try:
        kv = await js.key_value(PROGRESS_BUCKET)
        keys = await kv.keys()
    except (BucketNotFoundError, NoKeysError):
        return []
    out = []
    for key in keys:
        try:
            entry = await kv.get(key)
        except Exception:  # (deleted between keys() and get())
            continue
        doc = json.loads(entry.value or b"{}")
        out.append(
            Progress(
                str(doc["stage"]),
                str(doc["name"]),
                str(doc["tenant"]),
                int(doc["stream_seq"]),
                int(doc["journal_seq"]),
                int(doc["at"]),
            )
        )
    return sorted(out, key=lambda p: (p.tenant, p.stage, p.name))
