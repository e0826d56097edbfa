"""Usage page at scale: seed N usage rows, then time the page's SQL aggregation against a naive
load-everything-into-pandas approach, on a fresh SQLite file and a fresh PostgreSQL schema; then
what a look at the page costs after a call is logged: with the settled days cached (the page's way)
and without (the whole window summed again), and the data-version check that decides it.

    python bench/usage.py --rows 1000000 [--pg postgresql://postgres@127.0.0.1:5432/test | --no-pg]

Peak memory is measured with tracemalloc (Python and NumPy allocations, in a separate run from
the timing, as tracemalloc slows code down); the process's peak RSS (getrusage) is printed at the end.
"""

from __future__ import annotations

import argparse
import pickle
import random
import resource
import sys
import tempfile
import time
import tracemalloc
import uuid
from datetime import timedelta
from pathlib import Path

import pandas as pd
import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from byok_core import db, usage, usage_log
from byok_core.clock import utcnow
from byok_core.crypto import gen_key
from byok_core.identity import Actor, KeySource
from byok_core.models import UsageRecord, User
from byok_core.providers import Provider
from byok_core.record import CallRecord
from byok_core.startup import open_runtime

DAYS = 90
WINDOW_DAYS = 30
USERS = 8
MODELS = {  # provider -> models (empty model for searches)
    "openai": ["gpt-4o", "gpt-4o-mini", "gpt-4.1"],
    "anthropic": ["claude-sonnet-4-5", "claude-haiku-4-5"],
    "google": ["gemini-2.5-flash", "gemini-2.5-pro"],
    "openai-compatible": ["llama-3.3-70b"],
    "brave": [""],
    "tavily": [""],
}
COLUMNS = ["ts", "user_id", "kind", "provider", "model", "key_source", "input_tokens", "output_tokens",
           "latency_ms", "status", "cost_usd"]
BATCH = 50_000


def fake_rows(n: int, seed: int = 5):
    """n plausible usage rows over the last DAYS days, oldest first (as a log grows), in COLUMNS order."""
    rnd = random.Random(seed)
    start, step = utcnow() - timedelta(days=DAYS), DAYS * 86400 / n
    pairs = [(p, m) for p, models in MODELS.items() for m in models]
    for i in range(n):
        provider, model = rnd.choice(pairs)
        search = model == ""
        ok = rnd.random() < 0.95
        tokens_in = None if search or not ok else rnd.randint(10, 8000)
        tokens_out = None if search or not ok else rnd.randint(1, 2000)
        cost = None if provider == "openai-compatible" or not ok else round(rnd.random() / 100, 6)
        yield (start + timedelta(seconds=step * (i + rnd.random())), rnd.randint(1, USERS),
               "search" if search else "chat", provider, model, rnd.choice(["user", "team", "env"]),
               tokens_in, tokens_out, rnd.randint(50, 9000), "ok" if ok else rnd.choice(["rate_limited", "timeout"]),
               cost)


def seed(rt, n: int) -> float:
    """Insert USERS users and n usage rows in bulk (COPY on PostgreSQL, executemany on SQLite)."""
    started = time.perf_counter()
    with rt.engine.begin() as conn:
        conn.execute(sa.insert(User), [{"id": i, "username": f"user{i}", "password_hash": "-", "role": "member",
                                        "disabled": False, "created_at": utcnow(), "password_changed_at": utcnow(),
                                        "failed_logins": 0} for i in range(1, USERS + 1)])
    rows = fake_rows(n)
    if rt.engine.dialect.name == "postgresql":
        raw = rt.engine.raw_connection()
        try:
            with raw.cursor() as cur, cur.copy(f"COPY usage_records ({', '.join(COLUMNS)}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
            raw.commit()
        finally:
            raw.close()
        with rt.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(sa.text("VACUUM ANALYZE usage_records"))
    else:
        insert = sa.insert(UsageRecord.__table__)
        with rt.engine.begin() as conn:
            while batch := [dict(zip(COLUMNS, r, strict=False)) for _, r in zip(range(BATCH), rows, strict=False)]:
                conn.execute(insert, batch)
        with rt.engine.connect() as conn:
            conn.execute(sa.text("ANALYZE"))
    return time.perf_counter() - started


def page_queries(rt, flt):
    """What the usage page ran for an admin before its settled days were cached: the summary (which
    also gives the filter choices), its roll-ups and the first page of rows."""
    admin = Actor.operator()
    usage.page(rt, admin, flt)
    result = usage.summary(rt, admin, flt)
    for dims in [*([d] for d in usage.DIMENSIONS), ["day", "provider"]]:
        result.by(*dims)
    return result.totals


def cached_page_queries(rt, flt, settled: usage.Settled):
    """What the usage page runs for an admin on a later look: the data-version check, the calls
    since its cached settled days, its roll-ups and the first page of rows."""
    admin = Actor.operator()
    usage.data_version(rt).settled_key(utcnow())
    usage.page(rt, admin, flt)
    result = usage.summary(rt, admin, flt, settled)
    for dims in [*([d] for d in usage.DIMENSIONS), ["day", "provider"]]:
        result.by(*dims)
    return result.totals


def log_one_call(rt) -> None:
    record = CallRecord(Provider.OPENAI, KeySource.TEAM, model="gpt-4o", user_id=1, input_tokens=100,
                        output_tokens=10, latency_ms=500, cost_usd=0.001)
    with rt.engine.begin() as conn:
        usage_log.complete(conn, usage_log.start(conn, record), record)


def old_data_version(rt):
    """The check the page made before: one statement with both ends (SQLite scans an index for it)."""
    with rt.engine.connect() as conn:
        return conn.execute(sa.select(sa.func.min(UsageRecord.id), sa.func.max(UsageRecord.id))).one()


def naive(rt, flt):
    """Load every row into pandas, then filter and aggregate there."""
    with rt.engine.connect() as conn:
        frame = pd.read_sql(sa.select(UsageRecord.__table__), conn)
    ts = pd.to_datetime(frame["ts"], utc=True)
    frame = frame[ts >= pd.Timestamp(usage.day_start(flt.since))].assign(day=ts.dt.floor("D"))
    frame["unknown"] = frame["cost_usd"].isna()
    metrics = {"calls": ("id", "size"), "input_tokens": ("input_tokens", "sum"),
               "output_tokens": ("output_tokens", "sum"), "cost_usd": ("cost_usd", "sum"),
               "unknown_cost_calls": ("unknown", "sum")}
    groups = {dim: dim for dim in ["day", "provider", "model", "user_id", "key_source", "status"]}
    groups |= {"day_provider": ["day", "provider"]}
    result = {name: frame.groupby(by).agg(**metrics) for name, by in groups.items()}
    return result | {"totals": frame.agg({"id": "size", "cost_usd": "sum"})}


def timed(fn, *args, repeat: int = 3, before_each=None) -> float:
    """Best wall time of ``repeat`` runs (after one warm-up); ``before_each`` runs untimed before each."""
    fn(*args)
    best = float("inf")
    for _ in range(repeat):
        if before_each:
            before_each()
        started = time.perf_counter()
        fn(*args)
        best = min(best, time.perf_counter() - started)
    return best


def peak_mib(fn, *args) -> float:
    tracemalloc.start()
    fn(*args)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak / 2**20


def run(name: str, url: str, rows: int, workdir: Path) -> None:
    rt = open_runtime({"BYOK_DATA_DIR": str(workdir / "data"), "DATABASE_URL": url, "ENCRYPTION_KEY": gen_key()})
    try:
        seconds = seed(rt, rows)
        flt = usage.UsageFilter(since=(utcnow() - timedelta(days=WINDOW_DAYS - 1)).date())
        fast, slow = timed(page_queries, rt, flt), timed(naive, rt, flt, repeat=1)
        totals = page_queries(rt, flt)
        print(f"{name}: seeded {rows:,} rows in {seconds:.1f} s; 30-day window holds {totals.calls:,} calls")
        print(f"  usage page queries: {fast:.3f} s   naive pandas: {slow:.3f} s   ratio: {slow / fast:.0f}x")
        print(f"  peak memory (tracemalloc): page {peak_mib(page_queries, rt, flt):.1f} MiB, "
              f"naive {peak_mib(naive, rt, flt):.1f} MiB")
        admin = Actor.operator()
        one_query = timed(usage.summary, rt, admin, flt)
        print(f"  summary, one query: {one_query:.3f} s")
        old_check, new_check = timed(old_data_version, rt, repeat=20), timed(usage.data_version, rt, repeat=20)
        print(f"  data-version check: {new_check * 1000:.2f} ms (min(id), max(id) in one statement: "
              f"{old_check * 1000:.2f} ms)")
        settled_at = time.perf_counter()
        settled = usage.settled_part(rt, admin, flt, usage.settled_before(utcnow()))
        settled_s = time.perf_counter() - settled_at
        print(f"  settled days summed once: {settled_s:.3f} s; cached as {len(pickle.dumps(settled)) / 2**20:.1f} MiB "
              f"({len(settled.cube):,} groups)")
        log = lambda: log_one_call(rt)  # noqa: E731
        cached = timed(usage.summary, rt, admin, flt, settled, before_each=log)
        uncached = timed(usage.summary, rt, admin, flt, before_each=log)
        print(f"  summary after a call is logged: {cached * 1000:.0f} ms with the settled days cached, "
              f"{uncached * 1000:.0f} ms without")
        cached = timed(cached_page_queries, rt, flt, settled, before_each=log)
        uncached = timed(page_queries, rt, flt, before_each=log)
        print(f"  page queries after a call is logged: {cached * 1000:.0f} ms with the settled days cached, "
              f"{uncached * 1000:.0f} ms without")
    finally:
        rt.engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/test", help="PostgreSQL server URL")
    parser.add_argument("--no-pg", action="store_true", help="SQLite only")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        run("SQLite", f"sqlite:///{Path(tmp) / 'bench.db'}", args.rows, Path(tmp))
    if not args.no_pg:
        admin = db.create_engine(args.pg)
        schema = f"bench_{uuid.uuid4().hex[:8]}"
        with admin.begin() as conn:
            conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
        try:
            url = sa.make_url(db.normalize_url(args.pg)).update_query_dict({"options": f"-csearch_path={schema}"})
            with tempfile.TemporaryDirectory() as tmp:
                run("PostgreSQL", url.render_as_string(hide_password=False), args.rows, Path(tmp))
        finally:
            with admin.begin() as conn:
                conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
            admin.dispose()
    print(f"process peak RSS (getrusage): {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")


if __name__ == "__main__":
    main()
