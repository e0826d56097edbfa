"""The usage log: one row per provider call, chat or search, successful or not.

Every number shown about usage comes from SQL: one GROUP BY per filter at the grain of (UTC day,
provider, model, user, key source, status), whose size grows with the days and combinations, not
with the calls, and which pandas only sums further (``UsageSummary.by``); plus one page of rows.
Viewers are checked here, not in the UI: members see their own calls, admins the whole team."""

from __future__ import annotations

import csv
import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from typing import Any, TextIO

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.util import ClauseAdapter
from sqlmodel import col

from byok_core.csvcells import cell
from byok_core.currency import money
from byok_core.identity import Actor, KeySource
from byok_core.models import UsageRecord, User, table
from byok_core.runtime import Runtime

CSV_COLUMNS = ["timestamp", "user", "provider", "model", "key_source", "input_tokens", "output_tokens",
               "latency_ms", "status", "cost_usd",  # the documented columns, in this order; then additions:
               "cache_read_tokens", "cache_write_tokens", "reasoning_tokens",
               "connection", "priced_usd"]  # an OpenAI-compatible call's connection; genai-prices' figure beside a
# cost the provider reported itself (OpenRouter)
NO_USER = "(no user)"  # calls made from the CLI without --user
EXPORT_BATCH = 5_000
PG_AGGREGATE_WORK_MEM = "64MB"

_T = table(UsageRecord)


# --- filters -----------------------------------------------------------------------------------


class utc_day(sa.sql.functions.FunctionElement[date]):
    """The UTC calendar day of a timestamp, as a date, on SQLite and PostgreSQL alike."""

    type = sa.Date()
    inherit_cache = True


@compiles(utc_day, "sqlite")
def _utc_day_sqlite(element: utc_day, compiler: SQLCompiler, **kw: Any) -> str:
    # SQLite stores UTCDateTime values as 'YYYY-MM-DD HH:MM:SS.ffffff' in UTC.
    return f"substr({compiler.process(element.clauses, **kw)}, 1, 10)"


@compiles(utc_day, "postgresql")
def _utc_day_postgresql(element: utc_day, compiler: SQLCompiler, **kw: Any) -> str:
    return f"CAST({compiler.process(element.clauses, **kw)} AT TIME ZONE 'UTC' AS DATE)"


def day_start(day: date) -> datetime:
    """Midnight UTC at the start of ``day``."""
    return datetime.combine(day, time(), tzinfo=UTC)


class Period(StrEnum):
    """The spans the usage page offers first; months are UTC calendar months, as budgets' are."""

    THIS_MONTH = "this_month"
    LAST_MONTH = "last_month"
    LAST_30_DAYS = "last_30_days"

    def days(self, today: date) -> tuple[date, date]:
        """The first and last UTC day of this period, as of ``today`` (both inclusive)."""
        first_of_month = today.replace(day=1)
        if self is Period.THIS_MONTH:
            return first_of_month, today
        if self is Period.LAST_MONTH:
            last = first_of_month - timedelta(days=1)
            return last.replace(day=1), last
        return today - timedelta(days=29), today


@dataclass(frozen=True)
class UsageFilter:
    """Which calls to look at. Dates are UTC days, both inclusive; an empty tuple means any."""

    since: date | None = None
    until: date | None = None
    providers: Sequence[str] = ()
    models: Sequence[str] = ()
    key_sources: Sequence[str] = ()
    statuses: Sequence[str] = ()
    user_ids: Sequence[int | None] = ()  # None selects calls made without a user (the CLI)

    def conditions(self, viewer: Actor, *, day_bounds: bool = False) -> list[sa.ColumnElement[bool]]:
        """WHERE clauses for this filter as seen by ``viewer``: members only ever get their own rows.

        ``day_bounds`` repeats the date bounds on the UTC day expression, which lets SQLite read
        ix_usage_cube for just those days (PostgreSQL estimates better with the timestamps alone)."""
        where: list[sa.ColumnElement[bool]] = []
        if not viewer.is_admin:
            where.append(_T.c.user_id == viewer.user_id if viewer.user_id is not None else sa.false())
        if self.since:
            where.append(_T.c.ts >= day_start(self.since))
        if self.until:
            where.append(_T.c.ts < day_start(self.until + timedelta(days=1)))
        if day_bounds:
            where += [DIMENSIONS["day"] >= self.since] if self.since else []
            where += [DIMENSIONS["day"] <= self.until] if self.until else []
        for column, values in ((_T.c.provider, self.providers), (_T.c.model, self.models),
                               (_T.c.key_source, self.key_sources), (_T.c.status, self.statuses)):
            if values:
                where.append(column.in_([str(v) for v in values]))
        if self.user_ids:
            ids = [i for i in self.user_ids if i is not None]
            either = [_T.c.user_id.in_(ids)] if ids else []
            if None in self.user_ids:
                either.append(_T.c.user_id.is_(None))
            where.append(sa.or_(*either))
        return where


# --- aggregates --------------------------------------------------------------------------------

DIMENSIONS: dict[str, sa.ColumnElement[Any]] = {
    "day": utc_day(_T.c.ts),
    # read as plain text: making an enum member of each value costs more than the query's own hashing
    "provider": sa.type_coerce(_T.c.provider, sa.String()),
    "model": _T.c.model,
    "user": _T.c.user_id,
    "key_source": sa.type_coerce(_T.c.key_source, sa.String()),
    "status": sa.type_coerce(_T.c.status, sa.String()),
}
TOKENS = ["input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens", "reasoning_tokens"]
METRICS = ["calls", *TOKENS, "cost_usd", "unknown_cost_calls"]
_METRIC_COLUMNS = [
    sa.func.count().label("calls"),
    *(sa.cast(sa.func.coalesce(sa.func.sum(_T.c[name]), 0), sa.BigInteger).label(name) for name in TOKENS),
    sa.func.sum(_T.c.cost_usd).label("cost_usd"),  # over known costs; NULL when none is known
    (sa.func.count() - sa.func.count(_T.c.cost_usd)).label("unknown_cost_calls"),
]


@dataclass(frozen=True)
class Totals:
    calls: int
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int
    reasoning_tokens: int
    cost_usd: float | None  # sum of the known costs; None when no call's cost is known
    unknown_cost_calls: int

    @property
    def cached_share(self) -> float | None:
        """The share of billed input read from the provider's cache (billed at a lower rate)."""
        return self.cache_read_tokens / self.input_tokens if self.input_tokens else None

    @property
    def cost_label(self) -> str:
        return cost_label(self.cost_usd, self.unknown_cost_calls)


def cost_label(cost_usd: float | None, unknown_cost_calls: int) -> str:
    """'$1.2345', '$1.2345 + 3 calls of unknown cost', or 'unknown (3 calls)'; never a made-up zero.
    In this run's currency (``currency.money``)."""
    if cost_usd is None:
        plural = "s" * (unknown_cost_calls != 1)
        return f"unknown ({unknown_cost_calls} call{plural})" if unknown_cost_calls else money(0.0)
    known = money(cost_usd)
    if unknown_cost_calls:
        return f"{known} + {unknown_cost_calls} call{'s' * (unknown_cost_calls != 1)} of unknown cost"
    return known


def aggregate_query(viewer: Actor, flt: UsageFilter, *dims: str, dialect: str,
                    where: Sequence[sa.ColumnElement[bool]] = (), rows: sa.Subquery | None = None) -> sa.Select[Any]:
    """SELECT dims..., METRICS ... GROUP BY dims (in DIMENSIONS order, that of SQLite's ix_usage_cube).

    ``where`` narrows the filter further; ``rows`` (a subquery of whole usage rows) takes the place
    of the table."""
    keys = [DIMENSIONS[d].label(d) for d in dims]
    conditions = flt.conditions(viewer, day_bounds=dialect == "sqlite")
    query = sa.select(*keys, *_METRIC_COLUMNS).where(*conditions, *where).group_by(*keys)
    return query if rows is None else ClauseAdapter(rows).traverse(query)


def breakdown(rt: Runtime, viewer: Actor, flt: UsageFilter, *dims: str,
              where: Sequence[sa.ColumnElement[bool]] = (), rows: sa.Subquery | None = None) -> pd.DataFrame:
    """One row per value of ``dims`` (names from DIMENSIONS) with the METRICS, sorted by ``dims``.

    'day' comes back as a UTC datetime64 column, 'user' as the username (NO_USER for CLI calls)."""
    query = aggregate_query(viewer, flt, *dims, dialect=rt.engine.dialect.name, where=where, rows=rows)
    with rt.engine.connect() as conn:
        if conn.dialect.name == "postgresql":  # room to hash-aggregate instead of sorting every row
            conn.exec_driver_sql(f"SET LOCAL work_mem = '{PG_AGGREGATE_WORK_MEM}'")
        frame = pd.DataFrame.from_records([tuple(r) for r in conn.execute(query).all()], columns=[*dims, *METRICS])
        if "user" in dims:
            names = {uid: name for uid, name in conn.execute(sa.select(col(User.id), col(User.username)))}
            frame["user"] = frame["user"].map(names).fillna(NO_USER)  # accounts are disabled, never deleted
    if "day" in dims:
        frame["day"] = pd.to_datetime(frame["day"])
    frame["cost_usd"] = frame["cost_usd"].astype("Float64")  # keeps unknown as <NA>, not 0
    return frame.sort_values(list(dims), ignore_index=True) if dims else frame


@dataclass(frozen=True)
class UsageSummary:
    """The filter's calls aggregated by SQL at the finest grain the page shows (one row per day,
    provider, model, user, key source and status); ``by`` rolls that small frame up further."""

    cube: pd.DataFrame

    def by(self, *dims: str) -> pd.DataFrame:
        """The METRICS per value of ``dims``, sorted by them."""
        grouped = self.cube.groupby(list(dims), as_index=False, sort=True)
        return grouped[METRICS].sum(min_count=1)  # min_count: a group of unknown costs stays <NA>

    def narrow(self, flt: UsageFilter) -> UsageSummary:
        """This summary for only ``flt``'s providers, models, key sources and statuses: the cube is
        grouped by each, so this equals asking SQL again (the filter's days and users are not applied)."""
        keep = pd.Series(True, index=self.cube.index)
        for dim, wanted in (("provider", flt.providers), ("model", flt.models), ("key_source", flt.key_sources),
                            ("status", flt.statuses)):
            if wanted:
                keep &= self.cube[dim].isin([str(v) for v in wanted])
        return self if keep.all() else UsageSummary(self.cube[keep].reset_index(drop=True))

    def fingerprint(self) -> str:
        """A digest of the cube's every value: what is drawn from it can be cached under this."""
        hashes = pd.util.hash_pandas_object(self.cube, index=False).to_numpy()
        return hashlib.blake2b(hashes.tobytes() + ",".join(self.cube.columns).encode(), digest_size=16).hexdigest()

    def values(self, dim: str) -> list[Any]:
        """The distinct values of one dimension, sorted: choices for the filter widgets."""
        return sorted(self.cube[dim].unique())

    @property
    def totals(self) -> Totals:
        return _totals(self.cube)

    def _shared(self) -> pd.Series[bool]:
        return self.cube["key_source"].isin([s.value for s in KeySource if s.shared])

    @property
    def own_and_shared(self) -> tuple[Totals, Totals]:
        """The totals of the calls paid by people's own keys, and of those paid by shared keys (the
        team's and the server's)."""
        shared = self._shared()
        return _totals(self.cube[~shared]), _totals(self.cube[shared])

    def shared_by_person(self) -> pd.DataFrame:
        """The METRICS of the shared-key calls per user (username, NO_USER for CLI calls), the highest
        known cost first (then the most calls; a person whose every call is of unknown cost last)."""
        shared = self.cube[self._shared()]
        frame = shared.groupby("user", as_index=False, sort=True)[METRICS].sum(min_count=1)
        return frame.sort_values(["cost_usd", "calls", "user"], ascending=[False, False, True],
                                 na_position="last", ignore_index=True)


def _totals(cube: pd.DataFrame) -> Totals:
    cost = cube["cost_usd"].sum(min_count=1)
    tokens = {name: int(cube[name].sum()) for name in TOKENS}
    return Totals(calls=int(cube["calls"].sum()), **tokens, cost_usd=None if pd.isna(cost) else float(cost),
                  unknown_cost_calls=int(cube["unknown_cost_calls"].sum()))


@dataclass(frozen=True)
class DataVersion:
    """The ends of the log: ``high_id`` changes whenever a call is logged; ``low_id`` and ``oldest``
    when the oldest calls are pruned (``prune`` deletes every call before a day, so any pruning moves
    ``oldest``)."""

    low_id: int | None
    high_id: int | None
    oldest: datetime | None

    def settled_key(self, now: datetime) -> tuple[date, int | None, datetime | None]:
        """What ``settled_part`` depends on as of ``now``: it changes when a day settles and when old calls
        are pruned, never when a call is logged."""
        return settled_before(now), self.low_id, self.oldest


def _first(column: sa.ColumnElement[Any], fn: Any) -> sa.ScalarSelect[Any]:
    return sa.select(fn(column)).scalar_subquery()


def data_version(rt: Runtime) -> DataVersion:
    """Three index lookups, whatever the log's size. Each end is its own scalar subquery: SQLite
    reads min() or max() from an index only when it is the statement's lone aggregate (``SELECT
    min(id), max(id)`` scans the whole log); PostgreSQL does either way."""
    query = sa.select(_first(_T.c.id, sa.func.min), _first(_T.c.id, sa.func.max), _first(_T.c.ts, sa.func.min))
    with rt.engine.connect() as conn:
        low, high, oldest = conn.execute(query).one()
    return DataVersion(low, high, oldest)


# --- settled days ------------------------------------------------------------------------------
#
# A summary is mostly days that are over. Their part of the cube (``settled_part``) can be kept as
# long as those days' calls stay as they are, and only the rest computed again on each look
# (``summary(..., settled=...)``), which costs what today's calls cost, not the window's. What can
# still change a settled day, and what covers it:
# * a call logged later but dated in a settled day (an import, a clock stepped back, a transaction
#   that committed late): calls with ids above the settled part's ``last_id`` are read again;
# * a call finishing (``complete`` updates its row): a day settles SETTLED_AFTER after it ends; a call
#   still running by then shows as not finished until the settled part expires (the page keeps it
#   an hour);
# * pruning deletes the oldest calls, which moves ``DataVersion.oldest`` and so ``settled_key``.

SETTLED_AFTER = timedelta(hours=1)


def settled_before(now: datetime) -> date:
    """The first UTC day that has not settled: today, once SETTLED_AFTER has passed since midnight."""
    return (now.astimezone(UTC) - SETTLED_AFTER).date()


@dataclass(frozen=True)
class Settled:
    """A filter's cube over its calls dated before the UTC day ``before`` with ids up to ``last_id``:
    the calls of the settled days that had been logged when it was computed."""

    before: date
    last_id: int
    cube: pd.DataFrame


def _days(flt: UsageFilter, before: date, settled: bool) -> UsageFilter:
    """``flt`` narrowed to the days before ``before`` (``settled``) or to the others. Narrowing the
    filter's own bounds, not adding conditions, gives SQLite one range of ix_usage_cube to read."""
    if settled:
        last = before - timedelta(days=1)
        return replace(flt, until=min(flt.until, last) if flt.until else last)
    return replace(flt, since=max(flt.since, before) if flt.since else before)


def _logged_after(last_id: int, dialect: str) -> sa.Subquery:
    """The rows with ids above ``last_id``, read by id. The LIMIT keeps SQLite from merging this into
    the aggregate around it, where it would read the window's days in ix_usage_cube instead."""
    rows = sa.select(_T).where(_T.c.id > last_id)
    return (rows.limit(-1) if dialect == "sqlite" else rows).subquery("logged_after")


def settled_part(rt: Runtime, viewer: Actor, flt: UsageFilter, before: date) -> Settled:
    """The part of ``summary(rt, viewer, flt)`` from the calls dated before ``before``, as logged now."""
    with rt.engine.connect() as conn:
        last_id = conn.execute(sa.select(sa.func.max(_T.c.id))).scalar() or 0
    cube = breakdown(rt, viewer, _days(flt, before, settled=True), *DIMENSIONS, where=[_T.c.id <= last_id])
    return Settled(before, last_id, cube)


def _combine(settled: pd.DataFrame, late: pd.DataFrame, recent: pd.DataFrame) -> pd.DataFrame:
    """The cube of the three parts: the settled days, then the recent ones (each part is sorted, and
    its days come first), with the groups of calls that came late summed in."""
    cube = pd.concat([settled, recent], ignore_index=True) if not (settled.empty or recent.empty) else (
        recent if settled.empty else settled)
    if late.empty:
        return cube
    both = pd.concat([cube, late], ignore_index=True) if not cube.empty else late
    return both.groupby(list(DIMENSIONS), as_index=False, sort=True)[METRICS].sum(min_count=1)


def summary(rt: Runtime, viewer: Actor, flt: UsageFilter, settled: Settled | None = None) -> UsageSummary:
    """Everything the usage page shows about a filter, from one GROUP BY query; given the filter's
    ``settled`` part (``settled_part``, computed earlier), from the calls logged or dated after it."""
    if settled is None:
        return UsageSummary(breakdown(rt, viewer, flt, *DIMENSIONS))
    recent = breakdown(rt, viewer, _days(flt, settled.before, settled=False), *DIMENSIONS)
    late = breakdown(rt, viewer, _days(flt, settled.before, settled=True), *DIMENSIONS,
                     rows=_logged_after(settled.last_id, rt.engine.dialect.name))
    return UsageSummary(_combine(settled.cube, late, recent))


# --- rows --------------------------------------------------------------------------------------

_ROW_COLUMNS = [
    _T.c.ts.label("timestamp"), table(User).c.username.label("user"), _T.c.provider, _T.c.model,
    _T.c.key_source, _T.c.input_tokens, _T.c.output_tokens, _T.c.latency_ms, _T.c.status, _T.c.cost_usd,
    _T.c.cache_read_tokens, _T.c.cache_write_tokens, _T.c.reasoning_tokens, _T.c.connection, _T.c.priced_usd,
]


def _rows_query(viewer: Actor, flt: UsageFilter) -> sa.Select[Any]:
    users = table(User)
    return (sa.select(*_ROW_COLUMNS).select_from(_T.outerjoin(users, users.c.id == _T.c.user_id))
            .where(*flt.conditions(viewer)))


def page(rt: Runtime, viewer: Actor, flt: UsageFilter, *, number: int = 1, size: int = 50) -> pd.DataFrame:
    """Rows ``(number-1)*size`` .. ``number*size`` of the filter, newest first, with CSV_COLUMNS."""
    query = (_rows_query(viewer, flt).order_by(_T.c.ts.desc(), _T.c.id.desc())
             .limit(size).offset(max(number - 1, 0) * size))
    with rt.engine.connect() as conn:
        frame = pd.DataFrame.from_records([tuple(r) for r in conn.execute(query).all()], columns=CSV_COLUMNS)
    frame["cost_usd"] = frame["cost_usd"].astype("Float64")
    return frame


def iter_rows(rt: Runtime, viewer: Actor, flt: UsageFilter,
              batch: int = EXPORT_BATCH) -> Iterator[sa.Row[Any]]:
    """Every row of the filter, oldest first, fetched ``batch`` rows at a time (server-side cursor)."""
    query = _rows_query(viewer, flt).order_by(_T.c.ts, _T.c.id)
    with rt.engine.connect() as conn:
        result = conn.execution_options(stream_results=True, yield_per=batch).execute(query)
        for rows in result.partitions():
            yield from rows


def _plain_number(value: float | None) -> str:
    """A cost as spreadsheets and people read it (0.0000114, not 1.14e-05); empty when unknown."""
    return "" if value is None else f"{value:.10f}".rstrip("0").rstrip(".") or "0"


def write_csv(rt: Runtime, viewer: Actor, flt: UsageFilter, out: TextIO) -> int:
    """Write the filter's rows as CSV (unknown cost and tokens are empty cells); returns the row count."""
    writer = csv.writer(out, lineterminator="\r\n")  # RFC 4180; a CR inside a cell is then quoted too
    writer.writerow(CSV_COLUMNS)
    count = 0
    cost_at, priced_at = CSV_COLUMNS.index("cost_usd"), CSV_COLUMNS.index("priced_usd")
    for row in iter_rows(rt, viewer, flt):
        cells = [cell(v) for v in row]
        cells[0], cells[cost_at], cells[priced_at] = (row[0].isoformat(), _plain_number(row[cost_at]),
                                                      _plain_number(row[priced_at]))
        writer.writerow(cells)
        count += 1
    return count


# --- retention ---------------------------------------------------------------------------------


def prune(rt: Runtime, before: date, *, dry_run: bool = False) -> int:
    """Delete every call logged before ``before`` (midnight UTC); returns how many (would) go."""
    where = _T.c.ts < day_start(before)
    with rt.engine.begin() as conn:
        if dry_run:
            return conn.execute(sa.select(sa.func.count()).where(where)).scalar_one()
        return conn.execute(sa.delete(_T).where(where)).rowcount
