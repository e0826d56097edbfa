"""Firecrawl search: POST /v2/search with a Bearer key. Key test: GET /v2/team/credit-usage (free)."""

from __future__ import annotations

import httpx

from byok_core.adapters.base import SearchAdapter, SearchResult
from byok_core.credential import Credential
from byok_core.providers import Provider


class FirecrawlAdapter(SearchAdapter):
    provider = Provider.FIRECRAWL

    def headers(self, cred: Credential) -> dict[str, str]:
        return {"Authorization": f"Bearer {cred.secret.reveal()}"}

    def search(self, client: httpx.Client, cred: Credential, query: str, limit: int) -> list[SearchResult]:
        body = self.request_json(client, cred, "POST", f"{cred.base_url}/v2/search",
                                 json_body={"query": query, "limit": limit})
        data = body.get("data") if isinstance(body, dict) else None
        items = data.get("web") if isinstance(data, dict) else data  # v2: {"web": [...]}, v1: [...]
        return self.results(items, "title", "url", "description", limit)

    def test_key(self, client: httpx.Client, cred: Credential) -> str:
        body = self.request_json(client, cred, "GET", f"{cred.base_url}/v2/team/credit-usage")
        remaining = (body.get("data") or {}).get("remainingCredits") if isinstance(body, dict) else None
        return f"{remaining} credits left" if remaining is not None else "credit balance readable"
