"""What every adapter shares: the two interfaces, the HTTP client, SSE reading and error mapping.

A chat adapter only says how to build its request and read one event; a search adapter only says
how to build its request and read the results. Everything else (timeouts, status codes, error
bodies, cut-off streams, scrubbing the key out of messages) lives here, once."""

from __future__ import annotations

import email.utils
import functools
import json
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from html import unescape
from typing import Any, ClassVar

import httpx
from httpx_sse import EventSource, SSEError

from byok_core import netguard
from byok_core.adapters.errors import (
    KeyRejected, ModelNotFound, ProviderDown, ProviderError, ProviderTimeout, RateLimited, RequestRejected,
    StreamCutOff, scrub,
)
from byok_core.errors import ValidationError
from byok_core.keys import ResolvedKey
from byok_core.models import KeySource
from byok_core.providers import Provider

CONNECT_TIMEOUT = 10.0
READ_TIMEOUT = 60.0


@dataclass(frozen=True)
class ChatMessage:
    role: str  # "system" | "user" | "assistant"
    content: str


@dataclass(frozen=True)
class Usage:
    """Token counts as the provider reported them; None where it did not."""

    input_tokens: int | None = None
    output_tokens: int | None = None


@dataclass(frozen=True)
class SearchResult:
    title: str
    url: str
    snippet: str
    provider: Provider
    rank: int  # 1-based, in the provider's order


def _timeouts(environ: Mapping[str, str] | None) -> tuple[float, float]:
    env = environ or {}
    return float(env.get("BYOK_CONNECT_TIMEOUT") or CONNECT_TIMEOUT), float(env.get("BYOK_READ_TIMEOUT") or READ_TIMEOUT)


def new_client(environ: Mapping[str, str] | None = None, transport: httpx.BaseTransport | None = None) -> httpx.Client:
    """An HTTP client with timeouts on everything and no redirects (a redirect could carry a key
    header to another host). BYOK_CONNECT_TIMEOUT / BYOK_READ_TIMEOUT (seconds) override the defaults."""
    connect, read = _timeouts(environ)
    return httpx.Client(timeout=httpx.Timeout(read, connect=connect), transport=transport, follow_redirects=False,
                        headers={"User-Agent": "byok-dashboard"})


@functools.lru_cache(maxsize=8)
def _shared_client(connect: float, read: float) -> httpx.Client:
    return new_client({"BYOK_CONNECT_TIMEOUT": str(connect), "BYOK_READ_TIMEOUT": str(read)})


@contextmanager
def client_for(environ: Mapping[str, str], client: httpx.Client | None) -> Iterator[httpx.Client]:
    """The caller's client (tests pass one with a MockTransport), else the process-wide one.

    Sharing one client keeps provider connections alive between calls and skips building a TLS
    context per call (which costs tens of milliseconds); httpx clients are thread-safe."""
    yield client if client is not None else _shared_client(*_timeouts(environ))


def check_target(key: ResolvedKey, allow_private: bool) -> None:
    """Check a URL the key's owner typed in (resolving DNS) before every call to it.

    Operator-set base URLs (environment overrides and defaults) are trusted as they are."""
    if not key.provider.user_supplies_url:
        return
    if not key.base_url:
        raise ValidationError(f"The {key.provider.label} key has no base URL; save it again with its endpoint.")
    netguard.check_endpoint(key.base_url, allow_private)


# --- errors --------------------------------------------------------------------------------

_WHOSE = {KeySource.USER: "your", KeySource.TEAM: "the team's", KeySource.ENV: "the server's"}
_KEY_CODES = {"invalid_api_key", "authentication_error", "permission_error", "api_key_invalid", "permission_denied",
              "unauthenticated", "subscription_token_invalid", "invalid_subscription_token"}
_QUOTA_CODES = {"insufficient_quota", "billing_hard_limit_reached", "billing_error"}
_RATE_CODES = {"rate_limit_error", "rate_limit_exceeded", "resource_exhausted", "rate_limited"}
_MODEL_CODES = {"model_not_found", "not_found_error"}
_DOWN_CODES = {"overloaded_error", "api_error", "server_error", "unavailable", "internal"}
_QUOTA_STATUS = {402, 432, 433}  # payment required; Tavily's plan and pay-as-you-go limits


def _error_info(body: Any) -> tuple[set[str], str]:
    """Error codes (lower-cased) and the first human message found in a provider's error body."""
    codes: set[str] = set()
    messages: list[str] = []

    def walk(node: Any, depth: int) -> None:
        if depth > 4:
            return
        if isinstance(node, dict):
            for name, value in node.items():
                if isinstance(value, str) and name in {"type", "code", "status", "reason"}:
                    codes.add(value.lower())
                elif isinstance(value, str) and name in {"message", "detail", "error", "description"}:
                    messages.append(value)
                else:
                    walk(value, depth + 1)
        elif isinstance(node, list):
            for value in node[:5]:
                walk(value, depth + 1)

    if isinstance(body, str):
        if body.strip() and not body.lstrip().startswith("<"):  # skip HTML error pages
            messages.append(body)
    else:
        walk(body, 0)
    return codes, (messages[0] if messages else "")


def retry_after(headers: Mapping[str, str] | None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or HTTP date), or None."""
    value = (headers or {}).get("retry-after", "").strip()
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, (when - datetime.now(timezone.utc)).total_seconds())


def provider_error(key: ResolvedKey, *, status: int | None, body: Any, headers: Mapping[str, str] | None = None,
                   model: str = "") -> ProviderError:
    """The app's error for a provider's error status and/or body (an HTTP error or an error event)."""
    label = key.provider.label
    codes, detail = _error_info(body)
    detail = scrub(detail, key.secret)
    said = f" ({label} said: {detail})" if detail else ""
    whose = f"{_WHOSE[KeySource(key.source)]} key {key.secret.mask}"
    http = f" (HTTP {status})" if status else ""
    if codes & _QUOTA_CODES or status in _QUOTA_STATUS:
        return RateLimited(f"{label} says {whose} has no quota or credit left{said}; "
                           "add credit with the provider or use another key.")
    if status in (401, 403) or codes & _KEY_CODES:
        return KeyRejected(f"{label} rejected {whose}{said}; check it or save a new one on the Keys page.")
    if status == 429 or codes & _RATE_CODES:
        seconds = retry_after(headers)
        when = f"try again in {max(1, round(seconds))} seconds" if seconds is not None else "wait a minute and try again"
        return RateLimited(f"{label} is rate-limiting {whose}{said}; {when}.", retry_after=seconds)
    if model and (status == 404 or codes & _MODEL_CODES):
        return ModelNotFound(f"{label} does not offer the model {model!r}{said}; pick another model.")
    if (status or 0) >= 500 or codes & _DOWN_CODES:
        return ProviderDown(f"{label} is having trouble right now{http}{said}; try again in a minute.")
    if status == 404:
        return RequestRejected(f"{label} has no such endpoint (HTTP 404){said}; check the base URL.")
    return RequestRejected(f"{label} refused the request{http}{said}; check the model and the input.")


def _body(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return response.text


def _transport_error(key: ResolvedKey, exc: httpx.TransportError) -> ProviderError:
    label = key.provider.label
    if isinstance(exc, httpx.TimeoutException):
        phase = "connect" if isinstance(exc, httpx.ConnectTimeout) else "answer"
        return ProviderTimeout(f"{label} did not {phase} in time; try again in a moment.")
    if isinstance(exc, httpx.ConnectError):
        return ProviderDown(f"Could not connect to {label}; check the network or the base URL and try again.")
    return ProviderDown(f"The connection to {label} failed ({type(exc).__name__}); try again in a moment.")


def request_json(client: httpx.Client, key: ResolvedKey, method: str, url: str, *, headers: Mapping[str, str],
                 params: Mapping[str, Any] | None = None, json_body: Any = None) -> Any:
    """One non-streaming call; the decoded JSON, or the matching ProviderError."""
    try:
        response = client.request(method, url, headers=headers, params=params, json=json_body)
    except httpx.TransportError as exc:
        raise _transport_error(key, exc) from None
    if response.status_code >= 400:
        raise provider_error(key, status=response.status_code, body=_body(response), headers=response.headers)
    try:
        return response.json()
    except ValueError:
        raise ProviderDown(f"{key.provider.label} sent an answer that is not JSON; try again in a minute.") from None


# --- chat ----------------------------------------------------------------------------------


@dataclass
class StreamState:
    """What one stream has told us so far; adapters update it from each event."""

    input_tokens: int | None = None
    output_tokens: int | None = None
    complete: bool = False  # the provider's own end marker arrived
    text: list[str] = field(default_factory=list)


class ChatAdapter:
    """A chat provider: how to build the streaming request and read one event of the reply."""

    provider: ClassVar[Provider]
    default_model: ClassVar[str | None] = None
    fallback_models: ClassVar[tuple[str, ...]] = ()  # shown when the models list cannot be fetched
    stops_at_end_marker: ClassVar[bool] = True  # False: completeness is only known when the stream ends
    end_marker_data: ClassVar[str | None] = None  # a non-JSON data line that ends the stream ("[DONE]")

    def headers(self, key: ResolvedKey) -> dict[str, str]:
        raise NotImplementedError

    def chat_request(self, key: ResolvedKey, model: str, messages: list[ChatMessage]) -> tuple[str, dict]:
        """URL and JSON body of the streaming request."""
        raise NotImplementedError

    def on_event(self, event: str, data: dict, state: StreamState) -> str | None:
        """Read one JSON event: update ``state`` and return the text delta, if any."""
        raise NotImplementedError

    def models_url(self, key: ResolvedKey) -> str:
        raise NotImplementedError

    def parse_models(self, body: Any) -> list[str]:
        raise NotImplementedError

    def list_models(self, client: httpx.Client, key: ResolvedKey) -> list[str]:
        """Model ids from the provider's own list, sorted."""
        body = request_json(client, key, "GET", self.models_url(key), headers=self.headers(key))
        return sorted(set(self.parse_models(body)))

    def test_key(self, client: httpx.Client, key: ResolvedKey) -> str:
        """The cheapest authenticated call (listing models); a few words on what it showed."""
        return f"{len(self.list_models(client, key))} models visible"

    def stream(self, client: httpx.Client, key: ResolvedKey, model: str, messages: list[ChatMessage],
               state: StreamState | None = None) -> Iterator[str | Usage]:
        """Text deltas as they arrive, then the ``Usage`` the provider reported.

        Raises a ProviderError; StreamCutOff unless the provider's end marker came. Pass a
        ``state`` to read the text and tokens received so far even when the stream fails."""
        url, body = self.chat_request(key, model, messages)
        state = state if state is not None else StreamState()
        label, on_event, end_data, stops = self.provider.label, self.on_event, self.end_marker_data, self.stops_at_end_marker

        def cut_off(why: str) -> StreamCutOff:
            return StreamCutOff(f"{label}'s reply was cut off ({why}); the text so far is kept, ask again for the rest.",
                                "".join(state.text))

        try:
            with client.stream("POST", url, headers=self.headers(key), json=body) as response:
                if response.status_code >= 400:
                    response.read()
                    raise provider_error(key, status=response.status_code, body=_body(response),
                                         headers=response.headers, model=model)
                for sse in EventSource(response).iter_sse():
                    raw = sse.data
                    if raw == end_data:
                        state.complete = True
                    else:
                        try:
                            data = json.loads(raw)
                        except ValueError:
                            data = None
                        if not isinstance(data, dict):
                            raise cut_off("it sent a line that is not JSON")
                        if data.get("error"):
                            raise provider_error(key, status=None, body=data, model=model)
                        delta = on_event(sse.event, data, state)
                        if delta:
                            state.text.append(delta)
                            yield delta
                    if stops and state.complete:
                        break
        except SSEError:
            raise cut_off("it did not send an event stream") from None
        except (httpx.TimeoutException, httpx.ConnectError) as exc:
            raise _transport_error(key, exc) from None
        except httpx.TransportError:
            raise cut_off("the connection broke") from None
        if not state.complete:
            raise cut_off("the stream ended before the end marker")
        yield Usage(state.input_tokens, state.output_tokens)


def split_system(messages: list[ChatMessage]) -> tuple[str, list[ChatMessage]]:
    """System messages joined into one instruction, and the rest of the conversation."""
    system = "\n\n".join(m.content for m in messages if m.role == "system")
    return system, [m for m in messages if m.role != "system"]


# --- search --------------------------------------------------------------------------------

MAX_RESULTS = 20


class SearchAdapter:
    """A search provider: how to run a query and how to check a key."""

    provider: ClassVar[Provider]

    def headers(self, key: ResolvedKey) -> dict[str, str]:
        raise NotImplementedError

    def search(self, client: httpx.Client, key: ResolvedKey, query: str, limit: int) -> list[SearchResult]:
        raise NotImplementedError

    def test_key(self, client: httpx.Client, key: ResolvedKey) -> str:
        """The cheapest authenticated call; by default a one-result search."""
        return f"{len(self.search(client, key, 'test', 1))} result(s) for a test query"

    def results(self, items: Any, title: str, url: str, snippet: str, limit: int) -> list[SearchResult]:
        """Normalized results from the provider's list of result objects."""
        found = []
        for item in items if isinstance(items, list) else []:
            if isinstance(item, dict) and item.get(url):
                found.append(SearchResult(clean(item.get(title)), str(item[url]), clean(item.get(snippet)),
                                          self.provider, len(found) + 1))
        return found[:limit]


def clean(text: Any) -> str:
    """Plain text from a provider's snippet: no HTML tags or entities, single spaces."""
    return " ".join(unescape(re.sub(r"<[^>]+>", "", str(text or ""))).split())
