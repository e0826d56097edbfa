"""Brave Search: GET /res/v1/web/search with X-Subscription-Token.

Brave has no free authenticated call, so the key test is a one-result search (one request)."""

from __future__ import annotations

import httpx

from byok_core.adapters.base import SearchAdapter, SearchResult, request_json
from byok_core.keys import ResolvedKey
from byok_core.providers import Provider


class BraveAdapter(SearchAdapter):
    provider = Provider.BRAVE

    def headers(self, key: ResolvedKey) -> dict[str, str]:
        return {"X-Subscription-Token": key.secret.reveal(), "Accept": "application/json"}

    def search(self, client: httpx.Client, key: ResolvedKey, query: str, limit: int) -> list[SearchResult]:
        body = request_json(client, key, "GET", f"{key.base_url}/res/v1/web/search", headers=self.headers(key),
                            params={"q": query, "count": limit})
        web = body.get("web") if isinstance(body, dict) else None
        return self.results((web or {}).get("results"), "title", "url", "description", limit)
