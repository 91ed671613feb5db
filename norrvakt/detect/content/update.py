"""Taking a new content version: from a SigmaHQ release (``norrvakt rules update``) or an
offline bundle (``norrvakt rules import``).

Everything happens in a staging folder beside the kept versions: download, verify, unpack, parse
every rule. Only when all of it passed is the folder renamed into a version; on any problem the
staging folder is removed and the version in use — the running rule set — is what it was.

Which version is in use changes only when asked (``use=True``), or by itself only on a machine
that has none yet (the first update makes ``make run`` detect with SigmaHQ's rules). A later
update is kept beside the one in use, to be reviewed (``norrvakt rules diff``) before someone
puts it in use (``norrvakt rules use``): content that decides what raises alerts does not change
under a SOC unseen.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from norrvakt.detect.content import fetch
from norrvakt.detect.content.bundle import BundleRejected, Limits, check_rules, copy_folder, unpack_zip
from norrvakt.detect.content.store import ContentError, ContentStore, check_version_name

DEFAULT_PACKAGES = ("sigma_core", "sigma_core+", "sigma_emerging_threats_addon", "sigma_all_rules")


@dataclass(frozen=True)
class UpdateConfig:
    """What ``norrvakt rules update`` fetches and how (settings ``detection.content_*``)."""

    release_url: str = "https://api.github.com/repos/SigmaHQ/sigma/releases/latest"
    packages: tuple[str, ...] = DEFAULT_PACKAGES
    timeout: float = 30.0
    limits: Limits = field(default_factory=Limits)


@dataclass
class Outcome:
    """What an update or import did."""

    version: str
    installed: bool  # False: the version was kept already
    in_use: bool
    previous: str | None
    rules: int = 0
    notes: list[str] = field(default_factory=list)  # rules kept but not loadable by the engine
    verified: dict[str, str] = field(default_factory=dict)  # package -> how


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _finish(
    store: ContentStore, staged: Path, name: str, manifest: dict[str, Any], use: bool | None, outcome: Outcome
) -> Outcome:
    loaded, rejects, notes = check_rules(staged, [p for p in sorted(staged.iterdir()) if p.is_dir()])
    if rejects:
        raise BundleRejected(name, rejects)
    manifest.update(installed_at=_now(), rules_loaded=loaded, notes=[str(n) for n in notes])
    store.install(staged, name, manifest)
    outcome.installed, outcome.rules, outcome.notes = True, loaded, [str(n) for n in notes]
    if use if use is not None else outcome.previous is None:
        store.use(name)
        outcome.in_use = True
    return outcome


def update(store: ContentStore, config: UpdateConfig, *, use: bool | None = None) -> Outcome:
    """Fetch the release ``config.release_url`` names; keep it as version ``<tag>``."""
    previous = store.current_name()
    release = fetch.read_release(config.release_url, config.timeout)
    name = check_version_name(release.tag)
    outcome = Outcome(name, installed=False, in_use=previous == name, previous=previous)
    if (store.root / name).is_dir():
        if use and not outcome.in_use:
            store.use(name)
            outcome.in_use = True
        return outcome
    missing = [p for p in config.packages if release.asset(f"{p}.zip") is None]
    if missing:
        names = ", ".join(a.name for a in release.assets) or "none"
        raise fetch.FetchError(
            f"release {name}: no asset {', '.join(m + '.zip' for m in missing)} (assets: {names})"
        )
    staged = store.staging()
    try:
        checksums = fetch.published_checksums(release, config.timeout) if release.checksum_assets() else {}
        packages: dict[str, Any] = {}
        for package in config.packages:
            asset = release.asset(f"{package}.zip")
            if asset is None:  # checked above
                continue
            archive = staged / f".{package}.zip"
            sha256 = fetch.download(asset, archive, config.timeout, config.limits.download_bytes)
            how = fetch.verify(asset, sha256, checksums)
            files = unpack_zip(archive, staged / package, config.limits, label=asset.name)
            archive.unlink()
            packages[package] = {"asset": asset.name, "sha256": sha256, "verified": how, "files": files}
            outcome.verified[package] = how
        manifest = {"source": "release", "release_url": config.release_url, "tag": name, "packages": packages}
        return _finish(store, staged, name, manifest, use, outcome)
    except BaseException:
        store.discard(staged)
        raise


def derived_name(path: Path) -> str:
    """A version name for an offline bundle: its name and the start of its content hash, so the
    same bundle imported twice is the same version."""
    digest = hashlib.sha256()
    if path.is_dir():
        for file in sorted(p for p in path.rglob("*") if p.is_file() and not p.is_symlink()):
            digest.update(str(file.relative_to(path)).encode() + b"\0" + file.read_bytes())
    else:
        digest.update(path.read_bytes())
    stem = "".join(c if c.isalnum() or c in "._+-" else "-" for c in path.stem).strip(".-") or "bundle"
    return f"import-{stem[:60]}-{digest.hexdigest()[:12]}"


def import_bundle(
    store: ContentStore,
    path: Path,
    *,
    name: str | None = None,
    limits: Limits | None = None,
    use: bool | None = None,
) -> Outcome:
    """Keep the offline bundle ``path`` (a zip with ``rules*/`` inside, or such a folder)."""
    limits = limits or Limits()
    if not path.exists():
        raise ContentError(f"{path}: no such file or folder")
    if path.is_file() and path.stat().st_size > limits.download_bytes:
        raise ContentError(
            f"{path}: {path.stat().st_size} bytes, more than the limit {limits.download_bytes}"
        )
    name = check_version_name(name or derived_name(path))
    previous = store.current_name()
    outcome = Outcome(name, installed=False, in_use=previous == name, previous=previous)
    if (store.root / name).is_dir():
        if use and not outcome.in_use:
            store.use(name)
            outcome.in_use = True
        return outcome
    package = "".join(c if c.isalnum() or c in "._+-" else "-" for c in path.stem).strip(".-") or "bundle"
    staged = store.staging()
    try:
        if path.is_dir():
            files = copy_folder(path, staged / package, limits)
            how = "local folder (not verified)"
        else:
            files = unpack_zip(path, staged / package, limits, label=path.name, rule_folders_only=True)
            how = "local file (not verified)"
        sha = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else ""
        manifest = {
            "source": "import",
            "path": str(path.resolve()),
            "packages": {package: {"sha256": sha, "verified": how, "files": files}},
        }
        outcome.verified[package] = how
        return _finish(store, staged, name, manifest, use, outcome)
    except BaseException:
        store.discard(staged)
        raise
