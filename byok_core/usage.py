"""The usage log: one row per provider call, chat or search, successful or not."""

from __future__ import annotations

from sqlmodel import Session

from byok_core.models import KeySource, UsageRecord
from byok_core.providers import Provider
from byok_core.runtime import Runtime


def record_call(rt: Runtime, *, user_id: int | None, provider: Provider, model: str, key_source: KeySource,
                input_tokens: int | None, output_tokens: int | None, latency_ms: int, status: str = "ok",
                cost_usd: float | None = None, error: str | None = None) -> UsageRecord:
    """Append one call to the log. ``cost_usd`` None means the price is unknown, never zero."""
    row = UsageRecord(
        user_id=user_id, kind=provider.kind.value, provider=provider.value, model=model or "",
        key_source=KeySource(key_source).value, input_tokens=input_tokens, output_tokens=output_tokens,
        latency_ms=int(latency_ms), status=status, cost_usd=cost_usd, error=(error or None) and error[:300],
    )
    with Session(rt.engine, expire_on_commit=False) as session, session.begin():
        session.add(row)
    return row
