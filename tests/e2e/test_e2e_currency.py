"""Issue 24 (3) in a real Chromium: an admin sets the team's display currency to EUR on the Budgets
page (its own tab stays open), types a budget in euros, and from then on the Budgets page, the line
under a Chat reply, the Usage page, a search and the caps on the Keys page show € amounts, with no "$" for
converted money (prices that providers set stay in USD, and say so).

On an app server of its own: the shared one's other modules expect dollars. Its tests run in order
(the first sets the currency in the browser; the others set it too when run alone)."""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator

import pytest
from appserver import RunningApp, running_app
from browser import idle, no_errors, open_signed_in, settled
from callhelpers import log_call
from chatpage import main, replies, send
from fakeproviders import FakeProvider
from playwright.sync_api import Locator, Page, expect
from wsclient import live_reply

from byok_core import accounts, budgets, currency, keys
from byok_core.identity import Actor, KeySource, Owner, Role
from byok_core.models import User
from byok_core.providers import Provider
from byok_core.startup import open_runtime

pytestmark = pytest.mark.e2e

OP = Actor.operator()
DOLLARS = re.compile(r"\$\s?\d")  # an amount written in dollars


@pytest.fixture(scope="module")
def server(tmp_path_factory, shared_openai) -> Iterator[RunningApp]:
    with FakeProvider(Provider.BRAVE) as brave, \
            running_app(tmp_path_factory.mktemp("e2e-currency"), **shared_openai.env(), **brave.env()) as app:
        yield app


@pytest.fixture(scope="module")
def people(server) -> Iterator[dict[str, User]]:
    """An admin and a member with her own OpenAI key; this month she spent $2.50 on the team's key."""
    rt = open_runtime(server.env, migrate=False)
    try:
        boss = accounts.create_user(rt, OP, "cboss", "cboss password 1", Role.ADMIN)
        cara = accounts.create_user(rt, OP, "cara", "cara password 1")
        keys.store(rt, Actor.of(cara), Owner.user(cara.id), Provider.OPENAI, "sk-e2e-cara-currency-0123456789")
        log_call(rt, user_id=cara.id, provider=Provider.OPENAI, model="gpt-4o", key_source=KeySource.TEAM,
                 input_tokens=1000, output_tokens=200, latency_ms=900, cost_usd=2.5)
        yield {"admin": boss, "cara": cara}
    finally:
        rt.engine.dispose()


@pytest.fixture
def in_euros(rt, people) -> None:
    """EUR at 0.92 and a team budget of €20, as the first test sets them in the browser."""
    if currency.current(rt).code != "EUR":
        eur = currency.set_display(rt, OP, "EUR", "0.92")
        budgets.set_budget(rt, OP, Owner.team(), "20", eur)


def selected(page: Page, name: str) -> None:
    expect(page.get_by_role("tab", name=name, exact=True)).to_have_attribute("aria-selected", "true")


def grid_cells(frame: Locator) -> list[str]:
    """Every cell of a table as its accessible grid lists it."""
    expect(frame.locator("table[role='grid'] tbody tr").first).to_be_attached()
    return frame.locator("table[role='grid'] tbody td").all_inner_texts()


def test_an_admin_sets_euros_and_the_budgets_page_shows_them(server, page, rt, people):
    open_signed_in(page, server.url, rt, people["admin"], "/budgets")
    page.get_by_role("tab", name="Currency", exact=True).click()
    page.get_by_role("combobox", name="Currency").click()
    page.keyboard.type("EUR")
    page.keyboard.press("Enter")
    rate = page.get_by_role("textbox", name="What 1 USD buys of it")
    expect(rate).to_have_value("")  # the run the choice made has emptied the rate (typed before it, it is lost)
    rate.fill("0.92")
    rate.press("Enter")
    idle(page)
    page.get_by_role("button", name="Set currency").click()
    expect(page.get_by_text("Currency set.")).to_be_visible()
    selected(page, "Currency")  # the tab acted in stays open
    assert currency.current(rt).rate_text == "1 USD = 0.92 EUR"
    page.get_by_role("tab", name="Budgets", exact=True).click()
    amount = page.get_by_role("textbox", name="EUR per month")
    amount.fill("20")
    amount.press("Enter")
    idle(page)
    page.get_by_role("button", name="Set budget").click()
    expect(page.get_by_text("Budget set.")).to_be_visible()
    assert budgets.budget_of(rt, Owner.team()) == pytest.approx(20 / 0.92)
    report = page.get_by_test_id("stDataFrame").first
    for heading in ("Monthly budget (EUR)", "Spent this month (EUR)", "Left (EUR)"):  # numbers under, so they sort
        expect(report.locator("table[role='grid'] th").filter(has_text=heading)).to_have_count(1)
    cells = grid_cells(report)
    assert "20" in cells and "2.3" in cells and "17.7" in cells, cells  # €20.00 and €2.30 as the grid holds them
    assert not [c for c in cells if DOLLARS.search(c)], cells
    # prices that providers set stay in dollars and say so
    page.get_by_role("tab", name="Prices", exact=True).click()
    expect(page.get_by_role("spinbutton", name="USD per call")).to_be_visible()
    no_errors(page)


def test_the_live_reply_s_fragment_draws_the_finished_line_in_euros(server, rt, people, openai, in_euros):
    """The fragment's run that draws the finished reply runs without the shell, which sets the
    currency for a page's run: it sets it itself."""
    binding = secrets.token_urlsafe(32)
    cookie = f"byok_session={accounts.create_session(rt, people['cara'], binding=binding)}"
    *_, runs = live_reply(server.url, cookie, binding, "And in the fragment?", openai.gate)
    finished = next(r.text() for r in runs if "Paid by" in r.text())
    assert "Regenerate" not in finished  # the fragment's run, not the page's after it
    assert "€" in finished and not DOLLARS.search(finished), finished


def test_the_line_under_a_chat_reply_is_in_euros(server, page, rt, people, openai, in_euros):
    open_signed_in(page, server.url, rt, people["cara"])
    send(page, "What does this cost in euros?")
    expect(replies(page).last).to_contain_text("until the very end.", timeout=20_000)
    expect(replies(page).last).to_contain_text("Paid by your key")
    idle(page)
    caption = replies(page).last.get_by_test_id("stCaptionContainer").last.inner_text()
    assert "€" in caption and not DOLLARS.search(caption), caption
    text = main(page).inner_text()
    assert not DOLLARS.search(text), text  # nor anywhere on the page (the budget's sidebar line too)
    no_errors(page)


def test_the_usage_page_shows_euros(server, page, rt, people, in_euros):
    open_signed_in(page, server.url, rt, people["admin"], "/usage")
    expect(page.get_by_role("heading", name="Usage", exact=True)).to_be_visible()
    settled(page)
    shared = page.get_by_test_id("stMetric").filter(has_text="On shared keys")
    expect(shared).to_contain_text("€2.3000")
    for metric in page.get_by_test_id("stMetric").all():
        assert not DOLLARS.search(metric.inner_text())
    expect(page.get_by_text("Known cost per day (EUR), by provider")).to_be_visible()
    calls = page.get_by_test_id("stDataFrame").last
    calls.scroll_into_view_if_needed()
    expect(calls.locator("table[role='grid'] th").filter(has_text="Cost (EUR)")).to_have_count(1)
    costs = [float(row[6]) for row in calls.locator("table[role='grid'] tbody tr").evaluate_all(
        "rows => rows.map(r => [...r.querySelectorAll('td')].map(c => c.textContent))")]
    assert 2.3 in [round(c, 6) for c in costs], costs  # the amount in euros, as its heading says (€2.3000)
    assert not [c for c in grid_cells(calls) if DOLLARS.search(c)]
    no_errors(page)


def test_a_cap_on_your_own_key_is_typed_and_shown_in_euros(server, page, rt, people, in_euros):
    open_signed_in(page, server.url, rt, people["cara"], "/keys")
    amount = page.get_by_label("Monthly cap in EUR")
    amount.fill("15")
    page.get_by_role("button", name="Save cap").click()
    expect(page.get_by_text("Your own OpenAI key is capped at €15.00 a month")).to_be_visible()
    cap = page.locator(".st-key-caps_openai")
    expect(cap).to_contain_text("of €15.00 this month")
    assert not DOLLARS.search(cap.inner_text())
    no_errors(page)


def test_a_search_says_its_cost_in_euros(server, page, rt, people, in_euros):
    cara = people["cara"]
    if not [k for k in keys.list_keys(rt, Actor.of(cara), Owner.user(cara.id)) if k.provider is Provider.BRAVE]:
        keys.store(rt, Actor.of(cara), Owner.user(cara.id), Provider.BRAVE, "brave-e2e-cara-currency-1234")
    open_signed_in(page, server.url, rt, cara, "/search")
    page.get_by_role("textbox", name="Query", exact=True).fill("example")
    page.get_by_role("button", name="Search", exact=True).click()
    expect(page.get_by_text("paid by your key · €0.0046")).to_be_visible()  # Brave's $0.005 a search at 0.92
    idle(page)
    assert not DOLLARS.search(main(page).inner_text())
    no_errors(page)
