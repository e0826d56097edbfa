"""Serper (Google results): POST /search with X-API-KEY.

Serper has no free authenticated call, so the key test is a one-result search (one credit)."""

from __future__ import annotations

import httpx

from byok_core.adapters.base import SearchAdapter, SearchResult, request_json
from byok_core.keys import ResolvedKey
from byok_core.providers import Provider


class SerperAdapter(SearchAdapter):
    provider = Provider.SERPER

    def headers(self, key: ResolvedKey) -> dict[str, str]:
        return {"X-API-KEY": key.secret.reveal()}

    def search(self, client: httpx.Client, key: ResolvedKey, query: str, limit: int) -> list[SearchResult]:
        body = request_json(client, key, "POST", f"{key.base_url}/search", headers=self.headers(key),
                            json_body={"q": query, "num": limit})
        return self.results(body.get("organic") if isinstance(body, dict) else None, "title", "link", "snippet", limit)
