"""An existing install upgrades in place: every migration runs on a database holding data, on
SQLite and PostgreSQL, and keeps that data."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
import sqlalchemy as sa
from alembic import command
from callhelpers import sealed_by_version_1
from conftest import PG_URL

from byok_core import budgets, db, keys
from byok_core.clock import utcnow
from byok_core.identity import Actor, Owner
from byok_core.providers import Provider
from byok_core.runtime import open_runtime

ENGINES = ["sqlite"] + (["postgresql"] if PG_URL else [])
KEY = "sk-fake.first-format-0123456789abcdef1111"


@pytest.fixture(params=ENGINES)
def empty_database(request, tmp_path, pg_admin_engine_if_any):
    """A database with no schema at all (a fresh PostgreSQL schema, or a new SQLite file)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'old.db'}"
        return
    schema = f"m_{uuid.uuid4().hex[:12]}"
    with pg_admin_engine_if_any.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    url = sa.make_url(db.normalize_url(PG_URL)).update_query_dict({"options": f"-csearch_path={schema}"})
    yield url.render_as_string(hide_password=False)
    with pg_admin_engine_if_any.begin() as conn:
        conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))


@pytest.fixture
def pg_admin_engine_if_any(request):
    return request.getfixturevalue("pg_admin_engine") if PG_URL else None


def test_budgets_move_to_owners_and_keep_working(empty_database, tmp_path, master_key):
    engine = db.create_engine(empty_database)
    with engine.begin() as conn:  # an install at 0001 with a team budget and a user's budget
        command.upgrade(db._alembic_config(conn), "0001")
        conn.execute(sa.text("INSERT INTO users (username, password_hash, role, disabled, created_at, "
                             "password_changed_at, failed_logins) VALUES ('ann', 'x', 'member', false, "
                             "CURRENT_TIMESTAMP, CURRENT_TIMESTAMP, 0)"))
        ann = conn.execute(sa.text("SELECT id FROM users")).scalar_one()
        conn.execute(sa.text("INSERT INTO budgets (user_id, monthly_usd) VALUES (NULL, 200), (:ann, 25)"), {"ann": ann})
    engine.dispose()

    rt = open_runtime({"BYOK_DATA_DIR": str(tmp_path / "data"), "DATABASE_URL": empty_database,
                       "ENCRYPTION_KEY": master_key})  # the app's start: migrates to head
    try:
        assert db.current_revision(rt.engine) == db.head_revision()
        report = {line.owner: line.budget_usd for line in budgets.spend_report(rt)}
        assert report == {Owner.team(): 200.0, Owner.user(ann): 25.0}
        budgets.set_budget(rt, Actor.operator(), Owner.user(ann + 1), 5.0)  # new rows get fresh ids
        budgets.set_budget(rt, Actor.operator(), Owner.team(), 300.0)  # and the owner stays unique
        assert {line.owner: line.budget_usd for line in budgets.spend_report(rt)}[Owner.team()] == 300.0
        with rt.engine.connect() as conn:
            assert conn.execute(sa.text("SELECT count(*) FROM budgets")).scalar_one() == 3
    finally:
        rt.engine.dispose()


def test_first_format_keys_are_rebound_to_their_base_url_on_the_first_start(empty_database, tmp_path, master_key):
    environ = {"BYOK_DATA_DIR": str(tmp_path / "data"), "DATABASE_URL": empty_database, "ENCRYPTION_KEY": master_key}
    keyring = open_runtime(environ, migrate=False).keyring
    engine = db.create_engine(empty_database)
    compatible, openai = uuid.uuid4().hex, uuid.uuid4().hex
    with engine.begin() as conn:  # an install at 0002 holding keys sealed by the first version
        command.upgrade(db._alembic_config(conn), "0002")
        for row_id, provider, base_url in ((compatible, "openai-compatible", "https://llm.example.com/v1"),
                                           (openai, "openai", "https://planted.example/v1")):
            conn.execute(sa.text(
                "INSERT INTO api_keys (id, owner_kind, owner_id, provider, label, ciphertext, key_id, mask, base_url, "
                "active, created_at, updated_at) VALUES (:id, 'team', 0, :provider, '', :ciphertext, :key_id, "
                "'sk-…1111', :base_url, true, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"),
                {"id": row_id, "provider": provider, "base_url": base_url, "key_id": keyring.primary.key_id,
                 "ciphertext": sealed_by_version_1(keyring, KEY, f"team:0|{provider}|{row_id}")})
    engine.dispose()

    rt = open_runtime(environ)  # the first start of this version: migrations, then the re-sealing
    try:
        assert keys.scan(rt).unreadable == []
        for provider, base_url in ((Provider.OPENAI_COMPATIBLE, "https://llm.example.com/v1"),
                                   (Provider.OPENAI, "https://api.openai.com/v1")):  # the planted URL is gone
            resolved = keys.resolve(rt, None, provider)
            assert (resolved.credential.secret.reveal(), resolved.credential.base_url) == (KEY, base_url)
        with rt.engine.connect() as conn:
            assert all(v.startswith("v2:") for v in conn.execute(sa.text("SELECT ciphertext FROM api_keys")).scalars())
    finally:
        rt.engine.dispose()


def test_the_running_monthly_spend_is_built_from_the_existing_log(empty_database, tmp_path, master_key):
    engine = db.create_engine(empty_database)
    now = utcnow()
    last_month = (now.replace(day=1) - timedelta(days=1)).replace(hour=12)
    with engine.begin() as conn:  # an install at 0004 with shared-key and own-key calls in two months
        command.upgrade(db._alembic_config(conn), "0004")
        conn.execute(sa.text("INSERT INTO users (username, password_hash, role, disabled, created_at, "
                             "password_changed_at, failed_logins) VALUES ('ann', 'x', 'member', false, "
                             "CURRENT_TIMESTAMP, CURRENT_TIMESTAMP, 0)"))
        ann = conn.execute(sa.text("SELECT id FROM users")).scalar_one()
        rows = [(ann, "team", 1.25, now), (ann, "env", None, now), (None, "team", 0.5, now),
                (ann, "user", 9.0, now), (ann, "team", 2.0, last_month)]
        for user_id, source, cost, ts in rows:
            conn.execute(sa.text("INSERT INTO usage_records (ts, user_id, kind, provider, model, key_source, "
                                 "latency_ms, status, cost_usd) VALUES (:ts, :u, 'chat', 'openai', 'gpt-4o', :s, "
                                 "1, 'ok', :c)"), {"ts": ts, "u": user_id, "s": source, "c": cost})
    engine.dispose()

    rt = open_runtime({"BYOK_DATA_DIR": str(tmp_path / "data"), "DATABASE_URL": empty_database,
                       "ENCRYPTION_KEY": master_key})
    try:
        report = {line.owner: line.spent_usd for line in budgets.spend_report(rt)}
        assert report == {Owner.team(): 1.75, Owner.user(ann): 1.25}  # own-key calls never count
        assert budgets.reconcile(rt, fix=False) == []  # last month's figures were built too
        with rt.engine.connect() as conn:
            assert conn.execute(sa.text("SELECT spent_usd FROM budget_months WHERE owner_kind = 'user' AND "
                                        "month = :m"), {"m": budgets.month_of(last_month)}).scalar_one() == 2.0
    finally:
        rt.engine.dispose()


def test_the_revision_the_start_checks_is_the_newest_migration():
    assert db.head_revision() == db.SCHEMA_REVISION
