"""A database as the first release (commit 1c30e37, schema 0001) left it: the dump in
fixtures/first_release/first_release.json (how it was made: fixtures/first_release/make.py),
loaded into a database that today's migrations bring to 0001 first."""

from __future__ import annotations

import json
import warnings
from datetime import datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command

from byok_core import db

DUMP = json.loads((Path(__file__).parent / "fixtures" / "first_release" / "first_release.json").read_text())
MASTER_KEY: str = DUMP["master_key"]
PLAINTEXTS: dict[str, str] = DUMP["plaintexts"]  # api_keys row id -> the key it holds
PASSWORDS: dict[str, str] = DUMP["passwords"]
TABLES: dict[str, list[dict[str, Any]]] = DUMP["tables"]


def load(url: str) -> None:
    """Migrate the empty database at ``url`` to 0001 and fill it with the first release's rows."""
    engine = db.create_engine(url)
    try:
        with engine.begin() as conn:
            command.upgrade(db._alembic_config(conn), "0001")
            meta = sa.MetaData()
            with warnings.catch_warnings():  # an expression index that reflection skips: not a table
                warnings.simplefilter("ignore", sa.exc.SAWarning)
                meta.reflect(conn)
            for table in meta.sorted_tables:
                rows = [_typed(table, row) for row in TABLES.get(table.name, [])]
                if rows:
                    conn.execute(table.insert(), rows)
            if conn.dialect.name == "postgresql":  # ids were given: move each sequence past them
                for table in meta.sorted_tables:
                    if "id" in table.c and isinstance(table.c.id.type, sa.Integer) and TABLES.get(table.name):
                        conn.execute(sa.text(f"SELECT setval(pg_get_serial_sequence('{table.name}', 'id'), "
                                             f"(SELECT max(id) FROM {table.name}))"))
    finally:
        engine.dispose()


def _typed(table: sa.Table, row: dict[str, Any]) -> dict[str, Any]:
    return {name: datetime.fromisoformat(value) if isinstance(table.c[name].type, sa.DateTime) and value else value
            for name, value in row.items()}
