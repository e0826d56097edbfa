"""stored keys are bound to their base URL: schedule the re-sealing of first-format values

A migration cannot see the master key, so this one only leaves a marker; the app's upgrade
(``first_format.reseal_at_upgrade``, in the same transaction) re-seals every first-format value with
its row's base URL and replaces the marker. Only openai-compatible keys keep a stored base URL.

Revision ID: 0003
Revises: 0002
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("UPDATE api_keys SET base_url = NULL WHERE provider <> 'openai-compatible'")
    op.execute("INSERT INTO app_settings (name, value) VALUES ('keys.rebind_v1', 'pending')")


def downgrade() -> None:
    op.execute("DELETE FROM app_settings WHERE name = 'keys.rebind_v1'")
