"""Background tasks of the server's components."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any


async def cancel_and_wait(task: asyncio.Task[Any] | None) -> None:
    """Cancel a component's background task and wait until it has ended."""
    if task is None:
        return
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def pass_on(outer: asyncio.Future[None], inner: asyncio.Future[Any]) -> None:
    """Settle ``outer`` as ``inner`` ended (a done-callback of ``inner``; its result is dropped)."""
    if outer.done():
        return
    if inner.cancelled():
        outer.cancel()
    elif (exc := inner.exception()) is not None:
        outer.set_exception(exc)
    else:
        outer.set_result(None)
