"""spend checked against the provider's bill: the stored key that paid each call, admins' billing
credentials (sealed), and the last comparison's lines

Revision ID: 0019
Revises: 0018
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("usage_records") as batch:
        batch.add_column(sa.Column("key_row_id", sa.String(32), nullable=True))
    op.create_table(
        "billing_keys",
        sa.Column("provider", sa.String(32), primary_key=True),
        sa.Column("ciphertext", sa.String(), nullable=False),
        sa.Column("key_id", sa.String(32), nullable=False),
        sa.Column("mask", sa.String(16), nullable=False),
        sa.Column("saved_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("saved_by", sa.String(80), nullable=False),
        sa.Column("checked_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.Column("checked_from", sa.Date(), nullable=True),
        sa.Column("checked_to", sa.Date(), nullable=True),
        sa.Column("problem", sa.String(300), nullable=True),
    )
    op.create_table(
        "bill_checks",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("provider", sa.String(32), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("key_row_id", sa.String(32), nullable=True),
        sa.Column("key_mask", sa.String(40), nullable=False),
        sa.Column("model", sa.String(120), nullable=False),
        sa.Column("verdict", sa.String(16), nullable=False),
        sa.Column("our_tokens", sa.Integer(), nullable=False),
        sa.Column("billed_tokens", sa.Integer(), nullable=False),
        sa.Column("our_usd", sa.Float(), nullable=True),
        sa.Column("billed_usd", sa.Float(), nullable=True),
        sa.Column("reason", sa.String(500), nullable=False),
        sa.Column("alerted", sa.Boolean(), nullable=False),
    )
    op.create_index("ix_bill_checks_provider_day", "bill_checks", ["provider", "day"])


def downgrade() -> None:
    op.drop_index("ix_bill_checks_provider_day", "bill_checks")
    op.drop_table("bill_checks")
    op.drop_table("billing_keys")
    with op.batch_alter_table("usage_records") as batch:
        batch.drop_column("key_row_id")
