"""Helpers for tests that make provider calls against tests/fakeproviders.py servers."""

from __future__ import annotations

import base64
import os
import warnings
from contextlib import contextmanager

import sqlalchemy as sa
from sqlmodel import Session, col, select

from byok_core import budgets, usage
from byok_core.models import UsageRecord
from byok_core.record import CallRecord
from byok_core.runtime import open_runtime


@contextmanager
def runtime_with(environ: dict, **extra: str):
    """A runtime on the test database with extra environment (base URLs, env keys, timeouts)."""
    rt = open_runtime({**environ, **extra}, migrate=False)  # the test database is migrated already
    try:
        yield rt
    finally:
        rt.engine.dispose()


def usage_rows(rt) -> list[UsageRecord]:
    with Session(rt.engine) as session:
        return list(session.exec(select(UsageRecord).order_by(col(UsageRecord.id))))


def dump_database(rt) -> str:
    """Every value in every table, as text."""
    out = []
    with rt.engine.connect() as conn:
        meta = sa.MetaData()
        with warnings.catch_warnings():  # expression-based indexes cannot be reflected; rows can
            warnings.simplefilter("ignore", sa.exc.SAWarning)
            meta.reflect(bind=conn)
        for table in meta.sorted_tables:
            for row in conn.execute(sa.select(table)):
                out.append(" ".join(str(v) for v in row))
    return "\n".join(out)


def log_call(rt, **fields) -> CallRecord:
    """Write one usage row as a finished call would (``calls.metered`` does this for real calls); a
    shared-key call counts its cost against budgets, the running figures rebuilt from the log."""
    record = CallRecord(**fields)
    with rt.engine.begin() as conn:
        row_id = usage.start(conn, record)
        usage.complete(conn, row_id, record)
        if record.key_source.shared:
            conn.execute(sa.update(UsageRecord).where(col(UsageRecord.id) == row_id)
                         .values(charged_usd=record.cost_usd or 0.0))
    if record.key_source.shared:
        budgets.reconcile(rt)
    return record


def sealed_by_version_1(keyring, plain: str, context: str) -> str:
    """A stored value as the first version sealed it: associated data of owner, provider and row
    only (no base URL), header ``v1``."""
    header = f"v1:{keyring.primary.key_id}"
    nonce = os.urandom(12)
    sealed = keyring.primary.aead.encrypt(nonce, plain.encode(), f"{header}|{context}".encode())
    return f"{header}:{base64.urlsafe_b64encode(nonce + sealed).decode().rstrip('=')}"
