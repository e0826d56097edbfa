"""Real recorded provider responses (tests/recordings, with their provenance in MANIFEST.json)
replayed over loopback through the adapters and the `byok` command: the text printed is exactly
the recorded text, and the usage row's tokens and cost are what genai-prices reads from the
recording's own usage object (recorded in the manifest when the fixtures were made)."""

from __future__ import annotations

import pytest
from callhelpers import usage_rows
from replay import KEY, PROVIDER, recording, recordings, run_cli

from byok_core.startup import open_runtime


@pytest.fixture
def replay_cli(environ, monkeypatch, capsys):
    """Run `byok chat` against a replay server the way an operator would (environment, stdin, exit code)."""
    return lambda recording: run_cli(recording, environ, monkeypatch, capsys)


CHAT = recordings(*PROVIDER)


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
    code, _, err, _ = replay_cli(recording("openrouter/stream-error-chunk-with-usage.sse"))
    assert code == 1 and "Token limit reached" in err and err.count("\n") == 2  # summary line + one sentence
    rt = open_runtime(environ)
    try:
        [row] = usage_rows(rt)
    finally:
        rt.engine.dispose()
    assert (row.status, row.input_tokens, row.output_tokens, row.reasoning_tokens) == ("bad_request", 43, 10, 11)
    assert row.cost_usd is None  # a model genai-prices does not price
