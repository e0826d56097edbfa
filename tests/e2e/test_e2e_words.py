"""Every page, as an admin and as a member, in a real Chromium, over data with every status, payer,
provider and audit action: the visible text never holds a raw enum value, a column name or a
"None". The test reads the page's text, not the code."""

from __future__ import annotations

import pytest
from appserver import running_app
from browser import DESKTOP, chromium, need_chromium, no_errors, settled, sign_in
from callhelpers import PAGES, RAW, seed_every_kind
from playwright.sync_api import Page, expect

from byok_core.runtime import open_runtime

pytestmark = pytest.mark.e2e

ADMIN, MEMBER = ("wendy", "wendy password 1"), ("mia", "mia password 1")


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    need_chromium()
    with running_app(tmp_path_factory.mktemp("e2e-words")) as server:
        rt = open_runtime(server.env)
        try:
            seed_every_kind(rt, ADMIN, MEMBER)
        finally:
            rt.engine.dispose()
        yield server


TEXT_NODES = """() => {
    const walker = document.createTreeWalker(document.querySelector("[data-testid='stAppViewContainer']"),
                                             NodeFilter.SHOW_TEXT);
    const found = [];
    while (walker.nextNode()) found.push(walker.currentNode.nodeValue);
    return found.join("\\n");
}"""


def page_text(page: Page) -> str:
    """Every piece of text in the page, one per line: what is shown, chart axes included (a table's
    cells are drawn on a canvas: tests/test_page_words.py reads those)."""
    return page.evaluate(TEXT_NODES)


@pytest.mark.parametrize("who", ["admin", "member"])
def test_every_page_speaks_plain_words(app, who):
    username, password = ADMIN if who == "admin" else MEMBER
    found: dict[str, list[str]] = {}
    with chromium() as browser:
        page = browser.new_context(viewport=DESKTOP).new_page()
        sign_in(page, app.url, username, password)
        for title in PAGES[who]:
            page.get_by_test_id("stSidebarNav").get_by_role("link", name=title, exact=True).click()
            expect(page.get_by_role("heading", name=title, exact=True).first).to_be_visible()
            settled(page)
            no_errors(page)
            if title == "Chat" and who == "member":  # her conversation with a failed turn
                page.get_by_test_id("stSidebar").get_by_role("button", name="Mixed turns").click()
                settled(page)
            raw = sorted({m.group(0) for m in RAW.finditer(page_text(page))})
            if raw:
                found[title] = raw
    assert not found, f"raw values on screen ({who}): {found}"
