"""A lease per tenant in a JetStream key-value bucket: which process does a tenant's one-at-a-
time work (signing its checkpoints, matching its correlation rules).

The bucket is R3 and its entries expire after ``ttl_s``. The holder renews its key every third
of the TTL with a compare-and-set on the key's revision; a standby tries to create the key and
gets it once the holder stopped renewing (died, or lost the cluster) — within the TTL and one
try. A lease is a hint, not a fence: a holder paused for longer than the TTL may still believe
it holds the key, so the work guarded by a lease carries its own compare-and-set (the checkpoint
log's expected last sequence, the detection position's row).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from nats.errors import Error as NatsError
from nats.js import JetStreamContext
from nats.js import api as js_api
from nats.js.errors import APIError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from norrvakt.cluster.buckets import open_bucket

log = logging.getLogger(__name__)

SIGNING_LEASES = "NV-INTEGRATOR-LEASES"  # who signs a tenant's checkpoints (norrvakt/cluster/signing.py)
DETECT_LEASES = "NV-DETECT-LEASES"  # who matches a tenant's stream (norrvakt/cluster/detect_worker.py)


@dataclass
class Lease:
    """The tenant's lease in ``kv`` held (or wanted) by ``holder``, for ``what`` (in messages)."""

    kv: KeyValue
    tenant: str
    holder: str
    what: str = "signing"
    revision: int | None = None
    acquired: int = 0  # times it was taken (1 for the first holder, more after take-overs)

    @classmethod
    async def open(
        cls,
        js: JetStreamContext,
        tenant: str,
        holder: str,
        ttl_s: float,
        replicas: int = 3,
        *,
        bucket: str = SIGNING_LEASES,
        what: str = "signing",
    ) -> Lease:
        kv = await open_bucket(
            js, js_api.KeyValueConfig(bucket=bucket, ttl=ttl_s, replicas=replicas, history=1)
        )
        return cls(kv, tenant, holder, what)

    @property
    def held(self) -> bool:
        return self.revision is not None

    async def keep(self) -> bool:
        """Renew the lease if held, else try to take it; whether it is held now."""
        try:
            if self.revision is None:
                self.revision = await self.kv.create(self.tenant, self.holder.encode())
                self.acquired += 1
                log.info("%s: %s lease taken by %s", self.tenant, self.what, self.holder)
            else:
                self.revision = await self.kv.update(self.tenant, self.holder.encode(), last=self.revision)
        except (KeyWrongLastSequenceError, APIError) as exc:
            if self.revision is not None:
                log.warning("%s: %s lease lost by %s (%s)", self.tenant, self.what, self.holder, exc)
            self.revision = None
        except (TimeoutError, NatsError):
            # the cluster is away (a leader election, every node restarting): keep what we
            # believe; the guarded work's own compare-and-set covers a stale belief
            pass
        return self.held

    async def release(self) -> None:
        """Give the lease up at a clean stop, so a standby takes it at its next try instead of
        after the TTL (a holder that dies gives it up by not renewing)."""
        if self.revision is None:
            return
        try:
            await self.kv.delete(self.tenant, last=self.revision)
            log.info("%s: %s lease released by %s", self.tenant, self.what, self.holder)
        except Exception as exc:  # (the cluster may be gone: the TTL then frees it)
            log.warning("%s: %s lease not released by %s: %s", self.tenant, self.what, self.holder, exc)
        self.revision = None
