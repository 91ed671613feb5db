"""Fetching a SigmaHQ release: the GitHub releases API answer, then the package zips it lists.

    {"tag_name": "r2025-06-02", "assets": [{"name": "sigma_core.zip", "size": 1234567,
      "browser_download_url": "https://github.com/.../sigma_core.zip",
      "digest": "sha256:3f1c..."}, ...]}

What is verified: each zip's size against the limit (before and while downloading) and its
SHA-256 against the asset's ``digest`` that the GitHub API reports, or, when the release has none,
against a checksum asset (``*.sha256`` / ``sha256sums*`` / ``checksums*``) of the same release.
That proves the file is the one GitHub holds for the release, not who made it: SigmaHQ does not
sign its releases, so there is no signature to check, and a zip with neither a digest nor a
checksum file is taken as "unverified" and recorded so in the version's manifest.
"""

from __future__ import annotations

import hashlib
import json
import re
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from norrvakt import __version__
from norrvakt.detect.content.store import ContentError

_CHUNK = 1 << 16
_CHECKSUM_ASSET = re.compile(r"(\.sha256(sum)?$|^sha256sums|^checksums)", re.IGNORECASE)
_HEX64 = re.compile(r"\b([0-9a-fA-F]{64})\b")


class FetchError(ContentError):
    """The release could not be fetched (network, HTTP status, bad answer)."""


class Unreachable(FetchError):
    """The release server could not be reached at all (offline, DNS, timeout)."""


@dataclass(frozen=True)
class Asset:
    name: str
    url: str
    size: int
    digest: str  # "sha256:<hex>" as GitHub reports it, or ""


@dataclass(frozen=True)
class Release:
    tag: str
    assets: tuple[Asset, ...]
    url: str

    def asset(self, name: str) -> Asset | None:
        return next((a for a in self.assets if a.name == name), None)

    def checksum_assets(self) -> list[Asset]:
        return [a for a in self.assets if _CHECKSUM_ASSET.search(a.name)]


def _open(url: str, timeout: float) -> Any:
    request = urllib.request.Request(
        url, headers={"User-Agent": f"norrvakt/{__version__}", "Accept": "application/vnd.github+json"}
    )
    try:
        return urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        raise FetchError(f"{url}: HTTP {exc.code} {exc.reason}") from exc
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise Unreachable(f"{url}: cannot reach it ({reason})") from exc


def read_release(url: str, timeout: float, max_bytes: int = 4 * 1024 * 1024) -> Release:
    """The release the API answer at ``url`` describes."""
    with _open(url, timeout) as resp:
        try:
            body = resp.read(max_bytes + 1)
        except (TimeoutError, OSError) as exc:
            raise Unreachable(f"{url}: reading the answer failed ({exc})") from exc
    if len(body) > max_bytes:
        raise FetchError(f"{url}: answer larger than {max_bytes} bytes")
    try:
        doc = json.loads(body)
    except ValueError as exc:
        raise FetchError(f"{url}: not JSON ({exc})") from exc
    if not isinstance(doc, dict) or not isinstance(doc.get("tag_name"), str):
        raise FetchError(f"{url}: not a GitHub release (no tag_name)")
    assets = []
    for raw in doc.get("assets") or []:
        if not isinstance(raw, dict) or not isinstance(raw.get("name"), str):
            continue
        assets.append(
            Asset(
                name=raw["name"],
                url=str(raw.get("browser_download_url") or ""),
                size=int(raw.get("size") or 0),
                digest=str(raw.get("digest") or ""),
            )
        )
    return Release(doc["tag_name"], tuple(assets), url)


def download(asset: Asset, dest: Path, timeout: float, max_bytes: int) -> str:
    """Download ``asset`` to ``dest`` (at most ``max_bytes``); its SHA-256 (hex)."""
    if asset.size > max_bytes:
        raise FetchError(f"{asset.name}: {asset.size} bytes, more than the limit {max_bytes}")
    if not asset.url.startswith(("https://", "http://")):
        raise FetchError(f"{asset.name}: no download URL in the release answer")
    digest = hashlib.sha256()
    size = 0
    with _open(asset.url, timeout) as resp, open(dest, "wb") as out:
        try:
            while chunk := resp.read(_CHUNK):
                size += len(chunk)
                if size > max_bytes:
                    raise FetchError(f"{asset.name}: more than the limit {max_bytes} bytes")
                digest.update(chunk)
                out.write(chunk)
        except (TimeoutError, OSError) as exc:
            raise FetchError(f"{asset.name}: download interrupted ({exc})") from exc
    if asset.size and size != asset.size:
        raise FetchError(f"{asset.name}: {size} bytes received, the release says {asset.size}")
    return digest.hexdigest()


def published_checksums(release: Release, timeout: float) -> dict[str, str]:
    """File name -> SHA-256 (hex) from the release's checksum assets (``<hex>  <name>`` lines)."""
    sums: dict[str, str] = {}
    for asset in release.checksum_assets():
        with _open(asset.url, timeout) as resp:
            text = resp.read(1024 * 1024).decode("utf-8", "replace")
        for line in text.splitlines():
            m = _HEX64.search(line)
            if not m:
                continue
            rest = line[m.end() :].strip().lstrip("*").strip()
            name = rest.split("/")[-1] if rest else asset.name.rsplit(".sha256", 1)[0]
            sums[name] = m.group(1).lower()
    return sums


def verify(asset: Asset, sha256: str, checksums: dict[str, str]) -> str:
    """How ``asset`` was verified ("digest", "checksum file", "unverified"); a mismatch raises."""
    if asset.digest:
        algo, _, expected = asset.digest.partition(":")
        if algo.lower() != "sha256":
            raise FetchError(f"{asset.name}: digest algorithm {algo!r} is not sha256")
        if expected.lower() != sha256:
            raise FetchError(
                f"{asset.name}: checksum mismatch: the release says sha256:{expected}, got sha256:{sha256}"
            )
        return "digest"
    listed = checksums.get(asset.name)
    if listed is not None:
        if listed != sha256:
            raise FetchError(
                f"{asset.name}: checksum mismatch: the checksum file says {listed}, got {sha256}"
            )
        return "checksum file"
    return "unverified"
