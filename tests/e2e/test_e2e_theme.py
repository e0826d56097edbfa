"""Dark mode in a real Chromium: the app follows the browser's light or dark setting on every page,
and a person can choose System, Light or Dark in the ⋮ menu. On the shared app server
(tests/e2e/conftest.py). Dark screenshots go where the other browser tests put theirs."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator

import pytest
from appserver import ROOT
from browser import DESKTOP, idle, nav, no_errors, open_signed_in, settled
from playwright.sync_api import Page, expect

from byok_core import accounts, keys
from byok_core.identity import Actor, Owner, Role
from byok_core.providers import Provider

pytestmark = pytest.mark.e2e

SHOTS = os.environ.get("BYOK_SCREENSHOTS_DIR") or str(ROOT / "test-artifacts" / "screenshots")
PAGES = ("Chat", "Search", "Keys", "Usage", "Budgets", "Admin", "Account")
BACKGROUND = "getComputedStyle(document.querySelector(\"[data-testid='stApp']\")).backgroundColor"


def luminance(page: Page) -> float:
    """The app's background lightness, 0 (black) to 1 (white)."""
    red, green, blue = (int(v) for v in page.evaluate(BACKGROUND).removeprefix("rgb(").rstrip(")").split(",")[:3])
    return (0.2126 * red + 0.7152 * green + 0.0722 * blue) / 255


def admin(rt):
    user = accounts.create_user(rt, Actor.operator(), f"theme-{secrets.token_hex(4)}", "admin password 1", Role.ADMIN)
    keys.store(rt, Actor.of(user), Owner.user(user.id), Provider.OPENAI, "sk-theme-e2e-0123456789")
    return user


@pytest.fixture
def dark_page(browser, server, rt) -> Iterator[Page]:
    """An admin's tab in a browser set to dark."""
    context = browser.new_context(viewport=DESKTOP, color_scheme="dark")
    page = context.new_page()
    open_signed_in(page, server.url, rt, admin(rt))
    yield page
    context.close()


def test_every_page_is_dark_in_a_dark_browser(dark_page):
    for title in PAGES:
        nav(dark_page, title)
        assert luminance(dark_page) < 0.2, f"{title} is not dark"
        expect(dark_page.get_by_role("heading", name=title, exact=True).first).to_be_visible()
        if title in ("Chat", "Usage"):
            if title == "Chat":
                expect(dark_page.get_by_test_id("stChatInputTextArea")).to_be_visible()  # drawn, not a placeholder
            settled(dark_page)
            os.makedirs(SHOTS, exist_ok=True)
            dark_page.screenshot(path=os.path.join(SHOTS, f"dark-{title.lower()}.png"))
    no_errors(dark_page)


def test_a_person_chooses_dark_in_the_menu_and_it_stays(page, server, rt):
    open_signed_in(page, server.url, rt, admin(rt))
    assert luminance(page) > 0.8  # the browser's light setting
    page.get_by_test_id("stMainMenu").click()
    page.get_by_test_id("stMainMenuItem-theme-Dark").click()
    expect(page.get_by_test_id("stApp")).to_have_css("background-color", "rgb(23, 22, 20)")
    page.reload()  # kept in the browser
    idle(page)
    assert luminance(page) < 0.2
    nav(page, "Keys")
    assert luminance(page) < 0.2
    no_errors(page)
