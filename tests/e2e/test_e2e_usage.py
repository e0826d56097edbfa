"""Issue 22 in a real Chromium: Usage answers "what did I spend this month, on what?" and "who spent the
most on the shared keys?" first (desktop at 1366 px and a phone), the first-run checklist after setup,
Search marks providers nobody has a key for before searching, the audit log's filters and CSV, and the
⋮ menu offers members no Record screen nor "Made with Streamlit". On the shared app server
(tests/e2e/conftest.py: its OpenAI and Brave have server keys) set up as the shared one but its
own, so that its figures are its people's alone; the first run has one with no users yet. A member
with no key is told whom to ask."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from pathlib import Path

import pytest
from appserver import RunningApp, running_app
from browser import idle, no_errors, open_signed_in, session_cookie, settled
from callhelpers import log_call
from fakeproviders import FakeProvider
from playwright.sync_api import Page, expect

from byok_core import accounts, budgets, keys
from byok_core.errors import CallStatus
from byok_core.identity import Actor, KeySource, Owner, Role
from byok_core.models import User
from byok_core.providers import Provider
from byok_core.startup import open_runtime

pytestmark = pytest.mark.e2e

LAPTOP = {"width": 1366, "height": 768}
PHONE = {"width": 390, "height": 844}


@pytest.fixture(scope="module")
def server(tmp_path_factory, shared_openai) -> Iterator[RunningApp]:
    """This module's own app server, as the shared one is set up: its figures are its people's
    alone (the calls other modules log on the shared server would add to everyone's spend)."""
    with FakeProvider(Provider.BRAVE) as brave, \
            running_app(tmp_path_factory.mktemp("e2e-usage"), **shared_openai.env(), **brave.env()) as app:
        yield app


@pytest.fixture(scope="module")
def people(server) -> Iterator[dict[str, User]]:
    """An admin and two members of this module; on the shared keys this month uma spent $2.50 and
    ulla $0.000013 (a stopped reply); ulla's own key paid $1."""
    rt = open_runtime(server.env, migrate=False)
    try:
        yield _people(rt)
    finally:
        rt.engine.dispose()


def _people(rt) -> dict[str, User]:
    boss = accounts.create_user(rt, Actor.operator(), "uboss", "uboss password 1", Role.ADMIN)
    uma = accounts.create_user(rt, Actor.operator(), "uma", "uma password 1")
    ulla = accounts.create_user(rt, Actor.operator(), "ulla", "ulla password 1")
    log_call(rt, user_id=uma.id, provider=Provider.OPENAI, model="gpt-4o", key_source=KeySource.TEAM,
             input_tokens=1000, output_tokens=200, latency_ms=900, cost_usd=2.5)
    log_call(rt, user_id=ulla.id, provider=Provider.GOOGLE, model="gemini-2.0-flash-lite", key_source=KeySource.ENV,
             input_tokens=30, output_tokens=4, latency_ms=300, cost_usd=0.000013, status=CallStatus.STOPPED)
    log_call(rt, user_id=ulla.id, provider=Provider.ANTHROPIC, model="claude-sonnet-4-5", key_source=KeySource.USER,
             input_tokens=500, output_tokens=100, latency_ms=1200, cost_usd=1.0)
    return {"admin": boss, "uma": uma, "ulla": ulla}


def open_usage(page: Page, server, rt, user: User) -> None:
    open_signed_in(page, server.url, rt, user, "/usage")
    expect(page.get_by_role("heading", name="Usage", exact=True)).to_be_visible()
    settled(page)
    no_errors(page)


def top(page: Page, locator) -> float:
    box = locator.bounding_box()
    assert box is not None
    return box["y"]


def grid_rows(frame) -> list[list[str]]:
    """A table's rows as its accessible grid lists them (the cells it draws on its canvas, in the columns
    in view: the grid lists only those)."""
    expect(frame.locator("table[role='grid'] tbody tr").first).to_be_attached()
    return frame.locator("table[role='grid'] tbody tr").evaluate_all(
        "rows => rows.map(r => [...r.querySelectorAll('td')].map(c => c.textContent))")


def test_usage_answers_first_on_a_laptop(server, page, rt, people):
    page.set_viewport_size(LAPTOP)
    open_usage(page, server, rt, people["admin"])
    expect(page.get_by_role("radio", name="This month")).to_have_attribute("aria-checked", "true")
    expect(page.get_by_test_id("stMetric").filter(has_text="On shared keys")).to_contain_text("$2.5000")
    expect(page.get_by_test_id("stMetric").filter(has_text="On people's own keys")).to_contain_text("$1.0000")
    by_person = page.get_by_text("Shared-key spend by person", exact=True)
    assert top(page, by_person) < top(page, page.get_by_role("heading", name="Filters")) < top(
        page, page.get_by_role("tab", name="Per day"))
    # the first table: the shared keys' spenders, highest first; ulla's tiny spend is kept as the number
    # (the grid lists the values underneath: the canvas writes it $0.000013, tests/test_usage_pages.py)
    first = page.get_by_test_id("stDataFrame").first
    rows = grid_rows(first)
    assert [r[0] for r in rows[:2]] == ["uma", "ulla"] and rows[1][2] == "0.000013", rows
    # the calls table shows Cost without scrolling sideways (its grid lists the columns in view)
    calls = page.get_by_test_id("stDataFrame").last
    calls.scroll_into_view_if_needed()
    headers = calls.locator("table[role='grid'] th")
    expect(headers.filter(has_text="Cost")).to_have_count(1)
    assert headers.all_inner_texts()[:7] == ["Time (UTC)", "User", "Provider", "Model", "Paid by", "Status",
                                             "Cost (USD)"]
    statuses = {r[5]: r[6] for r in grid_rows(calls)}
    assert statuses["Stopped"] == "0.000013"  # a stopped reply reads as the chat says it


def test_on_a_phone_the_money_comes_before_the_filters(server, page, rt, people):
    page.set_viewport_size(PHONE)
    open_usage(page, server, rt, people["ulla"])
    own = page.get_by_test_id("stMetric").filter(has_text="On your own keys")
    expect(own).to_contain_text("$1.0000")
    expect(page.get_by_test_id("stMetric").filter(has_text="On shared keys")).to_contain_text("$0.000013")
    assert top(page, own) < top(page, page.get_by_text("Period", exact=True)) < top(
        page, page.get_by_text("Provider", exact=True).first)
    assert top(page, own) + 100 < PHONE["height"]  # on the first screen
    expect(page.get_by_text("Shared-key spend by person")).to_have_count(0)  # admins only


@pytest.fixture(scope="module")
def fresh(tmp_path_factory) -> Iterator[RunningApp]:
    """A server with no users yet: first-run setup."""
    with running_app(tmp_path_factory.mktemp("e2e-first-run")) as app:
        yield app


def test_after_setup_a_checklist_guides_the_admin_until_dismissed(fresh, page):
    page.goto(fresh.url)
    expect(page.get_by_text("There are no users yet")).to_be_visible()
    idle(page)
    page.get_by_role("textbox", name="Setup code", exact=True).fill(fresh.setup_code())
    page.get_by_role("textbox", name="Admin username", exact=True).fill("first")
    page.get_by_role("textbox", name="Password (at least 8 characters)", exact=True).fill("first password 1")
    page.get_by_role("textbox", name="Repeat the password", exact=True).fill("first password 1")
    page.get_by_role("button", name="Create admin").click()
    checklist = page.locator(".st-key-first_run_checklist")
    expect(checklist.get_by_text("Get your team started")).to_be_visible()
    idle(page)
    session_cookie(page.context)
    for step in ("Add a key that pays for calls", "Invite members", "Set a monthly budget"):
        expect(checklist.get_by_text(step)).to_be_visible()
    checklist.get_by_role("link", name="Budgets").click()  # each step links to its page
    expect(page.get_by_role("heading", name="Budgets", exact=True)).to_be_visible()
    idle(page)
    page.locator(".st-key-first_run_checklist").get_by_role("button", name="Dismiss").click()
    expect(page.locator(".st-key-first_run_checklist")).to_have_count(0)
    page.reload()  # kept by the server, not the tab
    expect(page.get_by_role("heading", name="Budgets", exact=True)).to_be_visible()
    idle(page)
    expect(page.locator(".st-key-first_run_checklist")).to_have_count(0)
    no_errors(page)


def test_a_member_with_no_key_is_told_whom_to_ask(server, page, rt, people):
    """No key of her own and no team key for the chat's provider: the Chat page names the admin to ask."""
    open_signed_in(page, server.url, rt, people["ulla"])  # the Chat page
    said = page.get_by_text("No key for OpenAI yet")
    expect(said).to_contain_text("add your own on the Keys page")
    expect(said).to_contain_text("uboss")
    expect(page.get_by_role("link", name="Add a key on the Keys page")).to_be_visible()
    no_errors(page)


def test_search_marks_providers_nobody_has_a_key_for(server, page, rt, people):
    keys.store(rt, Actor.of(people["uma"]), Owner.user(people["uma"].id), Provider.TAVILY, "tvly-uma-key-0123456789")
    open_signed_in(page, server.url, rt, people["uma"], "/search")
    expect(page.get_by_role("heading", name="Search", exact=True)).to_be_visible()
    idle(page)
    pills = page.get_by_test_id("stButtonGroup")
    expect(pills.get_by_text("Tavily", exact=True)).to_be_visible()  # her own key
    expect(pills.get_by_text("Serper (no key)", exact=True)).to_be_visible()
    said = page.get_by_text("No key for")
    expect(said).to_contain_text("Firecrawl")
    expect(said).to_contain_text("uboss")  # whom to ask, before any search
    expect(page.get_by_test_id("stDataFrame")).to_have_count(0)
    no_errors(page)


def test_the_audit_log_filters_and_exports(server, page, rt, people):
    keys.store(rt, Actor.of(people["admin"]), Owner.user(people["admin"].id), Provider.TAVILY,
               "tvly-uboss-key-0123456789")
    budgets.set_budget(rt, Actor.of(people["admin"]), Owner.user(people["uma"].id), 7)
    open_signed_in(page, server.url, rt, people["admin"], "/admin")
    page.get_by_role("tab", name="Audit log").click()
    idle(page)
    who = page.get_by_test_id("stMultiSelect").filter(has_text="Who")
    who.click()
    who.locator("input").fill("uboss")  # the list shows the first names only
    page.get_by_role("option", name="uboss", exact=True).click()
    page.keyboard.press("Escape")
    idle(page)
    expect(page.get_by_text("2 events, newest first")).to_be_visible()
    log = page.get_by_test_id("stDataFrame").filter(has=page.locator("th", has_text="What happened"))
    expect(log.locator("table[role='grid'] tbody tr")).to_have_count(2)  # the table drawn for the filter
    said = [r[1] for r in grid_rows(log)]
    assert said == ["uboss set uma's budget on shared keys to $7.00 a month",
                    "uboss saved their own Tavily key tvl…6789"]
    with page.expect_download() as download:
        page.get_by_role("button", name="Download CSV").click()
    rows = list(csv.DictReader(io.StringIO(Path(download.value.path()).read_text())))
    assert {r["actor"] for r in rows} == {"uboss"} and {r["action"] for r in rows} == {"key.store", "budget.set"}
    assert any("Tavily" in r["what_happened"] for r in rows) and "tvly-uboss" not in str(rows)
    no_errors(page)


def test_the_menu_offers_members_no_record_screen(server, page, rt, people):
    open_signed_in(page, server.url, rt, people["uma"], "/usage")
    idle(page)
    page.get_by_test_id("stMainMenu").click()
    menu = page.get_by_test_id("stMainMenuPopover")
    expect(menu.get_by_test_id("stMainMenuItem-theme-Dark")).to_be_visible()  # the theme's choices stay
    expect(menu.get_by_role("menuitem", name="About")).to_be_visible()  # the app's own words
    for gone in ("Record screen", "Print", "Settings", "Made with Streamlit"):
        expect(menu.get_by_text(gone)).not_to_be_visible()
    menu.get_by_role("menuitem", name="About").click()
    expect(page.get_by_role("dialog")).to_contain_text("BYOK Dashboard")
    expect(page.get_by_role("dialog").get_by_text("Made with Streamlit")).to_have_count(0)
    no_errors(page)

