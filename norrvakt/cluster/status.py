"""The cluster's state as the SOC sees it: each tenant stream, its replicas, its leases, and how
far every consumer of it is — read from JetStream alone (stream info, the lease buckets and the
progress bucket), so `norrvakt cluster status`, the cluster watch and the console show the same
from any machine.

    doc = await collect(js)                 # {"at": µs, "streams": [{tenant, leader, …}, …]}
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from nats.js import JetStreamContext

from norrvakt.cluster import streams
from norrvakt.cluster.lease import DETECT_LEASES, SIGNING_LEASES
from norrvakt.cluster.progress import read_all
from norrvakt.event import now_us


async def holder_of(js: JetStreamContext, bucket: str, tenant: str) -> str | None:
    """Who holds ``tenant``'s lease in ``bucket`` (None: nobody, or no such bucket yet)."""
    try:
        entry = await (await js.key_value(bucket)).get(tenant)
    except Exception:  # no bucket, no key, or a deleted key: nobody holds it
        return None
    return entry.value.decode() if entry.value else None


async def collect(js: JetStreamContext) -> dict[str, Any]:
    now = now_us()
    progress = await read_all(js)
    out: dict[str, Any] = {"at": now, "streams": []}
    for info in await js.streams_info():
        name = info.config.name or ""
        if not name.startswith(streams.STREAM_PREFIX):
            continue
        tenant = name.removeprefix(streams.STREAM_PREFIX)
        last = int(info.state.last_seq or 0)
        peers = info.cluster.replicas or [] if info.cluster else []
        row: dict[str, Any] = {
            "tenant": tenant,
            "leader": info.cluster.leader if info.cluster else None,
            "replicas": [
                {
                    "name": r.name,
                    "current": bool(r.current),
                    "offline": bool(r.offline),
                    "lag": r.lag,
                    "seen_s": round(r.active / 1e9, 1) if r.active is not None else None,
                }
                for r in peers
            ],
            "envelopes": info.state.messages,
            "last_seq": last,
            "bytes": info.state.bytes,
            "max_bytes": info.config.max_bytes,
            "max_msgs": info.config.max_msgs,
            "free_bytes": max(0, most - (info.state.bytes or 0))
            if (most := info.config.max_bytes or 0) > 0
            else None,
            "full": _fullness(
                info.state.bytes, info.config.max_bytes, info.state.messages, info.config.max_msgs
            ),
            "signing_lease": await holder_of(js, SIGNING_LEASES, tenant),
            "detection_lease": await holder_of(js, DETECT_LEASES, tenant),
            "consumers": [
                {
                    **p.as_dict(),
                    "behind_envelopes": max(0, last - p.stream_seq),
                    "age_s": round((now - p.at) / 1e6, 1),
                }
                for p in progress
                if p.tenant == tenant
            ],
        }
        out["streams"].append(row)
    out["streams"].sort(key=lambda r: r["tenant"])
    return out


def _fullness(used: int | None, most: int | None, msgs: int | None, most_msgs: int | None) -> float:
    """How full the stream is, 0..1, by whichever of its limits is nearer (no limit: 0)."""
    shares = [0.0]
    if most and most > 0:
        shares.append((used or 0) / most)
    if most_msgs and most_msgs > 0:
        shares.append((msgs or 0) / most_msgs)
    return round(max(shares), 4)


async def read_status(nats_dir: Path, timeout_s: float = 5.0) -> dict[str, Any]:
    """:func:`collect` over a connection of its own (a web node's page, a monitoring script);
    an unreachable cluster is an ``error``, not an exception, within ``timeout_s``."""
    from norrvakt.cluster.nats_servers import NatsClusterConfig, connect

    try:
        cluster = NatsClusterConfig(nats_dir).build()
        nc = await asyncio.wait_for(connect(cluster, "norrvakt-status"), timeout_s)
    except Exception as exc:  # no cluster.json, no server answering
        return {"at": now_us(), "streams": [], "error": f"{type(exc).__name__}: {exc}"}
    try:
        return await asyncio.wait_for(collect(nc.jetstream()), timeout_s)
    except Exception as exc:
        return {"at": now_us(), "streams": [], "error": f"{type(exc).__name__}: {exc}"}
    finally:
        await nc.close()
