"""A loopback fake of OpenAI's and Anthropic's billing APIs (Admin keys), answering in their
documented shapes (tests/recordings/MANIFEST.json "billing": no public recording of these endpoints
was found), paged like the real ones.

    with FakeBilling(Provider.OPENAI, ADMIN_KEY) as bill:
        bill.usage.append(Usage(date(2026, 12, 3), "key_abc", "gpt-4o-mini-2024-07-18", 1200, 300, 0, 3))
        bill.keys.append(("key_abc", "sk-...wxyz"))
        environ = {**bill.env()}

Each report answers one bucket per UTC day of the window asked for (empty ``results`` on days with no
usage), ``page_size`` buckets (or list items) per page, following ``next_page``/``has_more``
(reports) or ``last_id``/``has_more`` (lists). ``revoked`` answers every request 401."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self
from urllib.parse import parse_qs, urlsplit

from byok_core.providers import Provider


@dataclass(frozen=True)
class Usage:
    day: date
    key_id: str
    model: str
    input_tokens: int  # all input, cache reads and writes included
    output_tokens: int
    cached_tokens: int = 0  # cache reads (part of input_tokens)
    requests: int = 1


@dataclass(frozen=True)
class Cost:
    day: date
    model: str
    usd: float
    kind: str = "input"  # OpenAI's line item: "<model>, input" / "<model>, output"


ERRORS = {  # documented error bodies
    Provider.OPENAI: {"error": {"message": "Incorrect API key provided.", "type": "invalid_request_error",
                                "param": None, "code": "invalid_api_key"}},
    Provider.ANTHROPIC: {"type": "error", "error": {"type": "authentication_error", "message": "invalid x-api-key"}},
}


def _days(query: dict[str, list[str]], provider: Provider) -> list[date]:
    if provider is Provider.OPENAI:
        start = datetime.fromtimestamp(int(query["start_time"][0]), UTC).date()
        end = datetime.fromtimestamp(int(query["end_time"][0]), UTC).date()
    else:
        start = datetime.fromisoformat(query["starting_at"][0].replace("Z", "+00:00")).date()
        end = datetime.fromisoformat(query["ending_at"][0].replace("Z", "+00:00")).date()
    return [start + timedelta(days=n) for n in range((end - start).days)]


class _JsonFake:
    """A loopback server that answers each GET with JSON: ``respond(path, headers)`` gives (status, body)."""

    def __init__(self) -> None:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                status, body = outer.respond(self.path, self.headers)
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.origin = f"http://127.0.0.1:{self.server.server_address[1]}"

    def respond(self, path: str, headers: Any) -> tuple[int, Any]:
        raise NotImplementedError

    def __enter__(self) -> Self:
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.shutdown()
        self.server.server_close()


class FakeBilling(_JsonFake):
    def __init__(self, provider: Provider, admin_key: str, page_size: int = 31):
        super().__init__()
        self.provider = provider
        self.admin_key = admin_key
        self.page_size = page_size
        self.revoked = False
        self.usage: list[Usage] = []
        self.costs: list[Cost] = []
        self.keys: list[tuple[str, str]] = []  # (id, redacted value / partial hint)
        self.paths: list[str] = []
        self.auth: list[str] = []
        self.base_url = f"{self.origin}/v1"

    def respond(self, path: str, headers: Any) -> tuple[int, Any]:
        self.paths.append(path)
        header = "authorization" if self.provider is Provider.OPENAI else "x-api-key"
        given = (headers.get(header) or "").removeprefix("Bearer ")
        self.auth.append(given)
        if self.revoked or given != self.admin_key:
            return 401, ERRORS[self.provider]
        parts = urlsplit(path)
        body = self.answer(parts.path, parse_qs(parts.query))
        return (200, body) if body is not None else (404, {"error": {"message": "not found"}})

    def env(self) -> dict[str, str]:
        name = self.provider.spec.base_url_env
        assert name is not None
        return {name: self.base_url, "BYOK_ALLOW_PRIVATE_ENDPOINTS": "1"}

    # --- the answers -------------------------------------------------------------------------------

    def _report(self, query: dict[str, list[str]], results: Any) -> dict[str, Any]:
        days = _days(query, self.provider)
        at = int(query.get("page", ["0"])[0])
        page = days[at:at + self.page_size]
        more = at + self.page_size < len(days)
        openai = self.provider is Provider.OPENAI
        buckets = []
        for d in page:
            start = datetime(d.year, d.month, d.day, tzinfo=UTC)
            end = start + timedelta(days=1)
            when = ({"object": "bucket", "start_time": int(start.timestamp()), "end_time": int(end.timestamp())}
                    if openai else {"starting_at": start.strftime("%Y-%m-%dT%H:%M:%SZ"),
                                    "ending_at": end.strftime("%Y-%m-%dT%H:%M:%SZ")})
            buckets.append({**when, "results": results(d)})
        return {**({"object": "page"} if openai else {}), "data": buckets, "has_more": more,
                "next_page": str(at + self.page_size) if more else None}

    def _list(self, query: dict[str, list[str]], items: list[dict[str, Any]], cursor: str) -> dict[str, Any]:
        after = query.get(cursor, [None])[0]
        start = next((i + 1 for i, item in enumerate(items) if item["id"] == after), 0)
        page = items[start:start + self.page_size]
        return {"object": "list", "data": page, "first_id": page[0]["id"] if page else None,
                "last_id": page[-1]["id"] if page else None, "has_more": start + self.page_size < len(items)}

    def answer(self, path: str, query: dict[str, list[str]]) -> dict[str, Any] | None:
        if self.provider is Provider.OPENAI:
            return self._openai(path, query)
        return self._anthropic(path, query)

    def _openai(self, path: str, query: dict[str, list[str]]) -> dict[str, Any] | None:
        if path == "/v1/organization/usage/completions":
            assert query["group_by"] == ["api_key_id", "model"] and query["bucket_width"] == ["1d"]
            return self._report(query, lambda d: [
                {"object": "organization.usage.completions.result", "input_tokens": u.input_tokens,
                 "output_tokens": u.output_tokens, "input_cached_tokens": u.cached_tokens,
                 "input_audio_tokens": 0, "output_audio_tokens": 0, "num_model_requests": u.requests,
                 "project_id": None, "user_id": None, "api_key_id": u.key_id, "model": u.model, "batch": None}
                for u in self.usage if u.day == d])
        if path == "/v1/organization/costs":
            return self._report(query, lambda d: [
                {"object": "organization.costs.result", "amount": {"value": c.usd, "currency": "usd"},
                 "line_item": f"{c.model}, {c.kind}", "project_id": None} for c in self.costs if c.day == d])
        if path == "/v1/organization/projects":
            return self._list(query, [{"object": "organization.project", "id": "proj_fake", "name": "Default project",
                                       "created_at": 1711471533, "archived_at": None, "status": "active"}], "after")
        if path == "/v1/organization/projects/proj_fake/api_keys":
            return self._list(query, [
                {"object": "organization.project.api_key", "redacted_value": hint, "name": "Key", "created_at": 1,
                 "last_used_at": 1, "id": key_id, "owner": {"type": "user"}} for key_id, hint in self.keys], "after")
        return None

    def _anthropic(self, path: str, query: dict[str, list[str]]) -> dict[str, Any] | None:
        if path == "/v1/organizations/usage_report/messages":
            assert query["group_by[]"] == ["api_key_id", "model"] and query["bucket_width"] == ["1d"]
            return self._report(query, lambda d: [
                {"uncached_input_tokens": u.input_tokens - u.cached_tokens,
                 "cache_creation": {"ephemeral_1h_input_tokens": 0, "ephemeral_5m_input_tokens": 0},
                 "cache_read_input_tokens": u.cached_tokens, "output_tokens": u.output_tokens,
                 "server_tool_use": {"web_search_requests": 0}, "api_key_id": u.key_id, "workspace_id": None,
                 "model": u.model, "service_tier": None, "context_window": None} for u in self.usage if u.day == d])
        if path == "/v1/organizations/cost_report":
            return self._report(query, lambda d: [
                {"currency": "USD", "amount": f"{c.usd * 100:.4f}", "workspace_id": None,
                 "description": f"{c.model} {c.kind} tokens", "cost_type": "tokens", "context_window": "0-200k",
                 "model": c.model, "service_tier": "standard", "token_type": f"{c.kind}_tokens"}
                for c in self.costs if c.day == d])
        if path == "/v1/organizations/api_keys":
            return self._list(query, [
                {"id": key_id, "type": "api_key", "name": "Key", "workspace_id": None,
                 "created_at": "2026-01-01T00:00:00Z", "created_by": {"id": "user_1", "type": "user"},
                 "partial_key_hint": hint, "status": "active"}
                for key_id, hint in self.keys], "after_id")
        return None


class FakeOpenRouterKey(_JsonFake):
    """A loopback fake of OpenRouter's ``GET /api/v1/key`` (its documented shape: ``data`` with
    ``usage_daily``/``usage_monthly`` in USD) for one key; ``revoked`` answers 401."""

    def __init__(self, key: str, month_usd: float, today_usd: float = 0.0) -> None:
        super().__init__()
        self.key, self.month_usd, self.today_usd, self.revoked = key, month_usd, today_usd, False
        self.requests: list[str] = []
        self.url = f"{self.origin}/api/v1"

    def respond(self, path: str, headers: Any) -> tuple[int, Any]:
        self.requests.append(path)
        if path != "/api/v1/key":
            return 404, {"error": {"code": 404, "message": "Not Found"}}
        if self.revoked or (headers.get("authorization") or "").removeprefix("Bearer ") != self.key:
            return 401, {"error": {"code": 401, "message": "User not found."}}
        return 200, {"data": {
            "label": f"{self.key[:10]}...{self.key[-3:]}", "limit": None, "is_free_tier": False,
            "usage": self.month_usd + 3.0, "usage_daily": self.today_usd, "usage_weekly": self.month_usd,
            "usage_monthly": self.month_usd, "byok_usage": 0, "byok_usage_daily": 0, "byok_usage_weekly": 0,
            "byok_usage_monthly": 0}}
