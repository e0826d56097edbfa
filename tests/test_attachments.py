"""Images and PDFs in the chat: checks and limits, the worst case each provider's rule gives, the
request bodies each provider's loopback fake receives (its native parts), owner checks, an edit
keeping its files, deletion with the conversation, the export, a budget that counts them, and a
model that refuses them told in plain words; both databases."""

from __future__ import annotations

import base64
import logging

import pytest
import sqlalchemy as sa
from apptest import make_user
from callhelpers import finished, runtime_with
from fakeproviders import FakeProvider
from filesamples import jpeg, pdf, png

from byok_core import attachments, budgets, keys, replies
from byok_core import conversations as convs
from byok_core.attachments import file_tokens
from byok_core.errors import NotFoundError, ValidationError
from byok_core.identity import Actor, Owner
from byok_core.models import Attachment, ReplyStatus, table
from byok_core.providers import Provider

KEY = "sk-fake.own-ATTACH-aaaaaaaaaaaaaaaaaaaaaa1111"
TEAM_KEY = "sk-fake.team-ATTACH-tttttttttttttttttttttt3333"
MODELS = {Provider.OPENAI: "gpt-4o-mini", Provider.ANTHROPIC: "claude-haiku-4-5", Provider.GOOGLE: "gemini-2.5-flash",
          Provider.OPENAI_COMPATIBLE: "llama-3.1-8b-instant"}


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


# --- checks and limits -------------------------------------------------------------------------


def test_a_file_is_judged_by_its_content_not_its_name():
    image = attachments.check("holiday.pdf", png(30, 20))  # named .pdf, but a PNG
    assert (image.media_type, image.width, image.height, image.kind) == ("image/png", 30, 20, "image")
    assert attachments.check("c:\\Users\\ann\\photo.jpg", jpeg()).name == "photo.jpg"
    doc = attachments.check("notes.pdf", pdf(3))
    assert (doc.media_type, doc.pages, doc.is_pdf) == ("application/pdf", 3, True)
    assert "data" not in repr(doc) and b64(doc.data)[:40] not in repr(doc)  # bytes never in a repr (or a log)


@pytest.mark.parametrize(("name", "data", "said"), [
    ("fake.png", b"this is text, not a picture" * 10, "is not an image or a PDF"),
    ("bitmap.bmp", b"BM" + b"\0" * 100, "is not an image or a PDF"),
    ("locked.pdf", pdf(1, password="secret"), "locked with a password"),
    ("broken.pdf", b"%PDF-1.7\n1 0 obj << /Type /Catalog >>\ntruncated", "could not be read as a PDF"),
    ("long.pdf", pdf(attachments.MAX_PAGES + 1), f"at most {attachments.MAX_PAGES}"),
    ("huge.png", b"\x89PNG" + b"\0" * (attachments.MAX_FILE_MB * attachments.MB), "at most 5 MB each"),
    ("empty.png", b"", "is empty"),
])
def test_bad_files_get_a_message_that_says_what_is_wrong(name, data, said):
    with pytest.raises(ValidationError, match=said) as caught:
        attachments.check(name, data)
    assert name in str(caught.value)


def test_a_message_has_a_count_and_a_total_size_limit():
    with pytest.raises(ValidationError, match=f"at most {attachments.MAX_FILES}"):
        attachments.check_all([(f"{i}.png", png()) for i in range(attachments.MAX_FILES + 1)])
    big = attachments.check("big.png", png())
    big = type(big)(big.name, big.media_type, b"x" * (4 * attachments.MB), 10, 10)
    with pytest.raises(ValidationError, match=r"12\.0 MB together; a message can carry at most 10 MB"):
        attachments.check_message([big, big, big])


# --- the worst case, by each provider's documented rule ----------------------------------------


def _image(width: int, height: int):
    return attachments.check("i.png", png(width, height))


@pytest.mark.parametrize(("provider", "model", "size", "tokens"), [
    (Provider.OPENAI, "gpt-4o", (1024, 1024), 85 + 170 * 4),  # OpenAI's own example: 765
    (Provider.OPENAI, "gpt-4o", (2048, 4096), 85 + 170 * 6),  # scaled to 1024x2048, then 768x1536: 1105
    (Provider.OPENAI, "gpt-4o-mini", (1024, 1024), 2833 + 5667 * 4),
    (Provider.OPENAI, "gpt-4.1-mini", (1024, 1024), 1659),  # 1,024 patches x 1.62
    (Provider.OPENAI, "gpt-4.1-nano", (4096, 4096), 3779),  # capped at 1,536 patches x 2.46
    (Provider.ANTHROPIC, "claude-haiku-4-5", (1000, 1000), 1334),  # 1000*1000/750
    (Provider.ANTHROPIC, "claude-haiku-4-5", (3136, 1568), 1640),  # long side to 1568: 1568*784/750
    (Provider.GOOGLE, "gemini-2.5-flash", (384, 300), 258),
    (Provider.GOOGLE, "gemini-2.5-flash", (1000, 800), 258 * 4),  # 768-pixel tiles
    (Provider.GOOGLE, "gemini-3-pro-preview", (1000, 800), 1120),
    (Provider.OPENAI_COMPATIBLE, "llava", (1000, 1000), 1334),  # the larger of OpenAI's (765) and Anthropic's
])
def test_an_image_costs_at_most_what_the_providers_rule_says(provider, model, size, tokens):
    assert file_tokens(provider, model, _image(*size)) == tokens + attachments.FILE_OVERHEAD_TOKENS


def test_a_pdf_costs_its_pages_as_images_and_its_text():
    doc = attachments.check("doc.pdf", pdf(3))
    doc = type(doc)(doc.name, doc.media_type, doc.data, pages=3, text_bytes=5000)
    extra = 5000 + attachments.FILE_OVERHEAD_TOKENS
    assert file_tokens(Provider.GOOGLE, "gemini-2.5-flash", doc) == 3 * 258 + extra
    assert file_tokens(Provider.GOOGLE, "gemini-3-pro-preview", doc) == 3 * 560 + extra
    assert file_tokens(Provider.ANTHROPIC, "claude-haiku-4-5", doc) == 3 * 3279 + extra  # a 1568 x 1568 page
    assert file_tokens(Provider.OPENAI, "gpt-4o", doc) == 3 * 765 + extra


# --- sent in each provider's native parts, kept, owned, deleted --------------------------------


def _parts(provider: Provider, body: dict) -> list:
    """The last prompt's content parts as the provider received them."""
    if provider is Provider.GOOGLE:
        return body["contents"][-1]["parts"]
    return body["messages"][-1]["content"]


def _native(provider: Provider, image: bytes, doc: bytes) -> list:
    if provider is Provider.ANTHROPIC:
        return [{"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": b64(image)}},
                {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": b64(doc)}},
                {"type": "text", "text": "What do these show?"}]
    if provider is Provider.GOOGLE:
        return [{"inline_data": {"mime_type": "image/png", "data": b64(image)}},
                {"inline_data": {"mime_type": "application/pdf", "data": b64(doc)}}, {"text": "What do these show?"}]
    return [{"type": "text", "text": "What do these show?"},
            {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{b64(image)}"}},
            {"type": "file",
             "file": {"filename": "report.pdf", "file_data": f"data:application/pdf;base64,{b64(doc)}"}}]


@pytest.fixture
def ann_with(environ):
    """(rt, fake server, ann, bob, a conversation of ann's) for a provider."""
    def make(provider: Provider):
        return _Setup(environ, provider)
    return make


class _Setup:
    def __init__(self, environ, provider):
        self.environ, self.provider = environ, provider

    def __enter__(self):
        self.server = FakeProvider(self.provider, reply="I see a red square and a blank report.").__enter__()
        env = ({"BYOK_ALLOW_PRIVATE_ENDPOINTS": "1"} if self.provider is Provider.OPENAI_COMPATIBLE
               else self.server.env())
        self._rt = runtime_with(self.environ, **env)
        rt = self._rt.__enter__()
        ann, bob = make_user(rt, "ann"), make_user(rt, "bob")
        keys.store(rt, Actor.operator(), Owner.user(ann.id), self.provider, KEY,
                   base_url=self.server.base_url if self.provider is Provider.OPENAI_COMPATIBLE else None)
        conv = convs.create(rt, ann.id, "Files", provider=self.provider, model=MODELS[self.provider])
        return rt, self.server, ann, bob, conv

    def __exit__(self, *exc):
        self._rt.__exit__(*exc)
        self.server.__exit__(*exc)


@pytest.mark.parametrize("provider", list(MODELS))
def test_an_image_and_a_pdf_reach_each_provider_in_its_native_parts(ann_with, provider, caplog):
    image, doc = png(), pdf(2)
    files = attachments.check_all([("red.png", image), ("report.pdf", doc)])
    with ann_with(provider) as (rt, server, ann, _bob, conv), caplog.at_level(logging.DEBUG):
        ask = replies.Request(provider, MODELS[provider])
        reply = finished(rt, ann.id, replies.send(rt, ann.id, conv.id, "What do these show?", ask, files=files))
        assert reply.status is ReplyStatus.DONE, reply.error
        assert _parts(provider, server.requests[-1].body) == _native(provider, image, doc)
        # kept with the prompt, and sent again with it on the next turn (text-only prompts stay strings)
        finished(rt, ann.id, replies.send(rt, ann.id, conv.id, "Thanks", ask))
        body = server.requests[-1].body
        first = body["contents"][0]["parts"] if provider is Provider.GOOGLE else body["messages"][0]["content"]
        assert first == _native(provider, image, doc)
        if provider is not Provider.GOOGLE:
            assert body["messages"][-1]["content"] == "Thanks"
        prompt = convs.messages(rt, ann.id, conv.id)[0]
        assert [a.describe() for a in prompt.attachments] == [
            f"red.png (image, 64 x 48, {-(-len(image) // 1024)} KB)",
            f"report.pdf (PDF, 2 pages, {-(-len(doc) // 1024)} KB)"]
    assert b64(image)[:60] not in caplog.text and b64(doc)[:60] not in caplog.text  # files never reach a log


def test_someone_elses_attachment_looks_missing_and_a_deleted_conversation_takes_its_files(ann_with):
    with ann_with(Provider.OPENAI) as (rt, _server, ann, bob, conv):
        files = attachments.check_all([("red.png", png())])
        finished(rt, ann.id, replies.send(rt, ann.id, conv.id, "Look", replies.Request(Provider.OPENAI, "gpt-4o"),
                                          files=files))
        kept = convs.messages(rt, ann.id, conv.id)[0].attachments[0]
        info, data = attachments.get(rt, ann.id, kept.id)
        assert (info.name, data) == ("red.png", files[0].data)
        with pytest.raises(NotFoundError) as theirs:
            attachments.get(rt, bob.id, kept.id)
        with pytest.raises(NotFoundError) as missing:
            attachments.get(rt, ann.id, kept.id + 1000)
        assert str(theirs.value) == str(missing.value) == "No such attachment."
        assert attachments.contents(rt, bob.id, [kept.id]) == {}
        markdown = convs.to_markdown(rt, ann.id, conv.id)
        assert "Attached: red.png \\(image, 64 x 48, 1 KB\\)" in markdown and b64(files[0].data)[:40] not in markdown

        other = convs.create(rt, ann.id, "Kept")
        finished(rt, ann.id, replies.send(rt, ann.id, other.id, "Keep", replies.Request(Provider.OPENAI, "gpt-4o"),
                                          files=files))
        convs.delete(rt, ann.id, conv.id)
        with rt.engine.connect() as conn:
            left = conn.execute(sa.select(table(Attachment).c.conversation_id)).scalars().all()
        assert left == [other.id]  # its files went with it; the other conversation's stay


def test_an_edited_prompt_keeps_its_files_and_only_its_branch_is_sent(ann_with):
    with ann_with(Provider.ANTHROPIC) as (rt, server, ann, _bob, conv):
        ask = replies.Request(Provider.ANTHROPIC, "claude-haiku-4-5")
        image = png(20, 20, "green")
        first = replies.send(rt, ann.id, conv.id, "What colour?", ask, files=attachments.check_all([("g.png", image)]))
        finished(rt, ann.id, first)
        finished(rt, ann.id, replies.send(rt, ann.id, conv.id, "And the shape?", ask))
        prompt_id = convs.messages(rt, ann.id, conv.id)[0].id
        finished(rt, ann.id, replies.edit(rt, ann.id, conv.id, "Which colour exactly?", ask, message_id=prompt_id))
        sent = server.requests[-1].body["messages"]
        assert len(sent) == 1 and sent[0]["content"][0]["source"]["data"] == b64(image)
        assert sent[0]["content"][-1] == {"type": "text", "text": "Which colour exactly?"}
        shown = convs.messages(rt, ann.id, conv.id)
        assert (shown[0].content, [a.name for a in shown[0].attachments], shown[0].versions) == (
            "Which colour exactly?", ["g.png"], 2)
        retried = finished(rt, ann.id, replies.regenerate(rt, ann.id, conv.id, ask))
        assert retried.status is ReplyStatus.DONE
        assert server.requests[-1].body["messages"][0]["content"][0]["source"]["data"] == b64(image)


def test_a_model_that_refuses_images_is_told_in_plain_words(ann_with):
    with ann_with(Provider.OPENAI_COMPATIBLE) as (rt, server, ann, _bob, conv):
        server.status = 400
        server.error_body = {"error": {"message": "Invalid content type. image_url is only supported by certain "
                                                  "models.", "type": "invalid_request_error"}}
        ask = replies.Request(Provider.OPENAI_COMPATIBLE, "llama-3.1-8b-instant")
        failed = finished(rt, ann.id, replies.send(rt, ann.id, conv.id, "Look", ask,
                                                   files=attachments.check_all([("red.png", png())])))
        assert failed.status is ReplyStatus.FAILED
        assert "did not accept an image attached to this conversation" in failed.error
        assert "image_url is only supported by certain models" in failed.error and "Pick a model that reads" in \
            failed.error


# --- budgets count the files -------------------------------------------------------------------


def test_a_budgeted_team_key_refuses_a_call_whose_files_do_not_fit(environ):
    with FakeProvider(Provider.OPENAI) as server, runtime_with(environ, **server.env()) as rt:
        ann = make_user(rt, "ann")
        keys.store(rt, Actor.operator(), Owner.team(), Provider.OPENAI, TEAM_KEY)
        budgets.set_budget(rt, Actor.operator(), Owner.team(), "0.01")
        conv = convs.create(rt, ann.id, "Budget")
        ask = replies.Request(Provider.OPENAI, "gpt-4o-mini")  # $0.15 / $0.60 per million: 8,192 out is $0.0049
        two = attachments.check_all([("a.png", png(2000, 2000)), ("b.png", png(2000, 2000))])  # 2 x 25,517 in
        refused = finished(rt, ann.id, replies.send(rt, ann.id, conv.id, "Compare these", ask, files=two))
        assert refused.status is ReplyStatus.FAILED and server.requests == []
        assert "could cost up to" in refused.error and "monthly budget for shared keys" in refused.error
        prompt = convs.messages(rt, ann.id, conv.id)[0]
        assert (prompt.content, len(prompt.attachments)) == ("Compare these", 2)  # kept, files and all
        ok = finished(rt, ann.id, replies.send(rt, ann.id, conv.id, "Just text", ask))
        assert ok.status is ReplyStatus.DONE and len(server.requests) == 1  # the same call without them fits


def test_a_prompt_may_be_only_files_but_not_nothing(ann_with):
    with ann_with(Provider.GOOGLE) as (rt, server, ann, _bob, conv):
        ask = replies.Request(Provider.GOOGLE, "gemini-2.5-flash")
        with pytest.raises(ValidationError, match="Write a message first"):
            replies.send(rt, ann.id, conv.id, "  ", ask)
        image = png()
        reply = finished(rt, ann.id, replies.send(rt, ann.id, conv.id, "", ask,
                                                  files=attachments.check_all([("red.png", image)])))
        assert reply.status is ReplyStatus.DONE
        assert server.requests[-1].body["contents"] == [
            {"role": "user", "parts": [{"inline_data": {"mime_type": "image/png", "data": b64(image)}}]}]
