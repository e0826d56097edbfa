"""Caps people set on their own keys: a monthly amount per provider (kept in USD, typed and shown
in the team's display currency, as budgets are) that their replies warn about
from 80% and, if they choose ``stop``, that no call may pass.

Held as shared budgets are (``ledger``): a call on a capped own key reserves its worst case before
it is made, in the transaction that logs it, after locking the cap's month row (a row lock on
PostgreSQL, the database's write lock on SQLite), so concurrent calls cannot pass the cap together;
it settles to what it counted (``CostBound.charge``) when its row is completed. A cap starts from
what the month's calls on that key have cost so far. A cap is its owner's business alone: only they
set, see or clear it, and admins are not alerted."""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime

import sqlalchemy as sa

from byok_core.budgets.admin import to_cents
from byok_core.budgets.ledger import RESERVATION_TTL
from byok_core.budgets.lines import WARN_AT, apart, month_of
from byok_core.clock import utcnow
from byok_core.currency import USD, Currency, money, shown
from byok_core.errors import BudgetExceeded, PermissionDenied
from byok_core.identity import Actor, KeySource
from byok_core.keys import CapTerms
from byok_core.models import OwnCapMonth, OwnCapReservation, OwnKeyCap, UsageRecord, rowcount, saved_id, table
from byok_core.pricing import CostBound
from byok_core.providers import Provider
from byok_core.record import CallRecord
from byok_core.runtime import Runtime

_C, _M, _R, _T = table(OwnKeyCap), table(OwnCapMonth), table(OwnCapReservation), table(UsageRecord)


@dataclass(frozen=True)
class Cap:
    """A cap on one own key, with this month's spend and the worst cases of its calls in flight."""

    id: int
    provider: Provider
    monthly_usd: float
    stop: bool
    spent_usd: float = 0.0
    reserved_usd: float = 0.0

    @property
    def used(self) -> float:
        return self.spent_usd / self.monthly_usd if self.monthly_usd else 1.0

    @property
    def near(self) -> bool:
        return self.used >= WARN_AT

    @property
    def left_usd(self) -> float:
        return max(0.0, self.monthly_usd - self.spent_usd - self.reserved_usd)

    def describe(self) -> str:
        """"Your cap on your own OpenAI key is 85% used ($17.00 of $20.00); calls stop at it."."""
        spent = (apart(self.spent_usd, self.monthly_usd, shown())[0] if self.spent_usd < self.monthly_usd
                 else money(self.spent_usd, whole=True))
        rule = "calls stop at it" if self.stop else "it only warns"
        return (f"Your cap on your own {self.provider.label} key is {self.used:.0%} used this month "
                f"({spent} of {money(self.monthly_usd, whole=True)}); {rule}.")

    def why_refused(self, bound: CostBound) -> str | None:
        """Why a call with worst case ``bound`` may not go ahead (None: it may)."""
        if not self.stop:
            return None
        fix = "raise the cap or let it only warn on the Keys page"
        if self.spent_usd >= self.monthly_usd:
            spent, cap = money(self.spent_usd, whole=True), money(self.monthly_usd, whole=True)
            return f"Your cap on your own {self.provider.label} key is reached ({spent} of {cap} this month); {fix}."
        if bound.usd is None:
            return (f"This model's price is unknown, so a call cannot be kept within your cap on your own "
                    f"{self.provider.label} key; pick another model, or {fix}.")
        if self.spent_usd + self.reserved_usd + bound.usd > self.monthly_usd:
            left, cost = apart(self.left_usd, bound.usd, shown())
            return (f"Your cap on your own {self.provider.label} key has {left} left of "
                    f"{money(self.monthly_usd, whole=True)} "
                    f"this month, and this call could cost up to {cost}; try a shorter conversation or a "
                    f"cheaper model, or {fix}.")
        return None


@dataclass(frozen=True)
class CapAdmission:
    """A call on a capped own key that may go ahead: its reservation (None: the cap only warns, or
    nothing to hold) and the cap as it was when the call was admitted."""

    reservation_id: int | None
    bound: CostBound
    month: str
    cap: Cap


def _month_start(month: str) -> datetime:
    return datetime.strptime(month, "%Y-%m").replace(tzinfo=UTC)


def _next_month(month: str) -> datetime:
    start = _month_start(month)
    return start.replace(year=start.year + start.month // 12, month=start.month % 12 + 1)


def _spent_so_far(conn: sa.Connection, user_id: int, provider: Provider, month: str) -> float:
    """What the month's calls on the person's own ``provider`` key have counted (or cost) so far."""
    counted = sa.func.coalesce(sa.func.sum(sa.func.coalesce(_T.c.charged_usd, _T.c.cost_usd)), 0.0)
    return float(conn.execute(sa.select(counted).where(
        _T.c.user_id == user_id, _T.c.provider == provider, _T.c.key_source == KeySource.USER,
        _T.c.ts >= _month_start(month), _T.c.ts < _next_month(month))).scalar_one())


def _add(conn: sa.Connection, cap_id: int, month: str, usd: float) -> float:
    """Add ``usd`` to the cap's month (its row made on the month's first call), locking that row
    until the transaction ends; the spend after."""
    insert = importlib.import_module(f"sqlalchemy.dialects.{conn.dialect.name}").insert(_M)  # with ON CONFLICT
    upsert = insert.on_conflict_do_update(index_elements=[_M.c.cap_id, _M.c.month],
                                          set_={"spent_usd": _M.c.spent_usd + insert.excluded.spent_usd})
    return float(conn.execute(upsert.values(cap_id=cap_id, month=month, spent_usd=usd)
                              .returning(_M.c.spent_usd)).scalar_one())


def _check_own(actor: Actor, user_id: int) -> None:
    if actor.user_id != user_id:
        raise PermissionDenied("Only the person whose key it is can set or clear a cap on it.")


def caps_of(rt: Runtime, user_id: int, now: datetime | None = None) -> dict[Provider, Cap]:
    """The person's caps, each with this month's spend and calls in flight: one statement."""
    now = now or utcnow()
    spent = sa.select(_M.c.spent_usd).where(_M.c.cap_id == _C.c.id, _M.c.month == month_of(now)).scalar_subquery()
    held = (sa.select(sa.func.coalesce(sa.func.sum(_R.c.amount_usd), 0.0))
            .where(_R.c.cap_id == _C.c.id, _R.c.expires_at > now).scalar_subquery())
    with rt.engine.connect() as conn:
        rows = conn.execute(sa.select(_C.c.id, _C.c.provider, _C.c.monthly_usd, _C.c.stop, spent, held)
                            .where(_C.c.user_id == user_id)).all()
    return {p: Cap(cid, p, usd, bool(stop), float(got or 0.0), float(h)) for cid, p, usd, stop, got, h in rows}


def set_cap(rt: Runtime, actor: Actor, user_id: int, provider: Provider, monthly: object, *,
            stop: bool, currency: Currency = USD) -> Cap:
    """Set the person's cap on their own ``provider`` key, typed in ``currency`` in its minor units
    (0 refuses every call with ``stop``) and kept in USD at its rate. Only that person may. A new cap
    starts from what the month's calls on the key cost."""
    _check_own(actor, user_id)
    usd = currency.to_usd(to_cents(monthly, currency, "cap"))
    now = utcnow()
    with rt.engine.begin() as conn:
        cap_id = conn.execute(sa.select(_C.c.id).where(_C.c.user_id == user_id, _C.c.provider == provider)).scalar()
        if cap_id is None:
            cap_id = saved_id(conn.execute(sa.insert(_C).values(
                user_id=user_id, provider=provider, monthly_usd=usd, stop=stop,
                created_at=now)).inserted_primary_key[0])  # type: ignore[index]
            _add(conn, cap_id, month_of(now), _spent_so_far(conn, user_id, provider, month_of(now)))
        else:
            conn.execute(sa.update(_C).where(_C.c.id == cap_id).values(monthly_usd=usd, stop=stop))
    return caps_of(rt, user_id, now)[provider]


def clear_cap(rt: Runtime, actor: Actor, user_id: int, provider: Provider) -> bool:
    """Remove the person's cap on their own ``provider`` key; whether there was one."""
    _check_own(actor, user_id)
    with rt.engine.begin() as conn:
        cap_id = conn.execute(sa.select(_C.c.id).where(_C.c.user_id == user_id, _C.c.provider == provider)).scalar()
        if cap_id is None:
            return False
        conn.execute(sa.delete(_R).where(_R.c.cap_id == cap_id))
        conn.execute(sa.delete(_M).where(_M.c.cap_id == cap_id))
        return bool(rowcount(conn.execute(sa.delete(_C).where(_C.c.id == cap_id))))


@contextmanager
def admitted(rt: Runtime, record: CallRecord, cap: CapTerms, bound: CostBound,
             now: datetime | None = None) -> Iterator[tuple[sa.Connection, CapAdmission]]:
    """Let a call on a capped own key go ahead, or refuse it (BudgetExceeded, nothing written), in
    one transaction that serializes per cap; yielded with the admission for the caller to log the
    call in before it commits."""
    now = now or utcnow()
    month, (cap_id, monthly_usd, stop) = month_of(now), cap
    if stop:
        bound.usd  # noqa: B018 - priced now (it may load the price table), not while the cap's row is locked
    with rt.engine.begin() as conn:
        spent = _add(conn, cap_id, month, 0.0)  # first: the lock
        held = float(conn.execute(sa.select(sa.func.coalesce(sa.func.sum(_R.c.amount_usd), 0.0))
                                  .where(_R.c.cap_id == cap_id, _R.c.expires_at > now)).scalar_one())
        line = Cap(cap_id, record.provider, monthly_usd, stop, spent, held)
        refusal = line.why_refused(bound)
        if refusal is not None:
            raise BudgetExceeded(refusal)
        reservation_id = None
        if stop and bound.usd:
            reservation_id = saved_id(conn.execute(sa.insert(_R).values(
                cap_id=cap_id, amount_usd=bound.usd, expires_at=now + RESERVATION_TTL)).inserted_primary_key[0])  # type: ignore[index]
        yield conn, CapAdmission(reservation_id, bound, month, line)


def settle(conn: sa.Connection, admission: CapAdmission, charge: float, now: datetime | None = None) -> Cap:
    """In the transaction that completes the call's row: drop its reservation (and any expired) and
    add ``charge`` to the cap's month; the cap as the call left it."""
    if admission.reservation_id is not None:
        expired = _R.c.expires_at <= (now or utcnow())
        conn.execute(sa.delete(_R).where((_R.c.id == admission.reservation_id) | expired))
    spent = _add(conn, admission.cap.id, admission.month, charge)
    return replace(admission.cap, spent_usd=spent)
