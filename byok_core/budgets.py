"""Monthly USD budgets on shared keys: one per user and one for the whole team.

Only calls paid by the team's or the server's keys (key source "team" or "env") count, summed
over the current calendar month in UTC, so budgets reset on the 1st. Calls on a person's own
key are never counted nor refused. A call is refused once spend so far >= budget; from 80% on,
the user gets a warning. Calls of unknown cost add nothing (their price is unknown)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlmodel import Session, col, select

from byok_core import audit
from byok_core.clock import utcnow
from byok_core.errors import BudgetExceeded, PermissionDenied, ValidationError
from byok_core.keys import Actor
from byok_core.models import Budget, KeySource, UsageRecord, User
from byok_core.runtime import Runtime

WARN_AT = 0.8
SHARED_SOURCES = (KeySource.TEAM.value, KeySource.ENV.value)
_T = UsageRecord.__table__


def month_bounds(now: datetime) -> tuple[datetime, datetime]:
    """Start of ``now``'s calendar month in UTC and start of the next one."""
    now = now.astimezone(UTC)
    start = datetime(now.year, now.month, 1, tzinfo=UTC)
    return start, datetime(now.year + now.month // 12, now.month % 12 + 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class BudgetLine:
    """One budget (a user's, or the team's when user_id is None) and this month's shared-key spend."""

    user_id: int | None
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
        whose = "The team's" if self.user_id is None else "Your"
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


def _spend_query(now: datetime, *group_by: sa.ColumnElement) -> sa.Select:
    """Known cost of the shared-key calls in ``now``'s month (unknown costs add nothing)."""
    start, end = month_bounds(now)
    return (sa.select(*group_by, sa.func.coalesce(sa.func.sum(_T.c.cost_usd), 0.0))
            .where(_T.c.key_source.in_(SHARED_SOURCES), _T.c.ts >= start, _T.c.ts < end).group_by(*group_by))


def _spend(conn: sa.Connection, now: datetime, user_id: int | None) -> float:
    """This month's shared-key spend of ``user_id``, or of everyone (the team) when it is None."""
    query = _spend_query(now)
    if user_id is not None:
        query = query.where(_T.c.user_id == user_id)
    return float(conn.execute(query).scalar_one())


def check(rt: Runtime, user_id: int | None, key_source: KeySource | str,
          now: datetime | None = None) -> BudgetStatus | None:
    """Call before a provider call: None for own keys or when no budget applies, a BudgetStatus
    (with a warning from 80%) otherwise; raises BudgetExceeded once a budget is used up."""
    if KeySource(key_source) is KeySource.USER:
        return None
    now = now or utcnow()
    with rt.engine.connect() as conn:
        budgets = dict(conn.execute(sa.select(Budget.user_id, Budget.monthly_usd)
                                    .where(sa.or_(_owner(None), _owner(user_id)))).all())
        lines = tuple(BudgetLine(uid, "team" if uid is None else "you", budgets[uid], _spend(conn, now, uid))
                      for uid in dict.fromkeys((user_id, None)) if uid in budgets)
    if not lines:
        return None
    for line in lines:
        if line.exceeded:
            whose = "The team's" if line.user_id is None else "Your"
            raise BudgetExceeded(
                f"{whose} monthly budget for shared (team or server) keys is used up (${line.spent_usd:,.2f} of "
                f"${line.budget_usd:,.2f}), so this call was not made; your own API keys keep working, "
                f"or ask an admin to raise the budget.")
    return BudgetStatus(lines)


def spend_report(rt: Runtime, now: datetime | None = None) -> list[BudgetLine]:
    """This month's shared-key spend: the team first, then every user with a budget or spend."""
    with rt.engine.connect() as conn:
        spent = {uid: float(usd) for uid, usd in conn.execute(_spend_query(now or utcnow(), _T.c.user_id))}
        budgets = dict(conn.execute(sa.select(Budget.user_id, Budget.monthly_usd)).all())
        names = dict(conn.execute(sa.select(User.id, User.username)).all())
    team = BudgetLine(None, "team", budgets.get(None), sum(spent.values()))
    users = sorted((uid for uid in {*spent, *budgets} if uid is not None), key=lambda uid: names.get(uid, ""))
    return [team, *(BudgetLine(uid, names.get(uid, f"#{uid}"), budgets.get(uid), spent.get(uid, 0.0))
                    for uid in users)]


def set_budget(rt: Runtime, actor: Actor, user_id: int | None, monthly_usd: float) -> None:
    """Set a user's (or, with user_id None, the team's) monthly budget. Admins only."""
    _check_admin(actor)
    if not 0 <= monthly_usd < 1e9:
        raise ValidationError("A monthly budget is an amount in USD, 0 or more.")
    with Session(rt.engine) as session, session.begin():
        row = session.exec(select(Budget).where(_owner(user_id))).first() or Budget(user_id=user_id, monthly_usd=0)
        row.monthly_usd = float(monthly_usd)
        session.add(row)
        audit.record(session, actor.name, "budget.set", _target(user_id), f"${monthly_usd:,.2f} a month")


def clear_budget(rt: Runtime, actor: Actor, user_id: int | None) -> bool:
    """Remove a budget; returns whether there was one."""
    _check_admin(actor)
    with Session(rt.engine) as session, session.begin():
        removed = session.execute(sa.delete(Budget).where(_owner(user_id))).rowcount
        if removed:
            audit.record(session, actor.name, "budget.clear", _target(user_id))
    return bool(removed)


def _owner(user_id: int | None):
    return col(Budget.user_id).is_(None) if user_id is None else col(Budget.user_id) == user_id


def _target(user_id: int | None) -> str:
    return "team" if user_id is None else f"user {user_id}"


def _check_admin(actor: Actor) -> None:
    if not actor.is_admin:
        raise PermissionDenied("Only admins can change budgets.")
