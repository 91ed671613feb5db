"""The replicated log (issue 13): envelopes on a 3-node JetStream cluster of real nats-server
processes, acknowledged only once stored, never lost or doubled when the stream leader dies.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter

import nats
import pytest
from nats.js.errors import APIError

from norrvakt.cluster import envelope, streams
from norrvakt.cluster.nats_servers import NatsCluster, connect
from norrvakt.cluster.publisher import EnvelopePublisher, LogFull
from norrvakt.event import Event


def _event(tenant: str, ident: str, size: int = 200) -> Event:
    return Event(
        tenant,
        1_764_000_000_000_000,
        1_764_000_000_000_001,
        "syslog-tcp",
        "10.1.2.3:514",
        {"event.kind": "event", "host.name": "dc01"},
        {"EventID": "4625", "TargetUserName": "anna"},
        f"log {ident}",
        (f"<13>1 - dc01 app - - - log {ident} " + "x" * size).encode(),
    )


def test_envelopes_keep_every_field_and_their_limits() -> None:
    events = [_event("lulea", f"e{i}", size=2000) for i in range(700)]
    envs = list(envelope.pack("lulea", "ingest-1", events))
    assert [e.count for e in envs] == [e.count for e in envs if e.count <= envelope.MAX_EVENTS]
    assert all(len(e.data) <= envelope.MAX_BYTES + 4096 for e in envs)
    assert sum(e.count for e in envs) == 700 and len(envs) > 2  # 2 KB events: the bytes cap first
    back = [ev for env in envs for ev in envelope.unpack(env.data)[2]]
    assert back == events
    assert envelope.unpack(envs[0].data)[:2] == ("lulea", "ingest-1")
    with pytest.raises(ValueError, match="tenant 'boden'"):
        list(envelope.pack("lulea", "x", [_event("boden", "b")]))
    with pytest.raises(envelope.EnvelopeError, match="not an envelope"):
        envelope.unpack(b"\x93\x01\x02")
    with pytest.raises(envelope.EnvelopeError, match="event 0 of the envelope is malformed"):
        envelope.unpack(envelope.msgpack.packb([1, "lulea", "x", [[1, 2]]]))


async def _read_all(js: nats.js.JetStreamContext, tenant: str) -> tuple[list[int], Counter[str]]:
    info = await js.stream_info(streams.stream_name(tenant))
    seqs, ids = [], Counter[str]()
    for seq in range(info.state.first_seq, info.state.last_seq + 1):
        msg = await js.get_msg(streams.stream_name(tenant), seq)
        seqs.append(msg.seq)
        for e in envelope.unpack(msg.data)[2]:
            ids[e.message.split()[-1]] += 1
    return seqs, ids


@pytest.mark.cluster
def test_the_stream_keeps_its_safety_settings_and_refuses_deletes(cluster: NatsCluster) -> None:
    async def run() -> None:
        nc = await connect(cluster)
        js = nc.jetstream()
        info = await streams.TenantStreamConfig().ensure(js, "kiruna")
        cfg = info.config
        assert (cfg.num_replicas, cfg.deny_delete, cfg.deny_purge) == (3, True, True)
        assert cfg.discard == nats.js.api.DiscardPolicy.NEW and cfg.storage == nats.js.api.StorageType.FILE
        pub = EnvelopePublisher(js, "ingest-1")
        await pub.publish("kiruna", [_event("kiruna", f"k{i}") for i in range(10)])
        with pytest.raises(APIError):
            await js.delete_msg(streams.stream_name("kiruna"), 1)
        with pytest.raises(APIError):
            await js.purge_stream(streams.stream_name("kiruna"))
        assert (await js.stream_info(streams.stream_name("kiruna"))).state.messages == 1
        # ensure() again: the existing stream is checked and kept
        await streams.TenantStreamConfig().ensure(js, "kiruna")
        await nc.close()

    asyncio.run(run())


@pytest.mark.cluster
def test_sigkill_of_the_stream_leader_loses_and_doubles_nothing_acknowledged(cluster: NatsCluster) -> None:
    """Publishers go on through the election: every acknowledged event is in the stream exactly
    once, the stream's sequences have no gap, and the longest publish waited for the stall."""
    tenant = "lulea"

    async def run() -> dict[str, float]:
        nc = await connect(cluster)
        js = nc.jetstream()
        await streams.TenantStreamConfig().ensure(js, tenant)
        pub = EnvelopePublisher(js, "ingest-1")
        acked: list[str] = []
        longest = 0.0
        stop = asyncio.Event()

        async def sender(k: int) -> None:
            nonlocal longest
            i = 0
            while not stop.is_set():
                batch = [f"s{k}-{i + j}" for j in range(200)]
                started = time.monotonic()
                await pub.publish(tenant, [_event(tenant, x) for x in batch])
                longest = max(longest, time.monotonic() - started)
                acked.extend(batch)  # only now may the sender be told
                i += 200

        senders = [asyncio.create_task(sender(k)) for k in range(2)]
        await asyncio.sleep(1.5)
        leader = (await js.stream_info(streams.stream_name(tenant))).cluster.leader
        assert leader is not None
        killed_at = time.monotonic()
        cluster.kill(leader)
        await asyncio.sleep(4.0)
        stop.set()
        await asyncio.gather(*senders)
        cluster.start_node(leader)  # it comes back and catches up
        seqs, ids = await _read_all(js, tenant)
        await nc.close()
        assert seqs == list(range(1, len(seqs) + 1)), "the stream has a gap"
        missing = [x for x in acked if ids[x] == 0]
        doubled = [x for x, n in ids.items() if n > 1]
        assert missing == [] and doubled == [], (missing[:5], doubled[:5])
        assert len(acked) > 4000, len(acked)
        return {"longest_publish_s": longest, "since_kill_s": time.monotonic() - killed_at}

    figures = asyncio.run(run())
    assert figures["longest_publish_s"] < 10, figures  # the goal is a stall ≤ 5 s; reported
    print(f"leader failover: longest publish {figures['longest_publish_s']:.2f} s")


@pytest.mark.cluster
def test_a_full_stream_refuses_new_envelopes_and_keeps_what_it_has(cluster: NatsCluster) -> None:
    tenant = "jokkmokk"

    async def run() -> None:
        nc = await connect(cluster)
        js = nc.jetstream()
        await streams.TenantStreamConfig(max_bytes=64 * 1024).ensure(js, tenant)
        pub = EnvelopePublisher(js, "ingest-1")
        stored: list[str] = []
        with pytest.raises(LogFull, match="the log of jokkmokk is full"):
            for i in range(100):
                batch = [f"j{i}-{j}" for j in range(20)]
                await pub.publish(tenant, [_event(tenant, x, size=400) for x in batch])
                stored.extend(batch)
        assert pub.stats.full[tenant] == 1 and stored
        _, ids = await _read_all(js, tenant)
        assert sorted(ids) == sorted(stored) and set(ids.values()) == {1}
        await nc.close()

    asyncio.run(run())
