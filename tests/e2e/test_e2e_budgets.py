"""End to end in a real Chromium: budgets, alerts, rate limits and keys as issue 22 asked.

* A member's chat refused near her budget sends the 100% alert to a loopback webhook exactly once.
* On the Budgets page an action leaves its own tab open (Send a test, Save limits, one person's
  limit); on a phone the table's toolbar leaves the Prices tab usable.
* A key pasted in quotes after "Bearer " is saved without them and the card says so; deleting it
  says the key it replaced can still be restored.

This module's app server allows private endpoints (the webhook is on loopback) and has a server
OpenAI key, so it starts its own (``server``); it uses the shared fake OpenAI."""

from __future__ import annotations

import itertools
import json
import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from appserver import RunningApp, running_app, wait_for
from browser import idle, no_errors, open_signed_in
from callhelpers import log_call
from chatpage import send
from playwright.sync_api import Page, expect

from byok_core import accounts, alerts, budgets, keys, limits
from byok_core.clock import utcnow
from byok_core.identity import Actor, KeySource, Owner, Role
from byok_core.providers import Provider

pytestmark = pytest.mark.e2e

OP = Actor.operator()
SERVER_KEY = "sk-fake.e2e.budgets-server.0123456789"  # fake; dots keep it from looking real
PHONE = {"viewport": {"width": 390, "height": 844}, "device_scale_factor": 3, "is_mobile": True, "has_touch": True}
_names = itertools.count(1)


class Receiver:
    """A loopback webhook that keeps the text of what it is sent."""

    def __init__(self) -> None:
        self.texts: list[str] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:
                outer.texts.append(json.loads(self.rfile.read(int(self.headers["content-length"])))["text"])
                self.send_response(200)
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/e2e"


@pytest.fixture(scope="module")
def server(tmp_path_factory, shared_openai) -> Iterator[RunningApp]:
    with running_app(tmp_path_factory.mktemp("e2e-budgets"), **shared_openai.env(), OPENAI_API_KEY=SERVER_KEY,
                     BYOK_ALLOW_PRIVATE_ENDPOINTS="1") as app:
        yield app


@pytest.fixture(scope="module")
def receiver(server) -> Iterator[Receiver]:
    hook = Receiver()
    yield hook
    hook.server.shutdown()


def person(rt, role: Role = Role.MEMBER):
    name = f"budget{next(_names)}"
    return accounts.create_user(rt, OP, name, "budget password 1", role)


def budgets_page(page: Page, server: RunningApp, rt, admin) -> None:
    open_signed_in(page, server.url, rt, admin, "/budgets")
    expect(page.get_by_role("heading", name="Budgets", exact=True).first).to_be_visible()
    no_errors(page)


def selected(page: Page, name: str) -> None:
    expect(page.get_by_role("tab", name=name, exact=True)).to_have_attribute("aria-selected", "true")


def test_the_100_percent_alert_arrives_once_when_chats_start_being_refused(server, page, rt, openai, receiver):
    member = person(rt)
    alerts.set_webhook(rt, OP, receiver.url)
    budgets.set_budget(rt, OP, Owner.user(member.id), "0.04")
    log_call(rt, user_id=member.id, provider=Provider.OPENAI, model="gpt-4o", key_source=KeySource.ENV,
             input_tokens=1, output_tokens=1, latency_ms=1, cost_usd=0.0395)  # 99%: the next chat cannot fit
    before, asked = len(receiver.texts), len(openai.requests)
    open_signed_in(page, server.url, rt, member)
    for attempt in range(2):
        send(page, f"hello {attempt}")
        expect(page.get_by_text("could cost up to").first).to_be_visible()
        idle(page)
    # the amounts have the digits that make the refusal true (not "$0.01 left ... up to $0.01")
    refusal = page.get_by_text("could cost up to").first.inner_text()
    left, worst = (float(m) for m in re.findall(r"has \$([\d.]+) left of \$0\.04, and this call could cost up to "
                                                r"\$([\d.]+);", refusal)[0])
    assert abs(left - 0.0005) <= 0.0005 and left < worst, refusal  # $0.0005 left, as few digits as tell them apart
    mine = wait_for(lambda: [t for t in receiver.texts[before:] if f"{member.username}'s" in t] or None, 10,
                    "the 100% alert")
    idle(page)  # the second refusal is over: any second alert would have been sent by now
    assert [t for t in receiver.texts[before:] if f"{member.username}'s" in t] == mine
    month = alerts.month_name(budgets.month_of(utcnow()))
    assert re.fullmatch(r"[A-Z][a-z]+ 20\d\d", month)  # "December 2026", not "2026-12"
    assert len(mine) == 1 and "shared-key calls are refused" in mine[0] and f"($0.0395 of $0.04 in {month})" in mine[0]
    assert not [r for r in openai.requests[asked:] if r.method == "POST"]  # refused before any chat was sent
    no_errors(page)


def test_an_action_leaves_its_tab_open(server, page, rt, receiver):
    admin, member = person(rt, Role.ADMIN), person(rt)
    alerts.set_webhook(rt, OP, receiver.url)
    budgets_page(page, server, rt, admin)
    page.get_by_role("tab", name="Alerts", exact=True).click()
    page.get_by_role("button", name="Send a test").click()
    expect(page.get_by_text("Test sent.")).to_be_visible()
    selected(page, "Alerts")
    assert "BYOK Dashboard: a test of the budget alerts." in receiver.texts
    limits.set_person_limit(rt, OP, member.id, 3)  # their figure, loaded into the field once they are chosen
    page.get_by_role("tab", name="Rate limits and models", exact=True).click()
    page.get_by_role("combobox", name="Person").click()
    page.keyboard.type(member.username)
    page.keyboard.press("Enter")
    rpm = page.get_by_role("spinbutton", name="Their calls per minute")
    expect(rpm).to_have_value("3")  # the run that chose them is over (it loads their figure)
    idle(page)
    selected(page, "Rate limits and models")  # choosing a person reruns the page: still this tab
    rpm.fill("7")
    rpm.press("Enter")
    idle(page)
    page.get_by_role("button", name="Set their limit").click()
    expect(page.get_by_text("Their rate limit saved.")).to_be_visible()
    selected(page, "Rate limits and models")
    assert limits.person_limits(rt).get(member.id) == 7
    no_errors(page)


def test_on_a_phone_the_prices_tab_is_not_covered(server, browser, rt):
    context = browser.new_context(**PHONE)
    try:
        page = context.new_page()
        budgets_page(page, server, rt, person(rt, Role.ADMIN))
        # the open tab's own table: the other tabs' tables are in the page too, hidden
        table = page.get_by_role("tabpanel", name="Budgets").get_by_test_id("stDataFrame")
        expect(table).to_be_visible()
        table.tap()  # its toolbar shows
        page.get_by_role("tab", name="Prices", exact=True).tap(timeout=5_000)  # fails when something covers it
        selected(page, "Prices")
        no_errors(page)
    finally:
        context.close()


def test_a_pasted_key_loses_its_quotes_and_bearer_and_delete_says_what_is_left(server, page, rt, openai):
    member = person(rt)
    first = f"sk-e2e-first-{member.username}-0123456789-1a1a"
    keys.store(rt, Actor.of(member), Owner.user(member.id), Provider.OPENAI, first)
    key = f"sk-e2e-pasted-{member.username}-0123456789-2b2b"
    open_signed_in(page, server.url, rt, member, "/keys")
    card = page.locator(".st-key-mykeys_openai_card")
    card.get_by_text("Replace key").click()
    idle(page)
    card.get_by_role("textbox", name="API key", exact=True).fill(f'"Bearer {key}"')
    card.get_by_role("button", name="Save key").click()
    expect(card.get_by_text("The quotes around the key and the “Bearer” before it were removed.")).to_be_visible()
    assert openai.sent_keys()[-1] == key
    active = [i for i in keys.list_keys(rt, Actor.of(member), Owner.user(member.id)) if i.active]
    assert [i.mask for i in active] == ["sk-…2b2b"]
    idle(page)
    card.get_by_role("button", name="Delete").click()
    card.get_by_role("button", name="Yes, delete").click()
    expect(card.get_by_text("Deleted the OpenAI key sk-…2b2b. The key sk-…1a1a it replaced can still be restored "
                            "with the button below until")).to_be_visible()
    assert key not in page.content() and first not in page.content()
    no_errors(page)
