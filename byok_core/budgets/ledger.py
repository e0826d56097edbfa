"""The ledger: every shared-key call is reserved against its budgets before it is made and settled
after, so budgets hold under concurrency.

* ``admitted``, before the call, in one transaction that serializes per budget (its first
  statement locks the month's spend rows: a row lock on PostgreSQL, the database's write lock on
  SQLite, so it holds across processes and replicas): checks the rate limits (``limits``), refuses
  the call if this month's spend + open reservations + the call's worst case
  (``pricing.CostBound``) would pass a budget, else writes a reservation; the caller
  (``calls.metered``) logs the call in the same transaction.
* ``settle``, after it, in the transaction that completes the usage row: drops the reservation and
  adds what the call counts (``CostBound.charge``: its cost, or a bound where that is unknown) to
  the month's running spend (``BudgetMonth``), so a check reads a few rows, whatever the size of
  the usage log. The log stays the truth (each row's ``charged_usd``); ``reconcile`` rebuilds the
  running figures from it.
* A reservation whose process died expires after RESERVATION_TTL (and is removed when a later call settles).
* At 80% and 100% of a budget, one alert per budget and month (``alerts``)."""

from __future__ import annotations

import functools
import importlib
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

import sqlalchemy as sa

from byok_core import db, limits
from byok_core.budgets.lines import (
    BudgetLine,
    BudgetStatus,
    counted_against,
    lines_for,
    month_of,
    month_spend,
    monthly_budgets,
    usernames,
    why_refused,
)
from byok_core.clock import utcnow
from byok_core.errors import BudgetExceeded
from byok_core.identity import KeySource, Owner, OwnerKind
from byok_core.models import BudgetMonth, Reservation, UsageRecord, rowcount, saved_id, table
from byok_core.pricing import CostBound
from byok_core.record import CallRecord
from byok_core.runtime import Runtime

THRESHOLDS = (80, 100)  # percent of a budget at which admins are alerted, once per month each
RESERVATION_TTL = timedelta(minutes=15)
SHARED_SOURCES = [s for s in KeySource if s.shared]
_T, _M, _R = table(UsageRecord), table(BudgetMonth), table(Reservation)


@dataclass(frozen=True)
class Admission:
    """A shared-key call that may go ahead: its reservation, if a budget applies, and the budgets
    as they were when it was admitted."""

    reservation_id: int | None
    bound: CostBound
    month: str
    lines: tuple[BudgetLine, ...]


class _Refused(BudgetExceeded):
    def __init__(self, message: str, line: BudgetLine | None):
        super().__init__(message)
        self.line = line


@functools.cache
def _upsert(dialect: str) -> sa.Insert:
    """The month's spend rows, added to (made on the month's first call), for ``dialect``; built once."""
    insert = importlib.import_module(f"sqlalchemy.dialects.{dialect}").insert(_M)  # with ON CONFLICT
    upsert: sa.Insert = insert.on_conflict_do_update(
        index_elements=[_M.c.owner_kind, _M.c.owner_id, _M.c.month],
        set_={"spent_usd": _M.c.spent_usd + insert.excluded.spent_usd},
    ).returning(_M.c.owner_kind, _M.c.owner_id, _M.c.spent_usd)
    return upsert


def _add(conn: sa.Connection, owners: Iterable[Owner], month: str, usd: float) -> dict[Owner, float]:
    """Add ``usd`` to the owners' running spend this month (their rows made on the month's first
    call), in one statement that locks the rows in ``owners``' order until the transaction ends;
    the spend after, per owner."""
    rows = [{"owner_kind": o.kind.value, "owner_id": o.id, "month": month, "spent_usd": usd, "alerted": 0}
            for o in owners]  # sent as one INSERT … VALUES (…), (…) in this order (SQLAlchemy's insertmanyvalues)
    returned = conn.execute(_upsert(conn.dialect.name), rows)
    return {Owner(OwnerKind(kind), oid): float(spent) for kind, oid, spent in returned}


@contextmanager
def admitted(rt: Runtime, record: CallRecord, bound: CostBound,
             now: datetime | None = None) -> Iterator[tuple[sa.Connection, Admission]]:
    """Let a shared-key call go ahead, or refuse it, in one transaction that serializes per budget;
    it is yielded with the admission, for the caller to log the call in before it commits (so the
    rate limits count it). Raises BudgetExceeded (admins hear once a month that calls are being
    refused near the limit) or SharedKeyLimit, and then nothing is written."""
    now = now or utcnow()
    try:
        with rt.engine.begin() as conn:
            yield conn, admit(conn, record, bound, now)
    except _Refused as refused:
        _refused(rt, refused.line, now)
        raise BudgetExceeded(str(refused)) from None


def check(rt: Runtime, user_id: int | None, *calls: tuple[KeySource, CostBound | None],
          now: datetime | None = None) -> BudgetStatus | None:
    """A quick look before preparing calls, so a used-up budget is refused before anything starts.
    ``calls``: who pays for each call about to be made, and its worst case (None: not checked). None
    when every call is on an own key or no budget applies, else the BudgetStatus (one read for all
    the calls). Raises BudgetExceeded as ``admitted`` would, and like it lets the admins hear, once
    a month per budget, that calls are being refused near the limit (``admit`` decides, under its lock)."""
    bounds = [bound for source, bound in calls if source.shared]
    if not bounds:
        return None
    now = now or utcnow()
    with rt.engine.connect() as conn:
        lines = lines_for(conn, user_id, now)
    for bound in bounds:
        refusal = why_refused(lines, bound)
        if refusal is not None:
            _refused(rt, refusal[0], now)
            raise BudgetExceeded(refusal[1])
    return BudgetStatus(lines) if lines else None


def _refused(rt: Runtime, line: BudgetLine | None, now: datetime) -> None:
    """A call was refused for ``line``: from 80% on, that budget is at its limit (the 100% alert, once)."""
    if line is not None and line.near:
        _alert(rt, [line.owner], month_of(now), 100)


def admit(conn: sa.Connection, record: CallRecord, bound: CostBound, now: datetime) -> Admission:
    """In ``conn``'s transaction, as its first statement: lock the budgets the call counts against
    (on SQLite, its first write takes the database's write lock; on PostgreSQL, the month's spend
    rows are locked), check the rate limits and every budget (spend + open reservations + this
    call's worst case), and reserve the worst case. Raises BudgetExceeded or SharedKeyLimit."""
    month = month_of(now)
    _add(conn, counted_against(record.user_id), month, 0.0)
    limits.check_rate(conn, record.user_id, now)
    lines = lines_for(conn, record.user_id, now)
    refusal = why_refused(lines, bound)
    if refusal is not None:
        raise _Refused(refusal[1], refusal[0])
    reservation_id = None
    if lines and bound.usd:
        reservation_id = saved_id(conn.execute(sa.insert(_R).values(
            user_id=record.user_id, month=month, amount_usd=bound.usd,
            expires_at=now + RESERVATION_TTL)).inserted_primary_key[0])  # type: ignore[index]
    return Admission(reservation_id, bound, month, lines)


def settle(conn: sa.Connection, admission: Admission, record: CallRecord, charge: float,
           now: datetime | None = None) -> tuple[BudgetStatus, list[tuple[Owner, int]]]:
    """After the call, in the transaction that completes its usage row (with ``charge``, what the
    call counts against budgets: ``admission.bound.charge(record)``, worked out before that
    transaction, as pricing may load a price table): drop its reservation (and any that expired),
    and add the charge to the month's running spend. Returns the budgets as the call left them,
    and the (owner, threshold) alerts it crossed into, not yet announced."""
    if admission.reservation_id is not None:
        expired = _R.c.expires_at <= (now or utcnow())
        conn.execute(sa.delete(_R).where((_R.c.id == admission.reservation_id) | expired))
    spent = _add(conn, counted_against(record.user_id), admission.month, charge)
    lines = tuple(replace(line, spent_usd=spent[line.owner]) for line in admission.lines)
    crossed = []
    for line in lines:
        assert line.used is not None
        level = max((t for t in THRESHOLDS if line.used * 100 >= t), default=0)
        if level and _mark(conn, line.owner, admission.month, level):
            crossed.append((line.owner, level))
    return BudgetStatus(lines), crossed


def _mark(conn: sa.Connection, owner: Owner, month: str, level: int) -> bool:
    return bool(rowcount(conn.execute(
        sa.update(_M).where(_M.c.owner_kind == owner.kind, _M.c.owner_id == owner.id, _M.c.month == month,
                            _M.c.alerted < level).values(alerted=level))))


def _alert(rt: Runtime, owners: list[Owner], month: str, level: int) -> None:
    """Mark and announce that ``owners``' budgets reached ``level`` (a refusal means 100%)."""
    with rt.engine.begin() as conn:
        marked = [(owner, level) for owner in owners if _mark(conn, owner, month, level)]
    announce(rt, marked, month)


def announce(rt: Runtime, crossed: list[tuple[Owner, int]], month: str) -> None:
    """Send the alerts for newly crossed thresholds to the admins' webhook (in the background)."""
    if not crossed:
        return
    from byok_core import alerts  # the webhook sender; only loaded when there is something to send

    with rt.engine.connect() as conn:
        owners = [owner for owner, _ in crossed]
        budgets, spent = monthly_budgets(conn, *owners), month_spend(conn, month, owners)
        names = usernames(conn)
    for owner, level in crossed:
        name = None if owner.is_team else names.get(owner.id, f"User #{owner.id}")
        alerts.notify(rt, alerts.budget_reached(name, level, spent.get(owner, 0.0), budgets.get(owner, 0.0), month))


@dataclass(frozen=True)
class Drift:
    """A running monthly figure that did not match the usage log."""

    owner: Owner
    month: str
    recorded_usd: float
    logged_usd: float


def _month_sql(conn: sa.Connection) -> sa.ColumnElement[str]:
    if conn.dialect.name == "sqlite":
        return sa.func.substr(_T.c.ts, 1, 7)
    return sa.func.to_char(sa.func.timezone("UTC", _T.c.ts), "YYYY-MM")


def reconcile(rt: Runtime, *, fix: bool = True) -> list[Drift]:
    """Compare every running monthly figure with the usage log (the sum of ``charged_usd``), and
    with ``fix`` set them to the log's; returns the figures that differed by more than a micro-dollar."""
    with db.serialized(rt.engine) as conn:
        month = _month_sql(conn)
        charged = sa.func.coalesce(sa.func.sum(_T.c.charged_usd), 0.0)
        shared = _T.c.key_source.in_(SHARED_SOURCES)
        logged: dict[tuple[Owner, str], float] = {}
        for m, total in conn.execute(sa.select(month, charged).where(shared).group_by(month)):
            logged[(Owner.team(), m)] = float(total)
        for uid, m, total in conn.execute(sa.select(_T.c.user_id, month, charged)
                                          .where(shared, _T.c.user_id.is_not(None)).group_by(_T.c.user_id, month)):
            logged[(Owner.user(uid), m)] = float(total)
        recorded = {(Owner(OwnerKind(kind), oid), m): float(spent) for kind, oid, m, spent in conn.execute(
            sa.select(_M.c.owner_kind, _M.c.owner_id, _M.c.month, _M.c.spent_usd).with_for_update())}
        drifts = [Drift(owner, m, recorded.get((owner, m), 0.0), logged.get((owner, m), 0.0))
                  for owner, m in sorted({*logged, *recorded}, key=lambda k: (k[1], k[0].kind, k[0].id))
                  if abs(recorded.get((owner, m), 0.0) - logged.get((owner, m), 0.0)) > 1e-6]
        if fix:
            for d in drifts:
                _add(conn, [d.owner], d.month, 0.0)
                conn.execute(sa.update(_M).where(_M.c.owner_kind == d.owner.kind, _M.c.owner_id == d.owner.id,
                                                 _M.c.month == d.month).values(spent_usd=d.logged_usd))
    return drifts


def charge_abandoned(conn: sa.Connection, user_id: int | None, month: str, usd: float) -> None:
    """In ``conn``'s transaction: a shared-key call whose process died counts ``usd`` (its worst
    case) against its budgets, and one reservation it may have left of that amount is dropped."""
    left = conn.execute(sa.select(_R.c.id).where(
        _R.c.user_id.is_(None) if user_id is None else _R.c.user_id == user_id, _R.c.month == month,
        _R.c.amount_usd == usd).limit(1)).scalar()
    if left is not None:
        conn.execute(sa.delete(_R).where(_R.c.id == left))
    _add(conn, counted_against(user_id), month, usd)
