"""a cookie's session is bound to the browser that signed in: the SHA-256 of a secret that only
pages of the app's own origin can read (localStorage), which a cookie planted from another port of
the same host cannot match. Sessions from before have none and sign in again once.

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("auth_sessions") as batch:
        batch.add_column(sa.Column("binding_hash", sa.String(64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("auth_sessions") as batch:
        batch.drop_column("binding_hash")
