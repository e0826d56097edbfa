"""Brave Search: GET /res/v1/web/search with X-Subscription-Token.

Brave has no free authenticated call, so the key test is a one-result search (one request)."""

from __future__ import annotations

import httpx

from byok_core.adapters.base import SearchAdapter, SearchResult
from byok_core.credential import Credential
from byok_core.providers import Provider


class BraveAdapter(SearchAdapter):
    provider = Provider.BRAVE

    def headers(self, cred: Credential) -> dict[str, str]:
        return {"X-Subscription-Token": cred.secret.reveal(), "Accept": "application/json"}

    def search(self, client: httpx.Client, cred: Credential, query: str, limit: int) -> list[SearchResult]:
        body = self.request_json(client, cred, "GET", f"{cred.base_url}/res/v1/web/search",
                                 params={"q": query, "count": limit})
        web = body.get("web") if isinstance(body, dict) else None
        return self.results((web or {}).get("results"), "title", "url", "description", limit)
