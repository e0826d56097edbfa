"""End to end in a real Chromium: `streamlit run streamlit_app.py` against loopback fake providers.

One small test per feature, on an app of this module's own (first-run setup needs one with no users
yet): first-run setup with the code from the server's console and the session cookie, keys, a
streamed chat reply and a reload that keeps the session, search, usage, admin, role gating by URL,
and sign-out (those two sign in with a session cookie the core made). A first failure does not
hide the rest. Every wait is on the app's own state or a specific element, never a fixed sleep.
Screenshots go to test-artifacts/screenshots/ (BYOK_SCREENSHOTS_DIR=docs/screenshots refreshes the
README's).

    pytest -m e2e tests/e2e          # needs /usr/bin/chromium (or BYOK_E2E_CHROMIUM)
"""

from __future__ import annotations

import pytest
from appserver import running_app, wait_for
from browser import COOKIE, idle, nav, need_chromium, open_signed_in, session_cookie, shot
from callhelpers import log_call
from fakeproviders import FakeProvider
from playwright.sync_api import Page, expect

from byok_core import accounts, keys
from byok_core.identity import Actor, KeySource, Owner, Role
from byok_core.providers import Provider
from byok_core.startup import open_runtime

pytestmark = pytest.mark.e2e

OPENAI_KEY = "sk-e2e-PLAINTEXT-never-shown-9f3c"
PROMPT = "Does streaming work?"
REPLY = "Streaming works: one token after another until the very end."
ADMIN = ("admin", "admin password 1")


@pytest.fixture(scope="module")
def openai():
    """The OpenAI the app calls. A reply stops after its first word until the test sets ``gate``
    (once set, replies run straight through)."""
    with FakeProvider(Provider.OPENAI, reply=REPLY, hold_after=1, models=["gpt-4o-mini", "gpt-4o"]) as fake:
        yield fake


@pytest.fixture(scope="module")
def server(tmp_path_factory, openai):
    need_chromium()
    with FakeProvider(Provider.TAVILY) as tavily, \
            running_app(tmp_path_factory.mktemp("e2e"), **openai.env(), **tavily.env(),
                        TAVILY_API_KEY="tvly-server-key-e2e") as app:
        yield app


@pytest.fixture(scope="module")
def admin(server, browser) -> Page:
    """The first admin, created in the browser with the setup code the server printed: a signed-in page."""
    context = browser.new_context(viewport={"width": 1280, "height": 860})
    page = context.new_page()
    page.goto(server.url)
    expect(page.get_by_text("There are no users yet")).to_be_visible()
    idle(page)
    page.get_by_role("textbox", name="Setup code", exact=True).fill(server.setup_code())
    page.get_by_role("textbox", name="Admin username", exact=True).fill(ADMIN[0])
    page.get_by_role("textbox", name="Password (at least 8 characters)", exact=True).fill(ADMIN[1])
    page.get_by_role("textbox", name="Repeat the password", exact=True).fill(ADMIN[1])
    page.get_by_role("button", name="Create admin").click()
    expect(page.get_by_role("heading", name="Chat", exact=True)).to_be_visible()
    idle(page)
    session_cookie(context)  # a reload or goto() before the cookie request completes would land signed out
    yield page
    context.close()


def test_first_run_signs_the_admin_in_with_an_httponly_cookie(admin):
    cookie = session_cookie(admin.context)
    assert cookie["httpOnly"] and cookie["sameSite"] == "Lax" and cookie["path"] == "/"
    assert "byok_session" not in admin.evaluate("document.cookie")
    assert cookie["value"] not in admin.url


def test_a_saved_key_is_shown_only_as_its_mask(admin):
    nav(admin, "Keys")
    card = admin.locator(".st-key-mykeys_openai_card")
    card.get_by_text("Add key").click()
    card.get_by_role("textbox", name="API key", exact=True).fill(OPENAI_KEY)
    card.get_by_role("textbox", name="Label (optional)", exact=True).fill("e2e")
    card.get_by_role("button", name="Save key").click()
    expect(card.get_by_text("Saved the OpenAI key sk-…9f3c")).to_be_visible()  # next to the button pressed
    idle(admin)
    expect(card.get_by_text("Saved key sk-…9f3c")).to_be_visible()
    assert OPENAI_KEY not in admin.content() and "PLAINTEXT" not in admin.content()
    assert admin.locator(".st-key-mykeys_openai_key input").input_value() == ""
    shot(admin, "keys")


def test_a_reply_streams_says_who_paid_and_survives_a_reload(server, admin, openai):
    rt = open_runtime(server.env, migrate=False)
    try:  # the admin's own OpenAI key (the keys test saves one through the page; this test needs no order)
        me = accounts.get_user(rt, ADMIN[0])
        keys.store(rt, Actor.of(me), Owner.user(me.id), Provider.OPENAI, OPENAI_KEY)
    finally:
        rt.engine.dispose()
    nav(admin, "Chat")
    expect(admin.get_by_role("button", name="OpenAI · gpt-4o-mini")).to_be_visible()  # the pickers' popover
    box = admin.get_by_test_id("stChatInputTextArea")
    box.fill(PROMPT)
    box.press("Enter")
    assistant = admin.get_by_test_id("stChatMessage").filter(has_text="Streaming").filter(has_not_text=PROMPT)
    try:
        # seen part-way: the first word is on screen while the provider still holds back the rest
        expect(assistant).to_be_visible()
        assert "until the very end" not in assistant.inner_text()
    finally:
        openai.gate.set()
    expect(assistant).to_contain_text("until the very end.", timeout=20_000)
    expect(assistant).to_contain_text("Paid by your key")
    idle(admin)
    shot(admin, "chat")
    admin.reload()  # still signed in (the cookie), the conversation kept
    expect(admin.get_by_test_id("stSidebarNav")).to_be_visible()
    expect(admin.get_by_role("button", name=PROMPT)).to_be_visible()
    idle(admin)
    assert admin.get_by_role("textbox", name="Username", exact=True).count() == 0


def test_search_shows_results(admin):
    nav(admin, "Search")
    admin.get_by_role("textbox", name="Query", exact=True).fill("example")
    admin.get_by_role("button", name="Search", exact=True).click()
    expect(admin.get_by_test_id("stDataFrame").first).to_be_visible()
    idle(admin)
    shot(admin, "search")


def test_usage_lists_the_calls(server, admin):
    rt = open_runtime(server.env, migrate=False)
    try:
        log_call(rt, provider=Provider.OPENAI, key_source=KeySource.ENV, model="gpt-4o-mini", input_tokens=12,
                 output_tokens=9, latency_ms=40)
    finally:
        rt.engine.dispose()
    nav(admin, "Usage")
    expect(admin.get_by_text("gpt-4o-mini").first).to_be_visible()
    shot(admin, "usage")


def test_admin_creates_a_member(admin):
    nav(admin, "Admin")
    admin.get_by_role("textbox", name="Username", exact=True).fill("member1")
    admin.get_by_role("textbox", name="Initial password (at least 8 characters)", exact=True).fill("member password 1")
    admin.get_by_role("button", name="Create user").click()
    expect(admin.get_by_text("Created the account member1.")).to_be_visible()
    idle(admin)
    shot(admin, "admin")


def test_admin_sets_the_teams_budget(admin):
    nav(admin, "Budgets")
    admin.get_by_role("textbox", name="USD per month").fill("25")
    admin.get_by_role("button", name="Set budget").click()
    expect(admin.get_by_text("Budget set.")).to_be_visible()
    expect(admin.get_by_test_id("stDataFrame").first).to_be_visible()
    idle(admin)
    shot(admin, "budgets")


def test_a_member_cannot_open_admin_pages_by_url(server, page, rt, admin):
    member = accounts.create_user(rt, Actor.operator(), "member2", "member password 2", Role.MEMBER)
    open_signed_in(page, server.url, rt, member)
    nav_links = page.get_by_test_id("stSidebarNav").inner_text()
    assert "Admin" not in nav_links and "Budgets" not in nav_links
    for path in ("/admin", "/budgets"):
        page.goto(server.url + path)
        expect(page.get_by_test_id("stSidebarNav")).to_be_visible()
        idle(page)
        assert page.get_by_role("heading", name="Admin", exact=True).count() == 0
        assert "admin password" not in page.content() and "Audit log" not in page.content()


def test_sign_out_ends_the_session_and_its_cookie(server, page, rt, admin):
    open_signed_in(page, server.url, rt, accounts.get_user(rt, ADMIN[0]))
    cookie = session_cookie(page.context)
    page.get_by_role("button", name="Sign out").first.click()
    expect(page.get_by_role("button", name="Sign in", exact=True)).to_be_visible()
    idle(page)
    wait_for(lambda: not any(c["name"] == COOKIE for c in page.context.cookies()), 10, "the cookie to go")
    page.reload()
    expect(page.get_by_role("button", name="Sign in", exact=True)).to_be_visible()
    shot(page, "sign-in")
    # and the revoked cookie, replayed, signs nobody in
    page.context.add_cookies([{"name": COOKIE, "value": cookie["value"], "url": server.url}])
    page.goto(server.url + "/keys")
    expect(page.get_by_role("button", name="Sign in", exact=True)).to_be_visible()
