"""Reading budgets: the ones a user's shared-key calls count against, with this month's spend and
open reservations, and why a call would be refused."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

import sqlalchemy as sa
from sqlmodel import col

from byok_core.clock import utcnow
from byok_core.currency import USD, Currency, money, shown
from byok_core.identity import Owner, OwnerKind
from byok_core.models import Budget, BudgetMonth, Reservation, User, table, team_or_user
from byok_core.pricing import CostBound
from byok_core.runtime import Runtime

WARN_AT = 0.8
_M, _R = table(BudgetMonth), table(Reservation)


def month_of(now: datetime) -> str:
    """``now``'s calendar month in UTC, as the running figures key it: "2026-11"."""
    return now.astimezone(UTC).strftime("%Y-%m")


def counted_against(user_id: int | None) -> tuple[Owner, ...]:
    """The budgets a call by ``user_id`` counts against, team first (the order rows are locked in)."""
    return (Owner.team(),) if user_id is None else (Owner.team(), Owner.user(user_id))


def _whose(owner: Owner) -> str:
    return "The team's" if owner.is_team else "Your"


@dataclass(frozen=True)
class BudgetLine:
    """One budget (a user's or the team's) and this month's shared-key spend and open reservations."""

    owner: Owner
    name: str  # username, or "team"
    budget_usd: float | None  # None: no budget set
    spent_usd: float
    reserved_usd: float = 0.0

    @property
    def used(self) -> float | None:
        """Fraction of the budget spent (0 budget: fully used), or None without a budget."""
        if self.budget_usd is None:
            return None
        return self.spent_usd / self.budget_usd if self.budget_usd else 1.0

    @property
    def left_usd(self) -> float | None:
        """What is left to spend this month, reservations of calls in flight deducted."""
        if self.budget_usd is None:
            return None
        return max(0.0, self.budget_usd - self.spent_usd - self.reserved_usd)

    @property
    def exceeded(self) -> bool:
        return self.budget_usd is not None and self.spent_usd >= self.budget_usd

    @property
    def near(self) -> bool:
        return self.used is not None and self.used >= WARN_AT

    def describe(self) -> str:
        assert self.budget_usd is not None
        spent = (apart(self.spent_usd, self.budget_usd, shown())[0] if self.spent_usd < self.budget_usd
                 else money(self.spent_usd, whole=True))  # never "$0.04 of $0.04" for a budget not used up
        return (f"{_whose(self.owner)} monthly budget for shared keys is {self.used:.0%} used "
                f"({spent} of {money(self.budget_usd, whole=True)}).")


@dataclass(frozen=True)
class BudgetStatus:
    """The budgets that apply to someone's shared-key calls; ``warning`` is set from 80% on."""

    lines: tuple[BudgetLine, ...]

    @property
    def warning(self) -> str | None:
        near = [line.describe() for line in self.lines if line.near]
        return " ".join([*near, "Your own API keys are not limited."]) if near else None

    @property
    def left(self) -> str:
        """One sentence on what is left, for the pages' sidebars."""
        parts = [f"{'the team' if line.owner.is_team else 'you'}: {money(line.left_usd, whole=True)} of "
                 f"{money(line.budget_usd, whole=True)}" for line in self.lines if line.budget_usd is not None]
        return f"Left this month on shared keys ({'; '.join(parts)})."


def monthly_budgets(conn: sa.Connection, *owners: Owner) -> dict[Owner, float]:
    """The monthly budgets set for ``owners`` (all budgets when none are named)."""
    query = sa.select(col(Budget.owner_kind), col(Budget.owner_id), col(Budget.monthly_usd))
    if owners:
        query = query.where(sa.or_(*(owned_by(owner) for owner in owners)))
    return {Owner(kind, owner_id): usd for kind, owner_id, usd in conn.execute(query)}


def month_spend(conn: sa.Connection, month: str, owners: Iterable[Owner] | None = None) -> dict[Owner, float]:
    query = sa.select(_M.c.owner_kind, _M.c.owner_id, _M.c.spent_usd).where(_M.c.month == month)
    if owners is not None:
        query = query.where(sa.or_(*((_M.c.owner_kind == o.kind) & (_M.c.owner_id == o.id) for o in owners)))
    return {Owner(kind, owner_id): float(spent) for kind, owner_id, spent in conn.execute(query)}


# Built once (each page run and each admitted call asks): the team's and a person's budget rows with
# this month's spend and the open reservations against each.
_B = table(Budget)
_LINES = sa.select(
    _B.c.owner_kind, _B.c.owner_id, _B.c.monthly_usd,
    sa.select(_M.c.spent_usd).where(_M.c.owner_kind == _B.c.owner_kind, _M.c.owner_id == _B.c.owner_id,
                                    _M.c.month == sa.bindparam("month")).scalar_subquery(),
    sa.select(sa.func.coalesce(sa.func.sum(_R.c.amount_usd), 0.0))
    .where(_R.c.expires_at > sa.bindparam("now"),
           sa.or_(_B.c.owner_kind == OwnerKind.TEAM.value, _R.c.user_id == _B.c.owner_id)).scalar_subquery(),
).where(team_or_user(_B.c.owner_kind, _B.c.owner_id))


def lines_for(conn: sa.Connection, user_id: int | None, now: datetime) -> tuple[BudgetLine, ...]:
    """The budgets on ``user_id``'s shared-key calls with this month's spend and open reservations:
    one statement (a budget check is one round trip, whatever the size of the usage log)."""
    owners = counted_against(user_id)
    rows = conn.execute(_LINES, {"month": month_of(now), "now": now, "user_id": -1 if user_id is None else user_id})
    found = {Owner(OwnerKind(kind), oid): (usd, got, held) for kind, oid, usd, got, held in rows}
    return tuple(BudgetLine(o, "team" if o.is_team else "you", found[o][0], float(found[o][1] or 0.0),
                            float(found[o][2])) for o in owners if o in found)


def status(rt: Runtime, user_id: int | None, now: datetime | None = None) -> BudgetStatus | None:
    """The budgets that apply to ``user_id``'s shared-key calls, or None when none does."""
    with rt.engine.connect() as conn:
        lines = lines_for(conn, user_id, now or utcnow())
    return BudgetStatus(lines) if lines else None


def why_refused(lines: Iterable[BudgetLine], bound: CostBound | None) -> tuple[BudgetLine | None, str] | None:
    """Why a call must be refused, and the budget it would pass (None: its cost cannot be bounded)."""
    for line in lines:
        assert line.budget_usd is not None
        if line.exceeded:
            return line, (f"{_whose(line.owner)} monthly budget for shared (team or server) keys is used up "
                          f"({money(line.spent_usd, whole=True)} of {money(line.budget_usd, whole=True)}); your "
                          f"own API keys keep working, "
                          f"or ask an admin to raise the budget.")
        if bound is None:
            continue
        if bound.usd is None:
            return None, ("This model's price is unknown, so a call on a budgeted shared key cannot be kept within "
                          "the budget; pick another model, use your own API key, or ask an admin to set a per-call "
                          "price for it.")
        if line.spent_usd + line.reserved_usd + bound.usd > line.budget_usd:
            assert line.left_usd is not None
            left, cost = apart(line.left_usd, bound.usd, shown())
            return line, (f"{_whose(line.owner)} monthly budget for shared keys has {left} left of "
                          f"{money(line.budget_usd, whole=True)}, and this call could cost up to {cost}; try a "
                          f"shorter conversation or a cheaper model, use your own API key, or ask an admin to "
                          f"raise the budget.")
    return None


def apart(smaller_usd: float, larger_usd: float, cur: Currency = USD) -> tuple[str, str]:
    """Two amounts, the first less than the second, in ``cur``, with the fewest decimals (its minor
    units to 6) at which that still shows however they are rounded ("$0.0062" and "$0.0071", not
    "$0.01" and "$0.01"); past 6, the first rounded down and the second up."""
    smaller, larger = cur.from_usd(smaller_usd), cur.from_usd(larger_usd)
    for places in range(cur.minor, 7):
        step = Decimal(1).scaleb(-places)
        if Decimal(repr(smaller)).quantize(step, ROUND_CEILING) < Decimal(repr(larger)).quantize(step, ROUND_FLOOR):
            return cur.fixed(smaller, places), cur.fixed(larger, places)
    step = Decimal("0.000001")
    low, high = Decimal(repr(smaller)).quantize(step, ROUND_FLOOR), Decimal(repr(larger)).quantize(step, ROUND_CEILING)
    return cur.fixed(float(low), 6), cur.fixed(float(high), 6)


def usernames(conn: sa.Connection) -> dict[int, str]:
    """Every account's name by its id, for naming the budgets."""
    return {int(uid): str(name) for uid, name in conn.execute(sa.select(table(User).c.id, table(User).c.username))}


def owned_by(owner: Owner) -> sa.ColumnElement[bool]:
    """The condition that picks ``owner``'s budget row."""
    return (col(Budget.owner_kind) == owner.kind) & (col(Budget.owner_id) == owner.id)
