"""budgets belong to an owner (kind, id) like keys: the team is ('team', 0), not a NULL user

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def _copy_into_new_table(columns: list[sa.Column], constraint: sa.UniqueConstraint, select: str) -> None:
    """Rebuild ``budgets`` (SQLite cannot drop its unnamed unique constraint in place)."""
    op.create_table("budgets_new", sa.Column("id", sa.Integer(), primary_key=True), *columns,
                    sa.Column("monthly_usd", sa.Float(), nullable=False), constraint)
    names = ", ".join(["id", *(c.name for c in columns), "monthly_usd"])
    op.execute(f"INSERT INTO budgets_new ({names}) {select}")
    op.drop_table("budgets")
    op.rename_table("budgets_new", "budgets")
    if op.get_context().dialect.name == "postgresql":  # the copied ids must not be handed out again
        op.execute("SELECT setval(pg_get_serial_sequence('budgets', 'id'), COALESCE(MAX(id), 0) + 1, false) "
                   "FROM budgets")


def upgrade() -> None:
    _copy_into_new_table(
        [sa.Column("owner_kind", sa.String(8), nullable=False), sa.Column("owner_id", sa.Integer(), nullable=False)],
        sa.UniqueConstraint("owner_kind", "owner_id", name="uq_budgets_owner"),
        "SELECT id, CASE WHEN user_id IS NULL THEN 'team' ELSE 'user' END, COALESCE(user_id, 0), monthly_usd "
        "FROM budgets",
    )


def downgrade() -> None:
    _copy_into_new_table(
        [sa.Column("user_id", sa.Integer(), nullable=True)],
        sa.UniqueConstraint("user_id", name="uq_budgets_user_id"),
        "SELECT id, CASE WHEN owner_kind = 'team' THEN NULL ELSE owner_id END, monthly_usd FROM budgets",
    )
