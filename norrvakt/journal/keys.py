"""Ed25519 signing keys for checkpoints: generated at first start, rotatable, exportable.

Layout under ``<data_dir>/keys``::

    <key_id>.key        PKCS#8 PEM private key, mode 0600
    <key_id>.pub        raw 32-byte public key, hex
    <key_id>.intro      how the key was introduced: the first key, or a rotation statement
                        signed by the previous key (so a key added by hand is not trusted)
    current             key id used for new checkpoints

``key_id`` is the first 16 hex digits of SHA-256 of the raw public key.

With ``integrity.signing_key_file`` the private key lives elsewhere — a file the service reads
once, at start, and that the data directory's users cannot read (see docs/operations.md).
Only its ``.pub`` and ``.intro`` are written under ``keys/``: as the first key, or introduced
by a rotation statement signed with the current key (whose private key must then still be in
``keys/`` — or use ``norrvakt keys introduce`` with both key files).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
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


def read_private(path: Path) -> Ed25519PrivateKey:
    """An Ed25519 private key from a PEM file (PKCS#8, as ``openssl genpkey -algorithm ed25519``)."""
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise SigningKeyError(f"signing key {path} cannot be read: {exc}") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise SigningKeyError(f"{path} is not an Ed25519 private key")
    return key


class KeyRing:
    def __init__(self, directory: Path, signing_key_file: Path | None = None) -> None:
        """``signing_key_file``: the private key to sign with, read here, once."""
        self.directory = directory
        self.signing_key_file = signing_key_file
        self._external = read_private(signing_key_file) if signing_key_file is not None else None
        self._external_id = key_id_of(public_raw(self._external)) if self._external is not None else None

    # -- reading ---------------------------------------------------------------------------

    def current_id(self) -> str | None:
        path = self.directory / "current"
        return path.read_text().strip() if path.exists() else None

    def public_keys(self, problems: list[str] | None = None) -> dict[str, Ed25519PublicKey]:
        """Key id → public key. A file that is not a public key raises — or, given ``problems``,
        is listed there and left out (verification reports it and goes on)."""
        keys = {}
        if self.directory.exists():
            for path in sorted(self.directory.glob("*.pub")):
                try:
                    keys[path.stem] = load_public(path.read_text())
                except (OSError, ValueError, SigningKeyError) as exc:
                    if problems is None:
                        raise
                    problems.append(
                        f"key {path.stem}: {path.name} is not a readable public key ({exc}); not trusted"
                    )
        return keys

    def private(self, key_id: str) -> Ed25519PrivateKey:
        if self._external is not None and key_id == self._external_id:
            return self._external
        return read_private(self.directory / f"{key_id}.key")

    def trusted_keys(self) -> tuple[dict[str, Ed25519PublicKey], list[str]]:
        """Keys whose introduction checks out, and problems with the others.

        The first key (``first`` in its intro) is trusted as given — pin it with
        ``norrvakt verify --pubkey`` or a witness. Every later key must be introduced by a
        rotation signed by an already trusted key."""
        problems: list[str] = []
        keys = self.public_keys(problems)
        trusted: dict[str, Ed25519PublicKey] = {}
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

    def rotations(self) -> list[Rotation]:
        """Every rotation statement of the ring, oldest first (a witness is given them so it
        trusts the keys introduced after the one it was pinned to)."""
        out = []
        for path in sorted(self.directory.glob("*.intro")) if self.directory.exists() else []:
            try:
                out.append(Rotation(**json.loads(path.read_text())["rotation"]))
            except (OSError, ValueError, KeyError, TypeError):
                continue  # the first key, or an intro that verification reports
        return sorted(out, key=lambda r: r.time)

    # -- writing ---------------------------------------------------------------------------

    def ensure(self) -> str:
        """The current key id, generating the first key on first start (or, with a signing
        key file, introducing that key the first time it is used)."""
        current = self.current_id()
        if self._external is not None:
            if current != self._external_id:
                self._introduce_external(current)
            assert self._external_id is not None
            return self._external_id
        if current is not None:
            return current
        key = Ed25519PrivateKey.generate()
        kid = self._store(key, {"first": True})
        self._set_current(kid)
        return kid

    def _introduce_external(self, current: str | None) -> None:
        assert self._external is not None and self._external_id is not None
        kid = self._external_id
        if (self.directory / f"{kid}.pub").exists() and (self.directory / f"{kid}.intro").exists():
            self._set_current(kid)  # introduced before (e.g. by `norrvakt keys introduce`)
            return
        if current is None and not self.public_keys():
            self._store_public(self._external, {"first": True})
        elif current is not None and (self.directory / f"{current}.key").exists():
            rotation = self._rotation(current, self._external, time.time_ns() // 1000)
            self._store_public(self._external, {"rotation": rotation.__dict__})
        else:
            raise SigningKeyError(
                f"the signing key in {self.signing_key_file} (key {kid}) is new to this journal and the "
                f"current key {current} is not in {self.directory} to introduce it: run `norrvakt keys "
                "introduce --old-key-file OLD --new-key-file NEW` with the server stopped"
            )
        self._set_current(kid)

    def introduce(self, old: Ed25519PrivateKey, new: Ed25519PrivateKey, now_us: int) -> Rotation:
        """Introduce ``new`` by a rotation statement signed with ``old`` (a key of this journal);
        neither private key is written here."""
        old_id = key_id_of(public_raw(old))
        if not (self.directory / f"{old_id}.pub").exists():
            raise SigningKeyError(f"key {old_id} is not a key of this journal ({self.directory})")
        rotation = self._rotation(old_id, new, now_us, old)
        self._store_public(new, {"rotation": rotation.__dict__})
        self._set_current(rotation.new)
        return rotation

    def _rotation(
        self, old_id: str, new: Ed25519PrivateKey, now_us: int, old: Ed25519PrivateKey | None = None
    ) -> Rotation:
        signer = old if old is not None else self.private(old_id)
        raw = public_raw(new)
        unsigned = Rotation(old=old_id, new=key_id_of(raw), new_public=raw.hex(), time=now_us, signature="")
        return Rotation(**{**unsigned.__dict__, "signature": signer.sign(unsigned.message()).hex()})

    def rotate(self, now_us: int) -> Rotation:
        """Make a new key, introduced by a statement signed with the current one."""
        if self.signing_key_file is not None:
            raise SigningKeyError(
                f"the signing key is read from {self.signing_key_file} (integrity.signing_key_file): "
                "make a new key file, stop the server, run `norrvakt keys introduce --old-key-file OLD "
                "--new-key-file NEW`, point the setting at the new file and start again"
            )
        old_id = self.ensure()
        new = Ed25519PrivateKey.generate()
        rotation = self._rotation(old_id, new, now_us)
        self._store(new, {"rotation": rotation.__dict__})
        self._set_current(rotation.new)
        return rotation

    def _store(self, key: Ed25519PrivateKey, intro: dict[str, object]) -> str:
        self.directory.mkdir(parents=True, exist_ok=True)
        kid = key_id_of(public_raw(key))
        pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        fd = os.open(self.directory / f"{kid}.key", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(pem)
        return self._store_public(key, intro)

    def _store_public(self, key: Ed25519PrivateKey, intro: dict[str, object]) -> str:
        self.directory.mkdir(parents=True, exist_ok=True)
        raw = public_raw(key)
        kid = key_id_of(raw)
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
