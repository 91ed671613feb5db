"""A parse worker process: records in, parsed and normalised events out.

Started by :class:`~norrvakt.node.parse_pool.ParsePool` as ``python -m norrvakt.node.parse_worker``
with one end of a socket pair. It holds no state a crash could lose: the node keeps every batch
until its events come back and journals them itself, so a worker killed mid-batch costs only
that batch's parse, which the node then does in its own process. The worker exits when the node
closes its end (also when the node dies: the kernel closes it), and ignores Ctrl-C — the node
stops it.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import sys
import time

from norrvakt.node import wire


def _read_exact(sock: socket.socket, n: int) -> bytes | None:
    chunks: list[bytes] = []
    while n:
        chunk = sock.recv(min(n, 4 * 1024 * 1024))
        if not chunk:
            return None
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


def serve(sock: socket.socket, mapping_dirs: list[str]) -> None:
    from pathlib import Path

    from norrvakt.node.pipeline import parse_one
    from norrvakt.parsers.mapped import sources as mapped_sources

    # problems are not reported here: the node logged them when it loaded the same directories
    mapped_sources.use([Path(d) for d in mapping_dirs])
    sock.sendall(wire.frame(wire.READY, 0, [os.getpid()]))
    while True:
        header = _read_exact(sock, wire.HEADER.size)
        if header is None:
            return
        body = _read_exact(sock, wire.frame_length(header))
        if body is None:
            return
        kind, job, rows = wire.unframe(body)
        if kind != wire.PARSE:
            sock.sendall(wire.frame(wire.FAILED, job, [f"unknown frame kind {kind!r}"]))
            continue
        try:
            events = [parse_one(wire.record_of(r)) for r in rows]
            reply = wire.frame(wire.PARSED, job, [[wire.event_row(e) for e in events], time.process_time()])
        except Exception as exc:  # never lose a batch here: the node parses it itself
            reply = wire.frame(wire.FAILED, job, [f"{type(exc).__name__}: {exc}"])
        sock.sendall(reply)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="norrvakt-parse-worker")
    ap.add_argument("--fd", type=int, required=True, help="this worker's end of the socket pair")
    ap.add_argument("--mappings", default="[]", help="JSON list of the operator's mapping directories")
    args = ap.parse_args(argv)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group; the node stops us
    sock = socket.socket(fileno=args.fd)
    try:
        serve(sock, json.loads(args.mappings))
    except (BrokenPipeError, ConnectionResetError):
        pass  # the node went away
    finally:
        sock.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
