"""What every adapter shares: the two interfaces, the HTTP client, and SSE reading.

A chat adapter only says how to build its request and read one event; a search adapter only says
how to build its request and read the results. Everything else (timeouts, status codes, cut-off
streams) lives here, once; errors are translated in ``adapters/errors.py``. Adapters take a
``Credential`` and know nothing of who owns the key or who pays."""

from __future__ import annotations

import contextlib
import functools
import json
import re
import socket
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from html import unescape
from typing import TYPE_CHECKING, Any, ClassVar

import httpx
from httpx_sse import EventSource, SSEError

from byok_core.adapters.errors import provider_error, transport_error
from byok_core.adapters.files import Attached, kinds
from byok_core.credential import Credential
from byok_core.errors import KeyRejected, ProviderDown, ProviderTimeout, StreamCutOff
from byok_core.providers import Provider
from byok_core.secret import is_printable_ascii

if TYPE_CHECKING:
    from genai_prices import Usage

MAX_RESULTS = 20
MAX_REPLY_CHARS = 200_000  # a reply is stopped there (a conversation's message has the same cap)


@dataclass(frozen=True)
class ChatMessage:
    role: str  # "system" | "user" | "assistant"
    content: str
    files: tuple[Attached, ...] = ()  # a prompt's images and PDFs, sent in the provider's native parts


class Effort(StrEnum):
    """How hard a reasoning model thinks before it answers (sent only where the model takes one)."""

    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"


# Anthropic's and Gemini's thinking budgets are this share of the output cap (thinking counts toward
# the cap on both, so the budget always leaves room for the answer, and the cap still bounds the cost).
EFFORT_SHARE = {Effort.LOW: 0.25, Effort.MEDIUM: 0.5, Effort.HIGH: 0.75}


@dataclass(frozen=True)
class ChatParams:
    """A conversation's parameters, each None for the provider's own default. Each adapter sends
    them in its provider's native fields, and only those its model takes (``ChatAdapter.chat_request``)."""

    temperature: float | None = None  # 0 to 2 (Anthropic takes 0 to 1: more is sent as 1)
    max_output_tokens: int | None = None  # the output cap, thinking included; at most the adapter's
    reasoning_effort: Effort | None = None


DEFAULT_PARAMS = ChatParams()  # every parameter the provider's default


@dataclass
class Reply:
    """What one streamed reply has told us so far; the adapter sets it from each event, so the text
    and the usage received are there even when the stream fails."""

    text: list[str] = field(default_factory=list)
    complete: bool = False  # the provider's own end marker arrived
    usage_object: dict[str, Any] | None = None  # the provider's own usage object, shaped as it sends it
    usage: Usage | None = None  # what was billed, read from usage_object by genai-prices; None: not reported
    reported_cost: float | None = None  # USD the provider says it billed, in its usage (OpenRouter's usage.cost)
    served_model: str = ""  # the model the provider says answered (Azure: the model behind a deployment)
    hang_up: Callable[[], None] | None = field(default=None, repr=False)  # ends the stream from another thread
    stopped: bool = False  # the person stopped it (hung up with Stop): logged as stopped, not as cut off
    deadline_s: float = 600.0  # however slowly the bytes trickle in, the reply is stopped then (BYOK_CALL_DEADLINE)
    # How the provider said the reply ended, read by the adapter from its own stream shape:
    stop: Stop | None = None  # None: it ended normally (or said nothing)
    stop_reason: str = ""  # the provider's own word for it ("length", "max_tokens", "SAFETY", ...)
    thought: bool = False  # thinking/reasoning parts arrived (never shown as the reply)
    tools: list[str] = field(default_factory=list)  # tools the model asked to call (this app offers none)
    notice: str | None = None  # set at the end of a complete reply: what the person should know, in plain words
    output_cap: int | None = None  # the output cap the request asked for (None: the adapter's maximum)


class Stop(StrEnum):
    """Ways a reply can end that the person must be told about (``Reply.notice`` says it)."""

    REFUSAL = "refusal"  # the model refused; its refusal text, if any, is the reply
    OUTPUT_CAP = "output_cap"  # the output cap was reached (thinking counts toward it)
    SAFETY = "safety"  # the provider's safety system stopped the reply
    TOOL_CALL = "tool_call"  # the model asked to use a tool instead of answering


@dataclass(frozen=True)
class SearchResult:
    title: str
    url: str
    snippet: str
    provider: Provider
    rank: int  # 1-based, in the provider's order


def new_client(connect_timeout: float, read_timeout: float,
               transport: httpx.BaseTransport | None = None) -> httpx.Client:
    """An HTTP client with timeouts on everything and no redirects (a redirect could carry a key
    header to another host)."""
    return httpx.Client(timeout=httpx.Timeout(read_timeout, connect=connect_timeout), transport=transport,
                        follow_redirects=False, headers={"User-Agent": "byok-dashboard"})


_building = threading.Lock()
_shared: dict[tuple[float, float], httpx.Client] = {}


def shared_client(connect_timeout: float, read_timeout: float) -> httpx.Client:
    """One client per timeout pair for the whole process: it keeps provider connections alive between
    calls and skips building a TLS context per call (tens of milliseconds); httpx clients are thread-safe.
    A caller waits for a build already under way (``warm_up``) rather than starting a second one."""
    with _building:
        timeouts = (connect_timeout, read_timeout)
        if timeouts not in _shared:
            _shared[timeouts] = new_client(connect_timeout, read_timeout)
        return _shared[timeouts]


def close_shared_clients() -> None:
    """Close the shared clients and their kept-alive connections; the next call builds a new one.
    Tests call it after each test: a connection kept to one test's server must not serve the next
    test, whose server may have been given the same port."""
    with _building:
        clients = list(_shared.values())
        _shared.clear()
    for client in clients:
        client.close()


def warm_up(connect_timeout: float, read_timeout: float) -> None:
    """Build the shared client in the background while the caller does other work (the `byok`
    command opens its database meanwhile): loading the CA certificates takes ~20 ms, outside the GIL."""
    threading.Thread(target=shared_client, args=(connect_timeout, read_timeout), name="byok-warm-up",
                     daemon=True).start()


def _body(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return response.text


class _Adapter:
    provider: ClassVar[Provider]

    def headers(self, cred: Credential) -> dict[str, str]:
        raise NotImplementedError

    def label(self, cred: Credential) -> str:
        """The provider's name in messages about a call with ``cred``."""
        return self.provider.label

    def auth_headers(self, cred: Credential) -> dict[str, str]:
        """``headers``, for a key that an HTTP header can carry (one stored by an older version, or
        planted, might not be): else KeyRejected, before anything is sent."""
        if not is_printable_ascii(cred.secret.reveal()):
            error = KeyRejected(f"The saved {self.label(cred)} key {cred.mask} contains characters an API key "
                                "never has; save it again on the Keys page.")
            error.refused = True  # nothing was sent
            raise error
        return self.headers(cred)

    def request_json(self, client: httpx.Client, cred: Credential, method: str, url: str, *,
                     params: Mapping[str, Any] | None = None, json_body: Any = None) -> Any:
        """One non-streaming call; the decoded JSON, or the matching ProviderError."""
        label = self.label(cred)
        try:
            response = client.request(method, url, headers=self.auth_headers(cred), params=params, json=json_body)
        except httpx.TransportError as exc:
            raise transport_error(label, exc) from None
        if response.status_code >= 400:
            raise provider_error(label, cred, status=response.status_code, body=_body(response),
                                 headers=response.headers)
        try:
            return response.json()
        except ValueError:
            raise ProviderDown(f"{label} sent an answer that is not JSON; try again in a minute.") from None


# --- chat ----------------------------------------------------------------------------------


class ChatAdapter(_Adapter):
    """A chat provider: how to build the streaming request and read one event of the reply."""

    usage_provider: ClassVar[str]  # genai-prices' provider id and API flavor for reading the usage object
    usage_flavor: ClassVar[str] = "default"
    default_model: ClassVar[str | None] = None
    fallback_models: ClassVar[tuple[str, ...]] = ()  # shown when the models list cannot be fetched
    stops_at_end_marker: ClassVar[bool] = True  # False: completeness is only known when the stream ends
    end_marker_data: ClassVar[str | None] = None  # a non-JSON data line that ends the stream ("[DONE]")
    # Every request states its output cap (thinking included): it bounds what a call can cost, which a
    # shared-key budget reserves before the call (budgets.ledger.admit); Anthropic requires one anyway.
    max_output_tokens: ClassVar[int] = 8192

    def canonical_model(self, model: str) -> str:
        """The one spelling of ``model`` that is sent, priced, budgeted and logged."""
        return model

    def chat_request(self, cred: Credential, model: str, messages: list[ChatMessage],
                     params: ChatParams = DEFAULT_PARAMS) -> tuple[str, dict[str, Any]]:
        """URL and JSON body of the streaming request: the system messages first, in the provider's
        own place for them, and ``params`` in its native fields."""
        raise NotImplementedError

    def output_cap(self, params: ChatParams = DEFAULT_PARAMS) -> int:
        """The output cap a request states: the conversation's own, at most the adapter's maximum."""
        asked = params.max_output_tokens
        return self.max_output_tokens if asked is None else max(1, min(int(asked), self.max_output_tokens))

    def reasoning_field(self, model: str) -> str | None:
        """Where ``model`` takes a reasoning effort in the request body (None: it takes none, and
        none is sent)."""
        return None

    def takes_temperature(self, model: str, params: ChatParams = DEFAULT_PARAMS) -> bool:
        """Whether a temperature is sent to ``model`` with these params (reasoning models refuse one)."""
        return True

    def thinking_budget(self, params: ChatParams, least: int = 1) -> int | None:
        """Anthropic's and Gemini's thinking budget for the effort: its share of the output cap (at
        least ``least``, and below the cap); None without an effort, or when the cap leaves no room."""
        if params.reasoning_effort is None:
            return None
        cap = self.output_cap(params)
        budget = max(least, int(cap * EFFORT_SHARE[params.reasoning_effort]))
        return budget if budget < cap else None

    def on_event(self, event: str, data: dict[str, Any], reply: Reply) -> str | None:
        """Read one JSON event: update ``reply`` (its usage object, completeness) and return the text
        delta, if any. Usage is kept whole, as the provider sent it: genai-prices reads it."""
        raise NotImplementedError

    def read_usage(self, reply: Reply) -> None:
        """Billed tokens from the provider's own usage object, by genai-prices' extractor for this
        provider's API (it knows cache reads and writes, thinking, tool-use prompts, server tools)."""
        if reply.usage_object is None:
            return
        from genai_prices import extract_usage  # loaded after the last text, not before the first (~20 ms)

        try:
            extracted = extract_usage(reply.usage_object, provider_id=self.usage_provider, api_flavor=self.usage_flavor)
        except (ValueError, LookupError, TypeError):  # a usage object it cannot read: the tokens stay unknown
            return
        reply.usage = extracted.usage

    def models_url(self, cred: Credential) -> str:
        raise NotImplementedError

    def parse_models(self, body: Any) -> list[str]:
        raise NotImplementedError

    def list_models(self, client: httpx.Client, cred: Credential) -> list[str]:
        """Model ids from the provider's own list, sorted."""
        return sorted(set(self.parse_models(self.request_json(client, cred, "GET", self.models_url(cred)))))

    def test_key(self, client: httpx.Client, cred: Credential) -> str:
        """The cheapest authenticated call (listing models); a few words on what it showed."""
        count = len(self.list_models(client, cred))
        return f"{count} model{'s' * (count != 1)} visible"

    def stream(self, client: httpx.Client, cred: Credential, model: str, messages: list[ChatMessage],
               reply: Reply, params: ChatParams = DEFAULT_PARAMS) -> Iterator[str]:
        """Text deltas as they arrive; ``reply`` gets the text, the tokens and the end marker.

        Raises a ProviderError; StreamCutOff unless the provider's end marker came."""
        url, body = self.chat_request(cred, model, messages, params)
        if params.max_output_tokens is not None:
            reply.output_cap = self.output_cap(params)
        headers = self.auth_headers(cred)
        label, on_event = self.label(cred), self.on_event
        end_data, stops = self.end_marker_data, self.stops_at_end_marker

        def cut_off(why: str) -> StreamCutOff:
            return StreamCutOff(f"{label}'s reply was cut off ({why}); the text so far is kept, ask again for the "
                                "rest.",
                                "".join(reply.text))

        overdue = threading.Event()
        deadline: threading.Timer | None = None
        received = 0
        try:
            with client.stream("POST", url, headers=headers, json=body) as response:
                reply.hang_up = functools.partial(_hang_up, response)

                def too_late() -> None:
                    overdue.set()
                    _hang_up(response)

                deadline = threading.Timer(reply.deadline_s, too_late)
                deadline.daemon = True
                deadline.start()
                if response.status_code >= 400:
                    response.read()
                    raise provider_error(label, cred, status=response.status_code, body=_body(response),
                                         headers=response.headers, model=model,
                                         attached=kinds([f for m in messages for f in m.files]))
                for sse in EventSource(response).iter_sse():
                    raw = sse.data
                    if raw == end_data:
                        reply.complete = True
                    else:
                        try:
                            data = json.loads(raw)
                        except ValueError:
                            data = None
                        if not isinstance(data, dict):
                            raise cut_off("it sent a line that is not JSON")
                        if data.get("error"):  # an error event; it may carry the usage so far (OpenRouter)
                            on_event(sse.event, data, reply)
                            raise provider_error(label, cred, status=None, body=data, model=model)
                        delta = on_event(sse.event, data, reply)
                        if delta and isinstance(delta, str):  # only text is ever shown or stored
                            delta = delta.replace("\x00", "\ufffd")  # PostgreSQL cannot store NUL in text
                            received += len(delta)
                            if received > MAX_REPLY_CHARS:
                                raise StreamCutOff(
                                    f"{label}'s reply passed {MAX_REPLY_CHARS:,} characters, so it was stopped there; "
                                    "the text so far is kept.", "".join(reply.text))
                            reply.text.append(delta)
                            yield delta
                    if stops and reply.complete:
                        break
        except SSEError:
            raise cut_off("it did not send an event stream") from None
        except (httpx.TimeoutException, httpx.ConnectError, httpx.TransportError) as exc:
            if overdue.is_set():
                raise ProviderTimeout(f"{label} took longer than {reply.deadline_s:.0f} seconds to send its reply, so "
                                      "it was stopped; the text so far is kept.") from None
            if isinstance(exc, httpx.TimeoutException | httpx.ConnectError):
                raise transport_error(label, exc) from None
            raise cut_off("the connection broke") from None
        finally:
            if deadline is not None:
                deadline.cancel()
            self.read_usage(reply)  # whatever usage arrived, also when the stream failed
        if not reply.complete:
            raise cut_off("it stopped sending before the reply was complete")
        reply.notice = self.notice(reply, label)

    def notice(self, reply: Reply, label: str = "") -> str | None:
        """What the person must be told about a complete reply, in plain words (None: nothing)."""
        label, said = label or self.provider.label, f" ({reply.stop_reason})" if reply.stop_reason else ""
        empty = not "".join(reply.text).strip()
        if reply.stop is Stop.REFUSAL:
            return ("The model refused this request and wrote nothing more." if empty else
                    "The model refused this request; the reply above is its refusal.")
        if reply.stop is Stop.SAFETY:
            return (f"{label}'s safety filter stopped the reply{said}"
                    + ("; nothing was written." if empty else "; the text before it is kept.")
                    + " Rephrase the request and try again.")
        if reply.stop is Stop.OUTPUT_CAP:
            cap = f"{reply.output_cap or self.max_output_tokens:,}"
            if not empty:
                return f"The reply stopped at the output cap of {cap} tokens{said}; ask the model to continue."
            reasoning = int(reply.usage.output_reasoning_tokens) if reply.usage is not None else 0
            spent = f", {reasoning:,} of them thinking" if reasoning else ""
            asks = (f"this conversation asks for at most {cap} output tokens (its settings allow up to "
                    f"{self.max_output_tokens:,})" if reply.output_cap is not None else
                    f"this app asks every model for at most {cap} output tokens")
            return (f"The model used its whole output cap of {cap} tokens{spent} before writing an answer, so there "
                    "is no reply. Lower its reasoning effort or choose a model that thinks less, or ask for a smaller "
                    f"piece at a time; {asks}. The tokens were still billed.")
        if reply.tools and empty:
            names = ", ".join(dict.fromkeys(reply.tools))
            return (f"The model asked to use a tool ({names}) instead of answering; this app offers no tools. "
                    "Ask again, saying it should answer directly.")
        if empty:
            return ("The model ended its reply without writing an answer"
                    + (" (it only thought)" if reply.thought else "") + "; try again or rephrase.")
        return None


def _hang_up(response: httpx.Response) -> None:
    """Stop a streaming response from another thread (the person pressed Stop): shutting its socket
    down wakes the read that waits for the next event, which then ends as a broken connection."""
    network = response.extensions.get("network_stream")
    sock = network.get_extra_info("socket") if network is not None else None
    if isinstance(sock, socket.socket):
        with contextlib.suppress(OSError):  # already closed
            sock.shutdown(socket.SHUT_RDWR)


def split_system(messages: list[ChatMessage]) -> tuple[str, list[ChatMessage]]:
    """System messages joined into one instruction, and the rest of the conversation."""
    system = "\n\n".join(m.content for m in messages if m.role == "system")
    return system, [m for m in messages if m.role != "system"]


# --- search --------------------------------------------------------------------------------


class SearchAdapter(_Adapter):
    """A search provider: how to run a query and how to check a key."""

    def search(self, client: httpx.Client, cred: Credential, query: str, limit: int) -> list[SearchResult]:
        raise NotImplementedError

    def test_key(self, client: httpx.Client, cred: Credential) -> str:
        """The cheapest authenticated call; by default a one-result search."""
        count = len(self.search(client, cred, "test", 1))
        return f"{count} result{'s' * (count != 1)} for a test query"

    def results(self, items: Any, title: str, url: str, snippet: str, limit: int) -> list[SearchResult]:
        """Normalized results from the provider's list of result objects."""
        found: list[SearchResult] = []
        for item in items if isinstance(items, list) else []:
            if isinstance(item, dict) and item.get(url):
                found.append(SearchResult(clean(item.get(title)), str(item[url]), clean(item.get(snippet)),
                                          self.provider, len(found) + 1))
        return found[:limit]


def clean(text: Any) -> str:
    """Plain text from a provider's snippet: no HTML tags or entities, single spaces."""
    return " ".join(unescape(re.sub(r"<[^>]+>", "", str(text or ""))).split())
