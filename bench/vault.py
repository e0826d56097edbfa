"""Time to resolve and decrypt a key (keys.resolve), p50 and p99, on SQLite and PostgreSQL.

    python bench/vault.py [--n 10000] [--pg postgresql://postgres@127.0.0.1:5432/test]

Each database gets a fresh store with 50 users and a team key per chat provider; every resolve
picks a user at random and goes user → team → env exactly as a chat call does. Target: p50 ≤ 1 ms
on SQLite."""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
import uuid

import sqlalchemy as sa

from byok_core import accounts, db, keys
from byok_core.crypto import gen_key
from byok_core.identity import Actor, Owner, Role
from byok_core.providers import Provider, ProviderKind
from byok_core.startup import open_runtime

CHAT = Provider.of_kind(ProviderKind.CHAT)


def seed(rt) -> list[int]:
    admin = accounts.create_user(rt, Actor.operator(), "bench-admin", "bench-password", Role.ADMIN)
    user_ids = []
    for i in range(50):
        user = accounts.create_user(rt, Actor.operator(), f"user{i}", "bench-password")
        user_ids.append(user.id)
        for p in CHAT[: i % 3]:  # some users bring keys, others fall back to the team's
            keys.store(rt, Actor.of(user), Owner.user(user.id), p, f"sk-bench-{i}-{p.value}-0123456789",
                       base_url="https://llm.example.com/v1" if p.user_supplies_url else None)
    for p in CHAT:
        keys.store(rt, Actor.of(admin), Owner.team(), p, f"sk-team-{p.value}-0123456789abcdef",
                   base_url="https://llm.example.com/v1" if p.user_supplies_url else None)
    return user_ids


def measure(name: str, environ: dict, n: int) -> None:
    rt = open_runtime(environ)
    user_ids = seed(rt)
    rng = random.Random(1)
    for _ in range(200):  # warm the connection pool and statement cache
        keys.resolve(rt, rng.choice(user_ids), rng.choice(CHAT))
    samples = []
    for _ in range(n):
        uid, provider = rng.choice(user_ids), rng.choice(CHAT)
        t0 = time.perf_counter()
        resolved = keys.resolve(rt, uid, provider)
        resolved.credential.secret.reveal()
        samples.append((time.perf_counter() - t0) * 1000)
    samples.sort()
    p50, p99 = statistics.median(samples), samples[int(len(samples) * 0.99) - 1]
    print(f"{name:<10} resolves={n}  p50={p50:.3f} ms  p99={p99:.3f} ms  mean={statistics.fmean(samples):.3f} ms")
    rt.engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/test",
                        help="PostgreSQL URL ('' to skip); a temporary schema is created and dropped")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        measure("sqlite", {"BYOK_DATA_DIR": tmp, "ENCRYPTION_KEY": gen_key()}, args.n)
        if args.pg:
            admin = db.create_engine(args.pg)
            schema = f"bench_{uuid.uuid4().hex[:8]}"
            with admin.begin() as conn:
                conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
            url = sa.make_url(db.normalize_url(args.pg)).update_query_dict({"options": f"-csearch_path={schema}"})
            try:
                measure("postgresql", {"BYOK_DATA_DIR": tmp, "ENCRYPTION_KEY": gen_key(),
                                       "DATABASE_URL": url.render_as_string(hide_password=False)}, args.n)
            finally:
                with admin.begin() as conn:
                    conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))


if __name__ == "__main__":
    main()
