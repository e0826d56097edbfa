"""Getting a new team going: the first-run checklist an admin sees until its steps are done or they
dismiss it, and whom a person with no key should ask.

The checklist's steps are read from what exists (a key, a second account, a budget), never ticked
by hand; dismissing it is kept per admin in ``app_settings`` (so it stays dismissed in every browser
and after a restart)."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlmodel import col

from byok_core.clock import utcnow
from byok_core.identity import OwnerKind, Role
from byok_core.models import ApiKey, AppSetting, Budget, User

if TYPE_CHECKING:
    from byok_core.providers import Provider
    from byok_core.runtime import Runtime

_DISMISSED = "checklist_dismissed:user:"  # + the admin's id; the value is when (ISO 8601, UTC)


@dataclass(frozen=True)
class Checklist:
    """The first-run steps and whether each is done: a key that pays for calls (the team's, or the
    admin's own), a second account, a budget on the shared keys."""

    has_key: bool
    has_members: bool
    has_budget: bool

    @property
    def done(self) -> bool:
        return self.has_key and self.has_members and self.has_budget


def checklist(rt: Runtime, user_id: int) -> Checklist | None:
    """The checklist admin ``user_id`` should see, or None: every step done, or they dismissed it.
    One statement."""
    one = sa.literal(1)
    key = sa.exists(sa.select(one).where(col(ApiKey.active), (col(ApiKey.owner_kind) == OwnerKind.TEAM) | (
        (col(ApiKey.owner_kind) == OwnerKind.USER) & (col(ApiKey.owner_id) == user_id))))
    members = sa.select(sa.func.count()).select_from(User).scalar_subquery() > 1
    budget = sa.exists(sa.select(one).select_from(Budget))
    dismissed = sa.exists(sa.select(one).where(col(AppSetting.name) == f"{_DISMISSED}{user_id}"))
    with rt.engine.connect() as conn:
        has_key, has_members, has_budget, gone = conn.execute(sa.select(key, members, budget, dismissed)).one()
    steps = Checklist(bool(has_key), bool(has_members), bool(has_budget))
    return None if gone or steps.done else steps


def dismiss_checklist(rt: Runtime, user_id: int) -> None:
    """Stop showing admin ``user_id`` the checklist, in every browser."""
    name = f"{_DISMISSED}{user_id}"
    with contextlib.suppress(sa.exc.IntegrityError), rt.engine.begin() as conn:  # suppressed: dismissed twice at once
        if conn.execute(sa.select(col(AppSetting.name)).where(col(AppSetting.name) == name)).first() is None:
            conn.execute(sa.insert(AppSetting).values(name=name, value=utcnow().isoformat()))


def admin_names(rt: Runtime) -> list[str]:
    """The usernames of the active admins, oldest account first."""
    query = (sa.select(col(User.username)).where(col(User.role) == Role.ADMIN, sa.not_(col(User.disabled)))
             .order_by(col(User.id)))
    with rt.engine.connect() as conn:
        return list(conn.execute(query).scalars())


def _names(names: Sequence[str]) -> str:
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"


def whom_to_ask(rt: Runtime, providers: Sequence[Provider] = (), *, asker_is_admin: bool = False) -> str:
    """What a person with no key of their own and no team key (for ``providers``, named when given)
    can do, naming the admins to ask: "No key for Tavily yet: add your own on the Keys page, or ask
    an admin (alice or bob) to add a team key." An admin is told where team keys are added. Plain
    text (usernames are shown as typed: escape them for Markdown)."""
    which = f" for {_names([p.label for p in providers]).replace(' or ', ' and ')}" if providers else ""
    if asker_is_admin:
        return f"No key{which} yet: add a team key on the Admin page (Team keys), or your own on the Keys page."
    names = admin_names(rt)
    if not names:
        ask = "or ask whoever runs this server to add a team key"
    elif len(names) == 1:
        ask = f"or ask your admin ({names[0]}) to add a team key"
    else:
        ask = f"or ask an admin ({_names(names[:5] + ['another admin'] * (len(names) > 5))}) to add a team key"
    return f"No key{which} yet: add your own on the Keys page, {ask}."
