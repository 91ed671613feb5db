"""Witnesses: independent copies of every checkpoint, out of reach of this machine's admin.

A witness is a place the operator configures — a directory on another municipality's share
or on the e-archive, or an HTTP endpoint such as ``norrvakt witness serve`` on another host —
where each checkpoint line is appended as soon as it is signed. Verification compares the
local log with the witness: if the whole data directory is rolled back, truncated or
rewritten, the witness still holds the checkpoints signed before.

``dir:/mnt/witness``  appends to ``/mnt/witness/<tenant>/checkpoints.jsonl`` (fsync)
``http(s)://…``       the witness protocol (``norrvakt witness serve`` speaks it):

  ``POST <url>``                  one or more checkpoint lines, newline-separated
                                  (``Content-Type: application/x-ndjson``); 2xx = kept.
                                  A line ``{"rotation": {...}}`` (a key rotation statement,
                                  see keys.py) introduces a key signed by a trusted one
  ``GET <url>?tenant=<t>``        every line of the tenant, oldest first (404 or empty: none)
  ``GET <url>?tenant=<t>&latest=1``  only the newest line (a witness may ignore ``latest``)
  ``GET <url>?list=1``            ``{"tenants": [...]}``: every tenant it holds lines of
                                  (404/400: the witness cannot list; verification says so)
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import httpx

from norrvakt.journal.checkpoint import (
    FILE_NAME,
    GENESIS,
    Checkpoint,
    CheckpointLine,
    parse_line,
    read_lines,
    tail_line,
)
from norrvakt.journal.keys import Rotation

log = logging.getLogger(__name__)

POST_BATCH = 500  # lines per POST when a witness is brought up to date


class WitnessError(Exception):
    """The witness cannot be reached, read or written."""


class Witness(Protocol):
    """Where checkpoint lines are copied. ``tenants()`` is ``None`` when the witness cannot
    list what it holds (a third-party endpoint); ``location`` is the directory of a
    directory witness (used to tell whether it shares a file system with the data)."""

    @property
    def name(self) -> str: ...

    @property
    def location(self) -> Path | None: ...

    def publish(self, checkpoint: Checkpoint) -> None: ...

    def publish_lines(self, lines: list[bytes]) -> None: ...

    def introduce(self, rotations: list[Rotation]) -> None: ...

    def read(self, tenant: str) -> list[CheckpointLine]: ...

    def latest(self, tenant: str) -> CheckpointLine | None: ...

    def tenants(self) -> list[str] | None: ...


@dataclass
class DirectoryWitness:
    directory: Path

    @property
    def name(self) -> str:
        return f"dir:{self.directory}"

    @property
    def location(self) -> Path | None:
        return self.directory

    def publish(self, checkpoint: Checkpoint) -> None:
        self._append(checkpoint.tenant, [checkpoint.line()])

    def publish_lines(self, lines: list[bytes]) -> None:
        by_tenant: dict[str, list[bytes]] = {}
        for line in lines:
            by_tenant.setdefault(Checkpoint.parse(line).tenant, []).append(line)
        for tenant, tenant_lines in by_tenant.items():
            self._append(tenant, tenant_lines)

    def introduce(self, rotations: list[Rotation]) -> None:
        pass  # a folder keeps lines; it does not check signatures

    def _append(self, tenant: str, lines: list[bytes]) -> None:
        path = self.directory / tenant / FILE_NAME
        if not self.directory.is_dir() and not (
            len(lines) == 1 and Checkpoint.parse(lines[0]).prev == GENESIS
        ):
            # Made only for the very first checkpoint. A folder that vanished later is an unmounted
            # share or a deleted witness: filling a fresh one in its place would hide that.
            raise WitnessError(
                f"witness {self.name}: the folder does not exist (share not mounted, or deleted?); it is "
                "not made again while checkpoints exist — create it to let Norrvakt refill it"
            )
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(path, "ab") as fh:
                fh.write(b"".join(line + b"\n" for line in lines))
                fh.flush()
                os.fsync(fh.fileno())
        except OSError as exc:
            raise WitnessError(f"witness {self.name}: cannot write {path}: {exc}") from exc

    def _root(self) -> None:
        # A witness directory that is gone (unmounted share, deleted) is not "no checkpoints".
        if not self.directory.is_dir():
            raise WitnessError(
                f"witness {self.name}: the directory does not exist (unmounted, moved or deleted?)"
            )

    def read(self, tenant: str) -> list[CheckpointLine]:
        self._root()
        path = self.directory / tenant / FILE_NAME
        try:
            return list(read_lines(path))
        except OSError as exc:
            raise WitnessError(f"witness {self.name}: cannot read {path}: {exc}") from exc

    def latest(self, tenant: str) -> CheckpointLine | None:
        # Asked before publishing: a witness folder not made yet holds nothing (it is created).
        path = self.directory / tenant / FILE_NAME
        try:
            line = tail_line(path)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise WitnessError(f"witness {self.name}: cannot read {path}: {exc}") from exc
        return parse_line(0, line) if line else None

    def tenants(self) -> list[str] | None:
        self._root()
        try:
            return sorted(p.name for p in self.directory.iterdir() if p.is_dir())
        except OSError as exc:
            raise WitnessError(f"witness {self.name}: cannot list {self.directory}: {exc}") from exc


@dataclass
class HttpWitness:
    url: str
    timeout: float = 10.0

    @property
    def name(self) -> str:
        return self.url

    @property
    def location(self) -> Path | None:
        return None

    def publish(self, checkpoint: Checkpoint) -> None:
        self.publish_lines([checkpoint.line()])

    def publish_lines(self, lines: list[bytes]) -> None:
        for start in range(0, len(lines), POST_BATCH):
            body = b"".join(line + b"\n" for line in lines[start : start + POST_BATCH])
            try:
                resp = httpx.post(
                    self.url,
                    content=body,
                    timeout=self.timeout,
                    headers={"Content-Type": "application/x-ndjson"},
                )
            except httpx.HTTPError as exc:
                raise WitnessError(f"witness {self.url}: {exc}") from exc
            if resp.status_code >= 300:
                raise WitnessError(f"witness {self.url} answered {resp.status_code}: {resp.text[:300]}")

    def introduce(self, rotations: list[Rotation]) -> None:
        if rotations:
            lines = [json.dumps({"rotation": r.__dict__}, sort_keys=True).encode() for r in rotations]
            self.publish_lines(lines)

    def _get(self, params: dict[str, str]) -> httpx.Response:
        try:
            return httpx.get(self.url, params=params, timeout=self.timeout)
        except httpx.HTTPError as exc:
            raise WitnessError(f"witness {self.url}: {exc}") from exc

    def _lines(self, params: dict[str, str]) -> list[CheckpointLine]:
        resp = self._get(params)
        if resp.status_code == 404:
            return []  # the witness holds nothing of this tenant
        if resp.status_code >= 300:
            raise WitnessError(f"witness {self.url} answered {resp.status_code}: {resp.text[:300]}")
        return [parse_line(n, raw) for n, raw in enumerate(resp.content.splitlines(), start=1) if raw.strip()]

    def read(self, tenant: str) -> list[CheckpointLine]:
        return self._lines({"tenant": tenant})

    def latest(self, tenant: str) -> CheckpointLine | None:
        lines = self._lines({"tenant": tenant, "latest": "1"})
        return lines[-1] if lines else None

    def tenants(self) -> list[str] | None:
        resp = self._get({"list": "1"})
        if resp.status_code in {400, 404, 405, 422}:
            return None  # a witness that only keeps lines; verification notes it cannot list
        if resp.status_code >= 300:
            raise WitnessError(f"witness {self.url} answered {resp.status_code}: {resp.text[:300]}")
        try:
            doc = json.loads(resp.content)
            names = doc["tenants"]
            if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
                raise TypeError("tenants is not a list of strings")
        except (ValueError, KeyError, TypeError) as exc:
            raise WitnessError(
                f'witness {self.url}: its tenant list is not {{"tenants": [...]}}: {exc}'
            ) from exc
        return sorted(names)


def build_witness(spec: str) -> Witness:
    if spec.startswith("dir:"):
        return DirectoryWitness(Path(spec[4:]))
    if spec.startswith(("http://", "https://")):
        return HttpWitness(spec)
    raise ValueError(f"witness {spec!r}: use dir:/path or an http(s):// URL")
