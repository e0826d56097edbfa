"""Usage aggregates, viewer rule, pagination, CSV export and pruning on a real database."""

from __future__ import annotations

import csv
import io
import math
import shutil
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta, timezone

import pandas as pd
import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlmodel import Session

from byok_core import currency, usage
from byok_core.keys import Actor
from byok_core.models import KeySource, UsageRecord, User
from byok_core.providers import Provider
from byok_core.startup import open_runtime
from byok_core.usage import UsageFilter

START = datetime(2026, 3, 28, tzinfo=UTC)  # spans a month end and the DST change in Europe
DAYS = 6


@pytest.fixture
def people(rt):
    """Two members and an admin; ids are fixed per database, so the strategies can refer to them."""
    made = [User(username=name, password_hash="-", role=role)
            for name, role in (("alice", "member"), ("bob", "member"), ("root", "admin"))]
    with Session(rt.engine, expire_on_commit=False) as session, session.begin():
        session.add_all(made)
    return made


def insert(rt, rows: list[dict]) -> None:
    """Bulk insert (one executemany), replacing whatever the table held."""
    with rt.engine.begin() as conn:
        conn.execute(sa.delete(UsageRecord))
        if rows:
            conn.execute(sa.insert(UsageRecord), rows)


def row(ts, user_id=None, provider="openai", model="gpt-4o", key_source="user", input_tokens=10,
        output_tokens=5, latency_ms=100, status="ok", cost_usd=0.25) -> dict:
    return dict(ts=ts, user_id=user_id, kind=Provider(provider).kind.value, provider=provider, model=model,
                key_source=key_source, input_tokens=input_tokens, output_tokens=output_tokens,
                latency_ms=latency_ms, status=status, cost_usd=cost_usd)


rows_strategy = st.lists(st.fixed_dictionaries({
    "ts": st.integers(0, DAYS * 86400 - 1).map(lambda s: START + timedelta(seconds=s)),
    "user_id": st.sampled_from([None, 1, 2, 3]),
    "provider": st.sampled_from(["openai", "anthropic", "brave"]),
    "model": st.sampled_from(["", "m-1", "m-2"]),
    "key_source": st.sampled_from([s.value for s in KeySource]),
    "input_tokens": st.none() | st.integers(0, 10_000),
    "output_tokens": st.none() | st.integers(0, 10_000),
    "status": st.sampled_from(["ok", "timeout", "rate_limited"]),
    "cost_usd": st.none() | st.floats(0, 5, allow_nan=False).map(lambda v: round(v, 6)),
}).map(lambda d: row(**d)), max_size=60)

filter_strategy = st.builds(
    UsageFilter,
    since=st.none() | st.integers(0, DAYS).map(lambda d: START.date() + timedelta(days=d)),
    until=st.none() | st.integers(0, DAYS).map(lambda d: START.date() + timedelta(days=d)),
    providers=st.lists(st.sampled_from(["openai", "anthropic", "brave"]), unique=True, max_size=2),
    models=st.lists(st.sampled_from(["", "m-1"]), unique=True, max_size=1),
    key_sources=st.lists(st.sampled_from(["user", "team", "env"]), unique=True, max_size=2),
    statuses=st.lists(st.sampled_from(["ok", "timeout"]), unique=True, max_size=1),
    user_ids=st.lists(st.sampled_from([None, 1, 2]), unique=True, max_size=2),
)
viewer_strategy = st.sampled_from([Actor("root", 3, True), Actor("alice", 1, False), Actor("bob", 2, False)])


def visible(rows, viewer: Actor, flt: UsageFilter) -> list[dict]:
    """The filter and the viewer rule in plain Python."""
    def keep(r):
        day = r["ts"].astimezone(UTC).date()
        return ((viewer.is_admin or r["user_id"] == viewer.user_id)
                and (flt.since is None or day >= flt.since) and (flt.until is None or day <= flt.until)
                and all(not wanted or r[name] in wanted for name, wanted in (
                    ("provider", flt.providers), ("model", flt.models), ("key_source", flt.key_sources),
                    ("status", flt.statuses), ("user_id", flt.user_ids))))
    return [r for r in rows if keep(r)]


NAMES = {None: usage.NO_USER, 1: "alice", 2: "bob", 3: "root"}
KEYS = {"day": lambda r: r["ts"].astimezone(UTC).date(), "provider": lambda r: r["provider"],
        "model": lambda r: r["model"], "user": lambda r: NAMES[r["user_id"]],
        "key_source": lambda r: r["key_source"], "status": lambda r: r["status"]}


def expected(rows, dims) -> dict[tuple, tuple]:
    """calls, tokens, known cost (None if none known) and unknown count per group, in plain Python."""
    groups = defaultdict(list)
    for r in rows:
        groups[tuple(KEYS[d](r) for d in dims)].append(r)
    out = {}
    for key, members in groups.items():
        known = [r["cost_usd"] for r in members if r["cost_usd"] is not None]
        out[key] = (len(members), sum(r["input_tokens"] or 0 for r in members),
                    sum(r["output_tokens"] or 0 for r in members), math.fsum(known) if known else None,
                    len(members) - len(known))
    return out


def actual(frame, dims) -> dict[tuple, tuple]:
    out = {}
    for rec in frame.to_dict("records"):
        key = tuple(rec[d].date() if d == "day" else rec[d] for d in dims)
        cost = None if rec["cost_usd"] is pd.NA else rec["cost_usd"]
        out[key] = (rec["calls"], rec["input_tokens"], rec["output_tokens"], cost, rec["unknown_cost_calls"])
    return out


def assert_same(got: dict, want: dict) -> None:
    assert got.keys() == want.keys()
    for key, (calls, tin, tout, cost, unknown) in want.items():
        g = got[key]
        assert g[:3] == (calls, tin, tout) and g[4] == unknown, key
        assert (g[3] is None) == (cost is None), key  # unknown stays unknown, never zero
        if cost is not None:
            assert g[3] == pytest.approx(cost, abs=1e-9), key


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=rows_strategy, flt=filter_strategy, viewer=viewer_strategy)
def test_aggregates_equal_plain_python(rt, people, rows, flt, viewer):
    insert(rt, rows)
    want_rows = visible(rows, viewer, flt)
    summary = usage.summary(rt, viewer, flt)

    totals = summary.totals
    want_total = expected(want_rows, ()).get((), (0, 0, 0, None, 0))
    assert_same({(): (totals.calls, totals.input_tokens, totals.output_tokens, totals.cost_usd,
                      totals.unknown_cost_calls)}, {(): want_total})
    for dims in [*([d] for d in usage.DIMENSIONS), ["day", "provider"]]:
        assert_same(actual(summary.by(*dims), dims), expected(want_rows, dims))
    assert_same(actual(usage.breakdown(rt, viewer, flt, "model", "status"), ["model", "status"]),
                expected(want_rows, ["model", "status"]))


def test_days_are_utc_whatever_the_session_time_zone(rt, people):
    if rt.engine.dialect.name == "postgresql":  # a far-off session zone must not shift the buckets
        sa.event.listen(rt.engine, "connect", lambda conn, _: conn.execute("SET TIME ZONE 'Pacific/Kiritimati'"))
        rt.engine.dispose()
    plus2 = timezone(timedelta(hours=2))
    insert(rt, [row(datetime(2026, 3, 30, 23, 59, 59, tzinfo=UTC)),
                row(datetime(2026, 3, 31, 0, 0, 0, tzinfo=UTC)),
                row(datetime(2026, 3, 31, 1, 30, tzinfo=plus2))])  # 23:30 UTC on the 30th
    by_day = usage.summary(rt, Actor.operator(), UsageFilter()).by("day")
    assert [(d.date(), n) for d, n in zip(by_day["day"], by_day["calls"], strict=False)] == [(date(2026, 3, 30), 2),
                                                                              (date(2026, 3, 31), 1)]
    only_31st = usage.summary(rt, Actor.operator(), UsageFilter(since=date(2026, 3, 31), until=date(2026, 3, 31)))
    assert only_31st.totals.calls == 1


def test_members_never_see_other_peoples_rows(rt, people):
    alice, bob, root = (Actor.of(u) for u in people)
    insert(rt, [row(START, alice.user_id, cost_usd=1.0), row(START, bob.user_id, cost_usd=2.0),
                row(START, None, cost_usd=4.0)])
    asking_for_bob = UsageFilter(user_ids=[bob.user_id, None])
    assert usage.summary(rt, alice, asking_for_bob).totals.calls == 0
    assert usage.summary(rt, alice, UsageFilter()).totals.cost_usd == 1.0
    assert list(usage.page(rt, alice, UsageFilter())["user"]) == ["alice"]
    assert [r[1] for r in usage.iter_rows(rt, alice, UsageFilter())] == ["alice"]
    assert usage.summary(rt, alice, UsageFilter()).values("user") == ["alice"]
    assert usage.summary(rt, Actor("ghost", None, False), UsageFilter()).totals.calls == 0
    assert usage.summary(rt, root, UsageFilter()).totals.cost_usd == 7.0


def test_unknown_costs_are_counted_not_zeroed(rt, people):
    insert(rt, [row(START, cost_usd=None), row(START, cost_usd=None, provider="brave", model=""),
                row(START, cost_usd=0.5)])
    summary = usage.summary(rt, Actor.operator(), UsageFilter())
    assert (summary.totals.cost_usd, summary.totals.unknown_cost_calls) == (0.5, 2)
    assert summary.totals.cost_label == "$0.5000 + 2 calls of unknown cost"
    brave = summary.by("provider").set_index("provider").loc["brave"]
    assert brave["cost_usd"] is pd.NA and brave["unknown_cost_calls"] == 1
    assert usage.cost_label(None, 3) == "unknown (3 calls)" and usage.cost_label(None, 1) == "unknown (1 call)"
    # money that was spent never reads as nothing: a tiny total keeps its digits
    assert usage.cost_label(0.000005, 0) == "$0.000005" and usage.cost_label(0.0000114, 1).startswith("$0.0000114 +")


def test_pages_are_newest_first_and_complete(rt, people):
    insert(rt, [row(START + timedelta(minutes=i), latency_ms=i) for i in range(7)])
    admin = Actor.operator()
    pages = [usage.page(rt, admin, UsageFilter(), number=n, size=3) for n in (1, 2, 3, 4)]
    assert [list(p["latency_ms"]) for p in pages] == [[6, 5, 4], [3, 2, 1], [0], []]
    assert list(pages[0].columns) == usage.CSV_COLUMNS


def test_csv_export_columns_and_values(rt, people):
    alice = people[0]
    insert(rt, [row(datetime(2026, 4, 1, 12, 0, 1, tzinfo=UTC), alice.id, "anthropic", "claude-x", "team",
                    1200, 345, 678, "ok", 0.0123),
                row(datetime(2026, 4, 1, 12, 0, 2, tzinfo=UTC), None, "brave", "", "env", None, None, 90,
                    "rate_limited", None),
                row(datetime(2026, 4, 1, 12, 0, 3, tzinfo=UTC), alice.id, "openai", "gpt-4o-mini", "user", 10, 5,
                    12, "ok", 0.0000114)])
    out = io.StringIO()
    assert usage.write_csv(rt, Actor.operator(), UsageFilter(), out) == 3
    lines = out.getvalue().splitlines()
    # the documented columns in their order, then the billed breakdown appended
    assert lines[0] == ("timestamp,user,provider,model,key_source,input_tokens,output_tokens,latency_ms,status,"
                        "cost_usd,cache_read_tokens,cache_write_tokens,reasoning_tokens,connection,priced_usd")
    assert list(csv.reader(lines[1:])) == [
        ["2026-04-01T12:00:01+00:00", "alice", "anthropic", "claude-x", "team", "1200", "345", "678", "ok", "0.0123",
         "", "", "", "", ""],
        ["2026-04-01T12:00:02+00:00", "", "brave", "", "env", "", "", "90", "rate_limited", "", "", "", "", "", ""],
        ["2026-04-01T12:00:03+00:00", "alice", "openai", "gpt-4o-mini", "user", "10", "5", "12", "ok", "0.0000114",
         "", "", "", "", ""],
    ]
    with rt.engine.begin() as conn:  # a connection's call with the provider's own bill: its name, and the figures
        conn.execute(sa.update(UsageRecord).where(UsageRecord.provider == "openai").values(
            provider="openai-compatible", connection="Router, team", cost_usd=0.0012345, priced_usd=0.00000075))
    out = io.StringIO()
    usage.write_csv(rt, Actor.operator(), UsageFilter(), out)
    assert list(csv.reader(out.getvalue().splitlines()))[3][-7:] == [
        "ok", "0.0012345", "", "", "", "Router, team", "0.00000075"]


def test_export_streams_in_batches(rt, people):
    insert(rt, [row(START + timedelta(seconds=i), latency_ms=i) for i in range(25)])
    rows = usage.iter_rows(rt, Actor.operator(), UsageFilter(), batch=4)
    assert [r[7] for r in rows] == list(range(25))  # oldest first, every row once


@pytest.mark.parametrize("dry_run", [True, False])
def test_prune_removes_only_what_it_says(rt, people, dry_run):
    cut = date(2026, 3, 30)
    insert(rt, [row(usage.day_start(cut) - timedelta(microseconds=1)), row(START),
                row(usage.day_start(cut)), row(usage.day_start(cut) + timedelta(days=1))])
    assert usage.prune(rt, cut, dry_run=dry_run) == 2
    left = usage.summary(rt, Actor.operator(), UsageFilter()).totals.calls
    assert left == (4 if dry_run else 2)
    assert usage.prune(rt, cut, dry_run=dry_run) == (2 if dry_run else 0)


def test_sqlite_aggregates_from_the_covering_index_without_sorting(sqlite_template, tmp_path, master_key):
    """SQLite only (ix_usage_cube is SQLite's; PostgreSQL hash-aggregates), so not parametrized."""
    shutil.copyfile(sqlite_template, tmp_path / "plan.db")
    rt = open_runtime({"BYOK_DATA_DIR": str(tmp_path), "ENCRYPTION_KEY": master_key,
                       "DATABASE_URL": f"sqlite:///{tmp_path / 'plan.db'}"})
    query = usage.aggregate_query(Actor.operator(), UsageFilter(since=START.date(), until=START.date()),
                                  *usage.DIMENSIONS, dialect="sqlite")
    sql = str(query.compile(rt.engine, compile_kwargs={"literal_binds": True}))
    with rt.engine.connect() as conn:
        plan = " ".join(str(step) for step in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}"))
    assert "COVERING INDEX ix_usage_cube" in plan and "TEMP B-TREE" not in plan, plan


@pytest.mark.parametrize(("period", "today", "days"), [
    (usage.Period.THIS_MONTH, date(2026, 3, 1), (date(2026, 3, 1), date(2026, 3, 1))),
    (usage.Period.THIS_MONTH, date(2026, 3, 31), (date(2026, 3, 1), date(2026, 3, 31))),
    (usage.Period.LAST_MONTH, date(2026, 3, 31), (date(2026, 2, 1), date(2026, 2, 28))),
    (usage.Period.LAST_MONTH, date(2026, 1, 15), (date(2025, 12, 1), date(2025, 12, 31))),
    (usage.Period.LAST_30_DAYS, date(2026, 3, 1), (date(2026, 1, 31), date(2026, 3, 1))),
])
def test_periods_are_utc_calendar_months_or_thirty_days(period, today, days):
    assert period.days(today) == days


@pytest.mark.parametrize(("amount", "shown"), [
    (None, "unknown"), (0.0, "$0.00"), (0.000013, "$0.000013"), (0.0000131234, "$0.0000131"),
    (4.2e-7, "$0.00000042"), (0.00999, "$0.00999"), (0.01, "$0.0100"), (2.75, "$2.7500"), (1234.56789, "$1,234.5679"),
    (-0.0005, "-$0.0005"),
])
def test_money_keeps_the_digits_of_small_costs(amount, shown):
    assert currency.money(amount) == shown
