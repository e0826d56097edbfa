"""Encryption at rest: AES-256-GCM under an HKDF subkey of a master key, Fernet-style small API
(no I/O: ``masterkey`` loads the keys).

A stored value looks like ``v2:<key-id>:<base64url(nonce | ciphertext | tag)>``. The key id names
the master key that sealed it; the associated data binds it to the header and to the place it
belongs (the caller's context: owner, provider, row and base URL, see keys.py), so a value copied
anywhere else, or a row whose base URL was changed, fails to decrypt. ``decrypt`` also reads the
first format, ``v1``, whose context had no base URL, for the one-time re-sealing at start.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import secrets
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from byok_core.errors import DecryptionError, MasterKeyError

VERSION = "v2"  # v2: the caller's context includes the base URL (keys.py); v1 values are re-sealed at start
VERSIONS = ("v1", VERSION)  # formats decrypt() reads
NONCE_BYTES = 12
TAG_BYTES = 16
GEN_HINT = "Make one with `byok gen-key` (or leave ENCRYPTION_KEY unset to use a generated key file)."

# Keys that appear in this project's documentation or examples. Anyone can read them, so they
# protect nothing; start-up refuses them. tests/test_crypto.py checks the README against this list.
DOCUMENTED_KEYS = frozenset({
    "0123456789abcdef" * 4,
    "00" * 32,
    "ff" * 32,
})


def gen_key() -> str:
    """A new random master key: 64 hex characters (32 bytes)."""
    return secrets.token_hex(32)


def _hkdf(master: bytes, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=b"byok-dashboard", info=info).derive(master)


@dataclass(frozen=True)
class MasterKey:
    """One master key, reduced to its id and its AEAD subkey (the master bytes are not kept)."""

    key_id: str
    aead: AESGCM = field(repr=False)

    @classmethod
    def from_bytes(cls, master: bytes) -> MasterKey:
        key_id = hashlib.sha256(_hkdf(master, b"byok key-id")).hexdigest()[:12]
        return cls(key_id, AESGCM(_hkdf(master, b"byok v1 api-key encryption")))


def parse_master_key(text: str, source: str) -> MasterKey:
    """Validate a 64-hex master key from ``source`` (a variable or file name) without echoing it."""
    value = text.strip().lower()
    if len(value) != 64:
        raise MasterKeyError(
            f"{source} must be 64 hexadecimal characters (32 bytes), but it has {len(value)}. {GEN_HINT}"
        )
    try:
        raw = bytes.fromhex(value)
    except ValueError:
        raise MasterKeyError(f"{source} must contain only hexadecimal characters (0-9, a-f). {GEN_HINT}") from None
    if value in DOCUMENTED_KEYS or len(set(value)) < 8:
        raise MasterKeyError(
            f"{source} is an example key from the documentation (or trivially guessable) and protects "
            f"nothing. {GEN_HINT}"
        )
    return MasterKey.from_bytes(raw)


class Keyring:
    """The current master key (encrypts and decrypts) plus older ones (decrypt only)."""

    def __init__(self, primary: MasterKey, fallbacks: list[MasterKey] | tuple[MasterKey, ...] = ()):
        self.primary = primary
        self._by_id: dict[str, MasterKey] = {}
        for key in (primary, *fallbacks):
            self._by_id.setdefault(key.key_id, key)

    @property
    def key_ids(self) -> list[str]:
        return list(self._by_id)

    def __repr__(self) -> str:
        return f"Keyring(primary={self.primary.key_id!r}, keys={self.key_ids!r})"

    def encrypt(self, plaintext: str, context: str) -> str:
        header = f"{VERSION}:{self.primary.key_id}"
        nonce = os.urandom(NONCE_BYTES)
        sealed = self.primary.aead.encrypt(nonce, plaintext.encode(), _aad(header, context))
        return f"{header}:{base64.urlsafe_b64encode(nonce + sealed).decode().rstrip('=')}"

    def decrypt(self, token: str, context: str) -> str:
        """The plaintext, or DecryptionError for a wrong key, tampering or a malformed value."""
        version, key_id, body = _split(token)
        key = self._by_id.get(key_id)
        if key is None:
            raise DecryptionError(f"sealed with master key {key_id}, which is not configured")
        try:
            raw = base64.b64decode(body + "=" * (-len(body) % 4), altchars=b"-_", validate=True)
        except (binascii.Error, ValueError):
            raise DecryptionError("malformed value (not base64url)") from None
        if len(raw) < NONCE_BYTES + TAG_BYTES:
            raise DecryptionError("malformed value (too short)")
        try:
            plain = key.aead.decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], _aad(f"{version}:{key_id}", context))
            return plain.decode()
        except (InvalidTag, UnicodeDecodeError):
            raise DecryptionError("authentication failed (tampered, moved, or a different master key)") from None

    def needs_rotation(self, token: str) -> bool:
        return key_id_of(token) != self.primary.key_id


def key_id_of(token: str) -> str:
    return _split(token)[1]


def version_of(token: str) -> str:
    return _split(token)[0]


def _split(token: str) -> tuple[str, str, str]:
    parts = token.split(":") if isinstance(token, str) else []
    if len(parts) != 3 or not all(parts):
        raise DecryptionError("malformed value (expected version:key-id:data)")
    if parts[0] not in VERSIONS:
        raise DecryptionError(f"unknown format version {parts[0][:8]!r}")
    return parts[0], parts[1], parts[2]


def _aad(header: str, context: str) -> bytes:
    return f"{header}|{context}".encode()
