"""Serper (Google results): POST /search with X-API-KEY.

Serper has no free authenticated call, so the key test is a one-result search (one credit)."""

from __future__ import annotations

import httpx

from byok_core.adapters.base import SearchAdapter, SearchResult
from byok_core.credential import Credential
from byok_core.providers import Provider


class SerperAdapter(SearchAdapter):
    provider = Provider.SERPER

    def headers(self, cred: Credential) -> dict[str, str]:
        return {"X-API-KEY": cred.secret.reveal()}

    def search(self, client: httpx.Client, cred: Credential, query: str, limit: int) -> list[SearchResult]:
        body = self.request_json(client, cred, "POST", f"{cred.base_url}/search",
                                 json_body={"q": query, "num": limit})
        return self.results(body.get("organic") if isinstance(body, dict) else None, "title", "link", "snippet", limit)
