"""Web search: resolve the key like a chat key, run the query, log the call, return normalized results."""

from __future__ import annotations

from dataclasses import dataclass

import httpx

from byok_core import calls, keys, pricing
from byok_core.adapters import search_adapter
from byok_core.adapters.base import MAX_RESULTS, SearchResult
from byok_core.errors import ValidationError
from byok_core.identity import KeySource
from byok_core.pricing import CostBound
from byok_core.providers import Provider, ProviderKind
from byok_core.record import CallRecord
from byok_core.runtime import Runtime

__all__ = ["MAX_RESULTS", "SearchOutcome", "SearchResult", "default_provider", "run_search", "search", "search_with"]

MAX_QUERY = 400
# A search is paid by the person's own key first, then the team's, then the server's: the default
# provider is the first, in registry order (Firecrawl, Brave, Tavily, Serper), with the best such key.
_PREFERENCE = (KeySource.USER, KeySource.TEAM, KeySource.ENV)


@dataclass(frozen=True)
class SearchOutcome:
    results: list[SearchResult]
    record: CallRecord  # who paid, what it cost


def search(rt: Runtime, *, user_id: int | None, provider: Provider, query: str, limit: int = 10,
           client: httpx.Client | None = None) -> SearchOutcome:
    """Run one search (1 to 20 results). Raises NoKeyError, ValidationError, BudgetExceeded, SharedKeyLimit,
    or a ProviderError subclass; every call made, successful or not, is one usage row."""
    search_adapter(provider)
    query = _checked(query)
    key = calls.prepare(rt, user_id, provider)
    record = CallRecord(provider, key.source, user_id=user_id)
    results = search_with(rt, key, record, query, limit=limit, bound=pricing.search_bound(rt, provider),
                          client=client)
    return SearchOutcome(results, record)


def search_with(rt: Runtime, key: keys.ResolvedKey, record: CallRecord, query: str, *, limit: int,
                bound: CostBound, client: httpx.Client | None = None) -> list[SearchResult]:
    """``search`` with the key already resolved and the worst case already bounded (``search_bound``,
    so the price is read once); ``calls.metered`` fills ``record`` in, whatever happens."""
    adapter = search_adapter(key.provider)
    query = _checked(query)
    bound.usd  # noqa: B018 - the price, read now: not while the admission holds the budgets' lock
    with calls.metered(rt, key, record, bound=bound, client=client) as c:
        return adapter.search(c, key.credential, query, max(1, min(MAX_RESULTS, int(limit))))


def _checked(query: str) -> str:
    query = " ".join((query or "").split())
    if not query:
        raise ValidationError("Type something to search for.")
    if len(query) > MAX_QUERY:
        raise ValidationError(f"Keep the search under {MAX_QUERY} characters.")
    return query


def run_search(rt: Runtime, *, user_id: int | None, provider: Provider, query: str, limit: int = 10,
               client: httpx.Client | None = None) -> list[SearchResult]:
    """``search``'s results only."""
    return search(rt, user_id=user_id, provider=provider, query=query, limit=limit, client=client).results


def default_provider(rt: Runtime, user_id: int | None) -> Provider | None:
    """The search provider a person's searches use unless they pick one: the first with their own
    key, else the first with a team key, else the first with a server key; None when there is none."""
    found = keys.sources(rt, user_id)
    providers = Provider.of_kind(ProviderKind.SEARCH)
    return next((p for source in _PREFERENCE for p in providers if found.get(p) is source), None)
