"""byok_core.conversations: per-user conversations, owner-checked like a missing id."""

from __future__ import annotations

import pytest
from apptest import make_user

from byok_core import conversations as convs
from byok_core.adapters.base import SearchResult
from byok_core.errors import CallStatus, NotFoundError, ValidationError
from byok_core.identity import KeySource
from byok_core.providers import Provider
from byok_core.record import CallRecord


def test_lifecycle(rt):
    ann = make_user(rt, "ann")
    first = convs.create(rt, ann.id, "First")
    second = convs.create(rt, ann.id, convs.title_from("  a   very long first prompt " * 10))
    assert len(second.title) <= 60 and second.title.endswith("…")
    convs.add_message(rt, ann.id, first.id, "user", "hi")
    record = CallRecord(Provider.OPENAI, KeySource.USER, "gpt-4o-mini", ann.id, input_tokens=3, output_tokens=1,
                        status=CallStatus.CUT_OFF, error="cut off")
    source = SearchResult("A page", "https://example.com/a", "snippet", Provider.BRAVE, 1)
    convs.add_message(rt, ann.id, first.id, "assistant", "hello", convs.reply_meta(record, [source], "90% used"))
    assert [c.id for c in convs.list_conversations(rt, ann.id)] == [first.id, second.id]  # most recently active
    msgs = convs.messages(rt, ann.id, first.id)
    assert [(m.role, m.content) for m in msgs] == [("user", "hi"), ("assistant", "hello")]
    assert (msgs[1].record, msgs[1].sources, msgs[1].budget_warning) == (record, [source], "90% used")
    assert msgs[0].record is None and msgs[0].sources == []
    convs.rename(rt, ann.id, first.id, "  Renamed  ")
    assert convs.get(rt, ann.id, first.id).title == "Renamed"
    convs.delete(rt, ann.id, first.id)
    assert [c.id for c in convs.list_conversations(rt, ann.id)] == [second.id]
    with pytest.raises(NotFoundError):
        convs.messages(rt, ann.id, first.id)


def test_someone_elses_conversation_looks_missing(rt):
    ann, bob = make_user(rt, "ann"), make_user(rt, "bob")
    conv = convs.create(rt, ann.id, "private")
    convs.add_message(rt, ann.id, conv.id, "user", "secret")
    errors = []
    for call in (lambda: convs.get(rt, bob.id, conv.id), lambda: convs.messages(rt, bob.id, conv.id),
                 lambda: convs.rename(rt, bob.id, conv.id, "x"), lambda: convs.delete(rt, bob.id, conv.id),
                 lambda: convs.add_message(rt, bob.id, conv.id, "user", "x"),
                 lambda: convs.get(rt, bob.id, 999_999)):
        with pytest.raises(NotFoundError) as exc:
            call()
        errors.append(str(exc.value))
    assert len(set(errors)) == 1
    assert convs.list_conversations(rt, bob.id) == []
    assert [m.content for m in convs.messages(rt, ann.id, conv.id)] == ["secret"]


def test_validation(rt):
    ann = make_user(rt, "ann")
    conv = convs.create(rt, ann.id)
    with pytest.raises(ValidationError):
        convs.rename(rt, ann.id, conv.id, "   ")
    with pytest.raises(ValidationError):
        convs.add_message(rt, ann.id, conv.id, "system", "x")
