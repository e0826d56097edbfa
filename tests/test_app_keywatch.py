"""AppTest: what the key watch shows. A key card says when its key was last checked and whether it
works, "Check now" runs the same check, the banner about a key that stopped working shows on any
page until dismissed, the expiry date is set on the card; the fallback settings on the Budgets and
Account pages."""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa
from apptest import make_user, open_page, page_as, send_message, text_of, use_environment
from callhelpers import runtime_with
from fakeproviders import FakeProvider
from sqlmodel import col
from test_app_keys import GOOD, no_leak, provider, texts
from test_keywatch import QUOTA

from byok_core import audit, connections, fallback, keys, words
from byok_core.clock import utcnow
from byok_core.identity import Actor, Owner
from byok_core.models import ApiKey
from byok_core.providers import Provider


def banner(at) -> list[str]:
    return [text_of(w.value) for w in at.warning if text_of(w.value).startswith(("Your ", "The team's "))]


def test_check_now_on_a_rejected_key_says_it_stopped_working_and_the_banner_shows_until_dismissed(
        app, rt, environ, monkeypatch):
    ann = make_user(rt, "ann")
    info = keys.store(rt, Actor.of(ann), Owner.user(ann.id), Provider.OPENAI, GOOD)
    today = keys.day(utcnow().date())
    with provider(monkeypatch, environ, expect_key=GOOD):
        at = page_as(rt, ann, "keys")
        assert ":material/monitor_heart: Not checked yet: checked once a day" in texts(at, "caption")
        at.button(key="mykeys_openai_test").click().run()
        assert texts(at, "success") == ["The OpenAI key sk-…0000 works: 3 models visible."]
        [line] = [c for c in texts(at, "caption") if "Last checked" in c]
        assert line.startswith(f":material/monitor_heart: Last checked {today}, ") and line.endswith(" UTC: works")
    with provider(monkeypatch, environ, expect_key="sk-fake.another-key-now"):  # revoked at the provider
        at = page_as(rt, ann, "keys")
        assert [b.label for b in at.button if b.key == "mykeys_openai_test"] == ["Check now"]
        at.button(key="mykeys_openai_test").click().run()
        assert at.error[0].value.startswith("OpenAI rejected the key sk-…0000")
        assert any(w.startswith(f"Stopped working on {today} (rejected) · last checked {today}, ")
                   for w in texts(at, "warning"))
        said = f"Your OpenAI key {info.mask} stopped working on {today} (rejected): save a new one on the Keys page."
        assert banner(at) == [said]
        open_page(at, "account").run()  # any page
        assert banner(at) == [said]
        at.button(key=f"key_banner_dismiss_{info.id}").click().run()
        assert banner(at) == []
        open_page(at, "usage").run()
        assert banner(at) == [] and not at.exception  # dismissed for good
        no_leak(at, GOOD)


def test_the_expiry_date_is_set_and_removed_on_the_card_and_the_team_cards_show_the_watch_too(
        app, rt, environ, monkeypatch):
    boss = make_user(rt, "boss", admin=True)
    team = keys.store(rt, Actor.of(boss), Owner.team(), Provider.OPENAI, GOOD)
    soon = utcnow().date() + timedelta(days=3)
    with provider(monkeypatch, environ, expect_key=GOOD):
        at = page_as(rt, boss, "admin")
        at.date_input(key="teamkeys_openai_expires").set_value(soon).run()
        assert not at.exception
        assert texts(at, "success") == [f"The OpenAI key {team.mask} is used through {keys.day(soon)} (UTC), "
                                        "then no more."]
        assert any(c.startswith(f":material/monitor_heart: Expires on {keys.day(soon)} · ")
                   for c in texts(at, "caption"))
        assert banner(at) == [f"The team's OpenAI key {team.mask} expires on {keys.day(soon)}: save a new one under "
                              "Admin → Team keys before then, or change its expiry date."]
        at.button(key="teamkeys_openai_noexpiry").click().run()
        assert texts(at, "success") == [f"The OpenAI key {team.mask} no longer expires."]
        assert banner(at) == []
        yesterday = utcnow().date() - timedelta(days=1)
        with rt.engine.begin() as conn:  # as if that day had come and gone
            conn.execute(sa.update(ApiKey).where(col(ApiKey.id) == team.id).values(expires_on=yesterday))
        at.run()
        assert any(w.startswith(f"Expired on {keys.day(yesterday)}: not used · ") for w in texts(at, "warning"))
        assert "teamkeys_openai_test" not in {b.key for b in at.button}  # not used, so not checked
        assert banner(at) == [f"The team's OpenAI key {team.mask} expired on {keys.day(yesterday)} and is no longer "
                              "used: save a new one under Admin → Team keys."]
        fresh = page_as(rt, boss, "admin")  # opened after the day passed: the field offers days from today
        assert fresh.date_input(key="teamkeys_openai_expires").value is None
        assert any(w.startswith(f"Expired on {keys.day(yesterday)}: not used · ") for w in texts(fresh, "warning"))
        assert [words.audit_sentence(e, {boss.id: "boss"}) for e in audit.recent(rt, limit=2)] == [
            f"boss removed the expiry date of the team's OpenAI key {team.mask}",
            f"boss set the team's OpenAI key {team.mask} to expire after {soon:%Y-%m-%d}"]
        no_leak(at, GOOD)


def test_fallback_is_allowed_on_the_budgets_page_and_turned_off_on_the_account_page(app, rt):
    boss, ann = make_user(rt, "boss", admin=True), make_user(rt, "ann")
    at = page_as(rt, ann, "account")
    assert at.toggle(key="account_fallback").disabled  # nothing allowed yet
    at = page_as(rt, boss, "budgets")
    at.toggle(key="fallback_openai").set_value(True).run()
    assert not at.exception and fallback.allowed_providers(rt) == {Provider.OPENAI}
    assert [text_of(e.value) for e in at.tabs[1].success] == ["OpenAI: falls back to the team's key."]
    at = page_as(rt, ann, "account")
    assert "for: OpenAI." in " ".join(texts(at, "caption"))
    toggle = at.toggle(key="account_fallback")
    assert toggle.value and not toggle.disabled
    toggle.set_value(False).run()
    assert fallback.opted_out(rt, ann.id)
    assert words.audit_sentence(audit.recent(rt, limit=1)[0], {boss.id: "boss"}).startswith(
        "boss let members' OpenAI calls that their own key could not pay for")


def test_a_reply_the_team_key_paid_after_the_own_key_ran_out_says_so(app, rt, environ, monkeypatch):
    ann, boss = make_user(rt, "ann"), make_user(rt, "boss", admin=True)
    use_environment(monkeypatch, {**environ, "BYOK_ALLOW_PRIVATE_ENDPOINTS": "1"})
    with FakeProvider(Provider.OPENAI_COMPATIBLE, models=["m-1"]) as own, \
            FakeProvider(Provider.OPENAI_COMPATIBLE, reply="Paid by the team", models=["m-1"]) as team, \
            runtime_with({**environ, "BYOK_ALLOW_PRIVATE_ENDPOINTS": "1"}) as setup:
        keys.store(setup, Actor.of(ann), Owner.user(ann.id), Provider.OPENAI_COMPATIBLE, "sk-own-0123456789",
                   base_url=own.base_url)
        keys.store(setup, Actor.of(boss), Owner.team(), Provider.OPENAI_COMPATIBLE, "sk-team-0123456789",
                   base_url=team.base_url)
        fallback.set_allowed(setup, Actor.of(boss), Provider.OPENAI_COMPATIBLE, True)
        at = page_as(rt, ann)
        [mine] = connections.list_connections(setup, Actor.of(ann), Owner.user(ann.id))
        at.selectbox(key="chat_pick").set_value(f"openai-compatible@{mine.id}").run()
        assert at.selectbox(key=f"chat_model_openai-compatible@{mine.id}").value == "m-1"
        own.status, own.error_body = 429, QUOTA  # her credit runs out
        send_message(at, rt, "Hello")
        assert not at.exception
        reply = [m for m in at.chat_message if m.name == "assistant"][-1]
        assert reply.markdown[0].value == "Paid by the team"
        assert [text_of(w.value) for w in reply.warning] == ["Your key was out of quota; the team's key paid."]
        assert reply.caption[-1].value.startswith("Paid by the team's key · ")
