"""Budgets as admins manage them: setting and clearing them (in whole cents, or the minor units of
the display currency they are typed in; audited), and this month's spend by budget."""

from __future__ import annotations

from datetime import datetime
from decimal import ROUND_FLOOR, ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, select

from byok_core import audit
from byok_core.audit import AuditAction
from byok_core.budgets.lines import BudgetLine, month_of, month_spend, monthly_budgets, owned_by, usernames
from byok_core.clock import utcnow
from byok_core.currency import USD, Currency
from byok_core.errors import ValidationError
from byok_core.identity import Actor, Owner
from byok_core.models import Budget, Reservation, rowcount, table
from byok_core.runtime import Runtime

_R = table(Reservation)
MAX_BUDGET = Decimal("1e9")  # a budget is below a billion dollars a month (and so never infinite)


def spend_report(rt: Runtime, now: datetime | None = None) -> list[BudgetLine]:
    """This month's shared-key spend and open reservations: the team first, then every user with a
    budget, spend or a call in flight."""
    now = now or utcnow()
    with rt.engine.connect() as conn:
        spent = month_spend(conn, month_of(now))
        budgets = monthly_budgets(conn)
        names = usernames(conn)
        reserved = {uid: float(total) for uid, total in conn.execute(
            sa.select(_R.c.user_id, sa.func.sum(_R.c.amount_usd)).where(_R.c.expires_at > now)
            .group_by(_R.c.user_id))}
    team = Owner.team()
    users = {*(o.id for o in [*spent, *budgets] if not o.is_team), *(uid for uid in reserved if uid is not None)}
    return [BudgetLine(team, "team", budgets.get(team), spent.get(team, 0.0), sum(reserved.values())),
            *(BudgetLine(Owner.user(uid), names.get(uid, f"#{uid}"), budgets.get(Owner.user(uid)),
                         spent.get(Owner.user(uid), 0.0), reserved.get(uid, 0.0))
              for uid in sorted(users, key=lambda uid: names.get(uid, "")))]


def alerting(rt: Runtime, now: datetime | None = None) -> list[BudgetLine]:
    """The budgets at 80% or more this month, for the admins' banner."""
    return [line for line in spend_report(rt, now) if line.near]


def to_cents(amount: Any, currency: Currency = USD, what: str = "budget") -> float:
    """An amount of ``currency`` in whole cents (whole units of a currency without them, such as the
    yen), or ValidationError naming ``what`` ("budget", "cap")."""
    symbol, unit = currency.known.symbol or currency.code, Decimal(1).scaleb(-currency.minor)
    example = "25 or 12.50" if currency.minor else "2500"
    try:
        value = Decimal(str(amount).strip().removeprefix(currency.code).strip().lstrip(symbol).replace(",", ""))
    except InvalidOperation:
        raise ValidationError(f"A monthly {what} is an amount in {currency.code}, such as {example}.") from None
    if value.is_nan():
        raise ValidationError(f"A monthly {what} is an amount in {currency.code}, such as {example}.")
    if value < 0:
        raise ValidationError(f"A monthly {what} is an amount in {currency.code}, 0 or more.")
    limit = MAX_BUDGET * Decimal(repr(currency.per_usd))
    if value >= limit:
        largest = currency.fixed(float((limit - unit).quantize(unit, rounding=ROUND_FLOOR)), currency.minor)
        raise ValidationError(f"That {what} is too large: a monthly {what} is at most {largest}.")
    whole = value.quantize(unit, rounding=ROUND_HALF_UP)
    if value > 0 and whole == 0:  # 0.00 would refuse every shared-key call: the nearest budget that does not
        whole = unit
    if whole != value:
        units = "whole cents" if currency.minor else f"whole {currency.code}"
        instead = currency.fixed(float(whole), currency.minor)
        raise ValidationError(f"{what.capitalize()}s are in {units}: use {instead} instead of "
                              f"{currency.marked(str(value))}.")
    return float(whole) or 0.0  # never -0.0


def set_budget(rt: Runtime, actor: Actor, owner: Owner, monthly: Any, currency: Currency = USD) -> None:
    """Set a user's or the team's monthly budget, typed in ``currency`` (in its minor units) and kept
    in USD, converted at ``currency``'s rate (unrounded, so it reads back in that rate as typed;
    the audit event keeps both). Admins only."""
    actor.check_admin("change budgets")
    amount = to_cents(monthly, currency)
    usd = currency.to_usd(amount)
    typed = "" if currency.code == "USD" else f"{currency.fixed(amount, currency.minor)} at {currency.rate_text}"
    with Session(rt.engine) as session, session.begin():
        row = session.exec(select(Budget).where(owned_by(owner))).first() or Budget(
            owner_kind=owner.kind, owner_id=owner.id, monthly_usd=0)
        row.monthly_usd = usd
        session.add(row)
        audit.record(session, actor.name, AuditAction.BUDGET_SET, audit.Target(owner=owner), usd=usd, detail=typed)


def budget_of(rt: Runtime, owner: Owner) -> float | None:
    with rt.engine.connect() as conn:
        return monthly_budgets(conn, owner).get(owner)


def clear_budget(rt: Runtime, actor: Actor, owner: Owner) -> bool:
    """Remove a budget; returns whether there was one."""
    actor.check_admin("change budgets")
    with Session(rt.engine) as session, session.begin():
        removed = rowcount(session.execute(sa.delete(Budget).where(owned_by(owner))))
        if removed:
            audit.record(session, actor.name, AuditAction.BUDGET_CLEAR, audit.Target(owner=owner))
    return bool(removed)
