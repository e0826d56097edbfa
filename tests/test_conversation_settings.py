"""A conversation's system prompt and parameters go to each provider in its own fields, against
loopback fakes (the request bodies they received); the budget's worst case is the conversation's
own output cap, with the system prompt counted as input. On SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from apptest import make_user
from callhelpers import finished, runtime_with, usage_rows
from fakeproviders import FakeProvider

from byok_core import budgets, keys, presets, replies
from byok_core import conversations as convs
from byok_core.adapters import CHAT_ADAPTERS
from byok_core.adapters.base import ChatParams, Effort, Reply, Stop
from byok_core.chat import ChatMessage, stream_chat
from byok_core.errors import BudgetExceeded, NotFoundError, ValidationError
from byok_core.identity import Actor, Owner
from byok_core.models import ReplyStatus
from byok_core.presets import Settings
from byok_core.providers import Provider

SYSTEM = "You are a terse assistant. Answer in one line."
KEYS = {Provider.OPENAI: "sk-fake.own-SETTINGS-aaaaaaaaaaaaaaaaaaaa1111",
        Provider.ANTHROPIC: "sk-ant.fake.own-SETTINGS.aaaaaaaaaaaaaaa2222",
        Provider.GOOGLE: "fake.google.own-SETTINGS.aaaaaaaaaaaa3333"}
ENV_KEY = "sk-fake.env-SETTINGS-eeeeeeeeeeeeeeeeeeeeee4444"



def one_reply(environ, provider: Provider, model: str, settings: Settings, prompt: str = "Hi"):
    """Send ``prompt`` in a new conversation with ``settings``; the body the provider received, and the reply."""
    with FakeProvider(provider, reply="Fine.") as server, runtime_with(environ, **server.env()) as rt:
        ann = make_user(rt, "ann")
        keys.store(rt, Actor.operator(), Owner.user(ann.id), provider, KEYS[provider])
        conv = convs.create(rt, ann.id, "Settings", provider=provider, model=model, settings=settings)
        reply = finished(rt, ann.id, replies.send(rt, ann.id, conv.id, prompt, replies.Request(provider, model)))
        assert reply.status is ReplyStatus.DONE, reply.error
        return server.requests[-1].body, reply


def test_openai_gets_the_system_prompt_first_then_temperature_and_the_cap(environ):
    body, _ = one_reply(environ, Provider.OPENAI, "gpt-4o-mini",
                        Settings(SYSTEM, ChatParams(0.3, 500, Effort.HIGH)))
    assert body["messages"] == [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "Hi"}]
    assert (body["temperature"], body["max_completion_tokens"]) == (0.3, 500)
    assert "reasoning_effort" not in body  # gpt-4o-mini takes none


def test_an_openai_reasoning_model_gets_the_effort_and_no_temperature(environ):
    body, _ = one_reply(environ, Provider.OPENAI, "o4-mini", Settings("", ChatParams(0.3, 2000, Effort.LOW)))
    assert (body["reasoning_effort"], body["max_completion_tokens"]) == ("low", 2000)
    assert "temperature" not in body and [m["role"] for m in body["messages"]] == ["user"]


def test_anthropic_gets_the_system_field_and_a_thinking_budget_from_the_effort(environ):
    body, _ = one_reply(environ, Provider.ANTHROPIC, "claude-sonnet-4-5",
                        Settings(SYSTEM, ChatParams(0.5, 4000, Effort.MEDIUM)))
    assert body["system"] == SYSTEM and body["messages"] == [{"role": "user", "content": "Hi"}]
    assert (body["max_tokens"], body["thinking"]) == (4000, {"type": "enabled", "budget_tokens": 2000})
    assert "temperature" not in body  # thinking takes none


def test_anthropic_without_thinking_gets_the_temperature_at_most_1(environ):
    body, _ = one_reply(environ, Provider.ANTHROPIC, "claude-3-5-haiku-latest",
                        Settings("", ChatParams(1.6, 300, Effort.HIGH)))
    assert (body["temperature"], body["max_tokens"]) == (1.0, 300)
    assert "thinking" not in body and "system" not in body


def test_gemini_gets_the_system_instruction_and_the_generation_config(environ):
    body, _ = one_reply(environ, Provider.GOOGLE, "gemini-2.5-flash",
                        Settings(SYSTEM, ChatParams(0.7, 2048, Effort.HIGH)))
    assert body["systemInstruction"] == {"parts": [{"text": SYSTEM}]}
    assert body["generationConfig"] == {"maxOutputTokens": 2048, "temperature": 0.7,
                                        "thinkingConfig": {"thinkingBudget": 1536}}
    assert [c["role"] for c in body["contents"]] == ["user"]


def test_gemini_2_0_gets_no_thinking_config(environ):
    body, _ = one_reply(environ, Provider.GOOGLE, "gemini-2.0-flash", Settings("", ChatParams(None, None, Effort.LOW)))
    assert body["generationConfig"] == {"maxOutputTokens": CHAT_ADAPTERS[Provider.GOOGLE].max_output_tokens}


def test_without_settings_the_request_is_as_before(environ):
    body, _ = one_reply(environ, Provider.OPENAI, "gpt-4o-mini", Settings())
    assert body["messages"] == [{"role": "user", "content": "Hi"}]
    assert body["max_completion_tokens"] == CHAT_ADAPTERS[Provider.OPENAI].max_output_tokens
    assert not {"temperature", "reasoning_effort"} & set(body)


def test_settings_changed_midway_go_with_the_next_reply_retry_and_edit(environ):
    with FakeProvider(Provider.OPENAI, reply="Fine.") as server, runtime_with(environ, **server.env()) as rt:
        ann = make_user(rt, "ann")
        keys.store(rt, Actor.operator(), Owner.user(ann.id), Provider.OPENAI, KEYS[Provider.OPENAI])
        conv = convs.create(rt, ann.id, "Midway", provider=Provider.OPENAI, model="gpt-4o-mini")
        ask = replies.Request(Provider.OPENAI, "gpt-4o-mini")
        finished(rt, ann.id, replies.send(rt, ann.id, conv.id, "First", ask))
        assert server.requests[-1].body["messages"][0]["role"] == "user"
        saved = convs.set_settings(rt, ann.id, conv.id, Settings(SYSTEM, ChatParams(0.2, 100, None)))
        assert convs.get(rt, ann.id, conv.id).settings == saved.settings == Settings(SYSTEM, ChatParams(0.2, 100))
        for action in (lambda: replies.send(rt, ann.id, conv.id, "Second", ask),
                       lambda: replies.retry(rt, ann.id, conv.id, ask),
                       lambda: replies.edit(rt, ann.id, conv.id, "Second, edited", ask)):
            finished(rt, ann.id, action())
            body = server.requests[-1].body
            assert body["messages"][0] == {"role": "system", "content": SYSTEM}
            assert [m["role"] for m in body["messages"]] == ["system", "user", "assistant", "user"]
            assert (body["temperature"], body["max_completion_tokens"]) == (0.2, 100)
        assert server.requests[-1].body["messages"][-1]["content"] == "Second, edited"


def test_a_cap_spent_thinking_names_the_conversations_own_cap():
    adapter = CHAT_ADAPTERS[Provider.OPENAI]
    own = adapter.notice(Reply(stop=Stop.OUTPUT_CAP, stop_reason="length", output_cap=64))
    assert "whole output cap of 64 tokens" in own and "this conversation asks for at most 64 output tokens" in own
    assert f"its settings allow up to {adapter.max_output_tokens:,}" in own
    default = adapter.notice(Reply(stop=Stop.OUTPUT_CAP, stop_reason="length"))
    assert f"this app asks every model for at most {adapter.max_output_tokens:,} output tokens" in default


def test_settings_are_checked_and_someone_elses_conversation_looks_missing(rt):
    ann, bob = make_user(rt, "ann"), make_user(rt, "bob")
    conv = convs.create(rt, ann.id, "Mine", provider=Provider.ANTHROPIC, model="claude-haiku-4-5")
    with pytest.raises(ValidationError, match="from 1 to 4,096 for Anthropic"):
        convs.set_settings(rt, ann.id, conv.id, Settings("", ChatParams(max_output_tokens=5000)))
    with pytest.raises(ValidationError, match="temperature is a number from 0 to 2"):
        convs.set_settings(rt, ann.id, conv.id, Settings("", ChatParams(temperature=2.5)))
    with pytest.raises(ValidationError, match="temperature"):
        convs.set_settings(rt, ann.id, conv.id, Settings("", ChatParams(temperature=float("nan"))))
    with pytest.raises(ValidationError, match=r"The system prompt: .*control character"):
        convs.set_settings(rt, ann.id, conv.id, Settings("be\x00have"))
    with pytest.raises(ValidationError, match="at most 20,000"):
        convs.set_settings(rt, ann.id, conv.id, Settings("x" * (presets.MAX_SYSTEM_PROMPT + 1)))
    with pytest.raises(NotFoundError, match="No such conversation"):
        convs.set_settings(rt, bob.id, conv.id, Settings(SYSTEM))
    assert convs.get(rt, ann.id, conv.id).settings == Settings()  # nothing was kept
    kept = convs.set_settings(rt, ann.id, conv.id, Settings("  \n", ChatParams(1.234, 4096, Effort.HIGH)))
    assert kept.settings == Settings("", ChatParams(1.23, 4096, Effort.HIGH))  # blank is no system prompt
    assert convs.get(rt, ann.id, conv.id).settings == kept.settings


# --- the budget's worst case --------------------------------------------------------------------


def test_the_budget_holds_the_conversations_own_cap_and_counts_the_system_prompt(environ):
    """gpt-4o: $2.50 per million input tokens, $10 per million output. The default cap (8,192) is
    $0.082 at worst; a cap of 500 is $0.005, so a $0.02 budget admits it. A system prompt of
    10,000 bytes (at most as many tokens, $0.025) does not fit in the same budget."""
    with FakeProvider(Provider.OPENAI, reply="Fine.") as server, \
            runtime_with(environ, **server.env(), OPENAI_API_KEY=ENV_KEY) as rt:
        ann = make_user(rt, "ann")
        budgets.set_budget(rt, Actor.operator(), Owner.user(ann.id), 0.02)
        conv = convs.create(rt, ann.id, "Budgeted", provider=Provider.OPENAI, model="gpt-4o")
        ask = replies.Request(Provider.OPENAI, "gpt-4o")

        refused = finished(rt, ann.id, replies.send(rt, ann.id, conv.id, "Hi", ask))
        assert refused.status is ReplyStatus.FAILED and "budget" in (refused.error or "")
        assert server.requests == []  # refused before anything was sent

        convs.set_settings(rt, ann.id, conv.id, Settings("", ChatParams(max_output_tokens=500)))
        done = finished(rt, ann.id, replies.retry(rt, ann.id, conv.id, ask))
        assert done.status is ReplyStatus.DONE and server.requests[-1].body["max_completion_tokens"] == 500
        assert [r.key_source for r in usage_rows(rt)] == ["env"]

        convs.set_settings(rt, ann.id, conv.id, Settings("y" * 10_000, ChatParams(max_output_tokens=500)))
        with pytest.raises(BudgetExceeded):
            stream_chat(rt, user_id=ann.id, provider=Provider.OPENAI, model="gpt-4o",
                        messages=[ChatMessage("system", "y" * 10_000), ChatMessage("user", "Hi")],
                        params=ChatParams(max_output_tokens=500))
        refused = finished(rt, ann.id, replies.send(rt, ann.id, conv.id, "Again", ask))
        assert refused.status is ReplyStatus.FAILED and len(server.requests) == 1
