"""A case's indicators as a STIX 2.1 bundle, to share with CERT-SE or any STIX consumer.

For each observable (:mod:`norrvakt.alerts.observables`) that STIX can express: its cyber
observable (``ipv4-addr``/``ipv6-addr``, ``domain-name``, ``url``, ``file`` with its hash,
``user-account``), an ``observed-data`` object (first and last seen, how many events), an
``indicator`` with the matching STIX pattern and a ``based-on`` relationship from the
indicator to the sighting. Everything is created by one ``identity`` (``cases.producer_name``)
and marked with the TLP of ``cases.tlp`` (the TLP marking definitions of STIX 2.1).

Host names have no cyber observable in STIX 2.1: they are left out of the bundle and named in
the answer's ``left_out`` (they are in the MISP export as ``target-machine``).

Ids are stable (UUIDv5 of the producer, case and value): exporting a case again gives the same
objects, so a receiver updates what it has instead of keeping two copies.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import stix2  # type: ignore[import-untyped]

from norrvakt.alerts.observables import Observable

NAMESPACE = uuid.UUID("0b6f2a52-6b8e-4d0e-9a57-8f2b1e7c1717")  # Norrvakt's namespace for export ids
TLP = {
    "clear": stix2.TLP_WHITE,  # TLP 2.0's CLEAR is TLP 1.0's WHITE; STIX 2.1 defines the latter
    "white": stix2.TLP_WHITE,
    "green": stix2.TLP_GREEN,
    "amber": stix2.TLP_AMBER,
    "red": stix2.TLP_RED,
}
_HASH_NAMES = {"md5": "MD5", "sha1": "SHA-1", "sha256": "SHA-256"}
STIX_KINDS = ("ip", "domain", "url", "md5", "sha1", "sha256", "user")


def _id(kind: str, *parts: object) -> str:
    return f"{kind}--{uuid.uuid5(NAMESPACE, '|'.join(map(str, parts)))}"


def _time(micros: int | None, fallback: datetime) -> datetime:
    return datetime.fromtimestamp(micros / 1e6, UTC) if micros else fallback


def _literal(value: str) -> str:
    """A STIX pattern string literal: backslash and quote escaped."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def cyber_observable(o: Observable) -> Any:
    """The STIX cyber observable of ``o`` (ids are STIX's own deterministic UUIDv5)."""
    if o.kind == "ip":
        return stix2.IPv4Address(value=o.value) if ":" not in o.value else stix2.IPv6Address(value=o.value)
    if o.kind == "domain":
        return stix2.DomainName(value=o.value)
    if o.kind == "url":
        return stix2.URL(value=o.value)
    if o.kind in _HASH_NAMES:
        return stix2.File(hashes={_HASH_NAMES[o.kind]: o.value})
    if o.kind == "user":
        return stix2.UserAccount(account_login=o.value)
    raise ValueError(f"STIX 2.1 has no cyber observable for a {o.kind}")


def pattern(o: Observable) -> str:
    if o.kind == "ip":
        return f"[{'ipv6-addr' if ':' in o.value else 'ipv4-addr'}:value = {_literal(o.value)}]"
    if o.kind == "domain":
        return f"[domain-name:value = {_literal(o.value)}]"
    if o.kind == "url":
        return f"[url:value = {_literal(o.value)}]"
    if o.kind in _HASH_NAMES:
        name = _HASH_NAMES[o.kind]
        path = name if name.isalnum() else f"'{name}'"
        return f"[file:hashes.{path} = {_literal(o.value)}]"
    if o.kind == "user":
        return f"[user-account:account_login = {_literal(o.value)}]"
    raise ValueError(f"STIX 2.1 has no pattern for a {o.kind}")


def case_bundle(
    case: dict[str, Any],
    observables: Sequence[Observable],
    *,
    producer: str,
    tlp: str,
    now: datetime | None = None,
) -> tuple[Any, list[dict[str, str]]]:
    """(the bundle, observables left out with the reason)."""
    if tlp not in TLP:
        raise ValueError(f"TLP {tlp!r}: one of {', '.join(TLP)}")
    when = now or datetime.now(UTC)
    marking = TLP[tlp]
    identity = stix2.Identity(
        id=_id("identity", producer),
        name=producer,
        identity_class="organization",
        sectors=["government"],
        created=when,
        modified=when,
    )
    common: dict[str, Any] = {"created_by_ref": identity.id, "object_marking_refs": [marking.id]}
    objects: list[Any] = [identity, marking]
    left_out: list[dict[str, str]] = []
    for o in observables:
        if o.kind not in STIX_KINDS:
            left_out.append(
                {"kind": o.kind, "value": o.value, "why": f"STIX 2.1 has no observable for a {o.kind}"}
            )
            continue
        sco = cyber_observable(o)
        first, last = _time(o.first_seen, when), _time(o.last_seen, when)
        seen = stix2.ObservedData(
            id=_id("observed-data", producer, case["id"], o.kind, o.value),
            first_observed=first,
            last_observed=max(first, last),
            number_observed=max(1, o.events),
            object_refs=[sco.id],
            created=when,
            modified=when,
            **common,
        )
        indicator = stix2.Indicator(
            id=_id("indicator", producer, case["id"], o.kind, o.value),
            name=f"{o.kind} {o.value}",
            description=f"Seen in {max(1, o.events)} event(s) matching: {', '.join(sorted(o.rules)) or '-'}",
            indicator_types=["compromised"] if o.kind == "user" else ["malicious-activity"],
            pattern=pattern(o),
            pattern_type="stix",
            valid_from=first,
            created=when,
            modified=when,
            **common,
        )
        based_on = stix2.Relationship(
            id=_id("relationship", producer, case["id"], o.kind, o.value),
            relationship_type="based-on",
            source_ref=indicator.id,
            target_ref=seen.id,
            created=when,
            modified=when,
            **common,
        )
        objects += [sco, seen, indicator, based_on]
    bundle = stix2.Bundle(objects=objects, id=_id("bundle", producer, case["id"], when.isoformat()))
    return bundle, left_out
