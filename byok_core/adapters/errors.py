"""Errors a provider call can end with. Each has a ``kind`` (the usage-log status) and a message
that is one plain sentence saying what to do; provider text in it is scrubbed of the key first."""

from __future__ import annotations

from byok_core.errors import ByokError
from byok_core.secret import Secret

_SHOWN = 4  # a mask shows at most the last 4 characters of a key


class ProviderError(ByokError):
    """A call to a provider failed; ``kind`` is what the usage log records."""

    kind = "error"


class KeyRejected(ProviderError):
    kind = "key_rejected"


class RateLimited(ProviderError):
    """Too many requests, or no quota / credit left. ``retry_after`` is in seconds when known."""

    kind = "rate_limited"

    def __init__(self, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


class ModelNotFound(ProviderError):
    kind = "model_not_found"


class ProviderDown(ProviderError):
    kind = "provider_down"


class ProviderTimeout(ProviderError):
    kind = "timeout"


class RequestRejected(ProviderError):
    """The provider refused the request itself (HTTP 400-class, not about the key or model)."""

    kind = "bad_request"


class StreamCutOff(ProviderError):
    """The reply ended before the provider's own end marker; ``partial`` is the text received."""

    kind = "cut_off"

    def __init__(self, message: str, partial: str = ""):
        super().__init__(message)
        self.partial = partial


def scrub(text: str, secret: Secret | None, limit: int = 200) -> str:
    """Provider text safe to show: the key, and any piece of it longer than a mask's tail, replaced.

    Providers sometimes echo the key (or a long part of it) back in an error body."""
    text = " ".join(str(text).split())[:2000]
    value = secret.reveal() if secret is not None else ""
    if value:
        text = text.replace(value, secret.mask)
        out, i = [], 0
        while i < len(text):
            j = i
            while j < len(text) and text[i:j + 1] in value:
                j += 1
            if j - i > _SHOWN:
                out.append("…")
                i = j
            else:
                out.append(text[i])
                i += 1
        text = "".join(out)
    return text if len(text) <= limit else text[: limit - 1] + "…"
