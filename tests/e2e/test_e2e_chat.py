"""End to end in a real Chromium: chat replies written on the server (a reload mid-reply picks it up
and it finishes; Stop), failed turns kept out of what is sent (a 429, then Retry), the web search
default, and the Search page's budget warning. On the shared app server (tests/e2e/conftest.py);
each test has a person of its own, signed in by a session cookie."""

from __future__ import annotations

import chatpage
import pytest
from browser import idle, no_errors
from callhelpers import log_call
from chatpage import box, main, replies, send, sent_turns, stop_button
from playwright.sync_api import expect

from byok_core import budgets, keys, pricing
from byok_core import conversations as convs
from byok_core.identity import Actor, KeySource, Owner
from byok_core.providers import Provider
from byok_core.startup import open_runtime

pytestmark = pytest.mark.e2e
person = chatpage.person  # a member with an OpenAI key of their own, on the Chat page

BRAVE_KEY = "brave-team-key-e2e-0123456789"
WRITING = "Your message (sent when the reply ends)"  # the box's placeholder while a reply is written


@pytest.fixture(scope="module", autouse=True)
def team_brave_key(server):
    rt = open_runtime(server.env, migrate=False)
    try:
        keys.store(rt, Actor.operator(), Owner.team(), Provider.BRAVE, BRAVE_KEY)
    finally:
        rt.engine.dispose()


def test_a_reload_mid_reply_picks_it_up_and_it_finishes(person, openai):
    page, _ = person
    send(page, "Does a reload lose the reply?")
    expect(replies(page).last).to_contain_text("Streaming")  # the first word; the provider holds the rest
    expect(box(page)).to_have_attribute("placeholder", WRITING)
    assert "c=" in page.url  # the conversation has a URL
    page.reload()
    expect(replies(page).last).to_contain_text("Streaming")  # picked up again, still being written
    expect(box(page)).to_have_attribute("placeholder", WRITING)
    assert "until the very end" not in replies(page).last.inner_text()
    openai.gate.set()
    expect(replies(page).last).to_contain_text("until the very end.", timeout=20_000)
    expect(replies(page).last).to_contain_text("Paid by your key")
    expect(box(page)).to_have_attribute("placeholder", "Your message")
    idle(page)
    no_errors(page)


def test_stop_ends_the_reply_and_keeps_the_text(person, openai):
    page, _ = person
    send(page, "Please stop me")
    expect(replies(page).last).to_contain_text("Streaming")
    stop_button(page).click()
    expect(replies(page).last).to_contain_text("Stopped: the text so far is kept.")
    expect(box(page)).to_have_attribute("placeholder", "Your message")  # while the provider still holds
    assert "until the very end" not in replies(page).last.inner_text()
    idle(page)
    no_errors(page)


def test_a_rate_limited_turn_stays_on_screen_is_never_sent_again_and_can_be_retried(person, openai):
    page, _ = person
    openai.gate.set()
    openai.status = 429
    send(page, "first question")
    expect(replies(page).last).to_contain_text("Rate limited")
    expect(main(page).get_by_role("button", name="Retry")).to_be_visible()
    openai.status = None
    send(page, "second question")
    expect(replies(page).last).to_contain_text("until the very end.")
    assert sent_turns(openai) == [("user", "second question")]  # the failed turn was left out
    expect(page.get_by_test_id("stChatMessage").filter(has_text="first question")).to_be_visible()  # still shown

    openai.status = 500
    send(page, "third question")
    expect(main(page).get_by_role("button", name="Retry")).to_be_visible()
    openai.status = None
    idle(page)
    main(page).get_by_role("button", name="Retry").click()
    expect(main(page).get_by_role("button", name="Regenerate")).to_be_visible()
    expect(replies(page).last).to_contain_text("until the very end.")
    reply = "".join(openai.chunks)
    assert sent_turns(openai) == [("user", "second question"), ("assistant", reply), ("user", "third question")]
    assert page.get_by_test_id("stChatMessage").filter(has_text="third question").count() == 1
    idle(page)
    no_errors(page)


def test_web_search_starts_with_the_provider_someone_has_a_key_for(person):
    page, _ = person
    page.get_by_role("button", name="OpenAI · gpt-4o-mini").click()  # the pickers' popover
    page.get_by_test_id("stCheckbox").get_by_text("Web search").click()
    expect(page.get_by_role("button", name="OpenAI · gpt-4o-mini · web search with Brave Search")).to_be_visible()
    idle(page)
    no_errors(page)


def test_the_search_page_warns_near_the_budget(person, rt):
    page, user = person
    budgets.set_budget(rt, Actor.operator(), Owner.user(user.id), 1)
    pricing.set_search_price(rt, Actor.operator(), Provider.BRAVE, 0.05)
    log_call(rt, user_id=user.id, provider=Provider.BRAVE, key_source=KeySource.TEAM, cost_usd=0.78)
    page.get_by_test_id("stSidebarNav").get_by_role("link", name="Search", exact=True).click()
    expect(page.get_by_text("Left this month on shared keys (you: $0.22 of $1.00).")).to_be_visible()
    page.get_by_role("textbox", name="Query", exact=True).fill("budgets")
    page.get_by_role("button", name="Search", exact=True).click()
    expect(page.get_by_text("paid by the team's key · $0.05")).to_be_visible()
    expect(page.get_by_text("Your monthly budget for shared keys is 83% used ($0.83 of $1.00).")).to_be_visible()
    idle(page)
    no_errors(page)


def test_back_and_forward_keep_you_in_the_conversation(person, rt):
    page, user = person
    first, second = convs.create(rt, user.id, "First trip"), convs.create(rt, user.id, "Second trip")
    page.goto(f"{page.url.split('?')[0]}?c={first.id}")
    expect(page.get_by_role("heading", name="First trip")).to_be_visible()
    idle(page)
    page.get_by_test_id("stSidebar").get_by_role("button", name="Second trip").click()
    expect(page.get_by_role("heading", name="Second trip")).to_be_visible()
    assert page.url.endswith(f"?c={second.id}")
    idle(page)
    page.go_back()
    expect(page.get_by_role("heading", name="First trip")).to_be_visible()
    idle(page)
    page.go_forward()
    expect(page.get_by_role("heading", name="Second trip")).to_be_visible()
    idle(page)
    no_errors(page)
