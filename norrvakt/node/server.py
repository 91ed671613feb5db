"""`norrvakt serve`: the pipeline, the listeners and the web server in one event loop."""

from __future__ import annotations

import asyncio
import logging
import sys
from typing import Any

from norrvakt.config import Settings
from norrvakt.detect.live import LiveDetection
from norrvakt.detect.scheduled import ScheduledSearches
from norrvakt.integrity import IntegrityWatch
from norrvakt.node.address import public_url
from norrvakt.node.runtime import Runtime, bootstrap_accounts, open_runtime, write_server_file
from norrvakt.sources.http_guard import web_server
from norrvakt.web.app import create_app

log = logging.getLogger(__name__)


async def serve(settings: Settings, *, demo: bool = False, banner: bool = True) -> None:
    runtime = open_runtime(settings)
    creds = bootstrap_accounts(runtime)
    await runtime.start(with_sources=True)
    app = create_app(runtime)
    # uvicorn with connection caps, head/body timeouts and an accept loop that cannot spin.
    server = web_server(app, settings, runtime.pipeline.transport_error)
    runtime.extras["web_server"] = server  # long requests (rule tests) stop when should_exit is set
    ports = {src.id: int(getattr(src, "port", 0)) for src in runtime.sources}
    if runtime.ingest_port is not None:
        ports[runtime.ingest_port.id] = runtime.ingest_port.port
    url = public_url(settings)
    write_server_file(settings, url, ports)
    watch = IntegrityWatch(
        runtime, settings.integrity.verify_every_minutes if settings.integrity.enabled else 0
    )
    runtime.extras["integrity_watch"] = watch
    await watch.start()
    from norrvakt.alerts.soc import start_soc, stop_soc  # SOC workflow: alerts, cases, notify, escalation

    await start_soc(runtime, url)
    from norrvakt.reports.wiring import start_reports, stop_reports  # periodic reports by e-mail

    await start_reports(runtime)
    scheduled = ScheduledSearches(runtime)  # saved searches that are alert rules
    runtime.extras["scheduled_searches"] = scheduled
    scheduled.start()
    detection = LiveDetection(runtime)
    runtime.extras["detection"] = detection
    if settings.detection.enabled:
        await detection.start()
    demo_task: asyncio.Task[Any] | None = None
    if demo:
        from norrvakt.demo import DemoTraffic
        from norrvakt.demo.followup_plans import seed_followup_plans

        await asyncio.to_thread(seed_followup_plans, runtime)
        traffic = DemoTraffic(runtime, url)
        runtime.extras["demo"] = traffic
        demo_task = asyncio.create_task(traffic.run(), name="demo")
        demo_task.add_done_callback(_report_demo_end)
    if banner:
        _print_banner(runtime, url, creds, demo)
    banner_again: asyncio.Task[Any] | None = None
    if banner and demo:  # the start's log lines scroll the banner away: show it again once up
        banner_again = asyncio.create_task(_banner_when_demo_ran(runtime, url, creds), name="banner")
    try:
        await server.serve()
    finally:
        if banner_again is not None:
            banner_again.cancel()
        if demo_task is not None:
            demo_task.cancel()
            try:
                await demo_task
            except (asyncio.CancelledError, Exception) as exc:  # report, never hide, a demo crash
                if not isinstance(exc, asyncio.CancelledError):
                    log.error("demo traffic stopped with an error: %s", exc)
        await detection.stop()
        await scheduled.stop()
        await watch.stop()
        await stop_reports(runtime)
        await stop_soc(runtime)
        await runtime.close()


async def _banner_when_demo_ran(runtime: Runtime, url: str, creds: dict[str, str]) -> None:
    traffic = runtime.extras["demo"]
    await traffic.first_round_sent.wait()
    await asyncio.sleep(5)  # the first alerts of the stories come up meanwhile
    _print_banner(runtime, url, creds, True, title="Norrvakt is up — demo traffic is flowing")


def _report_demo_end(task: asyncio.Task[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("demo traffic stopped: %r", task.exception(), exc_info=task.exception())


def _login_line(creds: dict[str, str]) -> str:
    """The generated admin password is shown once, at the first start; later starts say where
    it is kept while it is still unchanged, and nothing once it was changed."""
    user = creds.get("username", "admin")
    if "password" in creds:
        return f"  Log in:        {user} / {creds['password']}   (temporary: choose your own at first login)"
    if "password_file" in creds:
        return f"  Log in:        {user} / the temporary password in {creds['password_file']}"
    return f"  Log in:        {user} (or your own account)"


def _print_banner(
    runtime: Runtime, url: str, creds: dict[str, str], demo: bool, *, title: str = "Norrvakt is running"
) -> None:
    lines = [
        "",
        f"  {title}",
        f"  Web and API:   {url}   (API docs: {url}/api/docs)",
        _login_line(creds),
    ]
    for src in runtime.sources:
        lines.append(f"  Listening:     {src.describe():28s} [{src.id}]")
    lines.append(f"  HTTP ingest:   {url}/services/collector/event (HEC), {url}/_bulk, {url}/ingest")
    if runtime.ingest_port is not None:
        port = runtime.ingest_port
        where = f"http://{port.host}:{port.port}"
        lines.append(f"  Ingest port:   {where}   (HTTP ingest only, received on every core)")
    lines.append(f"  Data:          {runtime.settings.data_path.resolve()}")
    from norrvakt.journal.placement import banner_lines  # where witness and key are: said plainly

    lines += banner_lines(runtime.settings.data_path, runtime.checkpointer.witnesses, runtime.keys)
    detection = runtime.extras.get("detection")
    if detection is not None and getattr(detection.engine, "live", None) is not None:
        from norrvakt.detect.live import live_summary

        lines.append(f"  Detection:     {live_summary(detection.engine.live)}")
    if demo:
        lines.append("  Demo traffic:  on — 14 municipalities, attack stories included")
    lines.append("  Stop with Ctrl-C.")
    lines.append("")
    print("\n".join(lines), file=sys.stderr, flush=True)
