"""Budgets enforced by the real chat and search orchestration, against loopback fake providers."""

from __future__ import annotations

import pytest
from callhelpers import log_call, runtime_with, usage_rows
from fakeproviders import FakeProvider

from byok_core import accounts, budgets, keys, pricing
from byok_core.chat import ChatMessage, stream_chat
from byok_core.errors import BudgetExceeded
from byok_core.identity import Actor, Owner
from byok_core.models import KeySource
from byok_core.providers import Provider
from byok_core.search import run_search

HI = [ChatMessage("user", "Say hello")]
ENV_KEY = "sk-fake.env-BUDGET-eeeeeeeeeeeeeeeeeeeeee4444"
OWN_KEY = "sk-fake.own-BUDGET-aaaaaaaaaaaaaaaaaaaaaa1111"


def spent(rt, user_id, usd) -> None:
    log_call(rt, user_id=user_id, provider=Provider.OPENAI, model="gpt-4o", key_source=KeySource.ENV,
                      input_tokens=1, output_tokens=1, latency_ms=1, cost_usd=usd)


def test_chat_on_shared_key_warns_then_is_refused_but_own_key_works(environ):
    with FakeProvider(Provider.OPENAI) as server, runtime_with(environ, **server.env(), OPENAI_API_KEY=ENV_KEY) as rt:
        alice = accounts.create_user(rt, Actor.operator(), "alice", "alice-password")
        budgets.set_budget(rt, Actor.operator(), Owner.user(alice.id), 1.0)
        spent(rt, alice.id, 0.9)
        stream = stream_chat(rt, user_id=alice.id, provider=Provider.OPENAI, model="gpt-4o-mini", messages=HI)
        list(stream)
        assert stream.result.record.status == "ok" and "90% used" in stream.result.budget_warning

        spent(rt, alice.id, 0.1)
        calls = len(usage_rows(rt))
        with pytest.raises(BudgetExceeded, match="own API keys keep working"):
            stream_chat(rt, user_id=alice.id, provider=Provider.OPENAI, model="gpt-4o-mini", messages=HI)
        assert len(usage_rows(rt)) == calls and server.sent_keys() == [ENV_KEY]  # nothing was sent

        keys.store(rt, Actor.operator(), Owner.user(alice.id), Provider.OPENAI, OWN_KEY)
        stream = stream_chat(rt, user_id=alice.id, provider=Provider.OPENAI, model="gpt-4o-mini", messages=HI)
        list(stream)
        assert (stream.result.record.key_source, stream.result.record.status, stream.result.budget_warning) == (
            KeySource.USER, "ok", None)


def test_search_on_shared_key_is_refused_at_the_team_limit(environ):
    with FakeProvider(Provider.BRAVE) as server, runtime_with(environ, **server.env(), BRAVE_API_KEY=ENV_KEY) as rt:
        budgets.set_budget(rt, Actor.operator(), Owner.team(), 0.5)
        assert run_search(rt, user_id=None, provider=Provider.BRAVE, query="budgets")
        spent(rt, None, 0.5)
        with pytest.raises(BudgetExceeded, match="The team's monthly budget"):
            run_search(rt, user_id=None, provider=Provider.BRAVE, query="budgets")
        assert len(server.sent_keys()) == 1


def test_a_chat_with_web_search_is_checked_for_both_calls_up_front_and_warns_as_it_left_the_budget(environ):
    with FakeProvider(Provider.BRAVE) as brave, FakeProvider(Provider.OPENAI) as openai, \
            runtime_with(environ, **brave.env(), **openai.env(), OPENAI_API_KEY=ENV_KEY,
                         BRAVE_API_KEY="brave-env-BUDGET-0123456789") as rt:
        alice = accounts.create_user(rt, Actor.operator(), "alice", "alice-password")
        budgets.set_budget(rt, Actor.operator(), Owner.user(alice.id), "0.01")  # the search fits; gpt-4o: no
        assert pricing.search_price(rt, Provider.BRAVE) < 0.01
        with pytest.raises(BudgetExceeded, match="could cost up to"):
            stream_chat(rt, user_id=alice.id, provider=Provider.OPENAI, model="gpt-4o", messages=HI,
                        search_provider=Provider.BRAVE)
        assert brave.requests == [] and openai.requests == [] and usage_rows(rt) == []

        budgets.set_budget(rt, Actor.operator(), Owner.user(alice.id), 1.0)
        spent(rt, alice.id, 0.85)
        stream = stream_chat(rt, user_id=alice.id, provider=Provider.OPENAI, model="gpt-4o-mini", messages=HI,
                             search_provider=Provider.BRAVE)
        list(stream)
        assert stream.result.error is None and [r.status for r in usage_rows(rt)][-2:] == ["ok", "ok"]
        assert "Your monthly budget for shared keys is 8" in stream.result.budget_warning
        assert stream.result.budget_warning == budgets.status(rt, alice.id).warning  # as the last call left it
