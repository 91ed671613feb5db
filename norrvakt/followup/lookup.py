"""The optional HR / population lookup: who shares a surname or an address with whom.

A tenant may upload, per kind (``staff`` = its users as the systems log them, ``subject`` =
the pseudonymous subject ids), rows of ``id_hash, surname_hash, address_hash``. The plain
table never has to leave the municipality: ``norrvakt followup hash-lookup`` hashes a local
CSV (``id;surname;address``) with the same function Norrvakt uses, and only hashes are
uploaded. Norrvakt compares hashes, never names.

The hash is SHA-256 over the tenant, the column and the normalised value. That is
pseudonymisation, not anonymisation: surnames are guessable, so the uploaded table is
protected like the logs themselves (tenant-scoped, never shown).
"""

from __future__ import annotations

import csv
import hashlib
import io
import unicodedata
from collections.abc import Iterable

KINDS = ("staff", "subject")
_COLUMNS = ("id_hash", "surname_hash", "address_hash")


class BadLookup(ValueError):
    pass


def normalise(value: str) -> str:
    """Case, accents composition and spacing do not matter: 'Holmgren ' = 'holmgren'."""
    return " ".join(unicodedata.normalize("NFC", value).casefold().split())


def lookup_hash(tenant: str, column: str, value: str) -> str:
    """The hash of one value ('' stays '': no surname known is no match)."""
    text = normalise(value)
    if not text:
        return ""
    return hashlib.sha256(f"norrvakt-lookup\x1f{tenant}\x1f{column}\x1f{text}".encode()).hexdigest()


def hash_plain_rows(tenant: str, rows: Iterable[dict[str, str]]) -> list[dict[str, str]]:
    """``id, surname, address`` rows (plain) → the hashed rows to upload."""
    out = []
    for row in rows:
        out.append(
            {
                "id_hash": lookup_hash(tenant, "id", row.get("id", "")),
                "surname_hash": lookup_hash(tenant, "surname", row.get("surname", "")),
                "address_hash": lookup_hash(tenant, "address", row.get("address", "")),
            }
        )
    return [r for r in out if r["id_hash"]]


def read_plain_csv(text: str) -> list[dict[str, str]]:
    """A local ``id;surname;address`` CSV (header row; ';' or ',' separated)."""
    dialect = ";" if text.split("\n", 1)[0].count(";") >= text.split("\n", 1)[0].count(",") else ","
    reader = csv.DictReader(io.StringIO(text), delimiter=dialect)
    missing = {"id", "surname"} - set(reader.fieldnames or [])
    if missing:
        raise BadLookup(
            f"line 1: the header needs the columns id;surname;address (missing {', '.join(sorted(missing))})"
        )
    return [{k: (v or "") for k, v in row.items() if k} for row in reader]


def read_hashed_csv(text: str) -> list[dict[str, str | None]]:
    """The uploaded CSV: ``id_hash,surname_hash,address_hash``, each a SHA-256 hex or empty."""
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff")))
    if not reader.fieldnames or reader.fieldnames[0] != "id_hash":
        raise BadLookup("line 1: the header must be id_hash,surname_hash,address_hash")
    rows: list[dict[str, str | None]] = []
    for line, row in enumerate(reader, start=2):
        clean = {c: (row.get(c) or "").strip().lower() for c in _COLUMNS}
        for column, value in clean.items():
            if value and (len(value) != 64 or any(ch not in "0123456789abcdef" for ch in value)):
                raise BadLookup(f"line {line}: {column} {value[:80]!r} is not a SHA-256 hex digest")
        if not clean["id_hash"]:
            raise BadLookup(f"line {line}: id_hash is empty")
        rows.append(
            {
                "id_hash": clean["id_hash"],
                "surname_hash": clean["surname_hash"] or None,
                "address_hash": clean["address_hash"] or None,
            }
        )
    return rows


def write_hashed_csv(rows: Iterable[dict[str, str]]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(_COLUMNS), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()
