"""Reading threat intel lists: CSV, STIX 2.1 bundles and MISP JSON -> :class:`Indicator` s.

    type,value,description,source,level        # CSV; the header line is optional
    ip,185.220.101.45,Tor exit used in spraying,CERT-SE,high
    cidr,45.155.205.0/24,,abuse.ch,
    domain,evil-login.example,phishing kit,,
    sha256,9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08,,,

A STIX bundle's ``indicator`` objects with ``pattern_type: stix`` whose pattern is one
comparison or an OR of comparisons (``[ipv4-addr:value = '1.2.3.4']``, ``domain-name``,
``url``, ``file:hashes.'SHA-256'``, ...) become indicators; revoked or expired ones are
counted, not used. MISP events (``{"Event": ...}``, ``{"response": [...]}`` or a list) give
their attributes of type ip-src/ip-dst (also ``|port``), domain, hostname, domain|ip, url,
md5, sha1, sha256 and filename|<hash>, in the event and in its objects; attributes with
``to_ids: false`` are context, not detection, and are counted as such.

Every row or object that cannot be used is named (``line 4: 'x' is not an IP address``) in
the list's :class:`ListResult`; nothing is dropped without a count.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import ipaddress
import re
from dataclasses import dataclass, field
from typing import Any

import orjson

LEVELS = ("informational", "low", "medium", "high", "critical")
KINDS = ("ip", "cidr", "domain", "url", "hash")

# CSV type column -> kind
_CSV_TYPES = {
    "ip": "ip",
    "ipv4": "ip",
    "ipv6": "ip",
    "ip-src": "ip",
    "ip-dst": "ip",
    "ipv4-addr": "ip",
    "ipv6-addr": "ip",
    "cidr": "ip",
    "domain": "domain",
    "hostname": "domain",
    "domain-name": "domain",
    "fqdn": "domain",
    "url": "url",
    "uri": "url",
    "md5": "hash",
    "sha1": "hash",
    "sha256": "hash",
    "sha512": "hash",
    "hash": "hash",
    "filehash": "hash",
}
_HASH_LENGTHS = {32: "md5", 40: "sha1", 64: "sha256", 128: "sha512"}
_HEX = re.compile(r"[0-9a-fA-F]+")
_DOMAIN = re.compile(r"(?=.{1,253}$)(?:[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9])?\.)*[a-z0-9-]{1,63}")


@dataclass(frozen=True, slots=True)
class Indicator:
    kind: str  # ip (also a network) | domain | url | hash
    value: str  # normalised: compressed IP or network, lowercase domain, normalised URL, hex
    list: str
    description: str = ""
    source: str = ""
    level: str = ""  # "" = the list's level
    tags: tuple[str, ...] = ()
    where: str = ""  # file:line or the STIX/MISP id, for the analyst


@dataclass
class ListResult:
    indicators: list[Indicator] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # rows or objects not used, and why
    unused: int = 0  # counted without a problem: revoked, expired, to_ids false, other types
    unused_why: dict[str, int] = field(default_factory=dict)

    def skip(self, why: str) -> None:
        self.unused += 1
        self.unused_why[why] = self.unused_why.get(why, 0) + 1


class IntelFormatError(ValueError):
    """A list that cannot be read at all (not JSON, not STIX or MISP); the message says where."""


def normalize(kind: str, value: str) -> tuple[str, str]:
    """(kind, normalised value) or ValueError with a reason a person can act on."""
    text = value.strip()
    if not text:
        raise ValueError("empty value")
    if kind == "ip":
        try:
            net = ipaddress.ip_network(text, strict=False)
        except ValueError:
            raise ValueError(f"{text!r} is not an IP address or network") from None
        if isinstance(net, ipaddress.IPv6Network) and net.network_address.ipv4_mapped is not None:
            mapped = net.network_address.ipv4_mapped
            net = ipaddress.ip_network(f"{mapped}/{max(0, net.prefixlen - 96)}", strict=False)
        if net.num_addresses == 1:
            return "ip", str(net.network_address)
        return "ip", str(net)
    if kind == "domain":
        name = text.lower().rstrip(".").removeprefix("*.")
        if not _DOMAIN.fullmatch(name) or "." not in name:
            raise ValueError(f"{text!r} is not a domain name")
        return "domain", name
    if kind == "url":
        return "url", normalize_url(text)
    if kind == "hash":
        digest = text.lower()
        if not _HEX.fullmatch(digest) or len(digest) not in _HASH_LENGTHS:
            raise ValueError(f"{text!r} is not an MD5/SHA-1/SHA-256/SHA-512 hash")
        return "hash", digest
    raise ValueError(f"unknown indicator type {kind!r}")


def normalize_url(text: str) -> str:
    """Scheme and host lowercased, default port and a lone trailing slash dropped; the path and
    query kept as they are (paths are case-sensitive on most servers)."""
    url = text.strip()
    scheme, sep, rest = url.partition("://")
    if not sep or not scheme.isalpha():
        raise ValueError(f"{text!r} is not a URL (no scheme://)")
    host, slash, path = rest.partition("/")
    host = host.lower()
    scheme = scheme.lower()
    if (scheme, host.rpartition(":")[2]) in (("http", "80"), ("https", "443")):
        host = host.rpartition(":")[0]
    path = slash + path
    if path == "/":
        path = ""
    return f"{scheme}://{host}{path}"


def url_host(url: str) -> str:
    rest = url.partition("://")[2]
    host = rest.partition("/")[0].partition("?")[0]
    host = host.rpartition("@")[2]
    if host.startswith("["):
        return host[1 : host.find("]")]
    return host.rpartition(":")[0] if host.count(":") == 1 else host


def _level(value: object) -> str:
    text = str(value or "").strip().lower()
    return text if text in LEVELS else ""


# --- CSV ------------------------------------------------------------------------------------


def read_csv(text: str, name: str, path: str) -> ListResult:
    out = ListResult()
    rows = list(csv.reader(io.StringIO(text)))
    for number, row in enumerate(rows, start=1):
        if not row or not "".join(row).strip() or row[0].lstrip().startswith("#"):
            continue
        if number == 1 and row[0].strip().lower() == "type":
            continue  # the header
        if len(row) < 2:
            out.problems.append(f"line {number}: expected type,value[,description,source,level]")
            continue
        kind = _CSV_TYPES.get(row[0].strip().lower())
        if kind is None:
            out.problems.append(f"line {number}: unknown type {row[0].strip()!r}")
            continue
        try:
            kind, value = normalize(kind, row[1])
        except ValueError as exc:
            out.problems.append(f"line {number}: {exc}")
            continue
        cells = [c.strip() for c in row[2:5]] + ["", "", ""]
        level = _level(cells[2])
        if cells[2] and not level:
            out.problems.append(f"line {number}: level {cells[2]!r} is not one of {', '.join(LEVELS)}")
        out.indicators.append(Indicator(kind, value, name, cells[0], cells[1], level, (), f"{path}:{number}"))
    return out


# --- STIX 2.1 -------------------------------------------------------------------------------

_STIX_PATHS = {
    ("ipv4-addr", "value"): "ip",
    ("ipv6-addr", "value"): "ip",
    ("domain-name", "value"): "domain",
    ("url", "value"): "url",
}
_STIX_HASHES = {"md5", "sha-1", "sha1", "sha-256", "sha256", "sha-512", "sha512"}
_QUOTED = re.compile(r"'(?:[^'\\]|\\.)*'")
_COMBINERS = re.compile(r"\b(AND|FOLLOWEDBY|WITHIN|REPEATS|START|STOP|NOT)\b")


def read_stix(data: bytes, name: str, path: str) -> ListResult:
    import stix2  # type: ignore[import-untyped]
    from stix2.exceptions import STIXError  # type: ignore[import-untyped]

    try:
        bundle = stix2.parse(data.decode("utf-8"), allow_custom=True, version="2.1")
    except (STIXError, ValueError) as exc:
        raise IntelFormatError(f"{path}: not a valid STIX 2.1 bundle: {exc}") from None
    objects = getattr(bundle, "objects", None) or [bundle]
    out = ListResult()
    now = dt.datetime.now(dt.UTC)
    for obj in objects:
        if obj.get("type") != "indicator":
            out.skip(f"{obj.get('type')} objects")
            continue
        where = f"{path}: {obj.get('id')}"
        if obj.get("revoked"):
            out.skip("revoked")
            continue
        valid_until = obj.get("valid_until")
        if valid_until is not None and valid_until < now:
            out.skip("expired (valid_until)")
            continue
        if obj.get("pattern_type") != "stix":
            out.problems.append(f"{where}: pattern_type {obj.get('pattern_type')!r} is not supported")
            continue
        try:
            pairs = _stix_pattern(str(obj.get("pattern")))
        except ValueError as exc:
            out.problems.append(f"{where}: {exc}")
            continue
        tags = tuple(f"intel.{t}" for t in (obj.get("indicator_types") or ()))
        tags += tuple(str(t) for t in (obj.get("labels") or ()))
        tags += tuple(
            f"attack.{p.phase_name}"
            for p in (obj.get("kill_chain_phases") or ())
            if p.kill_chain_name == "mitre-attack"
        )
        description = str(obj.get("name") or obj.get("description") or "")
        level = _level(obj.get("x_norrvakt_level"))
        for kind, value in pairs:
            out.indicators.append(Indicator(kind, value, name, description, "", level, tags, where))
    return out


def _stix_pattern(pattern: str) -> list[tuple[str, str]]:
    """The (kind, value) pairs of a pattern that is one comparison or an OR of comparisons."""
    from stix2patterns.v21.pattern import Pattern  # type: ignore[import-untyped]

    try:
        parsed = Pattern(pattern).inspect()
    except Exception as exc:  # stix2patterns raises its own ParseException types
        raise ValueError(f"pattern {pattern!r} does not parse: {exc}") from None
    combined = _COMBINERS.search(_QUOTED.sub("''", pattern))
    if combined or parsed.qualifiers or parsed.observation_ops - {"OR"}:
        how = combined.group(1) if combined else "qualifier"
        raise ValueError(f"pattern {pattern!r} combines conditions ({how}): not one indicator")
    out = []
    for object_type, comparisons in parsed.comparisons.items():
        for path, op, literal in comparisons:
            kind = _STIX_PATHS.get((object_type, ".".join(str(p) for p in path)))
            if object_type == "file" and len(path) == 2 and path[0] == "hashes":
                kind = "hash" if str(path[1]).lower() in _STIX_HASHES else None
            if kind is None:
                raise ValueError(
                    f"{object_type}:{'.'.join(map(str, path))} is not an indicator Norrvakt matches"
                )
            if op not in ("=", "ISSUBSET") or (op == "ISSUBSET" and kind != "ip"):
                raise ValueError(f"comparison {op!r} on {object_type} is not supported (only = and ISSUBSET)")
            out.append(normalize(kind, literal[1:-1].replace("\\'", "'").replace("\\\\", "\\")))
    return out


# --- MISP -----------------------------------------------------------------------------------

_MISP_THREAT = {"1": "high", "2": "medium", "3": "low"}
_MISP_TYPES = {
    "ip-src": "ip",
    "ip-dst": "ip",
    "domain": "domain",
    "hostname": "domain",
    "url": "url",
    "link": "url",
    "md5": "hash",
    "sha1": "hash",
    "sha256": "hash",
    "sha512": "hash",
}


def misp_events(doc: Any) -> list[dict[str, Any]] | None:
    """The events of a MISP export, or None when ``doc`` is not one."""
    if isinstance(doc, dict) and isinstance(doc.get("response"), list):
        doc = doc["response"]
    if isinstance(doc, dict) and isinstance(doc.get("Event"), dict):
        return [doc["Event"]]
    if (
        isinstance(doc, list)
        and doc
        and all(isinstance(d, dict) and isinstance(d.get("Event"), dict) for d in doc)
    ):
        return [d["Event"] for d in doc]
    return None


def read_misp(events: list[dict[str, Any]], name: str, path: str) -> ListResult:
    out = ListResult()
    for event in events:
        level = _MISP_THREAT.get(str(event.get("threat_level_id", "")), "")
        tags = tuple(
            str(t.get("name")) for t in event.get("Tag") or () if isinstance(t, dict) and t.get("name")
        )
        info = str(event.get("info") or "")
        source = str((event.get("Orgc") or {}).get("name") or "")
        attributes = list(event.get("Attribute") or ())
        for obj in event.get("Object") or ():
            attributes.extend(obj.get("Attribute") or ())
        for attr in attributes:
            _misp_attribute(attr, out, name, path, level, tags, info, source, str(event.get("uuid") or ""))
    return out


def _misp_attribute(
    attr: dict[str, Any],
    out: ListResult,
    name: str,
    path: str,
    level: str,
    tags: tuple[str, ...],
    info: str,
    source: str,
    event_id: str,
) -> None:
    kind_name = str(attr.get("type") or "")
    raw = str(attr.get("value") or "")
    where = f"{path}: event {event_id} attribute {attr.get('uuid') or attr.get('id') or raw}"
    if attr.get("to_ids") in (False, 0, "0", "false"):
        out.skip("to_ids false")
        return
    if attr.get("deleted") in (True, 1, "1", "true"):
        out.skip("deleted")
        return
    base, _, second = kind_name.partition("|")
    values: list[tuple[str, str]] = []
    if kind_name in _MISP_TYPES:
        values.append((_MISP_TYPES[kind_name], raw))
    elif base in ("ip-src", "ip-dst") and second == "port":
        values.append(("ip", raw.partition("|")[0]))
    elif kind_name == "domain|ip":
        domain, _, ip = raw.partition("|")
        values += [("domain", domain), ("ip", ip)]
    elif base == "filename" and second in _MISP_TYPES:
        values.append(("hash", raw.partition("|")[2]))
    else:
        out.skip(f"attribute type {kind_name}")
        return
    attr_tags = tuple(
        str(t.get("name")) for t in attr.get("Tag") or () if isinstance(t, dict) and t.get("name")
    )
    description = " — ".join(x for x in (info, str(attr.get("comment") or "")) if x)
    for kind, value in values:
        try:
            kind, value = normalize(kind, value)
        except ValueError as exc:
            out.problems.append(f"{where}: {exc}")
            continue
        out.indicators.append(
            Indicator(kind, value, name, description, source, level, tags + attr_tags, where)
        )


def read_json(data: bytes, name: str, path: str) -> ListResult:
    try:
        doc = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise IntelFormatError(f"{path}: not JSON: {exc}") from None
    events = misp_events(doc)
    if events is not None:
        return read_misp(events, name, path)
    if isinstance(doc, dict) and (doc.get("type") == "bundle" or doc.get("type") == "indicator"):
        return read_stix(data, name, path)
    raise IntelFormatError(f"{path}: JSON but neither a STIX 2.1 bundle nor a MISP event export")
