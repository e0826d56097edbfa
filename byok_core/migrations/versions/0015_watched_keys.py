"""keys that are watched: when each key was last checked, since when it stopped working and why, an
optional expiry date, the expiry warning sent, the problem its owner dismissed; and the leases that
let one process at a time run a background job

Revision ID: 0015
Revises: 0014
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def _columns() -> list[sa.Column[object]]:
    return [sa.Column("checked_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
            sa.Column("failing_since", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
            sa.Column("failing_reason", sa.String(16), nullable=True),
            sa.Column("expires_on", sa.Date(), nullable=True),
            sa.Column("expiry_warned_on", sa.Date(), nullable=True),
            sa.Column("notice_dismissed", sa.String(60), nullable=True)]


def upgrade() -> None:
    # Plain ADD COLUMN (no batch copy of the table): SQLite keeps the partial unique index over
    # active keys as it is.
    for column in _columns():
        op.add_column("api_keys", column)
    op.create_table(
        "leases",
        sa.Column("name", sa.String(40), primary_key=True),
        sa.Column("holder", sa.String(80), nullable=False),
        sa.Column("expires_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("leases")
    for column in reversed(_columns()):
        op.drop_column("api_keys", column.name)
