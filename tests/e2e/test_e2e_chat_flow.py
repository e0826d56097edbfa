"""End to end in a real Chromium: the chat never gets in the way. The model the picker shows is the
model a message goes to; a message that cannot be sent stays in the box; a reply streams without
holding the page (no running indicator, one Stop beside the box, always in view); the page follows
the reply only while the reader is at the bottom; the box takes typing while a reply is written.
On the shared app server (tests/e2e/conftest.py)."""

from __future__ import annotations

import re
import secrets
from datetime import timedelta

import chatpage
import pytest
import sqlalchemy as sa
from browser import idle, no_errors, open_signed_in
from chatpage import box, replies, send, stop_button
from conftest import REPLY
from playwright.sync_api import Page, expect

from byok_core import accounts
from byok_core import conversations as convs
from byok_core.clock import utcnow
from byok_core.identity import Actor
from byok_core.models import Conversation, table
from byok_core.providers import Provider

pytestmark = pytest.mark.e2e
person = chatpage.person  # a member with an OpenAI key of their own, on the Chat page

PICKER = re.compile(r"^OpenAI · ")
PHONE = {"viewport": {"width": 390, "height": 844}, "device_scale_factor": 3, "is_mobile": True, "has_touch": True}


def picker_model(page: Page) -> str:
    label = page.get_by_role("button", name=PICKER).get_by_test_id("stMarkdownContainer").inner_text()
    return label.split("·")[1].strip()


def open_and_close_the_picker(page: Page) -> None:
    """Open the provider/model picker (its Model list drawn) and close it, changing nothing."""
    page.get_by_role("button", name=PICKER).click()
    expect(page.get_by_role("combobox", name=re.compile("Model"))).to_be_visible()
    page.keyboard.press("Escape")
    idle(page)


def test_a_picker_opened_and_closed_then_enter_sends_with_the_shown_model(person, openai):
    page, _ = person
    openai.gate.set()
    send(page, "The first conversation")
    expect(replies(page).last).to_contain_text("until the very end.")
    idle(page)
    page.get_by_role("button", name="New chat", exact=True).click()
    expect(page.get_by_role("heading", name="Chat", exact=True)).to_be_visible()
    idle(page)
    shown = picker_model(page)
    open_and_close_the_picker(page)
    send(page, "A second conversation")
    expect(replies(page).last).to_contain_text("until the very end.")
    assert openai.requests[-1].body["model"] == shown == picker_model(page)
    idle(page)
    no_errors(page)


def test_new_chat_on_a_fresh_tab_sends_with_the_shown_model(person, openai, rt):
    page, user = person
    openai.gate.set()
    earlier = convs.create(rt, user.id, "An earlier trip", provider=Provider.OPENAI, model="gpt-4o")
    page.goto(f"{page.url.split('?')[0]}?c={earlier.id}")  # a fresh tab on a conversation
    expect(page.get_by_role("heading", name="An earlier trip")).to_be_visible()
    idle(page)
    page.get_by_test_id("stSidebar").get_by_placeholder("Search titles").fill("trip")
    page.get_by_test_id("stSidebar").get_by_placeholder("Search titles").press("Enter")
    idle(page)
    page.get_by_role("button", name="New chat", exact=True).click()
    expect(page.get_by_role("heading", name="Chat", exact=True)).to_be_visible()
    idle(page)
    shown = picker_model(page)
    assert shown == "gpt-4o"  # the model the conversation last used, still chosen
    open_and_close_the_picker(page)
    send(page, "Sent from a fresh tab")
    expect(replies(page).last).to_contain_text("until the very end.")
    assert openai.requests[-1].body["model"] == shown
    idle(page)
    no_errors(page)


def test_the_picker_stays_open_while_picking_and_its_label_follows(person, openai):
    """Its widgets are drawn only while it is open, and a pick changes its label (to Streamlit, a new
    popover): it stays open, says what was picked, and the message goes with it."""
    page, _ = person
    openai.gate.set()
    page.get_by_role("button", name=PICKER).click()
    model = page.get_by_role("combobox", name=re.compile("Model"))
    model.fill("gpt-typed-model")
    model.press("Enter")
    idle(page)
    expect(page.get_by_role("button", name=PICKER)).to_contain_text("gpt-typed-model")
    page.get_by_text("Web search", exact=True).click()
    idle(page)
    expect(page.get_by_role("button", name=PICKER)).to_contain_text("web search with")
    expect(page.get_by_role("combobox", name=re.compile("Search with"))).to_be_visible()  # still open
    page.get_by_text("Web search", exact=True).click()
    expect(page.get_by_role("button", name=PICKER)).not_to_contain_text("web search")
    page.keyboard.press("Escape")
    idle(page)
    expect(model).to_have_count(0)  # closed: its widgets are not drawn, and the choice is kept
    assert picker_model(page) == "gpt-typed-model"
    send(page, "Which model?")
    expect(replies(page).last).to_contain_text("until the very end.")
    assert openai.requests[-1].body["model"] == "gpt-typed-model"
    no_errors(page)


WATCH_RUNS = """() => {
    const app = document.querySelector("[data-testid='stApp']");
    window.byokRuns = 0;
    window.byokIndicator = false;
    new MutationObserver(() => {
        if (app.getAttribute("data-test-script-state") === "running") window.byokRuns += 1;
        if (document.querySelector("[data-testid='stStatusWidget']")) window.byokIndicator = true;
    }).observe(document.body, {subtree: true, childList: true, attributes: true});
}"""


def test_a_reply_streams_without_holding_the_page(person, openai):
    page, _ = person
    send(page, "Is the page held?")
    expect(replies(page).last).to_contain_text("Streaming")  # the first word; the provider holds the rest
    expect(page.get_by_test_id("stApp")).to_have_attribute("data-test-script-state", "notRunning")
    page.evaluate(WATCH_RUNS)  # from the end of the run that sent the message
    page.wait_for_function("window.byokRuns >= 4")  # the live reply's runs go on, each a short one
    expect(box(page)).to_be_editable()
    openai.gate.set()
    expect(replies(page).last).to_contain_text("until the very end.")
    idle(page)
    assert not page.evaluate("window.byokIndicator"), "Streamlit's running indicator (and its Stop) showed"
    expect(stop_button(page)).to_have_count(0)
    no_errors(page)


def test_the_box_keeps_focus_and_a_message_typed_meanwhile_waits_for_the_reply(person, openai):
    page, _ = person
    send(page, "First question")
    expect(replies(page).last).to_contain_text("Streaming")
    expect(box(page)).to_be_focused()  # keyboard users type on without reaching for the box again
    box(page).fill("Second question")
    box(page).press("Enter")
    queued = page.get_by_test_id("stChatMessage").filter(has_text="Sent when the reply above ends.")
    expect(queued).to_contain_text("Second question")
    assert [m["content"] for m in openai.requests[-1].body["messages"]] == ["First question"]
    openai.gate.set()
    expect(replies(page)).to_have_count(2)
    expect(replies(page).last).to_contain_text("until the very end.")
    expect(queued).to_have_count(0)
    assert [m["content"] for m in openai.requests[-1].body["messages"]][-1] == "Second question"
    idle(page)
    no_errors(page)


@pytest.fixture
def long_reply(openai):
    """The shared OpenAI's reply is 3,000 words, held after its 2,000th while ``gate`` is clear."""
    chunks, hold = openai.chunks, openai.hold_after
    openai.chunks = [f"word{n} " for n in range(3000)]
    openai.hold_after = 2000
    yield openai
    openai.chunks, openai.hold_after = chunks, hold


def scrolled(page: Page) -> int:
    return page.evaluate("document.querySelector(\"[data-testid='stMain']\").scrollTop")


def test_stop_stays_in_view_and_a_reader_scrolled_up_stays_up(person, long_reply):
    page, _ = person
    page.set_viewport_size({"width": 1366, "height": 768})
    send(page, "Write a lot")
    expect(replies(page).last).to_contain_text("word1999")
    stop = stop_button(page)
    expect(stop).to_be_in_viewport()  # at the end of a long reply, beside the box
    expect(replies(page).last.get_by_text("word1999")).to_be_in_viewport()  # followed while at the bottom
    page.get_by_test_id("stMain").evaluate("main => main.scrollTo(0, 0)")
    assert scrolled(page) == 0
    page.evaluate(WATCH_RUNS)
    page.wait_for_function("window.byokRuns >= 4")  # the live reply was redrawn meanwhile
    assert scrolled(page) == 0, "scrolling up to read was pulled back to the bottom"
    expect(stop).to_be_in_viewport()
    stop.click()
    expect(replies(page).last).to_contain_text("Stopped")
    idle(page)
    no_errors(page)


def test_enter_in_the_title_field_renames_the_conversation(person, rt):
    page, user = person
    trip = convs.create(rt, user.id, "Untitled trip")
    page.goto(f"{page.url.split('?')[0]}?c={trip.id}")
    expect(page.get_by_role("heading", name="Untitled trip")).to_be_visible()
    idle(page)
    page.get_by_role("button", name="Conversation").click()
    title = page.get_by_role("textbox", name="Title")
    title.fill("Lisbon in May")
    title.press("Enter")
    expect(page.get_by_role("heading", name="Lisbon in May")).to_be_visible()
    assert convs.get(rt, user.id, trip.id).title == "Lisbon in May"
    idle(page)
    no_errors(page)


def aged(rt, conversation_id: int, days: int) -> None:
    with rt.engine.begin() as conn:
        conn.execute(sa.update(table(Conversation)).where(table(Conversation).c.id == conversation_id).values(
            updated_at=utcnow() - timedelta(days=days)))


def test_the_list_is_grouped_by_day_and_each_item_renames_deletes_and_is_found_by_its_words(person, rt):
    page, user = person
    made_ids = {}
    for title, days in (("Fresh", 0), ("From yesterday", 1), ("This week", 3), ("Long ago", 40)):
        made = made_ids[title] = convs.create(rt, user.id, title)
        convs.add_message(rt, user.id, made.id, "user", f"what about {title.lower()} pelicans?" if days == 3 else "hi")
        aged(rt, made.id, days)
    page.reload()
    idle(page)
    listing = page.get_by_test_id("stSidebar").locator(".st-key-chat_list")
    expect(listing.get_by_test_id("stCaptionContainer")).to_have_text(
        ["Today", "Yesterday", "Previous 7 days", "Older"])
    listing.locator(f".st-key-chat_manage_{made_ids['From yesterday'].id} button").first.click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_role("textbox", name="Title").fill("Renamed yesterday")
    dialog.get_by_role("textbox", name="Title").press("Enter")
    expect(listing.get_by_role("button", name=re.compile("^Renamed yesterday"))).to_be_visible()
    idle(page)
    listing.locator(f".st-key-chat_manage_{made_ids['Long ago'].id} button").first.click()
    page.get_by_role("dialog").get_by_role("button", name="Delete conversation").click()
    page.get_by_role("dialog").get_by_role("button", name="Delete", exact=True).click()
    expect(listing.get_by_role("button", name=re.compile("^Long ago"))).to_have_count(0)
    assert sorted(c.title for c in convs.list_conversations(rt, user.id)) == ["Fresh", "Renamed yesterday", "This week"]
    idle(page)
    search = page.get_by_test_id("stSidebar").get_by_placeholder("Search titles and messages")
    search.fill("pelicans")
    search.press("Enter")
    expect(listing.get_by_role("button", name=re.compile("^This week"))).to_be_visible()
    expect(listing.get_by_role("button", name=re.compile("^Fresh"))).to_have_count(0)
    idle(page)
    no_errors(page)


def test_on_a_phone_choosing_a_conversation_closes_the_list(browser, server, rt):
    context = browser.new_context(**PHONE)
    page = context.new_page()
    try:
        user = accounts.create_user(rt, Actor.operator(), f"phone-{secrets.token_hex(4)}", "member password 1")
        trip = convs.create(rt, user.id, "Weekend in Porto")
        open_signed_in(page, server.url, rt, user)
        page.get_by_test_id("stExpandSidebarButton").click()
        page.get_by_test_id("stSidebar").get_by_role("button", name=re.compile("^Weekend in Porto")).click()
        expect(page.get_by_role("heading", name="Weekend in Porto")).to_be_in_viewport()
        expect(page.get_by_test_id("stSidebarNav")).to_be_hidden()  # the list closed itself
        assert page.url.endswith(f"?c={trip.id}")
        idle(page)
        no_errors(page)
    finally:
        context.close()


def test_copy_puts_a_message_on_the_clipboard(person, openai, server):
    page, _ = person
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=server.url)
    openai.gate.set()
    send(page, "Copy **me** please")
    expect(replies(page).last).to_contain_text("until the very end.")
    replies(page).last.locator(".byok-copy").click()
    expect(replies(page).last.locator(".byok-copy")).to_have_text("Copied")
    assert page.evaluate("navigator.clipboard.readText()") == REPLY
    asked = page.get_by_test_id("stChatMessage").filter(has_text="Copy me please")
    asked.locator(".byok-copy").click()
    expect(asked.locator(".byok-copy")).to_have_text("Copied")
    assert page.evaluate("navigator.clipboard.readText()") == "Copy me please"  # the text as shown
    idle(page)
    no_errors(page)


def test_the_sidebar_is_the_conversation_list_under_a_short_pages_menu(person):
    page, user = person
    sidebar = page.get_by_test_id("stSidebar")
    expect(sidebar.get_by_role("heading", name="Conversations")).to_be_visible()
    assert sidebar.get_by_test_id("stNavSectionHeader").count() == 0  # one short list of pages
    listed = sidebar.get_by_role("heading", name="Conversations").bounding_box()
    signed_in = sidebar.get_by_text(f"Signed in as {user.username}").bounding_box()
    assert listed and signed_in and listed["y"] < signed_in["y"]  # the account at the foot, under the list
    expect(sidebar.get_by_role("button", name="Sign out")).to_be_attached()
    no_errors(page)
