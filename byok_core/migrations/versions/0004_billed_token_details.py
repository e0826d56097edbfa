"""usage rows keep the billed breakdown: cache-read, cache-write and reasoning tokens

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

COLUMNS = ("cache_read_tokens", "cache_write_tokens", "reasoning_tokens")


OLD_CUBE = ("provider", "model", "user_id", "key_source", "status", "input_tokens", "output_tokens", "cost_usd",
            "ts")
NEW_CUBE = ("provider", "model", "user_id", "key_source", "status", "input_tokens", "output_tokens", *COLUMNS,
            "cost_usd", "ts")


def _cube(columns: tuple[str, ...]) -> None:
    """SQLite's covering index for the usage page's GROUP BY (models.UsageRecord) over ``columns``."""
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP INDEX IF EXISTS ix_usage_cube")
        op.execute(f"CREATE INDEX ix_usage_cube ON usage_records (substr(ts, 1, 10), {', '.join(columns)})")


def upgrade() -> None:
    for name in COLUMNS:
        op.add_column("usage_records", sa.Column(name, sa.Integer(), nullable=True))
    _cube(NEW_CUBE)


def downgrade() -> None:
    op.execute("DROP INDEX IF EXISTS ix_usage_cube")
    with op.batch_alter_table("usage_records") as batch:
        for name in COLUMNS:
            batch.drop_column(name)
    _cube(OLD_CUBE)
