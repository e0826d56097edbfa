"""Typed text the database cannot store, refused alike on SQLite and PostgreSQL with a sentence and
nothing written: NUL and other control characters in a prompt or a title, a prompt of spaces only in
`byok chat`; a NUL a provider sends is stored as U+FFFD, not lost with the reply."""

from __future__ import annotations

import io
import re
import sys

import pytest
from apptest import make_user
from callhelpers import finished, runtime_with, usage_rows
from fakeproviders import FakeProvider

from byok_core import conversations as convs
from byok_core import keys, replies
from byok_core.cli import main
from byok_core.errors import ValidationError
from byok_core.identity import Actor, Owner
from byok_core.providers import Provider

KEY = "sk-fake.own-TEXT-aaaaaaaaaaaaaaaaaaaaaaaa1111"
ASK = replies.Request(Provider.OPENAI, "gpt-4o-mini")


@pytest.fixture
def setup(environ):
    with FakeProvider(Provider.OPENAI, reply="Hello\x00 there") as server, \
            runtime_with(environ, **server.env()) as rt:
        ann = make_user(rt, "ann")
        keys.store(rt, Actor.operator(), Owner.user(ann.id), Provider.OPENAI, KEY)
        yield rt, server, ann, convs.create(rt, ann.id, "Test")


@pytest.mark.parametrize("prompt, char", [("hello\x00world", "U+0000"), ("bell \x07", "U+0007"),
                                          ("esc \x1b[31m", "U+001B")])
def test_a_prompt_with_a_control_character_is_refused_and_nothing_is_stored(setup, prompt, char):
    rt, server, ann, conv = setup
    with pytest.raises(ValidationError, match=rf"control character \({re.escape(char)}\).*remove it"):
        replies.send(rt, ann.id, conv.id, prompt, ASK)
    assert convs.messages(rt, ann.id, conv.id) == [] and server.requests == [] and usage_rows(rt) == []



def test_line_breaks_and_tabs_are_kept(setup):
    rt, _server, ann, conv = setup
    finished(rt, ann.id, replies.send(rt, ann.id, conv.id, "two\nlines\tand a tab\r\n", ASK))
    assert convs.messages(rt, ann.id, conv.id)[0].content == "two\nlines\tand a tab\r\n"


def test_a_nul_from_the_provider_is_stored_as_a_replacement_character(setup):
    rt, _server, ann, conv = setup
    assert finished(rt, ann.id, replies.send(rt, ann.id, conv.id, "Hi", ASK)).content == "Hello\ufffd there"


def test_a_title_with_a_nul_is_refused_and_the_old_one_kept(setup):
    rt, _server, ann, conv = setup
    with pytest.raises(ValidationError, match=r"The title contains a control character \(U\+0000\)"):
        convs.rename(rt, ann.id, conv.id, "new\x00title")
    with pytest.raises(ValidationError, match="control character"):
        convs.create(rt, ann.id, "bad\x00")
    assert [c.title for c in convs.list_conversations(rt, ann.id)] == ["Test"]


@pytest.mark.parametrize("prompt", [["   "], ["", " "], ["hi\x00"]])
def test_byok_chat_refuses_an_empty_prompt_before_any_call(environ, monkeypatch, capsys, prompt):
    with FakeProvider(Provider.OPENAI) as server:
        for name, value in {**environ, **server.env(), "OPENAI_API_KEY": KEY}.items():
            monkeypatch.setenv(name, value)
        monkeypatch.setattr(sys, "stdin", io.StringIO(""))
        code = main(["chat", "--provider", "openai", "--", *prompt])
        err = capsys.readouterr().err
        assert code == 1 and err.startswith("byok: ") and ("only spaces" in err or "control character" in err)
        assert server.requests == []
    with runtime_with(environ) as rt:
        assert usage_rows(rt) == []
