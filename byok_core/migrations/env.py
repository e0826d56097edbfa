"""Alembic environment: runs on the connection that byok_core.db.upgrade hands it."""

from alembic import context
from sqlmodel import SQLModel

from byok_core.models import add_partial_indexes  # registers the tables too

add_partial_indexes()

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=SQLModel.metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
