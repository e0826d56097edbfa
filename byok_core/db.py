"""Engines for SQLite (WAL, busy timeout) and PostgreSQL (psycopg 3), and Alembic upgrades."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from byok_core.errors import ConfigError, StorageError

if TYPE_CHECKING:  # Alembic takes ~80 ms to import: loaded only to migrate, not on the usual start
    from alembic.config import Config

BUSY_TIMEOUT_MS = 10_000
MIGRATIONS = Path(__file__).parent / "migrations"
# The newest migration's revision, so the usual start (nothing to migrate) needs one query and no
# Alembic; tests/test_migrations.py checks it is Alembic's head.
SCHEMA_REVISION = "0019"


def normalize_url(url: str) -> str:
    """Accept the usual ``postgres://`` spellings and route them through psycopg 3."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def create_engine(url: str) -> Engine:
    url = normalize_url(url)
    try:
        parsed = sa.make_url(url)
    except sa.exc.ArgumentError:
        raise ConfigError("DATABASE_URL is not a valid database URL (e.g. postgresql://user@host/db).") from None
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(mode=0o700, parents=True, exist_ok=True)  # holds master.key too
        engine = sa.create_engine(url, connect_args={"check_same_thread": False, "timeout": BUSY_TIMEOUT_MS / 1000})
        sa.event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    if parsed.get_backend_name() == "postgresql":
        return sa.create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=10)
    raise ConfigError("DATABASE_URL must be a sqlite:/// or postgresql:// URL.")


_PROBLEMS = {  # what the database said -> one sentence for the person who was saving something
    "full": "The server's disk is full, so this could not be saved (nothing stored was lost); an admin must free "
            "space, then try again.",
    "read-only": "The database cannot be written (its file or folder is read-only), so this could not be saved "
                 "(nothing stored was lost); an admin must fix its permissions, then try again.",
    "locked": "The database is busy (another process holds its write lock); try again in a moment.",
    "unreachable": "The database cannot be reached right now (nothing stored was lost); try again in a minute, or "
                   "tell an admin.",
}


def storage_error(exc: BaseException) -> StorageError | None:
    """The database failure behind ``exc`` as one plain sentence, or None when it is not one."""
    if not isinstance(exc, sa.exc.OperationalError | sa.exc.InterfaceError | sa.exc.InternalError):
        return None
    text, state = str(exc.orig).lower(), getattr(exc.orig, "sqlstate", None) or ""
    if "disk is full" in text or state == "53100":
        kind = "full"
    elif "readonly" in text or "read-only" in text or state == "25006":
        kind = "read-only"
    elif "locked" in text or state in ("55P03", "40P01"):
        kind = "locked"
    elif "unable to open" in text or isinstance(exc, sa.exc.InterfaceError) or state.startswith(("08", "57P")) \
            or "connect" in text or "connection" in text:
        kind = "unreachable"
    else:
        return None
    return busy() if kind == "locked" else StorageError(_PROBLEMS[kind], kind)


def busy() -> StorageError:
    return StorageError(_PROBLEMS["locked"], "locked")


def write_problem(engine: Engine) -> str | None:
    """For /readyz: why an embedded SQLite database cannot take writes right now (its disk is full or
    it is read-only), told without writing; None when it can, or for PostgreSQL (which says so itself)."""
    import os
    import shutil

    path = engine.url.database if engine.dialect.name == "sqlite" else None
    if not path or path == ":memory:":
        return None
    folder = Path(path).resolve().parent
    if not os.access(folder, os.W_OK) or (Path(path).exists() and not os.access(path, os.W_OK)):
        return "database is read-only"
    if shutil.disk_usage(folder).free < 1024 * 1024:
        return "disk full"
    return None


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()


@contextmanager
def serialized(engine: Engine) -> Iterator[sa.Connection]:
    """A transaction whose reads stay true until it commits, for check-then-write steps (budgets):
    on SQLite it takes the database's write lock at its start (``BEGIN IMMEDIATE``); on PostgreSQL
    the caller locks the rows it depends on (``SELECT … FOR UPDATE``)."""
    with engine.connect() as conn:
        if conn.dialect.name == "sqlite":
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.rollback()
            raise
        conn.commit()


def _alembic_config(connection: sa.Connection) -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = connection
    return cfg


def head_revision() -> str:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    head = ScriptDirectory.from_config(cfg).get_current_head()
    assert head is not None  # the package ships its migrations
    return head


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def _stamped(engine: Engine) -> list[str] | None:
    """The revisions in Alembic's version table (None before the first migration)."""
    with engine.connect() as conn:
        try:
            return list(conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalars())
        except sa.exc.DBAPIError:
            return None


def upgrade(engine: Engine, then: Callable[[sa.Connection, str | None], None] | None = None) -> None:
    """Bring the schema to the newest migration; a no-op when it is already there (one query).

    ``then(conn, revision_before)`` runs in the same transaction after the migrations, for the steps
    that need the master key (which migrations cannot see): both commit together or not at all. On
    PostgreSQL an advisory lock makes replicas that start together take turns."""
    if _stamped(engine) == [SCHEMA_REVISION] or current_revision(engine) == head_revision():
        return
    from alembic import command
    from alembic.runtime.migration import MigrationContext

    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(427001)"))
        before = MigrationContext.configure(conn).get_current_revision()
        command.upgrade(_alembic_config(conn), "head")
        if then is not None:
            then(conn, before)
