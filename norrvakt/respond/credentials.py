"""The AD service account's password, sealed at rest with the same key file and AES-GCM box
as the Microsoft 365 credentials (:mod:`norrvakt.sources.m365.credentials`): the state database
holds ciphertext only, bound to its tenant (a row copied to another tenant does not decrypt).

    save_ad_password(engine, data_dir, "lulea", "…", by="admin")
    load_ad_password(engine, data_dir, "lulea")     # None when none is stored
"""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa

from norrvakt.sources.m365.credentials import Credential, CredentialBox
from norrvakt.state import response_actions as store


def _name(tenant: str) -> str:
    return f"ad-response:{tenant}"


def save_ad_password(engine: sa.Engine, data_dir: Path, tenant: str, password: str, by: str) -> None:
    box = CredentialBox.open(data_dir)
    store.save_ad_credential(
        engine, tenant, box.seal(_name(tenant), tenant, Credential.from_secret(password)), by
    )


def load_ad_password(engine: sa.Engine, data_dir: Path, tenant: str) -> str | None:
    blob = store.load_ad_credential(engine, tenant)
    if blob is None:
        return None
    return CredentialBox.open(data_dir).unseal(_name(tenant), tenant, blob).secret
