"""Tavily: POST /search with a Bearer key. Key test: GET /usage (free)."""

from __future__ import annotations

import httpx

from byok_core.adapters.base import SearchAdapter, SearchResult, request_json
from byok_core.keys import ResolvedKey
from byok_core.providers import Provider


class TavilyAdapter(SearchAdapter):
    provider = Provider.TAVILY

    def headers(self, key: ResolvedKey) -> dict[str, str]:
        return {"Authorization": f"Bearer {key.secret.reveal()}"}

    def search(self, client: httpx.Client, key: ResolvedKey, query: str, limit: int) -> list[SearchResult]:
        body = request_json(client, key, "POST", f"{key.base_url}/search", headers=self.headers(key),
                            json_body={"query": query, "max_results": limit})
        return self.results(body.get("results") if isinstance(body, dict) else None, "title", "url", "content", limit)

    def test_key(self, client: httpx.Client, key: ResolvedKey) -> str:
        body = request_json(client, key, "GET", f"{key.base_url}/usage", headers=self.headers(key))
        usage = (body.get("key") or {}).get("usage") if isinstance(body, dict) else None
        return f"{usage} credits used on this key" if usage is not None else "usage readable"
