"""budgets that hold under concurrency: running monthly spend, reservations, model allowlists

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

SHARED = "('team', 'env')"


def _month(column: str) -> str:
    """The UTC calendar month of a timestamp column as 'YYYY-MM', in this engine's SQL."""
    if op.get_bind().dialect.name == "sqlite":
        return f"substr({column}, 1, 7)"
    return f"to_char({column} AT TIME ZONE 'UTC', 'YYYY-MM')"


def upgrade() -> None:
    op.add_column("usage_records", sa.Column("charged_usd", sa.Float(), nullable=True))
    op.create_table(
        "budget_months",
        sa.Column("owner_kind", sa.String(8), primary_key=True),
        sa.Column("owner_id", sa.Integer(), primary_key=True),
        sa.Column("month", sa.String(7), primary_key=True),
        sa.Column("spent_usd", sa.Float(), nullable=False, server_default="0"),
        sa.Column("alerted", sa.Integer(), nullable=False, server_default="0"),
    )
    op.create_table(
        "budget_reservations",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("user_id", sa.Integer(), nullable=True, index=True),
        sa.Column("month", sa.String(7), nullable=False),
        sa.Column("amount_usd", sa.Float(), nullable=False),
        sa.Column("expires_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False, index=True),
    )
    op.create_table(
        "model_allowlists",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("subject", sa.String(40), nullable=False),
        sa.Column("provider", sa.String(32), nullable=False),
        sa.Column("patterns", sa.String(4000), nullable=False),
        sa.UniqueConstraint("subject", "provider", name="uq_model_allowlists"),
    )
    # What earlier calls on shared keys counted: their known cost (unknown costs added nothing then).
    op.execute(f"UPDATE usage_records SET charged_usd = COALESCE(cost_usd, 0) WHERE key_source IN {SHARED}")
    month = _month("ts")
    op.execute(f"INSERT INTO budget_months (owner_kind, owner_id, month, spent_usd, alerted) "
               f"SELECT 'user', user_id, {month}, SUM(charged_usd), 0 FROM usage_records "
               f"WHERE key_source IN {SHARED} AND user_id IS NOT NULL GROUP BY user_id, {month}")
    op.execute(f"INSERT INTO budget_months (owner_kind, owner_id, month, spent_usd, alerted) "
               f"SELECT 'team', 0, {month}, SUM(charged_usd), 0 FROM usage_records "
               f"WHERE key_source IN {SHARED} GROUP BY {month}")


def downgrade() -> None:
    op.drop_table("model_allowlists")
    op.drop_table("budget_reservations")
    op.drop_table("budget_months")
    with op.batch_alter_table("usage_records") as batch:
        batch.drop_column("charged_usd")
