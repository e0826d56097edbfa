"""End to end in a real Chromium: "Check now" on a key the provider rejects says on its card that it
stopped working, and the banner about it shows on every page until its owner dismisses it. On the
shared app server (tests/e2e/conftest.py), with a member of its own. No key ever reaches the page."""

from __future__ import annotations

import pytest
from browser import idle, nav, no_errors, open_signed_in
from playwright.sync_api import expect

from byok_core import accounts, keys
from byok_core.clock import utcnow
from byok_core.identity import Actor, Owner
from byok_core.providers import Provider

pytestmark = pytest.mark.e2e

KEY = "sk-e2e-watched-0123456789-c3d4"


def test_check_now_on_a_rejected_key_shows_stopped_working_and_the_banner(server, page, rt, openai):
    user = accounts.create_user(rt, Actor.operator(), "watched1", "member password 1")
    info = keys.store(rt, Actor.of(user), Owner.user(user.id), Provider.OPENAI, KEY)
    openai.expect_key = "sk-e2e-another-key-now"  # the key was revoked at the provider
    today = keys.day(utcnow().date())
    open_signed_in(page, server.url, rt, user, "/keys")
    card = page.locator(".st-key-mykeys_openai_card")
    expect(card.get_by_text("Not checked yet: checked once a day")).to_be_visible()
    card.get_by_role("button", name="Check now").click()
    expect(card.get_by_text(f"Stopped working on {today} (rejected)")).to_be_visible()
    said = f"Your OpenAI key {info.mask} stopped working on {today} (rejected): save a new one on the Keys page."
    banner = page.locator(f".st-key-key_banner_{info.id}")
    expect(banner.get_by_text(said)).to_be_visible()
    idle(page)
    assert openai.sent_keys()[-1] == KEY
    nav(page, "Account")  # any page
    expect(banner.get_by_text(said)).to_be_visible()
    banner.get_by_role("button", name="Dismiss").click()
    expect(banner).to_have_count(0)
    idle(page)
    nav(page, "Keys")
    expect(page.locator(".st-key-mykeys_openai_card").get_by_text(f"Stopped working on {today}")).to_be_visible()
    expect(banner).to_have_count(0)  # dismissed for good
    assert KEY not in page.content() and KEY[-8:] not in page.content()
    no_errors(page)
