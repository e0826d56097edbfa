"""Chat end to end against real loopback servers: streaming, usage rows, key precedence, errors."""

from __future__ import annotations

import logging

import pytest
from callhelpers import dump_database, runtime_with, usage_rows
from fakeproviders import FakeProvider
from genai_prices import Usage

from byok_core import accounts, chat, keys, pricing
from byok_core.adapters.errors import KeyRejected, ProviderDown
from byok_core.chat import ChatMessage, default_provider, list_models, stream_chat
from byok_core.errors import NoKeyError, ValidationError
from byok_core.identity import Actor, Owner
from byok_core.models import KeySource
from byok_core.providers import Provider

ALICE_KEY = "sk-fake.alice-CHAT-aaaaaaaaaaaaaaaaaaaa1111"
BOB_KEY = "sk-fake.bob-CHAT-bbbbbbbbbbbbbbbbbbbbbbbb2222"
TEAM_KEY = "sk-fake.team-CHAT-tttttttttttttttttttttt3333"
ENV_KEY = "sk-fake.env-CHAT-eeeeeeeeeeeeeeeeeeeeeeee4444"
ALL_KEYS = (ALICE_KEY, BOB_KEY, TEAM_KEY, ENV_KEY)
HI = [ChatMessage("user", "Say hello")]
ENV_VAR = {Provider.OPENAI: "OPENAI_API_KEY", Provider.ANTHROPIC: "ANTHROPIC_API_KEY",
           Provider.GOOGLE: "GOOGLE_GENERATIVE_AI_API_KEY"}
MODEL = {Provider.OPENAI: "gpt-4o-mini", Provider.ANTHROPIC: "claude-3-5-haiku-latest",
         Provider.GOOGLE: "gemini-2.0-flash"}


def run(stream: chat.ChatStream) -> tuple[list[str], chat.ChatResult]:
    deltas = list(stream)
    assert stream.result is not None
    return deltas, stream.result


def assert_no_key_anywhere(rt, *texts: str) -> None:
    haystack = "\n".join([dump_database(rt), *texts])
    for key in ALL_KEYS:
        assert key not in haystack
        assert key[-8:] not in haystack


@pytest.fixture
def users(rt):
    alice = accounts.create_user(rt, Actor.operator(), "alice", "alice-password")
    bob = accounts.create_user(rt, Actor.operator(), "bob", "bob-password")
    return alice.id, bob.id


@pytest.mark.parametrize("provider", [Provider.OPENAI, Provider.ANTHROPIC, Provider.GOOGLE])
def test_each_provider_streams_and_logs_one_row(environ, provider):
    with FakeProvider(provider, reply="Hello there, how are you?", input_tokens=11, output_tokens=6) as server, \
            runtime_with(environ, **server.env(), **{ENV_VAR[provider]: ENV_KEY}) as rt:
        deltas, result = run(stream_chat(rt, user_id=None, provider=provider, model=MODEL[provider], messages=HI))
        assert deltas == ["Hello ", "there, ", "how ", "are ", "you?"]
        assert (result.text, result.record.status, result.error) == ("Hello there, how are you?", "ok", None)
        record = result.record
        assert (record.input_tokens, record.output_tokens, record.key_source) == (11, 6, KeySource.ENV)
        expected_cost = pricing.usage_cost(provider, MODEL[provider], Usage(input_tokens=11, output_tokens=6))
        assert expected_cost is not None and result.record.cost_usd == pytest.approx(expected_cost)
        [row] = usage_rows(rt)
        assert (row.provider, row.model, row.key_source, row.status) == (provider.value, MODEL[provider], "env", "ok")
        assert (row.input_tokens, row.output_tokens, row.kind) == (11, 6, "chat")
        assert row.cost_usd == pytest.approx(expected_cost) and row.latency_ms >= 0
        assert server.sent_keys() == [ENV_KEY]


def test_deltas_arrive_before_the_reply_is_finished(environ):
    with FakeProvider(Provider.OPENAI, reply="one two three", hold_after=1) as server, \
            runtime_with(environ, **server.env(), OPENAI_API_KEY=ENV_KEY) as rt:
        stream = iter(stream_chat(rt, user_id=None, provider=Provider.OPENAI, model="gpt-4o-mini", messages=HI))
        assert next(stream) == "one "  # the server is still holding the rest back
        assert not server.gate.is_set()
        server.gate.set()
        assert list(stream) == ["two ", "three"]


def test_unknown_model_costs_unknown_not_zero(environ):
    with FakeProvider(Provider.OPENAI) as server, runtime_with(environ, **server.env(), OPENAI_API_KEY=ENV_KEY) as rt:
        _, result = run(stream_chat(rt, user_id=None, provider=Provider.OPENAI, model="my-finetune-xyz", messages=HI))
        assert result.record.status == "ok" and result.record.input_tokens == 12 and result.record.cost_usd is None
        assert usage_rows(rt)[0].cost_usd is None


@pytest.mark.parametrize("provider", [Provider.OPENAI, Provider.ANTHROPIC, Provider.GOOGLE])
def test_connection_cut_mid_stream_keeps_partial_text(environ, provider):
    with FakeProvider(provider, reply="alpha beta gamma delta", cut_after=2) as server, \
            runtime_with(environ, **server.env(), **{ENV_VAR[provider]: ENV_KEY}) as rt:
        deltas, result = run(stream_chat(rt, user_id=None, provider=provider, model=MODEL[provider], messages=HI))
        assert deltas == ["alpha ", "beta "] and result.text == "alpha beta "
        assert result.record.status == "cut_off" and "cut off" in str(result.error)
        [row] = usage_rows(rt)
        assert row.status == "cut_off" and "cut off" in row.error
        # the usage that arrived is kept: Anthropic's message_start (12 in), Gemini's running totals in
        # every chunk; OpenAI sends its usage only in the last chunk, so there it stays unknown
        expected = {Provider.ANTHROPIC: (12, 1), Provider.GOOGLE: (12, 2)}.get(provider, (None, None))
        assert (row.input_tokens, row.output_tokens) == expected
        assert (row.cost_usd is None) == (expected == (None, None))


@pytest.mark.parametrize("provider", [Provider.OPENAI, Provider.ANTHROPIC, Provider.GOOGLE])
@pytest.mark.parametrize("fault", [{"close_after": 2}, {"garbage_after": 2}])
def test_clean_close_or_garbage_is_cut_off(environ, provider, fault):
    with FakeProvider(provider, reply="alpha beta gamma delta", **fault) as server, \
            runtime_with(environ, **server.env(), **{ENV_VAR[provider]: ENV_KEY}) as rt:
        _, result = run(stream_chat(rt, user_id=None, provider=provider, model=MODEL[provider], messages=HI))
        assert result.record.status == "cut_off" and result.text == "alpha beta "
        assert [r.status for r in usage_rows(rt)] == ["cut_off"]


def test_anthropic_error_event_ends_stream_with_partial_text(environ):
    with FakeProvider(Provider.ANTHROPIC, reply="alpha beta",
                      stream_error=("overloaded_error", "Overloaded")) as server, \
            runtime_with(environ, **server.env(), ANTHROPIC_API_KEY=ENV_KEY) as rt:
        _, result = run(stream_chat(rt, user_id=None, provider=Provider.ANTHROPIC, model="claude-haiku-4-5",
                                    messages=HI))
        assert isinstance(result.error, ProviderDown) and result.text == "alpha beta"
        assert result.record.input_tokens == 12  # message_start was received before the error
        assert usage_rows(rt)[0].status == "provider_down"


def test_slow_server_hits_the_read_timeout(environ):
    with FakeProvider(Provider.OPENAI, reply="alpha beta gamma", stall_after=1, stall=30) as server, \
            runtime_with(environ, **server.env(), OPENAI_API_KEY=ENV_KEY, BYOK_READ_TIMEOUT="0.3") as rt:
        _, result = run(stream_chat(rt, user_id=None, provider=Provider.OPENAI, model="gpt-4o-mini", messages=HI))
        assert result.record.status == "timeout" and result.text == "alpha "
        assert 250 <= result.record.latency_ms < 10_000
        assert usage_rows(rt)[0].status == "timeout"


@pytest.mark.parametrize("provider, status, kind", [
    (Provider.OPENAI, 401, "key_rejected"), (Provider.OPENAI, 403, "key_rejected"),
    (Provider.OPENAI, 404, "model_not_found"), (Provider.OPENAI, 500, "provider_down"),
    (Provider.ANTHROPIC, 529, "provider_down"), (Provider.ANTHROPIC, 429, "rate_limited"),
    (Provider.GOOGLE, 429, "rate_limited"), (Provider.GOOGLE, 404, "model_not_found"),
])
def test_http_errors_are_logged_with_their_kind(environ, provider, status, kind):
    with FakeProvider(provider, status=status, error_headers={"Retry-After": "7"}) as server, \
            runtime_with(environ, **server.env(), **{ENV_VAR[provider]: ENV_KEY}) as rt:
        deltas, result = run(stream_chat(rt, user_id=None, provider=provider, model=MODEL[provider], messages=HI))
        assert deltas == [] and result.record.status == kind and result.error.status == kind
        if kind == "rate_limited":
            assert result.error.retry_after == 7 and "7 seconds" in str(result.error)
        [row] = usage_rows(rt)
        # refused with an HTTP error before any reply: not billed, a known $0 (not unknown)
        assert (row.status, row.input_tokens, row.output_tokens, row.cost_usd) == (kind, None, None, 0.0)
        assert row.error == str(result.error)


@pytest.mark.parametrize("provider", [Provider.OPENAI, Provider.ANTHROPIC, Provider.GOOGLE])
def test_echoed_wrong_key_is_scrubbed_everywhere(environ, caplog, provider):
    caplog.set_level(logging.DEBUG)
    with FakeProvider(provider, expect_key="sk-fake.the-right-one-000000000000") as server, \
            runtime_with(environ, **server.env(), **{ENV_VAR[provider]: ENV_KEY}) as rt:
        _, result = run(stream_chat(rt, user_id=None, provider=provider, model=MODEL[provider], messages=HI))
        assert isinstance(result.error, KeyRejected)
        assert server.sent_keys() == [ENV_KEY]  # the server did receive it ...
        assert "sk-…4444" in str(result.error)  # ... but the message only names the mask
        assert_no_key_anywhere(rt, str(result.error), repr(result), caplog.text,
                               *(str(r.args) for r in caplog.records))


def test_key_precedence_user_then_team_then_env(environ, users):
    alice, bob = users
    op = Actor.operator()
    with FakeProvider(Provider.OPENAI) as server, runtime_with(environ, **server.env(), OPENAI_API_KEY=ENV_KEY) as rt:
        def call(user_id):
            _, result = run(stream_chat(rt, user_id=user_id, provider=Provider.OPENAI, model="gpt-4o-mini",
                                        messages=HI))
            return result.record.key_source, server.sent_keys()[-1]

        assert call(alice) == (KeySource.ENV, ENV_KEY)
        team = keys.store(rt, op, Owner.team(), Provider.OPENAI, TEAM_KEY)
        assert call(alice) == (KeySource.TEAM, TEAM_KEY)
        mine = keys.store(rt, op, Owner.user(alice), Provider.OPENAI, ALICE_KEY)
        assert call(alice) == (KeySource.USER, ALICE_KEY)
        assert call(bob) == (KeySource.TEAM, TEAM_KEY)
        assert call(None) == (KeySource.TEAM, TEAM_KEY)  # the CLI without --user: team and server keys only
        keys.store(rt, op, Owner.user(alice), Provider.OPENAI, "sk-fake.alice-REPLACED-cccccccccccccccc5555")
        assert call(alice) == (KeySource.USER, "sk-fake.alice-REPLACED-cccccccccccccccc5555")
        keys.delete(rt, op, Owner.user(alice), keys.list_keys(rt, op, Owner.user(alice))[0].id)
        keys.delete(rt, op, Owner.team(), team.id)
        assert call(alice) == (KeySource.ENV, ENV_KEY)
        assert [r.key_source for r in usage_rows(rt)] == ["env", "team", "user", "team", "team", "user", "env"]
        # the first user key was replaced, not reused: it is kept, inactive, and never paid again
        assert {k.id: k.active for k in keys.list_keys(rt, op, Owner.user(alice))} == {mine.id: False}


def test_team_key_never_goes_to_a_user_typed_url(environ, users):
    """openai-compatible: each key only ever reaches the URL stored with it."""
    alice, bob = users
    op = Actor.operator()
    with FakeProvider(Provider.OPENAI_COMPATIBLE) as alice_server, \
            FakeProvider(Provider.OPENAI_COMPATIBLE) as team_server, \
            runtime_with(environ, BYOK_ALLOW_PRIVATE_ENDPOINTS="1", OPENAI_BASE_URL=alice_server.base_url) as rt:
        keys.store(rt, op, Owner.team(), Provider.OPENAI_COMPATIBLE, TEAM_KEY, base_url=team_server.base_url)
        keys.store(rt, op, Owner.user(alice), Provider.OPENAI_COMPATIBLE, ALICE_KEY, base_url=alice_server.base_url)

        def call(user_id):
            _, result = run(stream_chat(rt, user_id=user_id, provider=Provider.OPENAI_COMPATIBLE, model="llama-3.1-8b",
                                        messages=HI))
            assert result.record.status == "ok"
            return result.record.key_source

        assert call(alice) == KeySource.USER
        assert call(bob) == KeySource.TEAM
        assert call(None) == KeySource.TEAM
        keys.delete(rt, op, Owner.user(alice), keys.list_keys(rt, op, Owner.user(alice))[0].id)
        assert call(alice) == KeySource.TEAM  # falls back to the team's key AND the team's URL
        assert alice_server.sent_keys() == [ALICE_KEY]
        assert team_server.sent_keys() == [TEAM_KEY, TEAM_KEY, TEAM_KEY]


def test_user_url_is_checked_before_every_call(environ, users):
    alice, _ = users
    with FakeProvider(Provider.OPENAI_COMPATIBLE) as server:
        with runtime_with(environ, BYOK_ALLOW_PRIVATE_ENDPOINTS="1") as rt:
            keys.store(rt, Actor.operator(), Owner.user(alice), Provider.OPENAI_COMPATIBLE, ALICE_KEY,
                       base_url=server.base_url)
        with runtime_with(environ) as strict:  # the operator has since turned private endpoints off
            with pytest.raises(ValidationError, match="private network"):
                stream_chat(strict, user_id=alice, provider=Provider.OPENAI_COMPATIBLE, model="m", messages=HI)
            assert list_models(strict, user_id=alice, provider=Provider.OPENAI_COMPATIBLE) == []
        assert server.requests == []


def test_web_search_feeds_numbered_sources(environ):
    with FakeProvider(Provider.BRAVE) as brave, FakeProvider(Provider.OPENAI, reply="It is [1].") as openai, \
            runtime_with(environ, **brave.env(), **openai.env(), OPENAI_API_KEY=ENV_KEY,
                         BRAVE_API_KEY="brave-env-key-0123456789") as rt:
        question = [ChatMessage("system", "Be brief."), ChatMessage("user", "What is   an example?")]
        _, result = run(stream_chat(rt, user_id=None, provider=Provider.OPENAI, model="gpt-4o-mini",
                                    messages=question, search_provider=Provider.BRAVE))
        assert result.record.status == "ok" and [s.rank for s in result.sources] == [1, 2, 3]
        assert "q=What+is+an+example%3F" in brave.requests[0].path
        sent = openai.requests[0].body["messages"]
        assert [m["role"] for m in sent] == ["system", "system", "user"]
        assert "[1] Example One — https://example.com/one\nThe first result snippet." in sent[1]["content"]
        assert "[3] Example Three — https://example.net/three" in sent[1]["content"] and "[n]" in sent[1]["content"]
        rows = usage_rows(rt)
        assert [(r.provider, r.kind, r.status) for r in rows] == [("brave", "search", "ok"), ("openai", "chat", "ok")]
        assert rows[0].cost_usd == pricing.search_price(rt, Provider.BRAVE)


def test_a_failed_search_is_answered_without_sources(environ):
    with FakeProvider(Provider.TAVILY, status=432) as tavily, FakeProvider(Provider.OPENAI) as openai, \
            runtime_with(environ, **tavily.env(), **openai.env(), OPENAI_API_KEY=ENV_KEY,
                         TAVILY_API_KEY="tvly-env-0123456789abcdef") as rt:
        text, result = run(stream_chat(rt, user_id=None, provider=Provider.OPENAI, model="gpt-4o-mini", messages=HI,
                                       search_provider=Provider.TAVILY))
        assert result.error is None and result.model_called and "".join(text) == "Hello there"
        assert result.search_record.status == "rate_limited" and "Tavily" in result.search_record.error
        assert result.sources == [] and result.search_record.cost_usd == 0.0
        [sent] = openai.requests
        assert [m["role"] for m in sent.body["messages"]] == ["user"]  # no sources to cite
        assert [(r.provider, r.status) for r in usage_rows(rt)] == [("tavily", "rate_limited"), ("openai", "ok")]


def test_search_that_cannot_run_ends_the_stream_without_raising(environ):
    with FakeProvider(Provider.OPENAI) as openai, \
            runtime_with(environ, **openai.env(), OPENAI_API_KEY=ENV_KEY,
                         BRAVE_API_KEY="brave-env-key-0123456789") as rt:
        only_assistant = [ChatMessage("assistant", "How can I help?")]
        _, result = run(stream_chat(rt, user_id=None, provider=Provider.OPENAI, model="gpt-4o-mini",
                                    messages=only_assistant, search_provider=Provider.BRAVE))
        assert isinstance(result.error, ValidationError) and result.search_record.status == "error"
        assert not result.model_called and openai.requests == [] and usage_rows(rt) == []


def test_stopping_early_logs_one_stopped_row(environ):
    with FakeProvider(Provider.OPENAI, reply="a b c d e f") as server, \
            runtime_with(environ, **server.env(), OPENAI_API_KEY=ENV_KEY) as rt:
        stream = stream_chat(rt, user_id=None, provider=Provider.OPENAI, model="gpt-4o-mini", messages=HI)
        for _delta in stream:
            break
        iterator_closed = stream.result
        assert iterator_closed is not None
        assert iterator_closed.record.status == "stopped" and iterator_closed.text == "a "
        assert [r.status for r in usage_rows(rt)] == ["stopped"]


def test_up_front_errors(rt, environ):
    with pytest.raises(NoKeyError, match="No API key for OpenAI"):
        stream_chat(rt, user_id=None, provider=Provider.OPENAI, model="gpt-4o-mini", messages=HI)
    with runtime_with(environ, OPENAI_API_KEY=ENV_KEY) as with_key:
        with pytest.raises(ValidationError, match="search provider"):
            stream_chat(with_key, user_id=None, provider=Provider.BRAVE, model="x", messages=HI)
        with pytest.raises(ValidationError, match="Write a message"):
            stream_chat(with_key, user_id=None, provider=Provider.OPENAI, model="gpt-4o-mini", messages=[])
        with pytest.raises(ValidationError, match="role"):
            stream_chat(with_key, user_id=None, provider=Provider.OPENAI, model="m",
                        messages=[ChatMessage("tool", "x")])
        with pytest.raises(NoKeyError, match="Serper"):
            stream_chat(with_key, user_id=None, provider=Provider.OPENAI, model="m", messages=HI,
                        search_provider=Provider.SERPER)
        assert usage_rows(with_key) == []


def test_empty_model_means_the_providers_default(environ):
    with FakeProvider(Provider.ANTHROPIC) as server, \
            runtime_with(environ, **server.env(), ANTHROPIC_API_KEY=ENV_KEY) as rt:
        _, result = run(stream_chat(rt, user_id=None, provider=Provider.ANTHROPIC, model="", messages=HI))
        assert result.record.model == "claude-haiku-4-5" == server.requests[0].body["model"]


def test_list_models_live_and_fallback(environ):
    with FakeProvider(Provider.GOOGLE) as server, \
            runtime_with(environ, **server.env(), GOOGLE_GENERATIVE_AI_API_KEY=ENV_KEY) as rt:
        assert list_models(rt, user_id=None, provider=Provider.GOOGLE) == ["gemini-2.5-flash", "gemini-2.5-pro"]
        assert server.sent_keys() == [ENV_KEY]
    with FakeProvider(Provider.OPENAI, status=503) as server, \
            runtime_with(environ, **server.env(), OPENAI_API_KEY=ENV_KEY) as rt:
        assert "gpt-4o-mini" in list_models(rt, user_id=None, provider=Provider.OPENAI)
    with runtime_with(environ) as rt:  # no key at all: the static list
        assert "claude-haiku-4-5" in list_models(rt, user_id=None, provider=Provider.ANTHROPIC)
        assert usage_rows(rt) == []


def test_default_provider_order(rt, environ, users):
    alice, _ = users
    assert default_provider(rt, alice) is None
    keys.store(rt, Actor.operator(), Owner.user(alice), Provider.GOOGLE, "AIza-alice-0123456789abcdef")
    assert default_provider(rt, alice) is Provider.GOOGLE
    keys.store(rt, Actor.operator(), Owner.team(), Provider.ANTHROPIC, "sk-fake.ant-team-0123456789abcdef")
    assert default_provider(rt, alice) is Provider.ANTHROPIC
    with runtime_with(environ, OPENAI_API_KEY=ENV_KEY) as with_env:
        assert default_provider(with_env, alice) is Provider.OPENAI
