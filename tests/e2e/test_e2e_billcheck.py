"""Issue 24 (1) in a real Chromium: an admin saves an OpenAI Admin key on the Usage page (tried
against a fake OpenAI billing API on loopback), presses Check now, and reads that OpenAI billed
tokens on the team key that this app did not send, with the link to Keys; the key is not in the page."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from appserver import RunningApp, running_app
from browser import idle, no_errors, open_signed_in
from callhelpers import log_call
from fakebilling import FakeBilling, Usage
from playwright.sync_api import expect

from byok_core import accounts, clock, keys
from byok_core.identity import Actor, KeySource, Owner, Role
from byok_core.providers import Provider

pytestmark = pytest.mark.e2e

OP = Actor.operator()
ADMIN_KEY = "sk-admin-fake.e2e-billing-000000000000004321"
TEAM_KEY = "sk-fake.e2e-team-billcheck-0123456789abcd5555"


@pytest.fixture(scope="module")
def bill() -> Iterator[FakeBilling]:
    with FakeBilling(Provider.OPENAI, ADMIN_KEY) as fake:
        yield fake


@pytest.fixture(scope="module")
def server(tmp_path_factory, bill) -> Iterator[RunningApp]:
    with running_app(tmp_path_factory.mktemp("e2e-billcheck"), **bill.env()) as app:
        yield app


def test_an_admin_checks_the_bill_and_sees_a_key_used_outside_the_app(server, page, rt, bill):
    boss = accounts.create_user(rt, OP, "bboss", "bboss password 1", Role.ADMIN)
    team = keys.store(rt, OP, Owner.team(), Provider.OPENAI, TEAM_KEY)
    bill.keys.append(("key_team", "sk-...5555"))
    three_days_ago = clock.utcnow() - timedelta(days=3)
    with clock.fake(three_days_ago):
        log_call(rt, user_id=boss.id, provider=Provider.OPENAI, model="gpt-4o-mini", key_source=KeySource.TEAM,
                 input_tokens=100, output_tokens=10, cost_usd=0.0001, key_row_id=team.id)
    bill.usage += [Usage(three_days_ago.date(), "key_team", "gpt-4o-mini-2024-07-18", 100, 10),
                   Usage((three_days_ago - timedelta(days=1)).date(), "key_team", "gpt-4o-mini", 40_000, 1_200)]

    open_signed_in(page, server.url, rt, boss, "/usage")
    idle(page)
    section = page.get_by_test_id("stExpander").filter(has_text="Checked against the providers' bills")
    expect(section).to_contain_text("No billing key: save an OpenAI Admin key")
    expect(section).to_contain_text("Google has no API that reports usage per API key")
    section.get_by_label("OpenAI Admin key").fill(ADMIN_KEY)
    section.get_by_role("button", name="Save billing key").first.click()
    expect(section).to_contain_text("Saved the OpenAI billing key sk-…4321: it works.")
    section.locator(".st-key-billcheck_check_openai").get_by_role("button", name="Check now").click()
    expect(section).to_contain_text("OpenAI billed 41,200 tokens on the team key (sk-…5555, gpt-4o-mini) that "
                                    "this app did not send.")
    expect(section).to_contain_text("1 difference needs a look.")
    expect(section.get_by_role("link", name="Replace the key on the Keys page")).to_be_visible()
    no_errors(page)
    assert ADMIN_KEY not in page.content() and "fake.e2e-billing" not in page.content()
