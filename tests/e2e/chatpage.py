"""What the chat browser tests share: a member with an OpenAI key of their own on the Chat page,
and the page's parts (the message box, the replies, the main column)."""

from __future__ import annotations

import secrets

import pytest
from browser import open_signed_in
from playwright.sync_api import Locator, Page, expect

from byok_core import accounts, keys
from byok_core.identity import Actor, Owner
from byok_core.providers import Provider


@pytest.fixture
def person(server, page, rt, openai):
    """A member with their own OpenAI key, signed in on the Chat page; replies stop after their
    first word until the test sets ``openai.gate``."""
    name = f"chat-{secrets.token_hex(4)}"  # unique on the shared server
    user = accounts.create_user(rt, Actor.operator(), name, "member password 1")
    keys.store(rt, Actor.of(user), Owner.user(user.id), Provider.OPENAI, f"sk-e2e-{name}-0123456789")
    openai.gate.clear()
    open_signed_in(page, server.url, rt, user)
    return page, user


def box(page: Page) -> Locator:
    return page.get_by_test_id("stChatInputTextArea")


def send(page: Page, text: str) -> None:
    expect(box(page)).to_be_editable()
    box(page).fill(text)
    box(page).press("Enter")


def stop_button(page: Page) -> Locator:
    """The app's Stop, beside the message box (a conversation titled "Stop…" has a button too)."""
    return page.get_by_test_id("stBottomBlockContainer").get_by_role("button", name="Stop")


def main(page: Page) -> Locator:
    return page.get_by_test_id("stMainBlockContainer")


def replies(page: Page) -> Locator:
    return page.get_by_test_id("stChatMessage").filter(has=page.locator("[data-testid='stChatMessageAvatarAssistant']"))


def sent_turns(openai) -> list[tuple[str, str]]:
    return [(m["role"], m["content"]) for m in openai.requests[-1].body["messages"]]
