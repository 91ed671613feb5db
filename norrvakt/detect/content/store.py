"""The kept SigmaHQ content versions and which one is in use.

A version is a folder ``<data_dir>/content/sigma/<version>/`` with one sub-folder per release
package (``sigma_all_rules``, ``sigma_core``, ...) and a ``manifest.json``. The version in use
is named by the one-line file ``current``; it is replaced by an atomic rename, so a reader sees
the old version or the new one, never half of either. A version folder is only ever created
complete (unpacked into a temporary folder beside it, checked, then renamed), so the running
set cannot be half an update.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CONTENT_DIR = ("content", "sigma")
CURRENT_FILE = "current"
MANIFEST_FILE = "manifest.json"
_TMP_PREFIX = ".incoming-"
STALE_STAGING_S = 24 * 3600

# Release packages from the widest to the narrowest; a wider one contains the narrower ones'
# rules, so only the widest kept is loaded (rule_dirs) — the same rule twice would alert twice.
NESTED_PACKAGES = ("sigma_all_rules", "sigma_core++", "sigma_core+", "sigma_core")
# Add-ons hold rule folders the core packages do not have; they are loaded beside the widest
# core package unless sigma_all_rules (which holds them all) is kept.
ADDON_PACKAGES = (
    "sigma_emerging_threats_addon",
    "sigma_threat_hunting_addon",
    "sigma_compliance_addon",
    "sigma_dfir_addon",
)

_VERSION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,99}$")


class ContentError(ValueError):
    """Content that cannot be taken: a bad bundle, a bad version name, an unknown version.
    The message names the file (and line, where there is one) and the reason."""


def check_version_name(name: str) -> str:
    """``name`` when it is safe as one folder name (a release tag such as ``r2025-06-02``)."""
    if not _VERSION.match(name) or name in (".", ".."):
        raise ContentError(
            f"version name {name!r}: use letters, digits and . _ + - (at most 100, no leading dot)"
        )
    return name


def content_root(data_path: Path) -> Path:
    return data_path.joinpath(*CONTENT_DIR)


def current_rules_dir(data_path: Path) -> Path | None:
    """The folder of the SigmaHQ content version in use — ``<data_dir>/content/sigma/<version>``,
    whose package folders hold the rules — or None when no version is installed (or the marker
    names a version that is not there). Load ``ContentStore(data_path).rule_dirs()`` rather than
    this folder as a whole when several overlapping packages are kept."""
    return ContentStore(data_path).current_dir()


@dataclass(frozen=True)
class Version:
    """One kept version: its name, folder and manifest (source, packages, verification)."""

    name: str
    path: Path
    manifest: dict[str, Any] = field(default_factory=dict)

    @property
    def packages(self) -> list[str]:
        return sorted(p.name for p in self.path.iterdir() if p.is_dir() and not p.name.startswith("."))


class ContentStore:
    """The kept versions under one data directory."""

    def __init__(self, data_path: Path) -> None:
        self.root = content_root(data_path)

    # --- reading ----------------------------------------------------------------------------

    def current_name(self) -> str | None:
        try:
            name = (self.root / CURRENT_FILE).read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            return None
        if not name or not _VERSION.match(name):
            return None
        return name if (self.root / name).is_dir() else None

    def current_stamp(self) -> tuple[str | None, int]:
        """The version in use and when ``current`` last changed (ns; 0 = never): cheap enough to
        poll every tick, for a server that takes a new version without a restart."""
        try:
            changed = (self.root / CURRENT_FILE).stat().st_mtime_ns
        except OSError:
            changed = 0
        return self.current_name(), changed

    def current_dir(self) -> Path | None:
        name = self.current_name()
        return None if name is None else self.root / name

    def versions(self) -> list[Version]:
        """Kept versions, oldest first (by when they were installed)."""
        if not self.root.is_dir():
            return []
        found = [
            self.get(p.name)
            for p in self.root.iterdir()
            if p.is_dir() and not p.name.startswith(".") and _VERSION.match(p.name)
        ]
        return sorted(found, key=lambda v: (str(v.manifest.get("installed_at", "")), v.name))

    def get(self, name: str) -> Version:
        path = self.root / check_version_name(name)
        if not path.is_dir():
            raise ContentError(f"no content version {name!r} under {self.root}")
        try:
            manifest = json.loads((path / MANIFEST_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            manifest = {}
        return Version(name, path, manifest if isinstance(manifest, dict) else {})

    def rule_dirs(self, name: str | None = None) -> list[Path]:
        """The package folders of version ``name`` (default: the one in use) to load, without
        overlap: the widest core package kept plus the add-ons it does not contain."""
        if name is None:
            name = self.current_name()
            if name is None:
                return []
        version = self.get(name)
        kept = set(version.packages)
        dirs: list[Path] = []
        widest = next((p for p in NESTED_PACKAGES if p in kept), None)
        if widest is not None:
            dirs.append(version.path / widest)
        if widest != "sigma_all_rules":
            dirs.extend(version.path / p for p in ADDON_PACKAGES if p in kept)
        known = set(NESTED_PACKAGES) | set(ADDON_PACKAGES)
        dirs.extend(version.path / p for p in sorted(kept - known))  # an imported bundle's own folder
        return dirs

    # --- writing ----------------------------------------------------------------------------

    def staging(self) -> Path:
        """A fresh temporary folder beside the versions, for unpacking into (same filesystem, so
        ``install`` is a rename)."""
        self.root.mkdir(parents=True, exist_ok=True)
        self._sweep_stale()
        return Path(tempfile.mkdtemp(prefix=_TMP_PREFIX, dir=self.root))

    def _sweep_stale(self) -> None:
        """Remove staging folders an interrupted update left (killed mid-download); a day old
        is far past any update still running beside this one."""
        cutoff = time.time() - STALE_STAGING_S
        for path in self.root.glob(f"{_TMP_PREFIX}*"):
            try:
                if path.is_dir() and path.stat().st_mtime < cutoff:
                    shutil.rmtree(path, ignore_errors=True)
            except OSError:
                continue

    def install(self, staged: Path, name: str, manifest: dict[str, Any]) -> Version:
        """Make the complete folder ``staged`` version ``name`` (it must not exist yet)."""
        check_version_name(name)
        target = self.root / name
        if target.exists():
            shutil.rmtree(staged, ignore_errors=True)
            raise ContentError(f"content version {name!r} is kept already ({target})")
        _write_atomic(staged / MANIFEST_FILE, json.dumps(manifest, indent=2, sort_keys=True) + "\n")
        os.replace(staged, target)
        return self.get(name)

    def use(self, name: str) -> None:
        """Make version ``name`` the one in use."""
        self.get(name)
        _write_atomic(self.root / CURRENT_FILE, name + "\n")

    def discard(self, staged: Path) -> None:
        shutil.rmtree(staged, ignore_errors=True)


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
