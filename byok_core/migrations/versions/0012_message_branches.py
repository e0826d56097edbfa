"""messages form a tree: each one's parent is the message it answers or follows (an edited prompt
is a sibling of the original, a regenerated reply a sibling of the earlier one), and a
conversation remembers the tip of the branch it shows (NULL: its newest message)

Revision ID: 0012
Revises: 0011
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain ADD COLUMN (no batch copy of the table): SQLite keeps the partial unique index over
    # streaming replies as it is.
    op.add_column("messages", sa.Column("parent_id", sa.Integer(), nullable=True))
    op.create_index("ix_messages_parent_id", "messages", ["parent_id"])
    op.add_column("conversations", sa.Column("leaf_id", sa.Integer(), nullable=True))
    # Every conversation so far is one line: each message follows the one before it.
    op.execute("UPDATE messages SET parent_id = (SELECT MAX(earlier.id) FROM messages AS earlier "
               "WHERE earlier.conversation_id = messages.conversation_id AND earlier.id < messages.id)")


def downgrade() -> None:
    op.drop_column("conversations", "leaf_id")
    op.drop_index("ix_messages_parent_id", "messages")
    op.drop_column("messages", "parent_id")
