"""Fallback to the team's key when a member's own key fails: opt-in per provider by an admin
(audited), and a member may turn it off for themself.

A member's call whose own key the provider refused for quota or rate limit, before any reply, is
tried once more on the team's key, admitted like any team-key call (budgets, rate limits, model
list); the usage log keeps both calls. Settings live in ``app_settings``."""

from __future__ import annotations

import sqlalchemy as sa
from sqlmodel import Session, col

from byok_core import audit
from byok_core.audit import AuditAction
from byok_core.errors import ProviderError, RateLimited
from byok_core.identity import Actor
from byok_core.models import AppSetting
from byok_core.providers import Provider
from byok_core.runtime import Runtime

_ALLOWED = "fallback.team_key:"  # + provider id: an admin allows it for that provider
_OPTED_OUT = "fallback.opt_out:"  # + user id: the member turned it off for themself


def _names(rt: Runtime, names: list[str]) -> set[str]:
    with rt.engine.connect() as conn:
        return set(conn.execute(sa.select(col(AppSetting.name)).where(col(AppSetting.name).in_(names))).scalars())


def allowed_providers(rt: Runtime) -> set[Provider]:
    """The providers whose members' refused calls may be retried on the team's key."""
    return {p for p in Provider if _ALLOWED + p.value in _names(rt, [_ALLOWED + q.value for q in Provider])}


def set_allowed(rt: Runtime, actor: Actor, provider: Provider, on: bool) -> None:
    """Allow (or stop) the fallback for ``provider``; admins only, audited when it changes."""
    actor.check_admin("change the team-key fallback")
    name = _ALLOWED + provider.value
    with Session(rt.engine) as session, session.begin():
        if (session.get(AppSetting, name) is not None) == on:
            return
        if on:
            session.add(AppSetting(name=name, value="on"))
        else:
            session.execute(sa.delete(AppSetting).where(col(AppSetting.name) == name))
        audit.record(session, actor.name, AuditAction.FALLBACK_SET, audit.Target(provider=provider),
                     detail="on" if on else "off")


def opted_out(rt: Runtime, user_id: int) -> bool:
    return bool(_names(rt, [f"{_OPTED_OUT}{user_id}"]))


def set_opted_out(rt: Runtime, actor: Actor, off: bool) -> None:
    """The signed-in member turns the fallback off (``off``) or back on for themself."""
    if actor.user_id is None:
        raise ValueError("only a signed-in person has this setting")
    name = f"{_OPTED_OUT}{actor.user_id}"
    with rt.engine.begin() as conn:
        conn.execute(sa.delete(AppSetting).where(col(AppSetting.name) == name))
        if off:
            conn.execute(sa.insert(AppSetting).values(name=name, value="off"))


def applies(rt: Runtime, user_id: int | None, provider: Provider, exc: ProviderError) -> bool:
    """Whether ``user_id``'s call that ``exc`` refused on their own key is tried on the team's key:
    a quota or rate-limit refusal (nothing billed), allowed for the provider, not turned off by them."""
    if user_id is None or not isinstance(exc, RateLimited) or not exc.refused:
        return False
    found = _names(rt, [_ALLOWED + provider.value, f"{_OPTED_OUT}{user_id}"])
    return found == {_ALLOWED + provider.value}


def note(exc: RateLimited) -> str:
    """What the reply says about it."""
    why = "out of quota" if exc.quota else "rate-limited"
    return f"Your key was {why}; the team's key paid."
