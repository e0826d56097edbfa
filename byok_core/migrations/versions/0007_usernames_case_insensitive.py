"""usernames are case-insensitive: a unique username_key (NFKC, case-folded); collisions reported, never merged

Revision ID: 0007
Revises: 0006

Every account gets ``username_key``, the name as accounts are now told apart (``bob``, ``BOB`` and
full-width ``bob`` are one name), with a unique index on both engines. Accounts that already collide are
kept exactly as they are (their keys, conversations, usage and sessions): the oldest (lowest id)
gets the plain key, each later one ``<key>#<id>``, which no username can produce (``#`` is not
allowed in one). Each still signs in with its exact spelling; any other spelling reaches the
oldest. They are logged here, and `byok doctor` and the Admin page list them until an admin renames
all but one (``accounts.name_clashes``).
"""

import logging
import unicodedata

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

log = logging.getLogger(__name__)


def _key(name: str) -> str:
    """User.key_of as of this revision (copied: a migration must not change when the app does)."""
    return unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", name.strip()).casefold())


def upgrade() -> None:
    # NOT NULL with a default so both engines add it in place: SQLite cannot add a NOT NULL column
    # without one, and recreating `users` (batch mode) would drop the table its foreign keys point to.
    op.add_column("users", sa.Column("username_key", sa.String(200), nullable=False, server_default=""))
    conn = op.get_bind()
    taken: set[str] = set()
    holders: dict[str, str] = {}
    clashes: dict[str, list[str]] = {}
    updates = []
    for user_id, username in conn.execute(sa.text("SELECT id, username FROM users ORDER BY id")):
        key = _key(username)
        if key in taken:
            clashes.setdefault(key, [holders[key]]).append(username)
            suffix, key = 0, f"{key}#{user_id}"
            while key in taken:  # only a name that already holds a '#' (never a valid one) gets here
                suffix += 1
                key = f"{_key(username)}#{user_id}.{suffix}"
        else:
            holders[key] = username
        taken.add(key)
        updates.append({"id": user_id, "key": key})
    if updates:
        conn.execute(sa.text("UPDATE users SET username_key = :key WHERE id = :id"), updates)
    op.create_index("ux_users_username_key", "users", ["username_key"], unique=True)
    if conn.dialect.name != "sqlite":  # SQLite keeps the default: changing it would recreate the table
        op.alter_column("users", "username_key", server_default=None)
    for names in clashes.values():
        log.warning("byok: the usernames %s now count as one name; all keep working (each with its exact "
                    "spelling, other spellings reach %r): an admin should rename all but one "
                    "(`byok doctor` lists them)", ", ".join(repr(n) for n in names), names[0])


def downgrade() -> None:
    op.drop_index("ux_users_username_key", "users")
    op.drop_column("users", "username_key")
