"""Text that people type (prompts, titles): refused, with a sentence, when it is empty or holds a
control character, which PostgreSQL cannot store (NUL) and no page shows, on every engine alike."""

from __future__ import annotations

import unicodedata

from byok_core.errors import ValidationError


def _control(text: str, allowed: str) -> str | None:
    return next((ch for ch in text if unicodedata.category(ch) == "Cc" and ch not in allowed), None)


def check_message(text: str, max_chars: int, *, empty_ok: bool = False) -> str:
    """A prompt as it may be sent and stored: not empty or only spaces (unless ``empty_ok``: it
    carries files), at most ``max_chars`` characters, no control character but line breaks and tabs."""
    if not (text or "").strip() and not empty_ok:
        raise ValidationError("Write a message first: it is empty or only spaces.")
    if len(text) > max_chars:
        raise ValidationError(f"Messages can be at most {max_chars:,} characters.")
    bad = _control(text, "\n\r\t")
    if bad is not None:
        raise ValidationError(f"The message contains a control character (U+{ord(bad):04X}) that cannot be stored; "
                              "remove it and send again.")
    return text


def check_line(text: str, what: str) -> str:
    """One line of text (a title, a name) without control characters; ``what`` names it in the message."""
    bad = _control(text or "", "")
    if bad is not None:
        raise ValidationError(f"{what} contains a control character (U+{ord(bad):04X}) that cannot be stored; "
                              "remove it and try again.")
    return text
