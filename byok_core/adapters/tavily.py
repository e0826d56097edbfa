"""Tavily: POST /search with a Bearer key. Key test: GET /usage (free)."""

from __future__ import annotations

import httpx

from byok_core.adapters.base import SearchAdapter, SearchResult
from byok_core.credential import Credential
from byok_core.providers import Provider


class TavilyAdapter(SearchAdapter):
    provider = Provider.TAVILY

    def headers(self, cred: Credential) -> dict[str, str]:
        return {"Authorization": f"Bearer {cred.secret.reveal()}"}

    def search(self, client: httpx.Client, cred: Credential, query: str, limit: int) -> list[SearchResult]:
        body = self.request_json(client, cred, "POST", f"{cred.base_url}/search",
                                 json_body={"query": query, "max_results": limit})
        return self.results(body.get("results") if isinstance(body, dict) else None, "title", "url", "content", limit)

    def test_key(self, client: httpx.Client, cred: Credential) -> str:
        body = self.request_json(client, cred, "GET", f"{cred.base_url}/usage")
        usage = (body.get("key") or {}).get("usage") if isinstance(body, dict) else None
        return f"{usage} credits used on this key" if usage is not None else "usage readable"
