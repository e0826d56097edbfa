"""Loopback fake provider servers that speak each provider's documented wire format.

    with FakeProvider(Provider.OPENAI, reply="Hello there") as server:
        environ = {..., **server.env()}        # OPENAI_BASE_URL=http://127.0.0.1:PORT/v1
        ...
        server.requests[0].headers["authorization"]

One server plays one provider: streaming chat, the models list, search and key-check endpoints.
Faults are scripted per server, counted in text chunks sent: ``cut_after`` (drop the connection),
``close_after`` (end the HTTP body cleanly without the end marker), ``garbage_after`` (a data line
that is not JSON), ``stall_after`` + ``stall`` (go silent), ``trickle`` (a byte at a time, slowly),
``hold_after`` (wait for ``server.gate.set()``), ``stream_error`` (the provider's own error event after the text), or
``status`` (+ ``error_body``/``error_headers``) for every request. ``expect_key`` answers 401, with a
body that echoes the wrong key as some providers do.
"""

from __future__ import annotations

import json
import re
import socket
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from byok_core.providers import Provider

_URL_SUFFIX = {Provider.OPENAI: "/v1", Provider.OPENAI_COMPATIBLE: "/v1"}
_AUTH = {
    Provider.OPENAI: "authorization", Provider.OPENAI_COMPATIBLE: "authorization", Provider.FIRECRAWL: "authorization",
    Provider.TAVILY: "authorization", Provider.ANTHROPIC: "x-api-key", Provider.GOOGLE: "x-goog-api-key",
    Provider.BRAVE: "x-subscription-token", Provider.SERPER: "x-api-key",
}
_MODELS = {
    Provider.OPENAI: ["gpt-4o-mini", "gpt-4o", "text-embedding-3-small"],
    Provider.OPENAI_COMPATIBLE: ["llama-3.1-8b-instant", "mixtral-8x7b"],
    Provider.ANTHROPIC: ["claude-haiku-4-5", "claude-sonnet-4-5"],
    Provider.GOOGLE: ["gemini-2.5-flash", "gemini-2.5-pro"],
}
DEFAULT_RESULTS = [
    ("Example One", "https://example.com/one", "The first <strong>result</strong> snippet."),
    ("Example Two", "https://example.org/two", "The second result snippet."),
    ("Example Three", "https://example.net/three", "The third result snippet."),
]
_REASONS = {400: "Bad request", 401: "Invalid API key", 403: "Forbidden", 404: "Not found",
            429: "Rate limit exceeded", 500: "Internal server error", 502: "Bad gateway",
            503: "Service unavailable", 529: "Overloaded"}


@dataclass
class Recorded:
    method: str
    path: str  # with the query string
    headers: dict[str, str]  # lower-case names
    body: Any  # decoded JSON, or None


def default_error_body(provider: Provider, status: int, message: str | None = None) -> Any:
    """An error body shaped like the provider's own documented ones."""
    message = message or _REASONS.get(status, "Error")
    if provider in (Provider.OPENAI, Provider.OPENAI_COMPATIBLE):
        kind, code = {401: ("invalid_request_error", "invalid_api_key"),
                      404: ("invalid_request_error", "model_not_found"),
                      429: ("requests", "rate_limit_exceeded")}.get(status, ("server_error" if status >= 500 else
                                                                               "invalid_request_error", None))
        return {"error": {"message": message, "type": kind, "param": None, "code": code}}
    if provider is Provider.ANTHROPIC:
        kind = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
                404: "not_found_error", 429: "rate_limit_error", 529: "overloaded_error"}.get(status, "api_error")
        return {"type": "error", "error": {"type": kind, "message": message}}
    if provider is Provider.GOOGLE:
        state = {400: "INVALID_ARGUMENT", 403: "PERMISSION_DENIED", 404: "NOT_FOUND", 429: "RESOURCE_EXHAUSTED",
                 503: "UNAVAILABLE"}.get(status, "INTERNAL")
        return {"error": {"code": status, "message": message, "status": state}}
    if provider is Provider.FIRECRAWL:
        return {"success": False, "error": message}
    if provider is Provider.BRAVE:
        return {"type": "ErrorResponse", "error": {"id": "e1", "status": status, "code": "ERROR", "detail": message}}
    if provider is Provider.TAVILY:
        return {"detail": {"error": message}}
    return {"message": message, "statusCode": status}


def _split(reply: str) -> list[str]:
    return re.findall(r"\S+\s*|\s+", reply) or [""]


class FakeProvider:
    def __init__(self, provider: Provider, *, reply: str = "Hello there", chunks: list[str] | None = None,
                 input_tokens: int = 12, output_tokens: int | None = None,
                 status: int | None = None, error_body: Any = None, error_headers: dict[str, str] | None = None,
                 expect_key: str | None = None, cut_after: int | None = None, close_after: int | None = None,
                 garbage_after: int | None = None, stall_after: int | None = None, stall: float = 30.0,
                 hold_after: int | None = None, trickle: float | None = None,
                 stream_error: tuple[str, str] | None = None, models: list[str] | None = None,
                 results: list[tuple[str, str, str]] | None = None, azure: bool = False):
        self.provider = provider
        # an Azure OpenAI resource (OpenAI-compatible): its v1 API under /openai, the key in api-key;
        # base_url is then the resource's endpoint, as an Azure connection is given it
        self.azure = azure
        self.chunks = chunks if chunks is not None else _split(reply)
        self.input_tokens = input_tokens
        self.output_tokens = output_tokens if output_tokens is not None else len(self.chunks)
        self.status, self.error_body, self.error_headers = status, error_body, error_headers or {}
        self.expect_key = expect_key
        self.cut_after, self.close_after, self.garbage_after = cut_after, close_after, garbage_after
        self.stall_after, self.stall, self.stream_error = stall_after, stall, stream_error
        self.hold_after = hold_after
        self.trickle = trickle  # seconds between the bytes of every text frame: always sending, never done
        self.gate = threading.Event()  # with hold_after: the stream waits here until gate.set()
        self.models = models if models is not None else _MODELS.get(provider, [])
        self.results = results if results is not None else DEFAULT_RESULTS
        self.requests: list[Recorded] = []
        self._stop = threading.Event()
        self._server: ThreadingHTTPServer | None = None

    # --- lifecycle --------------------------------------------------------------------------

    def __enter__(self) -> FakeProvider:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        self._acceptor = threading.Thread(target=self._accept, daemon=True)
        self._acceptor.start()
        return self

    def _accept(self) -> None:
        # handle_request() sleeps until a connection arrives and hands it to a new thread; unlike
        # serve_forever() there is no poll interval for shutting down to wait out
        assert self._server is not None
        while not self._stop.is_set():
            self._server.handle_request()

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self.gate.set()
        assert self._server is not None
        socket.create_connection(self._server.server_address[:2]).close()  # wakes _accept to see _stop
        self._acceptor.join(10)
        assert not self._acceptor.is_alive(), "the fake provider's accept loop did not stop"
        self._server.server_close()

    @property
    def base_url(self) -> str:
        assert self._server is not None, "use FakeProvider as a context manager"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}" + ("" if self.azure else _URL_SUFFIX.get(self.provider, ""))

    @property
    def auth_header(self) -> str:
        return "api-key" if self.azure else _AUTH[self.provider]

    def env(self) -> dict[str, str]:
        """The operator's base-URL override pointing at this server."""
        name = self.provider.spec.base_url_env
        if not name:
            raise ValueError(f"{self.provider.value} has no base-URL variable; "
                             "store a key with base_url=server.base_url")
        return {name: self.base_url}

    def sent_keys(self) -> list[str]:
        """The key each request carried, as the provider's auth header holds it."""
        keys = [r.headers.get(self.auth_header, "") for r in self.requests]
        return [k.removeprefix("Bearer ") for k in keys]

    # --- wire formats -----------------------------------------------------------------------

    def _frames(self, model: str) -> tuple[list[bytes], list[bytes], list[bytes]]:
        """(head, one frame per text chunk, tail) of a successful stream."""
        p, n_in, n_out = self.provider, self.input_tokens, self.output_tokens
        if p is Provider.ANTHROPIC:
            def ev(name: str, data: dict) -> bytes:
                return f"event: {name}\ndata: {json.dumps(data)}\n\n".encode()
            head = [ev("message_start", {"type": "message_start", "message": {
                        "id": "msg_1", "type": "message", "role": "assistant", "content": [], "model": model,
                        "stop_reason": None, "stop_sequence": None,
                        "usage": {"input_tokens": n_in, "output_tokens": 1}}}),
                    ev("content_block_start", {"type": "content_block_start", "index": 0,
                                               "content_block": {"type": "text", "text": ""}}),
                    ev("ping", {"type": "ping"})]
            texts = [ev("content_block_delta", {"type": "content_block_delta", "index": 0,
                                                "delta": {"type": "text_delta", "text": t}}) for t in self.chunks]
            tail = [ev("content_block_stop", {"type": "content_block_stop", "index": 0}),
                    ev("message_delta", {"type": "message_delta", "delta": {"stop_reason": "end_turn",
                                         "stop_sequence": None}, "usage": {"output_tokens": n_out}}),
                    ev("message_stop", {"type": "message_stop"})]
            return head, texts, tail

        def data(obj: Any) -> bytes:
            return f"data: {json.dumps(obj)}\n\n".encode()
        if p is Provider.GOOGLE:
            texts = []
            for i, t in enumerate(self.chunks):
                cand: dict = {"content": {"parts": [{"text": t}], "role": "model"}, "index": 0}
                last = i == len(self.chunks) - 1
                if last:
                    cand["finishReason"] = "STOP"
                texts.append(data({"candidates": [cand], "usageMetadata": {
                    "promptTokenCount": n_in, "candidatesTokenCount": n_out if last else i + 1,
                    "totalTokenCount": n_in + (n_out if last else i + 1)}, "modelVersion": model}))
            return [], texts, []
        base = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1700000000, "model": model}
        head = [data({**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""},
                                           "finish_reason": None}]})]
        texts = [data({**base, "choices": [{"index": 0, "delta": {"content": t}, "finish_reason": None}]})
                 for t in self.chunks]
        tail = [data({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}),
                data({**base, "choices": [], "usage": {"prompt_tokens": n_in, "completion_tokens": n_out,
                                                       "total_tokens": n_in + n_out}}),
                b"data: [DONE]\n\n"]
        return head, texts, tail

    def _error_frame(self) -> bytes:
        kind, message = self.stream_error
        if self.provider is Provider.ANTHROPIC:
            body = {"type": "error", "error": {"type": kind, "message": message}}
            return f"event: error\ndata: {json.dumps(body)}\n\n".encode()
        return f"data: {json.dumps({'error': {'type': kind, 'status': kind, 'message': message}})}\n\n".encode()

    def _search_body(self, query: str, limit: int) -> Any:
        rows = self.results[:limit]
        p = self.provider
        if p is Provider.FIRECRAWL:
            return {"success": True, "data": {"web": [
                {"url": u, "title": t, "description": s, "position": i + 1} for i, (t, u, s) in enumerate(rows)]}}
        if p is Provider.BRAVE:
            return {"type": "search", "query": {"original": query}, "web": {"type": "search", "results": [
                {"title": t, "url": u, "description": s, "type": "search_result"} for t, u, s in rows]}}
        if p is Provider.TAVILY:
            return {"query": query, "answer": None, "images": [], "response_time": 0.4, "results": [
                {"title": t, "url": u, "content": s, "score": 0.9 - i / 10, "raw_content": None}
                for i, (t, u, s) in enumerate(rows)]}
        return {"searchParameters": {"q": query, "type": "search"}, "organic": [
            {"title": t, "link": u, "snippet": s, "position": i + 1} for i, (t, u, s) in enumerate(rows)]}

    def _models_body(self) -> Any:
        if self.provider is Provider.GOOGLE:
            return {"models": [{"name": f"models/{m}", "supportedGenerationMethods": ["generateContent"]}
                               for m in self.models]}
        return {"data": [{"id": m, "type": "model", "object": "model"} for m in self.models], "has_more": False}

    def _route(self, method: str, path: str) -> str | None:
        p, bare = self.provider, path.split("?")[0]
        if self.azure:
            bare = bare.removeprefix("/openai")
        if p in (Provider.OPENAI, Provider.OPENAI_COMPATIBLE):
            return {("POST", "/v1/chat/completions"): "chat", ("GET", "/v1/models"): "models"}.get((method, bare))
        if p is Provider.ANTHROPIC:
            return {("POST", "/v1/messages"): "chat", ("GET", "/v1/models"): "models"}.get((method, bare))
        if p is Provider.GOOGLE:
            if method == "POST" and re.fullmatch(r"/v1beta/models/[\w.\-]+:streamGenerateContent", bare):
                return "chat" if "alt=sse" in path else None
            return "models" if (method, bare) == ("GET", "/v1beta/models") else None
        return {
            Provider.FIRECRAWL: {("POST", "/v2/search"): "search", ("GET", "/v2/team/credit-usage"): "credits"},
            Provider.BRAVE: {("GET", "/res/v1/web/search"): "search"},
            Provider.TAVILY: {("POST", "/search"): "search", ("GET", "/usage"): "usage"},
            Provider.SERPER: {("POST", "/search"): "search"},
        }[p].get((method, bare))


def _handler(fake: FakeProvider):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args) -> None:  # keep test output clean
            pass

        def do_GET(self) -> None:
            self._serve("GET")

        def do_POST(self) -> None:
            self._serve("POST")

        def _json(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
            raw = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(raw)

        def _chunk(self, data: bytes) -> None:
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))

        def _serve(self, method: str) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            try:
                body = json.loads(raw) if raw else None
            except ValueError:
                body = None
            fake.requests.append(Recorded(method, self.path, {k.lower(): v for k, v in self.headers.items()}, body))
            route = fake._route(method, self.path)
            if route is None:
                return self._json(404, default_error_body(fake.provider, 404, f"No route for {method} {self.path}"))
            sent = self.headers.get(fake.auth_header, "").removeprefix("Bearer ")
            if fake.expect_key is not None and sent != fake.expect_key:
                return self._json(401, default_error_body(fake.provider, 401, f"Incorrect API key provided: {sent}."))
            if fake.status is not None:
                body_out = (fake.error_body if fake.error_body is not None
                            else default_error_body(fake.provider, fake.status))
                return self._json(fake.status, body_out, fake.error_headers)
            if route == "chat":
                return self._stream((body or {}).get("model") or self.path.split("/")[-1].split(":")[0])
            if route == "models":
                return self._json(200, fake._models_body())
            if route == "credits":
                return self._json(200, {"success": True, "data": {"remainingCredits": 480, "planCredits": 500}})
            if route == "usage":
                return self._json(200, {"key": {"usage": 7, "limit": 1000}, "account": {"current_plan": "Researcher"}})
            query = (body or {}).get("query") or (body or {}).get("q") or ""
            limit = (body or {}).get("limit") or (body or {}).get("max_results") or (body or {}).get("num") or 10
            if method == "GET":
                m = re.search(r"[?&]count=(\d+)", self.path)
                limit = int(m.group(1)) if m else 10
            return self._json(200, fake._search_body(query, int(limit)))

        def _stream(self, model: str) -> None:
            head, texts, tail = fake._frames(model)
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream; charset=utf-8")
            self.send_header("Cache-Control", "no-cache")
            self.send_header("Transfer-Encoding", "chunked")
            self.send_header("Connection", "close")
            self.end_headers()
            for frame in head:
                self._chunk(frame)
            for i in range(len(texts) + 1):
                if i == fake.stall_after:
                    fake._stop.wait(fake.stall)
                if i == fake.hold_after:
                    fake.gate.wait(fake.stall)
                if i == fake.cut_after:  # drop the connection mid-body
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                if i == fake.close_after:  # a clean end of the HTTP body, no end marker
                    self._chunk(b"")
                    return
                if i == fake.garbage_after:
                    self._chunk(b"data: {this is not json\n\n")
                if i < len(texts) and fake.trickle:
                    for byte in texts[i]:
                        if fake._stop.wait(fake.trickle):
                            return
                        self._chunk(bytes([byte]))
                elif i < len(texts):
                    self._chunk(texts[i])
            if fake.stream_error:
                self._chunk(fake._error_frame())
                self._chunk(b"")
                return
            for frame in tail:
                self._chunk(frame)
            self._chunk(b"")

        def handle_one_request(self) -> None:
            try:
                super().handle_one_request()
            except (BrokenPipeError, ConnectionResetError, OSError):
                self.close_connection = True  # the client gave up (timeout tests)

    return Handler
