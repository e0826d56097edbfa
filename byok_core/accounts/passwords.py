"""Passwords: the rules for a new one, and Argon2id hashing and checking."""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from byok_core.errors import ValidationError

# OWASP's recommended Argon2id configuration (m=19 MiB, t=2, p=1): ~70 ms a hash on one core,
# where argon2-cffi's default (64 MiB, p=4) takes ~450 ms here. tests/test_accounts.py pins the floor.
HASHER = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)
DUMMY_HASH = HASHER.hash("not a real password; equalizes timing for unknown users")


def validate_password(password: str) -> str:
    if not password or len(password) < 8:
        raise ValidationError("Passwords need at least 8 characters.")
    if len(password) > 1024:
        raise ValidationError("Passwords can be at most 1024 characters.")
    return password


def hash_password(password: str) -> str:
    """The digest to store for ``password``."""
    return HASHER.hash(password)


def verify(digest: str, password: str) -> bool:
    try:
        return HASHER.verify(digest, password or "")
    except (VerificationError, InvalidHashError):
        return False


def verify_dummy(password: str) -> None:
    """Spend the time a real check takes, for a name no account has (so timing does not tell)."""
    verify(DUMMY_HASH, password)


def needs_rehash(digest: str) -> bool:
    """Whether ``digest`` was made with weaker parameters than HASHER's (then rehashed on sign-in)."""
    return HASHER.check_needs_rehash(digest)
