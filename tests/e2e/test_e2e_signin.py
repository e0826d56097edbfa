"""End to end in a real Chromium: signing in (issue 11). A username in other capitals signs in to
the same account; a page opened by URL while signed out shows sign-in and then that very page; a
member who opens an admin page reads one sentence instead of Streamlit's "Page not found" pop-up;
every tab has its page's title; a deep link opens its page even when the server is slow;
and loading the app asks nothing of any host but the app's own
(the favicon is local). On the shared app server (tests/e2e/conftest.py); the tests about signing in
use the form, the rest a session cookie.

    pytest -m e2e tests/e2e/test_e2e_signin.py     # needs /usr/bin/chromium (or BYOK_E2E_CHROMIUM)
"""

from __future__ import annotations

import sys
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from appserver import running_app
from browser import idle, nav, no_errors, open_signed_in, session_cookie, sign_in, sign_in_by_cookie
from playwright.sync_api import Page, expect

from byok_core import accounts
from byok_core.identity import Actor, Role
from byok_core.models import User
from byok_core.startup import open_runtime

pytestmark = pytest.mark.e2e

ADMIN = ("boss", "boss password 1")
MEMBER = ("bob", "bob password 1")
NOT_FOUND = "Page not found"
HERE = Path(__file__).resolve().parent


@pytest.fixture(scope="module", autouse=True)
def people(server) -> dict[str, User]:
    """The module's admin and member on the shared app server, by username."""
    rt = open_runtime(server.env, migrate=False)
    try:
        return {ADMIN[0]: accounts.create_user(rt, Actor.operator(), *ADMIN, Role.ADMIN),
                MEMBER[0]: accounts.create_user(rt, Actor.operator(), *MEMBER)}
    finally:
        rt.engine.dispose()


def fill_sign_in(page: Page, username: str, password: str) -> None:
    page.get_by_role("textbox", name="Username", exact=True).fill(username)
    page.get_by_role("textbox", name="Password", exact=True).fill(password)
    page.get_by_role("button", name="Sign in", exact=True).click()


def test_a_username_in_other_capitals_signs_in_to_the_same_account(server, page):
    sign_in(page, server.url, MEMBER[0].upper(), MEMBER[1])  # "BOB"
    expect(page.get_by_test_id("stSidebar").get_by_text("Signed in as bob (member)")).to_be_visible()
    no_errors(page)


def test_a_signed_out_deep_link_signs_in_to_that_page(server, page):
    page.goto(server.url + "/keys")
    expect(page.get_by_role("textbox", name="Username", exact=True)).to_be_visible()
    idle(page)
    expect(page).to_have_title("Sign in · BYOK Dashboard")
    expect(page.get_by_text("Forgot your password? Ask an admin to reset it.")).to_be_visible()
    assert page.get_by_text(NOT_FOUND).count() == 0

    fill_sign_in(page, *MEMBER)
    expect(page.get_by_role("heading", name="Keys", exact=True)).to_be_visible()
    idle(page)
    assert urlsplit(page.url).path == "/keys"
    expect(page).to_have_title("Keys · BYOK Dashboard")
    assert page.get_by_text(NOT_FOUND).count() == 0
    no_errors(page)
    session_cookie(page.context)
    page.reload()  # the cookie keeps the page and the session
    expect(page.get_by_role("heading", name="Keys", exact=True)).to_be_visible()


def test_a_member_opening_an_admin_page_reads_one_sentence(server, page, rt, people):
    sign_in_by_cookie(page.context, server.url, rt, people[MEMBER[0]])
    for path, title in (("/admin", "Admin"), ("/budgets", "Budgets")):
        page.goto(server.url + path)
        expect(page.get_by_text(f"Only admins can open the {title} page; ask an admin if you need something "
                                "there.")).to_be_visible()
        idle(page)
        assert page.get_by_text(NOT_FOUND).count() == 0
        assert page.get_by_role("heading", name=title, exact=True).count() == 0
        assert "Audit log" not in page.content()
        nav_links = page.get_by_test_id("stSidebarNav").inner_text()
        assert "Admin" not in nav_links and "Budgets" not in nav_links
        no_errors(page)


def test_every_tab_is_titled_after_its_page(server, page, rt, people):
    open_signed_in(page, server.url, rt, people[ADMIN[0]])
    expect(page).to_have_title("Chat · BYOK Dashboard")
    for title in ("Search", "Keys", "Usage", "Account", "Admin", "Budgets", "Chat"):
        nav(page, title)
        expect(page).to_have_title(f"{title} · BYOK Dashboard")


def test_no_request_leaves_the_app_while_it_loads(server, page):
    requested: list[str] = []
    page.context.on("request", record := lambda request: requested.append(request.url))
    try:
        page.goto(server.url + "/usage")  # signed out: sign-in, then the page asked for
        expect(page.get_by_role("textbox", name="Username", exact=True)).to_be_visible()
        idle(page)
        fill_sign_in(page, *ADMIN)
        expect(page.get_by_role("heading", name="Usage", exact=True)).to_be_visible()
        idle(page)
        nav(page, "Admin")
        nav(page, "Chat")
    finally:
        page.context.remove_listener("request", record)
    favicon = page.locator("link[rel~='icon']").first.get_attribute("href") or ""
    assert favicon.startswith("data:image/svg+xml"), favicon  # the app's own icon, inline
    elsewhere = sorted({u for u in requested if urlsplit(u).scheme in ("http", "https", "ws", "wss")
                        and urlsplit(u).hostname != "127.0.0.1"})
    assert requested and elsewhere == []


@pytest.mark.parametrize("signed_in, address", [(True, "/chta"), (False, "/chta"), (True, "/keys/extra")])
def test_an_unknown_address_says_so_in_a_sentence_instead_of_a_pop_up(server, page, rt, people, signed_in,
                                                                     address):
    if signed_in:
        sign_in_by_cookie(page.context, server.url, rt, people[MEMBER[0]])
    page.goto(server.url + address)  # a typo of /chat; a page's address with more after it
    expect(page.get_by_text(f"There is no page at {address}", exact=False)).to_be_visible()
    idle(page)
    assert page.get_by_text(NOT_FOUND).count() == 0
    assert urlsplit(page.url).path == "/"
    if signed_in:
        expect(page.get_by_role("heading", name="Chat", exact=True)).to_be_visible()
    else:
        expect(page.get_by_role("textbox", name="Username", exact=True)).to_be_visible()
    no_errors(page)
    page.reload()  # said once: the address no longer carries it
    idle(page)
    assert page.get_by_text("There is no page at").count() == 0


def test_chat_s_own_address_opens_chat(server, page, rt, people):
    sign_in_by_cookie(page.context, server.url, rt, people[MEMBER[0]])
    page.goto(server.url + "/chat")  # Streamlit serves the first page at / only
    expect(page.get_by_role("heading", name="Chat", exact=True)).to_be_visible()
    idle(page)
    assert page.get_by_text(NOT_FOUND).count() == 0 and page.get_by_text("There is no page").count() == 0
    assert urlsplit(page.url).path == "/"


def test_a_deep_link_opens_its_page_on_a_busy_server(tmp_path, page):
    """The browser's sign-in answer can rerun the script before the first run said which page it
    shows (tests/e2e/slow_sign_in.py makes the server that slow): the address still opens its page."""
    with running_app(tmp_path, python=(sys.executable, str(HERE / "slow_sign_in.py"))) as app:
        rt = open_runtime(app.env, migrate=False)
        try:
            member = accounts.create_user(rt, Actor.operator(), *MEMBER)
            sign_in_by_cookie(page.context, app.url, rt, member)
            page.goto(app.url + "/keys")
            expect(page.get_by_role("heading", name="Keys", exact=True)).to_be_visible()
            page.goto(app.url + "/admin")
            expect(page.get_by_text("Only admins can open the Admin page; ask an admin if you need something "
                                    "there.")).to_be_visible()
            idle(page)
            assert urlsplit(page.url).path == "/admin"
        finally:
            rt.engine.dispose()


def _mark_tabs(page: Page) -> None:
    page.get_by_test_id("stTabs").evaluate("tabs => { tabs.byokMark = true; }")


def _tabs_marked(page: Page) -> bool:
    """Whether the tabs on the page are the same element as when ``_mark_tabs`` ran (not made anew)."""
    return page.get_by_test_id("stTabs").evaluate("tabs => tabs.byokMark === true")


def test_the_page_keeps_its_place_over_the_runs_after_a_cookie_sign_in(tmp_path, page):
    """The run that adopts the cookie draws the browser's sign-in probe and later runs do not: the page
    keeps its place all the same. Had it moved, the browser would make its elements anew on a busy
    server, and an open tab would fall back to the first (seen in CI: Admin's Audit log tab, open, lost
    at the first filter)."""
    with running_app(tmp_path, python=(sys.executable, str(HERE / "slow_tabs.py"))) as app:
        rt = open_runtime(app.env, migrate=False)
        try:
            admin = accounts.create_user(rt, Actor.operator(), *ADMIN, Role.ADMIN)
            open_signed_in(page, app.url, rt, admin, "/admin")
            _mark_tabs(page)
            page.get_by_role("tab", name="Audit log").click()
            what = page.get_by_test_id("stMultiSelect").filter(has_text="What")
            what.click()
            what.locator("input").fill("Set a budget")
            page.get_by_role("option", name="Set a budget", exact=True).click()
            page.keyboard.press("Escape")
            expect(page.get_by_text("No events with these filters.")).to_be_visible()
            idle(page)
            assert _tabs_marked(page)
            expect(page.get_by_role("tab", name="Audit log")).to_have_attribute("aria-selected", "true")
            no_errors(page)
        finally:
            rt.engine.dispose()
