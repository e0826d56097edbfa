"""Server time of one rerun of the Keys, Chat and Usage pages (target: 150 ms each).

    python bench/pages.py [--usage-rows 10000] [--conversations 50] [--runs 20]

A fresh SQLite database in a temporary folder gets one admin, a few keys, ``--usage-rows`` usage
rows spread over the last 30 days and ``--conversations`` conversations (the newest, opened on
the chat page, with 20 messages). Each page is opened with Streamlit's AppTest, warmed up once,
then rerun ``--runs`` times; the figures are the wall time of ``AppTest.run()`` (shell + page +
AppTest's own overhead, so the real server is a little faster). No network is used: the OpenAI
base URL points at a closed loopback port, so listing models falls back to the static list.
"""

from __future__ import annotations

import argparse
import os
import random
import socket
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))  # apptest: sign-in helpers for AppTest


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def seed(rt, usage_rows: int, conversations: int):
    import sqlalchemy as sa

    from byok_core import accounts, keys
    from byok_core import conversations as convs
    from byok_core.clock import utcnow
    from byok_core.identity import Actor, Owner, Role
    from byok_core.models import UsageRecord
    from byok_core.providers import Provider

    admin = accounts.create_user(rt, Actor.operator(), "bench", "bench password", Role.ADMIN)
    others = [accounts.create_user(rt, Actor.operator(), f"user{i}", "bench password") for i in range(5)]
    actor = Actor.of(admin)
    keys.store(rt, actor, Owner.user(admin.id), Provider.OPENAI, "sk-bench-key-0001", label="mine")
    keys.store(rt, actor, Owner.user(admin.id), Provider.ANTHROPIC, "sk-ant-bench-0002")
    keys.store(rt, actor, Owner.team(), Provider.TAVILY, "tvly-bench-0003")

    rng = random.Random(7)
    now = utcnow()
    users = [admin.id] + [u.id for u in others]
    models = {"openai": ["gpt-4o-mini", "gpt-4o"], "anthropic": ["claude-haiku-4-5"], "tavily": [""]}
    rows = []
    for _ in range(usage_rows):
        provider = rng.choice(list(models))
        rows.append(dict(
            ts=now - timedelta(minutes=rng.randrange(30 * 24 * 60)), user_id=rng.choice(users),
            kind="search" if provider == "tavily" else "chat", provider=provider,
            model=rng.choice(models[provider]), key_source=rng.choice(["user", "team", "env"]),
            input_tokens=rng.randrange(10, 2000), output_tokens=rng.randrange(10, 800),
            latency_ms=rng.randrange(200, 4000), status=rng.choice(["ok"] * 9 + ["rate_limited"]),
            cost_usd=None if rng.random() < 0.05 else rng.random() / 100, error=None,
        ))
    with rt.engine.begin() as conn:
        conn.execute(sa.insert(UsageRecord), rows)

    newest = None
    for i in range(conversations):
        newest = convs.create(rt, admin.id, f"Conversation {i}", provider="openai", model="gpt-4o-mini")
    for i in range(10):
        convs.add_message(rt, admin.id, newest.id, "user", f"Question {i}: " + "words " * 40)
        convs.add_message(rt, admin.id, newest.id, "assistant", f"Answer {i}: " + "more words " * 120,
                          {"provider": "openai", "model": "gpt-4o-mini", "key_source": "user", "input_tokens": 120,
                           "output_tokens": 300, "cost_usd": 0.0002, "latency_ms": 900, "status": "ok",
                           "sources": []})
    return admin, newest


def time_page(rt, admin, name: str, runs: int, session_extra: dict | None = None) -> list[float]:
    from apptest import app_test, open_page, sign_in

    at = app_test(timeout=60)
    sign_in(at, rt, admin)
    for key, value in (session_extra or {}).items():
        at.session_state[key] = value
    at.run()
    open_page(at, name).run()  # warm-up: imports, caches, first queries
    if at.exception:
        raise SystemExit(f"{name} page failed: {at.exception}")
    at.run()
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        at.run()
        times.append((time.perf_counter() - started) * 1000)
        if at.exception:
            raise SystemExit(f"{name} page failed: {at.exception}")
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--usage-rows", type=int, default=10_000)
    parser.add_argument("--conversations", type=int, default=50)
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="byok-bench-"))
    from byok_core.crypto import gen_key
    from byok_core.providers import Provider

    for p in Provider:
        for var in (p.spec.key_env, p.spec.base_url_env):
            if var:
                os.environ.pop(var, None)
    os.environ.update({
        "BYOK_DATA_DIR": str(tmp / "data"), "DATABASE_URL": os.environ.get("BENCH_DATABASE_URL")
        or f"sqlite:///{tmp / 'byok.db'}", "ENCRYPTION_KEY": gen_key(),
        "OPENAI_BASE_URL": f"http://127.0.0.1:{_closed_port()}/v1",
        "ANTHROPIC_BASE_URL": f"http://127.0.0.1:{_closed_port()}",
    })
    from byok_core.startup import open_runtime

    rt = open_runtime()
    admin, newest = seed(rt, args.usage_rows, args.conversations)
    print(f"seeded {args.usage_rows:,} usage rows and {args.conversations} conversations "
          f"in {rt.settings.database_url.split(':')[0]}")
    results = {}
    for name, extra in (("keys", None), ("chat", {"chat_conv": newest.id}), ("usage", None)):
        if not (ROOT / "pages" / f"{name}.py").is_file():
            print(f"{name:>6}: page not present, skipped")
            continue
        times = time_page(rt, admin, name, args.runs, extra)
        results[name] = times
        p95 = sorted(times)[max(0, int(len(times) * 0.95) - 1)]
        verdict = "ok" if statistics.median(times) <= 150 else "OVER TARGET"
        print(f"{name:>6}: median {statistics.median(times):6.1f} ms   p95 {p95:6.1f} ms   "
              f"min {min(times):6.1f} ms   ({args.runs} reruns)  {verdict}")
    rt.engine.dispose()


if __name__ == "__main__":
    main()
