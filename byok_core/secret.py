"""A string wrapper for API keys whose repr and str never show the key."""

from __future__ import annotations

import hmac
from typing import NoReturn


def mask(value: str) -> str:
    """A short, non-reversible hint of a key, e.g. ``sk-…a1b2``. Shows at most 7 characters."""
    if len(value) >= 16:
        return f"{value[:3]}…{value[-4:]}"
    if len(value) >= 8:
        return f"…{value[-2:]}"
    return "…"


def is_printable_ascii(value: str) -> bool:
    """Only the characters an API key is made of (and an HTTP header can carry): ASCII '!' to '~'."""
    return all("!" <= ch <= "~" for ch in value)


class Secret:
    """Holds a plaintext key. ``reveal()`` is the only way to read it; printing shows a mask."""

    __slots__ = ("_value",)

    def __init__(self, value: str):
        self._value = value

    def reveal(self) -> str:
        return self._value

    @property
    def mask(self) -> str:
        return mask(self._value)

    def __repr__(self) -> str:
        return f"Secret({self.mask!r})"

    __str__ = __repr__

    def __format__(self, spec: str) -> str:
        return repr(self)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and hmac.compare_digest(other._value, self._value)

    def __hash__(self) -> int:
        return hash(self._value)

    def __reduce__(self) -> NoReturn:
        raise TypeError("Secret values cannot be pickled")
