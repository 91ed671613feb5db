"""Binding a UDP listener: one socket, its receive buffer enlarged so a burst waits in the
kernel instead of being dropped, and the port it really got (a configured 0 means any)."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable
from typing import TypeVar

log = logging.getLogger(__name__)

P = TypeVar("P", bound=asyncio.DatagramProtocol)

_RECEIVE_BUFFER = 8 * 1024 * 1024


async def bind_udp(
    factory: Callable[[], P], host: str, port: int
) -> tuple[asyncio.DatagramTransport, P, int]:
    """The transport, the protocol and the bound port of a new UDP endpoint on ``host:port``."""
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.create_datagram_endpoint(
        factory, local_addr=(host, port), reuse_port=False
    )
    sock = transport.get_extra_info("socket")
    if sock is not None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _RECEIVE_BUFFER)
        except OSError as exc:
            log.info("could not enlarge the UDP receive buffer: %s", exc)
        if port == 0:
            port = sock.getsockname()[1]
    return transport, protocol, port
