"""Leases: one process at a time runs a background job (the key watch), across replicas, with
nothing but the database (a row per job, on SQLite and PostgreSQL alike).

A holder keeps its lease by taking it again before it ends; when a holder stops, another takes
over once the lease has run out (a process killed mid-round cannot give it up anyway)."""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlmodel import col

from byok_core import db
from byok_core.clock import utcnow
from byok_core.models import Lease, rowcount
from byok_core.runtime import Runtime


def acquire(rt: Runtime, name: str, holder: str, ttl: timedelta) -> bool:
    """Take (or keep) the lease ``name`` for ``holder`` for ``ttl`` from now: True when ``holder``
    holds it, False when another holder's lease has not run out. One statement decides, so two
    processes asking at once never both get it."""
    now = utcnow()
    take = sa.update(Lease).where(
        col(Lease.name) == name, (col(Lease.holder) == holder) | (col(Lease.expires_at) <= now),
    ).values(holder=holder, expires_at=now + ttl)
    try:
        with rt.engine.begin() as conn:
            if rowcount(conn.execute(take)):
                return True
            if conn.execute(sa.select(col(Lease.name)).where(col(Lease.name) == name)).first() is not None:
                return False
            conn.execute(sa.insert(Lease).values(name=name, holder=holder, expires_at=now + ttl))
            return True
    except IntegrityError:  # another process made the row first: it holds the lease
        return False
    except OperationalError as exc:
        problem = db.storage_error(exc)
        if problem is not None and problem.kind == "locked":  # SQLite's write lock: someone else is writing
            return False
        raise

