"""replies written by a server-side worker: a status per message, a heartbeat, a stop flag

Revision ID: 0006
Revises: 0005
"""

import json

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

WHERE_STREAMING = sa.text("status = 'streaming'")


def upgrade() -> None:
    with op.batch_alter_table("messages") as batch:
        batch.add_column(sa.Column("status", sa.String(16), nullable=False, server_default="done"))
        batch.add_column(sa.Column("heartbeat_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True))
        batch.add_column(sa.Column("stop_requested", sa.Boolean(), nullable=False, server_default=sa.false()))
    op.create_index("ux_messages_one_streaming", "messages", ["conversation_id"], unique=True,
                    sqlite_where=WHERE_STREAMING, postgresql_where=WHERE_STREAMING)
    # Replies stored before this version recorded a failed call in their metadata only.
    conn = op.get_bind()
    failed = []
    for row_id, meta in conn.execute(sa.text("SELECT id, meta FROM messages WHERE role = 'assistant'")):
        try:
            status = json.loads(meta or "{}").get("status")
        except (ValueError, AttributeError):
            continue
        if status not in (None, "ok"):
            failed.append({"id": row_id})
    if failed:
        conn.execute(sa.text("UPDATE messages SET status = 'failed' WHERE id = :id"), failed)


def downgrade() -> None:
    op.drop_index("ux_messages_one_streaming", "messages")
    with op.batch_alter_table("messages") as batch:
        batch.drop_column("stop_requested")
        batch.drop_column("heartbeat_at")
        batch.drop_column("status")
