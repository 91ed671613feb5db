"""Witnesses: independent copies of every checkpoint, out of reach of this machine's admin.

A witness is a place the operator configures — a directory on another municipality's share
or on the e-archive, or an HTTP endpoint — where each checkpoint line is appended as soon as
it is signed. Verification compares the local log with the witness: if the whole data
directory is rolled back or truncated, the witness still holds the later checkpoints.

``dir:/mnt/witness``  appends to ``/mnt/witness/<tenant>/checkpoints.jsonl`` (fsync)
``http(s)://…``       POSTs the line (``Content-Type: application/json``) to the URL;
                      verification GETs ``<url>?tenant=<t>`` expecting the lines back
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import httpx

from norrvakt.journal.checkpoint import FILE_NAME, Checkpoint, CheckpointLine, append_line, read_lines

log = logging.getLogger(__name__)


class WitnessError(Exception):
    pass


class Witness(Protocol):
    @property
    def name(self) -> str: ...

    def publish(self, checkpoint: Checkpoint) -> None: ...

    def read(self, tenant: str) -> list[CheckpointLine]: ...


@dataclass
class DirectoryWitness:
    directory: Path

    @property
    def name(self) -> str:
        return f"dir:{self.directory}"

    def publish(self, checkpoint: Checkpoint) -> None:
        try:
            append_line(self.directory / checkpoint.tenant / FILE_NAME, checkpoint.line())
        except OSError as exc:
            raise WitnessError(f"witness {self.name}: cannot write: {exc}") from exc

    def read(self, tenant: str) -> list[CheckpointLine]:
        return list(read_lines(self.directory / tenant / FILE_NAME))


@dataclass
class HttpWitness:
    url: str
    timeout: float = 10.0

    @property
    def name(self) -> str:
        return self.url

    def publish(self, checkpoint: Checkpoint) -> None:
        try:
            resp = httpx.post(
                self.url,
                content=checkpoint.line(),
                timeout=self.timeout,
                headers={"Content-Type": "application/json"},
            )
        except httpx.HTTPError as exc:
            raise WitnessError(f"witness {self.url}: {exc}") from exc
        if resp.status_code >= 300:
            raise WitnessError(f"witness {self.url} answered {resp.status_code}: {resp.text[:200]}")

    def read(self, tenant: str) -> list[CheckpointLine]:
        try:
            resp = httpx.get(self.url, params={"tenant": tenant}, timeout=self.timeout)
            resp.raise_for_status()
        except httpx.HTTPError as exc:
            raise WitnessError(f"witness {self.url}: {exc}") from exc
        out = []
        for number, raw in enumerate(resp.content.splitlines(), start=1):
            if raw.strip():
                try:
                    out.append(CheckpointLine(number, raw, Checkpoint.parse(raw)))
                except (ValueError, KeyError, TypeError) as exc:
                    out.append(CheckpointLine(number, raw, None, f"unreadable checkpoint: {exc}"))
        return out


def build_witness(spec: str) -> Witness:
    if spec.startswith("dir:"):
        return DirectoryWitness(Path(spec[4:]))
    if spec.startswith(("http://", "https://")):
        return HttpWitness(spec)
    raise ValueError(f"witness {spec!r}: use dir:/path or an http(s):// URL")
