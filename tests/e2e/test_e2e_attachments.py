"""End to end in a real Chromium: an image and a PDF attached in the message box reach each
provider's fake in its native parts (OpenAI and an OpenAI-compatible endpoint: image_url + file;
Anthropic: image + document; Gemini: inline_data) and show with the prompt as a thumbnail and a
file chip; a budgeted team key refuses a call whose files' worst case does not fit, in plain
words, the prompt and its files kept.

This module's app server also has a fake Anthropic, Gemini and OpenAI-compatible endpoint (on
loopback, so private endpoints are allowed), so it starts its own (``server``); it uses the shared
fake OpenAI."""

from __future__ import annotations

import base64
import itertools
from collections.abc import Iterator

import pytest
from appserver import RunningApp, running_app
from browser import idle, no_errors, open_signed_in, shot
from chatpage import box, main, replies
from fakeproviders import FakeProvider
from filesamples import pdf, png
from playwright.sync_api import Page, expect

from byok_core import accounts, budgets, keys
from byok_core import conversations as convs
from byok_core.identity import Actor, Owner
from byok_core.providers import Provider

pytestmark = pytest.mark.e2e

OP = Actor.operator()
REPLY = "I see a red square and a two-page report."
MODELS = {Provider.OPENAI: "gpt-4o-mini", Provider.ANTHROPIC: "claude-haiku-4-5", Provider.GOOGLE: "gemini-2.5-flash",
          Provider.OPENAI_COMPATIBLE: "llama-3.1-8b-instant"}
_names = itertools.count(1)


@pytest.fixture(scope="module")
def fakes(shared_openai) -> Iterator[dict[Provider, FakeProvider]]:
    with FakeProvider(Provider.ANTHROPIC, reply=REPLY) as anthropic, \
            FakeProvider(Provider.GOOGLE, reply=REPLY) as google, \
            FakeProvider(Provider.OPENAI_COMPATIBLE, reply=REPLY) as compatible:
        yield {Provider.OPENAI: shared_openai, Provider.ANTHROPIC: anthropic, Provider.GOOGLE: google,
               Provider.OPENAI_COMPATIBLE: compatible}


@pytest.fixture(scope="module")
def server(tmp_path_factory, fakes) -> Iterator[RunningApp]:
    env = {k: v for p, fake in fakes.items() if p is not Provider.OPENAI_COMPATIBLE for k, v in fake.env().items()}
    with running_app(tmp_path_factory.mktemp("e2e-attachments"), **env, BYOK_ALLOW_PRIVATE_ENDPOINTS="1") as app:
        yield app


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def attach_and_send(page: Page, text: str, files: list[tuple[str, str, bytes]]) -> None:
    """Attach ``files`` (name, MIME type, bytes) in the message box, wait for them, and send ``text``."""
    expect(box(page)).to_be_editable()
    page.get_by_test_id("stChatInput").locator("input[type=file]").set_input_files(
        [{"name": name, "mimeType": mime, "buffer": data} for name, mime, data in files])
    bottom = page.get_by_test_id("stBottomBlockContainer")
    for name, _, _ in files:
        expect(bottom.get_by_text(name)).to_be_visible()
    box(page).fill(text)
    submit = page.get_by_test_id("stChatInputSubmitButton")
    expect(submit).to_be_enabled()  # the uploads have finished
    submit.click()


def prompts(page: Page):
    return main(page).get_by_test_id("stChatMessage").filter(
        has=page.locator("[data-testid='stChatMessageAvatarUser']"))


def native_parts(provider: Provider, body: dict) -> list:
    """The last prompt's image and PDF parts, as the provider received them."""
    if provider is Provider.GOOGLE:
        return [p["inline_data"] for p in body["contents"][-1]["parts"] if "inline_data" in p]
    content = body["messages"][-1]["content"]
    if provider is Provider.ANTHROPIC:
        return [(b["type"], b["source"]["media_type"], b["source"]["data"]) for b in content if "source" in b]
    return [p for p in content if p["type"] != "text"]


@pytest.mark.parametrize("provider", list(MODELS))
def test_an_image_and_a_pdf_reach_the_provider_in_its_native_parts(server, page, rt, openai, fakes, provider):
    user = accounts.create_user(rt, OP, f"files{next(_names)}", "files password 1")
    keys.store(rt, Actor.of(user), Owner.user(user.id), provider, f"sk-e2e-files-{provider.value}-0123456789",
               base_url=fakes[provider].base_url if provider is Provider.OPENAI_COMPATIBLE else None)
    conv = convs.create(rt, user.id, "Files", provider=provider, model=MODELS[provider])  # opens with its model
    image, doc = png(120, 80), pdf(2)
    open_signed_in(page, server.url, rt, user, f"/chat?c={conv.id}")
    attach_and_send(page, "What do these show?", [("red.png", "image/png", image),
                                                 ("report.pdf", "application/pdf", doc)])
    expect(replies(page).last).to_contain_text("Paid by your key")  # the reply is done
    idle(page)
    openai_parts = [{"type": "image_url", "image_url": {"url": f"data:image/png;base64,{b64(image)}"}},
                    {"type": "file", "file": {"filename": "report.pdf",
                                              "file_data": f"data:application/pdf;base64,{b64(doc)}"}}]
    expected = {
        Provider.OPENAI_COMPATIBLE: openai_parts,  # as OpenAI's
        Provider.OPENAI: openai_parts,
        Provider.ANTHROPIC: [("image", "image/png", b64(image)), ("document", "application/pdf", b64(doc))],
        Provider.GOOGLE: [{"mime_type": "image/png", "data": b64(image)},
                          {"mime_type": "application/pdf", "data": b64(doc)}],
    }[provider]
    assert native_parts(provider, fakes[provider].requests[-1].body) == expected
    prompt = prompts(page).last
    expect(prompt.get_by_test_id("stImage")).to_have_count(1)  # the image's thumbnail
    expect(prompt.get_by_text("red.png")).to_be_visible()
    expect(prompt.get_by_text("report.pdf (PDF, 2 pages")).to_be_visible()  # the PDF's chip
    no_errors(page)
    if provider is Provider.OPENAI:
        shot(page, "chat-attachments")


def test_a_budgeted_team_key_refuses_a_call_whose_files_do_not_fit(server, page, rt, openai):
    user = accounts.create_user(rt, OP, f"files{next(_names)}", "files password 1")  # no key of her own
    keys.store(rt, OP, Owner.team(), Provider.OPENAI, "sk-e2e-files-team-0123456789")
    budgets.set_budget(rt, OP, Owner.user(user.id), "0.01")  # gpt-4o-mini: a text call's worst case is $0.005
    before = len(openai.requests)
    open_signed_in(page, server.url, rt, user, "/chat")
    big = png(2000, 2000)  # 25,517 tokens each at gpt-4o-mini's image rate
    attach_and_send(page, "Compare these two", [("one.png", "image/png", big), ("two.png", "image/png", big)])
    expect(replies(page).last).to_contain_text("could cost up to")
    expect(replies(page).last).to_contain_text("monthly budget for shared keys")
    idle(page)
    assert [r for r in openai.requests[before:] if r.method == "POST"] == []  # nothing was sent
    expect(prompts(page).last).to_contain_text("Compare these two")  # the prompt is kept, files and all
    expect(prompts(page).last.get_by_test_id("stImage")).to_have_count(2)
    no_errors(page)
