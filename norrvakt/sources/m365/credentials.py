"""Client credentials of the Microsoft 365 connectors, encrypted at rest.

    box = CredentialBox.open(data_dir)                 # the key: <data_dir>/m365-credentials.key
    blob = box.seal("m365-lulea", "lulea", Credential.secret("…"))
    state.m365.save_credential(engine, "m365-lulea", "lulea", "secret", blob, by="admin")
    cred = box.unseal("m365-lulea", "lulea", blob)     # CredentialError with a wrong key

AES-256-GCM; the key is made at first start in the data directory (mode 0600) and never goes
into the state database, so a copy of the database (a backup, a PostgreSQL replica) holds
ciphertext only. The connector id and tenant are the associated data: a row copied to another
connector does not decrypt. A cluster's web and ingest nodes that pull need the same key file.
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

KEY_FILE = "m365-credentials.key"
_NONCE = 12


class CredentialError(Exception):
    """A credential that cannot be stored or used (the message says which connector and why;
    never the credential)."""


@dataclass(frozen=True)
class Credential:
    """``secret``, or a certificate (PEM private key, SHA-1 thumbprint hex, PEM certificate)."""

    kind: str
    secret: str = ""
    private_key: str = ""
    thumbprint: str = ""
    certificate: str = ""

    @classmethod
    def from_secret(cls, secret: str) -> Credential:
        secret = secret.strip()
        if not secret:
            raise CredentialError("the client secret is empty")
        return cls("secret", secret=secret)

    @classmethod
    def from_pem(cls, pem: bytes) -> Credential:
        """A PEM file holding the private key and the certificate uploaded to the app."""
        try:
            key = serialization.load_pem_private_key(pem, password=None)
            cert = x509.load_pem_x509_certificate(pem)
        except ValueError as exc:
            raise CredentialError(
                f"not a PEM file with an unencrypted private key and its certificate: {exc}"
            ) from None
        key_pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode()
        return cls(
            "certificate",
            private_key=key_pem,
            thumbprint=cert.fingerprint(hashes.SHA1()).hex(),
            certificate=cert.public_bytes(serialization.Encoding.PEM).decode(),
        )

    def for_msal(self) -> str | dict[str, str]:
        if self.kind == "secret":
            return self.secret
        return {
            "private_key": self.private_key,
            "thumbprint": self.thumbprint,
            "public_certificate": self.certificate,
        }

    def __repr__(self) -> str:  # never the secret, in a log line or a traceback
        return f"Credential(kind={self.kind!r})"


class CredentialBox:
    def __init__(self, key: bytes, path: Path) -> None:
        self._aes = AESGCM(key)
        self.path = path

    @classmethod
    def open(cls, data_dir: Path) -> CredentialBox:
        """The box of ``data_dir``: its key file, made (0600) if there is none."""
        path = data_dir / KEY_FILE
        if not path.exists():
            data_dir.mkdir(parents=True, exist_ok=True)
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                pass  # another process made it first: use theirs
            else:
                with os.fdopen(fd, "wb") as fh:
                    fh.write(secrets.token_bytes(32))
                    fh.flush()
                    os.fsync(fh.fileno())
        key = path.read_bytes()
        if len(key) != 32:
            raise CredentialError(f"{path}: the key must be 32 bytes, found {len(key)}")
        return cls(key, path)

    def seal(self, connector: str, tenant: str, cred: Credential) -> bytes:
        nonce = secrets.token_bytes(_NONCE)
        plain = json.dumps(cred.__dict__).encode()
        return nonce + self._aes.encrypt(nonce, plain, _aad(connector, tenant))

    def unseal(self, connector: str, tenant: str, blob: bytes) -> Credential:
        try:
            plain = self._aes.decrypt(blob[:_NONCE], blob[_NONCE:], _aad(connector, tenant))
        except InvalidTag:
            raise CredentialError(
                f"connector {connector!r}: the stored credential does not decrypt with {self.path} "
                "(another data directory's key, or stored for another connector/tenant); "
                "set it again with `norrvakt m365 set-credential`"
            ) from None
        return Credential(**json.loads(plain))


def _aad(connector: str, tenant: str) -> bytes:
    return f"norrvakt-m365\0{connector}\0{tenant}".encode()
