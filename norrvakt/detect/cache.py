"""On-disk cache of compiled rule sets, keyed by the content hash of everything that shapes them.

The key covers the compiled-form version and the compiler's own code, the pySigma version,
the log source mapping and every rule file's path and bytes; any change to one of them is a
different key, so a stale entry is never used. Restarting with the same rules loads the
compiled form (a pickle of :class:`CompiledSet`: the match plan and the load report) instead
of parsing ~2,400 YAML files again.

A pickle runs code when loaded, so an entry is only read from a directory owned by the current
user and not writable by anyone else (the directory is created with mode 0700); otherwise the
cache is not used and the load report says why. At most :data:`KEEP` entries are kept.
"""

from __future__ import annotations

import gc
import hashlib
import os
import pickle
import stat
import tempfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from norrvakt.detect.correlation import CorrelationSpec
from norrvakt.detect.ir import IR_VERSION
from norrvakt.detect.plan import Plan
from norrvakt.detect.report import RuleStatus

KEEP = 8
_SUFFIX = ".rules.pickle"


@dataclass(frozen=True, slots=True)
class CompiledSet:
    plan: Plan
    statuses: tuple[RuleStatus, ...]
    correlations: tuple[CorrelationSpec, ...] = ()


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "norrvakt"


# The modules whose code decides what a rule compiles to: an edited compiler must never meet a
# plan cached by its previous version (IR_VERSION is for releases; this catches the rest).
_COMPILER_MODULES = (
    "ir.py",
    "plan.py",
    "sigma.py",
    "loader.py",
    "logsource.py",
    "cache.py",
    "correlation.py",
)


def _compiler_digest() -> str:
    h = hashlib.sha256()
    here = Path(__file__).resolve().parent
    for name in _COMPILER_MODULES:
        try:
            h.update((here / name).read_bytes())
        except OSError:  # e.g. a zipped install: fall back to the version constant alone
            h.update(name.encode())
    return h.hexdigest()


def cache_key(files: list[tuple[str, bytes]], pipeline_digest: str) -> str:
    h = hashlib.sha256()
    try:
        sigma_version = metadata.version("pysigma")
    except metadata.PackageNotFoundError:  # running from a source tree without metadata
        sigma_version = "unknown"
    h.update(
        f"ir={IR_VERSION};code={_compiler_digest()};pysigma={sigma_version};pipeline={pipeline_digest}\n".encode()
    )
    for path, data in files:
        h.update(f"{path}\0{len(data)}\0".encode("utf-8", "surrogateescape"))
        h.update(data)
    return h.hexdigest()


def _usable_dir(directory: Path) -> str:
    """Why pickles must not be loaded from ``directory``; "" when they may."""
    try:
        st = directory.stat()
    except OSError as exc:
        return f"{directory}: {exc.strerror or exc}"
    if hasattr(os, "getuid") and st.st_uid != os.getuid():
        return f"{directory} is owned by uid {st.st_uid}, not by this user"
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        return f"{directory} is writable by group or others (mode {stat.filemode(st.st_mode)})"
    return ""


def load(directory: Path, key: str) -> tuple[CompiledSet | None, str]:
    """The cached set for ``key`` (or None) and, when the cache cannot be used, why."""
    path = directory / f"{key}{_SUFFIX}"
    if not path.exists():
        return None, ""
    problem = _usable_dir(directory)
    if problem:
        return None, problem
    try:
        with open(path, "rb") as fh:
            data = fh.read()
        # Unpickling creates ~100,000 containers; the cyclic GC would walk the heap again and again.
        gc.disable()
        try:
            value = pickle.loads(data)
        finally:
            gc.enable()
    except (OSError, pickle.UnpicklingError, EOFError, AttributeError, ImportError, TypeError) as exc:
        # A damaged or outdated entry is recompiled and overwritten, never trusted.
        return None, f"{path}: unreadable ({type(exc).__name__}: {exc}); recompiled"
    if not isinstance(value, CompiledSet):
        return None, f"{path}: not a compiled rule set; recompiled"
    os.utime(path)  # recently used entries survive pruning
    return value, ""


def store(directory: Path, key: str, value: CompiledSet) -> str:
    """Write the entry atomically; returns "" or why it could not be written."""
    try:
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        problem = _usable_dir(directory)
        if problem:
            return problem
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix=_SUFFIX)
        try:
            with os.fdopen(fd, "wb") as fh:
                pickle.dump(value, fh, protocol=pickle.HIGHEST_PROTOCOL)
            os.replace(tmp, directory / f"{key}{_SUFFIX}")
        except BaseException:
            os.unlink(tmp)
            raise
        _prune(directory)
    except OSError as exc:
        return f"{directory}: cannot write the cache: {exc.strerror or exc}"
    return ""


def _prune(directory: Path) -> None:
    entries = sorted(directory.glob(f"*{_SUFFIX}"), key=lambda p: p.stat().st_mtime, reverse=True)
    for old in entries[KEEP:]:
        try:
            old.unlink()
        except FileNotFoundError:  # another process pruned it first
            continue
