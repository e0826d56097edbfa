"""The app's exception hierarchy. Every message is one plain sentence a user can act on,
and none ever contains a secret."""

from __future__ import annotations


class ByokError(Exception):
    """Base of every error the app reports to a person."""


class ConfigError(ByokError):
    """The server is configured wrongly (master key, database URL, ...)."""


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

    def __init__(self, provider):
        self.provider = provider
        super().__init__(
            f"No API key for {provider.label}: add one on the Keys page "
            f"(or ask an admin for a team key)."
        )


class BudgetExceeded(ByokError):
    """A shared (team or server) key's monthly budget is used up."""


class KeyUnreadableError(ByokError):
    """A stored key exists but cannot be decrypted with the configured master keys."""
