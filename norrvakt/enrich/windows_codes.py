"""Windows codes in words, added beside the code: logon types, 4625 Status/SubStatus, Kerberos
result codes, UAC flags.

    4625 LogonType=3 Status=0xC000006D SubStatus=0xC000006A FailureReason=%%2313
        → winlog.logon.type_name=Network  winlog.logon.failure.status=Bad user name or ...
          winlog.logon.failure.sub_status=Bad password (the user name is correct)
          winlog.logon.failure.reason=Unknown user name or bad password  event.reason=Bad password ...
    4771 Status=0x18 PreAuthType=2
        → winlog.kerberos.result=KDC_ERR_PREAUTH_FAILED  event.reason=Pre-authentication failed ...
    4738 OldUacValue=0x10 NewUacValue=0x10010 UserAccountControl=%%2096
        → winlog.uac.new_flags=NORMAL_ACCOUNT, DONT_REQUIRE_PREAUTH  winlog.uac.added=DONT_REQUIRE_PREAUTH
          winlog.uac.changes='Don't Require Preauth' - Enabled

The meanings are data (``windows_codes.yml`` beside this file, written from Microsoft's
documentation). The original fields are never changed; a name the event already has (a
Winlogbeat document may carry its own ``winlog.logon.type``) is left as it came.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml

CODES_FILE = Path(__file__).with_name("windows_codes.yml")

# Event ids whose Status is a Kerberos result code, and those whose Status is an NTSTATUS.
KERBEROS_IDS = frozenset(("4768", "4769", "4770", "4771", "4772", "4773"))
NTSTATUS_IDS = frozenset(("4625", "4776", "4777"))
UAC_IDS = frozenset(("4720", "4738", "4741", "4742"))
# What an event must have for any decoder here to apply (most events have none of these).
_TRIGGERS = frozenset(
    ("LogonType", "Status", "SubStatus", "FailureReason", "NewUacValue", "UserAccountControl",
     "TicketEncryptionType", "PreAuthType", "FailureCode")
)  # fmt: skip


class CodesError(ValueError):
    """The codes file is not what this module expects (names the table and the entry)."""


@dataclass(frozen=True)
class WindowsCodes:
    """The tables of ``windows_codes.yml``, keyed by number (or insertion string)."""

    logon_types: dict[int, str]
    ntstatus: dict[int, str]
    failure_reasons: dict[str, str]
    kerberos_results: dict[int, tuple[str, str]]
    kerberos_encryption_types: dict[int, str]
    kerberos_preauth_types: dict[int, str]
    sam_account_flags: dict[int, str]
    uac_messages: dict[str, str]
    ad_account_flags: dict[int, str]


def _numbers(doc: dict[str, Any], table: str, path: Path) -> dict[int, Any]:
    raw = doc.get(table)
    if not isinstance(raw, dict):
        raise CodesError(f"{path}: table {table!r} is missing or not a mapping")
    out: dict[int, Any] = {}
    for key, value in raw.items():
        if not isinstance(key, int) or isinstance(key, bool):
            raise CodesError(f"{path}: {table}: key {key!r} is not a number")
        out[key] = value
    return out


def _strings(doc: dict[str, Any], table: str, path: Path) -> dict[str, str]:
    raw = doc.get(table)
    if not isinstance(raw, dict):
        raise CodesError(f"{path}: table {table!r} is missing or not a mapping")
    return {str(k): str(v) for k, v in raw.items()}


def load_codes(path: Path = CODES_FILE) -> WindowsCodes:
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(doc, dict):
        raise CodesError(f"{path}: not a mapping of tables")
    results: dict[int, tuple[str, str]] = {}
    for code, entry in _numbers(doc, "kerberos_results", path).items():
        if not (isinstance(entry, list) and len(entry) == 2):
            raise CodesError(f"{path}: kerberos_results: {code:#x} must be [name, meaning], got {entry!r}")
        results[code] = (str(entry[0]), str(entry[1]))
    return WindowsCodes(
        logon_types={k: str(v) for k, v in _numbers(doc, "logon_types", path).items()},
        ntstatus={k: str(v) for k, v in _numbers(doc, "ntstatus", path).items()},
        failure_reasons=_strings(doc, "failure_reasons", path),
        kerberos_results=results,
        kerberos_encryption_types={
            k: str(v) for k, v in _numbers(doc, "kerberos_encryption_types", path).items()
        },
        kerberos_preauth_types={k: str(v) for k, v in _numbers(doc, "kerberos_preauth_types", path).items()},
        sam_account_flags={k: str(v) for k, v in _numbers(doc, "sam_account_flags", path).items()},
        uac_messages=_strings(doc, "uac_messages", path),
        ad_account_flags={k: str(v) for k, v in _numbers(doc, "ad_account_flags", path).items()},
    )


@cache
def codes() -> WindowsCodes:
    """The built-in tables, read once per process."""
    return load_codes()


def number(text: str | None) -> int | None:
    """A code as Windows writes it (``0xC000006A``, ``0x18``, ``3``) as a number; None if it is none."""
    if not text:
        return None
    text = text.strip()
    try:
        if text[:2] in ("0x", "0X"):
            return int(text, 16)
        if text.isdigit():
            return int(text)
    except ValueError:
        return None
    return None


def flag_names(value: int, table: dict[int, str]) -> list[str]:
    """The names of the bits set in ``value`` (lowest first); an unknown bit as its hex value."""
    names = []
    bit = 1
    while bit <= value:
        if value & bit:
            names.append(table.get(bit, f"{bit:#x}"))
        bit <<= 1
    return names


def decode_windows(fields: dict[str, str], out: dict[str, str]) -> None:
    """Put the words for the codes of one Windows event (its Sigma-named ``fields``) into ``out``."""
    if fields.keys().isdisjoint(_TRIGGERS):
        return
    c = codes()
    eid = fields.get("EventID", "")
    logon = number(fields.get("LogonType"))
    if logon is not None and logon in c.logon_types:
        out["winlog.logon.type_name"] = c.logon_types[logon]
    if eid in KERBEROS_IDS:
        _kerberos(fields, out, c)
    elif eid in NTSTATUS_IDS:
        _ntstatus(fields, out, c)
    if eid in UAC_IDS:
        _uac(fields, out, c)


def _ntstatus(fields: dict[str, str], out: dict[str, str], c: WindowsCodes) -> None:
    status = number(fields.get("Status"))
    sub = number(fields.get("SubStatus"))
    reason = None
    # 0 is success (4776) or "no sub-status" (4625): nothing to say about a failure
    if status and status in c.ntstatus:
        out["winlog.logon.failure.status"] = reason = c.ntstatus[status]
    if sub and sub in c.ntstatus:
        out["winlog.logon.failure.sub_status"] = reason = c.ntstatus[sub]  # the precise one
    failure = c.failure_reasons.get(fields.get("FailureReason", "").strip())
    if failure is not None:
        out["winlog.logon.failure.reason"] = failure
        reason = reason or failure
    if reason is not None and (status or sub):
        out["event.reason"] = reason


def _kerberos(fields: dict[str, str], out: dict[str, str], c: WindowsCodes) -> None:
    code = number(fields.get("Status") or fields.get("FailureCode"))
    if code is not None and code in c.kerberos_results:
        name, meaning = c.kerberos_results[code]
        out["winlog.kerberos.result"] = name
        if code != 0:
            out["event.reason"] = meaning
    etype = number(fields.get("TicketEncryptionType"))
    if etype is not None and etype in c.kerberos_encryption_types:
        out["winlog.kerberos.encryption_type"] = c.kerberos_encryption_types[etype]
    preauth = number(fields.get("PreAuthType"))
    if preauth is not None and preauth in c.kerberos_preauth_types:
        out["winlog.kerberos.preauth_type"] = c.kerberos_preauth_types[preauth]


def _uac(fields: dict[str, str], out: dict[str, str], c: WindowsCodes) -> None:
    new = number(fields.get("NewUacValue"))
    old = number(fields.get("OldUacValue"))
    if new:
        out["winlog.uac.new_flags"] = ", ".join(flag_names(new, c.sam_account_flags))
    if old:
        out["winlog.uac.old_flags"] = ", ".join(flag_names(old, c.sam_account_flags))
    if new is not None and old is not None:
        added = flag_names(new & ~old, c.sam_account_flags)
        removed = flag_names(old & ~new, c.sam_account_flags)
        if added:
            out["winlog.uac.added"] = ", ".join(added)
        if removed:
            out["winlog.uac.removed"] = ", ".join(removed)
    changes = [c.uac_messages.get(part, part) for part in fields.get("UserAccountControl", "").split()]
    changes = [text for text in changes if text != "-"]
    if changes:
        out["winlog.uac.changes"] = "; ".join(changes)
