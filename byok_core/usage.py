"""The usage log: one row per provider call, chat or search, successful or not.

Every number shown about usage comes from SQL: one GROUP BY per filter at the grain of (UTC day,
provider, model, user, key source, status), whose size grows with the days and combinations, not
with the calls, and which pandas only sums further (``UsageSummary.by``); plus one page of rows.
Viewers are checked here, not in the UI: members see their own calls, admins the whole team."""

from __future__ import annotations

import csv
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, TextIO

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlmodel import col

from byok_core import words
from byok_core.errors import CallStatus
from byok_core.identity import Actor
from byok_core.models import UsageRecord, User, saved_id, table
from byok_core.record import CallRecord
from byok_core.runtime import Runtime

CSV_COLUMNS = ["timestamp", "user", "provider", "model", "key_source", "input_tokens", "output_tokens",
               "latency_ms", "status", "cost_usd",  # the documented columns, in this order; then additions:
               "cache_read_tokens", "cache_write_tokens", "reasoning_tokens"]
NO_USER = "(no user)"  # calls made from the CLI without --user
EXPORT_BATCH = 5_000
PG_AGGREGATE_WORK_MEM = "64MB"

_T = table(UsageRecord)


def _values(record: CallRecord) -> dict[str, object]:
    return dict(user_id=record.user_id, kind=record.provider.kind, provider=record.provider, model=record.model,
                key_source=record.key_source, input_tokens=record.input_tokens, output_tokens=record.output_tokens,
                cache_read_tokens=record.cache_read_tokens, cache_write_tokens=record.cache_write_tokens,
                reasoning_tokens=record.reasoning_tokens, latency_ms=record.latency_ms, status=record.status,
                cost_usd=record.cost_usd, error=record.error[:300] if record.error else None)


def start(conn: sa.Connection, record: CallRecord) -> int:
    """Log a call that is about to be made, as not finished (``CallStatus.PENDING``); its row id."""
    values = _values(record) | {"status": CallStatus.PENDING}
    [row_id] = conn.execute(sa.insert(_T).values(**values)).inserted_primary_key or (None,)
    return saved_id(row_id)


def complete(conn: sa.Connection, row_id: int, record: CallRecord) -> None:
    """Record how the call logged as ``row_id`` ended."""
    conn.execute(sa.update(UsageRecord).where(_T.c.id == row_id).values(**_values(record)))


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

DIMENSIONS = {
    "day": utc_day(_T.c.ts),
    "provider": _T.c.provider,
    "model": _T.c.model,
    "user": _T.c.user_id,
    "key_source": _T.c.key_source,
    "status": _T.c.status,
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
    """'$1.2345', '$1.2345 + 3 calls of unknown cost', or 'unknown (3 calls)'; never a made-up zero."""
    if cost_usd is None:
        return f"unknown ({unknown_cost_calls} calls)" if unknown_cost_calls else "$0.00"
    known = words.usd(cost_usd)
    if unknown_cost_calls:
        return f"{known} + {unknown_cost_calls} call{'s' * (unknown_cost_calls != 1)} of unknown cost"
    return known


def aggregate_query(viewer: Actor, flt: UsageFilter, *dims: str, dialect: str) -> sa.Select[Any]:
    """SELECT dims..., METRICS ... GROUP BY dims (in DIMENSIONS order, that of SQLite's ix_usage_cube)."""
    keys = [DIMENSIONS[d].label(d) for d in dims]
    where = flt.conditions(viewer, day_bounds=dialect == "sqlite")
    return sa.select(*keys, *_METRIC_COLUMNS).where(*where).group_by(*keys)


def breakdown(rt: Runtime, viewer: Actor, flt: UsageFilter, *dims: str) -> pd.DataFrame:
    """One row per value of ``dims`` (names from DIMENSIONS) with the METRICS, sorted by ``dims``.

    'day' comes back as a UTC datetime64 column, 'user' as the username (NO_USER for CLI calls)."""
    query = aggregate_query(viewer, flt, *dims, dialect=rt.engine.dialect.name)
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

    def values(self, dim: str) -> list[Any]:
        """The distinct values of one dimension, sorted: choices for the filter widgets."""
        return sorted(self.cube[dim].unique())

    @property
    def totals(self) -> Totals:
        cube = self.cube
        cost = cube["cost_usd"].sum(min_count=1)
        tokens = {name: int(cube[name].sum()) for name in TOKENS}
        return Totals(calls=int(cube["calls"].sum()), **tokens, cost_usd=None if pd.isna(cost) else float(cost),
                      unknown_cost_calls=int(cube["unknown_cost_calls"].sum()))


def data_version(rt: Runtime) -> tuple[int | None, int | None]:
    """(lowest id, highest id) of the log: changes whenever a call is logged or old calls are pruned.
    Two primary-key lookups, so a page can cache ``summary`` under it."""
    with rt.engine.connect() as conn:
        low, high = conn.execute(sa.select(sa.func.min(_T.c.id), sa.func.max(_T.c.id))).one()
    return low, high


def summary(rt: Runtime, viewer: Actor, flt: UsageFilter) -> UsageSummary:
    """Everything the usage page shows about a filter, from one GROUP BY query."""
    return UsageSummary(breakdown(rt, viewer, flt, *DIMENSIONS))


# --- rows --------------------------------------------------------------------------------------

_ROW_COLUMNS = [
    _T.c.ts.label("timestamp"), table(User).c.username.label("user"), _T.c.provider, _T.c.model,
    _T.c.key_source, _T.c.input_tokens, _T.c.output_tokens, _T.c.latency_ms, _T.c.status, _T.c.cost_usd,
    _T.c.cache_read_tokens, _T.c.cache_write_tokens, _T.c.reasoning_tokens,
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


_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: object) -> object:
    """A CSV cell a spreadsheet shows as text: empty for unknown, and text that could start a formula
    (``=``, ``+``, ``-``, ``@``, tab, CR; OWASP's CSV injection) behind a quote. Numbers stay numbers."""
    if value is None:
        return ""
    if isinstance(value, str) and value.startswith(_FORMULA_STARTS):
        return "'" + value
    return value


def write_csv(rt: Runtime, viewer: Actor, flt: UsageFilter, out: TextIO) -> int:
    """Write the filter's rows as CSV (unknown cost and tokens are empty cells); returns the row count."""
    writer = csv.writer(out, lineterminator="\r\n")  # RFC 4180; a CR inside a cell is then quoted too
    writer.writerow(CSV_COLUMNS)
    count = 0
    cost_at = CSV_COLUMNS.index("cost_usd")
    for row in iter_rows(rt, viewer, flt):
        cells = [_cell(v) for v in row]
        cells[0], cells[cost_at] = row[0].isoformat(), _plain_number(row[cost_at])
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
