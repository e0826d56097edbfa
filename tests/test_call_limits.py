"""Limits every streamed reply has, whatever the provider does: an overall deadline (a provider that
keeps sending a byte now and then is not waited on without end) and a size cap (a 20 MB reply is not
stored whole). Both keep the text received and log the call with its status."""

from __future__ import annotations

import pytest
from callhelpers import runtime_with, usage_rows
from fakeproviders import FakeProvider

from byok_core.adapters.base import MAX_REPLY_CHARS
from byok_core.chat import ChatMessage, stream_chat
from byok_core.errors import ConfigError, ProviderTimeout, StreamCutOff
from byok_core.providers import Provider
from byok_core.runtime import Settings

ENV_KEY = "sk-fake.env-LIMITS-eeeeeeeeeeeeeeeeeeee2222"
HI = [ChatMessage("user", "Say hello")]


def finish(stream):
    deltas = list(stream)
    return "".join(deltas), stream.result


def test_a_provider_that_trickles_bytes_is_stopped_at_the_deadline(environ):
    # each byte comes well within the read timeout, so only an overall deadline can end the call
    with FakeProvider(Provider.OPENAI, reply="alpha beta gamma delta epsilon", trickle=0.02) as server, \
            runtime_with(environ, **server.env(), OPENAI_API_KEY=ENV_KEY, BYOK_READ_TIMEOUT="5",
                         BYOK_CALL_DEADLINE="1") as rt:
        text, result = finish(stream_chat(rt, user_id=None, provider=Provider.OPENAI, model="gpt-4o-mini",
                                          messages=HI))
        assert isinstance(result.error, ProviderTimeout) and "longer than 1 seconds" in str(result.error)
        assert result.text == text and "gamma" not in text  # stopped part-way, what came is kept
        assert [row.status for row in usage_rows(rt)] == ["timeout"]


def test_a_reply_longer_than_the_cap_is_stopped_there(environ):
    word = "x" * 999 + " "
    count = MAX_REPLY_CHARS // len(word) + 5
    with FakeProvider(Provider.OPENAI, chunks=[word] * count) as server, \
            runtime_with(environ, **server.env(), OPENAI_API_KEY=ENV_KEY) as rt:
        text, result = finish(stream_chat(rt, user_id=None, provider=Provider.OPENAI, model="gpt-4o-mini",
                                          messages=HI))
        assert isinstance(result.error, StreamCutOff) and f"{MAX_REPLY_CHARS:,} characters" in str(result.error)
        assert len(text) <= MAX_REPLY_CHARS and result.text == text and len(text) >= MAX_REPLY_CHARS - len(word)
        assert [row.status for row in usage_rows(rt)] == ["cut_off"]


@pytest.mark.parametrize("raw", ["0", "-5", "soon", "7200"])
def test_the_deadline_must_be_a_sensible_number_of_seconds(raw):
    with pytest.raises(ConfigError, match="BYOK_CALL_DEADLINE"):
        Settings.from_env({"BYOK_CALL_DEADLINE": raw})
