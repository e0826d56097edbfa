"""How many SQL statements one chat turn runs, from the prompt sent to the reply written, counted on
both databases: the call path reads each fact once and writes each row once, and stays that way."""

from __future__ import annotations

import pytest
from apptest import make_user
from callhelpers import counted, follow_to_end, runtime_with
from fakeproviders import FakeProvider

from byok_core import budgets, keys, limits, replies
from byok_core import conversations as convs
from byok_core.identity import Actor, Owner
from byok_core.models import ReplyStatus
from byok_core.providers import Provider

ADMIN = Actor.operator()
OWN_KEY = "sk-fake.own-COUNT-aaaaaaaaaaaaaaaaaaaaaa1111"
TEAM_KEY = "sk-fake.team-COUNT-tttttttttttttttttttttt3333"
BRAVE_KEY = "brave-team-COUNT-0123456789"


def turn(rt, user_id, conversation_id, request) -> int:
    """Send a prompt and wait until its reply is written; the reply's id."""
    reply_id = replies.send(rt, user_id, conversation_id, "Say hello", request)
    follow_to_end(reply_id)
    return reply_id


@pytest.mark.parametrize(("case", "most"), [("own key", 10), ("team keys, web search, budgets", 29),
                                            ("team keys, web search, budgets, rate limits", 29)])
def test_one_chat_turn_runs_few_statements(environ, monkeypatch, case, most):
    monkeypatch.setattr(replies, "FLUSH_SECONDS", 3600.0)  # text written as it arrives: timed, not counted here
    with FakeProvider(Provider.OPENAI) as openai, FakeProvider(Provider.BRAVE) as brave, \
            runtime_with(environ, **openai.env(), **brave.env()) as rt:
        ann = make_user(rt, "ann")
        conversation = convs.create(rt, ann.id, "Counted")
        if case == "own key":
            keys.store(rt, ADMIN, Owner.user(ann.id), Provider.OPENAI, OWN_KEY)
            request = replies.Request(Provider.OPENAI, "gpt-4o-mini")
        else:
            keys.store(rt, ADMIN, Owner.team(), Provider.OPENAI, TEAM_KEY)
            keys.store(rt, ADMIN, Owner.team(), Provider.BRAVE, BRAVE_KEY)
            budgets.set_budget(rt, ADMIN, Owner.team(), 100)
            budgets.set_budget(rt, ADMIN, Owner.user(ann.id), 50)
            if case.endswith("rate limits"):
                limits.set_rate_limits(rt, ADMIN, per_user=100, per_team=1000)
            request = replies.Request(Provider.OPENAI, "gpt-4o-mini", Provider.BRAVE)
        turn(rt, ann.id, conversation.id, request)  # the first turn of the month makes its spend rows
        with counted(rt.engine) as statements:
            reply_id = turn(rt, ann.id, conversation.id, request)
        assert replies.reply(rt, ann.id, reply_id).status is ReplyStatus.DONE
        assert len(statements) <= most, "\n".join(statements)
        assert len(openai.requests) == 2 and len(brave.requests) == (0 if case == "own key" else 2)


def test_files_in_the_branch_cost_one_read_and_a_prompt_with_files_one_insert(environ, monkeypatch):
    """An own-key turn whose branch holds files reads their bytes in one statement; sending files
    inserts them in one more (one statement for all of them)."""
    from filesamples import pdf, png

    from byok_core import attachments

    monkeypatch.setattr(replies, "FLUSH_SECONDS", 3600.0)
    with FakeProvider(Provider.OPENAI) as openai, runtime_with(environ, **openai.env()) as rt:
        ann = make_user(rt, "ann")
        conversation = convs.create(rt, ann.id, "Counted")
        keys.store(rt, ADMIN, Owner.user(ann.id), Provider.OPENAI, OWN_KEY)
        request = replies.Request(Provider.OPENAI, "gpt-4o-mini")
        files = attachments.check_all([("a.png", png()), ("b.pdf", pdf(1))])
        follow_to_end(replies.send(rt, ann.id, conversation.id, "First", request))
        with counted(rt.engine) as plain:
            follow_to_end(replies.send(rt, ann.id, conversation.id, "Plain", request))
        with counted(rt.engine) as with_files:
            follow_to_end(replies.send(rt, ann.id, conversation.id, "Files", request, files=files))
        with counted(rt.engine) as after:
            follow_to_end(replies.send(rt, ann.id, conversation.id, "After", request))
        assert len(with_files) == len(plain) + 1, "\n".join(with_files)  # the files' one INSERT
        assert len(after) == len(plain) + 1, "\n".join(after)  # their bytes, read once to be sent again
        assert len(openai.requests[-1].body["messages"][4]["content"]) == 3  # text, image, PDF
