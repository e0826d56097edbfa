"""Shared fixtures. Database tests run on a real SQLite file, and on PostgreSQL too when
TEST_DATABASE_URL is set (CI sets it); a PostgreSQL that is set but down fails, never skips."""

from __future__ import annotations

import os
import uuid

import pytest
import sqlalchemy as sa

from byok_core import db
from byok_core.crypto import gen_key
from byok_core.runtime import open_runtime

PG_URL = os.environ.get("TEST_DATABASE_URL", "")
ENGINES = ["sqlite"] + (["postgresql"] if PG_URL else [])


@pytest.fixture(scope="session")
def pg_admin_engine():
    engine = db.create_engine(PG_URL)
    with engine.connect() as conn:  # fails loudly if TEST_DATABASE_URL is set but unreachable
        conn.execute(sa.text("SELECT 1"))
    yield engine
    engine.dispose()


@pytest.fixture
def master_key() -> str:
    return gen_key()


@pytest.fixture(params=ENGINES)
def database_url(request, tmp_path):
    """A fresh, empty database: a new SQLite file, or a new schema on the test PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'byok.db'}"
        return
    admin = request.getfixturevalue("pg_admin_engine")
    schema = f"t_{uuid.uuid4().hex[:12]}"
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    url = sa.make_url(db.normalize_url(PG_URL)).update_query_dict({"options": f"-csearch_path={schema}"})
    yield url.render_as_string(hide_password=False)
    with admin.begin() as conn:
        conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))


@pytest.fixture
def environ(tmp_path, database_url, master_key):
    """A clean environment: no provider keys or URLs leak in from the machine running the tests."""
    return {"BYOK_DATA_DIR": str(tmp_path / "data"), "DATABASE_URL": database_url, "ENCRYPTION_KEY": master_key}


@pytest.fixture
def rt(environ):
    runtime = open_runtime(environ)
    yield runtime
    runtime.engine.dispose()
