"""Web search: resolve the key like a chat key, run the query, log the call, return normalized results."""

from __future__ import annotations

import logging
import time

import httpx

from byok_core import budgets, keys, pricing, usage
from byok_core.adapters import ADAPTERS
from byok_core.adapters.base import MAX_RESULTS, SearchAdapter, SearchResult, check_target, client_for
from byok_core.adapters.errors import ProviderError
from byok_core.errors import ValidationError
from byok_core.providers import Provider, ProviderKind
from byok_core.runtime import Runtime

__all__ = ["SearchResult", "run_search", "MAX_RESULTS"]

log = logging.getLogger(__name__)
MAX_QUERY = 400


def run_search(rt: Runtime, *, user_id: int | None, provider: Provider, query: str, limit: int = 10,
               client: httpx.Client | None = None) -> list[SearchResult]:
    """Run one search (1 to 20 results). Raises NoKeyError, ValidationError, BudgetExceeded, or a ProviderError
    subclass; every call made, successful or not, is one usage row."""
    if provider.kind is not ProviderKind.SEARCH:
        raise ValidationError(f"{provider.label} is not a search provider.")
    query = " ".join((query or "").split())
    if not query:
        raise ValidationError("Type something to search for.")
    if len(query) > MAX_QUERY:
        raise ValidationError(f"Keep the search under {MAX_QUERY} characters.")
    limit = max(1, min(MAX_RESULTS, int(limit)))
    adapter: SearchAdapter = ADAPTERS[provider]
    key = keys.resolve(rt, user_id, provider)
    check_target(key, rt.settings.allow_private_endpoints)
    budgets.check(rt, user_id, key.source)  # raises BudgetExceeded once a shared key's budget is used up
    error: ProviderError | None = None
    results: list[SearchResult] = []
    started = time.perf_counter()
    with client_for(rt.environ, client) as c:
        try:
            results = adapter.search(c, key, query, limit)
        except ProviderError as exc:
            error = exc
    latency_ms = int((time.perf_counter() - started) * 1000)
    usage.record_call(rt, user_id=user_id, provider=provider, model="", key_source=key.source, input_tokens=None,
                      output_tokens=None, latency_ms=latency_ms, status=error.kind if error else "ok",
                      cost_usd=None if error else pricing.search_price(rt, provider),
                      error=str(error) if error else None)
    keys.mark_used(rt, key)
    log.info("search %s via %s key: %s, %d results in %d ms", provider.value, key.source.value,
             error.kind if error else "ok", len(results), latency_ms)
    if error is not None:
        raise error
    return results
