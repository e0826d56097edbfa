"""Every error the app reports to a person, and the status a provider call ends with.

Every message is one plain sentence a user can act on, and none ever contains a secret.

    ByokError
    ├── ConfigError              the server is configured wrongly (master key, database URL, ...)
    │   └── MasterKeyError       the master key is missing or malformed, or opens none of the stored values
    ├── DecryptionError          wrong master key, tampering or bad format: one type for all three
    ├── StorageError             the database cannot be written or reached: disk full, read-only, locked, down
    ├── ValidationError          input that cannot be accepted (also a ValueError)
    │   └── UnknownProviderError
    ├── NotFoundError            missing, or someone else's: deliberately indistinguishable
    ├── PermissionDenied
    ├── AuthError                sign-in failed; one message for every reason
    ├── NoKeyError               no user, team or server key for a provider
    ├── KeyUnreadableError       a stored key the configured master keys cannot decrypt
    ├── BudgetExceeded           a shared key's monthly budget is used up (or cannot cover the call)
    ├── SharedKeyLimit           a shared key's requests-per-minute limit; ``retry_after`` in seconds
    └── ProviderError            a provider call failed; ``status`` is what the usage log records
        ├── KeyRejected
        ├── RateLimited          (also no quota or credit left; ``retry_after`` in seconds)
        ├── ModelNotFound
        ├── ProviderDown
        ├── ProviderTimeout
        ├── RequestRejected
        └── StreamCutOff         the reply ended before the provider's end marker
            └── ReplyStopped     stopped by the person (Stop, Ctrl-C) before it finished
"""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from byok_core.providers import Provider


class CallStatus(StrEnum):
    """How a provider call ended: the usage log's ``status`` and a key test's outcome."""

    OK = "ok"
    KEY_REJECTED = "key_rejected"
    RATE_LIMITED = "rate_limited"
    MODEL_NOT_FOUND = "model_not_found"
    PROVIDER_DOWN = "provider_down"
    TIMEOUT = "timeout"
    CUT_OFF = "cut_off"
    STOPPED = "stopped"  # the person stopped the reply (Stop in the chat, Ctrl-C at the CLI)
    BAD_REQUEST = "bad_request"
    ERROR = "error"  # anything else: an answer the app could not read
    PENDING = "pending"  # logged before the call; an outcome was never recorded (the process stopped)


class ByokError(Exception):
    """Base of every error the app reports to a person."""


class ConfigError(ByokError):
    """The server is configured wrongly (master key, database URL, ...)."""


class MasterKeyError(ConfigError):
    """The master key is missing or malformed, or opens none of the values the database holds."""


class StorageError(ByokError):
    """The database cannot be written or reached; ``kind`` is "full", "read-only", "locked" or
    "unreachable". Nothing stored was lost."""

    def __init__(self, message: str, kind: str):
        super().__init__(message)
        self.kind = kind


class DecryptionError(ByokError):
    """A stored value could not be decrypted: wrong master key, tampering or bad format."""


class ValidationError(ByokError, ValueError):
    """Input that cannot be accepted; the message says what to change."""


class UnknownProviderError(ValidationError):
    pass


class NotFoundError(ByokError):
    """Missing, or owned by someone else: the two are deliberately indistinguishable."""


class PermissionDenied(ByokError):
    pass


class AuthError(ByokError):
    """Sign-in failed. One message for every reason."""


class NoKeyError(ByokError):
    """No user, team or server key is available for a provider."""

    def __init__(self, provider: Provider, why: str = ""):
        self.provider = provider
        lead = f"{why}, and there is no other" if why else "No"
        super().__init__(
            f"{lead} API key for {provider.label}: add one on the Keys page (or ask an admin for a team key)."
        )


class KeyUnreadableError(ByokError):
    """A stored key exists but cannot be decrypted with the configured master keys."""


class BudgetExceeded(ByokError):
    """A shared (team or server) key's monthly budget is used up, or cannot cover this call's worst case."""


class SharedKeyLimit(ByokError):
    """Too many calls on shared keys this minute; ``retry_after`` says when the next one is allowed."""

    def __init__(self, message: str, retry_after: int):
        super().__init__(message)
        self.retry_after = retry_after


class ProviderError(ByokError):
    """A call to a provider failed; ``status`` is what the usage log records. ``refused`` is set
    when the provider answered with an HTTP error before any reply (or nothing was sent): such a
    call is not billed."""

    status = CallStatus.ERROR
    refused = False


class KeyRejected(ProviderError):
    status = CallStatus.KEY_REJECTED


class RateLimited(ProviderError):
    """Too many requests, or no quota / credit left. ``retry_after`` is in seconds when known."""

    status = CallStatus.RATE_LIMITED

    def __init__(self, message: str, retry_after: float | None = None, *, quota: bool = False):
        super().__init__(message)
        self.retry_after = retry_after
        self.quota = quota  # no quota or credit left (not only too many requests)


class ModelNotFound(ProviderError):
    status = CallStatus.MODEL_NOT_FOUND


class ProviderDown(ProviderError):
    status = CallStatus.PROVIDER_DOWN


class ProviderTimeout(ProviderError):
    status = CallStatus.TIMEOUT


class RequestRejected(ProviderError):
    """The provider refused the request itself (HTTP 400-class, not about the key or model)."""

    status = CallStatus.BAD_REQUEST


class StreamCutOff(ProviderError):
    """The reply ended before the provider's own end marker; ``partial`` is the text received."""

    status = CallStatus.CUT_OFF

    def __init__(self, message: str, partial: str = ""):
        super().__init__(message)
        self.partial = partial


class ReplyStopped(StreamCutOff):
    """The person stopped the reply before it finished; the text so far is kept."""

    status = CallStatus.STOPPED
