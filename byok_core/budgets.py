"""Monthly USD budgets on shared keys: one per user and one for the whole team.

Only calls paid by the team's or the server's keys (key source "team" or "env") count, summed
over the current calendar month in UTC, so budgets reset on the 1st. Calls on a person's own
key are never counted nor refused. A call is refused once spend so far >= budget; from 80% on,
the user gets a warning. Calls of unknown cost add nothing (their price is unknown)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, select

from byok_core import audit
from byok_core.audit import AuditAction
from byok_core.clock import utcnow
from byok_core.errors import BudgetExceeded, ValidationError
from byok_core.identity import Actor, KeySource, Owner
from byok_core.models import Budget, UsageRecord, User, rowcount, table
from byok_core.runtime import Runtime

WARN_AT = 0.8
SHARED_SOURCES = [s for s in KeySource if s.shared]
_T = table(UsageRecord)


def month_bounds(now: datetime) -> tuple[datetime, datetime]:
    """Start of ``now``'s calendar month in UTC and start of the next one."""
    now = now.astimezone(UTC)
    start = datetime(now.year, now.month, 1, tzinfo=UTC)
    return start, datetime(now.year + now.month // 12, now.month % 12 + 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class BudgetLine:
    """One budget (a user's or the team's) and this month's shared-key spend."""

    owner: Owner
    name: str  # username, or "team"
    budget_usd: float | None  # None: no budget set
    spent_usd: float

    @property
    def used(self) -> float | None:
        """Fraction of the budget spent (0 budget: fully used), or None without a budget."""
        if self.budget_usd is None:
            return None
        return self.spent_usd / self.budget_usd if self.budget_usd else 1.0

    @property
    def exceeded(self) -> bool:
        return self.budget_usd is not None and self.spent_usd >= self.budget_usd

    @property
    def near(self) -> bool:
        return self.used is not None and self.used >= WARN_AT

    def describe(self) -> str:
        whose = "The team's" if self.owner.is_team else "Your"
        return (f"{whose} monthly budget for shared keys is {self.used:.0%} used "
                f"(${self.spent_usd:,.2f} of ${self.budget_usd:,.2f}).")


@dataclass(frozen=True)
class BudgetStatus:
    """The budgets that apply to one shared-key call; ``warning`` is set from 80% on."""

    lines: tuple[BudgetLine, ...]

    @property
    def warning(self) -> str | None:
        near = [line.describe() for line in self.lines if line.near]
        return " ".join([*near, "Your own API keys are not limited."]) if near else None


def _spend_query(now: datetime, *group_by: sa.ColumnElement[Any]) -> sa.Select[Any]:
    """Known cost of the shared-key calls in ``now``'s month (unknown costs add nothing)."""
    start, end = month_bounds(now)
    return (sa.select(*group_by, sa.func.coalesce(sa.func.sum(_T.c.cost_usd), 0.0))
            .where(_T.c.key_source.in_(SHARED_SOURCES), _T.c.ts >= start, _T.c.ts < end).group_by(*group_by))


def _spend(conn: sa.Connection, now: datetime, owner: Owner) -> float:
    """This month's shared-key spend of one user, or of everyone for the team's budget."""
    query = _spend_query(now)
    if not owner.is_team:
        query = query.where(_T.c.user_id == owner.id)
    return float(conn.execute(query).scalar_one())


def _budgets(conn: sa.Connection, *owners: Owner) -> dict[Owner, float]:
    """The monthly budgets set for ``owners`` (all budgets when none are named)."""
    query = sa.select(col(Budget.owner_kind), col(Budget.owner_id), col(Budget.monthly_usd))
    if owners:
        query = query.where(sa.or_(*(_is(owner) for owner in owners)))
    return {Owner(kind, owner_id): usd for kind, owner_id, usd in conn.execute(query)}


def check(rt: Runtime, user_id: int | None, key_source: KeySource,
          now: datetime | None = None) -> BudgetStatus | None:
    """Call before a provider call: None for own keys or when no budget applies, a BudgetStatus
    (with a warning from 80%) otherwise; raises BudgetExceeded once a budget is used up."""
    if not key_source.shared:
        return None
    now = now or utcnow()
    owners = [Owner.team()] if user_id is None else [Owner.user(user_id), Owner.team()]
    with rt.engine.connect() as conn:
        budgets = _budgets(conn, *owners)
        lines = tuple(BudgetLine(o, "team" if o.is_team else "you", budgets[o], _spend(conn, now, o))
                      for o in owners if o in budgets)
    if not lines:
        return None
    for line in lines:
        if line.exceeded:
            whose = "The team's" if line.owner.is_team else "Your"
            raise BudgetExceeded(
                f"{whose} monthly budget for shared (team or server) keys is used up (${line.spent_usd:,.2f} of "
                f"${line.budget_usd:,.2f}), so this call was not made; your own API keys keep working, "
                f"or ask an admin to raise the budget.")
    return BudgetStatus(lines)


def spend_report(rt: Runtime, now: datetime | None = None) -> list[BudgetLine]:
    """This month's shared-key spend: the team first, then every user with a budget or spend."""
    with rt.engine.connect() as conn:
        spent = {row[0]: float(row[1]) for row in conn.execute(_spend_query(now or utcnow(), _T.c.user_id))}
        budgets = _budgets(conn)
        names = {uid: name for uid, name in conn.execute(sa.select(col(User.id), col(User.username)))}
    team = Owner.team()
    users = {*(uid for uid in spent if uid is not None), *(o.id for o in budgets if not o.is_team)}
    return [BudgetLine(team, "team", budgets.get(team), sum(spent.values())),
            *(BudgetLine(Owner.user(uid), names.get(uid, f"#{uid}"), budgets.get(Owner.user(uid)), spent.get(uid, 0.0))
              for uid in sorted(users, key=lambda uid: names.get(uid, "")))]


def set_budget(rt: Runtime, actor: Actor, owner: Owner, monthly_usd: float) -> None:
    """Set a user's or the team's monthly budget. Admins only."""
    actor.check_admin("change budgets")
    if not 0 <= monthly_usd < 1e9:
        raise ValidationError("A monthly budget is an amount in USD, 0 or more.")
    with Session(rt.engine) as session, session.begin():
        row = session.exec(select(Budget).where(_is(owner))).first() or Budget(
            owner_kind=owner.kind, owner_id=owner.id, monthly_usd=0)
        row.monthly_usd = float(monthly_usd)
        session.add(row)
        audit.record(session, actor.name, AuditAction.BUDGET_SET, str(owner), f"${monthly_usd:,.2f} a month")


def clear_budget(rt: Runtime, actor: Actor, owner: Owner) -> bool:
    """Remove a budget; returns whether there was one."""
    actor.check_admin("change budgets")
    with Session(rt.engine) as session, session.begin():
        removed = rowcount(session.execute(sa.delete(Budget).where(_is(owner))))
        if removed:
            audit.record(session, actor.name, AuditAction.BUDGET_CLEAR, str(owner))
    return bool(removed)


def _is(owner: Owner) -> sa.ColumnElement[bool]:
    return (col(Budget.owner_kind) == owner.kind) & (col(Budget.owner_id) == owner.id)
