"""End to end in a real Chromium: "Check now" on a key the provider rejects says on its card that it
stopped working, and the banner about it shows on every page until its owner dismisses it; a key
with an expiry date says so on its card, its owner is told a week before, and after the date the key
is not used. On the shared app server (tests/e2e/conftest.py), with members of their own. No key
ever reaches the page."""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa
from browser import idle, nav, no_errors, open_signed_in
from playwright.sync_api import expect

from byok_core import accounts, keys
from byok_core.clock import utcnow
from byok_core.identity import Actor, Owner
from byok_core.models import ApiKey, table
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


def test_an_expiry_date_is_told_a_week_before_and_after_it_the_key_is_not_used(server, page, rt):
    user = accounts.create_user(rt, Actor.operator(), "expiring1", "member password 1")
    soon = utcnow().date() + timedelta(days=3)
    info = keys.store(rt, Actor.of(user), Owner.user(user.id), Provider.OPENAI, KEY, expires_on=soon)
    open_signed_in(page, server.url, rt, user, "/keys")
    card = page.locator(".st-key-mykeys_openai_card")
    expect(card.get_by_text(f"Expires on {keys.day(soon)}")).to_be_visible()
    banner = page.locator(f".st-key-key_banner_{info.id}")
    expect(banner).to_contain_text(f"Your OpenAI key {info.mask} expires on {keys.day(soon)}: save a new one on "
                                   "the Keys page before then")
    idle(page)
    gone = utcnow().date() - timedelta(days=1)  # the date passed (a form only offers today or later)
    with rt.engine.begin() as conn:
        conn.execute(sa.update(table(ApiKey)).where(table(ApiKey).c.id == info.id).values(expires_on=gone))
    nav(page, "Chat")
    expect(page.get_by_text("OpenAI: paid by")).not_to_be_visible()  # not by her key: it is not used
    expect(page.get_by_text("OpenAI: no key yet")).to_be_visible()
    expect(page.locator(f".st-key-key_banner_{info.id}")).to_contain_text(
        f"Your OpenAI key {info.mask} expired on {keys.day(gone)} and is no longer used")
    nav(page, "Keys")
    card = page.locator(".st-key-mykeys_openai_card")
    expect(card.get_by_text(f"Expired on {keys.day(gone)}: not used")).to_be_visible()
    assert KEY not in page.content() and KEY[-8:] not in page.content()
    no_errors(page)
