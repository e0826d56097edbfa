"""End to end in a real Chromium: editing the first of three prompts starts a branch, and the
request holds only that branch; Regenerate keeps the earlier reply as a version, switched with
``< 1/2 >``. On the shared app server (tests/e2e/conftest.py)."""

from __future__ import annotations

import chatpage
import pytest
from browser import idle, no_errors
from chatpage import main, replies, send, sent_turns
from conftest import REPLY
from playwright.sync_api import Page, expect

pytestmark = pytest.mark.e2e
person = chatpage.person  # a member with an OpenAI key of their own, on the Chat page


def prompts(page: Page):
    return main(page).get_by_test_id("stChatMessage").filter(
        has=page.locator("[data-testid='stChatMessageAvatarUser']"))


def version_button(message, which: str):
    """The ``<`` (prev) or ``>`` (next) beside a message (Streamlit draws a button with help twice)."""
    return message.locator(f"[class*='st-key-chat_{which}_'] [data-testid^=stBaseButton]").first


def converse(page: Page, *said: str) -> None:
    for n, text in enumerate(said, start=1):
        send(page, text)
        expect(replies(page)).to_have_count(n)
        expect(replies(page).last).to_contain_text(REPLY.split()[-1])
        idle(page)


def test_editing_the_first_of_three_prompts_sends_only_the_new_branch(person, openai):
    page, _ = person
    openai.gate.set()
    converse(page, "First question", "Second question", "Third question")
    prompts(page).first.get_by_role("button", name="Edit").click()
    editor = main(page).get_by_role("textbox", name="Edit your message")
    editor.fill("First question, asked better")
    main(page).get_by_role("button", name="Send", exact=True).click()
    expect(prompts(page)).to_have_count(1)
    expect(prompts(page).first).to_contain_text("First question, asked better")
    expect(replies(page).last).to_contain_text(REPLY.split()[-1])
    idle(page)
    assert sent_turns(openai) == [("user", "First question, asked better")]
    expect(prompts(page).first.get_by_text("2/2", exact=True)).to_be_visible()

    version_button(prompts(page).first, "prev").click()  # the conversation as it was
    expect(prompts(page)).to_have_count(3)
    expect(prompts(page).first.get_by_text("1/2", exact=True)).to_be_visible()
    idle(page)
    no_errors(page)


def test_regenerate_keeps_the_earlier_reply_as_a_version(person, openai):
    page, _ = person
    openai.gate.set()
    converse(page, "Tell me something")
    asked = len(openai.requests)
    main(page).get_by_role("button", name="Regenerate").click()
    expect(replies(page).last.get_by_text("2/2", exact=True)).to_be_visible()
    idle(page)
    assert len(openai.requests) == asked + 1 and sent_turns(openai) == [("user", "Tell me something")]
    expect(replies(page)).to_have_count(1)
    version_button(replies(page).last, "prev").click()
    expect(replies(page).last.get_by_text("1/2", exact=True)).to_be_visible()
    expect(version_button(replies(page).last, "next")).to_be_enabled()
    no_errors(page)
