"""`norrvakt witness serve`: an append-only witness to run on another host.

A folder witness next to the data directory can be rewritten by whoever rewrites the data.
This witness runs elsewhere (another municipality's server, the e-archive host), under an
account of its own, and keeps only what extends what it already holds:

- every line must be a checkpoint validly signed by one of the pinned public keys
  (``--pubkey``; the keys of ``norrvakt keys export``) or by a key introduced from them by a
  signed rotation statement (Norrvakt sends those before the first line a new key signed;
  they are kept in ``<dir>/keys.jsonl``) — 403 otherwise;
- a tenant's first line must start the chain (``prev`` = 64 zeros; Norrvakt sends its whole
  checkpoint log the first time), and every later line must chain to the newest one held
  (``prev`` = its SHA-256), cover at least as many records and be no older — 409 otherwise,
  with the newest line held in the answer. A rewritten history is refused, so re-signing a
  rewritten journal with a stolen key still leaves the witness holding the old checkpoints,
  and ``norrvakt verify`` reports every one that no longer matches.

It speaks the witness protocol of :mod:`norrvakt.journal.witness` and stores lines like a
folder witness: ``<dir>/<tenant>/checkpoints.jsonl``, fsync'd before the answer.

    norrvakt witness serve --dir /srv/norrvakt-witness --pubkey norrvakt.pub --port 8470
"""

from __future__ import annotations

import hashlib
import json
import logging
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from norrvakt.journal.checkpoint import FILE_NAME, GENESIS, Checkpoint, append_line
from norrvakt.journal.keys import (
    Rotation,
    SigningKeyError,
    key_id_of,
    load_public,
    public_raw,
    verify_signature,
)
from norrvakt.journal.log import is_folder_name
from norrvakt.journal.witness import DirectoryWitness, WitnessError

log = logging.getLogger(__name__)

MAX_BODY = 4 * 1024 * 1024  # a catch-up sends at most 500 lines (~150 KB) per request


class Refused(Exception):
    """A line the witness does not append; ``status`` is the HTTP answer."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class WitnessStore:
    """The lines of every tenant, appended only if they extend what is held."""

    def __init__(self, directory: Path, keys: dict[str, Ed25519PublicKey]) -> None:
        self.directory = directory
        self.keys = dict(keys)
        self._lock = threading.Lock()
        self._newest: dict[str, bytes | None] = {}
        self._folder = DirectoryWitness(directory)  # the same layout: its tail reader finds the newest
        for raw in self._keys_file.read_bytes().splitlines() if self._keys_file.exists() else []:
            try:
                self._trust(Rotation(**json.loads(raw)["rotation"]))
            except (Refused, ValueError, KeyError, TypeError) as exc:
                log.error("%s: a rotation statement is not trusted: %s", self._keys_file, exc)

    @property
    def _keys_file(self) -> Path:
        return self.directory / "keys.jsonl"

    def _trust(self, rotation: Rotation) -> bool:
        """Trust ``rotation.new`` if a trusted key signed its introduction; True if it is new."""
        if rotation.new in self.keys:
            return False
        signer = self.keys.get(rotation.old)
        if signer is None:
            raise Refused(
                403,
                f"the rotation to key {rotation.new} is signed by key {rotation.old}, which is not trusted",
            )
        try:
            new = load_public(rotation.new_public)
        except SigningKeyError as exc:
            raise Refused(400, f"the rotation to key {rotation.new}: {exc}") from exc
        if key_id_of(public_raw(new)) != rotation.new or not verify_signature(
            signer, bytes.fromhex(rotation.signature), rotation.message()
        ):
            raise Refused(
                403, f"the rotation to key {rotation.new} is not validly signed by key {rotation.old}"
            )
        self.keys[rotation.new] = new
        return True

    def _path(self, tenant: str) -> Path:
        return self.directory / tenant / FILE_NAME

    def tenants(self) -> list[str]:
        if not self.directory.is_dir():
            return []
        return sorted(p.name for p in self.directory.iterdir() if (p / FILE_NAME).is_file())

    def lines(self, tenant: str) -> bytes:
        path = self._path(tenant)
        return path.read_bytes() if path.is_file() else b""

    def newest(self, tenant: str) -> bytes | None:
        if tenant not in self._newest:  # the file grows for years: only its tail is read
            line = self._folder.latest(tenant)
            self._newest[tenant] = line.raw if line is not None else None
        return self._newest[tenant]

    def add(self, body: bytes) -> int:
        """Append every line of ``body`` in order; returns how many were new. Raises
        :class:`Refused` at the first line that may not be appended (those before it stay)."""
        added = 0
        with self._lock:
            for number, raw in enumerate(body.split(b"\n"), start=1):
                raw = raw.strip()
                if raw:
                    added += self._add_line(number, raw)
        return added

    def _add_line(self, number: int, raw: bytes) -> int:
        try:
            doc = json.loads(raw)
            if isinstance(doc, dict) and "rotation" in doc:
                rotation = Rotation(**doc["rotation"])
                if self._trust(rotation):
                    append_line(self._keys_file, raw)
                    log.info("trusting key %s, introduced by %s", rotation.new, rotation.old)
                return 0
            cp = Checkpoint.parse(raw)
        except (ValueError, KeyError, TypeError) as exc:
            raise Refused(400, f"line {number} is not a checkpoint or rotation statement: {exc}") from exc
        if not is_folder_name(cp.tenant):
            raise Refused(400, f"line {number}: {cp.tenant!r} is not a tenant id")
        if raw != cp.line():
            raise Refused(400, f"line {number} is not in canonical form (sorted keys, no whitespace)")
        key = self.keys.get(cp.key)
        if key is None:
            raise Refused(
                403,
                f"line {number} is signed with key {cp.key}, which this witness does not trust "
                "(after a key rotation, give the witness the new public key with --pubkey)",
            )
        if not cp.signature_ok(key):
            raise Refused(403, f"line {number}: the signature does not match the checkpoint")
        newest = self.newest(cp.tenant)
        if newest == raw:
            return 0  # sent again after a lost answer
        if newest is None:
            if cp.prev != GENESIS:
                raise Refused(
                    409,
                    f"line {number}: this witness holds nothing of {cp.tenant} yet, and the line does not "
                    "start its chain — send the whole checkpoint log",
                )
        else:
            try:
                held = Checkpoint.parse(newest)
            except (ValueError, KeyError, TypeError) as exc:
                raise Refused(
                    500,
                    f"the newest line this witness holds of {cp.tenant} is unreadable ({exc}): "
                    "nothing is appended until an operator looks at its file",
                ) from exc
            if cp.prev != hashlib.sha256(newest).hexdigest() or cp.size < held.size or cp.time < held.time:
                raise Refused(
                    409,
                    f"line {number} does not extend the log this witness holds of {cp.tenant} (newest: "
                    f"size {held.size}, time {held.time}; this line: size {cp.size}, time {cp.time}): "
                    "a rewritten or rolled-back history is not accepted",
                )
        append_line(self._path(cp.tenant), raw)
        self._newest[cp.tenant] = raw
        log.info("witnessed %s size %d", cp.tenant, cp.size)
        return 1


def make_handler(store: WitnessStore) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "norrvakt-witness"

        def _answer(self, status: int, body: bytes, content_type: str = "application/json") -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _json(self, status: int, doc: dict[str, Any]) -> None:
            self._answer(status, json.dumps(doc).encode())

        def do_GET(self) -> None:
            query = parse_qs(urlsplit(self.path).query)
            if query.get("list") == ["1"]:
                self._json(200, {"tenants": store.tenants()})
                return
            tenant = (query.get("tenant") or [""])[0]
            if not is_folder_name(tenant):
                self._json(400, {"error": "ask for ?tenant=<id> or ?list=1"})
                return
            if query.get("latest") == ["1"]:
                newest = store.newest(tenant)
                self._answer(200, newest + b"\n" if newest else b"", "application/x-ndjson")
            else:
                self._answer(200, store.lines(tenant), "application/x-ndjson")

        def do_POST(self) -> None:
            try:
                length = int(self.headers.get("Content-Length", ""))
            except ValueError:
                self._json(411, {"error": "Content-Length is required"})
                return
            if not 0 < length <= MAX_BODY:
                self._json(413, {"error": f"a request carries 1 to {MAX_BODY} bytes"})
                return
            body = self.rfile.read(length)
            try:
                added = store.add(body)
            except Refused as exc:
                log.warning("refused from %s: %s", self.client_address[0], exc.reason)
                self._json(exc.status, {"error": exc.reason})
                return
            except (OSError, WitnessError) as exc:
                log.error("cannot store a checkpoint: %s", exc)
                self._json(503, {"error": f"the witness cannot store lines: {exc}"})
                return
            self._json(200, {"added": added})

        def log_message(self, format: str, *args: Any) -> None:
            log.debug("%s " + format, self.client_address[0], *args)

    return Handler


def witness_server(
    directory: Path,
    keys: dict[str, Ed25519PublicKey],
    host: str = "0.0.0.0",
    port: int = 8470,
    cert: Path | None = None,
    key: Path | None = None,
) -> ThreadingHTTPServer:
    """A server ready for ``serve_forever()`` (port 0: any free port, see ``server_address``)."""
    directory.mkdir(parents=True, exist_ok=True)
    server = ThreadingHTTPServer((host, port), make_handler(WitnessStore(directory, keys)))
    server.daemon_threads = True
    if cert is not None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        server.socket = context.wrap_socket(server.socket, server_side=True)
    return server
