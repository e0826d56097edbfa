"""A database that cannot take a write says so in one sentence and loses nothing: SQLite's disk full
(a real 'database or disk is full', made with max_page_count), a read-only database, PostgreSQL
down; the CLI says the same sentence instead of "unexpected OperationalError"."""

from __future__ import annotations

import io
import shutil
import sys

import pytest
import sqlalchemy as sa
from callhelpers import runtime_with

from byok_core import keys
from byok_core.cli import main
from byok_core.errors import StorageError
from byok_core.identity import Actor, Owner
from byok_core.providers import Provider

KEY = "sk-fake.storage-0123456789abcdefghijklmn"
OTHER = "sk-fake.storage-other-0123456789abcdefgh"


@pytest.fixture
def sqlite_environ(tmp_path, sqlite_template, master_key):
    """SQLite only: its own pragmas make the full disk and the read-only file."""
    path = tmp_path / "byok.db"
    shutil.copyfile(sqlite_template, path)
    return {"BYOK_DATA_DIR": str(tmp_path / "data"), "DATABASE_URL": f"sqlite:///{path}",
            "ENCRYPTION_KEY": master_key}


def _with_pragma(rt, pragma: str) -> None:
    rt.engine.dispose()
    sa.event.listen(rt.engine, "connect", lambda conn, _rec: conn.execute(pragma))


def test_a_full_disk_says_so_and_keeps_every_stored_key(sqlite_environ):
    with runtime_with(sqlite_environ) as rt:
        keys.store(rt, Actor.operator(), Owner.team(), Provider.OPENAI, KEY)
        with rt.engine.connect() as conn:
            pages = conn.exec_driver_sql("PRAGMA page_count").scalar_one()
        _with_pragma(rt, f"PRAGMA max_page_count = {pages}")  # not one page more: SQLite's "disk is full"
        with pytest.raises(StorageError, match="disk is full") as full:
            for n in range(50):  # each save adds rows (key, audit): the file must grow
                keys.store(rt, Actor.operator(), Owner.team(), Provider.ANTHROPIC, f"{OTHER}{n}")
        assert full.value.kind == "full" and KEY not in str(full.value)
        assert keys.resolve(rt, None, Provider.OPENAI).credential.secret.reveal() == KEY


def test_a_read_only_database_says_so(sqlite_environ):
    with runtime_with(sqlite_environ) as rt:
        _with_pragma(rt, "PRAGMA query_only = ON")  # SQLite answers "attempt to write a readonly database"
        with pytest.raises(StorageError, match="cannot be written") as refused:
            keys.store(rt, Actor.operator(), Owner.team(), Provider.OPENAI, KEY)
        assert refused.value.kind == "read-only"


def test_the_cli_says_the_database_cannot_be_reached(monkeypatch, capsys, tmp_path, master_key):
    for name, value in {"DATABASE_URL": "postgresql://byok:secret-pw@127.0.0.1:9/byok?connect_timeout=2",
                        "ENCRYPTION_KEY": master_key, "BYOK_DATA_DIR": str(tmp_path)}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(sys, "stdin", io.StringIO(KEY + "\n"))
    code = main(["keys", "set", "--team", "--provider", "openai"])
    err = capsys.readouterr().err
    assert code == 1 and err.startswith("byok: The database cannot be reached right now")
    assert "secret-pw" not in err and KEY not in err and "unexpected" not in err
