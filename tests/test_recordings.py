"""Real recorded provider responses (tests/recordings, with their provenance in MANIFEST.json)
replayed over loopback through the adapters and the `byok` command: the text printed is exactly
the recorded text, and the usage row's tokens and cost are what genai-prices reads from the
recording's own usage object (recorded in the manifest when the fixtures were made)."""

from __future__ import annotations

import pytest
from callhelpers import usage_rows
from replay import Recording, ReplayServer, recordings

from byok_core import keys
from byok_core.cli import main
from byok_core.identity import Actor, Owner
from byok_core.providers import Provider
from byok_core.startup import open_runtime

KEY = "sk-fake.replay-0123456789abcdef0000"
PROVIDER = {"openai": Provider.OPENAI, "anthropic": Provider.ANTHROPIC, "google": Provider.GOOGLE,
            "openrouter": Provider.OPENAI_COMPATIBLE}
PATH_PREFIX = {"openai": "/v1", "openrouter": "/api/v1"}


@pytest.fixture
def replay_cli(environ, monkeypatch, capsys):
    """Run `byok chat` against a replay server the way an operator would (environment, stdin, exit code)."""

    def run(recording: Recording) -> tuple[int, str, str, ReplayServer]:
        provider = PROVIDER[recording.entry["provider"]]
        with ReplayServer(recording) as server:
            base = server.url + PATH_PREFIX.get(recording.entry["provider"], "")
            env = dict(environ)
            if provider is Provider.OPENAI_COMPATIBLE:
                env["BYOK_ALLOW_PRIVATE_ENDPOINTS"] = "1"
                rt = open_runtime(env)
                keys.store(rt, Actor.operator(), Owner.team(), provider, KEY, base_url=base)
                rt.engine.dispose()
            else:
                env |= {provider.spec.key_env: KEY, provider.spec.base_url_env: base}
            for name, value in env.items():
                monkeypatch.setenv(name, value)
            code = main(["chat", "--provider", provider.value, "--model", recording.entry["request"]["model"],
                         "hello"])
        out, err = capsys.readouterr()
        return code, out, err, server

    return run


CHAT = recordings("openai", "anthropic", "google", "openrouter")


@pytest.mark.parametrize("recording", CHAT, ids=str)
def test_replayed_text_tokens_and_cost(replay_cli, environ, recording):
    code, out, err, server = replay_cli(recording)
    expected = recording.entry["text"]
    assert out == (expected + "\n" if expected and not expected.endswith("\n") else expected)
    assert KEY not in out + err and len(server.requests) == 1
    billed = recording.entry["genai_prices"]
    rt = open_runtime(environ)
    try:
        [row] = usage_rows(rt)
    finally:
        rt.engine.dispose()
    assert (row.input_tokens, row.output_tokens) == (billed["input_tokens"], billed["output_tokens"])
    assert (row.cache_read_tokens, row.cache_write_tokens) == (billed["cache_read_tokens"],
                                                               billed["cache_write_tokens"])
    reported = billed.get("usage_reported") or {}
    assert row.reasoning_tokens == reported.get("output_reasoning_tokens", 0)
    price = billed["price"]
    if "total_price" not in price:  # genai-prices does not know the model: unknown, never zero
        assert row.cost_usd is None
    else:
        assert row.cost_usd == pytest.approx(float(price["total_price"]), abs=1e-9)
    assert (code == 0) == (row.status == "ok")


def test_an_error_chunk_keeps_the_usage_it_carries(replay_cli, environ):
    """OpenRouter ends a stream with an error chunk that also carries the usage billed so far."""
    [recording] = recordings("openrouter")
    code, _, err, _ = replay_cli(recording)
    assert code == 1 and "Token limit reached" in err and err.count("\n") == 2  # summary line + one sentence
    rt = open_runtime(environ)
    try:
        [row] = usage_rows(rt)
    finally:
        rt.engine.dispose()
    assert (row.status, row.input_tokens, row.output_tokens, row.reasoning_tokens) == ("bad_request", 43, 10, 11)
    assert row.cost_usd is None  # a model genai-prices does not price
