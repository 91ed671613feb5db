"""Credentials at rest: ciphertext in the state database, the key in the data directory."""

from __future__ import annotations

import datetime as dt
import os
import stat
from pathlib import Path

import pytest
import sqlalchemy as sa
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from norrvakt.event import now_us
from norrvakt.sources.m365.checkpoints import MINUTE
from norrvakt.sources.m365.credentials import KEY_FILE, Credential, CredentialBox, CredentialError
from norrvakt.state.m365 import load_checkpoint, save_credential
from tests.m365.conftest import KeepingSink, make_config, store_secret, sync
from tests.m365.standin import SECRET, StandIn, audit_record


def test_the_state_database_holds_no_plaintext_and_the_key_file_is_0600(
    tmp_path: Path, engine: sa.Engine
) -> None:
    store_secret(engine, tmp_path)
    key = tmp_path / KEY_FILE
    assert stat.S_IMODE(os.stat(key).st_mode) == 0o600
    db = (tmp_path / "state.db").read_bytes() + b"".join(p.read_bytes() for p in tmp_path.glob("state.db-*"))
    assert SECRET.encode() not in db
    assert key.read_bytes() not in db


def test_a_wrong_key_fails_clearly(tmp_path: Path) -> None:
    blob = CredentialBox.open(tmp_path / "a").seal("m365-lulea", "lulea", Credential.from_secret(SECRET))
    with pytest.raises(CredentialError, match="does not decrypt") as err:
        CredentialBox.open(tmp_path / "b").unseal("m365-lulea", "lulea", blob)
    assert SECRET not in str(err.value)


def test_a_row_copied_to_another_connector_does_not_decrypt(tmp_path: Path) -> None:
    box = CredentialBox.open(tmp_path)
    blob = box.seal("m365-lulea", "lulea", Credential.from_secret(SECRET))
    with pytest.raises(CredentialError):
        box.unseal("m365-pitea", "pitea", blob)


def test_the_credential_never_shows_in_its_repr() -> None:
    assert SECRET not in repr(Credential.from_secret(SECRET))


@sync
async def test_a_connector_with_a_key_that_does_not_fit_says_so_and_pulls_nothing(
    tmp_path: Path, standin: StandIn, engine: sa.Engine
) -> None:
    store_secret(engine, tmp_path)
    (tmp_path / KEY_FILE).write_bytes(os.urandom(32))
    sink = KeepingSink()
    conn = make_config(tmp_path, standin, ("Audit.Exchange",)).build()
    conn.attach(sink)
    await conn.cycle()
    cp = load_checkpoint(engine, "m365-lulea", "Audit.Exchange")
    assert cp is not None and "does not decrypt" in cp.last_error and SECRET not in cp.last_error
    assert standin.state.tokens_issued == 0
    await conn.stop()


def _certificate_pem() -> bytes:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "norrvakt-m365-lulea")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(days=365))
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return key_pem + cert.public_bytes(serialization.Encoding.PEM)


@sync
async def test_a_certificate_credential_signs_a_client_assertion(
    tmp_path: Path, standin: StandIn, engine: sa.Engine
) -> None:
    pem = _certificate_pem()
    cred = Credential.from_pem(pem)
    assert cred.kind == "certificate" and len(cred.thumbprint) == 40
    standin.register_certificate(pem)
    blob = CredentialBox.open(tmp_path).seal("m365-lulea", "lulea", cred)
    save_credential(engine, "m365-lulea", "lulea", "certificate", blob, by="test")
    now = now_us()
    standin.add_blob("Audit.Exchange", now - 20 * MINUTE, [audit_record("c1", now - 20 * MINUTE)])
    sink = KeepingSink()
    conn = make_config(tmp_path, standin, ("Audit.Exchange",)).build()
    conn.attach(sink)
    await conn.cycle()
    assert sink.ids() == ["c1"] and standin.state.tokens_issued == 1
    await conn.stop()


@sync
async def test_a_certificate_not_uploaded_to_the_app_gets_no_token(
    tmp_path: Path, standin: StandIn, engine: sa.Engine
) -> None:
    standin.register_certificate(_certificate_pem())  # another certificate is registered
    cred = Credential.from_pem(_certificate_pem())
    blob = CredentialBox.open(tmp_path).seal("m365-lulea", "lulea", cred)
    save_credential(engine, "m365-lulea", "lulea", "certificate", blob, by="test")
    sink = KeepingSink()
    conn = make_config(tmp_path, standin, ("Audit.Exchange",)).build()
    conn.attach(sink)
    await conn.cycle()
    cp = load_checkpoint(engine, "m365-lulea", "Audit.Exchange")
    assert cp is not None and "invalid_client" in cp.last_error and standin.state.tokens_issued == 0
    assert "BEGIN" not in cp.last_error  # never the key
    await conn.stop()
