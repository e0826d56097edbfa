"""AppTest: after first-run setup the admin sees a checklist (a key, members, a budget) above every
page, ticked from what exists, until it is done or they dismiss it; dismissing is kept in the
database, so a new browser session does not show it again. Members never see it."""

from __future__ import annotations

from apptest import app_test, make_user, open_page, page_as

from byok_core import accounts, budgets, keys
from byok_core.identity import Actor, Owner
from byok_core.providers import Provider


def checklist(at) -> list[str]:
    """The checklist's lines, struck through when done; [] when it is not shown."""
    return [m.value for m in at.markdown if m.value.startswith(":material/")]


def test_setup_leads_to_the_checklist(app, rt):
    at = app_test().run()
    code = accounts.issue_setup_code(rt)
    for field, value in zip(at.text_input, [code, "boss", "a long password", "a long password"], strict=True):
        field.set_value(value)
    at.button[0].click().run()
    assert not at.exception and at.title[0].value == "Chat"
    assert "**Get your team started**" in [m.value for m in at.markdown]
    assert checklist(at) == [
        ":material/radio_button_unchecked: Add a key that pays for calls: a team key, or your own",
        ":material/radio_button_unchecked: Invite members: create their accounts",
        ":material/radio_button_unchecked: Set a monthly budget on the shared keys"]
    assert [link.label for link in at.get("page_link")][:4] == ["Team keys (Admin)", "Your keys", "Users (Admin)",
                                                                 "Budgets"]


def test_steps_tick_themselves_and_it_goes_when_done(app, rt):
    root = make_user(rt, "root", admin=True)
    keys.store(rt, Actor.of(root), Owner.team(), Provider.OPENAI, "sk-team-key-0123456789abcdef")
    make_user(rt, "mia")
    at = page_as(rt, root, "usage")
    assert checklist(at)[:2] == [":material/check_circle: ~~Add a key that pays for calls: a team key, or your own~~",
                                 ":material/check_circle: ~~Invite members: create their accounts~~"]
    assert [link.label for link in at.get("page_link")] == ["Budgets"]
    budgets.set_budget(rt, Actor.of(root), Owner.team(), 20)
    at.run()
    assert checklist(at) == []


def test_dismissed_stays_dismissed_in_a_new_session(app, rt):
    root = make_user(rt, "root", admin=True)
    at = page_as(rt, root, "chat")
    at.button(key="first_run_dismiss").click().run()
    assert checklist(at) == []
    assert checklist(page_as(rt, root, "chat")) == []  # another browser, the same admin
    other = make_user(rt, "ada", admin=True)
    assert len(checklist(page_as(rt, other, "chat"))) == 3  # per admin


def test_members_never_see_it(app, rt):
    make_user(rt, "root", admin=True)
    at = page_as(rt, make_user(rt, "mia"), "chat")
    assert checklist(at) == [] and "first_run_dismiss" not in [b.key for b in at.button]
    open_page(at, "usage").run()
    assert checklist(at) == []
