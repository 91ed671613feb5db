"""Ed25519 signing keys for checkpoints: generated at first start, rotatable, exportable.

Layout under ``<data_dir>/keys``::

    <key_id>.key        PKCS#8 PEM private key, mode 0600
    <key_id>.pub        raw 32-byte public key, hex
    <key_id>.intro      how the key was introduced: the first key, or a rotation statement
                        signed by the previous key (so a key added by hand is not trusted)
    current             key id used for new checkpoints

``key_id`` is the first 16 hex digits of SHA-256 of the raw public key.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

ROTATION_DOMAIN = b"norrvakt-key-rotation-v1\n"


class SigningKeyError(Exception):
    """A key is missing, unreadable or not trusted."""


def key_id_of(public_raw: bytes) -> str:
    return hashlib.sha256(public_raw).hexdigest()[:16]


def public_raw(key: Ed25519PrivateKey | Ed25519PublicKey) -> bytes:
    pub = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    return pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def load_public(text: str) -> Ed25519PublicKey:
    """A public key as hex (64 digits) or PEM."""
    text = text.strip()
    if text.startswith("-----BEGIN"):
        key = serialization.load_pem_public_key(text.encode())
        if not isinstance(key, Ed25519PublicKey):
            raise SigningKeyError("not an Ed25519 public key")
        return key
    try:
        return Ed25519PublicKey.from_public_bytes(bytes.fromhex(text))
    except ValueError as exc:
        raise SigningKeyError(f"not an Ed25519 public key (hex or PEM): {exc}") from exc


def verify_signature(public: Ed25519PublicKey, signature: bytes, message: bytes) -> bool:
    try:
        public.verify(signature, message)
    except InvalidSignature:
        return False
    return True


@dataclass(frozen=True)
class Rotation:
    """``new`` was introduced by the holder of ``old`` at ``time`` (signed by ``old``)."""

    old: str
    new: str
    new_public: str  # hex
    time: int
    signature: str  # hex

    def message(self) -> bytes:
        body = {"new": self.new, "new_public": self.new_public, "old": self.old, "time": self.time}
        return ROTATION_DOMAIN + json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


class KeyRing:
    def __init__(self, directory: Path) -> None:
        self.directory = directory

    # -- reading ---------------------------------------------------------------------------

    def current_id(self) -> str | None:
        path = self.directory / "current"
        return path.read_text().strip() if path.exists() else None

    def public_keys(self) -> dict[str, Ed25519PublicKey]:
        keys = {}
        if self.directory.exists():
            for path in sorted(self.directory.glob("*.pub")):
                keys[path.stem] = load_public(path.read_text())
        return keys

    def private(self, key_id: str) -> Ed25519PrivateKey:
        path = self.directory / f"{key_id}.key"
        try:
            key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        except (OSError, ValueError) as exc:
            raise SigningKeyError(f"signing key {path} cannot be read: {exc}") from exc
        if not isinstance(key, Ed25519PrivateKey):
            raise SigningKeyError(f"{path} is not an Ed25519 key")
        return key

    def trusted_keys(self) -> tuple[dict[str, Ed25519PublicKey], list[str]]:
        """Keys whose introduction checks out, and problems with the others.

        The first key (``first`` in its intro) is trusted as given — pin it with
        ``norrvakt verify --pubkey`` or a witness. Every later key must be introduced by a
        rotation signed by an already trusted key."""
        keys = self.public_keys()
        trusted: dict[str, Ed25519PublicKey] = {}
        problems: list[str] = []
        intros: dict[str, dict[str, object]] = {}
        for kid in keys:
            path = self.directory / f"{kid}.intro"
            try:
                intros[kid] = json.loads(path.read_text())
            except (OSError, ValueError):
                problems.append(f"key {kid}: no readable introduction record ({path.name}); not trusted")
        firsts = [k for k, i in intros.items() if i.get("first")]
        for kid in firsts[:1]:
            trusted[kid] = keys[kid]
        for kid in firsts[1:]:
            problems.append(f"key {kid}: claims to be a first key, but {firsts[0]} already is; not trusted")
        progress = True
        while progress:
            progress = False
            for kid, intro in intros.items():
                if kid in trusted or intro.get("first"):
                    continue
                try:
                    rot = Rotation(**intro["rotation"])  # type: ignore[arg-type]
                except (KeyError, TypeError):
                    continue
                signer = trusted.get(rot.old)
                if signer is None or rot.new != kid or rot.new_public != public_raw(keys[kid]).hex():
                    continue
                if verify_signature(signer, bytes.fromhex(rot.signature), rot.message()):
                    trusted[kid] = keys[kid]
                    progress = True
        for kid in keys:
            if kid not in trusted and kid in intros and not intros[kid].get("first"):
                problems.append(f"key {kid}: its rotation record is not signed by a trusted key; not trusted")
        return trusted, problems

    # -- writing ---------------------------------------------------------------------------

    def ensure(self) -> str:
        """The current key id, generating the first key on first start."""
        current = self.current_id()
        if current is not None:
            return current
        key = Ed25519PrivateKey.generate()
        kid = self._store(key, {"first": True})
        self._set_current(kid)
        return kid

    def rotate(self, now_us: int) -> Rotation:
        """Make a new key, introduced by a statement signed with the current one."""
        old_id = self.ensure()
        old = self.private(old_id)
        new = Ed25519PrivateKey.generate()
        raw = public_raw(new)
        new_id = key_id_of(raw)
        unsigned = Rotation(old=old_id, new=new_id, new_public=raw.hex(), time=now_us, signature="")
        rotation = Rotation(**{**unsigned.__dict__, "signature": old.sign(unsigned.message()).hex()})
        self._store(new, {"rotation": rotation.__dict__})
        self._set_current(new_id)
        return rotation

    def _store(self, key: Ed25519PrivateKey, intro: dict[str, object]) -> str:
        self.directory.mkdir(parents=True, exist_ok=True)
        raw = public_raw(key)
        kid = key_id_of(raw)
        pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        fd = os.open(self.directory / f"{kid}.key", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(pem)
        (self.directory / f"{kid}.pub").write_text(raw.hex() + "\n")
        (self.directory / f"{kid}.intro").write_text(json.dumps(intro, sort_keys=True) + "\n")
        return kid

    def _set_current(self, kid: str) -> None:
        tmp = self.directory / "current.tmp"
        tmp.write_text(kid + "\n")
        tmp.replace(self.directory / "current")

    def export_public(self, key_id: str | None = None) -> str:
        kid = key_id or self.current_id()
        if kid is None:
            raise SigningKeyError("no signing key yet (start the server once)")
        pub = load_public((self.directory / f"{kid}.pub").read_text())
        return pub.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ).decode()
