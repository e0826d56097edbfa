"""caps people set on their own keys: a monthly amount per provider, with this month's spend and the
worst cases of calls in flight (held like shared budgets)

Revision ID: 0018
Revises: 0016
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0018"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "own_key_caps",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("user_id", sa.Integer(), sa.ForeignKey("users.id"), nullable=False),
        sa.Column("provider", sa.String(32), nullable=False),
        sa.Column("monthly_usd", sa.Float(), nullable=False),
        sa.Column("stop", sa.Boolean(), nullable=False),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.UniqueConstraint("user_id", "provider", name="uq_own_key_caps_user_provider"),
    )
    op.create_table(
        "own_cap_months",
        sa.Column("cap_id", sa.Integer(), sa.ForeignKey("own_key_caps.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("month", sa.String(7), primary_key=True),
        sa.Column("spent_usd", sa.Float(), nullable=False),
    )
    op.create_table(
        "own_cap_reservations",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("cap_id", sa.Integer(), sa.ForeignKey("own_key_caps.id", ondelete="CASCADE"), nullable=False,
                  index=True),
        sa.Column("amount_usd", sa.Float(), nullable=False),
        sa.Column("expires_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False, index=True),
    )


def downgrade() -> None:
    op.drop_table("own_cap_reservations")
    op.drop_table("own_cap_months")
    op.drop_table("own_key_caps")
