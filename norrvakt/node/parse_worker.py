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

    from norrvakt.parsers.mapped import sources as mapped_sources
    from norrvakt.parsers.records import parse_one
    from norrvakt.sources.hec_body import bad_row, parse_hec_body

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
        kind, job, args = wire.unframe(body)
        try:
            if kind == wire.PARSE:
                events = [parse_one(wire.record_of(r)) for r in args]
                reply = wire.frame(
                    wire.PARSED, job, [[wire.event_row(e) for e in events], time.process_time()]
                )
            elif kind == wire.HEC:
                data, limit, template = args
                _, events, bad = parse_hec_body(data, int(limit), wire.record_of(template))
                rows = [wire.event_row(e) for e in events]
                reply = wire.frame(
                    wire.HEC_PARSED, job, [rows, [bad_row(b) for b in bad], time.process_time()]
                )
            else:
                reply = wire.frame(wire.FAILED, job, [f"unknown frame kind {kind!r}"])
        except Exception as exc:  # never lose a batch here: the node does it itself
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
