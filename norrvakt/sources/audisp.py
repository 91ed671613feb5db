"""auditd over ``audisp-remote`` (Debian ``audispd-plugins``): the audit records of Linux hosts.

audisp-remote runs as an auditd plugin and sends every audit record over TCP, in the format
its ``format`` setting names — detected here per connection from the first byte (the managed
header's magic starts with ``0xfe``, a record with ``type=`` or ``node=``):

- ``ascii``: one record a line. The only acknowledgement plain TCP has: a connection is closed
  only after everything it sent is durable.
- ``managed`` (its default): a 16-byte header per record, answered by an ACK header with the
  same sequence number (:mod:`norrvakt.sources.audisp_wire`). The ACK goes out only after the
  record is durable: in the spool file of its event (:mod:`norrvakt.sources.audisp_spool`)
  while the event is still open, since audisp-remote sends the next record of an event only
  after the ACK of the one before. A heartbeat is answered with an ACK as well.

The records of one event (SYSCALL, EXECVE, CWD, PATH, PROCTITLE ... of one
``msg=audit(TIME:SERIAL)``) are assembled per connection into one record of format ``auditd``
(:mod:`norrvakt.parsers.auditd`), which becomes one event: an event ends with a record of
another serial, EOE, ``max_event_records`` records or 1 MiB, the connection's end, or
``assemble_timeout_s`` without a record.

audisp-remote speaks plain TCP or Kerberos 5 (``transport = krb5``, GSSAPI); it has no TLS.
Only ``transport = tcp`` is taken: run it over a network you trust, or inside a tunnel
(WireGuard, stunnel on both ends). Its default ``port`` is 60, which needs root to bind; this
listener defaults to 6060 (a source left at the general default port, 5514, listens there), and
senders set ``port = 6060`` (docs/sources.md).

Bad input: a managed header with a wrong magic or version, or of an unknown message type,
loses the stream's framing — the error names the source, the stream offset and the value, is
kept as a ``pipeline_error`` event with the bytes, and the connection is closed once what was
acknowledged is journaled (as auditd's own server does; audisp-remote reconnects and sends the
unacknowledged record again). A message longer than 8970 bytes or ``max_message_bytes``, or an
ascii line longer than ``max_message_bytes``, is kept cut to the limit as a ``pipeline_error``
and acknowledged once that is durable (closing would make audisp-remote resend it until it
gives up and stops); a line that is not an audit record becomes an event of its own that the
parser keeps as ``auditd.bad_record``; a stream that ends inside a header or message is kept
as ``audisp.truncated``.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from norrvakt.event import RawRecord, now_us
from norrvakt.sources import audisp_spool as spool
from norrvakt.sources.audisp_wire import (
    HEADER_SIZE,
    HEADER_VERSION,
    MAGIC,
    MAX_MESSAGE,
    TYPE_HEARTBEAT,
    TYPE_MESSAGE,
    Assembler,
    OpenEvent,
    pack_reply,
    unpack_header,
)
from norrvakt.sources.base import RecordSink, register_source
from norrvakt.sources.listener_settings import listener_fields
from norrvakt.sources.stream import StreamConnection, StreamLimits, StreamListener
from norrvakt.sources.tenancy import TenantResolver

if TYPE_CHECKING:
    import socket
    from collections.abc import Callable

    from norrvakt.config import Settings, SourceSettings
    from norrvakt.sources.accept import AdmitElsewhere

log = logging.getLogger(__name__)

FORMAT = "auditd"
RECOVERED_HINT = "audisp.spool"  # on records journaled from a dead listener's spool
DEFAULT_PORT = 6060


@dataclass(frozen=True)
class AudispSourceConfig:
    """An audisp-remote listener (TCP; ascii and managed format). Tenant mapping, connection
    caps and timeouts as for syslog; ``spool_dir`` holds acknowledged records of open events."""

    id: str
    spool_dir: Path
    host: str = "0.0.0.0"
    port: int = DEFAULT_PORT
    tenant: str = ""
    networks: dict[str, str] = field(default_factory=dict)
    max_message_bytes: int = 65536
    timezone: str = "UTC"
    assemble_timeout_s: float = 2.0
    max_event_records: int = 256
    limits: StreamLimits = field(default_factory=StreamLimits)

    def build(self) -> AudispSource:
        return AudispSource(self, TenantResolver(self.tenant or None, dict(self.networks)))


@register_source("audisp")
def _from_settings(src: SourceSettings, settings: Settings) -> AudispSourceConfig:
    # protocol is tcp: the settings check refuses anything else for audisp.
    return AudispSourceConfig(
        **listener_fields(src, settings, own_port=DEFAULT_PORT, tls=False),
        spool_dir=settings.data_path / "spool" / "audisp",
    )


class AudispSource(StreamListener):
    def __init__(self, config: AudispSourceConfig, resolver: TenantResolver) -> None:
        super().__init__(config.id, config.host, config.port, resolver, config.timezone, None, config.limits)
        self.config = config

    def make_connection(self) -> StreamConnection:
        return _AudispConnection(self)

    def describe(self) -> str:
        return f"audisp/tcp {self.host}:{self.port}"

    async def adopt(
        self,
        pipeline: RecordSink,
        sockets: list[socket.socket],
        defer: Callable[[], float] | None = None,
        admit_elsewhere: AdmitElsewhere | None = None,
        accept_batch: Callable[[], int] | None = None,
    ) -> None:
        await super().adopt(pipeline, sockets, defer, admit_elsewhere, accept_batch)
        self._recover(pipeline)

    def _recover(self, pipeline: RecordSink) -> None:
        """Journal the events that a listener which died had acknowledged but not journaled."""
        try:
            orphans = spool.claim_orphans(self.config.spool_dir, self.id)
        except OSError as exc:
            log.error("%s: spool %s could not be read: %s", self.id, self.config.spool_dir, exc)
            return
        for found in orphans:
            rec = RawRecord(
                found.tenant,
                self.id,
                found.received_at or now_us(),
                found.peer,
                b"\n".join(found.lines),
                FORMAT,
                self.config.timezone,
                {RECOVERED_HINT: found.path.name},
            )
            fut = pipeline.submit_nowait([rec])
            fut.add_done_callback(functools.partial(_remove_when_durable, found.path))
        if orphans:
            log.warning(
                "%s: journaling %d audit event(s) acknowledged before a restart (spool %s)",
                self.id,
                len(orphans),
                self.config.spool_dir,
            )

    async def stop(self) -> None:
        for conn in list(self.connections):
            if isinstance(conn, _AudispConnection):
                conn.finish_open()
                await conn.settle()
        await super().stop()


def _remove_when_durable(path: Path, fut: asyncio.Future[Any]) -> None:
    if not fut.cancelled() and fut.exception() is None:
        spool.remove(path)


class _AudispConnection(StreamConnection):
    listener: AudispSource

    def __init__(self, listener: AudispSource) -> None:
        super().__init__(listener)
        self.cfg = listener.config
        self._buf = b""
        self._base = 0  # stream offset of _buf[0]
        self._mode = ""  # "ascii" | "managed", from the first byte
        self._broken = False
        self._skip_to_lf = False
        self._asm = Assembler(self.cfg.max_event_records)
        self._last_record = 0.0
        self._timer: asyncio.TimerHandle | None = None
        # managed: spool writes, waits and replies, in the order the messages came
        self._steps: asyncio.Queue[tuple[Any, ...]] | None = None
        self._worker: asyncio.Task[None] | None = None

    # -- input ---------------------------------------------------------------------------

    def on_data(self, data: bytes) -> None:
        if self._broken:
            return
        buf = self._buf + data if self._buf else data
        if not self._mode and buf:
            self._mode = "managed" if buf[0] == MAGIC & 0xFF else "ascii"
            if self._mode == "managed":
                self._steps = asyncio.Queue()
                self._worker = asyncio.get_running_loop().create_task(self._run_steps())
        pos = self._managed(buf) if self._mode == "managed" else self._ascii(buf)
        self._base += pos
        self._buf = buf[pos:]
        self._last_record = asyncio.get_running_loop().time()
        if self._asm.open is not None and self._timer is None:
            self._arm(self.cfg.assemble_timeout_s)

    def _ascii(self, buf: bytes) -> int:
        pos, n, limit = 0, len(buf), self.cfg.max_message_bytes
        now = now_us()
        closed: list[OpenEvent] = []
        while pos < n:
            lf = buf.find(b"\n", pos)
            if self._skip_to_lf:
                if lf < 0:
                    return n
                self._skip_to_lf = False
                pos = lf + 1
                continue
            end = n if lf < 0 else lf
            if end - pos > limit:
                self._oversized(
                    buf[pos : pos + limit], self._base + pos, f"a line of more than {limit} bytes"
                )
                self._skip_to_lf = lf < 0
                pos = n if lf < 0 else lf + 1
                continue
            if lf < 0:
                break
            line = buf[pos:lf].rstrip(b"\r")
            pos = lf + 1
            if line.strip():
                closed.extend(self._asm.add(line, now)[0])
        if closed:
            self._commit(closed)
        return pos

    def _managed(self, buf: bytes) -> int:
        pos, n = 0, len(buf)
        limit = min(MAX_MESSAGE, self.cfg.max_message_bytes)
        while n - pos >= HEADER_SIZE:
            h = unpack_header(buf[pos : pos + HEADER_SIZE])
            at = self._base + pos
            if h.magic != MAGIC:
                self._protocol_error(
                    buf[pos : pos + 64], at, f"bad magic 0x{h.magic:08x} (expected 0x{MAGIC:08x})"
                )
                return n
            if h.version != HEADER_VERSION:
                self._protocol_error(buf[pos : pos + 64], at, f"header version {h.version} (only 0 is known)")
                return n
            if h.type not in (TYPE_MESSAGE, TYPE_HEARTBEAT):
                self._protocol_error(buf[pos : pos + 64], at, f"message type 0x{h.type:08x} is not a message")
                return n
            end = pos + HEADER_SIZE + h.length
            if end > n:
                break
            payload = buf[pos + HEADER_SIZE : end]
            pos = end
            if h.type == TYPE_HEARTBEAT:
                self._step("reply", h.sequence)
            elif h.length > limit:
                self._oversized(
                    payload[:limit], at, f"message length {h.length} exceeds the limit of {limit}"
                )
                self._step("wait", self._all_pending())
                self._step("reply", h.sequence)
            else:
                self._message(payload, h.sequence)
        return pos

    def _message(self, payload: bytes, sequence: int) -> None:
        now = now_us()
        for raw in payload.split(b"\n"):
            line = raw.rstrip(b"\r")
            if not line.strip():
                continue
            closed, joined = self._asm.add(line, now)
            target = None
            if joined:
                target = self._asm.open if self._asm.open is not None else closed[-1]
            for ev in closed:
                if ev is not target:
                    self._finish(ev)
            if target is not None:
                header: dict[str, object] | None = None
                if not target.spool:
                    target.spool = str(spool.new_path(self.cfg.spool_dir, self.listener.id))
                    header = {"peer": self.peer, "tenant": self.tenant, "received_at": target.received_at}
                self._step("append", Path(target.spool), line, header)
                if target in closed:
                    self._finish(target)
        self._step("reply", sequence)

    # -- events out ----------------------------------------------------------------------

    def _commit(self, events: list[OpenEvent]) -> asyncio.Future[None]:
        records = [
            RawRecord(
                self.tenant,
                self.listener.id,
                ev.received_at,
                self.peer,
                b"\n".join(ev.lines),
                FORMAT,
                self.listener.timezone,
            )
            for ev in events
        ]
        return self.submit(records)

    def _finish(self, ev: OpenEvent) -> None:
        """Journal a closed event; in managed format drop its spool once that is durable, or
        hold the next reply until it is (a line that joined no event was never spooled)."""
        fut = self._commit([ev])
        if self._mode == "managed":
            if ev.spool:
                self._step("unlink", Path(ev.spool), fut)
            else:
                self._step("wait", fut)

    def finish_open(self) -> None:
        ev = self._asm.flush()
        if ev is None:
            return
        if self._mode == "managed":
            self._finish(ev)
        else:
            self._commit([ev])

    def _arm(self, delay: float) -> None:
        self._timer = asyncio.get_running_loop().call_later(max(delay, 0.01), self._check_open)

    def _check_open(self) -> None:
        self._timer = None
        if self._asm.open is None:
            return
        quiet = asyncio.get_running_loop().time() - self._last_record
        if quiet < self.cfg.assemble_timeout_s:
            self._arm(self.cfg.assemble_timeout_s - quiet)
        else:
            self.finish_open()

    # -- errors --------------------------------------------------------------------------

    def _oversized(self, cut: bytes, offset: int, why: str) -> None:
        self.report_error(cut, "audisp.oversized", f"{why}; kept cut to {len(cut)} bytes", offset=offset)

    def _protocol_error(self, bad: bytes, offset: int, why: str) -> None:
        self._broken = True
        self.report_error(bad, "audisp.bad_frame", f"{why}: {bad[:32]!r}", offset=offset)
        self.finish_open()  # its records were acknowledged: journal them before closing
        if self._mode == "managed":
            self._step("close")
        else:
            asyncio.get_running_loop().create_task(self._close_when_durable())

    def on_eof(self) -> None:
        if self._buf and not self._broken:
            what = "managed message" if self._mode == "managed" else "line"
            self.report_error(
                self._buf[: self.cfg.max_message_bytes],
                "audisp.truncated",
                f"stream ended inside a {what} ({len(self._buf)} bytes)",
                offset=self._base,
            )
            self._buf = b""
        self.finish_open()

    def on_idle(self) -> None:
        self.finish_open()
        super().on_idle()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self.finish_open()
        self._step("end")  # the spool writes and unlinks queued so far still happen
        super().connection_lost(exc)

    def record(self, payload: bytes, received_at: int) -> RawRecord:
        rec = super().record(payload, received_at)
        rec.format = FORMAT
        return rec

    # -- managed replies, in order -------------------------------------------------------

    def _all_pending(self) -> asyncio.Future[Any]:
        return asyncio.gather(*[f for f in self._pending if not f.done()])

    def _step(self, *step: Any) -> None:
        if self._steps is None:
            return
        if self._worker is not None and self._worker.done():
            # The steps stopped (connection aborted): no more spool writes can come, so a
            # spool file can go as soon as its event is durable; nothing else is answered.
            if step[0] == "unlink":
                step[2].add_done_callback(functools.partial(_remove_when_durable, step[1]))
            return
        self._steps.put_nowait(step)

    async def settle(self) -> None:
        """Wait until every queued spool write and reply is done (or the steps stopped)."""
        if self._steps is None or self._worker is None or self._worker.done():
            return
        joined = asyncio.ensure_future(self._steps.join())
        await asyncio.wait([joined, self._worker], return_when=asyncio.FIRST_COMPLETED)
        joined.cancel()

    async def _run_steps(self) -> None:
        assert self._steps is not None
        steps = self._steps
        while True:
            step = await steps.get()
            try:
                if not await self._do(step):
                    return
            finally:
                steps.task_done()

    async def _do(self, step: tuple[Any, ...]) -> bool:
        kind = step[0]
        if kind == "append":
            try:
                await asyncio.to_thread(spool.append, step[1], step[2], step[3])
            except OSError as exc:
                # Not durable: no ACK; audisp-remote resends after reconnecting.
                self.listener.quiet("spool not writable", logging.ERROR).note(
                    self.host, f"{self.listener.id}: spool file {step[1]} not written: {exc}"
                )
                self._abort()
                return False
        elif kind == "wait":
            fut: asyncio.Future[Any] = step[1]
            await asyncio.wait([fut])
            if fut.cancelled() or fut.exception() is not None:
                self._abort()
                return False
        elif kind == "unlink":
            step[2].add_done_callback(functools.partial(_remove_when_durable, step[1]))
        elif kind == "reply":
            if self.transport is not None and not self.transport.is_closing():
                self.transport.write(pack_reply(step[1]))
        elif kind == "close":
            await self.drain()
            if self.transport is not None and not self.transport.is_closing():
                self.transport.close()
            return False
        elif kind == "end":
            return False
        return True

    def _abort(self) -> None:
        self._broken = True
        if self.transport is not None:
            self.transport.abort()
