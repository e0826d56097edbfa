"""Words shown to people for the app's enum values: one place for the UI and the CLI."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from byok_core.audit import AuditAction
from byok_core.errors import CallStatus
from byok_core.identity import KeySource, Role
from byok_core.providers import Provider, ProviderKind

if TYPE_CHECKING:
    from byok_core.models import AuditEvent


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
    AuditAction.USER_RENAME: "renamed an account",
    AuditAction.LIMITS_SET: "set the rate limits",
    AuditAction.MODELS_SET: "chose the models on shared keys",
    AuditAction.ALERTS_SET: "changed the alert webhook",
    AuditAction.PRICE_SET: "changed a price",
}


def audit_action(action: str) -> str:
    """An audit action in words (an unknown one, or one added to AuditAction without words here, as it
    is stored)."""
    try:
        return AUDIT[AuditAction(action)]
    except (ValueError, KeyError):
        return action


# --- audit events as sentences (issue 11: the Admin page's audit log) ---------------------------
# An event's target and detail are written by the module that records it (keys.py: "team brave
# <row id>" and "mask sk-…ab12"; accounts.py: the username; budgets.py: "team" or "user 5"; ...).
# A target or detail not in the form its action writes gives the action's plain words alone.

_ACTORS = {"operator": "An operator (command line)", "system": "The app", "setup": "First-run setup",
           "oidc": "Single sign-on"}
_KEY_VERBS = {AuditAction.KEY_STORE: "saved", AuditAction.KEY_DELETE: "deleted"}


def _owner_of(tokens: list[str], names: Mapping[int, str], actor: str) -> tuple[str, list[str]] | None:
    """The owner at the start of a target ("team", "user 5", "team:0", "user:5") as a possessive
    ("the team's", "bob's", "their own"), and the tokens after it."""
    if not tokens:
        return None
    head, rest = tokens[0], tokens[1:]
    if head == "team" or head.startswith("team:"):
        return "the team's", rest
    if head == "user" and rest and rest[0].isdigit():
        user_id, rest = int(rest[0]), rest[1:]
    elif head.startswith("user:") and head[5:].isdigit():
        user_id = int(head[5:])
    else:
        return None
    name = names.get(user_id)
    if name is None:
        return "a removed account's", rest
    return ("their own" if name == actor else f"{name}'s"), rest


def _provider(value: str) -> Provider | None:
    return next((p for p in Provider if p.value == value), None)


def _is_username(target: str) -> bool:
    return bool(target) and not any(c.isspace() for c in target)


def _key_sentence(who: str, action: str, target: str, detail: str, names: Mapping[int, str],
                  actor: str) -> str | None:
    owned = _owner_of(target.split(), names, actor)
    if owned is None or not owned[1] or len(owned[1]) > 2:
        return None
    owner, rest = owned
    provider = _provider(rest[0])
    if provider is None:
        return None
    key = f"{owner} {provider.label} key"
    mask = detail[5:] if detail.startswith("mask ") else ""
    if action in _KEY_VERBS:
        return f"{who} {_KEY_VERBS[AuditAction(action)]} {key}" + (f" {mask}" if mask else "")
    if action == AuditAction.KEY_REPLACE:
        return f"{who} replaced {key}" + (f" with {mask}" if mask else "")
    if action == AuditAction.KEY_ROTATE:
        return f"{who} re-encrypted {key} under the new master key"
    if action == AuditAction.KEY_DECRYPT_FAILED:
        return f"{who} could not decrypt {key}" + (f": {detail}" if detail else "")
    words = next((w for a, w in AUDIT.items() if a.value == action), None)  # an action added later
    return f"{who} {words}: {key}" + (f" {mask}" if mask else "") if words else None


def _user_sentence(who: str, action: str, target: str, detail: str, actor: str) -> str | None:
    if not _is_username(target):
        return None
    if action == AuditAction.USER_CREATE:
        role = "an admin" if detail.startswith("role admin") else "a member" if detail.startswith("role member") else ""
        return f"{who} created {target}'s account" + (f" as {role}" if role else "")
    if action == AuditAction.USER_DISABLE:
        return f"{who} disabled {target}'s account"
    if action == AuditAction.USER_ENABLE:
        return f"{who} enabled {target}'s account"
    if action == AuditAction.USER_ROLE:
        role = "an admin" if detail.startswith("role admin") else "a member" if detail.startswith("role member") else ""
        if not role:
            return None
        why = (" because their single sign-on sent no groups" if "no " in detail and "claim" in detail
               else " from their single sign-on groups" if "single sign-on" in detail else "")
        return f"{who} made {target} {role}{why}"
    if action == AuditAction.USER_PASSWORD:
        return f"{target} changed their password" if actor == target else f"{who} set a new password for {target}"
    if action == AuditAction.USER_THROTTLED:
        tries = detail.split()[0] if detail.split() and detail.split()[0].isdigit() else "several"
        return f"Sign-ins to {target}'s account were slowed down after {tries} failed tries"
    if action == AuditAction.USER_RENAME and detail.startswith("from ") and _is_username(detail[5:]):
        return f"{who} renamed {detail[5:]} to {target}"
    return None


def _settings_sentence(who: str, action: str, target: str, detail: str, names: Mapping[int, str],
                       actor: str) -> str | None:
    if action in (AuditAction.BUDGET_SET, AuditAction.BUDGET_CLEAR):
        owned = _owner_of(target.split(), names, actor)
        if owned is None or owned[1]:
            return None
        if action == AuditAction.BUDGET_CLEAR:
            return f"{who} removed {owned[0]} budget on shared keys"
        return f"{who} set {owned[0]} budget on shared keys to {detail}" if detail else None
    if action == AuditAction.LIMITS_SET:
        return f"{who} set the rate limits on shared keys" + (f": {detail}" if detail else "")
    if action == AuditAction.MODELS_SET:
        subject, _, provider_id = target.partition(" ")
        provider = _provider(provider_id)
        if provider is None or not detail:
            return None
        if subject.startswith("role:"):
            whom = {"admin": "admins", "member": "members"}.get(subject[5:])
        else:
            owned = _owner_of([subject], names, actor)
            whom = owned[0].removesuffix("'s").replace("their own", "themselves") if owned else None
        if whom is None:
            return None
        if detail == "any model":
            return f"{who} let {whom} use any {provider.label} model on shared keys"
        return f"{who} let {whom} use only these {provider.label} models on shared keys: {detail}"
    if action == AuditAction.PRICE_SET:
        return _price_sentence(who, target, detail)
    if action == AuditAction.ALERTS_SET and detail:
        return f"{who} removed the budget alert webhook" if detail == "removed" else (
            f"{who} set the budget alert webhook to an address at {detail}")
    return None


def _price_sentence(who: str, target: str, detail: str) -> str | None:
    """pricing.py writes "search <provider>" or "model <provider> <model>", and the USD or "removed"."""
    kind, _, rest = target.partition(" ")
    provider_id, _, model = rest.partition(" ")
    provider = _provider(provider_id)
    try:
        price = "" if detail == "removed" else usd(float(detail))
    except ValueError:
        return None
    if provider is None:
        return None
    if kind == "search" and not model and price:
        return f"{who} set the price of a {provider.label} request to {price}"
    if kind == "model" and model:
        return (f"{who} set the per-call price of {provider.label} model {model} to {price}" if price
                else f"{who} removed the per-call price of {provider.label} model {model}")
    return None


def audit_sentence(event: AuditEvent, names: Mapping[int, str] | None = None) -> str:
    """An audit event as one sentence: "admin saved the team's Brave key sk-…ab12".

    ``names`` maps user ids to usernames (keys and budgets name their owner by id)."""
    names = names or {}
    actor, action, target, detail = event.actor, event.action, event.target or "", event.detail or ""
    who = _ACTORS.get(actor, actor)
    sentence = (_key_sentence(who, action, target, detail, names, actor) if action.startswith("key.")
                else _user_sentence(who, action, target, detail, actor) if action.startswith("user.")
                else _settings_sentence(who, action, target, detail, names, actor))
    if sentence is None:
        sentence = f"{who} renamed an account" if action == AuditAction.USER_RENAME else f"{who} {audit_action(action)}"
    return sentence

# A key test's outcome on the Keys page, as in "Last test: the provider rejected the key".
KEY_TEST = {
    CallStatus.OK: "the key works",
    CallStatus.KEY_REJECTED: "the provider rejected the key",
    CallStatus.RATE_LIMITED: "the provider was limiting requests, or the key had no credit left",
    CallStatus.MODEL_NOT_FOUND: "the provider did not know the model",
    CallStatus.PROVIDER_DOWN: "the provider could not be reached",
    CallStatus.TIMEOUT: "the provider did not answer in time",
    CallStatus.CUT_OFF: "the answer was cut off",
    CallStatus.BAD_REQUEST: "the provider refused the request",
    CallStatus.ERROR: "the answer could not be read",
    CallStatus.PENDING: "not finished",
}
