"""Adapters through httpx.MockTransport: request shapes, event parsing, error mapping, scrubbing."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest
from fakeproviders import default_error_body
from hypothesis import given
from hypothesis import strategies as st

from byok_core.adapters import CHAT_ADAPTERS, SEARCH_ADAPTERS
from byok_core.adapters.base import ChatMessage, Reply, SearchResult
from byok_core.adapters.errors import provider_error, retry_after, scrub
from byok_core.credential import Credential
from byok_core.errors import (
    KeyRejected,
    ModelNotFound,
    ProviderDown,
    ProviderTimeout,
    RateLimited,
    RequestRejected,
    StreamCutOff,
)
from byok_core.providers import Provider, ProviderKind
from byok_core.secret import Secret

KEY = "sk-fake.unit-SECRET-0123456789abcdefXYZW"
MSGS = [ChatMessage("system", "Be brief."), ChatMessage("user", "Hi"), ChatMessage("assistant", "Hello"),
        ChatMessage("user", "How are you?")]
BASE = {p: p.spec.default_base_url or "https://llm.example.com/v1" for p in Provider}


def key_for(provider: Provider) -> Credential:
    return Credential(Secret(KEY), BASE[provider])


def adapter_for(provider: Provider):
    return CHAT_ADAPTERS.get(provider) or SEARCH_ADAPTERS[provider]


def sse(*frames: str) -> bytes:
    return "".join(frames).encode()


def data(obj) -> str:
    return f"data: {json.dumps(obj)}\n\n"


def event(name: str, obj) -> str:
    return f"event: {name}\ndata: {json.dumps(obj)}\n\n"


def run_stream(provider: Provider, handler, model: str = "m-1"):
    """(deltas, (input, output) tokens) from the adapter; the ProviderError propagates."""
    seen: list[httpx.Request] = []

    def record(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return handler(request)

    with httpx.Client(transport=httpx.MockTransport(record)) as client:
        reply = Reply()
        deltas = list(CHAT_ADAPTERS[provider].stream(client, key_for(provider), model, MSGS, reply))
    assert deltas == reply.text
    usage = reply.usage
    return deltas, (None, None) if usage is None else (usage.input_tokens, usage.output_tokens), seen


def stream_response(body: bytes):
    return lambda request: httpx.Response(200, headers={"content-type": "text/event-stream"}, content=body)


OPENAI_OK = sse(
    data({"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]}),
    data({"choices": [{"index": 0, "delta": {"content": "Fine"}, "finish_reason": None}]}),
    data({"choices": [{"index": 0, "delta": {"content": ", thanks."}, "finish_reason": None}]}),
    data({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}),
    data({"choices": [], "usage": {"prompt_tokens": 21, "completion_tokens": 4, "total_tokens": 25}}),
    "data: [DONE]\n\n",
)
ANTHROPIC_OK = sse(
    event("message_start", {"type": "message_start",
                            "message": {"id": "m", "usage": {"input_tokens": 17, "output_tokens": 1}}}),
    event("content_block_start", {"type": "content_block_start", "index": 0,
                                  "content_block": {"type": "text", "text": ""}}),
    event("ping", {"type": "ping"}),
    event("content_block_delta", {"type": "content_block_delta", "index": 0,
                                  "delta": {"type": "text_delta", "text": "Fine"}}),
    event("content_block_delta", {"type": "content_block_delta", "index": 0,
                                  "delta": {"type": "text_delta", "text": ", thanks."}}),
    event("content_block_stop", {"type": "content_block_stop", "index": 0}),
    event("message_delta", {"type": "message_delta", "delta": {"stop_reason": "end_turn"},
                            "usage": {"output_tokens": 5}}),
    event("message_stop", {"type": "message_stop"}),
)
GOOGLE_OK = sse(
    data({"candidates": [{"content": {"parts": [{"text": "Fine"}], "role": "model"}}],
          "usageMetadata": {"promptTokenCount": 9, "candidatesTokenCount": 1}}),
    data({"candidates": [{"content": {"parts": [{"text": ", thanks."}], "role": "model"}, "finishReason": "STOP"}],
          "usageMetadata": {"promptTokenCount": 9, "candidatesTokenCount": 3, "totalTokenCount": 12}}),
)


def test_openai_request_and_stream():
    deltas, tokens, seen = run_stream(Provider.OPENAI, stream_response(OPENAI_OK), "gpt-4o-mini")
    assert "".join(deltas) == "Fine, thanks." and tokens == (21, 4)
    req = seen[0]
    assert str(req.url) == "https://api.openai.com/v1/chat/completions"
    assert req.headers["authorization"] == f"Bearer {KEY}"
    body = json.loads(req.content)
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
    assert body["messages"][0] == {"role": "system", "content": "Be brief."} and len(body["messages"]) == 4


def test_anthropic_request_and_stream():
    deltas, tokens, seen = run_stream(Provider.ANTHROPIC, stream_response(ANTHROPIC_OK), "claude-haiku-4-5")
    assert "".join(deltas) == "Fine, thanks." and tokens == (17, 5)
    req = seen[0]
    assert str(req.url) == "https://api.anthropic.com/v1/messages"
    assert req.headers["x-api-key"] == KEY and req.headers["anthropic-version"] == "2023-06-01"
    assert "authorization" not in req.headers
    body = json.loads(req.content)
    assert body["system"] == "Be brief." and body["max_tokens"] > 0 and body["stream"] is True
    assert [m["role"] for m in body["messages"]] == ["user", "assistant", "user"]


def test_google_request_and_stream():
    assert CHAT_ADAPTERS[Provider.GOOGLE].canonical_model("models/gemini-2.5-flash") == "gemini-2.5-flash"
    deltas, tokens, seen = run_stream(Provider.GOOGLE, stream_response(GOOGLE_OK), "gemini-2.5-flash")
    assert "".join(deltas) == "Fine, thanks." and tokens == (9, 3)
    req = seen[0]
    assert str(req.url) == ("https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash"
                            ":streamGenerateContent?alt=sse")
    assert req.headers["x-goog-api-key"] == KEY and KEY not in str(req.url)
    body = json.loads(req.content)
    assert body["systemInstruction"] == {"parts": [{"text": "Be brief."}]}
    assert [c["role"] for c in body["contents"]] == ["user", "model", "user"]


@pytest.mark.parametrize("provider, body", [
    (Provider.OPENAI, OPENAI_OK.replace(b"data: [DONE]\n\n", b"")),  # no [DONE]
    (Provider.ANTHROPIC, ANTHROPIC_OK.rsplit(b"event: message_stop", 1)[0]),  # no message_stop
    (Provider.GOOGLE, GOOGLE_OK.replace(b', "finishReason": "STOP"', b"")),  # last chunk without finishReason
])
def test_clean_close_without_end_marker_is_cut_off(provider, body):
    with pytest.raises(StreamCutOff) as info:
        run_stream(provider, stream_response(body))
    assert info.value.partial == "Fine, thanks."
    assert info.value.status == "cut_off"


@pytest.mark.parametrize("provider, good", [
    (Provider.OPENAI, OPENAI_OK), (Provider.ANTHROPIC, ANTHROPIC_OK), (Provider.GOOGLE, GOOGLE_OK)])
def test_non_json_data_line_is_cut_off(provider, good):
    first_break = good.index(b"\n\n") + 2
    body = good[:first_break] + b"data: {not json\n\n" + good[first_break:]
    with pytest.raises(StreamCutOff, match="not JSON"):
        run_stream(provider, stream_response(body))


def test_gemini_finish_reason_in_middle_does_not_complete():
    chunk = data({"candidates": [{"content": {"parts": [{"text": "more"}]}}]})
    with pytest.raises(StreamCutOff):
        run_stream(Provider.GOOGLE, stream_response(GOOGLE_OK + chunk.encode()))


def test_anthropic_error_event_mid_stream():
    body = ANTHROPIC_OK.split(b"event: content_block_stop")[0] + sse(
        event("error", {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}))
    with pytest.raises(ProviderDown, match="Overloaded"):
        run_stream(Provider.ANTHROPIC, stream_response(body))


def test_not_an_event_stream_is_cut_off():
    with pytest.raises(StreamCutOff):
        run_stream(Provider.OPENAI, lambda r: httpx.Response(200, json={"choices": []}))


@pytest.mark.parametrize("provider", [Provider.OPENAI, Provider.ANTHROPIC, Provider.GOOGLE])
@pytest.mark.parametrize("status, error", [
    (401, KeyRejected), (403, KeyRejected), (404, ModelNotFound), (429, RateLimited), (500, ProviderDown),
    (503, ProviderDown), (529, ProviderDown), (400, RequestRejected)])
def test_status_mapping(provider, status, error):
    body = default_error_body(provider, status)
    with pytest.raises(error) as info:
        run_stream(provider, lambda r: httpx.Response(status, json=body))
    assert error.status in {"key_rejected", "model_not_found", "rate_limited", "provider_down", "bad_request"}
    message = str(info.value)
    assert message.endswith(".") and "\n" not in message and provider.label in message


def test_gemini_invalid_key_is_http_400_with_reason():
    body = {"error": {"code": 400, "message": f"API key not valid. Please pass a valid API key. {KEY}",
                      "status": "INVALID_ARGUMENT", "details": [
                          {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID"}]}}
    with pytest.raises(KeyRejected) as info:
        run_stream(Provider.GOOGLE, lambda r: httpx.Response(400, json=body))
    assert KEY not in str(info.value) and "API key not valid" in str(info.value)


def test_openai_insufficient_quota_is_rate_limited_with_billing_hint():
    body = {"error": {"message": "You exceeded your current quota.", "type": "insufficient_quota",
                      "code": "insufficient_quota"}}
    with pytest.raises(RateLimited, match="no quota or credit left"):
        run_stream(Provider.OPENAI, lambda r: httpx.Response(429, json=body))


def test_retry_after_seconds_and_date():
    with pytest.raises(RateLimited) as info:
        run_stream(Provider.ANTHROPIC, lambda r: httpx.Response(
            429, headers={"retry-after": "17"}, json=default_error_body(Provider.ANTHROPIC, 429)))
    assert info.value.retry_after == 17 and "17 seconds" in str(info.value)
    later = format_datetime(datetime.now(UTC) + timedelta(seconds=120), usegmt=True)
    assert 100 < retry_after({"retry-after": later}) <= 120
    assert retry_after({"retry-after": "soon"}) is None and retry_after({}) is None


def test_http_error_without_json_body():
    with pytest.raises(ProviderDown) as info:
        run_stream(Provider.OPENAI, lambda r: httpx.Response(502, text="<html><body>Bad gateway</body></html>"))
    assert "<html>" not in str(info.value)


def test_timeout_and_connect_errors():
    def slow(request):
        raise httpx.ReadTimeout("timed out", request=request)

    def refused(request):
        raise httpx.ConnectError("refused", request=request)

    with pytest.raises(ProviderTimeout):
        run_stream(Provider.OPENAI, slow)
    with pytest.raises(ProviderDown, match="Could not connect"):
        run_stream(Provider.OPENAI, refused)


@pytest.mark.parametrize("echo", [KEY, KEY[-12:], KEY[:10], f"...{KEY[5:-5]}..."])
def test_scrub_removes_key_and_long_pieces(echo):
    secret = Secret(KEY)
    text = scrub(f"Incorrect API key provided: {echo}. Check it.", secret)
    assert KEY not in text
    for n in range(5, len(KEY) + 1):  # no piece of the key longer than a mask's tail of 4
        for i in range(len(KEY) - n + 1):
            assert KEY[i:i + n] not in text


@given(key=st.text(st.characters(min_codepoint=33, max_codepoint=126), min_size=8, max_size=80),
       before=st.text(max_size=30), after=st.text(max_size=30), start=st.integers(0, 79), length=st.integers(5, 80))
def test_scrub_property(key, before, after, start, length):
    """Whatever piece of the key a provider echoes, no run of more than 4 of its characters survives."""
    piece = key[start:start + length]
    text = scrub(f"{before}{piece}{after}{key}", Secret(key), limit=10_000)
    assert all(key[i:i + 5] not in text for i in range(len(key) - 4))


def test_message_names_the_key_by_mask_only():
    error = provider_error("OpenAI", key_for(Provider.OPENAI), status=401,
                           body={"error": {"message": f"bad key {KEY}"}})
    assert f"OpenAI rejected the key {Secret(KEY).mask}" in str(error) and KEY not in str(error)


def test_list_models_and_key_test():
    def handler(request):
        assert request.url.path == "/v1/models"
        return httpx.Response(200, json={"data": [{"id": "gpt-4o"}, {"id": "gpt-4o-mini"}]})

    with httpx.Client(transport=httpx.MockTransport(handler)) as client:
        adapter = adapter_for(Provider.OPENAI)
        assert adapter.list_models(client, key_for(Provider.OPENAI)) == ["gpt-4o", "gpt-4o-mini"]
        assert adapter.test_key(client, key_for(Provider.OPENAI)) == "2 models visible"


SEARCH_BODIES = {
    Provider.FIRECRAWL: ("POST", "/v2/search", {"success": True, "data": {"web": [
        {"url": "https://a.example", "title": "A", "description": "alpha"},
        {"url": "https://b.example", "title": "B &amp; C", "description": "<b>beta</b>"}]}}),
    Provider.BRAVE: ("GET", "/res/v1/web/search", {"web": {"results": [
        {"url": "https://a.example", "title": "A", "description": "alpha"},
        {"url": "https://b.example", "title": "B &amp; C", "description": "<strong>beta</strong>"}]}}),
    Provider.TAVILY: ("POST", "/search", {"results": [
        {"url": "https://a.example", "title": "A", "content": "alpha", "score": 0.9},
        {"url": "https://b.example", "title": "B &amp; C", "content": "beta", "score": 0.5}]}),
    Provider.SERPER: ("POST", "/search", {"organic": [
        {"link": "https://a.example", "title": "A", "snippet": "alpha", "position": 1},
        {"link": "https://b.example", "title": "B &amp; C", "snippet": "beta", "position": 2}]}),
}


@pytest.mark.parametrize("provider", list(SEARCH_BODIES))
def test_search_normalizes(provider):
    method, path, body = SEARCH_BODIES[provider]
    seen = []

    def handler(request):
        seen.append(request)
        return httpx.Response(200, json=body)

    with httpx.Client(transport=httpx.MockTransport(handler)) as client:
        results = adapter_for(provider).search(client, key_for(provider), "what is beta", 5)
    assert results == [SearchResult("A", "https://a.example", "alpha", provider, 1),
                       SearchResult("B & C", "https://b.example", "beta", provider, 2)]
    assert seen[0].method == method and seen[0].url.path == path
    assert KEY in seen[0].headers.values() or f"Bearer {KEY}" in seen[0].headers.values()
    assert KEY not in str(seen[0].url) and KEY not in seen[0].content.decode()


def test_firecrawl_v1_shape_is_understood():
    body = {"success": True, "data": [{"url": "https://a.example", "title": "A", "description": "alpha"}]}
    with httpx.Client(transport=httpx.MockTransport(lambda r: httpx.Response(200, json=body))) as client:
        results = adapter_for(Provider.FIRECRAWL).search(client, key_for(Provider.FIRECRAWL), "q", 5)
    assert [r.url for r in results] == ["https://a.example"]


@pytest.mark.parametrize("status, error", [(401, KeyRejected), (422, RequestRejected), (429, RateLimited),
                                           (432, RateLimited), (500, ProviderDown)])
def test_search_errors(status, error):
    answer = httpx.MockTransport(lambda r: httpx.Response(status, json={"detail": {"error": KEY}}))
    with httpx.Client(transport=answer) as client, pytest.raises(error) as info:
        adapter_for(Provider.TAVILY).search(client, key_for(Provider.TAVILY), "q", 5)
    assert KEY not in str(info.value)


def test_brave_invalid_token_code_is_key_rejected():
    body = {"type": "ErrorResponse", "error": {"code": "SUBSCRIPTION_TOKEN_INVALID", "status": 422,
                                              "detail": "The provided subscription token is invalid."}}
    answer = httpx.MockTransport(lambda r: httpx.Response(422, json=body))
    with httpx.Client(transport=answer) as client, pytest.raises(KeyRejected):
        adapter_for(Provider.BRAVE).search(client, key_for(Provider.BRAVE), "q", 5)


def test_registry_covers_every_provider_with_the_right_kind():
    from byok_core.adapters.base import ChatAdapter, SearchAdapter

    assert list(CHAT_ADAPTERS) == Provider.of_kind(ProviderKind.CHAT)
    assert list(SEARCH_ADAPTERS) == Provider.of_kind(ProviderKind.SEARCH)
    for provider, adapter in CHAT_ADAPTERS.items():
        assert adapter.provider is provider and isinstance(adapter, ChatAdapter)
    for provider, adapter in SEARCH_ADAPTERS.items():
        assert adapter.provider is provider and isinstance(adapter, SearchAdapter)


def test_gemini_trailing_usage_only_chunk_keeps_the_stream_complete():
    tail = data({"usageMetadata": {"promptTokenCount": 9, "candidatesTokenCount": 4}})
    deltas, tokens, _ = run_stream(Provider.GOOGLE, stream_response(GOOGLE_OK + tail.encode()))
    assert "".join(deltas) == "Fine, thanks." and tokens == (9, 4)


def test_gemini_blocked_prompt_is_a_refused_request():
    body = sse(data({"promptFeedback": {"blockReason": "SAFETY"}, "usageMetadata": {"promptTokenCount": 5}}))
    with pytest.raises(RequestRejected, match="blocked the prompt \\(SAFETY\\)"):
        run_stream(Provider.GOOGLE, stream_response(body))


def test_openai_mid_stream_error_chunk():
    body = OPENAI_OK.split(b"data: [DONE]")[0].rsplit(b"data: ", 2)[0] + sse(
        data({"error": {"message": "The server had an error", "type": "server_error"}}))
    with pytest.raises(ProviderDown, match="server had an error"):
        run_stream(Provider.OPENAI, stream_response(body))


# --- billed usage, error reasons and retry hints (documented shapes: no real recording was found;
#     tests/recordings/MANIFEST.json "not_found" says which) ---------------------------------------


def test_openai_cached_prompt_tokens_are_priced_at_the_cached_rate():
    from byok_core import pricing

    def stream(details: dict) -> Reply:
        usage = {"prompt_tokens": 2000, "completion_tokens": 10, "total_tokens": 2010, **details}
        body = OPENAI_OK.split(b"data: [DONE]")[0].rsplit(b"data: ", 1)[0] + sse(data({"choices": [], "usage": usage}),
                                                                                "data: [DONE]\n\n")
        reply = Reply()
        with httpx.Client(transport=httpx.MockTransport(stream_response(body))) as client:
            list(CHAT_ADAPTERS[Provider.OPENAI].stream(client, key_for(Provider.OPENAI), "gpt-4o-mini", MSGS, reply))
        return reply

    cached = stream({"prompt_tokens_details": {"cached_tokens": 1536},
                     "completion_tokens_details": {"reasoning_tokens": 4}}).usage
    plain = stream({}).usage
    assert (cached.input_tokens, cached.cache_read_tokens, cached.output_reasoning_tokens) == (2000, 1536, 4)
    cost, full = (pricing.usage_cost(Provider.OPENAI, "gpt-4o-mini", u) for u in (cached, plain))
    assert cost is not None and full is not None and cost < full * 0.7


def test_a_gateways_upstream_reason_is_shown():
    raw = json.dumps({"error": {"message": "upstream model is overloaded", "type": "overloaded"}})
    body = {"error": {"code": 502, "message": "Provider returned error",
                      "metadata": {"raw": raw, "provider_name": "Example"}}}
    error = provider_error("OpenAI-compatible", key_for(Provider.OPENAI_COMPATIBLE), status=None, body=body)
    assert "upstream model is overloaded" in str(error) and "Provider returned error" not in str(error)


def test_one_retry_hint_when_the_provider_gives_its_own():
    body = {"error": {"message": "Rate limit reached for gpt-4o in organization org-x on tokens per min. "
                                 "Please try again in 20s. Visit https://platform.openai.com/account/rate-limits.",
                      "type": "tokens", "code": "rate_limit_exceeded"}}
    for headers in ({"retry-after": "20"}, {}):  # the provider's own words give the seconds too
        error = provider_error("OpenAI", key_for(Provider.OPENAI), status=429, body=body, headers=headers)
        text = str(error).lower()
        assert text.count("try again") == 1 and "try again in 20 seconds" in text and "20s" not in text
        assert isinstance(error, RateLimited) and error.retry_after == 20 and error.refused


def test_an_http_error_is_a_refusal_and_an_error_event_is_not():
    assert provider_error("OpenAI", key_for(Provider.OPENAI), status=400, body={}).refused
    assert not provider_error("OpenAI", key_for(Provider.OPENAI), status=None, body={"error": {}}).refused
