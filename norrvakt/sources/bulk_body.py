"""An Elasticsearch ``_bulk`` body turned into events: its actions read, its documents parsed.

One function for the node and its parse workers (:mod:`norrvakt.node.parse_worker`), like
:mod:`norrvakt.sources.hec_body`: with workers, the whole body goes to one of them, so reading
the action lines, checking and parsing a Winlogbeat POST of hundreds of documents cost the
node nothing but the hand-off. What comes back is the plan of the answer (one item per action,
in body order), the parsed events of the documents taken, and the problems, each with the
bytes, error type and reason the node keeps as a ``pipeline_error`` event (logged and counted
there, with the sender's address).
"""

from __future__ import annotations

from typing import Any, NamedTuple

from norrvakt.event import Event, RawRecord
from norrvakt.parsers.records import parse_one
from norrvakt.sources.http_json import Problem, load_event

_DOC_ERRORS = {
    "too_large": ("bulk.document_too_large", "illegal_argument_exception"),
    "too_deep": ("bulk.too_deep", "mapper_parsing_exception"),
    "malformed": ("bulk.bad_document", "mapper_parsing_exception"),
    "not_object": ("bulk.bad_document", "mapper_parsing_exception"),
}


class BulkProblem(NamedTuple):
    """A line not taken: its bytes, the pipeline_error type, and the reason (naming the line)."""

    data: bytes
    error_type: str
    reason: str


class BulkPlan(NamedTuple):
    """``items``: the answer's items, one per action in body order; an item of a document taken
    holds ``"record": k``, the index of its record (filled in with its seq after the commit).
    ``documents``: (document bytes, target index) of each record. ``lines``: non-empty lines."""

    items: list[dict[str, Any]]
    documents: list[tuple[bytes, str]]
    problems: list[BulkProblem]
    lines: int


def plan_bulk(body: bytes, max_event_bytes: int, index: str | None) -> BulkPlan:
    """Read the actions of ``body`` (``index``: the index of the URL, if any)."""
    lines = [(n, ln) for n, ln in enumerate(body.split(b"\n"), start=1) if ln.strip()]
    items: list[dict[str, Any]] = []
    documents: list[tuple[bytes, str]] = []
    problems: list[BulkProblem] = []
    i = 0
    while i < len(lines):
        line_no, line = lines[i]
        action, problem = load_event(line, max_event_bytes)
        if problem is not None:
            why = f"_bulk line {line_no}: {problem.reason}"
            error_type = "bulk.too_deep" if problem.kind == "too_deep" else "bulk.bad_action"
            problems.append(BulkProblem(line, error_type, why))
            items.append({"index": {"status": 400, "error": {"type": "parse_exception", "reason": why}}})
            i += 1
            continue
        op = next(iter(action), "") if isinstance(action, dict) and len(action) == 1 else ""
        meta = action.get(op) if isinstance(action, dict) else None
        target = (meta or {}).get("_index", index or "") if isinstance(meta, dict) else (index or "")
        if op in {"index", "create"}:
            if i + 1 >= len(lines):
                why = f"_bulk line {line_no}: action {op!r} without a document"
                problems.append(BulkProblem(line, "bulk.missing_document", why))
                items.append(_item(op, target, "illegal_argument_exception", why))
                i += 1
                continue
            doc_no, doc = lines[i + 1]
            parsed, problem = load_event(doc, max_event_bytes)
            if problem is None and not isinstance(parsed, dict):
                problem = Problem("not_object", "document is not a JSON object")
            if problem is None:
                documents.append((doc.strip(), target))
                items.append({op: {"_index": target, "record": len(documents) - 1}})
            else:
                why = f"_bulk line {doc_no}: {problem.reason}"
                error_type, es_type = _DOC_ERRORS[problem.kind]
                problems.append(BulkProblem(doc, error_type, why))
                items.append(_item(op, target, es_type, why))
            i += 2
            continue
        why = f"_bulk line {line_no}: action {op or action!r} is not supported (the log is append-only)"
        problems.append(BulkProblem(line, "bulk.unsupported_action", why))
        items.append(_item(op or "unknown", target, "illegal_argument_exception", why))
        # update carries a document line; delete does not
        i += 2 if op == "update" else 1
    return BulkPlan(items, documents, problems, len(lines))


def _item(op: str, target: str, es_type: str, why: str) -> dict[str, Any]:
    return {op: {"_index": target, "status": 400, "error": {"type": es_type, "reason": why}}}


def bulk_records(plan: BulkPlan, template: RawRecord) -> list[RawRecord]:
    """The records of the documents taken: copies of ``template`` with the document's bytes."""
    t = template
    return [
        RawRecord(
            t.tenant,
            t.source_id,
            t.received_at,
            t.peer,
            doc,
            "json",
            t.timezone,
            {"index": target} if target else None,
        )
        for doc, target in plan.documents
    ]


def parse_bulk_body(
    body: bytes, max_event_bytes: int, index: str | None, template: RawRecord
) -> tuple[BulkPlan, list[Event]]:
    """:func:`plan_bulk` and the parsed events of its documents (in this process)."""
    plan = plan_bulk(body, max_event_bytes, index)
    return plan, [parse_one(r) for r in bulk_records(plan, template)]


def plan_row(plan: BulkPlan) -> list[Any]:
    """The plan as plain lists, for the hand-off (the documents' bytes stay behind: the events
    carry them)."""
    return [plan.items, [], [list(p) for p in plan.problems], plan.lines]


def plan_of(row: list[Any]) -> BulkPlan:
    items, documents, problems, lines = row
    return BulkPlan(items, documents, [BulkProblem(*p) for p in problems], int(lines))
