"""Budgets under concurrency: 50 shared-key calls at once against a budget that allows 10, from
threads in one process and from 50 separate `byok` processes, on SQLite and PostgreSQL, with a
loopback provider (tests/fakeproviders.py); the same for calls on a person's own key against the
cap they set on it (stop at the cap); then what a budget check costs at 10k and 1M usage rows,
next to the check this version replaced (summing the month's usage rows).

    python bench/budgets.py [--pg postgresql://postgres@127.0.0.1:5432/test | --no-pg] [--rows 1000000]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from fakeproviders import FakeProvider  # noqa: E402

from byok_core import accounts, budgets, db, keys, pricing, usage_log  # noqa: E402
from byok_core.budgets import caps  # noqa: E402
from byok_core.chat import ChatMessage, stream_chat  # noqa: E402
from byok_core.clock import utcnow  # noqa: E402
from byok_core.crypto import gen_key  # noqa: E402
from byok_core.errors import BudgetExceeded  # noqa: E402
from byok_core.identity import Actor, KeySource, Owner  # noqa: E402
from byok_core.models import UsageRecord, table  # noqa: E402
from byok_core.providers import Provider  # noqa: E402
from byok_core.record import CallRecord  # noqa: E402
from byok_core.search import run_search  # noqa: E402
from byok_core.startup import open_runtime  # noqa: E402

CALLS, PRICE, BUDGET = 50, 0.01, "0.10"  # a budget that allows 10 calls
MODEL = "bench-model"  # priced per call by the admin, so the worst case is the real cost
ENV_KEY = "sk-bench.shared-key.0000000000000000"  # fake; dots keep it from looking real
OWN_KEY = "sk-bench.own-key.11111111111111111111"
OP = Actor.operator()


def chat_once(rt, user_id: int) -> bool:
    try:
        stream = stream_chat(rt, user_id=user_id, provider=Provider.OPENAI, model=MODEL,
                             messages=[ChatMessage("user", "Say hello")])
    except BudgetExceeded:
        return False
    list(stream)
    return stream.result is not None and stream.result.error is None


def search_once(rt, user_id: int) -> bool:
    try:
        run_search(rt, user_id=user_id, provider=Provider.BRAVE, query="budgets")
    except BudgetExceeded:
        return False
    return True


def cli_chat(env: dict[str, str], username: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "byok_core", "chat", "--provider", "openai", "--model", MODEL,
                             "--user", username, "Say hello"], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)


def report(label: str, rt, owner: Owner, ok: int) -> None:
    line = next(x for x in budgets.spend_report(rt) if x.owner == owner)
    assert line.budget_usd is not None
    verdict = "within" if line.spent_usd <= line.budget_usd + 1e-9 else "OVER"
    print(f"  {label:<34} {ok:>3} of {CALLS} succeeded   spent ${line.spent_usd:.2f} of ${line.budget_usd:.2f} "
          f"({verdict} the budget)")


def report_cap(label: str, rt, user_id: int, ok: int) -> None:
    cap = caps.caps_of(rt, user_id)[Provider.OPENAI]
    verdict = "within" if cap.spent_usd <= cap.monthly_usd + 1e-9 else "OVER"
    print(f"  {label:<34} {ok:>3} of {CALLS} succeeded   spent ${cap.spent_usd:.2f} of ${cap.monthly_usd:.2f} "
          f"({verdict} the cap)")


def seed(rt, rows: int, users: list[int]) -> None:
    """``rows`` shared-key calls this month (the worst case for the old check, which summed them)."""
    now = utcnow()
    start = datetime(now.year, now.month, 1, tzinfo=UTC)
    span = (now - start).total_seconds()
    rnd = random.Random(7)
    batch = []
    columns = ["ts", "user_id", "kind", "provider", "model", "key_source", "status", "latency_ms", "cost_usd",
               "charged_usd"]

    def flush() -> None:
        with rt.engine.begin() as conn:
            conn.execute(sa.insert(table(UsageRecord)), [dict(zip(columns, r, strict=True)) for r in batch])
        batch.clear()

    for _ in range(rows):
        cost = round(rnd.random() / 10_000, 8)
        batch.append((start + (now - start) * rnd.random() if span else now, rnd.choice(users), "chat", "openai",
                      "gpt-4o-mini", "team", "ok", 100, cost, cost))
        if len(batch) == 20_000:
            flush()
    if batch:
        flush()
    with rt.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(sa.text("ANALYZE"))


def median_ms(fn: Callable[[], object], repeat: int = 200) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


def old_check(rt, user_id: int) -> float:
    """The check this version replaced: the month's shared-key spend summed from the usage log."""
    t = table(UsageRecord)
    now = utcnow()
    start = datetime(now.year, now.month, 1, tzinfo=UTC)
    with rt.engine.connect() as conn:
        return float(conn.execute(sa.select(sa.func.coalesce(sa.func.sum(t.c.cost_usd), 0.0)).where(
            t.c.user_id == user_id, t.c.key_source.in_(["team", "env"]), t.c.ts >= start)).scalar_one())


def run(engine_name: str, url: str, rows: int, workdir: Path) -> None:
    print(f"\n{engine_name}")
    master = gen_key()
    with ExitStack() as stack:
        openai = stack.enter_context(FakeProvider(Provider.OPENAI))
        brave = stack.enter_context(FakeProvider(Provider.BRAVE))
        env = {"DATABASE_URL": url, "ENCRYPTION_KEY": master, "BYOK_DATA_DIR": str(workdir / engine_name),
               **openai.env(), **brave.env(), "OPENAI_API_KEY": ENV_KEY, "BRAVE_API_KEY": ENV_KEY}
        rt = open_runtime(env)
        stack.callback(rt.engine.dispose)
        pricing.set_model_price(rt, OP, Provider.OPENAI, MODEL, PRICE)
        pricing.set_search_price(rt, OP, Provider.BRAVE, PRICE)
        people = {name: accounts.create_user(rt, OP, name, "bench-password-1") for name in ("ann", "ben", "cat", "dan")}
        for user in people.values():
            budgets.set_budget(rt, OP, Owner.user(user.id), BUDGET)
        capped = {name: accounts.create_user(rt, OP, name, "bench-password-1") for name in ("eve", "fay")}
        for user in capped.values():
            keys.store(rt, Actor.of(user), Owner.user(user.id), Provider.OPENAI, OWN_KEY)
            caps.set_cap(rt, Actor.of(user), user.id, Provider.OPENAI, BUDGET, stop=True)

        for name, label, once in (("ann", "chat, 50 threads", chat_once), ("ben", "search, 50 threads", search_once)):
            uid = people[name].id
            with ThreadPoolExecutor(CALLS) as pool:
                ok = sum(pool.map(lambda _: once(rt, uid), range(CALLS)))  # noqa: B023 - used right here
            report(label, rt, Owner.user(uid), ok)

        procs = [cli_chat({**os.environ, **env, "PYTHONPATH": str(ROOT)}, "cat") for _ in range(CALLS)]
        ok = 0
        for proc in procs:
            _, err = proc.communicate(timeout=300)
            ok += proc.returncode == 0
            assert proc.returncode == 0 or "budget" in err, err
        report("chat, 50 `byok chat` processes", rt, Owner.user(people["cat"].id), ok)

        uid = capped["eve"].id
        with ThreadPoolExecutor(CALLS) as pool:
            ok = sum(pool.map(lambda _: chat_once(rt, uid), range(CALLS)))
        report_cap("own key with a cap, 50 threads", rt, uid, ok)
        procs = [cli_chat({**os.environ, **env, "PYTHONPATH": str(ROOT)}, "fay") for _ in range(CALLS)]
        ok = 0
        for proc in procs:
            _, err = proc.communicate(timeout=300)
            ok += proc.returncode == 0
            assert proc.returncode == 0 or "cap" in err, err
        report_cap("own key with a cap, 50 processes", rt, capped["fay"].id, ok)

        uid = people["dan"].id
        bound = pricing.CostBound(PRICE, per_call=True)

        def admit_and_settle() -> None:  # the ledger's part of calls.metered: two transactions
            record = CallRecord(Provider.OPENAI, KeySource.TEAM, MODEL, uid, cost_usd=0.0)
            with budgets.admitted(rt, record, bound) as (conn, admission):
                row_id = usage_log.start(conn, record)
            charge = admission.bound.charge(record)
            with rt.engine.begin() as conn:
                usage_log.complete(conn, row_id, record, charge)
                budgets.settle(conn, admission, record, charge)

        print(f"  {'usage rows':>10} | {'check (new)':>11} | {'admit+settle':>12} | {'old check (sum)':>15}")
        seeded = 0
        users = [u.id for u in people.values()]
        for target in sorted({10_000, rows}):
            seed(rt, target - seeded, users)
            seeded = target
            check = median_ms(lambda: budgets.check(rt, uid, (KeySource.TEAM, bound)))
            write = median_ms(admit_and_settle, repeat=50)
            old = median_ms(lambda: old_check(rt, uid), repeat=5)
            print(f"  {target:>10,} | {check:>8.2f} ms | {write:>9.2f} ms | {old:>12.1f} ms")
        started = time.perf_counter()
        drifts = budgets.reconcile(rt, fix=True)
        print(f"  byok doctor's reconcile over {seeded:,} rows: {time.perf_counter() - started:.2f} s "
              f"({len(drifts)} running figures rebuilt from the seeded rows)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pg", default=os.environ.get("TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test"))
    parser.add_argument("--no-pg", action="store_true")
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()
    print(f"{CALLS} calls at once, each priced ${PRICE:.2f}, against a ${BUDGET} budget (room for 10)")
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        run("SQLite", f"sqlite:///{workdir / 'bench.db'}", args.rows, workdir)
        if not args.no_pg:
            schema = f"bench_{uuid.uuid4().hex[:10]}"
            admin = db.create_engine(args.pg)
            with admin.begin() as conn:
                conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
            url = sa.make_url(db.normalize_url(args.pg)).update_query_dict({"options": f"-csearch_path={schema}"})
            try:
                run("PostgreSQL", url.render_as_string(hide_password=False), args.rows, workdir)
            finally:
                with admin.begin() as conn:
                    conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
                admin.dispose()


if __name__ == "__main__":
    main()
