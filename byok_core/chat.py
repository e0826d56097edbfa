"""Chat: resolve the key, optionally search the web first, stream the reply, log the call.

The UI and the CLI both call ``stream_chat``; every provider call ends in exactly one usage row."""

from __future__ import annotations

import logging
import re
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field

import httpx

from byok_core import attachments, budgets, calls, fallback, keys, limits, pricing
from byok_core.adapters import chat_adapter
from byok_core.adapters.base import DEFAULT_PARAMS, ChatAdapter, ChatMessage, ChatParams, Reply, SearchResult
from byok_core.errors import (
    ByokError,
    KeyUnreadableError,
    NoKeyError,
    ProviderError,
    RateLimited,
    ValidationError,
)
from byok_core.identity import KeySource
from byok_core.pricing import CostBound
from byok_core.providers import Provider, ProviderKind
from byok_core.record import CallRecord
from byok_core.runtime import Runtime
from byok_core.search import search_with

__all__ = ["ChatMessage", "ChatParams", "ChatResult", "ChatStream", "default_provider", "list_models", "stream_chat"]

log = logging.getLogger(__name__)

ROLES = {"system", "user", "assistant"}
MAX_SOURCES = 5
SOURCES_INSTRUCTION = ("Use these web search results where they help, and cite them as [n] right after "
                       "the statement they support. If they do not answer the question, say so.")


@dataclass
class ChatResult:
    """A finished chat turn: the text received (all of it, or up to a failure) and the call's record."""

    text: str
    record: CallRecord
    error: ByokError | None = None
    sources: list[SearchResult] = field(default_factory=list)
    search_record: CallRecord | None = None  # the web search made first, if any: who paid, what it cost
    model_called: bool = True  # False: the model was never called (the search failed, or the call was refused)
    budget_warning: str | None = None  # from 80% of a shared-key budget, read after the call was settled
    fell_back_from: CallRecord | None = None  # the call the member's own key could not pay for (``fallback``)


Paid = tuple[keys.ResolvedKey, CostBound]  # a call about to be made: the key that pays, and its worst case


class ChatStream:
    """Iterate for text deltas; afterwards ``result`` holds the ChatResult.

    Errors never raise out of the iteration: they end it, and land in ``result.error`` with the
    partial text kept in ``result.text``. Stopping early logs the call as cut off."""

    def __init__(self, rt: Runtime, *, user_id: int | None, adapter: ChatAdapter, paid: Paid, model: str,
                 messages: list[ChatMessage], search: Paid | None, client: httpx.Client | None,
                 params: ChatParams = DEFAULT_PARAMS):
        self._rt, self._user_id, self._adapter, (self._key, self._bound) = rt, user_id, adapter, paid
        self._model, self._messages, self._search, self._client = model, messages, search, client
        self._params = params
        self._started = False
        self._reply = Reply(deadline_s=rt.settings.call_deadline)
        self.result: ChatResult | None = None

    def hang_up(self) -> None:
        """End the reply now, from any thread (Stop): the call is logged as stopped, the text so far kept."""
        self._reply.stopped = True
        if self._reply.hang_up is not None:
            self._reply.hang_up()

    def __iter__(self) -> Iterator[str]:
        if self._started:
            raise RuntimeError("A ChatStream can be iterated only once.")
        self._started = True
        record = CallRecord(self._adapter.provider, self._key.source, self._model, self._user_id)
        self.result = ChatResult("", record)
        try:
            yield from self._search_then_reply(record, self._reply)
        finally:
            self.result.text = "".join(self._reply.text)
            self.result.budget_warning = self._budget_warning()

    def _search_then_reply(self, record: CallRecord, reply: Reply) -> Iterator[str]:
        assert self.result is not None
        messages, bound = self._messages, self._bound
        if self._search is not None:
            key, search_bound = self._search
            searched = self.result.search_record = CallRecord(key.provider, key.source, user_id=self._user_id)
            try:
                self.result.sources = search_with(self._rt, key, searched, _search_query(messages),
                                                  limit=MAX_SOURCES, bound=search_bound, client=self._client)
            except ByokError as exc:
                if searched.ok:  # it could not even start (no query to send): neither does the reply
                    searched.fail(exc)
                    self.result.error, self.result.model_called = exc, False
                    return
                # the search failed (its row and record say why): the model answers without sources
            else:
                messages = with_sources(messages, self.result.sources)
                bound = _bound(self._rt, self._adapter, self._key, self._model, messages, self._params)  # sources count
        try:
            yield from self._call(self._key, record, messages, bound, reply)
        except ProviderError as exc:
            if not (fallback.applies(self._rt, self._user_id, self._adapter.provider, exc)
                    and (yield from self._on_team_key(exc, record, messages, bound))):
                self.result.error = exc
        except ByokError as exc:  # a refusal before anything was sent: in the record
            self.result.error, self.result.model_called = exc, False
        if self._key.note:  # a key earlier in the order was passed over: say why, with what the reply says
            record.notice = " ".join(filter(None, (self._key.note, record.notice)))

    def _call(self, key: keys.ResolvedKey, record: CallRecord, messages: list[ChatMessage], bound: CostBound,
              reply: Reply) -> Iterator[str]:
        with calls.metered(self._rt, key, record, bound=bound, client=self._client, reply=reply) as client:
            yield from self._adapter.stream(client, key.credential, self._model, messages, reply, self._params)

    def _on_team_key(self, refused: ProviderError, first: CallRecord, messages: list[ChatMessage],
                     bound: CostBound) -> Generator[str, None, bool]:
        """Try the call once more on the team's key, admitted as any team-key call; False (nothing
        sent) when there is no team key, the model is not allowed on it or it cannot be admitted."""
        assert self.result is not None and isinstance(refused, RateLimited)
        provider = self._adapter.provider
        try:
            team = calls.checked(self._rt, keys.resolve(self._rt, self._user_id, provider,
                                                        skip=frozenset({KeySource.USER, KeySource.ENV})))
            limits.check_model(self._rt, self._user_id, provider, team.source, self._model)
        except ByokError:
            return False
        record = CallRecord(provider, team.source, self._model, self._user_id)
        self._reply = reply = Reply(deadline_s=self._rt.settings.call_deadline)
        try:
            yield from self._call(team, record, messages, bound, reply)
        except ProviderError as exc:
            self.result.error = exc
        except ByokError:  # refused before anything was sent (budget, rate limit): the first refusal stands
            return False
        self.result.record, self.result.fell_back_from = record, first
        record.notice = " ".join(filter(None, (fallback.note(refused), record.notice)))
        return True

    def _budget_warning(self) -> str | None:
        """From 80% of a shared-key budget: as the last settled shared-key call left them (read
        again only when no such call was settled); from 80% of a cap on an own key that paid, as
        the call left it."""
        assert self.result is not None
        calls_made = [r for r in (self.result.search_record, self.result.record) if r is not None]
        capped = [r.cap_after.describe() for r in calls_made if r.cap_after is not None and r.cap_after.near]
        shared = [r for r in calls_made if r.key_source.shared]
        if not shared:
            return " ".join(capped) or None
        settled = [r.budgets_after for r in shared if r.budgets_after is not None]
        status = settled[-1] if settled else budgets.status(self._rt, self._user_id)
        return " ".join(filter(None, [status.warning if status else None, *capped])) or None


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


_MODEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@+/-]*")
MAX_MODEL = 120  # the usage log's column


def check_model(model: str, provider: Provider) -> str:
    """``model`` if it is a name the app can send as it is: letters, digits and ``. _ : @ + / -``,
    at most MAX_MODEL characters, no empty, ``.`` or ``..`` parts between slashes."""
    if not model:
        raise ValidationError(f"Pick a model for {provider.label}.")
    if (len(model) > MAX_MODEL or not _MODEL_NAME.fullmatch(model)
            or any(part in {"", ".", ".."} for part in model.split("/"))):
        raise ValidationError(f"That is not a model name {provider.label} could have: use letters, digits and "
                              f". _ : @ + / - (at most {MAX_MODEL} characters).")
    return model


def _validate(messages: list[ChatMessage]) -> list[ChatMessage]:
    if not any(m.role != "system" for m in messages):
        raise ValidationError("Write a message first.")
    for m in messages:
        if m.role not in ROLES:
            raise ValidationError(f"Unknown message role {m.role!r}; use system, user or assistant.")
    return list(messages)


def stream_chat(rt: Runtime, *, user_id: int | None, provider: Provider, model: str, messages: list[ChatMessage],
                search_provider: Provider | None = None, client: httpx.Client | None = None,
                params: ChatParams = DEFAULT_PARAMS, connection: str | None = None) -> ChatStream:
    """Prepare one chat call with ``params`` (a conversation's temperature, output cap and reasoning
    effort; a system prompt is the first of ``messages``). The budget's worst case is the prompt
    (system prompt included) and the output cap the request states: the conversation's own, when it
    has one. Raises NoKeyError, KeyUnreadableError, ValidationError, PermissionDenied
    (a model not allowed on a shared key) or BudgetExceeded now, before any delta, when no call can be
    made; provider errors (and a limit reached meanwhile) come later, in ``ChatStream.result``.
    Files attached to the messages count in the worst case by the provider's rule (``attachments``).

    An empty ``model`` means the provider's default. ``connection``: an OpenAI-compatible connection's
    id (None: the only one there is). ``client`` is the test seam (a MockTransport)."""
    adapter = chat_adapter(provider)
    model = check_model(adapter.canonical_model((model or "").strip() or adapter.default_model or ""), provider)
    messages = _validate(messages)
    key = calls.prepare(rt, user_id, provider, connection)
    limits.check_model(rt, user_id, provider, key.source, model)
    paid = key, _bound(rt, adapter, key, model, messages, params)
    search = None
    if search_provider is not None:
        if search_provider.kind is not ProviderKind.SEARCH:
            raise ValidationError(f"{search_provider.label} is not a search provider.")
        search_key = calls.prepare(rt, user_id, search_provider)
        search = search_key, pricing.search_bound(rt, search_provider)
    # Shared (team/server) keys: refused here, before any delta, when a budget cannot cover a call
    # (the sources a web search adds are counted when the call is admitted, after the search).
    budgets.check(rt, user_id, *((k.source, b) for k, b in filter(None, (search, paid))))
    return ChatStream(rt, user_id=user_id, adapter=adapter, paid=paid, model=model, messages=messages,
                      search=search, client=client, params=params)


def _bound(rt: Runtime, adapter: ChatAdapter, key: keys.ResolvedKey, model: str, messages: list[ChatMessage],
           params: ChatParams) -> CostBound:
    files = attachments.worst_tokens(adapter.provider, model, (f for m in messages for f in m.files))
    return pricing.chat_bound(rt, adapter.provider, model, [m.content for m in messages], adapter.output_cap(params),
                              files, key.pricing_id)


def list_models(rt: Runtime, *, user_id: int | None, provider: Provider,
                client: httpx.Client | None = None, connection: str | None = None) -> list[str]:
    """The provider's models as its API lists them, or a static list when that is not possible
    (no usable key, provider unreachable); never raises for those. Not logged as usage: listing
    models costs nothing. Callers that rerun often (Streamlit) should cache it for a few minutes."""
    adapter = chat_adapter(provider)
    try:
        key = calls.prepare(rt, user_id, provider, connection)
        with calls.http(rt, key, client) as session:
            models = adapter.list_models(session, key.credential)
    except (NoKeyError, KeyUnreadableError, ProviderError, ValidationError) as exc:
        log.info("listing %s models failed (%s); using the static list", provider.value, type(exc).__name__)
        return list(adapter.fallback_models)
    return models or list(adapter.fallback_models)


def default_provider(rt: Runtime, user_id: int | None) -> Provider | None:
    """The first chat provider with a usable key, in registry order: OpenAI → Anthropic → Google →
    OpenAI-compatible."""
    found = keys.sources(rt, user_id)
    return next((p for p in Provider.of_kind(ProviderKind.CHAT) if found.get(p) is not None), None)
