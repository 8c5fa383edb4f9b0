"""Exchange keys: Ed25519 to sign a package, X25519 to encrypt it to the centre (`cryptography`).

A store's private keys are two files beside its key table (mode 0600, never exported):

    store/exchange_sign.key   Ed25519 private key (32 raw bytes)
    store/exchange_box.key    X25519 private key (32 raw bytes)

The public half is a small JSON file (`export_public`) sent by any channel; the other side
registers it with `trust` (keys.db `trusted_keys`, see core/store/exchange_keys.py) after
comparing its fingerprint by telephone or in person.

A package is sealed as: an ephemeral X25519 key agreed with the centre's X25519 key, HKDF-SHA256,
ChaCha20-Poly1305 over the signed content with the clear header as associated data. The clear header
says only which site sent it and which key opens it (no subject data).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from palmares_desktop.core.errors import PalmaresError

SIGN_FILE = "exchange_sign.key"
BOX_FILE = "exchange_box.key"
PUBLIC_FORMAT = "palmares-public-key"
CENTRE = "centre"
_INFO = b"palmares-package-v1"
_RAW = {"encoding": serialization.Encoding.Raw, "format": serialization.PublicFormat.Raw}


class ExchangeKeyError(PalmaresError):
    """A key is missing, unreadable or not trusted (plain sentence)."""


@dataclass(frozen=True)
class PublicKey:
    """The public half of a store's exchange keys: who (site code or 'centre') and the two keys."""

    owner: str
    sign: bytes
    box: bytes

    @property
    def fingerprint(self) -> str:
        digest = hashlib.sha256(b"palmares-key\0" + self.sign + self.box).hexdigest()[:32]
        return " ".join(digest[i : i + 4] for i in range(0, 32, 4))

    def to_json(self) -> str:
        return json.dumps(
            {
                "format": PUBLIC_FORMAT,
                "version": 1,
                "owner": self.owner,
                "sign": self.sign.hex(),
                "box": self.box.hex(),
                "fingerprint": self.fingerprint,
            },
            indent=1,
        )

    @classmethod
    def from_json(cls, text: str) -> PublicKey:
        try:
            data = json.loads(text)
            if data.get("format") != PUBLIC_FORMAT or data.get("version") != 1:
                raise ValueError
            key = cls(str(data["owner"]), bytes.fromhex(data["sign"]), bytes.fromhex(data["box"]))
            Ed25519PublicKey.from_public_bytes(key.sign)
            X25519PublicKey.from_public_bytes(key.box)
        except (ValueError, KeyError, TypeError, AttributeError):
            raise ExchangeKeyError("This file is not a PALMARES public key (or it is damaged).") from None
        return key


def _write_private(path: Path, raw: bytes) -> None:
    fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(raw)


def has_keys(root: Path) -> bool:
    return (root / SIGN_FILE).exists() and (root / BOX_FILE).exists()


def create_keys(root: Path) -> None:
    """Write a new key pair beside keys.db; refuses to replace an existing one (packages depend on it)."""
    if (root / SIGN_FILE).exists() or (root / BOX_FILE).exists():
        raise ExchangeKeyError(
            f"The store {root} already has exchange keys: they are kept (the other side trusts them)."
        )
    sign = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    box = X25519PrivateKey.generate().private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    _write_private(root / SIGN_FILE, sign)
    _write_private(root / BOX_FILE, box)


def _read_private(root: Path, name: str) -> bytes:
    path = root / name
    try:
        raw = path.read_bytes()
    except OSError:
        raise ExchangeKeyError(
            f"The store {root} has no exchange keys: run `palmares keys init` first."
        ) from None
    if len(raw) != 32:
        raise ExchangeKeyError(f"The key file {name} in {root} is damaged.")
    return raw


def signing_key(root: Path) -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(_read_private(root, SIGN_FILE))


def box_key(root: Path) -> X25519PrivateKey:
    return X25519PrivateKey.from_private_bytes(_read_private(root, BOX_FILE))


def public_key(root: Path, owner: str) -> PublicKey:
    return PublicKey(
        owner,
        signing_key(root).public_key().public_bytes(**_RAW),
        box_key(root).public_key().public_bytes(**_RAW),
    )


# --------------------------------------------------------------------------- sealing
def _key(shared: bytes, ephemeral: bytes, recipient: bytes) -> bytes:
    return HKDF(hashes.SHA256(), 32, salt=None, info=_INFO + ephemeral + recipient).derive(shared)


def sign(root: Path, message: bytes) -> bytes:
    return signing_key(root).sign(_INFO + message)


def signature_ok(public: PublicKey, message: bytes, signature: bytes) -> bool:
    try:
        Ed25519PublicKey.from_public_bytes(public.sign).verify(signature, _INFO + message)
    except (InvalidSignature, ValueError):
        return False
    return True


def seal(recipients: list[PublicKey], plaintext: bytes, associated: bytes) -> tuple[list[dict], bytes, bytes]:
    """Encrypt once under a random content key, wrapped for each recipient's X25519 key (the centre,
    and the sending site itself so that it can verify its own package). Returns (wraps, nonce, ciphertext)."""
    content_key = ChaCha20Poly1305.generate_key()
    wraps = []
    for recipient in recipients:
        ephemeral = X25519PrivateKey.generate()
        eph_pub = ephemeral.public_key().public_bytes(**_RAW)
        shared = ephemeral.exchange(X25519PublicKey.from_public_bytes(recipient.box))
        wrap_nonce = os.urandom(12)
        wrapped = ChaCha20Poly1305(_key(shared, eph_pub, recipient.box)).encrypt(
            wrap_nonce, content_key, associated
        )
        wraps.append(
            {
                "to": recipient.fingerprint,
                "ephemeral": eph_pub.hex(),
                "nonce": wrap_nonce.hex(),
                "key": wrapped.hex(),
            }
        )
    nonce = os.urandom(12)
    return wraps, nonce, ChaCha20Poly1305(content_key).encrypt(nonce, plaintext, associated)


def open_sealed(
    root: Path, owner: str, wraps: list[dict], nonce: bytes, ciphertext: bytes | memoryview, associated: bytes
) -> bytes:
    """Decrypt with this store's box key (one of the wraps must be addressed to it)."""
    me = public_key(root, owner)
    wrap = next((w for w in wraps if isinstance(w, dict) and w.get("to") == me.fingerprint), None)
    if wrap is None:
        raise ExchangeKeyError(
            "The package was not encrypted to this store's key: it is meant for another centre (or "
            "this store's keys were made after it)."
        )
    try:
        ephemeral = bytes.fromhex(wrap["ephemeral"])
        shared = box_key(root).exchange(X25519PublicKey.from_public_bytes(ephemeral))
        content_key = ChaCha20Poly1305(_key(shared, ephemeral, me.box)).decrypt(
            bytes.fromhex(wrap["nonce"]), bytes.fromhex(wrap["key"]), associated
        )
        return ChaCha20Poly1305(content_key).decrypt(nonce, ciphertext, associated)
    except (InvalidTag, ValueError, KeyError, TypeError):
        raise ExchangeKeyError(
            "The package cannot be decrypted: it was altered or truncated on the way."
        ) from None
