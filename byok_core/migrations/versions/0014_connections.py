"""named OpenAI-compatible connections: any number per person and for the team, each with its own
name and base URL; one active key per connection. Every OpenAI-compatible key so far becomes part of
a connection of its owner, one per base URL it was saved with (named by its key's label, else the
host name), so nothing is lost and each key keeps going only to the URL bound into it.

Revision ID: 0014
Revises: 0013
"""

import uuid
from datetime import UTC, datetime
from urllib.parse import urlsplit

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

_ONE_ACTIVE = "uq_api_keys_one_active"
_ONE_PER_CONNECTION = "uq_api_keys_one_active_connection"


def _partial(name: str, columns: list[str], where: str) -> None:
    op.create_index(name, "api_keys", columns, unique=True, sqlite_where=sa.text(where),
                    postgresql_where=sa.text(where))


def upgrade() -> None:
    op.create_table(
        "connections",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("owner_kind", sa.String(8), nullable=False),
        sa.Column("owner_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(80), nullable=False),
        sa.Column("base_url", sa.String(500), nullable=False),
        sa.Column("preset", sa.String(32), nullable=False, server_default=""),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.UniqueConstraint("owner_kind", "owner_id", "name", name="uq_connections_owner_name"),
    )
    op.create_index("ix_connections_owner_id", "connections", ["owner_id"])
    op.add_column("api_keys", sa.Column("connection_id", sa.String(32), nullable=True))
    op.create_index("ix_api_keys_connection_id", "api_keys", ["connection_id"])
    op.add_column("usage_records", sa.Column("connection", sa.String(80), nullable=True))
    op.add_column("usage_records", sa.Column("priced_usd", sa.Float(), nullable=True))
    op.add_column("conversations", sa.Column("connection_id", sa.String(32), nullable=True))
    _connect_existing_keys()
    op.drop_index(_ONE_ACTIVE, "api_keys")
    _partial(_ONE_ACTIVE, ["owner_kind", "owner_id", "provider"], "active AND connection_id IS NULL")
    _partial(_ONE_PER_CONNECTION, ["connection_id"], "active AND connection_id IS NOT NULL")


def _connect_existing_keys() -> None:
    conn = op.get_bind()
    rows = conn.execute(sa.text(
        "SELECT id, owner_kind, owner_id, label, base_url, active FROM api_keys "
        "WHERE provider = 'openai-compatible' ORDER BY active DESC, updated_at DESC, created_at DESC")).all()
    made: dict[tuple[str, int, str], str] = {}  # (owner kind, owner id, base URL): connection id
    names: dict[tuple[str, int], set[str]] = {}
    now = datetime.now(UTC).replace(tzinfo=None)
    for row in rows:
        where = (row.owner_kind, row.owner_id, row.base_url or "")
        if where not in made:
            taken = names.setdefault((row.owner_kind, row.owner_id), set())
            name = _free((row.label or urlsplit(row.base_url or "").hostname or "OpenAI-compatible")[:70], taken)
            taken.add(name)
            made[where] = uuid.uuid4().hex
            conn.execute(sa.text(
                "INSERT INTO connections (id, owner_kind, owner_id, name, base_url, preset, created_at, updated_at) "
                "VALUES (:id, :kind, :owner, :name, :url, '', :now, :now)"),
                {"id": made[where], "kind": row.owner_kind, "owner": row.owner_id, "name": name,
                 "url": row.base_url or "", "now": now})
        conn.execute(sa.text("UPDATE api_keys SET connection_id = :c WHERE id = :id"), {"c": made[where], "id": row.id})


def _free(name: str, taken: set[str]) -> str:
    n, candidate = 2, name
    while candidate in taken:
        candidate, n = f"{name} ({n})", n + 1
    return candidate


def downgrade() -> None:
    # Back to one OpenAI-compatible key per owner: the active key of each owner's most recently
    # used connection stays active, the others become replaced keys.
    op.execute("UPDATE api_keys SET active = false WHERE provider = 'openai-compatible' AND active AND id NOT IN ("
               "SELECT id FROM (SELECT id, ROW_NUMBER() OVER (PARTITION BY owner_kind, owner_id "
               "ORDER BY updated_at DESC) AS n FROM api_keys WHERE provider = 'openai-compatible' AND active) AS r "
               "WHERE n = 1)")
    op.drop_index(_ONE_PER_CONNECTION, "api_keys")
    op.drop_index(_ONE_ACTIVE, "api_keys")
    _partial(_ONE_ACTIVE, ["owner_kind", "owner_id", "provider"], "active")
    op.drop_column("conversations", "connection_id")
    op.drop_column("usage_records", "priced_usd")
    op.drop_column("usage_records", "connection")
    op.drop_index("ix_api_keys_connection_id", "api_keys")
    op.drop_column("api_keys", "connection_id")
    op.drop_index("ix_connections_owner_id", "connections")
    op.drop_table("connections")
