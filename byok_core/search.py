"""Web search: resolve the key like a chat key, run the query, log the call, return normalized results."""

from __future__ import annotations

import httpx

from byok_core import calls, pricing
from byok_core.adapters import search_adapter
from byok_core.adapters.base import MAX_RESULTS, SearchResult
from byok_core.errors import ValidationError
from byok_core.providers import Provider
from byok_core.record import CallRecord
from byok_core.runtime import Runtime

__all__ = ["MAX_RESULTS", "SearchResult", "run_search"]

MAX_QUERY = 400


def run_search(rt: Runtime, *, user_id: int | None, provider: Provider, query: str, limit: int = 10,
               client: httpx.Client | None = None) -> list[SearchResult]:
    """Run one search (1 to 20 results). Raises NoKeyError, ValidationError, BudgetExceeded, SharedKeyLimit,
    or a ProviderError subclass; every call made, successful or not, is one usage row."""
    adapter = search_adapter(provider)
    query = " ".join((query or "").split())
    if not query:
        raise ValidationError("Type something to search for.")
    if len(query) > MAX_QUERY:
        raise ValidationError(f"Keep the search under {MAX_QUERY} characters.")
    limit = max(1, min(MAX_RESULTS, int(limit)))
    key = calls.prepare(rt, user_id, provider)
    record = CallRecord(provider, key.source, user_id=user_id)
    with calls.metered(rt, key, record, bound=pricing.search_bound(rt, provider), client=client) as c:
        return adapter.search(c, key.credential, query, limit)
