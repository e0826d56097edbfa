"""Words shown to people for the app's enum values: one place for the UI and the CLI."""

from __future__ import annotations

from byok_core.audit import AuditAction
from byok_core.errors import CallStatus
from byok_core.identity import KeySource, Role
from byok_core.providers import Provider, ProviderKind


def provider_name(provider: Provider) -> str:
    return provider.label


def usd(amount: float) -> str:
    """A known amount of dollars as people read it: "$1,234.5678", "$0.0123", a tiny one to the
    millionth ("$0.000005", never "$0.0000" for money that was spent), and "$0.00" for nothing."""
    if amount == 0:
        return "$0.00"
    if abs(amount) < 0.01:
        return f"${amount:.6f}".rstrip("0").rstrip(".")
    return f"${amount:,.4f}"


def count(value: int | None) -> str:
    """A count as people read it: "12,345", or "—" when unknown."""
    return "—" if value is None else f"{value:,}"


def duration(ms: int | float | None) -> str:
    """How long something took: "under 0.1 s", "0.4 s", "12 s", "2 min 5 s"; "—" when unknown."""
    if ms is None:
        return "—"
    seconds = ms / 1000
    if seconds < 0.1:
        return "under 0.1 s"
    if seconds < 10:
        return f"{seconds:.1f} s"
    if seconds < 60:
        return f"{seconds:.0f} s"
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest} s" if rest else f"{minutes} min"


KIND = {ProviderKind.CHAT: "Chat", ProviderKind.SEARCH: "Web search"}

# Who pays for a call, as in "Paid by your key".
PAID_BY = {
    KeySource.USER: "your key",
    KeySource.TEAM: "the team's key",
    KeySource.ENV: "the server's key",
}

# Where a provider's key comes from today (the Keys page); None: no key at all.
KEY_USED = {
    KeySource.USER: "your own key",
    KeySource.TEAM: "the team's key",
    KeySource.ENV: "the server's key",
    None: "no key: calls will fail",
}

STATUS = {
    CallStatus.OK: "OK",
    CallStatus.KEY_REJECTED: "Key rejected",
    CallStatus.RATE_LIMITED: "Rate limited",
    CallStatus.MODEL_NOT_FOUND: "Model not found",
    CallStatus.PROVIDER_DOWN: "Provider unavailable",
    CallStatus.TIMEOUT: "Timed out",
    CallStatus.CUT_OFF: "Cut off",
    CallStatus.BAD_REQUEST: "Request refused",
    CallStatus.ERROR: "Failed",
    CallStatus.PENDING: "Not finished",
}

ROLE = {Role.ADMIN: "admin", Role.MEMBER: "member"}

AUDIT = {
    AuditAction.KEY_STORE: "saved a key",
    AuditAction.KEY_REPLACE: "replaced a key",
    AuditAction.KEY_DELETE: "deleted a key",
    AuditAction.KEY_ROTATE: "re-encrypted a key under the new master key",
    AuditAction.KEY_DECRYPT_FAILED: "could not decrypt a key",
    AuditAction.USER_CREATE: "created an account",
    AuditAction.USER_DISABLE: "disabled an account",
    AuditAction.USER_ENABLE: "enabled an account",
    AuditAction.USER_ROLE: "changed a role",
    AuditAction.USER_PASSWORD: "set a password",
    AuditAction.USER_THROTTLED: "slowed down sign-ins after failures",
    AuditAction.BUDGET_SET: "set a budget",
    AuditAction.BUDGET_CLEAR: "removed a budget",
    AuditAction.LIMITS_SET: "set the rate limits",
    AuditAction.MODELS_SET: "chose the models on shared keys",
    AuditAction.ALERTS_SET: "changed the alert webhook",
}


def audit_action(action: str) -> str:
    """An audit action in words (an unknown one as it is stored)."""
    try:
        return AUDIT[AuditAction(action)]
    except ValueError:
        return action
