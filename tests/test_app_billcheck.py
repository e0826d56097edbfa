"""AppTest: the Usage page's "Checked against the providers' bills" section. An admin saves a
billing key (tried against a fake OpenAI billing API on loopback first), checks now, and reads the
headline, the line of a key used outside the app with the link to Keys; a member sees none of it;
the billing key is in no element of the page."""

from __future__ import annotations

from datetime import timedelta

from apptest import clear_runtime, make_user, page_as, text_of
from callhelpers import log_call
from fakebilling import FakeBilling, Usage
from test_app_keys import no_leak
from test_reconcile import ADMIN_KEY, TEAM_KEY

from byok_core import billcheck, clock, keys
from byok_core.identity import Actor, KeySource, Owner
from byok_core.providers import Provider


def test_an_admin_saves_a_billing_key_checks_now_and_sees_the_outside_use(app, rt, monkeypatch):
    ann, root = make_user(rt, "ann"), make_user(rt, "root", admin=True)
    now = clock.utcnow()
    two_days_ago, four_days_ago = (now - timedelta(days=2)).date(), (now - timedelta(days=4)).date()
    with FakeBilling(Provider.OPENAI, ADMIN_KEY) as bill:
        for name, value in bill.env().items():
            monkeypatch.setenv(name, value)
        clear_runtime()
        team = keys.store(rt, Actor.operator(), Owner.team(), Provider.OPENAI, TEAM_KEY)
        bill.keys.append(("key_team", f"sk-...{TEAM_KEY[-4:]}"))
        with clock.fake(now - timedelta(days=2)):
            log_call(rt, user_id=ann.id, provider=Provider.OPENAI, model="gpt-4o-mini", key_source=KeySource.TEAM,
                     input_tokens=100, output_tokens=10, cost_usd=0.0001, key_row_id=team.id)
        bill.usage += [Usage(two_days_ago, "key_team", "gpt-4o-mini-2024-07-18", 100, 10),
                       Usage(four_days_ago, "key_team", "gpt-4o-mini-2024-07-18", 40_000, 1_200)]
        assert not any("Checked against" in e.label for e in page_as(rt, ann, "usage").expander)

        at = page_as(rt, root, "usage")
        [section] = [e for e in at.expander if e.label == "Checked against the providers' bills"]
        assert "No billing key: save an OpenAI Admin key" in " ".join(c.value for c in section.caption)
        assert "Google has no API that reports usage per API key" in section.caption[-1].value
        at.text_input(key="billcheck_key_openai").set_value("sk-wrong-key-0000000000000")
        [save] = [b for b in at.button if b.label == "Save billing key" and "openai" in str(b.proto.form_id)]
        save.click().run()
        assert [text_of(e.value) for e in at.error][:1] == [
            "OpenAI refused the key sk-…0000: it needs an Admin key, from platform.openai.com → Settings → "
            "Organization → Admin keys. Nothing was saved."]
        at.text_input(key="billcheck_key_openai").set_value(ADMIN_KEY)
        [save] = [b for b in at.button if b.label == "Save billing key" and "openai" in str(b.proto.form_id)]
        save.click().run()
        assert "Saved the OpenAI billing key sk-…9876: it works." in text_of(at.success[0].value)
        at.button(key="billcheck_check_openai").click().run()
        assert not at.exception, at.exception
        errors = [text_of(e.value) for e in at.error]
        assert (f"{keys.day(four_days_ago)}: OpenAI billed 41,200 tokens on the team key (sk-…3333, gpt-4o-mini) "
                "that this app did not send. Someone may have a copy of this key: replace it under Admin → Team "
                "keys.") in errors
        assert [text_of(w.value) for w in at.warning] == [
            "Checked against OpenAI's bill for " + billcheck.headline(Provider.OPENAI, (now - timedelta(days=7)).date(),
                                                                      (now - timedelta(days=1)).date(), 1)
            .partition(" for ")[2]]
        assert any("Replace the key on the Keys page" in str(link.proto) for link in at.get("page_link"))
        no_leak(at, ADMIN_KEY)


def test_an_admin_checks_openrouter_keys_without_a_billing_key(app, rt, monkeypatch):
    from fakebilling import FakeOpenRouterKey
    from test_reconcile import ROUTER_KEY

    from byok_core import connections
    from byok_core.startup import open_runtime

    root = make_user(rt, "root", admin=True)
    monkeypatch.setenv("BYOK_ALLOW_PRIVATE_ENDPOINTS", "1")
    clear_runtime()
    lan = open_runtime()  # as the page's, with loopback connections allowed
    with FakeOpenRouterKey(ROUTER_KEY, month_usd=1.25) as fake:
        router = connections.create(lan, Actor.operator(), Owner.team(), "OpenRouter", fake.url, "openrouter")
        key = keys.store(lan, Actor.operator(), Owner.team(), Provider.OPENAI_COMPATIBLE, ROUTER_KEY,
                         connection=router.id)
        lan.engine.dispose()
        log_call(rt, user_id=root.id, provider=Provider.OPENAI_COMPATIBLE, model="openai/gpt-4o-mini",
                 key_source=KeySource.TEAM, input_tokens=100, output_tokens=10, cost_usd=0.25, key_row_id=key.id)
        at = page_as(rt, root, "usage")
        [section] = [e for e in at.expander if e.label == "Checked against the providers' bills"]
        assert any("No billing key needed: each OpenRouter connection's key" in c.value for c in section.caption)
        at.button(key="billcheck_check_openrouter").click().run()
        assert not at.exception, at.exception
        errors = [text_of(e.value) for e in at.error]
        assert any("OpenRouter counts $1.2500 spent in" in e and "$1.0000 was spent on it outside this app" in e
                   for e in errors), errors
        assert any("1 key needs a look" in text_of(w.value) for w in at.warning)
        no_leak(at, ROUTER_KEY)
