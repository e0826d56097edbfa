"""Firecrawl search: POST /v2/search with a Bearer key. Key test: GET /v2/team/credit-usage (free)."""

from __future__ import annotations

import httpx

from byok_core.adapters.base import SearchAdapter, SearchResult, request_json
from byok_core.keys import ResolvedKey
from byok_core.providers import Provider


class FirecrawlAdapter(SearchAdapter):
    provider = Provider.FIRECRAWL

    def headers(self, key: ResolvedKey) -> dict[str, str]:
        return {"Authorization": f"Bearer {key.secret.reveal()}"}

    def search(self, client: httpx.Client, key: ResolvedKey, query: str, limit: int) -> list[SearchResult]:
        body = request_json(client, key, "POST", f"{key.base_url}/v2/search", headers=self.headers(key),
                            json_body={"query": query, "limit": limit})
        data = body.get("data") if isinstance(body, dict) else None
        items = data.get("web") if isinstance(data, dict) else data  # v2: {"web": [...]}, v1: [...]
        return self.results(items, "title", "url", "description", limit)

    def test_key(self, client: httpx.Client, key: ResolvedKey) -> str:
        body = request_json(client, key, "GET", f"{key.base_url}/v2/team/credit-usage", headers=self.headers(key))
        remaining = (body.get("data") or {}).get("remainingCredits") if isinstance(body, dict) else None
        return f"{remaining} credits left" if remaining is not None else "credit balance readable"
