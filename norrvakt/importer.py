"""`norrvakt import`: files → the same pipeline as live traffic, with progress.

With a server running on the data directory the records go through its API (the server owns
journal and store); otherwise the importer opens the data directory itself. Either way every
record — and every problem found in a file — ends up as an event: damaged parts become
``pipeline_error`` events naming the file and the place.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from norrvakt.event import Event, RawRecord
from norrvakt.node.pipeline import Pipeline, pipeline_error_event
from norrvakt.sources.files import FileItem, detect_format, progress_total, read_file

BATCH = 2000


@dataclass
class ImportResult:
    files: int = 0
    records: int = 0
    errors: int = 0
    problems: list[str] = field(default_factory=list)  # first few, for the summary
    seconds: float = 0.0  # reading, parsing, journaling and waiting until searchable

    def as_dict(self) -> dict[str, Any]:
        return {
            "files": self.files,
            "records": self.records,
            "errors": self.errors,
            "problems": self.problems,
            "seconds": round(self.seconds, 3),
        }


def items_to_events(pipeline: Pipeline, items: Sequence[FileItem]) -> list[Event]:
    """Parse good records; turn problems into pipeline_error events (order kept)."""
    good = [it.record for it in items if it.error_type is None]
    parsed = iter(pipeline.parse(good))
    out: list[Event] = []
    for it in items:
        if it.error_type is None:
            out.append(next(parsed))
        else:
            pipeline.transport_error(it.record.source_id, it.error_type)
            out.append(pipeline_error_event(it.record, it.error_type, it.error))
    return out


def batched(items: Iterable[FileItem], size: int = BATCH) -> Iterator[list[FileItem]]:
    batch: list[FileItem] = []
    for it in items:
        batch.append(it)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


ProgressFn = Callable[[Path, int, int], None]  # (file, done units, total units)


def file_batches(
    paths: Sequence[Path],
    tenant: str,
    source_id: str,
    fmt: str,
    timezone: str,
    result: ImportResult,
    on_file: Callable[[Path, int], None] | None = None,
) -> Iterator[tuple[Path, list[FileItem]]]:
    for path in paths:
        file_fmt = detect_format(path) if fmt == "auto" else fmt
        if on_file:
            on_file(path, progress_total(path, file_fmt))
        result.files += 1
        for batch in batched(read_file(path, tenant, source_id, file_fmt, timezone)):
            for it in batch:
                if it.error_type:
                    result.errors += 1
                    if len(result.problems) < 20:
                        result.problems.append(it.error)
                else:
                    result.records += 1
            yield path, batch


def encode_items(items: Sequence[FileItem]) -> bytes:
    """NDJSON body for POST /api/import."""
    lines = []
    for it in items:
        doc: dict[str, Any] = {
            "peer": it.record.peer,
            "format": it.record.format,
            "received_at": it.record.received_at,
        }
        try:
            doc["payload"] = it.record.payload.decode("utf-8")
        except UnicodeDecodeError:
            doc["payload_b64"] = base64.b64encode(it.record.payload).decode("ascii")
        if it.error_type:
            doc["error_type"] = it.error_type
            doc["error"] = it.error
        lines.append(orjson.dumps(doc))
    return b"\n".join(lines)


# Fields that keep what an import client said about a record's origin: shown and searchable,
# but never taken for the record's own peer or receive time (see decode_items).
CLAIMED_PEER = "import.claimed_peer"
CLAIMED_RECEIVED_AT = "import.claimed_received_at"


def decode_items(
    body: bytes, tenant: str, source_id: str, timezone: str, *, peer: str
) -> tuple[list[FileItem], list[dict[str, str]]]:
    """Inverse of :func:`encode_items` (server side); raises ValueError naming the bad line.

    ``peer`` (the caller's address) and the receive time (now) are the server's own
    knowledge and go on every record. A client's ``peer`` / ``received_at`` — the file and
    record it read, the time it read it — are kept only as claims, one dict of fields per
    item (see :func:`add_claims`): a caller could otherwise import back-dated records that
    look as if they came from any address, e.g. from Norrvakt's own audit trail ("local")."""
    now = _now()
    items: list[FileItem] = []
    claims: list[dict[str, str]] = []
    for n, line in enumerate(body.split(b"\n"), start=1):
        if not line.strip():
            continue
        try:
            doc = orjson.loads(line)
            payload = (
                doc["payload"].encode("utf-8") if "payload" in doc else base64.b64decode(doc["payload_b64"])
            )
            rec = RawRecord(
                tenant=tenant,
                source_id=source_id,
                received_at=now,
                peer=peer,
                payload=payload,
                format=str(doc.get("format", "text")),
                timezone=timezone,
            )
            claimed: dict[str, str] = {}
            if doc.get("peer"):
                claimed[CLAIMED_PEER] = str(doc["peer"])
            if doc.get("received_at"):
                claimed[CLAIMED_RECEIVED_AT] = str(int(doc["received_at"]))
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ValueError(f"import body line {n}: {exc}") from exc
        items.append(FileItem(rec, doc.get("error_type"), str(doc.get("error", ""))))
        claims.append(claimed)
    return items, claims


def add_claims(events: Sequence[Event], claims: Sequence[dict[str, str]]) -> None:
    """Put each item's claimed origin (from :func:`decode_items`) on its event as fields."""
    for event, claimed in zip(events, claims, strict=True):
        if claimed:
            event.fields = {**event.fields, **claimed}


def _now() -> int:
    from norrvakt.event import now_us

    return now_us()
