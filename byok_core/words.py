"""Words shown to people: the app's enum values, counts and durations, and audit events as sentences;
one place for the UI and the CLI (amounts of money: byok_core/currency.py)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from byok_core.audit import AuditAction, Target
from byok_core.currency import USD, money
from byok_core.errors import CallStatus
from byok_core.identity import KeySource, Owner, Role
from byok_core.providers import Provider, ProviderKind

if TYPE_CHECKING:
    from byok_core.models import AuditEvent


def provider_name(provider: Provider) -> str:
    return provider.label


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

# Who paid, as a table's column says it about anyone's call (Usage page).
PAYER = {
    KeySource.USER: "Own key",
    KeySource.TEAM: "Team key",
    KeySource.ENV: "Server key",
}
NO_USER = "Command line"  # a call made with `byok` without --user

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
    CallStatus.STOPPED: "Stopped",
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
    AuditAction.KEY_EXPIRY: "set a key's expiry date",
    AuditAction.USER_CREATE: "created an account",
    AuditAction.USER_DISABLE: "disabled an account",
    AuditAction.USER_ENABLE: "enabled an account",
    AuditAction.USER_ROLE: "changed a role",
    AuditAction.USER_PASSWORD: "set a password",
    AuditAction.USER_THROTTLED: "slowed down sign-ins after failures",
    AuditAction.BUDGET_SET: "set a budget",
    AuditAction.BUDGET_CLEAR: "removed a budget",
    AuditAction.USER_RENAME: "renamed an account",
    AuditAction.LIMITS_SET: "set the rate limits",
    AuditAction.MODELS_SET: "chose the models on shared keys",
    AuditAction.ALERTS_SET: "changed the alert webhook",
    AuditAction.ALERTS_ROTATE: "re-encrypted the alert webhook under the new master key",
    AuditAction.PRICE_SET: "changed a price",
    AuditAction.PRESET_SET: "saved a team preset",
    AuditAction.PRESET_DELETE: "deleted a team preset",
    AuditAction.CURRENCY_SET: "set the display currency",
    AuditAction.FALLBACK_SET: "changed the team-key fallback",
    AuditAction.CONNECTION_SET: "saved a connection",
    AuditAction.CONNECTION_DELETE: "deleted a connection",
    AuditAction.BILLING_KEY_SET: "changed a billing key",
}


def audit_action(action: str) -> str:
    """An audit action in words (an unknown one, or one added to AuditAction without words here, as it
    is stored)."""
    try:
        return AUDIT[AuditAction(action)]
    except (ValueError, KeyError):
        return action


# --- audit events as sentences (the Admin page's audit log) -------------------------------------
# Made from an event's fields (audit.Target, the amount set, the detail shown as written). An event
# without the fields its action needs, or from before migration 0010 in no form a release wrote
# (its ``old_target``), reads as the action's plain words.

_ACTORS = {"operator": "An operator (command line)", "system": "The app", "setup": "First-run setup",
           "oidc": "Single sign-on"}
_A_ROLE = {Role.ADMIN: "an admin", Role.MEMBER: "a member"}


def actor_name(actor: str) -> str:
    """Who acted, as the audit log names them: a username as it is, or "An operator (command line)"."""
    return _ACTORS.get(actor, actor)


_ROLES = {Role.ADMIN: "admins", Role.MEMBER: "members"}


def _whose(owner: Owner | None, names: Mapping[int, str], actor: str) -> str | None:
    """An owner as a possessive: "the team's", "bob's", "their own" (the actor's), "a removed account's"."""
    if owner is None:
        return None
    if owner.is_team:
        return "the team's"
    name = names.get(owner.id)
    if name is None:
        return "a removed account's"
    return "their own" if name == actor else f"{name}'s"


def _key_sentence(who: str, event: AuditEvent, target: Target, whose: str | None) -> str | None:
    if whose is None or target.provider is None:
        return None
    key = f"{whose} {target.provider.label} key"
    mask = f" {target.mask}" if target.mask else ""
    note = f" ({event.detail})" if event.detail else ""
    match event.action:
        case AuditAction.KEY_STORE:
            return f"{who} saved {key}{mask}{note}"
        case AuditAction.KEY_DELETE:
            return f"{who} deleted {key}{mask}{note}"
        case AuditAction.KEY_REPLACE:
            return f"{who} replaced {key}" + (f" with{mask}" if mask else "") + note
        case AuditAction.KEY_ROTATE:
            return f"{who} re-encrypted {key} under the new master key"
        case AuditAction.KEY_DECRYPT_FAILED:
            return f"{who} could not decrypt {key}" + (f": {event.detail}" if event.detail else "")
        case AuditAction.KEY_EXPIRY:
            return (f"{who} set {key}{mask} to expire after {event.detail}" if event.detail
                    else f"{who} removed the expiry date of {key}{mask}")
    return None


def _account_sentence(who: str, event: AuditEvent, target: Target) -> str | None:
    name, detail = target.username, event.detail
    if name is None:
        return None
    match event.action:
        case AuditAction.USER_CREATE:
            return f"{who} created {name}'s account" + (f" as {_A_ROLE[target.role]}" if target.role else "")
        case AuditAction.USER_DISABLE:
            return f"{who} disabled {name}'s account"
        case AuditAction.USER_ENABLE:
            return f"{who} enabled {name}'s account"
        case AuditAction.USER_ROLE if target.role is not None:
            return f"{who} made {name} {_A_ROLE[target.role]}" + (f" {detail}" if detail else "")
        case AuditAction.USER_PASSWORD:
            return f"{name} changed their password" if event.actor == name else f"{who} set a new password for {name}"
        case AuditAction.USER_THROTTLED:
            return f"Sign-ins to {name}'s account were slowed down after {detail or 'several failed tries'}"
        case AuditAction.USER_RENAME if detail:
            return f"{who} renamed {detail} to {name}"
    return None


def _setting_sentence(who: str, event: AuditEvent, target: Target, whose: str | None) -> str | None:
    detail, amount = event.detail, event.usd
    match event.action:
        case AuditAction.BUDGET_SET if whose is not None and amount is not None:
            typed = f" ({detail})" if detail else ""  # the amount as typed in another currency
            return f"{who} set {whose} budget on shared keys to {_usd(amount, whole=True)} a month{typed}"
        case AuditAction.BUDGET_CLEAR if whose is not None:
            return f"{who} removed {whose} budget on shared keys"
        case AuditAction.LIMITS_SET if whose is not None:  # one person's own limit
            return f"{who} set {whose} rate limit on shared keys to {detail}"
        case AuditAction.LIMITS_SET:
            return f"{who} set the rate limits on shared keys" + (f": {detail}" if detail else "")
        case AuditAction.MODELS_SET if target.provider is not None:
            whom = (_ROLES[target.role] if target.role is not None else
                    None if whose is None else whose.removesuffix("'s").replace("their own", "themselves"))
            if whom is None:
                return None
            if not detail:
                return f"{who} let {whom} use any {target.provider.label} model on shared keys"
            return f"{who} let {whom} use only these {target.provider.label} models on shared keys: {detail}"
        case AuditAction.PRICE_SET if target.provider is not None:
            return _price_sentence(who, target.provider, target.model, amount)
        case AuditAction.ALERTS_SET:
            return (f"{who} set the budget alert webhook to an address at {detail}" if detail
                    else f"{who} removed the budget alert webhook")
        case AuditAction.BILLING_KEY_SET if target.provider is not None:
            return (f"{who} saved the {target.provider.label} billing key {target.mask}" if target.mask
                    else f"{who} removed the {target.provider.label} billing key")
        case AuditAction.ALERTS_ROTATE:
            return f"{who} re-encrypted the budget alert webhook under the new master key"
        case AuditAction.PRESET_SET if detail:
            return f"{who} saved the team preset {detail}" + _preset_model(target)
        case AuditAction.CURRENCY_SET if detail:
            return f"{who} set the display currency to {detail}"
        case AuditAction.PRESET_DELETE if detail:
            return f"{who} deleted the team preset {detail}"
        case AuditAction.FALLBACK_SET if target.provider is not None:
            return (f"{who} let members' {target.provider.label} calls that their own key could not pay for "
                    f"(no quota, rate limit) be retried once on the team's key" if detail == "on" else
                    f"{who} stopped retrying members' {target.provider.label} calls on the team's key")
        case AuditAction.CONNECTION_SET if detail:
            return f"{who} saved the connection {detail}"
        case AuditAction.CONNECTION_DELETE if detail:
            return f"{who} deleted the connection {detail} and its keys"
    return None


def _preset_model(target: Target) -> str:
    return f" ({target.provider.label} {target.model})" if target.provider is not None and target.model else ""


def _price_sentence(who: str, provider: Provider, model: str | None, amount: float | None) -> str | None:
    """A search provider's price per request (never removed), or a chat model's per call (None: removed)."""
    if model is None:
        return None if amount is None else f"{who} set the price of a {provider.label} request to {_usd(amount)}"
    if amount is None:
        return f"{who} removed the per-call price of {provider.label} model {model}"
    return f"{who} set the per-call price of {provider.label} model {model} to {_usd(amount)}"


def _usd(amount: float, *, whole: bool = False) -> str:
    """An amount the audit log keeps as it was set: in dollars, whatever currency the team shows money in."""
    return money(amount, whole=whole, currency=USD)


def audit_sentence(event: AuditEvent, names: Mapping[int, str] | None = None) -> str:
    """An audit event as one sentence: "admin saved the team's Brave key sk-…ab12".

    ``names`` maps user ids to usernames (keys, budgets and model lists name their owner by id)."""
    who = actor_name(event.actor)
    target = Target.of(event)
    whose = _whose(target.owner, names or {}, event.actor)
    sentence = (None if event.old_target is not None
                else _key_sentence(who, event, target, whose) if event.action.startswith("key.")
                else _account_sentence(who, event, target) if event.action.startswith("user.")
                else _setting_sentence(who, event, target, whose))
    return sentence or f"{who} {audit_action(event.action)}"


# A key test's outcome on the Keys page, as in "Last test: the provider rejected the key".
KEY_TEST = {
    CallStatus.OK: "the key works",
    CallStatus.KEY_REJECTED: "the provider rejected the key",
    CallStatus.RATE_LIMITED: "the provider was limiting requests, or the key had no credit left",
    CallStatus.MODEL_NOT_FOUND: "the provider did not know the model",
    CallStatus.PROVIDER_DOWN: "the provider could not be reached",
    CallStatus.TIMEOUT: "the provider did not answer in time",
    CallStatus.CUT_OFF: "the answer was cut off",
    CallStatus.STOPPED: "the answer was stopped",
    CallStatus.BAD_REQUEST: "the provider refused the request",
    CallStatus.ERROR: "the answer could not be read",
    CallStatus.PENDING: "not finished",
}
