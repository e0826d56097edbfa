"""conversations keep their settings (system prompt, temperature, output cap, reasoning effort), and
presets name a provider, a model and such settings, a person's own or the team's

Revision ID: 0011
Revises: 0010
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def _settings() -> list[sa.Column[object]]:
    return [sa.Column("system_prompt", sa.Text(), nullable=False, server_default=""),
            sa.Column("temperature", sa.Float(), nullable=True),
            sa.Column("max_output_tokens", sa.Integer(), nullable=True),
            sa.Column("reasoning_effort", sa.String(8), nullable=True)]


def upgrade() -> None:
    with op.batch_alter_table("conversations") as batch:
        for column in _settings():
            batch.add_column(column)
    op.create_table(
        "presets",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("owner_kind", sa.String(8), nullable=False),
        sa.Column("owner_id", sa.Integer(), nullable=False, index=True),
        sa.Column("name", sa.String(80), nullable=False),
        sa.Column("provider", sa.String(32), nullable=False),
        sa.Column("model", sa.String(120), nullable=False),
        *_settings(),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("updated_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.UniqueConstraint("owner_kind", "owner_id", "name", name="uq_presets_owner_name"),
    )


def downgrade() -> None:
    op.drop_table("presets")
    with op.batch_alter_table("conversations") as batch:
        for column in reversed(_settings()):
            batch.drop_column(column.name)
