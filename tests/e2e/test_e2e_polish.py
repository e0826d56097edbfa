"""Issue 22, item 8 (words and polish) in a real Chromium: what the admin pages say names people as
written (no Python quotes), a webhook URL's error says webhook, a budget of 1e400 is refused as too
large, a title over 200 characters is shortened and says so, a title with Markdown characters shows
them as typed (no backslash); and (item 2) Usage's Cost column sorts by amount. The ⋮ menu
(tests/e2e/test_e2e_usage.py), "Stopped" under a stopped reply (tests/e2e/test_e2e_chat.py) and money
written alike (tests/test_usage_pages.py) are tested where their screens are. On the shared app
server (tests/e2e/conftest.py)."""

from __future__ import annotations

import contextlib
import re
import secrets

import chatpage
import pytest
from browser import idle, no_errors, open_signed_in, settled
from callhelpers import log_call
from playwright.sync_api import Page, expect
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

from byok_core import accounts
from byok_core import conversations as convs
from byok_core.identity import Actor, KeySource, Role
from byok_core.providers import Provider

pytestmark = pytest.mark.e2e
person = chatpage.person  # a member with an OpenAI key of their own, on the Chat page


def admin(rt):
    return accounts.create_user(rt, Actor.operator(), f"polish-{secrets.token_hex(3)}", "polish password 1",
                                Role.ADMIN)


def test_admin_messages_name_people_without_python_quotes(server, page, rt):
    name = f"carol-{secrets.token_hex(3)}"
    open_signed_in(page, server.url, rt, admin(rt), "/admin")
    expect(page.get_by_role("heading", name="Admin", exact=True)).to_be_visible()
    idle(page)
    page.get_by_role("textbox", name="Username", exact=True).fill(name)
    page.get_by_role("textbox", name="Initial password (at least 8 characters)").fill("carol password 1")
    page.get_by_role("button", name="Create user").click()
    expect(page.get_by_text(f"Created the account {name}.", exact=True)).to_be_visible()
    assert f"'{name}'" not in page.content()
    no_errors(page)


def open_budgets(page: Page, server, rt) -> None:
    open_signed_in(page, server.url, rt, admin(rt), "/budgets")
    expect(page.get_by_role("heading", name="Budgets", exact=True).first).to_be_visible()
    idle(page)


def error(page: Page):
    return page.get_by_test_id("stAlertContentError").get_by_role("paragraph")


def test_a_webhook_urls_error_says_webhook(server, page, rt):
    open_budgets(page, server, rt)
    page.get_by_role("tab", name="Alerts", exact=True).click()
    page.get_by_label("Webhook URL").fill("http://169.254.169.254/latest")
    page.get_by_role("button", name="Save webhook").click()
    expect(error(page)).to_have_text("That webhook URL points at a cloud metadata service, which is never allowed.")
    expect(page.get_by_text("base URL")).to_have_count(0)
    no_errors(page)


def test_a_budget_of_1e400_is_too_large(server, page, rt):
    open_budgets(page, server, rt)
    amount = page.get_by_role("textbox", name="USD per month")
    amount.fill("1e400")
    amount.press("Tab")
    idle(page)
    page.get_by_role("button", name="Set budget").click()
    expect(error(page)).to_have_text(
        "That budget is too large: a monthly budget is at most $999,999,999.99.")
    expect(amount).to_have_value("1e400")  # what was typed stays, to be corrected
    no_errors(page)


def rename(page: Page, title: str) -> None:
    page.get_by_role("button", name="Conversation").click()
    field = page.get_by_role("textbox", name="Title")
    field.fill(title)
    field.press("Enter")


def test_a_long_title_says_it_was_shortened_and_markdown_shows_as_typed(person, rt):
    page, user = person
    typed = r"Costs *per* call_in_[EUR] #2 \ 1"
    notes = convs.create(rt, user.id, typed)
    page.goto(f"{page.url.split('?')[0]}?c={notes.id}")
    heading = page.get_by_role("heading", level=1)
    expect(heading).to_have_text(typed)  # as typed: no backslash added, no italics, no link
    expect(page.get_by_test_id("stSidebar").get_by_role("button", name=typed)).to_have_count(1)
    idle(page)
    rename(page, "a" * 250)
    expect(page.get_by_text("Titles can be at most 200 characters, so this one was shortened.")).to_be_visible()
    expect(heading).to_have_text("a" * 199 + "…")
    assert convs.get(rt, user.id, notes.id).title == "a" * 199 + "…"
    idle(page)
    no_errors(page)


def test_the_cost_column_sorts_by_amount(server, page, rt):
    """Clicking the Cost heading orders the calls by what they cost: $2.50 before $10 (as text, "$10"
    would come first), an unknown cost lowest."""
    member = accounts.create_user(rt, Actor.operator(), f"sorter-{secrets.token_hex(3)}", "sorter password 1")
    for cost in (2.5, None, 10.0):
        log_call(rt, user_id=member.id, provider=Provider.OPENAI, model="gpt-4o", key_source=KeySource.USER,
                 latency_ms=5, cost_usd=cost)
    open_signed_in(page, server.url, rt, member, "/usage")
    expect(page.get_by_role("heading", name="Usage", exact=True)).to_be_visible()
    settled(page)
    calls = page.get_by_test_id("stDataFrame").last
    calls.scroll_into_view_if_needed()
    headings = calls.locator("table[role='grid'] th")
    box = calls.bounding_box()
    assert box is not None
    cost = int(headings.filter(has_text="Cost (USD)").get_attribute("aria-colindex") or 0)
    x, clicks = box["x"] + 10, 0
    while not headings.filter(has_text="↑ Cost (USD)").count() and clicks < 60:
        # the headings are drawn on a canvas: click along them until Cost's is sorted (a click on a
        # heading sorts by it, then the other way, then not, as its grid's heading text says; a click
        # on the edge between two headings, or taken as a double click, sorts nothing). The heading
        # sorted says where the click was: go on towards Cost's, or stay on it (a slow redraw can
        # show a click's sort only after the next click)
        before = headings.all_inner_texts()
        page.mouse.click(x, box["y"] + 15)
        clicks += 1
        with contextlib.suppress(PlaywrightTimeoutError):
            page.wait_for_function(
                "([frame, before]) => [...frame.querySelectorAll(\"table[role='grid'] th\")]"
                ".map(c => c.innerText).join() !== before.join()", arg=[calls.element_handle(), before],
                timeout=1_500)
        sorted_ = headings.filter(has_text=re.compile("^[↑↓] "))
        at = int(sorted_.first.get_attribute("aria-colindex") or 0) if sorted_.count() else 0
        x += 0 if at == cost else -30 if at > cost else 30
    expect(headings.filter(has_text="Cost (USD)")).to_have_text("↑ Cost (USD)")
    costs = calls.locator("table[role='grid'] tbody tr").evaluate_all(
        "rows => rows.map(r => r.querySelectorAll('td')[6].textContent)")
    assert [float(c) for c in costs] == [float("-inf"), 2.5, 10.0], costs
    no_errors(page)
