"""Stored replies whose metadata is not readable still load: no record, no sources, no error."""

from __future__ import annotations

import pytest

from byok_core import accounts, conversations
from byok_core.identity import Actor
from byok_core.providers import Provider
from byok_core.record import CallRecord


@pytest.mark.parametrize("provider", [None, 5, ["openai"], "nope"])
def test_a_stored_reply_with_an_unreadable_provider_loads_without_record_or_sources(rt, provider):
    user = accounts.create_user(rt, Actor.operator(), "alice", "alice-password")
    assert user.id is not None
    chat = conversations.create(rt, user.id)
    meta = {"provider": provider, "key_source": "user", "model": "m",
            "sources": [{"title": "t", "url": "https://example.com", "provider": provider, "rank": 1}]}
    conversations.add_message(rt, user.id, chat.id, "assistant", "hello", meta)

    [message] = conversations.messages(rt, user.id, chat.id)
    assert (message.content, message.record, message.sources) == ("hello", None, [])


def test_a_stored_record_reads_back():
    record = CallRecord.from_json({"provider": "brave", "key_source": "team", "model": ""})
    assert record is not None and record.provider is Provider.BRAVE
