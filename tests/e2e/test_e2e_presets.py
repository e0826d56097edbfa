"""End to end in a real Chromium: a chat's settings and presets. A member sets a system prompt and
an output cap before the first message (the request holds them), saves the chat as a personal
preset that nobody else sees, and starts a new chat from it; an admin saves a team preset that a
member starts a chat from but cannot delete. On the shared app server (tests/e2e/conftest.py);
the request bodies are those the fake OpenAI received.

Needs the Chat page to call byok_ui.presets_view (the settings in the provider/model picker, the
Presets popover beside it, "New chat from preset" under "New chat")."""

from __future__ import annotations

import re
import secrets

import chatpage
import pytest
from appserver import wait_for
from browser import idle, no_errors, open_signed_in
from chatpage import replies, send
from playwright.sync_api import Page, expect

from byok_core import accounts, audit, keys, presets
from byok_core.audit import AuditAction
from byok_core.identity import Actor, Owner, Role
from byok_core.providers import Provider

pytestmark = pytest.mark.e2e
person = chatpage.person  # a member with an OpenAI key of their own, on the Chat page

PICKER = re.compile(r"^OpenAI · ")
SYSTEM = "You are terse. Answer in one line."


def open_picker(page: Page) -> None:
    """Open the picker and its "Settings of this chat" (drawn once opened)."""
    page.get_by_role("button", name=PICKER).click()
    settings = page.get_by_test_id("stExpander").filter(has_text="Settings of this chat")
    expect(settings).to_be_visible()
    if settings.locator("details").get_attribute("open") is None:  # it stays open once opened
        settings.get_by_text("Settings of this chat", exact=True).click()
    expect(page.get_by_label("System prompt", exact=True)).to_be_visible()


def close_popover(page: Page) -> None:
    page.keyboard.press("Escape")
    idle(page)


def save_settings(page: Page, system: str, cap: int) -> None:
    open_picker(page)
    page.get_by_label("System prompt", exact=True).fill(system)
    page.get_by_label("Output cap (tokens)", exact=True).fill(str(cap))
    page.get_by_role("button", name="Save settings").click()
    idle(page)
    close_popover(page)
    # the picker names the settings the next message goes with
    expect(page.get_by_role("button", name=PICKER)).to_contain_text(f"system prompt · cap {cap:,} tokens")


def save_preset(page: Page, name: str, team: bool = False) -> None:
    page.get_by_role("button", name="Presets", exact=True).click()
    page.get_by_label("Preset name", exact=True).fill(name)
    if team:
        page.get_by_text("The team", exact=True).click()
    page.get_by_role("button", name="Save this chat as a preset").click()
    idle(page)
    close_popover(page)


def start_from_preset(page: Page, label: str) -> None:
    page.get_by_test_id("stSidebar").get_by_role("button", name="New chat from preset").click()
    page.get_by_role("button", name=label, exact=True).click()
    idle(page)


def reply_done(page: Page, openai) -> dict:
    expect(replies(page).last).to_contain_text("until the very end.")
    idle(page)
    return openai.requests[-1].body


def test_a_personal_preset_from_a_new_chats_settings(person, openai, server, rt, browser):
    page, user = person
    openai.gate.set()
    save_settings(page, SYSTEM, 300)  # before the first message: the chat does not exist yet
    send(page, "Hello with settings")
    body = reply_done(page, openai)
    assert body["messages"][0] == {"role": "system", "content": SYSTEM}
    assert body["messages"][-1] == {"role": "user", "content": "Hello with settings"}
    assert body["max_completion_tokens"] == 300

    save_preset(page, "Terse")
    [made] = wait_for(lambda: presets.list_for(rt, Actor.of(user)), 10, "the preset saved")  # the click's run
    assert (made.name, made.owner, made.settings.system_prompt) == ("Terse", Owner.user(user.id), SYSTEM)

    start_from_preset(page, "Terse")
    expect(page.get_by_role("heading", name="Terse")).to_be_visible()
    send(page, "A chat from the preset")
    body = reply_done(page, openai)
    assert [m["role"] for m in body["messages"]] == ["system", "user"]
    assert (body["messages"][0]["content"], body["max_completion_tokens"]) == (SYSTEM, 300)
    no_errors(page)

    other = accounts.create_user(rt, Actor.operator(), f"other-{secrets.token_hex(4)}", "member password 2")
    with browser.new_context() as context:
        stranger = context.new_page()
        open_signed_in(stranger, server.url, rt, other)
        stranger.get_by_test_id("stSidebar").get_by_role("button", name="New chat from preset").click()
        expect(stranger.get_by_text("No presets yet")).to_be_visible()  # another's own preset is not listed
        assert stranger.get_by_role("button", name="Terse", exact=True).count() == 0


def test_a_team_preset_made_by_an_admin_is_picked_by_a_member_who_cannot_delete_it(server, rt, openai, browser):
    openai.gate.set()
    tag = secrets.token_hex(4)
    boss = accounts.create_user(rt, Actor.operator(), f"boss-{tag}", "admin password 1", Role.ADMIN)
    mia = accounts.create_user(rt, Actor.operator(), f"mia-{tag}", "member password 1")
    keys.store(rt, Actor.of(boss), Owner.user(boss.id), Provider.OPENAI, f"sk-e2e-boss-{tag}-0123456789")
    keys.store(rt, Actor.of(mia), Owner.user(mia.id), Provider.OPENAI, f"sk-e2e-mia-{tag}-0123456789")
    name = f"Team review {tag}"
    with browser.new_context() as admin_context:
        admin = admin_context.new_page()
        open_signed_in(admin, server.url, rt, boss)
        save_settings(admin, "Review the code you are shown.", 500)
        save_preset(admin, name, team=True)
        no_errors(admin)
    [team] = wait_for(lambda: [p for p in presets.list_for(rt, Actor.of(mia)) if p.name == name], 10,
                      "the team preset saved")
    assert team.is_team and team.settings.params.max_output_tokens == 500
    assert [(e.actor, e.action, e.detail) for e in audit.recent(rt, limit=1)] == [
        (boss.username, AuditAction.PRESET_SET, name)]

    with browser.new_context() as member_context:
        page = member_context.new_page()
        open_signed_in(page, server.url, rt, mia)
        start_from_preset(page, f"Team: {name}")
        expect(page.get_by_role("heading", name=name)).to_be_visible()
        send(page, "Please review this")
        body = reply_done(page, openai)
        assert body["messages"][0] == {"role": "system", "content": "Review the code you are shown."}
        assert body["max_completion_tokens"] == 500
        page.get_by_role("button", name="Presets", exact=True).click()
        expect(page.locator(f".st-key-presets_item_{team.id}")).to_contain_text(f"{name} (team)")
        assert page.locator(f".st-key-presets_delete_{team.id}").count() == 0
        assert page.get_by_text("The team", exact=True).count() == 0  # a member saves only their own
        no_errors(page)
