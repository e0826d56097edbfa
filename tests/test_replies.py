"""Replies written by a server-side worker, against a loopback provider on both databases: what is
sent after a failure, a retry, a regenerate and an edit; an edit of an earlier prompt is a branch,
and only the branch shown is sent; Regenerate keeps versions; Stop; one reply at a time; a reply
whose process died is marked interrupted."""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa
from apptest import make_user
from callhelpers import counted, finished, runtime_with, usage_rows
from fakeproviders import FakeProvider

from byok_core import conversations as convs
from byok_core import keys, replies
from byok_core.clock import utcnow
from byok_core.errors import NotFoundError, ValidationError
from byok_core.identity import Actor, Owner
from byok_core.models import Message, ReplyStatus, table
from byok_core.providers import Provider

KEY = "sk-fake.own-REPLIES-aaaaaaaaaaaaaaaaaaaaaa1111"
ASK = replies.Request(Provider.OPENAI, "gpt-4o-mini")



def sent(server) -> list[tuple[str, str]]:
    """The messages the provider received in its last request."""
    return [(m["role"], m["content"]) for m in server.requests[-1].body["messages"]]


@pytest.fixture
def setup(environ):
    with FakeProvider(Provider.OPENAI, reply="Hello there") as server, runtime_with(environ, **server.env()) as rt:
        ann = make_user(rt, "ann")
        keys.store(rt, Actor.operator(), Owner.user(ann.id), Provider.OPENAI, KEY)
        conv = convs.create(rt, ann.id, "Test")
        yield rt, server, ann, conv


def test_a_reply_is_written_by_the_worker_and_kept(setup):
    rt, server, ann, conv = setup
    reply = finished(rt, ann.id, replies.send(rt, ann.id, conv.id, "Hi", ASK))
    assert (reply.status, reply.content, reply.record.status, reply.record.key_source) == (
        ReplyStatus.DONE, "Hello there", "ok", "user")
    assert sent(server) == [("user", "Hi")]
    assert [(m.role, m.content) for m in convs.messages(rt, ann.id, conv.id)] == [("user", "Hi"),
                                                                                  ("assistant", "Hello there")]
    assert [r.status for r in usage_rows(rt)] == ["ok"]


def test_a_conversation_just_read_is_sent_as_read_and_one_read_for_another_is_not_used(setup):
    rt, server, ann, conv = setup
    finished(rt, ann.id, replies.send(rt, ann.id, conv.id, "First", ASK))
    read = replies.opened(rt, ann.id, conv.id)
    with counted(rt.engine) as statements:
        finished(rt, ann.id, replies.send(rt, ann.id, conv.id, "Second", ASK, read=read))
    assert sent(server) == [("user", "First"), ("assistant", "Hello there"), ("user", "Second")]
    assert not any("FROM messages" in s and "JOIN attachments" in s for s in statements)  # not read again
    other = convs.create(rt, ann.id, "Another")
    finished(rt, ann.id, replies.send(rt, ann.id, other.id, "Elsewhere", ASK, read=read))  # read for conv
    assert sent(server) == [("user", "Elsewhere")]


def test_failed_turns_stay_visible_and_out_of_the_context_retry_regenerate_edit(setup):
    rt, server, ann, conv = setup
    finished(rt, ann.id, replies.send(rt, ann.id, conv.id, "First", ASK))
    server.status = 429
    failed = finished(rt, ann.id, replies.send(rt, ann.id, conv.id, "Second", ASK))
    assert failed.status is ReplyStatus.FAILED and "rate" in failed.error.lower()
    server.status = None
    finished(rt, ann.id, replies.send(rt, ann.id, conv.id, "Third", ASK))
    # the failed turn was not sent again: only the visible successful turns and the new prompt
    assert sent(server) == [("user", "First"), ("assistant", "Hello there"), ("user", "Third")]
    shown = [(m.role, m.content, m.status) for m in convs.messages(rt, ann.id, conv.id)]
    assert ("user", "Second", ReplyStatus.DONE) in shown and ("assistant", "", ReplyStatus.FAILED) in shown

    server.status = 429
    finished(rt, ann.id, replies.send(rt, ann.id, conv.id, "Fourth", ASK))
    server.status = None
    retried = finished(rt, ann.id, replies.retry(rt, ann.id, conv.id, ASK))
    assert retried.status is ReplyStatus.DONE
    assert sent(server) == [("user", "First"), ("assistant", "Hello there"), ("user", "Third"),
                            ("assistant", "Hello there"), ("user", "Fourth")]
    messages = convs.messages(rt, ann.id, conv.id)
    assert [m.content for m in messages if m.role == "user"].count("Fourth") == 1
    assert messages[-1].id == retried.id and messages[-2].content == "Fourth"  # replaced, not added

    before = len(server.requests)
    regenerated = finished(rt, ann.id, replies.regenerate(rt, ann.id, conv.id, ASK))
    assert len(server.requests) == before + 1 and sent(server)[-1] == ("user", "Fourth")
    assert len(convs.messages(rt, ann.id, conv.id)) == len(messages) and regenerated.status is ReplyStatus.DONE

    finished(rt, ann.id, replies.edit(rt, ann.id, conv.id, "Fourth, edited", ASK))
    assert sent(server)[-1] == ("user", "Fourth, edited")
    assert [m.content for m in convs.messages(rt, ann.id, conv.id) if m.role == "user"][-1] == "Fourth, edited"


def shown(rt, user_id, conv_id) -> list[tuple[str, str, str]]:
    """The branch shown: each message's role, text and "version/versions"."""
    return [(m.role, m.content, f"{m.version}/{m.versions}") for m in convs.messages(rt, user_id, conv_id)]


def test_an_edit_of_the_first_of_three_prompts_is_a_branch_and_only_the_branch_shown_is_sent(setup):
    rt, server, ann, conv = setup
    for prompt in ("First", "Second", "Third"):
        finished(rt, ann.id, replies.send(rt, ann.id, conv.id, prompt, ASK))
    first = convs.messages(rt, ann.id, conv.id)[0]
    server.chunks = ["Edited ", "answer"]
    finished(rt, ann.id, replies.edit(rt, ann.id, conv.id, "First, edited", ASK, message_id=first.id))
    assert sent(server) == [("user", "First, edited")]  # nothing of the branch it replaces
    assert shown(rt, ann.id, conv.id) == [("user", "First, edited", "2/2"), ("assistant", "Edited answer", "1/1")]

    finished(rt, ann.id, replies.send(rt, ann.id, conv.id, "Next", ASK))
    assert sent(server) == [("user", "First, edited"), ("assistant", "Edited answer"), ("user", "Next")]

    edited = convs.messages(rt, ann.id, conv.id)[0]
    convs.show_version(rt, ann.id, conv.id, edited.id, -1)  # back to the first branch, all of it
    assert [c for _, c, _ in shown(rt, ann.id, conv.id)] == ["First", "Hello there", "Second", "Hello there",
                                                             "Third", "Hello there"]
    assert shown(rt, ann.id, conv.id)[0][2] == "1/2"
    finished(rt, ann.id, replies.send(rt, ann.id, conv.id, "Fourth", ASK))
    assert [c for _, c in sent(server)] == ["First", "Hello there", "Second", "Hello there", "Third", "Hello there",
                                            "Fourth"]
    convs.show_version(rt, ann.id, conv.id, convs.messages(rt, ann.id, conv.id)[0].id, 1)
    assert [c for _, c, _ in shown(rt, ann.id, conv.id)] == ["First, edited", "Edited answer", "Next", "Edited answer"]
    exported = convs.to_markdown(rt, ann.id, conv.id)  # the branch shown, and nothing of the other
    assert "First, edited" in exported and "Second" not in exported and "Fourth" not in exported
    with pytest.raises(ValidationError):  # there is no third version
        convs.show_version(rt, ann.id, conv.id, convs.messages(rt, ann.id, conv.id)[0].id, 1)


def test_regenerate_keeps_the_earlier_reply_as_a_version_and_a_failed_one_is_replaced(setup):
    rt, server, ann, conv = setup
    finished(rt, ann.id, replies.send(rt, ann.id, conv.id, "Hi", ASK))
    server.chunks = ["Second ", "take"]
    finished(rt, ann.id, replies.regenerate(rt, ann.id, conv.id, ASK))
    assert sent(server) == [("user", "Hi")]
    assert shown(rt, ann.id, conv.id) == [("user", "Hi", "1/1"), ("assistant", "Second take", "2/2")]
    reply = convs.messages(rt, ann.id, conv.id)[1]
    convs.show_version(rt, ann.id, conv.id, reply.id, -1)
    assert shown(rt, ann.id, conv.id)[1] == ("assistant", "Hello there", "1/2")
    finished(rt, ann.id, replies.send(rt, ann.id, conv.id, "And?", ASK))  # goes on from the version shown
    assert sent(server)[:2] == [("user", "Hi"), ("assistant", "Hello there")]

    server.status = 429
    assert finished(rt, ann.id, replies.send(rt, ann.id, conv.id, "Once more", ASK)).status is ReplyStatus.FAILED
    server.status = None
    finished(rt, ann.id, replies.retry(rt, ann.id, conv.id, ASK))
    last = convs.messages(rt, ann.id, conv.id)[-1]  # the failed reply was replaced, not kept as a version
    assert (last.status, last.versions) == (ReplyStatus.DONE, 1)


def test_versions_are_not_switched_while_a_reply_is_written_nor_in_someone_elses_conversation(environ):
    with FakeProvider(Provider.OPENAI, chunks=["Hel", "lo"], hold_after=1) as server, \
            runtime_with(environ, **server.env()) as rt:
        ann, bob = make_user(rt, "ann"), make_user(rt, "bob")
        keys.store(rt, Actor.operator(), Owner.user(ann.id), Provider.OPENAI, KEY)
        conv = convs.create(rt, ann.id, "Test")
        server.gate.set()
        finished(rt, ann.id, replies.send(rt, ann.id, conv.id, "Hi", ASK))
        server.gate.clear()
        running = replies.regenerate(rt, ann.id, conv.id, ASK)
        first = convs.messages(rt, ann.id, conv.id)[1]
        with pytest.raises(ValidationError):
            convs.show_version(rt, ann.id, conv.id, first.id, -1)
        with pytest.raises(replies.ReplyRunning):
            replies.edit(rt, ann.id, conv.id, "Hey", ASK, message_id=convs.messages(rt, ann.id, conv.id)[0].id)
        server.gate.set()
        finished(rt, ann.id, running)
        with pytest.raises(NotFoundError):  # someone else's conversation looks missing
            convs.show_version(rt, bob.id, conv.id, first.id, -1)
        with pytest.raises(NotFoundError):
            replies.edit(rt, bob.id, conv.id, "Hey", ASK, message_id=convs.messages(rt, ann.id, conv.id)[0].id)


def test_a_refused_turn_fails_visibly_before_any_call(setup):
    rt, server, ann, conv = setup
    reply = finished(rt, ann.id, replies.send(rt, ann.id, conv.id, "Hi", replies.Request(Provider.ANTHROPIC, "")))
    assert reply.status is ReplyStatus.FAILED and "Anthropic" in reply.error and reply.record is None
    assert server.requests == [] and usage_rows(rt) == []


def test_stop_keeps_the_text_and_logs_a_stopped_call(environ):
    with FakeProvider(Provider.OPENAI, chunks=["Hel", "lo ", "there"], hold_after=1) as server, \
            runtime_with(environ, **server.env()) as rt:
        ann = make_user(rt, "ann")
        keys.store(rt, Actor.operator(), Owner.user(ann.id), Provider.OPENAI, KEY)
        conv = convs.create(rt, ann.id, "Test")
        reply_id = replies.send(rt, ann.id, conv.id, "Hi", ASK)
        following = replies.live(reply_id).follow()
        assert next(t for t, _ in following if t) == "Hel"
        with pytest.raises(replies.ReplyRunning):  # one reply at a time
            replies.send(rt, ann.id, conv.id, "Another", ASK)
        replies.stop(rt, ann.id, reply_id)  # while the provider still holds the rest back
        reply = finished(rt, ann.id, reply_id)
        server.gate.set()
        assert reply.status is ReplyStatus.STOPPED and reply.content == "Hel"
        assert [r.status for r in usage_rows(rt)] == ["stopped"]
        # a stopped reply stays in the conversation, and the next prompt may go
        finished(rt, ann.id, replies.send(rt, ann.id, conv.id, "Next", ASK))
        assert sent(server)[:2] == [("user", "Hi"), ("assistant", reply.content)]


def test_a_reply_whose_process_died_is_marked_interrupted(setup):
    rt, _server, ann, conv = setup
    with rt.engine.begin() as conn:  # what a replica that died mid-reply leaves behind
        conn.execute(sa.insert(table(Message)).values(
            conversation_id=conv.id, role="assistant", content="half a rep", created_at=utcnow(), meta="{}",
            status=ReplyStatus.STREAMING, heartbeat_at=utcnow() - replies.STALE_AFTER - timedelta(seconds=1),
            stop_requested=False))
    [reply] = replies.opened(rt, ann.id, conv.id)[1]
    assert reply.status is ReplyStatus.INTERRUPTED and reply.content == "half a rep"
    finished(rt, ann.id, replies.send(rt, ann.id, conv.id, "Hi", ASK))  # it no longer blocks a new reply


def test_a_dead_reply_in_the_way_of_a_new_prompt_is_marked_interrupted_then(setup):
    rt, server, ann, conv = setup
    with rt.engine.begin() as conn:  # a replica died mid-reply, and no page has shown the conversation since
        conn.execute(sa.insert(table(Message)).values(
            conversation_id=conv.id, role="assistant", content="half a rep", created_at=utcnow(), meta="{}",
            status=ReplyStatus.STREAMING, heartbeat_at=utcnow() - replies.STALE_AFTER - timedelta(seconds=1),
            stop_requested=False))
    reply = finished(rt, ann.id, replies.send(rt, ann.id, conv.id, "Hi", ASK))
    assert reply.status is ReplyStatus.DONE
    assert [(m.content, m.status) for m in convs.messages(rt, ann.id, conv.id)] == [
        ("half a rep", ReplyStatus.INTERRUPTED), ("Hi", ReplyStatus.DONE), ("Hello there", ReplyStatus.DONE)]
    assert sent(server) == [("user", "Hi")]


def test_someone_elses_reply_cannot_be_read_or_stopped(setup):
    rt, _server, ann, conv = setup
    bob = make_user(rt, "bob")
    reply_id = finished(rt, ann.id, replies.send(rt, ann.id, conv.id, "Hi", ASK)).id
    with pytest.raises(convs.NotFoundError):
        replies.reply(rt, bob.id, reply_id)
    with pytest.raises(convs.NotFoundError):
        replies.send(rt, bob.id, conv.id, "Hi", ASK)


def test_someone_elses_stop_leaves_the_reply_running_to_the_end(environ):
    with FakeProvider(Provider.OPENAI, chunks=["Hel", "lo ", "there"], hold_after=1) as server, \
            runtime_with(environ, **server.env()) as rt:
        ann, bob = make_user(rt, "ann"), make_user(rt, "bob")
        keys.store(rt, Actor.operator(), Owner.user(ann.id), Provider.OPENAI, KEY)
        conv = convs.create(rt, ann.id, "Test")
        reply_id = replies.send(rt, ann.id, conv.id, "Hi", ASK)
        assert next(t for t, _ in replies.live(reply_id).follow() if t) == "Hel"
        replies.stop(rt, bob.id, reply_id)  # bob guessed the id: as if there were no such reply
        assert not replies.live(reply_id).stop.is_set()
        server.gate.set()
        reply = finished(rt, ann.id, reply_id)
        assert (reply.status, reply.content, reply.stop_requested) == (ReplyStatus.DONE, "Hello there", False)
