"""On a phone (390 x 844, a phone's user agent and touch) in a real Chromium: Chat, Keys and Usage fit
the screen's width, choosing a page closes the menu, and the chat's controls leave the
conversation in view. On the shared app server (tests/e2e/conftest.py). Screenshots go where the
other browser tests put theirs."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from appserver import ROOT
from browser import idle, no_errors, open_signed_in
from playwright.sync_api import Page, expect

from byok_core import accounts, keys
from byok_core.identity import Actor, Owner
from byok_core.providers import Provider
from byok_core.startup import open_runtime

pytestmark = pytest.mark.e2e

PHONE = {"viewport": {"width": 390, "height": 844}, "device_scale_factor": 3, "is_mobile": True, "has_touch": True,
         "user_agent": "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like "
                       "Gecko) Version/17.0 Mobile/15E148 Safari/604.1"}
USER = ("phone", "phone password 1")
SHOTS = os.environ.get("BYOK_SCREENSHOTS_DIR") or str(ROOT / "test-artifacts" / "screenshots")


@pytest.fixture(scope="module")
def page(server, browser) -> Iterator[Page]:
    """A phone's tab signed in as a member with an OpenAI key of her own."""
    context = browser.new_context(**PHONE)
    page = context.new_page()
    rt = open_runtime(server.env, migrate=False)
    try:
        user = accounts.create_user(rt, Actor.operator(), *USER)
        keys.store(rt, Actor.of(user), Owner.user(user.id), Provider.OPENAI, "sk-phone-e2e-0123456789")
        open_signed_in(page, server.url, rt, user)
    finally:
        rt.engine.dispose()
    expect(page.get_by_role("heading", name="Chat", exact=True)).to_be_visible()
    yield page
    context.close()


def fits_the_width(page: Page) -> None:
    width, inner = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    assert width <= inner, f"the page is {width} px wide on a {inner} px screen"


def open_from_menu(page: Page, title: str) -> None:
    page.get_by_test_id("stExpandSidebarButton").click()
    page.get_by_test_id("stSidebarNav").get_by_role("link", name=title, exact=True).click()
    expect(page.get_by_role("heading", name=title, exact=True).first).to_be_visible()
    expect(page.get_by_test_id("stSidebarNav")).to_be_hidden()  # the menu closed itself
    idle(page)
    no_errors(page)


def test_chat_keeps_the_conversation_in_view(page, openai):
    box = page.get_by_test_id("stChatInputTextArea")
    box.fill("Does this fit on a phone?")
    box.press("Enter")
    reply = page.get_by_test_id("stChatMessage").filter(has_text="Streaming works")
    expect(reply).to_contain_text("Paid by your key")
    idle(page)
    question = page.get_by_test_id("stChatMessage").filter(has_text="Does this fit on a phone?")
    assert question.bounding_box()["y"] < 844 / 2, "the controls push the conversation down"
    assert box.bounding_box()["y"] + box.bounding_box()["height"] <= 844
    fits_the_width(page)
    page.screenshot(path=f"{SHOTS}/phone-chat.png")


@pytest.mark.parametrize("title", ["Keys", "Usage"])
def test_pages_fit_a_phone_and_the_menu_closes(page, title):
    open_from_menu(page, title)
    fits_the_width(page)
    page.screenshot(path=f"{SHOTS}/phone-{title.lower()}.png")
