"""`byok chat`, `byok search` and `byok keys test` against real loopback servers."""

from __future__ import annotations

import io

import pytest
from callhelpers import log_call, usage_rows
from fakeproviders import FakeProvider

from byok_core import accounts, keys, presets
from byok_core.adapters.base import ChatParams
from byok_core.cli import main
from byok_core.identity import Actor, Owner
from byok_core.providers import Provider

TEAM_KEY = "sk-fake.cli-team-tttttttttttttttttttt1234"
ALICE_KEY = "sk-fake.cli-alice-aaaaaaaaaaaaaaaaaaa5678"


@pytest.fixture
def cli_env(monkeypatch, environ):
    """Point the CLI's os.environ at the test database, with no provider settings from the machine."""
    for provider in Provider:
        for name in (provider.spec.key_env, provider.spec.base_url_env):
            if name:
                monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("BYOK_ALLOW_PRIVATE_ENDPOINTS", raising=False)
    for name, value in environ.items():
        monkeypatch.setenv(name, value)

    def set_env(**values: str) -> None:
        for name, value in values.items():
            monkeypatch.setenv(name, value)
    return set_env


def test_chat_streams_to_stdout_and_logs_usage(cli_env, rt, capsys):
    with FakeProvider(Provider.OPENAI, reply="Hello from the CLI", input_tokens=5, output_tokens=4) as server:
        cli_env(**server.env(), OPENAI_API_KEY=TEAM_KEY)
        assert main(["chat", "--provider", "openai", "--model", "gpt-4o-mini", "Say", "hello"]) == 0
    out, err = capsys.readouterr()
    assert out == "Hello from the CLI\n"
    assert "openai gpt-4o-mini, env key, 5 in / 4 out tokens, $" in err and "ok]" in err
    assert server.requests[0].body["messages"] == [{"role": "user", "content": "Say hello"}]
    [row] = usage_rows(rt)
    assert (row.user_id, row.key_source, row.status, row.input_tokens) == (None, "env", "ok", 5)


def test_chat_takes_a_preset_and_settings_and_the_options_change_them(cli_env, rt, capsys):
    alice = accounts.create_user(rt, Actor.operator(), "alice", "alice-password")
    presets.create(rt, Actor.operator(), Owner.team(), "Terse", Provider.OPENAI, "gpt-4o",
                   presets.Settings("Answer in one line.", ChatParams(temperature=0.2, max_output_tokens=300)))
    presets.create(rt, Actor.of(alice), Owner.user(alice.id), "terse", Provider.OPENAI, "gpt-4o-mini",
                   presets.Settings("Alice's own.", ChatParams(temperature=0.9)))
    with FakeProvider(Provider.OPENAI, reply="Fine") as server:
        cli_env(**server.env(), OPENAI_API_KEY=TEAM_KEY)
        assert main(["chat", "--preset", "terse", "--max-output-tokens", "100", "Hi"]) == 0  # the team's
        body = server.requests[-1].body
        assert (body["model"], body["messages"][0], body["temperature"], body["max_completion_tokens"]) == (
            "gpt-4o", {"role": "system", "content": "Answer in one line."}, 0.2, 100)
        assert main(["chat", "--preset", "TERSE", "--user", "alice", "--system", "Be kind.", "Hi"]) == 0  # her own
        body = server.requests[-1].body
        assert (body["model"], body["messages"][0]["content"], body["temperature"]) == ("gpt-4o-mini", "Be kind.", 0.9)
        assert main(["chat", "--preset", "Chatty", "Hi"]) == 1
        assert main(["chat", "Hi"]) == 1
    err = capsys.readouterr().err
    assert "There is no preset called 'Chatty' of the team's" in err and "--provider P, or --preset NAME" in err


def test_chat_with_user_and_search(cli_env, rt, capsys):
    alice = accounts.create_user(rt, Actor.operator(), "alice", "alice-password")
    keys.store(rt, Actor.operator(), Owner.user(alice.id), Provider.ANTHROPIC, ALICE_KEY)
    keys.store(rt, Actor.operator(), Owner.team(), Provider.SERPER, TEAM_KEY)
    with FakeProvider(Provider.ANTHROPIC, reply="See [1].") as llm, FakeProvider(Provider.SERPER) as serper:
        cli_env(**llm.env(), **serper.env())
        assert main(["chat", "--provider", "anthropic", "--user", "alice", "--search", "serper", "what?"]) == 0
    out, err = capsys.readouterr()
    assert out.startswith("See [1].\n[1] Example One — https://example.com/one\n")
    assert "user key" in err and llm.sent_keys() == [ALICE_KEY] and serper.sent_keys() == [TEAM_KEY]
    assert [(r.provider, r.user_id, r.key_source) for r in usage_rows(rt)] == [
        ("serper", alice.id, "team"), ("anthropic", alice.id, "user")]


def test_chat_without_user_cannot_use_a_users_key(cli_env, rt, capsys):
    alice = accounts.create_user(rt, Actor.operator(), "alice", "alice-password")
    keys.store(rt, Actor.operator(), Owner.user(alice.id), Provider.OPENAI, ALICE_KEY)
    assert main(["chat", "--provider", "openai", "hi"]) == 1
    out, err = capsys.readouterr()
    assert out == "" and err.startswith("byok: No API key for OpenAI") and err.count("\n") == 1


def test_chat_cut_off_keeps_text_and_fails(cli_env, rt, capsys):
    with FakeProvider(Provider.GOOGLE, reply="one two three four", cut_after=2) as server:
        cli_env(**server.env(), GOOGLE_GENERATIVE_AI_API_KEY=TEAM_KEY)
        assert main(["chat", "--provider", "google", "hi"]) == 1
    out, err = capsys.readouterr()
    assert out == "one two \n"
    assert "byok: Google Gemini's reply was cut off" in err and "Traceback" not in err
    assert [r.status for r in usage_rows(rt)] == ["cut_off"]


def test_chat_rejected_key_message_has_no_key(cli_env, rt, capsys):
    with FakeProvider(Provider.OPENAI, expect_key="sk-fake.something-else-000000000") as server:
        cli_env(**server.env(), OPENAI_API_KEY=TEAM_KEY)
        assert main(["chat", "--provider", "openai", "hi"]) == 1
    out, err = capsys.readouterr()
    assert "byok: OpenAI rejected the key sk-…1234" in err and ", env key," in err  # whose: in the summary line
    assert TEAM_KEY not in out + err and TEAM_KEY[-8:] not in out + err


def test_search_prints_a_table(cli_env, rt, capsys):
    with FakeProvider(Provider.TAVILY) as server:
        cli_env(**server.env(), TAVILY_API_KEY=TEAM_KEY)
        assert main(["search", "--provider", "tavily", "--limit", "2", "example", "query"]) == 0
    out, _ = capsys.readouterr()
    lines = out.splitlines()
    assert lines[0].split() == ["#", "title", "url", "snippet", "provider"]
    assert lines[1].startswith("1  Example One") and "https://example.com/one" in lines[1]
    assert lines[1].endswith("tavily")
    assert len(lines) == 3
    assert server.requests[0].body == {"query": "example query", "max_results": 2}


def test_search_error_is_one_sentence(cli_env, rt, capsys):
    with FakeProvider(Provider.BRAVE, status=429, error_headers={"Retry-After": "30"}) as server:
        cli_env(**server.env(), BRAVE_API_KEY=TEAM_KEY)
        assert main(["search", "--provider", "brave", "cats"]) == 1
    _, err = capsys.readouterr()
    assert err.startswith("byok: Brave Search is rate-limiting the key sk-…1234") and "30 seconds" in err
    assert err.count("\n") == 1


def test_wrong_kind_of_provider(cli_env, rt, capsys):
    assert main(["search", "--provider", "openai", "cats"]) == 1
    assert "not a search provider" in capsys.readouterr().err


def test_keys_test(cli_env, rt, capsys):
    keys.store(rt, Actor.operator(), Owner.team(), Provider.FIRECRAWL, TEAM_KEY)
    with FakeProvider(Provider.FIRECRAWL, expect_key=TEAM_KEY) as server:
        cli_env(**server.env())
        assert main(["keys", "test", "--team", "--provider", "firecrawl"]) == 0
        assert capsys.readouterr().out == "The Firecrawl key sk-…1234 works: 480 credits left.\n"
    with FakeProvider(Provider.FIRECRAWL, expect_key="fc-other-000000000000") as server:
        cli_env(**server.env())
        assert main(["keys", "test", "--team", "--provider", "firecrawl"]) == 1
        err = capsys.readouterr().err
        assert err.startswith("byok: Firecrawl rejected the key sk-…1234") and TEAM_KEY not in err
    assert main(["keys", "test", "--team", "--provider", "brave"]) == 1
    assert "no saved Brave Search key for team" in capsys.readouterr().err


def test_chat_warns_near_the_team_budget(cli_env, rt, capsys):
    from byok_core import budgets
    from byok_core.models import KeySource

    alice = accounts.create_user(rt, Actor.operator(), "alice", "alice-password")
    budgets.set_budget(rt, Actor.operator(), Owner.team(), 1.0)
    log_call(rt, user_id=alice.id, provider=Provider.OPENAI, model="gpt-4o", key_source=KeySource.TEAM,
                      input_tokens=1, output_tokens=1, latency_ms=1, cost_usd=0.85)
    with FakeProvider(Provider.OPENAI, reply="Still here") as server:
        cli_env(**server.env(), OPENAI_API_KEY=TEAM_KEY)
        assert main(["chat", "--provider", "openai", "--user", "alice", "hi"]) == 0
    out, err = capsys.readouterr()
    assert out == "Still here\n" and "byok: " in err and "budget" in err and "85%" in err


def test_keys_set_test_and_chat_pick_a_connection_by_name(cli_env, rt, capsys, monkeypatch):
    """`--connection NAME`: with several connections the command says which it needs, and picks it."""
    with FakeProvider(Provider.OPENAI_COMPATIBLE, reply="From one") as one, \
            FakeProvider(Provider.OPENAI_COMPATIBLE, reply="From two") as two:
        cli_env(BYOK_ALLOW_PRIVATE_ENDPOINTS="1")
        for name, server in (("One", one), ("Two", two)):
            monkeypatch.setattr("sys.stdin", io.StringIO(TEAM_KEY))
            assert main(["keys", "set", "--team", "--provider", "openai-compatible", "--name", name,
                         "--base-url", server.base_url]) == 0
        capsys.readouterr()
        assert main(["chat", "--provider", "openai-compatible", "--model", "m", "Hi"]) == 1
        assert "Choose one of the connections (One, Two)" in capsys.readouterr().err
        assert main(["chat", "--provider", "openai-compatible", "--connection", "two", "--model", "m", "Hi"]) == 0
        assert capsys.readouterr().out == "From two\n" and len(one.requests) == 1  # its key test only
        assert main(["keys", "test", "--team", "--provider", "openai-compatible", "--connection", "One"]) == 0
        assert capsys.readouterr().out.startswith("The One key sk-…1234 works")
        assert main(["keys", "test", "--team", "--provider", "openai-compatible", "--connection", "Three"]) == 1
        assert "has no connection named 'Three'" in capsys.readouterr().err
    [row] = usage_rows(rt)
    assert (row.provider, row.connection, row.key_source) == ("openai-compatible", "Two", "team")
