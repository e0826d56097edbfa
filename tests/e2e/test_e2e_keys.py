"""End to end in a real Chromium: saving a key tests it first. A good key is saved with what the test
showed, a key the provider rejects is refused and the key in use stays active, a provider that
cannot be reached offers "Save without testing", Restore brings back the replaced key, and Delete
asks on the card itself. On the shared app server (tests/e2e/conftest.py); each test has a member
of its own, signed in by a session cookie. No key ever reaches the page."""

from __future__ import annotations

import itertools

import pytest
from browser import idle, no_errors, open_signed_in
from playwright.sync_api import Locator, Page, expect

from byok_core import accounts, keys
from byok_core.errors import CallStatus
from byok_core.identity import Actor, Owner
from byok_core.models import User
from byok_core.providers import Provider
from byok_core.runtime import Runtime

pytestmark = pytest.mark.e2e

_names = itertools.count(1)


@pytest.fixture
def person(server, page, rt, openai):
    """A member of the test's own, and ``keys_page()``: the Keys page opened signed in as her (by a
    session cookie), its OpenAI card. The provider answers normally."""
    name = f"keys{next(_names)}"
    user = accounts.create_user(rt, Actor.operator(), name, "member password 1")

    def keys_page() -> Locator:
        open_signed_in(page, server.url, rt, user, "/keys")
        expect(page.get_by_role("heading", name="Keys", exact=True).first).to_be_visible()
        no_errors(page)
        return page.locator(".st-key-mykeys_openai_card")

    return page, user, keys_page


def fill(card: Locator, key: str, label: str) -> None:
    idle(card.page)  # the form just opened: its rerun is over before typing
    expect(card.get_by_role("textbox", name="API key", exact=True)).to_have_count(1)  # no stale copy drawn over
    card.get_by_role("textbox", name="API key", exact=True).fill(key)
    card.get_by_role("textbox", name="Label (optional)", exact=True).fill(label)
    idle(card.page)
    card.get_by_role("button", name="Save key").click()


def active(rt: Runtime, user: User) -> list[tuple[str, bool]]:
    return [(k.mask, k.active) for k in keys.list_keys(rt, Actor.of(user), Owner.user(user.id))]


def no_key_on_the_page(page: Page, *secrets: str) -> None:
    html = page.content()
    for secret in secrets:
        assert secret not in html and secret[-8:] not in html
    assert page.locator(".st-key-mykeys_openai_key input").input_value() == ""


def test_a_good_key_is_tested_then_saved(person, rt, openai):
    page, user, keys_page = person
    good = f"sk-e2e-good-{user.username}-0123456789-a1b2"
    openai.expect_key = good
    card = keys_page()
    card.get_by_text("Add key").click()
    fill(card, good, "work")
    expect(card.get_by_text("Saved the OpenAI key sk-…a1b2 and tested it: 3 models visible.")).to_be_visible()
    expect(card.get_by_text("Last checked ")).to_contain_text(" UTC: works")
    idle(page)
    assert openai.sent_keys()[-1] == good  # the provider saw it before it was stored
    assert active(rt, user) == [("sk-…a1b2", True)]
    assert keys.list_keys(rt, Actor.of(user), Owner.user(user.id))[0].last_test_status is CallStatus.OK
    no_key_on_the_page(page, good)
    no_errors(page)


def test_a_bad_key_is_refused_and_the_old_one_stays_active(person, rt, openai):
    page, user, keys_page = person
    good, bad = f"sk-e2e-good-{user.username}-0123456789-c3d4", f"sk-e2e-typo-{user.username}-0123456789-e5f6"
    keys.store(rt, Actor.of(user), Owner.user(user.id), Provider.OPENAI, good, label="work")
    openai.expect_key = good
    card = keys_page()
    card.get_by_text("Replace key").click()
    fill(card, bad, "new laptop")
    expect(card.get_by_text("Not saved: OpenAI rejected the key sk-…e5f6, so check that you copied all of it; "
                            "your key sk-…c3d4 stays in use.")).to_be_visible()
    idle(page)
    expect(card.get_by_text("Saved key sk-…c3d4")).to_be_visible()  # still the one in use
    expect(card.get_by_role("button", name="Save without testing")).to_have_count(0)
    # the form stays open with the label typed; only the key field is emptied
    expect(card.get_by_role("textbox", name="Label (optional)", exact=True)).to_have_value("new laptop")
    assert active(rt, user) == [("sk-…c3d4", True)]
    assert keys.resolve(rt, user.id, Provider.OPENAI).credential.secret.reveal() == good
    no_key_on_the_page(page, good, bad)
    no_errors(page)


def test_an_unreachable_provider_offers_save_without_testing(person, rt, openai):
    page, user, keys_page = person
    key = f"sk-e2e-spare-{user.username}-0123456789-a7b8"
    openai.status = 503
    card = keys_page()
    card.get_by_text("Add key").click()
    fill(card, key, "spare")
    expect(card.get_by_text("Not saved yet: the key sk-…a7b8 could not be tested because OpenAI cannot be "
                            "reached or is having trouble, so try again in a minute or save it without "
                            "testing.")).to_be_visible()
    idle(page)
    assert active(rt, user) == []
    card.get_by_role("button", name="Save without testing").click()
    expect(card.get_by_text("Saved the OpenAI key sk-…a7b8 without testing it; press Check now once OpenAI can be "
                            "reached.")).to_be_visible()
    idle(page)
    assert active(rt, user) == [("sk-…a7b8", True)]
    assert keys.resolve(rt, user.id, Provider.OPENAI).credential.secret.reveal() == key
    no_key_on_the_page(page, key)
    no_errors(page)


def test_restore_brings_back_the_replaced_key(person, rt):
    page, user, keys_page = person
    first, second = (f"sk-e2e-first-{user.username}-0123456789-1111",
                     f"sk-e2e-second-{user.username}-0123456789-2222")
    keys.store(rt, Actor.of(user), Owner.user(user.id), Provider.OPENAI, first, label="work")
    keys.store(rt, Actor.of(user), Owner.user(user.id), Provider.OPENAI, second)
    card = keys_page()
    expect(card.get_by_text("Saved key sk-…2222")).to_contain_text("“work”")  # the label carried over
    card.get_by_role("button", name="Restore the key sk-…1111 replaced less than a day ago").click()
    expect(card.get_by_text("The OpenAI key sk-…1111 is in use again, and the key sk-…2222 it replaced can be "
                            "restored for 30 days.")).to_be_visible()
    expect(card.get_by_text("Saved key sk-…1111")).to_be_visible()
    expect(card.get_by_role("button", name="Restore the key sk-…2222 replaced less than a day ago")).to_be_visible()
    idle(page)
    assert keys.resolve(rt, user.id, Provider.OPENAI).credential.secret.reveal() == first
    assert active(rt, user) == [("sk-…1111", True), ("sk-…2222", False)]
    no_key_on_the_page(page, first, second)
    no_errors(page)


def test_delete_asks_on_the_card_with_cancel(person, rt):
    page, user, keys_page = person
    key = f"sk-e2e-gone-{user.username}-0123456789-9d9d"
    keys.store(rt, Actor.of(user), Owner.user(user.id), Provider.OPENAI, key)
    card = keys_page()
    card.get_by_role("button", name="Delete").click()
    expect(card.get_by_text("Delete the OpenAI key sk-…9d9d? This cannot be undone.")).to_be_visible()
    card.get_by_role("button", name="Cancel").click()
    expect(card.get_by_text("Delete the OpenAI key sk-…9d9d? This cannot be undone.")).to_have_count(0)
    idle(page)
    assert active(rt, user) == [("sk-…9d9d", True)]
    card.get_by_role("button", name="Delete").click()
    card.get_by_role("button", name="Yes, delete").click()
    expect(card.get_by_text("Deleted the OpenAI key sk-…9d9d.")).to_be_visible()
    idle(page)
    assert active(rt, user) == []
    no_key_on_the_page(page, key)
    no_errors(page)
