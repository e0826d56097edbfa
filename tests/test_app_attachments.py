"""AppTest: attaching an image and a PDF in the Chat page's message box, sending them, seeing them
in the history; a bad file is refused in plain words with the typed text kept in the box."""

from __future__ import annotations

import base64

from apptest import act, make_user, page_as, use_environment
from fakeproviders import FakeProvider
from filesamples import pdf, png

from byok_core import attachments, keys
from byok_core import conversations as convs
from byok_core.identity import Actor, Owner
from byok_core.providers import Provider


def test_an_image_and_a_pdf_are_sent_and_shown_with_the_prompt(rt, environ, monkeypatch):
    ann = make_user(rt, "ann")
    keys.store(rt, Actor.of(ann), Owner.user(ann.id), Provider.OPENAI, "sk-ann-key-1234")
    image, doc = png(), pdf(2)
    with FakeProvider(Provider.OPENAI, reply="A red square and a blank report.") as fake:
        use_environment(monkeypatch, {**environ, **fake.env()})
        at = page_as(rt, ann)
        assert any(attachments.LIMITS in c.value for c in at.caption)  # the limits, said up front
        box = at.chat_input(key="chat_prompt")
        act(at, rt, lambda: box.upload("red.png", image, "image/png").upload("report.pdf", doc, "application/pdf")
            .set_value("What are these?").run())
        assert not at.exception, at.exception
        parts = fake.requests[-1].body["messages"][-1]["content"]
    assert parts[0] == {"type": "text", "text": "What are these?"}
    assert parts[1]["image_url"]["url"] == "data:image/png;base64," + base64.b64encode(image).decode()
    assert parts[2]["file"]["filename"] == "report.pdf"
    prompt = next(m for m in at.chat_message if m.name == "user")
    assert prompt.markdown[0].value == "What are these?"
    assert [i.captions for i in prompt.get("image")] == [["red.png"]]  # a thumbnail, named
    assert any("report.pdf" in c.value and "PDF, 2 pages" in c.value for c in prompt.caption)  # a file chip
    conv = convs.list_conversations(rt, ann.id)[0]
    assert [a.name for a in convs.messages(rt, ann.id, conv.id)[0].attachments] == ["red.png", "report.pdf"]


def test_a_bad_file_is_refused_in_plain_words_and_the_text_stays_in_the_box(rt, environ, monkeypatch):
    ann = make_user(rt, "ann")
    keys.store(rt, Actor.of(ann), Owner.user(ann.id), Provider.OPENAI, "sk-ann-key-1234")
    not_a_picture = b"not a picture at all" * 20
    with FakeProvider(Provider.OPENAI) as fake:
        use_environment(monkeypatch, {**environ, **fake.env()})
        at = page_as(rt, ann)
        at.chat_input(key="chat_prompt").upload("scan.png", not_a_picture, "image/png").set_value(
            "Describe this scan").run()
        assert not at.exception, at.exception
        said = at.error[0].value
        assert "scan.png is not an image or a PDF this app can send" in said
        assert said.endswith("Your message is kept in the box.")  # the bad file is not worth attaching again
        assert at.chat_input(key="chat_prompt").value == "Describe this scan"

        at.chat_input(key="chat_prompt").upload("scan.png", not_a_picture, "image/png").upload(
            "ok.png", png(), "image/png").set_value("Describe this scan").run()  # a good file beside the bad one
        assert "attach the file again \\(ok.png\\) before you send it" in at.error[0].value
        assert at.chat_input(key="chat_prompt").value == "Describe this scan"
        assert [r.method for r in fake.requests] == ["GET"]  # the models list only: no chat call
        assert convs.list_conversations(rt, ann.id) == []
