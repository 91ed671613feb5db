"""The feeds a Microsoft 365 connector can pull, and what a puller hands the connector.

Office 365 Management Activity API content types: ``Audit.AzureActiveDirectory``,
``Audit.Exchange``, ``Audit.SharePoint``, ``Audit.General``, ``DLP.All``. Microsoft Graph:
``graph.signIns`` (interactive and non-interactive), ``graph.directoryAudits``,
``graph.alerts_v2`` (Defender XDR alerts), ``graph.intune.auditEvents``.

Each record becomes one :class:`Item`: its ``Id``/``id`` (what duplicates are recognised by),
the time it is placed at on the feed's axis (the blob's ``contentCreated`` for the Management
API, the record's own ``createdDateTime``/``activityDateTime`` for Graph) and its JSON.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

MANAGEMENT_FEEDS = (
    "Audit.AzureActiveDirectory",
    "Audit.Exchange",
    "Audit.SharePoint",
    "Audit.General",
    "DLP.All",
)
GRAPH_FEEDS = ("graph.signIns", "graph.directoryAudits", "graph.alerts_v2", "graph.intune.auditEvents")
ALL_FEEDS = MANAGEMENT_FEEDS + GRAPH_FEEDS


@dataclass
class Item:
    id: str
    at: int  # µs on the feed's axis
    payload: bytes


@dataclass
class Chunk:
    """What one content blob or Graph page gave: its records, and keys to remember once they
    are durable (a content blob's id, so a later listing does not fetch it again)."""

    items: list[Item]
    marks: list[tuple[str, int]] = field(default_factory=list)
    bad: list[tuple[bytes, str]] = field(default_factory=list)  # (value, why): kept as pipeline errors


class FeedPuller(Protocol):
    feed: str

    def pull(self, start: int, end: int, seen: Callable[[str], bool]) -> AsyncIterator[Chunk]:
        """Everything of the feed in [start, end) µs, a chunk at a time."""
        ...


def one_record(doc: Any) -> bytes:
    """A record's own JSON, from a page that held several (compact, non-ASCII kept)."""
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode()


def parse_time(value: Any) -> int | None:
    """µs of an ISO 8601 time as Microsoft writes them (``2026-12-02T09:15:02.1234567Z``,
    seven fraction digits; Management API ``CreationTime`` without a zone means UTC)."""
    if not isinstance(value, str) or len(value) < 19:
        return None
    text = value.strip().replace("Z", "+00:00").replace("z", "+00:00")
    if "." in text[19:]:
        head, _, rest = text.partition(".")
        digits = "".join(ch for ch in rest if ch.isdigit())
        zone = rest[len(digits) :]
        text = f"{head}.{(digits + '000000')[:6]}{zone}"
    try:
        when = dt.datetime.fromisoformat(text)
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return int(when.timestamp() * 1_000_000)


def iso(us: int, *, zone: bool) -> str:
    """µs as the APIs take them: the Management API without a zone (UTC), Graph with ``Z``."""
    text = dt.datetime.fromtimestamp(us / 1_000_000, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return text + "Z" if zone else text
