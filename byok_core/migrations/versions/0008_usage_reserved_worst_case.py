"""usage rows keep the worst case a shared-key call reserved, so a call whose process died is
charged it when its row is closed; a partial index finds the rows still not finished

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

WHERE_PENDING = sa.text("status = 'pending'")


def upgrade() -> None:
    with op.batch_alter_table("usage_records") as batch:
        batch.add_column(sa.Column("reserved_usd", sa.Float(), nullable=True))
    op.create_index("ix_usage_pending", "usage_records", ["ts"], sqlite_where=WHERE_PENDING,
                    postgresql_where=WHERE_PENDING)


def downgrade() -> None:
    op.drop_index("ix_usage_pending", table_name="usage_records")
    with op.batch_alter_table("usage_records") as batch:
        batch.drop_column("reserved_usd")
