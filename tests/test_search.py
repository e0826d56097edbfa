"""Search and key tests end to end against real loopback servers."""

from __future__ import annotations

import pytest
from callhelpers import dump_database, runtime_with, usage_rows
from fakeproviders import FakeProvider
from sqlmodel import Session

from byok_core import accounts, keys, keytest, pricing
from byok_core.adapters.errors import KeyRejected, RateLimited
from byok_core.errors import CallStatus, NoKeyError, NotFoundError, PermissionDenied, ValidationError
from byok_core.identity import Actor, Owner
from byok_core.models import ApiKey, Role
from byok_core.providers import Provider
from byok_core.search import SearchResult, run_search

SEARCH = [Provider.FIRECRAWL, Provider.BRAVE, Provider.TAVILY, Provider.SERPER]
USER_KEY = "search-user-KEY-uuuuuuuuuuuuuuuu1111"
TEAM_KEY = "search-team-KEY-tttttttttttttttt2222"


@pytest.fixture
def alice(rt):
    return accounts.create_user(rt, Actor.operator(), "alice", "alice-password")


@pytest.mark.parametrize("provider", SEARCH)
def test_each_search_provider(environ, alice, provider):
    with FakeProvider(provider) as server, runtime_with(environ, **server.env()) as rt:
        keys.store(rt, Actor.operator(), Owner.user(alice.id), provider, USER_KEY)
        results = run_search(rt, user_id=alice.id, provider=provider, query="  example   query ", limit=2)
        assert results == [
            SearchResult("Example One", "https://example.com/one", "The first result snippet.", provider, 1),
            SearchResult("Example Two", "https://example.org/two", "The second result snippet.", provider, 2),
        ]
        assert server.sent_keys() == [USER_KEY]
        [row] = usage_rows(rt)
        assert (row.kind, row.provider, row.model, row.key_source, row.status) == (
            "search", provider.value, "", "user", "ok")
        assert row.cost_usd == pricing.search_price(rt, provider) and row.input_tokens is None
        assert keys.list_keys(rt, Actor.operator(), Owner.user(alice.id))[0].last_used_at is not None


def test_limit_is_clamped_and_query_sent(environ):
    with FakeProvider(Provider.SERPER) as server, runtime_with(environ, **server.env(), SERPER_API_KEY=TEAM_KEY) as rt:
        run_search(rt, user_id=None, provider=Provider.SERPER, query="cats", limit=500)
        assert server.requests[0].body == {"q": "cats", "num": 20}


@pytest.mark.parametrize("status, error, kind", [(401, KeyRejected, "key_rejected"),
                                                 (429, RateLimited, "rate_limited")])
def test_search_errors_raise_and_are_logged(environ, status, error, kind):
    with FakeProvider(Provider.FIRECRAWL, status=status, error_headers={"Retry-After": "3"},
                      error_body={"success": False, "error": f"Unauthorized: Invalid token {TEAM_KEY}"}) as server, \
            runtime_with(environ, **server.env(), FIRECRAWL_API_KEY=TEAM_KEY) as rt:
        with pytest.raises(error) as info:
            run_search(rt, user_id=None, provider=Provider.FIRECRAWL, query="cats")
        assert TEAM_KEY not in str(info.value) and TEAM_KEY[-8:] not in str(info.value)
        [row] = usage_rows(rt)
        assert (row.status, row.cost_usd, row.key_source) == (kind, 0.0, "env")  # refused: not billed
        assert TEAM_KEY not in dump_database(rt)


def test_search_validation(rt, environ):
    with pytest.raises(NoKeyError, match="Brave"):
        run_search(rt, user_id=None, provider=Provider.BRAVE, query="cats")
    with pytest.raises(ValidationError, match="not a search provider"):
        run_search(rt, user_id=None, provider=Provider.OPENAI, query="cats")
    with runtime_with(environ, BRAVE_API_KEY=TEAM_KEY) as with_key:
        with pytest.raises(ValidationError, match="Type something"):
            run_search(with_key, user_id=None, provider=Provider.BRAVE, query="   ")
        with pytest.raises(ValidationError, match="400"):
            run_search(with_key, user_id=None, provider=Provider.BRAVE, query="x" * 401)
        assert usage_rows(with_key) == []


def _test_status(rt, row_id: str) -> str | None:
    with Session(rt.engine) as session:
        return session.get(ApiKey, row_id).last_test_status


@pytest.mark.parametrize("provider, detail", [
    (Provider.OPENAI, "3 models visible"),
    (Provider.ANTHROPIC, "2 models visible"),
    (Provider.GOOGLE, "2 models visible"),
    (Provider.FIRECRAWL, "480 credits left"),
    (Provider.BRAVE, "1 result for a test query"),
    (Provider.TAVILY, "7 credits used on this key"),
    (Provider.SERPER, "1 result for a test query"),
])
def test_key_test_ok(environ, provider, detail):
    with FakeProvider(provider, expect_key=TEAM_KEY) as server, runtime_with(environ, **server.env()) as rt:
        info = keys.store(rt, Actor.operator(), Owner.team(), provider, TEAM_KEY)
        assert keytest.check(rt, Actor.operator(), Owner.team(), provider) == keytest.Outcome(
            True, f"The {provider.label} key sea…2222 works: {detail}.", CallStatus.OK, key_id=info.id)
        assert _test_status(rt, info.id) == "ok"
        assert usage_rows(rt) == []  # a key check is not a chat or search call


def test_key_test_rejected_key(environ, alice):
    with FakeProvider(Provider.OPENAI, expect_key="sk-the-right-one-0000000000") as server, \
            runtime_with(environ, **server.env()) as rt:
        info = keys.store(rt, Actor.operator(), Owner.user(alice.id), Provider.OPENAI, USER_KEY)
        outcome = keytest.check(rt, Actor.of(alice), Owner.user(alice.id), Provider.OPENAI)
        assert not outcome.ok and outcome.status is CallStatus.KEY_REJECTED
        assert outcome.message.startswith("OpenAI rejected the key sea…1111") and USER_KEY not in outcome.message
        assert _test_status(rt, info.id) == "key_rejected"


def test_key_test_openai_compatible_uses_the_stored_url(environ, alice):
    with FakeProvider(Provider.OPENAI_COMPATIBLE) as server, \
            runtime_with(environ, BYOK_ALLOW_PRIVATE_ENDPOINTS="1") as rt:
        keys.store(rt, Actor.operator(), Owner.user(alice.id), Provider.OPENAI_COMPATIBLE, USER_KEY,
                   base_url=server.base_url)
        assert keytest.check(rt, Actor.of(alice), Owner.user(alice.id), Provider.OPENAI_COMPATIBLE).message == \
            "The 127.0.0.1 key sea…1111 works: 2 models visible."
        assert server.sent_keys() == [USER_KEY]


def test_key_test_only_tests_the_owners_own_key(environ, alice):
    with runtime_with(environ, OPENAI_API_KEY=TEAM_KEY) as rt:
        keys.store(rt, Actor.operator(), Owner.team(), Provider.ANTHROPIC, TEAM_KEY)
        with pytest.raises(NotFoundError, match="no saved OpenAI key for team"):
            keytest.check(rt, Actor.operator(), Owner.team(), Provider.OPENAI)  # only the server's key exists
        with pytest.raises(NotFoundError, match="no saved Anthropic key for user"):
            keytest.check(rt, Actor.of(alice), Owner.user(alice.id), Provider.ANTHROPIC)  # the team's is not hers
        with pytest.raises(PermissionDenied):
            keytest.check(rt, Actor.of(alice), Owner.team(), Provider.ANTHROPIC)
        admin = accounts.create_user(rt, Actor.operator(), "root", "root-password", Role.ADMIN)
        with pytest.raises(NotFoundError):
            keytest.check(rt, Actor.of(admin), Owner.user(admin.id), Provider.ANTHROPIC)
