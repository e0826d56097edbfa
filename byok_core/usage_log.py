"""Writing the usage log: a row before each provider call (as not finished), completed after it.

Kept apart from ``usage`` (reading the log, with pandas), so a call and the CLI load only this."""

from __future__ import annotations

import sqlalchemy as sa

from byok_core.errors import CallStatus
from byok_core.models import UsageRecord, saved_id, table
from byok_core.record import CallRecord

_T = table(UsageRecord)


def _values(record: CallRecord) -> dict[str, object]:
    return dict(user_id=record.user_id, kind=record.provider.kind, provider=record.provider, model=record.model,
                key_source=record.key_source, input_tokens=record.input_tokens, output_tokens=record.output_tokens,
                cache_read_tokens=record.cache_read_tokens, cache_write_tokens=record.cache_write_tokens,
                reasoning_tokens=record.reasoning_tokens, latency_ms=record.latency_ms, status=record.status,
                cost_usd=record.cost_usd, error=record.error[:300] if record.error else None)


def start(conn: sa.Connection, record: CallRecord) -> int:
    """Log a call that is about to be made, as not finished (``CallStatus.PENDING``); its row id."""
    values = _values(record) | {"status": CallStatus.PENDING}
    [row_id] = conn.execute(sa.insert(_T).values(**values)).inserted_primary_key or (None,)
    return saved_id(row_id)


def complete(conn: sa.Connection, row_id: int, record: CallRecord, charged_usd: float | None = None) -> None:
    """Record how the call logged as ``row_id`` ended, and on a shared key what it counted against
    budgets (``charged_usd``)."""
    charged = {} if charged_usd is None else {"charged_usd": charged_usd}
    conn.execute(sa.update(_T).where(_T.c.id == row_id).values(**_values(record), **charged))
