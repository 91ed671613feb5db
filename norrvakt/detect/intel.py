"""Threat intel: IOC lists from a directory, matched against every event.

    intel = IntelStore(Path("/var/lib/norrvakt/intel"))   # *.csv, *.json (STIX 2.1 or MISP)
    report_rows = intel.load()                           # one RuleStatus per list
    for hit in intel.match(event): hit.indicator.list, hit.field, hit.value
    intel.reload_if_changed()                            # on a tick: mtime/size check

What is looked at in an event (formats in :mod:`norrvakt.detect.intel_formats`):

- **IPs**: ``source.ip``, ``destination.ip``, ``host.ip``, and any value in ``fields`` that
  is an IP address (``IpAddress``, ``DestinationIp``, ``vpn_ip`` ...), IPv4-mapped IPv6 read
  as IPv4; exact addresses by one dict lookup, networks (CIDR) by one lookup per prefix
  length present in the lists.
- **Domains**: ``url.domain``, ``destination.domain``, ``source.domain``, the host of
  ``url.full``, and the fields ``QueryName`` (Sysmon DNS), ``dns.question.name``,
  ``query``, ``DestinationHostname``; a listed domain also matches its subdomains.
- **URLs**: ``url.full`` and a ``url`` field, normalised (scheme and host lowercased).
- **File hashes**: ``file.hash.md5/sha1/sha256`` and the Sysmon ``Hashes``/``Hash`` field
  (``SHA256=…,MD5=…``).

Field values are only scanned for IPs when a list has IP indicators, and only values that
look like one (a digit first, or a colon, and short) are parsed: a Sysmon event costs a few
microseconds.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field, replace
from pathlib import Path

from norrvakt.detect.intel_formats import (
    Indicator,
    IntelFormatError,
    ListResult,
    normalize_url,
    read_csv,
    read_json,
    url_host,
)
from norrvakt.detect.report import RuleStatus
from norrvakt.event import Event

INTEL_SUFFIXES = (".csv", ".json", ".stix", ".stix2")
_IP_ECS = ("source.ip", "destination.ip", "host.ip")
_DOMAIN_ECS = ("url.domain", "destination.domain", "source.domain")
_DOMAIN_FIELDS = ("QueryName", "dns.question.name", "query", "DestinationHostname")
_HASH_ECS = ("file.hash.md5", "file.hash.sha1", "file.hash.sha256")
_HASH_FIELDS = ("Hashes", "Hash")
_IP_FIRST = frozenset("0123456789:")
# What an address looks like: numbers such as EventID 4624 or times such as 21:00:01.5 are
# rejected here, before the (much slower) ipaddress parser sees them.
_IPISH = re.compile(r"(?:\d{1,3}\.){3}\d{1,3}|[0-9a-fA-F]{0,4}:[0-9a-fA-F:.]{2,41}")
_MAX_PROBLEMS_SHOWN = 5


@dataclass(frozen=True, slots=True)
class IntelHit:
    indicator: Indicator
    field: str  # where in the event: "source.ip", "fields.IpAddress", ...
    value: str  # the event's value that matched


@dataclass
class IntelIndex:
    """All loaded indicators, keyed for lookup. Values are lists: two lists may name one IOC."""

    ips: dict[str, list[Indicator]] = field(default_factory=dict)
    nets4: dict[int, dict[int, list[Indicator]]] = field(default_factory=dict)  # prefix -> network int
    nets6: dict[int, dict[int, list[Indicator]]] = field(default_factory=dict)
    domains: dict[str, list[Indicator]] = field(default_factory=dict)
    urls: dict[str, list[Indicator]] = field(default_factory=dict)
    hashes: dict[str, list[Indicator]] = field(default_factory=dict)

    def add(self, ind: Indicator) -> None:
        if ind.kind == "ip":
            if "/" in ind.value:
                net = ipaddress.ip_network(ind.value)
                table = self.nets4 if net.version == 4 else self.nets6
                table.setdefault(net.prefixlen, {}).setdefault(int(net.network_address), []).append(ind)
            else:
                self.ips.setdefault(ind.value, []).append(ind)
        elif ind.kind == "domain":
            self.domains.setdefault(ind.value, []).append(ind)
        elif ind.kind == "url":
            self.urls.setdefault(ind.value, []).append(ind)
        else:
            self.hashes.setdefault(ind.value, []).append(ind)

    @property
    def has_ips(self) -> bool:
        return bool(self.ips or self.nets4 or self.nets6)

    def __len__(self) -> int:
        tables = (self.ips, self.domains, self.urls, self.hashes)
        nets = sum(len(v) for t in (self.nets4, self.nets6) for v in t.values())
        return sum(len(t) for t in tables) + nets


class IntelStore:
    """The IOC lists of one directory, reloaded when a file changes. One per engine (thread)."""

    def __init__(self, directory: Path, default_level: str = "high") -> None:
        self.directory = directory
        self.default_level = default_level
        self.index = IntelIndex()
        self.statuses: list[RuleStatus] = []
        self._snapshot: dict[str, tuple[int, int]] = {}
        self._good: dict[str, list[Indicator]] = {}  # the last good version of each list
        self._prefixes4: tuple[int, ...] = ()
        self._prefixes6: tuple[int, ...] = ()

    # -- loading ---------------------------------------------------------------------------

    def load(self) -> list[RuleStatus]:
        """(Re)load every list; one status row per file (kind ``intel``).

        A list that was good and now cannot be used (a half-written file, a broken export)
        keeps its previous indicators until it is fixed, and its row says so."""
        index = IntelIndex()
        statuses: list[RuleStatus] = []
        snapshot: dict[str, tuple[int, int]] = {}
        good: dict[str, list[Indicator]] = {}
        if not self.directory.is_dir():
            statuses.append(self._status(self.directory, False, "no such directory"))
        for path in self._files():
            try:
                st = path.stat()
                snapshot[str(path)] = (st.st_mtime_ns, st.st_size)
                status, indicators = self._read(path, path.read_bytes())
            except OSError as exc:
                status, indicators = self._status(path, False, f"cannot read: {exc.strerror or exc}"), []
            previous = self._good.get(str(path))
            if not status.loaded and previous:
                indicators = previous
                status = replace(
                    status,
                    loaded=True,
                    reason=f"{status.reason}; still using the {len(previous)} indicators "
                    "of its previous version",
                    title=f"{len(previous)} indicators",
                )
            if status.loaded:
                good[str(path)] = indicators
                for ind in indicators:
                    index.add(ind)
            statuses.append(status)
        self.index, self.statuses, self._snapshot, self._good = index, statuses, snapshot, good
        self._prefixes4 = tuple(sorted(index.nets4, reverse=True))
        self._prefixes6 = tuple(sorted(index.nets6, reverse=True))
        return statuses

    def reload_if_changed(self) -> list[RuleStatus] | None:
        """Reload when a list was added, removed or changed (mtime or size); the new statuses,
        or None when nothing changed."""
        current: dict[str, tuple[int, int]] = {}
        for path in self._files():
            try:
                st = path.stat()
            except OSError:
                current[str(path)] = (-1, -1)
                continue
            current[str(path)] = (st.st_mtime_ns, st.st_size)
        if current == self._snapshot:
            return None
        return self.load()

    def _files(self) -> list[Path]:
        if not self.directory.is_dir():
            return []
        return sorted(p for p in self.directory.iterdir() if p.is_file() and not p.name.startswith("."))

    def _read(self, path: Path, data: bytes) -> tuple[RuleStatus, list[Indicator]]:
        name = path.stem
        suffix = path.suffix.lower()
        if suffix not in INTEL_SUFFIXES:
            return self._status(path, False, f"not an intel list (expected {', '.join(INTEL_SUFFIXES)})"), []
        try:
            if suffix == ".csv":
                try:
                    text = data.decode("utf-8-sig")
                except UnicodeDecodeError as exc:
                    return self._status(path, False, f"not UTF-8 at byte offset {exc.start}"), []
                result: ListResult = read_csv(text, name, str(path))
            else:
                result = read_json(data, name, str(path))
        except IntelFormatError as exc:
            return self._status(path, False, str(exc).removeprefix(f"{path}: ")), []
        count = len(result.indicators)
        notes = []
        if result.problems:
            shown = "; ".join(result.problems[:_MAX_PROBLEMS_SHOWN])
            more = len(result.problems) - _MAX_PROBLEMS_SHOWN
            notes.append(
                f"{len(result.problems)} entries not used: {shown}"
                + (f"; and {more} more" if more > 0 else "")
            )
        if result.unused:
            why = ", ".join(f"{n} {w}" for w, n in sorted(result.unused_why.items()))
            notes.append(f"{result.unused} entries not indicators ({why})")
        if not count:
            return self._status(path, False, "; ".join(["no indicators", *notes])), []
        return self._status(path, True, "; ".join(notes), title=f"{count} indicators"), result.indicators

    def _status(self, path: Path, loaded: bool, reason: str, title: str = "") -> RuleStatus:
        return RuleStatus(
            path=str(path),
            line=0,
            kind="intel",
            loaded=loaded,
            reason=reason,
            id=f"intel:{path.stem}",
            title=title,
            level=self.default_level,
        )

    # -- matching --------------------------------------------------------------------------

    def match(self, event: Event) -> list[IntelHit]:
        index = self.index
        out: list[IntelHit] = []
        ecs = event.ecs
        if index.has_ips:
            seen: set[str] = set()
            for name in _IP_ECS:
                value = ecs.get(name)
                if value:
                    for part in value.split(",") if "," in value else (value,):
                        self._ip(part.strip(), name, seen, out)
            for name, value in event.fields.items():
                # Cheap tests first: most values are names, numbers, paths or times.
                if not value or value[0] not in _IP_FIRST or len(value) > 45:
                    continue
                looks = ("." in value and value.count(".") == 3) or ":" in value
                if looks and value not in seen and _IPISH.fullmatch(value):
                    self._ip(value, "fields." + name, seen, out)
        if index.domains or index.urls:
            self._web(event, out)
        if index.hashes:
            self._hashes(event, out)
        return out

    def _ip(self, text: str, where: str, seen: set[str], out: list[IntelHit]) -> None:
        if text in seen:
            return
        seen.add(text)
        index = self.index
        hits = index.ips.get(text)
        if hits is None and not (self._prefixes4 or self._prefixes6) and not text.startswith("::ffff:"):
            return  # the common case: canonical text, no networks listed
        try:
            ip = ipaddress.ip_address(text.strip("[]").split("%", 1)[0])
        except ValueError:
            return
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        if hits is None:
            hits = index.ips.get(str(ip))
        found = list(hits or ())
        number = int(ip)
        if ip.version == 4:
            for prefix in self._prefixes4:
                found.extend(index.nets4[prefix].get(number >> (32 - prefix) << (32 - prefix), ()))
        else:
            for prefix in self._prefixes6:
                found.extend(index.nets6[prefix].get(number >> (128 - prefix) << (128 - prefix), ()))
        out.extend(IntelHit(ind, where, text) for ind in found)

    def _web(self, event: Event, out: list[IntelHit]) -> None:
        index = self.index
        ecs, fields = event.ecs, event.fields
        names: list[tuple[str, str]] = [(n, ecs[n]) for n in _DOMAIN_ECS if ecs.get(n)]
        names += [("fields." + n, fields[n]) for n in _DOMAIN_FIELDS if fields.get(n)]
        urls = [
            (n, v) for n, v in (("url.full", ecs.get("url.full")), ("fields.url", fields.get("url"))) if v
        ]
        for where, url in urls:
            try:
                normal = normalize_url(url)
            except ValueError:
                continue
            out.extend(IntelHit(ind, where, url) for ind in index.urls.get(normal, ()))
            names.append((where, url_host(normal)))
        if not index.domains:
            return
        done: set[str] = set()
        for where, value in names:
            name = value.strip().lower().rstrip(".")
            if name in done:
                continue
            done.add(name)
            # The name and every parent: a listed evil.example also covers cdn.evil.example.
            while name:
                hits = index.domains.get(name)
                if hits:
                    out.extend(IntelHit(ind, where, value) for ind in hits)
                cut = name.find(".")
                if cut < 0:
                    break
                name = name[cut + 1 :]

    def _hashes(self, event: Event, out: list[IntelHit]) -> None:
        index = self.index
        ecs, fields = event.ecs, event.fields
        found: dict[str, str] = {}
        for name in _HASH_ECS:
            value = ecs.get(name)
            if value:
                found.setdefault(value.lower(), name)
        for name in _HASH_FIELDS if not found else ():  # Windows events: ECS already has them
            value = fields.get(name)
            if value:
                for part in value.split(","):
                    digest = part.partition("=")[2].strip().lower()
                    if digest:
                        found.setdefault(digest, "fields." + name)
        for digest, where in found.items():
            out.extend(IntelHit(ind, where, digest) for ind in index.hashes.get(digest, ()))
