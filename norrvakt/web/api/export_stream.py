"""The HTTP side of a search export: the store's chunks on one worker thread, into a streamed
response, audited when it starts and when it ends — complete, cut by a limit, cancelled by the
client, or failed.

The export generator (:func:`norrvakt.store.query_export.export_chunks`) reads a chDB stream,
so it runs on a single thread of its own from start to end (the stream belongs to the thread
that opened it); the event loop only awaits each chunk. The first chunk is read before the
response starts, so a query the store refuses is still a 400 with the reason. When the client
goes away, the generator is closed on its thread (which closes the chDB stream and its client),
the user's search slot is freed and the audit trail says ``state=cancelled`` with the rows sent.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import anyio
from fastapi.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from norrvakt.store.query_export import ExportProgress
from norrvakt.web.limits import Slot

log = logging.getLogger(__name__)

Audit = Callable[..., Any]  # async (outcome, **details) -> None


class ExportStream:
    """One export in flight: its thread, its progress and its end record."""

    def __init__(self, chunks: Iterator[bytes], progress: ExportProgress, audit_end: Audit) -> None:
        self.chunks = chunks
        self.progress = progress
        self.audit_end = audit_end
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="export")
        self._first: bytes | None = None
        self._closed = False

    async def _next(self) -> bytes | None:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, next, self.chunks, None)

    async def start(self) -> None:
        """Read the first chunk (errors here are the caller's to answer as HTTP errors)."""
        try:
            self._first = await self._next()
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """Close the generator on its own thread (after any read in progress), then the thread."""
        if self._closed:
            return
        self._closed = True
        self._pool.submit(self.chunks.close)  # type: ignore[attr-defined]
        self._pool.shutdown(wait=False)

    async def body(self) -> AsyncIterator[bytes]:
        state, reason = "cancelled", ""
        try:
            chunk = self._first
            while chunk is not None:
                yield chunk
                chunk = await self._next()
            state = "cut" if self.progress.cut else "complete"
        except Exception as exc:  # the store failed halfway: say so in the file and the trail
            log.exception("export failed after %d rows", self.progress.rows)
            state, reason = "failed", f"{type(exc).__name__}: {exc}"[:500]
            yield f"\n# export failed after {self.progress.rows:,} rows: {reason}\n".encode()
        finally:
            self.close()
            with anyio.CancelScope(shield=True):  # a cancelled download is audited too
                outcome = "success" if state in ("complete", "cut") else "failure"
                if state == "cancelled":
                    reason = f"cancelled by the client after {self.progress.rows:,} rows"
                await self.audit_end(
                    outcome,
                    state=state,
                    rows=self.progress.rows,
                    bytes=self.progress.bytes,
                    cut=self.progress.cut,
                    reason=reason,
                )


class ExportResponse(StreamingResponse):
    """Frees the export's search slot when the response ends, however it ends."""

    def __init__(self, stream: ExportStream, slot: Slot, media_type: str, filename: str) -> None:
        headers = {
            "Content-Disposition": f'attachment; filename="{filename}"',
            "Cache-Control": "no-store",
            "X-Content-Type-Options": "nosniff",
        }
        super().__init__(stream.body(), media_type=media_type, headers=headers)
        self.slot = slot

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.slot.release()
