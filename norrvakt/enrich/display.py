"""The enrichment of an event in a few words, to show next to the raw value it explains.

    ecs source.ip=83.255.1.1 with fields source.geo.country_iso_code=SE, source.as.number=1257,
    source.as.organization.name=Tele2 Sverige AB → beside["source.ip"] = "SE · AS1257 Tele2 Sverige AB"
    fields LogonType=3, winlog.logon.type_name=Network → beside["LogonType"] = "Network"

The enrichment fields themselves stay listed under their own names (they are what a search
names); this only puts their meaning where the eye already is.
"""

from __future__ import annotations

from collections.abc import Mapping

# raw field → the enrichment fields that explain it, shown joined with " · "
_EXPLAINS: dict[str, tuple[str, ...]] = {
    "LogonType": ("winlog.logon.type_name",),
    "Status": ("winlog.logon.failure.status", "winlog.kerberos.result"),
    "SubStatus": ("winlog.logon.failure.sub_status",),
    "FailureReason": ("winlog.logon.failure.reason",),
    "TicketEncryptionType": ("winlog.kerberos.encryption_type",),
    "PreAuthType": ("winlog.kerberos.preauth_type",),
    "NewUacValue": ("winlog.uac.new_flags",),
    "OldUacValue": ("winlog.uac.old_flags",),
    "UserAccountControl": ("winlog.uac.changes",),
}


def address(fields: Mapping[str, str], prefix: str) -> str:
    """ "SE · AS1257 Tele2 Sverige AB · VPN-pool" for ``prefix`` (source, destination); "" if nothing."""
    parts = []
    country = fields.get(f"{prefix}.geo.country_iso_code")
    if country:
        parts.append(country)
    asn = fields.get(f"{prefix}.as.number")
    if asn:
        org = fields.get(f"{prefix}.as.organization.name", "")
        parts.append(f"AS{asn} {org}".strip())
    network = fields.get(f"{prefix}.network.name")
    if network:
        parts.append(network)
    return " · ".join(parts)


def beside(ecs: Mapping[str, str], fields: Mapping[str, str]) -> dict[str, str]:
    """Raw field name (ECS or original) → the words to show next to its value."""
    out: dict[str, str] = {}
    for column, prefix in (("source.ip", "source"), ("destination.ip", "destination")):
        if ecs.get(column):
            text = address(fields, prefix)
            if text:
                out[column] = text
    for raw, names in _EXPLAINS.items():
        if raw in fields:
            words = [fields[n] for n in names if fields.get(n)]
            if raw == "Status" and fields.get("winlog.kerberos.result") and fields.get("event.reason"):
                words.append(fields["event.reason"])  # a Kerberos code's name says less than its meaning
            if words:
                out[raw] = " · ".join(dict.fromkeys(words))
    return out
