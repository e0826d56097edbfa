"""Shared fixtures. Database tests run on a real SQLite file, and on PostgreSQL too when
TEST_DATABASE_URL is set (CI sets it); a PostgreSQL that is set but down fails, never skips."""

from __future__ import annotations

import os
import shutil
import sys
import uuid

import pytest
import sqlalchemy as sa
from argon2 import PasswordHasher

from byok_core import db
from byok_core.accounts import passwords
from byok_core.adapters.base import close_shared_clients
from byok_core.crypto import gen_key
from byok_core.startup import open_runtime

# pytest rewrites each test module's asserts and caches the result in __pycache__ unless bytecode
# writing is off (PYTHONDONTWRITEBYTECODE, as on the shared development machine): then every xdist
# worker rewrote all the test modules on every run (~2 s each, more on a loaded machine).
sys.dont_write_bytecode = False

PG_URL = os.environ.get("TEST_DATABASE_URL", "")
ENGINES = ["sqlite"] + (["postgresql"] if PG_URL else [])


@pytest.fixture(scope="session")
def pg_admin_engine():
    engine = db.create_engine(PG_URL)
    with engine.connect() as conn:  # fails loudly if TEST_DATABASE_URL is set but unreachable
        conn.execute(sa.text("SELECT 1"))
    yield engine
    engine.dispose()


# Argon2 at OWASP's cost takes ~70 ms a hash and tests create many users: tests about passwords and
# sign-in (marked real_password_hashing) use the product's hasher, the rest a cheap one (the way
# Django's test settings do). tests/test_accounts.py pins the product's parameters.
_CHEAP_HASHER = PasswordHasher(time_cost=1, memory_cost=64, parallelism=1)
_CHEAP_DUMMY = _CHEAP_HASHER.hash("not a real password")


@pytest.fixture(autouse=True)
def password_hashing(request, monkeypatch):
    if request.node.get_closest_marker("real_password_hashing") is None:
        monkeypatch.setattr(passwords, "HASHER", _CHEAP_HASHER)
        monkeypatch.setattr(passwords, "DUMMY_HASH", _CHEAP_DUMMY)


@pytest.fixture(autouse=True)
def fresh_provider_connections():
    """Every test starts without the connections an earlier test's calls kept alive: the fake
    provider it reached may be gone and its port handed to this test's."""
    yield
    close_shared_clients()


@pytest.fixture
def master_key() -> str:
    return gen_key()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory):
    """A migrated SQLite file, copied for each test (migrating takes longer than copying)."""
    path = tmp_path_factory.mktemp("template") / "byok.db"
    engine = db.create_engine(f"sqlite:///{path}")
    db.upgrade(engine)
    with engine.connect() as conn:
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    engine.dispose()
    return path


@pytest.fixture(scope="session")
def pg_schema(pg_admin_engine):
    """One migrated schema for this test run; tests empty it instead of migrating again."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    with pg_admin_engine.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    url = sa.make_url(db.normalize_url(PG_URL)).update_query_dict({"options": f"-csearch_path={schema}"})
    engine = db.create_engine(url.render_as_string(hide_password=False))
    db.upgrade(engine)
    tables = [t for t in sa.inspect(engine).get_table_names() if t != "alembic_version"]
    engine.dispose()
    yield url.render_as_string(hide_password=False), tables
    with pg_admin_engine.begin() as conn:
        conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))


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


@pytest.fixture(params=ENGINES)
def database_url(request, tmp_path):
    """A fresh, migrated, empty database: a copy of the SQLite template, or the emptied PG schema."""
    if request.param == "sqlite":
        path = tmp_path / "byok.db"
        shutil.copyfile(request.getfixturevalue("sqlite_template"), path)
        return f"sqlite:///{path}"
    url, tables = request.getfixturevalue("pg_schema")
    engine = db.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
    engine.dispose()
    return url


@pytest.fixture
def environ(tmp_path, database_url, master_key):
    """A clean environment: no provider keys or URLs leak in from the machine running the tests."""
    return {"BYOK_DATA_DIR": str(tmp_path / "data"), "DATABASE_URL": database_url, "ENCRYPTION_KEY": master_key}


@pytest.fixture
def rt(environ):
    runtime = open_runtime(environ, migrate=False)  # database_url is migrated already
    yield runtime
    runtime.engine.dispose()


@pytest.fixture(scope="session")
def streamlit_components_scanned_once():
    """Every new AppTest scans all installed distributions for Streamlit components (~80 ms each);
    the installed packages do not change during a run, so the first scan's answer is reused."""
    from streamlit.components.v2 import manifest_scanner

    found = manifest_scanner.scan_component_manifests()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(manifest_scanner, "scan_component_manifests", lambda max_workers=None: list(found))
        yield


@pytest.fixture
def app(environ, rt, monkeypatch, streamlit_components_scanned_once):
    """Point the Streamlit app (AppTest) at this test's database and master key; forget its cached
    runtime afterwards so no test sees another's."""
    from apptest import clear_runtime, use_environment

    use_environment(monkeypatch, environ)
    yield
    clear_runtime()


@pytest.fixture
def lan(environ):
    """A runtime that lets connections point at loopback (the fake providers)."""
    runtime = open_runtime({**environ, "BYOK_ALLOW_PRIVATE_ENDPOINTS": "1"}, migrate=False)
    yield runtime
    runtime.engine.dispose()
