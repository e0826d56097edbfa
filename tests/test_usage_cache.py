"""The usage summary in two parts (settled days kept, the rest read again) equals the one-query summary
on a real database, whatever is logged, finished, dated late or pruned after the settled part was
computed; and the checks that decide whether it can be kept cost the same at any size."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pandas as pd
import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlmodel import Session
from test_usage import filter_strategy, row, rows_strategy, viewer_strategy

from byok_core import usage
from byok_core.identity import Actor
from byok_core.models import UsageRecord, User
from byok_core.usage import UsageFilter

START = datetime(2026, 3, 28, tzinfo=UTC)  # test_usage's rows span six days from here
BEFORE = START.date() + timedelta(days=4)  # so both parts hold days


@pytest.fixture
def people(rt):
    """test_usage's two members and an admin (ids 1, 2, 3, which its strategies use)."""
    with Session(rt.engine) as session, session.begin():
        session.add_all([User(username=name, password_hash="-", role=role)
                         for name, role in (("alice", "member"), ("bob", "member"), ("root", "admin"))])


def add(rt, rows: list[dict]) -> None:
    if rows:
        with rt.engine.begin() as conn:
            conn.execute(sa.insert(UsageRecord), rows)


def assert_same_cube(got: pd.DataFrame, want: pd.DataFrame) -> None:
    """Equal frames; costs to rounding (a late call's group is summed in two steps, not in one)."""
    if want.empty:
        assert got.empty
        return
    pd.testing.assert_frame_equal(got.reset_index(drop=True), want, check_exact=False, rtol=1e-12, atol=1e-12)


def test_settled_before_waits_an_hour_after_midnight():
    assert usage.settled_before(datetime(2026, 4, 2, 0, 59, tzinfo=UTC)) == date(2026, 4, 1)
    assert usage.settled_before(datetime(2026, 4, 2, 1, 0, tzinfo=UTC)) == date(2026, 4, 2)
    # an aware time in another zone is taken as the UTC moment it is
    assert usage.settled_before(datetime(2026, 4, 2, 0, 30, tzinfo=UTC).astimezone()) == date(2026, 4, 1)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(first=rows_strategy, then=rows_strategy, flt=filter_strategy, viewer=viewer_strategy,
       before=st.integers(0, 6).map(lambda d: START.date() + timedelta(days=d)))
def test_split_summary_equals_one_query(rt, people, first, then, flt, viewer, before):
    """``then`` is logged after the settled part was computed, at any date: today's calls and late
    ones dated in settled days alike."""
    with rt.engine.begin() as conn:
        conn.execute(sa.delete(UsageRecord))
    add(rt, first)
    settled = usage.settled_part(rt, viewer, flt, before)
    assert_same_cube(settled.cube, usage.breakdown(rt, viewer, flt, *usage.DIMENSIONS,
                                                   where=[usage._T.c.ts < usage.day_start(before)]))
    add(rt, then)
    assert_same_cube(usage.summary(rt, viewer, flt, settled).cube, usage.summary(rt, viewer, flt).cube)


def test_a_call_logged_or_finished_after_caching_is_counted(rt, people):
    admin, flt = Actor.operator(), UsageFilter(since=START.date())
    add(rt, [row(START + timedelta(days=d, hours=3), cost_usd=0.5) for d in range(5)])
    settled = usage.settled_part(rt, admin, flt, BEFORE)
    assert usage.summary(rt, admin, flt, settled).totals.calls == 5
    # a call that starts today (logged as not finished), then ends
    with rt.engine.begin() as conn:
        pending = conn.execute(sa.insert(UsageRecord).values(**row(usage.day_start(BEFORE) + timedelta(hours=5),
                                                                   status="pending", cost_usd=None)))
        row_id = pending.inserted_primary_key[0]
    mid = usage.summary(rt, admin, flt, settled)
    assert mid.by("status").set_index("status")["calls"].to_dict() == {"ok": 5, "pending": 1}
    with rt.engine.begin() as conn:
        conn.execute(sa.update(UsageRecord).where(usage._T.c.id == row_id).values(status="ok", cost_usd=0.25))
    done = usage.summary(rt, admin, flt, settled)
    assert (done.totals.calls, done.totals.cost_usd, done.values("status")) == (6, 2.75, ["ok"])
    # an import dated in a settled day joins that day's group
    add(rt, [row(START + timedelta(hours=9), cost_usd=1.0)])
    late = usage.summary(rt, admin, flt, settled)
    assert_same_cube(late.cube, usage.summary(rt, admin, flt).cube)
    assert late.by("day")["calls"].tolist() == [2, 1, 1, 1, 2]  # the last: BEFORE, with today's call


def test_pruning_changes_the_settled_key_and_logging_does_not(rt, people):
    now = usage.day_start(BEFORE) + timedelta(hours=12)
    add(rt, [row(START + timedelta(days=d)) for d in range(5)])
    key = usage.data_version(rt).settled_key(now)
    assert key[0] == BEFORE
    add(rt, [row(now - timedelta(minutes=1)), row(START + timedelta(days=1, hours=1))])  # today's, and a late one
    assert usage.data_version(rt).settled_key(now) == key
    assert usage.data_version(rt).high_id == usage.data_version(rt).low_id + 6
    usage.prune(rt, START.date() + timedelta(days=1))
    assert usage.data_version(rt).settled_key(now) != key
    assert usage.data_version(rt).settled_key(now + timedelta(days=1))[0] == BEFORE + timedelta(days=1)


def test_an_empty_log_has_a_version_and_an_empty_summary(rt, people):
    assert usage.data_version(rt) == usage.DataVersion(None, None, None)
    settled = usage.settled_part(rt, Actor.operator(), UsageFilter(), BEFORE)
    assert settled.last_id == 0 and settled.cube.empty
    assert usage.summary(rt, Actor.operator(), UsageFilter(), settled).totals.calls == 0


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=rows_strategy, flt=filter_strategy, viewer=viewer_strategy)
def test_narrowing_a_summary_equals_asking_sql(rt, people, rows, flt, viewer):
    """The page asks SQL for the window (days and users) and narrows the result to the rest."""
    with rt.engine.begin() as conn:
        conn.execute(sa.delete(UsageRecord))
    add(rt, rows)
    window = UsageFilter(since=flt.since, until=flt.until, user_ids=flt.user_ids)
    narrowed = usage.summary(rt, viewer, window).narrow(flt)
    assert_same_cube(narrowed.cube, usage.summary(rt, viewer, flt).cube)


def test_fingerprint_follows_the_contents(rt, people):
    add(rt, [row(START), row(START, provider="anthropic")])
    admin = Actor.operator()
    one, again = usage.summary(rt, admin, UsageFilter()), usage.summary(rt, admin, UsageFilter())
    assert one.fingerprint() == again.fingerprint()
    assert one.narrow(UsageFilter(providers=["openai"])).fingerprint() != one.fingerprint()
    add(rt, [row(START, cost_usd=0.5)])
    assert usage.summary(rt, admin, UsageFilter()).fingerprint() != one.fingerprint()


def test_data_version_reads_three_index_entries(rt):
    """Not a scan of the log: each end is its own lookup (SQLite scans for ``min(id), max(id)``)."""
    query = sa.select(usage._first(usage._T.c.id, sa.func.min), usage._first(usage._T.c.id, sa.func.max),
                      usage._first(usage._T.c.ts, sa.func.min))
    sql = str(query.compile(rt.engine))
    with rt.engine.connect() as conn:
        if rt.engine.dialect.name == "sqlite":
            steps = [str(step[3]) for step in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}")]
            assert not [s for s in steps if s.startswith("SCAN usage_records")], steps
            assert sum(s.startswith("SEARCH usage_records") for s in steps) == 3, steps
        else:
            conn.exec_driver_sql("SET LOCAL enable_seqscan = off")  # an empty table; no scan even then
            plan = "\n".join(r[0] for r in conn.exec_driver_sql(f"EXPLAIN {sql}"))
            assert plan.count("Limit") == 3 and "Aggregate" not in plan, plan


def test_late_calls_are_read_by_id_on_sqlite(sqlite_template, tmp_path, master_key):
    """The late part reads the rows logged since the settled part by id, not the window's days."""
    import shutil

    from byok_core.startup import open_runtime

    shutil.copyfile(sqlite_template, tmp_path / "plan.db")
    rt = open_runtime({"BYOK_DATA_DIR": str(tmp_path), "ENCRYPTION_KEY": master_key,
                       "DATABASE_URL": f"sqlite:///{tmp_path / 'plan.db'}"})
    flt = UsageFilter(since=START.date(), until=BEFORE)
    late = usage.aggregate_query(Actor.operator(), usage._days(flt, BEFORE, settled=True), *usage.DIMENSIONS,
                                 dialect="sqlite", rows=usage._logged_after(1000, "sqlite"))
    recent = usage.aggregate_query(Actor.operator(), usage._days(flt, BEFORE, settled=False), *usage.DIMENSIONS,
                                   dialect="sqlite")
    with rt.engine.connect() as conn:
        def plan(query):
            sql = str(query.compile(rt.engine, compile_kwargs={"literal_binds": True}))
            return " ".join(str(step) for step in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}"))
        assert "INTEGER PRIMARY KEY (rowid>?)" in plan(late), plan(late)
        assert "COVERING INDEX ix_usage_cube" in plan(recent) and "TEMP B-TREE" not in plan(recent)
    rt.engine.dispose()
