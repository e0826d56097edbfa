"""The first-run checklist (its steps read from what exists, dismissed per admin in the database) and
whom a person with no key is told to ask (byok_core.onboarding)."""

from __future__ import annotations

from apptest import make_user

from byok_core import accounts, budgets, keys, onboarding
from byok_core.identity import Actor, Owner
from byok_core.providers import Provider


def test_the_checklist_follows_what_exists_until_done(rt):
    root = make_user(rt, "root", admin=True)
    assert onboarding.checklist(rt, root.id) == onboarding.Checklist(False, False, False)
    keys.store(rt, Actor.of(root), Owner.user(root.id), Provider.OPENAI, "sk-root-own-key-0123456789")
    assert onboarding.checklist(rt, root.id) == onboarding.Checklist(True, False, False)
    other = make_user(rt, "ada", admin=True)
    assert onboarding.checklist(rt, other.id) == onboarding.Checklist(False, True, False)  # root's key is root's
    keys.store(rt, Actor.of(root), Owner.team(), Provider.BRAVE, "brave-team-key-0123456789")
    budgets.set_budget(rt, Actor.of(root), Owner.team(), 10)
    assert onboarding.checklist(rt, root.id) is None and onboarding.checklist(rt, other.id) is None


def test_dismissing_is_kept_per_admin(rt):
    root, ada = make_user(rt, "root", admin=True), make_user(rt, "ada", admin=True)
    onboarding.dismiss_checklist(rt, root.id)
    onboarding.dismiss_checklist(rt, root.id)  # twice is once
    assert onboarding.checklist(rt, root.id) is None
    assert onboarding.checklist(rt, ada.id) == onboarding.Checklist(False, True, False)


def test_whom_to_ask_names_the_active_admins(rt):
    assert onboarding.whom_to_ask(rt) == ("No key yet: add your own on the Keys page, or ask whoever runs this "
                                          "server to add a team key.")
    make_user(rt, "alice", admin=True)
    make_user(rt, "mia")
    assert onboarding.whom_to_ask(rt, [Provider.TAVILY]) == (
        "No key for Tavily yet: add your own on the Keys page, or ask your admin (alice) to add a team key.")
    make_user(rt, "bob", admin=True)
    gone = make_user(rt, "carol", admin=True)
    accounts.set_disabled(rt, Actor.operator(), gone.username, True)
    assert onboarding.whom_to_ask(rt, [Provider.TAVILY, Provider.SERPER, Provider.FIRECRAWL]) == (
        "No key for Tavily, Serper and Firecrawl yet: add your own on the Keys page, or ask an admin (alice or bob) "
        "to add a team key.")
    for n in range(5):
        make_user(rt, f"extra{n}", admin=True)
    assert "(alice, bob, extra0, extra1, extra2 or another admin)" in onboarding.whom_to_ask(rt)
    assert onboarding.whom_to_ask(rt, [Provider.BRAVE], asker_is_admin=True) == (
        "No key for Brave Search yet: add a team key on the Admin page (Team keys), or your own on the Keys page.")
