"""Checking and unpacking one content bundle (a release zip or a folder) into a staging folder.

Nothing here writes outside the staging folder it is given: a zip member whose path is absolute,
has a drive letter, climbs out with ``..``, or is a symbolic link is refused (zip slip), and the
uncompressed total, the member count and each member's compression ratio are limited before a
byte is written (zip bombs); a member's actual size is counted while it is written too, since
the sizes in a zip's directory are the sender's word. Every refusal is a :class:`ContentError`
naming the bundle, the member and the reason. After unpacking, every rule file is parsed by the
rule loader (:func:`norrvakt.detect.loader.compile_files`) — no second Sigma parser — and a file
that is not a rule file at all (bad YAML, not UTF-8) or a rule pySigma rejects as malformed (an
unknown modifier) rejects the bundle with the file, line and reason.
"""

from __future__ import annotations

import hashlib
import shutil
import stat
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from norrvakt.detect.content.store import ContentError

_CHUNK = 1 << 16
# A Sigma YAML file compresses about 3-5x; 100x is only reached by crafted members.
MAX_RATIO = 100
MAX_MEMBERS = 50_000


@dataclass(frozen=True)
class Limits:
    download_bytes: int = 100 * 1024 * 1024
    unpacked_bytes: int = 400 * 1024 * 1024
    members: int = MAX_MEMBERS


@dataclass(frozen=True)
class Problem:
    """One reason a bundle is refused: where (file, line; 0 = no line) and why."""

    path: str
    line: int
    reason: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.reason}" if self.line else f"{self.path}: {self.reason}"


class BundleRejected(ContentError):
    """The bundle failed its checks; ``problems`` lists every one found."""

    def __init__(self, bundle: str, problems: list[Problem]) -> None:
        self.problems = problems
        shown = "\n  ".join(str(p) for p in problems[:20])
        more = f"\n  ... and {len(problems) - 20} more" if len(problems) > 20 else ""
        super().__init__(f"{bundle}: rejected ({len(problems)} problem(s)):\n  {shown}{more}")


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _member_path(name: str) -> PurePosixPath | None:
    """The member's relative path, or None when it would land outside the folder."""
    if not name or name.startswith(("/", "\\")) or "\\" in name:
        return None
    path = PurePosixPath(name)
    if path.is_absolute() or any(part in ("..", "") or ":" in part for part in path.parts):
        return None
    return path


def in_rule_folder(rel: PurePosixPath) -> bool:
    """Whether a bundle member sits in a ``rules*`` or ``deprecated`` folder, at the top or under
    one wrapping folder (GitHub's source zip: ``sigma-master/rules/...``)."""
    return any(p.startswith("rules") or p == "deprecated" for p in rel.parts[:-1][:2])


def unpack_zip(
    archive: Path, target: Path, limits: Limits, label: str | None = None, *, rule_folders_only: bool = False
) -> int:
    """Unpack ``archive`` into the (new, empty) folder ``target``; the number of files written.
    ``rule_folders_only``: only members in rule folders (:func:`in_rule_folder`) — an offline
    bundle may be a whole checkout, whose tests and tools are no rules. Every member is checked
    for safety all the same."""
    label = label or archive.name
    try:
        zf = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError) as exc:
        raise BundleRejected(label, [Problem(label, 0, f"not a zip file: {exc}")]) from exc
    with zf:
        infos = zf.infolist()
        problems: list[Problem] = []
        if len(infos) > limits.members:
            problems.append(Problem(label, 0, f"{len(infos)} members, more than the limit {limits.members}"))
        total = 0
        for info in infos:
            where = f"{label}!{info.filename}"
            if _member_path(info.filename) is None:
                problems.append(Problem(where, 0, "member path escapes the folder (absolute or '..')"))
            mode = info.external_attr >> 16
            if stat.S_ISLNK(mode):
                problems.append(Problem(where, 0, "symbolic link (refused: it could point outside)"))
            if info.flag_bits & 0x1:
                problems.append(Problem(where, 0, "encrypted member"))
            total += info.file_size
            if (
                info.compress_size
                and info.file_size / info.compress_size > MAX_RATIO
                and info.file_size > _CHUNK
            ):
                problems.append(
                    Problem(
                        where, 0, f"compression ratio {info.file_size // info.compress_size}:1 (zip bomb?)"
                    )
                )
        if total > limits.unpacked_bytes:
            problems.append(
                Problem(label, 0, f"{total} bytes uncompressed, more than the limit {limits.unpacked_bytes}")
            )
        if problems:
            raise BundleRejected(label, problems)
        target.mkdir(parents=True, exist_ok=True)
        written = 0
        budget = limits.unpacked_bytes
        for info in infos:
            rel = _member_path(info.filename)
            if rel is None:  # refused above already; never reached
                continue
            if rule_folders_only and not in_rule_folder(rel):
                continue
            dest = target.joinpath(*rel.parts)
            if info.is_dir():
                dest.mkdir(parents=True, exist_ok=True)
                continue
            dest.parent.mkdir(parents=True, exist_ok=True)
            try:
                with zf.open(info) as src, open(dest, "xb") as out:
                    while chunk := src.read(_CHUNK):
                        budget -= len(chunk)
                        if budget < 0:
                            raise BundleRejected(
                                label,
                                [Problem(f"{label}!{info.filename}", 0, "uncompressed size over the limit")],
                            )
                        out.write(chunk)
            except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError) as exc:
                raise BundleRejected(
                    label, [Problem(f"{label}!{info.filename}", 0, f"bad member: {exc}")]
                ) from exc
            written += 1
        if rule_folders_only and not written:
            raise BundleRejected(label, [Problem(label, 0, "no rules*/ folder inside")])
        return written


def copy_folder(source: Path, target: Path, limits: Limits) -> int:
    """Copy the ``rules*`` and ``deprecated`` folders of ``source`` into ``target``; symbolic links
    are refused, as in a zip."""
    if not source.is_dir():
        raise ContentError(f"{source}: not a folder")
    tops = sorted(
        p for p in source.iterdir() if p.is_dir() and (p.name.startswith("rules") or p.name == "deprecated")
    )
    if not tops:
        raise BundleRejected(str(source), [Problem(str(source), 0, "no rules*/ folder inside")])
    problems: list[Problem] = []
    files: list[Path] = []
    total = 0
    for top in tops:
        for path in [top, *top.rglob("*")]:
            if path.is_symlink():
                problems.append(Problem(str(path), 0, "symbolic link (refused: it could point outside)"))
            elif path.is_file():
                files.append(path)
                total += path.stat().st_size
    if len(files) > limits.members:
        problems.append(Problem(str(source), 0, f"{len(files)} files, more than the limit {limits.members}"))
    if total > limits.unpacked_bytes:
        problems.append(
            Problem(str(source), 0, f"{total} bytes, more than the limit {limits.unpacked_bytes}")
        )
    if problems:
        raise BundleRejected(str(source), problems)
    for path in files:
        dest = target / path.relative_to(source)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, dest)
    return len(files)


def check_rules(version_dir: Path, package_dirs: list[Path]) -> tuple[int, list[Problem], list[Problem]]:
    """Parse every rule file of ``package_dirs`` with the rule loader: (rules loaded, problems
    that reject the bundle, notes that do not). A file that is not a rule file (bad YAML, not
    UTF-8, not a mapping) and a rule pySigma calls malformed reject it; a rule Norrvakt's engine
    cannot run yet is reported by `norrvakt rules check` as usual and does not."""
    from norrvakt.detect.loader import compile_files, find_rule_files
    from norrvakt.detect.logsource import load_pipeline

    files: list[tuple[str, bytes]] = []
    seen: set[bytes] = set()
    for path in find_rule_files(package_dirs) if package_dirs else []:
        data = path.read_bytes()
        key = hashlib.sha256(data).digest()
        if key in seen:  # the same file in a narrower package: parsed once
            continue
        seen.add(key)
        files.append((str(path.relative_to(version_dir)), data))
    if not files:
        return 0, [Problem(str(version_dir.name), 0, "no rule files (*.yml) in the bundle")], []
    compiled = compile_files(files, load_pipeline())
    rejects: list[Problem] = []
    notes: list[Problem] = []
    loaded = 0
    for status in compiled.statuses:
        if status.loaded:
            loaded += 1
            continue
        problem = Problem(status.path, status.line, status.reason)
        malformed = (
            status.kind == "file" or "Unknown modifier" in status.reason or "bad YAML" in status.reason
        )
        (rejects if malformed else notes).append(problem)
    return loaded, rejects, notes
