"""`norrvakt cluster …`: the replicated log (NATS JetStream) and the stages that consume it."""

from __future__ import annotations

import asyncio
import json
import signal
from pathlib import Path
from typing import Any

import click

from norrvakt.cli.common import print_json


@click.group("cluster")
def cluster_group() -> None:
    """Run and inspect a cluster's stages (issue 13; docs/operations.md)."""


_NATS_DIR = click.option(
    "--nats-dir",
    type=click.Path(path_type=Path),
    required=True,
    help="Folder of the local nats-server cluster (its cluster.json has the ports and passwords).",
)


@cluster_group.command("nats")
@_NATS_DIR
@click.option("--nodes", default=3, show_default=True)
def nats_cmd(nats_dir: Path, nodes: int) -> None:
    """Start a JetStream cluster of NODES nats-server processes here, until Ctrl-C."""
    from norrvakt.cluster.nats_servers import NatsClusterConfig

    cluster = NatsClusterConfig(nats_dir, nodes=nodes).build()
    cluster.start()
    click.echo("nats-server cluster up: " + ", ".join(cluster.servers()), err=True)
    try:
        signal.sigwait({signal.SIGINT, signal.SIGTERM})
    finally:
        cluster.stop()


@cluster_group.command("integrate")
@_NATS_DIR
@click.option("--tenant", "tenants", multiple=True, required=True, help="Tenant whose stream to integrate.")
@click.option("--journal", "journal_dir", type=click.Path(path_type=Path), required=True)
@click.option("--no-fsync", is_flag=True, help="For tests only: do not fsync the journal.")
@click.option(
    "--name", default=None, help="This integrator's name (the lease holder); default: the host name."
)
@click.option(
    "--key-file",
    type=click.Path(path_type=Path, exists=True),
    default=None,
    help="Ed25519 signing key (PEM), the same on every integrator; default: one made beside the journal.",
)
@click.option("--lease-ttl", default=10.0, show_default=True, help="Seconds a signing lease lasts unrenewed.")
@click.option("--checkpoint-every", default=5.0, show_default=True, help="Seconds between checkpoints.")
def integrate_cmd(
    nats_dir: Path,
    tenants: tuple[str, ...],
    journal_dir: Path,
    no_fsync: bool,
    name: str | None,
    key_file: Path | None,
    lease_ttl: float,
    checkpoint_every: float,
) -> None:
    """Build each tenant's journal from its stream and, holding the tenant's lease, sign its
    checkpoints; until stopped (SIGTERM/Ctrl-C). Run two or more for each tenant."""
    import socket

    from norrvakt.cluster.integrator import IntegratorConfig, state_dir_of
    from norrvakt.cluster.lease import Lease
    from norrvakt.cluster.nats_servers import NatsClusterConfig, connect
    from norrvakt.cluster.progress import ProgressReporter
    from norrvakt.cluster.signing import SigningConfig, TenantSigner, checkpoint_stream
    from norrvakt.cluster.streams import TenantStreamConfig
    from norrvakt.journal.keys import KeyRing
    from norrvakt.journal.log import JournalConfig

    async def run() -> None:
        cluster = NatsClusterConfig(nats_dir).build()
        nc = await connect(cluster, "norrvakt-integrator")
        js = nc.jetstream()
        journal = JournalConfig(directory=journal_dir, fsync=not no_fsync, merkle=True).build()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        for tenant in tenants:
            await TenantStreamConfig().ensure(js, tenant)
        state = state_dir_of(journal_dir)
        integrators = [IntegratorConfig(t, state).build(js, journal) for t in tenants]
        holder = name or socket.gethostname()
        progress = await ProgressReporter.open(js, "integrator", holder)
        for integrator in integrators:
            integrator.progress = progress
        keys = KeyRing(state / "keys", key_file)
        signing = SigningConfig(holder, ttl_s=lease_ttl, every_s=checkpoint_every)
        await checkpoint_stream(js)
        signers = [
            TenantSigner(js, journal, keys, await Lease.open(js, t, holder, lease_ttl), state)
            for t in tenants
        ]
        try:
            await asyncio.gather(
                *(i.run(stop) for i in integrators), *(signing.run(s, stop) for s in signers)
            )
        finally:
            journal.close()
            await nc.close()

    asyncio.run(run())


@cluster_group.command("ingest")
@_NATS_DIR
@click.option(
    "--name", default=None, help="This ingest node's name (in every envelope); default: the host name."
)
@click.option(
    "--http/--no-http",
    default=True,
    show_default=True,
    help="Serve HEC, _bulk and /ingest on server.host:server.port (tokens from state.url).",
)
@click.pass_context
def ingest_cmd(ctx: click.Context, nats_dir: Path, name: str | None, http: bool) -> None:
    """A stateless ingest node: the configuration's listeners, their records parsed here and
    published to the tenants' streams; a sender is acknowledged once JetStream has its records."""
    import logging
    import socket

    from norrvakt.cli.common import settings_of
    from norrvakt.cluster.ingest_sink import JetStreamSink
    from norrvakt.cluster.nats_servers import NatsClusterConfig, connect
    from norrvakt.cluster.publisher import EnvelopePublisher
    from norrvakt.cluster.streams import TenantStreamConfig
    from norrvakt.enrich import ingest as enrich_ingest
    from norrvakt.parsers.mapped import sources as mapped_sources
    from norrvakt.sources.builtin import build_sources
    from norrvakt.sources.limits import plan_connections

    log = logging.getLogger("norrvakt.cluster.ingest")
    settings = settings_of(ctx, existing_data_dir=False)
    node = name or socket.gethostname()

    async def run() -> None:
        for problem in mapped_sources.use(settings.mapping_paths()):
            log.error("source mapping not loaded: %s", problem)
        enrich_ingest.use(enrich_ingest.EnrichConfig.from_settings(settings))
        nc = await connect(NatsClusterConfig(nats_dir).build(), f"norrvakt-ingest-{node}")
        js = nc.jetstream()
        stream_config = TenantStreamConfig()
        sink = JetStreamSink(EnvelopePublisher(js, node), lambda tenant: stream_config.ensure(js, tenant))
        plan_connections(settings)
        sources = build_sources(settings)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        web = None
        if http:
            from norrvakt.cluster.ingest_http import IngestNodeRuntime, SinkPipeline, ingest_app
            from norrvakt.sources.http_guard import web_server
            from norrvakt.state.db import open_state

            pipeline = SinkPipeline(sink)
            runtime = IngestNodeRuntime(settings, open_state(settings.state_url()), pipeline)
            web = web_server(ingest_app(runtime), settings, sink.transport_error)
        try:
            for src in sources:
                await src.start(sink)
                log.info("listening: %s (%s)", src.describe(), src.id)
            if web is not None:
                serving = asyncio.create_task(web.serve())
                log.info("HTTP ingest on %s:%d", settings.server.host, settings.server.port)
                await stop.wait()
                web.should_exit = True
                await serving
            else:
                await stop.wait()
        finally:
            for src in sources:
                await src.stop()
            await sink.stop()
            await nc.close()

    asyncio.run(run())


@cluster_group.command("store")
@_NATS_DIR
@click.option("--tenant", "tenants", multiple=True, required=True, help="Tenant whose stream to store.")
@click.option(
    "--store-dir", type=click.Path(path_type=Path), required=True, help="This replica's chDB folder."
)
@click.option(
    "--batch-rows", default=5000, show_default=True, help="Rows per full insert (fixed per replica)."
)
@click.option("--no-dedupe", is_flag=True, help="At-least-once (the tests' negative control only).")
@click.option(
    "--name", default=None, help="This replica's name (in the cluster's status); default: host-folder."
)
@click.option(
    "--journal",
    "journal_dir",
    type=click.Path(path_type=Path, exists=True, file_okay=False),
    default=None,
    help="An integrator's journal folder (or a copy), read to catch up beyond the stream's retention.",
)
def store_cmd(
    nats_dir: Path,
    tenants: tuple[str, ...],
    store_dir: Path,
    batch_rows: int,
    no_dedupe: bool,
    name: str | None,
    journal_dir: Path | None,
) -> None:
    """One store replica: each tenant's stream into this replica's store, exactly once."""
    import socket

    from norrvakt.cluster.integrator import IntegrationError
    from norrvakt.cluster.nats_servers import NatsClusterConfig, connect
    from norrvakt.cluster.progress import ProgressReporter
    from norrvakt.cluster.store_feed import StoreFeedConfig
    from norrvakt.store.clickhouse import StoreConfig
    from norrvakt.store.writer import StoreWriterConfig

    async def run() -> None:
        store_dir.mkdir(parents=True, exist_ok=True)
        store = StoreConfig(
            dsn=f"chdb://{(store_dir / 'chdb').resolve()}", dedupe_window=0 if no_dedupe else 10_000
        ).build()
        writer = StoreWriterConfig(
            store_dir / "ledger", batch_rows=batch_rows, linger_s=0.5, dedupe=not no_dedupe
        )
        nc = await connect(NatsClusterConfig(nats_dir).build(), "norrvakt-store")
        js = nc.jetstream()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        # one writer per tenant: each owns its tenant's ledger, and the writer is not thread-safe
        crash = _failpoint_after_insert()
        feeds = [
            StoreFeedConfig(t, store_dir / "feed", journal_dir=journal_dir).build(
                js, writer.build(store, after_insert=crash)
            )
            for t in tenants
        ]
        progress = await ProgressReporter.open(
            js, "store", name or f"{socket.gethostname()}-{store_dir.resolve().name}"
        )
        for feed in feeds:
            feed.progress = progress
        try:
            await asyncio.gather(*(f.run(stop) for f in feeds))
        finally:
            store.close()
            await nc.close()

    try:
        asyncio.run(run())
    except IntegrationError as exc:  # the stream and this replica disagree: say why, no traceback
        raise click.ClickException(str(exc)) from None


def _failpoint_after_insert() -> Any:
    """A failpoint for the crash tests (as etcd's gofail): with NORRVAKT_FAILPOINT_STORE_AFTER_INSERT=N
    the process dies at once after its N-th insert, before the writer records it — the one
    crash a kill from outside cannot time."""
    import os

    n = int(os.environ.get("NORRVAKT_FAILPOINT_STORE_AFTER_INSERT", "0") or 0)
    if n <= 0:
        return None
    count = 0

    def hook(_tenant: str, _first: int, _last: int) -> None:
        nonlocal count
        count += 1
        if count == n:
            os._exit(137)

    return hook


@cluster_group.command("detect")
@_NATS_DIR
@click.option("--tenant", "tenants", multiple=True, required=True, help="Tenant this worker may take.")
@click.option("--name", default=None, help="This worker's name (the lease holder); default: the host name.")
@click.option("--state-url", default=None, help="The shared state database (default: state.url).")
@click.option(
    "--lease-ttl", default=10.0, show_default=True, help="Seconds a detection lease lasts unrenewed."
)
@click.option("--tick", "tick_s", default=5.0, show_default=True, help="Seconds between correlation ticks.")
@click.option(
    "--warmup-envelopes",
    default=100,
    show_default=True,
    help="Envelopes before a taken tenant's position re-read to carry its correlation windows over.",
)
@click.option(
    "--watch/--no-watch",
    default=True,
    show_default=True,
    help="Take part in the cluster watch (one worker at a time raises the cluster's alerts).",
)
@click.option(
    "--silent-after",
    default=30.0,
    show_default=True,
    help="Seconds without a report after which the watch calls a stage gone.",
)
@click.pass_context
def detect_cmd(
    ctx: click.Context,
    nats_dir: Path,
    tenants: tuple[str, ...],
    name: str | None,
    state_url: str | None,
    lease_ttl: float,
    tick_s: float,
    warmup_envelopes: int,
    watch: bool,
    silent_after: float,
) -> None:
    """A detection worker: each tenant it holds the lease of, through the rules, its alerts
    into the state database exactly once. Run two or more; they share the tenants. One of them
    at a time also watches the cluster (docs/operations.md: the cluster watch)."""
    import logging
    import socket

    from norrvakt.alerts.dispatcher import Dispatcher
    from norrvakt.alerts.routing import Router
    from norrvakt.alerts.service import AlertService
    from norrvakt.alerts.soc import channels_of
    from norrvakt.cli.common import settings_of
    from norrvakt.cluster.detect_worker import DetectWorkerConfig
    from norrvakt.cluster.nats_servers import NatsClusterConfig, connect
    from norrvakt.cluster.progress import ProgressReporter
    from norrvakt.cluster.watch import WatchConfig
    from norrvakt.detect.live import live_summary, load_engine, rule_overrides
    from norrvakt.enrich.severity import AlertContext
    from norrvakt.modules import TenantModules
    from norrvakt.state.db import open_state

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = settings_of(ctx, existing_data_dir=False)
    holder = name or socket.gethostname()

    async def run() -> None:
        settings.data_path.mkdir(parents=True, exist_ok=True)
        state = open_state(state_url or settings.state_url())
        # The rule settings at start: "off" ones also apply at the alert intake later, "on" ones
        # (a rule beyond the live-set policy) take effect when the worker restarts.
        overrides = await asyncio.to_thread(rule_overrides, state)
        engine, report = await asyncio.to_thread(load_engine, settings, overrides)
        logging.getLogger("norrvakt").info("detection: %s", report.summary())
        if engine.live is not None:
            logging.getLogger("norrvakt").info("detection: %s", live_summary(engine.live))
        alerts = AlertService(state, settings.alerts)
        alerts.level_hook = AlertContext(state).adjust  # assets and directory accounts, as a node's intake
        modules = TenantModules(state)
        dispatcher = Dispatcher(
            state,
            channels_of(settings.alerts.channels),
            Router(settings.alerts.routes),
            public_url=settings.server.public_url,
            notifies=lambda tenant: modules.enabled(tenant, "soc_notification"),
            owner=f"detect:{holder}"[:128],
        )
        alerts.on_created.append(dispatcher.alerts_created)
        await dispatcher.start()
        nc = await connect(NatsClusterConfig(nats_dir).build(), f"norrvakt-detect-{holder}")
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        worker = DetectWorkerConfig(
            tenants,
            holder,
            lease_ttl_s=lease_ttl,
            tick_s=tick_s,
            warmup_envelopes=warmup_envelopes,
            watch=WatchConfig(silent_s=silent_after) if watch else None,
        ).build(nc.jetstream(), alerts, engine)
        worker.progress = await ProgressReporter.open(nc.jetstream(), "detect", holder)
        try:
            await worker.run(stop)
        finally:
            await dispatcher.stop()
            await nc.close()
            state.dispose()

    asyncio.run(run())


@cluster_group.command("status")
@_NATS_DIR
@click.option("--journal", "journal_dir", type=click.Path(path_type=Path), default=None)
@click.option(
    "--store-dir",
    "store_dirs",
    type=click.Path(path_type=Path),
    multiple=True,
    help="A store replica's folder.",
)
@click.option("--state-url", default=None, help="The shared state database: detection positions.")
def status_cmd(
    nats_dir: Path, journal_dir: Path | None, store_dirs: tuple[Path, ...], state_url: str | None
) -> None:
    """Each tenant stream: its leader and replicas, how full it is, who holds its signing and
    detection leases, and how far each consumer is (integrators, store replicas, detection
    workers: what they report to the cluster). With --journal / --store-dir / --state-url, also
    what those local folders and the state database say."""
    from norrvakt.cluster.integrator import state_dir_of
    from norrvakt.cluster.nats_servers import NatsClusterConfig, connect
    from norrvakt.cluster.status import collect
    from norrvakt.state import detect_positions
    from norrvakt.state.db import open_state

    state = open_state(state_url) if state_url else None

    async def run() -> dict[str, Any]:
        cluster = NatsClusterConfig(nats_dir).build()
        nc = await connect(cluster, "norrvakt-status")
        try:
            out = {"servers": cluster.servers(), **await collect(nc.jetstream())}
        finally:
            await nc.close()
        for row in out["streams"]:
            tenant, last = row["tenant"], row["last_seq"]
            journal_seq = None
            if journal_dir is not None:
                pos_file = state_dir_of(journal_dir) / f"integrated-{tenant}.json"
                if pos_file.exists():
                    pos = json.loads(pos_file.read_text())
                    journal_seq = int(pos["journal_seq"])
                    row["integrated_envelope"] = pos["stream_seq"]
                    row["integrator_lag_envelopes"] = last - int(pos["stream_seq"])
                    row["journal_seq"] = journal_seq
            if state is not None:
                with state.connect() as conn:
                    envelope, seq = detect_positions.load(conn, tenant)
                row["detected_envelope"] = envelope
                row["detection_lag_envelopes"] = last - envelope
                row["detected_seq"] = seq
            replicas = []
            for store_dir in store_dirs:
                ledger = store_dir / "ledger" / f"{tenant}.json"
                applied = int(json.loads(ledger.read_text())["stored_through"]) if ledger.exists() else 0
                lag = None if journal_seq is None else journal_seq - applied
                replicas.append({"store": str(store_dir), "applied_seq": applied, "behind_journal": lag})
            if replicas:
                row["store_replicas"] = replicas
        return out

    try:
        print_json(asyncio.run(run()))
    finally:
        if state is not None:
            state.dispose()


COMMANDS = [cluster_group]
