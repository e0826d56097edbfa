"""Every page, as an admin and as a member, in a real Chromium, over data with every status, payer,
provider and audit action: the visible text never holds a raw enum value, a column name or a
"None". The test reads the page's text, not the code: what the browser draws from what the app sent,
chart axes included, which tests/test_page_words.py (AppTest) cannot see. On the shared app server
(tests/e2e/conftest.py), whose other modules' data is shown too; the first-run checklist on a server
of its own, whose admin has done nothing yet."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from appserver import RunningApp, running_app
from browser import no_errors, open_signed_in, settled
from callhelpers import PAGES, RAW, seed_every_kind
from playwright.sync_api import Page, expect

from byok_core import accounts, limits
from byok_core.identity import Actor, Role
from byok_core.models import User
from byok_core.startup import open_runtime

pytestmark = pytest.mark.e2e

ADMIN, MEMBER = ("wendy", "wendy password 1"), ("mia", "mia password 1")


@pytest.fixture(scope="module")
def people(server) -> dict[str, User]:
    """Every kind of value seeded on the shared app server; its admin and member."""
    rt = open_runtime(server.env, migrate=False)
    try:
        seed_every_kind(rt, ADMIN, MEMBER)
        mia = accounts.get_user(rt, MEMBER[0])
        limits.set_person_limit(rt, Actor.operator(), mia.id, 0)  # Budgets: the table of people's own limits
        return {"admin": accounts.get_user(rt, ADMIN[0]), "member": mia}
    finally:
        rt.engine.dispose()


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
def test_every_page_speaks_plain_words(server, page, rt, people, who):
    found: dict[str, list[str]] = {}
    open_signed_in(page, server.url, rt, people[who])
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


@pytest.mark.parametrize("who", ["admin", "member"])
def test_the_usage_periods_search_marks_audit_filters_and_menu_speak_plain_words(server, page, rt, people, who):
    """Issue 22's screens in Chromium: Usage over last month and this one, Search with providers marked
    as having no key, the audit log narrowed by who, and the ⋮ menu's About."""
    found: dict[str, list[str]] = {}

    def check(where: str) -> None:
        settled(page)
        no_errors(page)
        raw = sorted({m.group(0) for m in RAW.finditer(page_text(page))})
        if raw:
            found[where] = raw

    open_signed_in(page, server.url, rt, people[who], "/usage")
    for period in ("Last month", "This month"):
        page.get_by_role("radio", name=period).click()
        check(f"Usage, {period}")
    page.get_by_test_id("stSidebarNav").get_by_role("link", name="Search", exact=True).click()
    expect(page.get_by_text("(no key)").first).to_be_visible()
    check("Search")
    if who == "admin":
        page.get_by_test_id("stSidebarNav").get_by_role("link", name="Admin", exact=True).click()
        page.get_by_role("tab", name="Audit log").click()
        page.get_by_test_id("stMultiSelect").filter(has_text="Who").click()
        page.get_by_test_id("stMultiSelect").filter(has_text="Who").locator("input").fill("operator")
        page.get_by_role("option", name="An operator (command line)").click()
        page.keyboard.press("Escape")
        check("Admin, audit log")
    page.get_by_test_id("stMainMenu").click()
    page.get_by_role("menuitem", name="About").click()
    expect(page.get_by_role("dialog")).to_be_visible()
    check("About")
    assert not found, f"raw values on screen ({who}): {found}"


@pytest.fixture(scope="module")
def first_run(tmp_path_factory) -> Iterator[RunningApp]:
    """A server whose one admin has done nothing yet: the first-run checklist shows on every page."""
    with running_app(tmp_path_factory.mktemp("e2e-words-first-run")) as app:
        yield app


def test_the_first_run_checklist_speaks_plain_words(first_run, page):
    rt = open_runtime(first_run.env, migrate=False)
    try:
        root = accounts.create_user(rt, Actor.operator(), "root", "root password 1", Role.ADMIN)
        found: dict[str, list[str]] = {}
        open_signed_in(page, first_run.url, rt, root)
        for title in PAGES["admin"]:
            page.get_by_test_id("stSidebarNav").get_by_role("link", name=title, exact=True).click()
            expect(page.get_by_role("heading", name=title, exact=True).first).to_be_visible()
            expect(page.locator(".st-key-first_run_checklist").get_by_text("Get your team started")).to_be_visible()
            settled(page)
            no_errors(page)
            raw = sorted({m.group(0) for m in RAW.finditer(page_text(page))})
            if raw:
                found[title] = raw
        assert not found, f"raw values on screen: {found}"
    finally:
        rt.engine.dispose()
