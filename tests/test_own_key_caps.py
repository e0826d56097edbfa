"""Caps people set on their own keys (byok_core.budgets.caps), through the real chat and search
orchestration against loopback fake providers, on SQLite and PostgreSQL."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
from callhelpers import dump_database, log_call, runtime_with, usage_rows
from fakeproviders import FakeProvider

from byok_core import accounts, budgets, keys
from byok_core.budgets import caps
from byok_core.chat import ChatMessage, stream_chat
from byok_core.errors import BudgetExceeded, PermissionDenied, ValidationError
from byok_core.identity import Actor, KeySource, Owner, Role
from byok_core.providers import Provider
from byok_core.search import run_search

HI = [ChatMessage("user", "Say hello")]
OWN_KEY = "sk-fake.own-CAPPED-aaaaaaaaaaaaaaaaaaaaaa1111"


def chat(rt, user, model="gpt-4o-mini"):
    stream = stream_chat(rt, user_id=user.id, provider=Provider.OPENAI, model=model, messages=HI)
    list(stream)
    return stream.result


def own(rt, name="alice"):
    user = accounts.create_user(rt, Actor.operator(), name, f"{name}-password")
    keys.store(rt, Actor.of(user), Owner.user(user.id), Provider.OPENAI, OWN_KEY)
    return user


def spent_on_own_key(rt, user, usd):
    log_call(rt, user_id=user.id, provider=Provider.OPENAI, model="gpt-4o", key_source=KeySource.USER,
             input_tokens=1, output_tokens=1, latency_ms=1, cost_usd=usd)


def test_only_the_person_sets_or_clears_a_cap_on_their_own_key(rt):
    alice = own(rt)
    boss = accounts.create_user(rt, Actor.operator(), "boss", "boss-password", Role.ADMIN)
    with pytest.raises(PermissionDenied, match="Only the person whose key it is"):
        caps.set_cap(rt, Actor.of(boss), alice.id, Provider.OPENAI, 5, stop=True)
    with pytest.raises(ValidationError, match="whole cents"):
        caps.set_cap(rt, Actor.of(alice), alice.id, Provider.OPENAI, "2.005", stop=True)
    cap = caps.set_cap(rt, Actor.of(alice), alice.id, Provider.OPENAI, "20", stop=True)
    assert (cap.monthly_usd, cap.stop, cap.spent_usd) == (20.0, True, 0.0)
    assert caps.set_cap(rt, Actor.of(alice), alice.id, Provider.OPENAI, 30, stop=False).monthly_usd == 30.0
    assert list(caps.caps_of(rt, alice.id)) == [Provider.OPENAI] and caps.caps_of(rt, boss.id) == {}
    with pytest.raises(PermissionDenied):
        caps.clear_cap(rt, Actor.of(boss), alice.id, Provider.OPENAI)
    assert caps.clear_cap(rt, Actor.of(alice), alice.id, Provider.OPENAI) is True
    assert caps.caps_of(rt, alice.id) == {} and not caps.clear_cap(rt, Actor.of(alice), alice.id, Provider.OPENAI)
    assert OWN_KEY not in dump_database(rt)


def test_a_cap_starts_from_the_months_spend_and_counts_each_call(environ):
    with FakeProvider(Provider.OPENAI) as server, runtime_with(environ, **server.env()) as rt:
        alice = own(rt)
        spent_on_own_key(rt, alice, 1.5)
        cap = caps.set_cap(rt, Actor.of(alice), alice.id, Provider.OPENAI, 20, stop=True)
        assert cap.spent_usd == pytest.approx(1.5)
        result = chat(rt, alice)
        assert result.error is None and result.record.cost_usd > 0
        assert result.record.charged_usd == pytest.approx(result.record.cost_usd)  # what it counted, logged
        assert usage_rows(rt)[-1].charged_usd == pytest.approx(result.record.cost_usd)
        assert caps.caps_of(rt, alice.id)[Provider.OPENAI].spent_usd == pytest.approx(1.5 + result.record.cost_usd)
        assert result.budget_warning is None  # under 80%
        assert budgets.spend_report(rt)[0].spent_usd == 0.0  # shared-key budgets know nothing of it
        assert server.sent_keys() == [OWN_KEY]


def test_from_80_percent_the_reply_says_so_and_a_warn_only_cap_lets_calls_pass_it(environ):
    with FakeProvider(Provider.OPENAI) as server, runtime_with(environ, **server.env()) as rt:
        alice = own(rt)
        spent_on_own_key(rt, alice, 0.85)
        caps.set_cap(rt, Actor.of(alice), alice.id, Provider.OPENAI, 1, stop=False)
        result = chat(rt, alice)
        assert result.budget_warning.startswith("Your cap on your own OpenAI key is 8")
        assert "it only warns" in result.budget_warning
        spent_on_own_key(rt, alice, 1.0)  # past the cap: a warn-only cap still lets the call go ahead
        assert chat(rt, alice).error is None and len(server.requests) == 2


def test_a_stopping_cap_refuses_a_call_that_could_pass_it_and_sends_nothing(environ):
    with FakeProvider(Provider.OPENAI) as server, runtime_with(environ, **server.env()) as rt:
        alice = own(rt)
        caps.set_cap(rt, Actor.of(alice), alice.id, Provider.OPENAI, "0.01", stop=True)
        spent_on_own_key(rt, alice, 0.009)  # logged after the cap was set: the cap's month does not know it
        result = chat(rt, alice, model="gpt-4o")  # its worst case (the output cap at gpt-4o's price) is over a cent
        assert isinstance(result.error, BudgetExceeded) and "could cost up to" in str(result.error)
        assert "Keys page" in str(result.error) and server.requests == []
        caps.set_cap(rt, Actor.of(alice), alice.id, Provider.OPENAI, 0, stop=True)
        result = chat(rt, alice)
        assert isinstance(result.error, BudgetExceeded) and "cap on your own OpenAI key is reached" in str(result.error)
        assert server.requests == [] and [r.status for r in usage_rows(rt)] == ["ok"]  # only the one logged above


def test_an_unknown_price_is_refused_under_a_stopping_cap_only(environ):
    with FakeProvider(Provider.OPENAI) as server, runtime_with(environ, **server.env()) as rt:
        alice = own(rt)
        caps.set_cap(rt, Actor.of(alice), alice.id, Provider.OPENAI, 5, stop=True)
        result = chat(rt, alice, model="made-up-model-7")
        assert isinstance(result.error, BudgetExceeded) and "price is unknown" in str(result.error)
        caps.set_cap(rt, Actor.of(alice), alice.id, Provider.OPENAI, 5, stop=False)
        assert chat(rt, alice, model="made-up-model-7").error is None and len(server.requests) == 1


def test_a_cap_is_per_provider_and_holds_searches_too(environ):
    with FakeProvider(Provider.BRAVE) as brave, runtime_with(environ, **brave.env()) as rt:
        alice = accounts.create_user(rt, Actor.operator(), "alice", "alice-password")
        keys.store(rt, Actor.of(alice), Owner.user(alice.id), Provider.BRAVE, "brave-own-CAPPED-0123456789")
        caps.set_cap(rt, Actor.of(alice), alice.id, Provider.BRAVE, 0, stop=True)
        caps.set_cap(rt, Actor.of(alice), alice.id, Provider.OPENAI, 5, stop=True)
        with pytest.raises(BudgetExceeded, match="own Brave Search key is reached"):
            run_search(rt, user_id=alice.id, provider=Provider.BRAVE, query="caps")
        assert brave.requests == []


def test_fifty_concurrent_calls_never_pass_a_stopping_cap(environ):
    """Each call's worst case is reserved under the cap's row lock, so together they cannot pass it."""
    with FakeProvider(Provider.OPENAI) as server, runtime_with(environ, **server.env()) as rt:
        alice = own(rt)
        one = chat(rt, alice).record.cost_usd  # what a call costs; its worst case is more
        cap = caps.set_cap(rt, Actor.of(alice), alice.id, Provider.OPENAI, "0.05", stop=True)
        with ThreadPoolExecutor(max_workers=50) as pool:
            results = list(pool.map(lambda _: chat(rt, alice), range(50)))
        made = [r for r in results if r.error is None]
        refused = [r for r in results if isinstance(r.error, BudgetExceeded)]
        assert len(made) + len(refused) == 50 and made and refused
        after = caps.caps_of(rt, alice.id)[Provider.OPENAI]
        assert after.spent_usd <= cap.monthly_usd and after.reserved_usd == 0.0
        assert after.spent_usd == pytest.approx(cap.spent_usd + sum(r.record.charged_usd for r in made))
        assert len(server.requests) == len(made) + 1 and one > 0
