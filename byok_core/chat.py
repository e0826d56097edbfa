"""Chat: resolve the key, optionally search the web first, stream the reply, log the call.

The UI and the CLI both call ``stream_chat``; every provider call ends in exactly one usage row."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import httpx

from byok_core import budgets, keys, pricing, usage
from byok_core.adapters import ADAPTERS
from byok_core.adapters.base import ChatAdapter, ChatMessage, SearchResult, StreamState, check_target, client_for
from byok_core.adapters.errors import ProviderError, StreamCutOff
from byok_core.errors import ByokError, KeyUnreadableError, NoKeyError, ValidationError
from byok_core.models import KeySource
from byok_core.providers import Provider, ProviderKind
from byok_core.runtime import Runtime
from byok_core.search import run_search

__all__ = ["ChatMessage", "ChatResult", "ChatStream", "stream_chat", "list_models", "default_provider", "CHAT_ORDER"]

log = logging.getLogger(__name__)

CHAT_ORDER = (Provider.OPENAI, Provider.ANTHROPIC, Provider.GOOGLE, Provider.OPENAI_COMPATIBLE)
ROLES = {"system", "user", "assistant"}
MAX_SOURCES = 5
SOURCES_INSTRUCTION = ("Use these web search results where they help, and cite them as [n] right after "
                       "the statement they support. If they do not answer the question, say so.")


@dataclass
class ChatResult:
    text: str
    provider: Provider
    model: str
    key_source: KeySource
    input_tokens: int | None = None
    output_tokens: int | None = None
    cost_usd: float | None = None  # None: unknown, never a made-up zero
    latency_ms: int = 0
    status: str = "ok"  # "ok" or the error's kind
    error: ByokError | None = None
    sources: list[SearchResult] = field(default_factory=list)
    budget_warning: str | None = None  # set from 80% of a shared-key budget (byok_core.budgets)


class ChatStream:
    """Iterate for text deltas; afterwards ``result`` holds the ChatResult.

    Errors never raise out of the iteration: they end it, and land in ``result.error`` with the
    partial text kept in ``result.text``. Stopping early logs the call as cut off."""

    def __init__(self, rt: Runtime, *, user_id: int | None, adapter: ChatAdapter, key: keys.ResolvedKey, model: str,
                 messages: list[ChatMessage], search_key: keys.ResolvedKey | None, client: httpx.Client | None):
        self._rt, self._user_id, self._adapter, self._key = rt, user_id, adapter, key
        self._model, self._messages, self._search_key, self._client = model, messages, search_key, client
        self._started = False
        self.budget_warning: str | None = None
        self.result: ChatResult | None = None

    def __iter__(self) -> Iterator[str]:
        if self._started:
            raise RuntimeError("A ChatStream can be iterated only once.")
        self._started = True
        with client_for(self._rt.environ, self._client) as client:
            messages, sources = self._messages, []
            if self._search_key is not None:
                try:
                    sources = run_search(self._rt, user_id=self._user_id, provider=self._search_key.provider,
                                         query=_search_query(messages), limit=MAX_SOURCES, client=client)
                except ByokError as exc:  # a provider error is already logged as the search's own row
                    self.result = self._result(StreamState(), 0, exc, [])
                    return
                messages = with_sources(messages, sources)
            state = StreamState()
            error: ByokError | None = None
            started = time.perf_counter()
            reply = self._adapter.stream(client, self._key, self._model, messages, state)
            try:
                for delta in reply:
                    if type(delta) is str:
                        yield delta
            except ProviderError as exc:
                error = exc
            except GeneratorExit:
                error = StreamCutOff("The reply was stopped before it finished; the text so far is kept.",
                                     "".join(state.text))
                raise
            except Exception as exc:  # a bug or an odd answer must not break the page; never log its text
                log.error("chat call to %s failed unexpectedly: %s", self._adapter.provider.value, type(exc).__name__)
                error = StreamCutOff(f"The reply from {self._adapter.provider.label} could not be read "
                                     f"({type(exc).__name__}); the text so far is kept, try again.", "".join(state.text))
            finally:
                reply.close()
                self.result = self._result(state, int((time.perf_counter() - started) * 1000), error, sources)
                self._record(self.result)

    def _result(self, state: StreamState, latency_ms: int, error: ByokError | None,
                sources: list[SearchResult]) -> ChatResult:
        provider = self._adapter.provider
        return ChatResult(
            text="".join(state.text), provider=provider, model=self._model, key_source=KeySource(self._key.source),
            input_tokens=state.input_tokens, output_tokens=state.output_tokens,
            cost_usd=pricing.chat_cost(provider, self._model, state.input_tokens, state.output_tokens),
            latency_ms=latency_ms, status=getattr(error, "kind", "error") if error else "ok", error=error, sources=sources,
            budget_warning=self.budget_warning,
        )

    def _record(self, result: ChatResult) -> None:
        usage.record_call(self._rt, user_id=self._user_id, provider=result.provider, model=result.model,
                          key_source=result.key_source, input_tokens=result.input_tokens,
                          output_tokens=result.output_tokens, latency_ms=result.latency_ms, status=result.status,
                          cost_usd=result.cost_usd, error=str(result.error) if result.error else None)
        keys.mark_used(self._rt, self._key)
        log.info("chat %s %s via %s key: %s in %d ms", result.provider.value, result.model, result.key_source.value,
                 result.status, result.latency_ms)


def _chat_adapter(provider: Provider) -> ChatAdapter:
    if provider.kind is not ProviderKind.CHAT:
        raise ValidationError(f"{provider.label} is a search provider; pick a chat provider.")
    return ADAPTERS[provider]


def _search_query(messages: list[ChatMessage]) -> str:
    last = next((m.content for m in reversed(messages) if m.role == "user"), "")
    return " ".join(last.split())[:400]


def with_sources(messages: list[ChatMessage], sources: list[SearchResult]) -> list[ChatMessage]:
    """The conversation with the numbered sources as a system message after any leading system ones."""
    if not sources:
        return messages
    listing = "\n\n".join(f"[{s.rank}] {s.title} — {s.url}\n{s.snippet}" for s in sources)
    note = ChatMessage("system", f"{SOURCES_INSTRUCTION}\n\n{listing}")
    lead = next((i for i, m in enumerate(messages) if m.role != "system"), len(messages))
    return [*messages[:lead], note, *messages[lead:]]


def _validate(messages: list[ChatMessage]) -> list[ChatMessage]:
    if not any(m.role != "system" for m in messages):
        raise ValidationError("Write a message first.")
    for m in messages:
        if m.role not in ROLES:
            raise ValidationError(f"Unknown message role {m.role!r}; use system, user or assistant.")
    return list(messages)


def stream_chat(rt: Runtime, *, user_id: int | None, provider: Provider, model: str, messages: list[ChatMessage],
                search_provider: Provider | None = None, client: httpx.Client | None = None) -> ChatStream:
    """Prepare one chat call. Raises NoKeyError, KeyUnreadableError or ValidationError now, before
    any delta, when no call can be made; provider errors come later, in ``ChatStream.result``.

    An empty ``model`` means the provider's default. ``client`` is the test seam (a MockTransport)."""
    adapter = _chat_adapter(provider)
    model = (model or "").strip() or adapter.default_model or ""
    if not model:
        raise ValidationError(f"Pick a model for {provider.label}.")
    messages = _validate(messages)
    key = keys.resolve(rt, user_id, provider)
    check_target(key, rt.settings.allow_private_endpoints)
    search_key = None
    if search_provider is not None:
        if search_provider.kind is not ProviderKind.SEARCH:
            raise ValidationError(f"{search_provider.label} is not a search provider.")
        search_key = keys.resolve(rt, user_id, search_provider)
    # Shared (team/server) keys: refused here, before any delta, once a monthly budget is used up.
    statuses = [budgets.check(rt, user_id, k.source) for k in (key, search_key) if k is not None]
    stream = ChatStream(rt, user_id=user_id, adapter=adapter, key=key, model=model, messages=messages,
                        search_key=search_key, client=client)
    stream.budget_warning = next((s.warning for s in statuses if s and s.warning), None)
    return stream


def list_models(rt: Runtime, *, user_id: int | None, provider: Provider, client: httpx.Client | None = None) -> list[str]:
    """The provider's models as its API lists them, or a static list when that is not possible
    (no usable key, provider unreachable); never raises for those. Not logged as usage: listing
    models costs nothing. Callers that rerun often (Streamlit) should cache it for a few minutes."""
    adapter = _chat_adapter(provider)
    try:
        key = keys.resolve(rt, user_id, provider)
        check_target(key, rt.settings.allow_private_endpoints)
        with client_for(rt.environ, client) as c:
            models = adapter.list_models(c, key)
    except (NoKeyError, KeyUnreadableError, ProviderError, ValidationError) as exc:
        log.info("listing %s models failed (%s); using the static list", provider.value, type(exc).__name__)
        return list(adapter.fallback_models)
    return models or list(adapter.fallback_models)


def default_provider(rt: Runtime, user_id: int | None) -> Provider | None:
    """The first chat provider with a usable key: OpenAI → Anthropic → Google → OpenAI-compatible."""
    found = keys.sources(rt, user_id)
    return next((p for p in CHAT_ORDER if found.get(p) is not None), None)
