"""Writing the usage log: a row before each provider call (as not finished), completed after it.

Kept apart from ``usage`` (reading the log, with pandas), so a call and the CLI load only this."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import sqlalchemy as sa

from byok_core.clock import utcnow
from byok_core.errors import CallStatus
from byok_core.models import UsageRecord, saved_id, table
from byok_core.record import CallRecord

if TYPE_CHECKING:
    from byok_core.runtime import Runtime

log = logging.getLogger(__name__)
_T = table(UsageRecord)
ABANDONED = ("The server stopped while this call was running; the provider's usage never arrived, so it counts "
             "its worst case.")


# Built once (each call writes its row twice); the values are the parameters.
_START = sa.insert(_T)
_COMPLETE = sa.update(_T).where(_T.c.id == sa.bindparam("row_id"))


def _values(record: CallRecord) -> dict[str, object]:
    return dict(user_id=record.user_id, kind=record.provider.kind, provider=record.provider, model=record.model,
                key_source=record.key_source, input_tokens=record.input_tokens, output_tokens=record.output_tokens,
                cache_read_tokens=record.cache_read_tokens, cache_write_tokens=record.cache_write_tokens,
                reasoning_tokens=record.reasoning_tokens, latency_ms=record.latency_ms, status=record.status,
                cost_usd=record.cost_usd, error=record.error[:300] if record.error else None,
                connection=record.connection, priced_usd=record.priced_usd,
                key_row_id=record.key_row_id)


def start(conn: sa.Connection, record: CallRecord, reserved_usd: float | None = None) -> int:
    """Log a call that is about to be made, as not finished (``CallStatus.PENDING``), with the worst
    case a shared-key call reserved; its row id."""
    values = _values(record) | {"status": CallStatus.PENDING, "reserved_usd": reserved_usd}
    [row_id] = conn.execute(_START, values).inserted_primary_key or (None,)
    return saved_id(row_id)


def complete(conn: sa.Connection, row_id: int, record: CallRecord, charged_usd: float | None = None) -> None:
    """Record how the call logged as ``row_id`` ended, and on a shared key what it counted against
    budgets (``charged_usd``)."""
    charged = {} if charged_usd is None else {"charged_usd": charged_usd}
    conn.execute(_COMPLETE, {"row_id": row_id, **_values(record), **charged})



def close_abandoned(rt: Runtime, now: datetime | None = None) -> int:
    """Close the usage rows of calls whose process died (killed mid-reply): rows still not finished
    that are older than the longest a call may take (connect, first byte, BYOK_CALL_DEADLINE, and a
    margin for clocks). A shared-key one counts the worst case it reserved against its budgets,
    before that reservation would expire. How many were closed; run at each start and, every few
    minutes, by each process that writes replies."""
    settings = rt.settings
    longest = timedelta(seconds=settings.connect_timeout + settings.read_timeout + settings.call_deadline + 60)
    with rt.engine.connect() as conn:  # the partial index ix_usage_pending: no scan of the log
        rows = conn.execute(sa.select(_T.c.id, _T.c.ts, _T.c.user_id, _T.c.key_source, _T.c.reserved_usd).where(
            _T.c.status == CallStatus.PENDING, _T.c.ts < (now or utcnow()) - longest)).all()
    if not rows:
        return 0
    from byok_core import budgets, db  # only when there is something to close

    closed = 0
    for row in rows:
        charge = row.reserved_usd if row.key_source.shared else None
        with db.serialized(rt.engine) as conn:
            if conn.execute(sa.update(_T).where(_T.c.id == row.id, _T.c.status == CallStatus.PENDING).values(
                    status=CallStatus.CUT_OFF, charged_usd=charge, error=ABANDONED)).rowcount:
                closed += 1
                if charge:
                    budgets.charge_abandoned(conn, row.user_id, budgets.month_of(row.ts), charge)
    log.warning("closed %d usage row(s) of calls whose process stopped mid-call", closed)
    return closed
