"""AppTest: the Keys page and the admin's team keys. Saving tests the key first (a rejected key is
not saved, an unreachable provider offers "Save without testing"), each provider card holds its own
Test, Delete (asks first) and Restore, and a form keeps what was typed when it cannot be saved.
Every test that saves a key also checks that it never reaches the page or the session."""

from __future__ import annotations

from contextlib import contextmanager
from datetime import timedelta

import pytest
import sqlalchemy as sa
from apptest import app_test, make_user, open_page, sign_in, text_of, use_environment
from fakeproviders import FakeProvider
from ports import free_port
from sqlmodel import col

from byok_core import connections, keys
from byok_core.budgets import caps
from byok_core.identity import Actor, Owner
from byok_core.models import ApiKey
from byok_core.providers import Provider

SECRET = "sk-fake.test-PLAINTEXT-4242-abcdefghijklmnop"
GOOD = "sk-fake.good-key-PLAINTEXT-0000"
BAD = "sk-fake.bad-key-PLAINTEXT-1111"


def dump(at) -> str:
    """Everything in the rendered tree, including dataframes, widget values and the session state."""
    out = [repr(at._tree), repr(at.session_state.to_dict())]
    out += [e.value.to_csv() for e in at.dataframe]
    out += [str(w.value) for w in at.text_input]
    return "\n".join(out)


def no_leak(at, *secrets: str) -> None:
    text = dump(at)
    for secret in secrets:
        assert secret not in text and secret[-8:] not in text
    assert "PLAINTEXT" not in text


def keys_page(rt, user):
    at = app_test()
    sign_in(at, rt, user)
    at.run()
    open_page(at, "keys").run()
    assert not at.exception
    return at


def save(at, provider: Provider, raw: str, label: str = "", base_url: str | None = None, prefix="mykeys"):
    form = f"{prefix}_{provider.value}"
    at.text_input(key=f"{form}_key").set_value(raw)
    at.text_input(key=f"{form}_label").set_value(label)
    if base_url is not None:
        at.text_input(key=f"{form}_url").set_value(base_url)
    at.button(key=f"FormSubmitter:{form}-Save key").click().run()
    assert not at.exception


def texts(at, kind: str) -> list[str]:
    return [text_of(e.value) for e in getattr(at, kind)]


def buttons(at) -> list[str]:
    return [b.label for b in at.button]


def mine(rt, user) -> list[keys.KeyInfo]:
    return keys.list_keys(rt, Actor.of(user), Owner.user(user.id))


@contextmanager
def provider(monkeypatch, environ, which: Provider = Provider.OPENAI, **fake):
    """A fake provider the app is pointed at (its base-URL variable)."""
    with FakeProvider(which, **fake) as server:
        use_environment(monkeypatch, {**environ, **server.env()})
        yield server


def test_a_good_key_is_tested_then_saved_and_shown_only_as_its_mask(app, rt, environ, monkeypatch):
    ann = make_user(rt, "ann")
    with provider(monkeypatch, environ, expect_key=SECRET) as fake:
        at = keys_page(rt, ann)
        assert at.title[0].value == "Keys"
        save(at, Provider.OPENAI, SECRET, label="work")
        assert fake.sent_keys() == [SECRET]  # tested before it was saved
    assert texts(at, "success") == ["Saved the OpenAI key sk-…mnop and tested it: 3 models visible."]
    shown = texts(at, "caption")
    assert any(c.startswith(":material/key: Saved key sk-…mnop “work”") for c in shown), shown
    assert any(c.startswith(":material/monitor_heart: Last checked ") and c.endswith(" UTC: works") for c in shown)
    [info] = mine(rt, ann)
    assert info.active and info.label == "work" and info.last_test_status == "ok" and info.checked_at
    assert at.text_input(key="mykeys_openai_key").value == ""  # the key field is emptied
    assert at.text_input(key="mykeys_openai_label").value == ""  # and, once saved, the form too
    assert at.session_state["mykeys_openai_open"] is False
    assert at.dataframe[0].value.set_index("Provider").loc["OpenAI", "Key used"] == "your own key"
    no_leak(at, SECRET)


def test_a_rejected_key_is_not_saved_and_the_key_in_use_stays(app, rt, environ, monkeypatch):
    ann = make_user(rt, "ann")
    with provider(monkeypatch, environ, expect_key=GOOD) as fake:
        at = keys_page(rt, ann)
        save(at, Provider.OPENAI, GOOD, label="work")
        save(at, Provider.OPENAI, BAD, label="new one")
        assert fake.sent_keys() == [GOOD, BAD]
    assert texts(at, "error") == ["Not saved: OpenAI rejected the key sk-…1111, so check that you copied all of it; "
                                  "your key sk-…0000 stays in use."]
    assert "Save without testing" not in buttons(at)  # the provider said no: nothing to override
    assert [(i.mask, i.active) for i in mine(rt, ann)] == [("sk-…0000", True)]
    assert keys.resolve(rt, ann.id, Provider.OPENAI).credential.secret.reveal() == GOOD
    # the form stays open with what was typed, except the key
    assert at.session_state["mykeys_openai_open"] is True
    assert at.text_input(key="mykeys_openai_label").value == "new one"
    assert at.text_input(key="mykeys_openai_key").value == ""
    no_leak(at, GOOD, BAD)


@pytest.mark.parametrize("fault, why", [
    ("refused", "cannot be reached or is having trouble"),
    (503, "cannot be reached or is having trouble"),
    (429, "is limiting requests (or the key has no credit left)"),
])
def test_an_unreachable_provider_offers_save_without_testing(app, rt, environ, monkeypatch, fault, why):
    ann = make_user(rt, "ann")
    if fault == "refused":  # nothing listens on the port
        use_environment(monkeypatch, {**environ, "OPENAI_BASE_URL": f"http://127.0.0.1:{free_port()}/v1"})
        at = keys_page(rt, ann)
        save(at, Provider.OPENAI, SECRET, label="spare")
    else:
        with provider(monkeypatch, environ, status=fault):
            at = keys_page(rt, ann)
            save(at, Provider.OPENAI, SECRET, label="spare")
    assert texts(at, "error") == [f"Not saved yet: the key sk-…mnop could not be tested because OpenAI {why}, so "
                                  f"try again {'later' if fault == 429 else 'in a minute'} or save it without testing."]
    assert mine(rt, ann) == []
    no_leak(at, SECRET)

    at.button(key="mykeys_openai_untested").click().run()
    assert not at.exception
    assert texts(at, "success") == ["Saved the OpenAI key sk-…mnop without testing it; press Check now once "
                                    "OpenAI can be reached."]
    [info] = mine(rt, ann)
    assert (info.mask, info.label, info.active, info.last_test_status) == ("sk-…mnop", "spare", True, None)
    assert keys.resolve(rt, ann.id, Provider.OPENAI).credential.secret.reveal() == SECRET
    assert "Save without testing" not in buttons(at)
    no_leak(at, SECRET)


def test_save_without_testing_goes_away_with_its_message(app, rt, environ, monkeypatch):
    """The waiting key lives only as long as the button: any other action drops it."""
    ann = make_user(rt, "ann")
    with provider(monkeypatch, environ, status=503):
        at = keys_page(rt, ann)
        save(at, Provider.OPENAI, SECRET)
        assert "Save without testing" in buttons(at)
        at.run()  # anything else happens on the page
    assert "Save without testing" not in buttons(at) and not at.error
    assert mine(rt, ann) == []
    no_leak(at, SECRET)


def add_connection(at, key: str, preset: str = "", name: str | None = None, url: str | None = None,
                   prefix="mykeys", version: str | None = None):
    """Add a connection with the Keys page's form: a preset fills the name and URL, which may be changed."""
    form = f"{prefix}_newconn"
    at.selectbox(key=f"{form}_preset").set_value(preset).run()
    if name is not None:
        at.text_input(key=f"{form}_name").set_value(name)
    if url is not None:
        at.text_input(key=f"{form}_url").set_value(url)
    if version is not None:  # an Azure connection's API version
        at.text_input(key=f"{form}_version").set_value(version)
    at.text_input(key=f"{form}_key").set_value(key)
    at.button(key=f"FormSubmitter:{form}-Add connection").click().run()
    assert not at.exception


def test_a_validation_error_keeps_the_form_open_with_what_was_typed(app, rt):
    ann = make_user(rt, "ann")
    at = keys_page(rt, ann)
    add_connection(at, "sk-fake.or-abcdef123456", name="OpenRouter", url="")
    assert len(at.error) == 1 and "base URL" in at.error[0].value
    assert at.session_state["mykeys_newconn_open"] is True
    assert at.text_input(key="mykeys_newconn_name").value == "OpenRouter"
    assert at.text_input(key="mykeys_newconn_key").value == ""
    add_connection(at, "sk has spaces", name="OpenRouter", url="https://openrouter.ai/api/v1")
    assert len(at.error) == 1 and "spaces" in at.error[0].value
    assert at.text_input(key="mykeys_newconn_url").value == "https://openrouter.ai/api/v1"
    assert at.text_input(key="mykeys_newconn_name").value == "OpenRouter"
    assert at.session_state["mykeys_newconn_open"] is True
    assert not mine(rt, ann) and not connections.list_connections(rt, Actor.of(ann), Owner.user(ann.id))


def test_replacing_keeps_the_label_and_restore_brings_the_old_key_back(app, rt, environ, monkeypatch):
    ann = make_user(rt, "ann")
    first, second = "sk-fake.first-PLAINTEXT-1111", "sk-fake.second-PLAINTEXT-2222"
    with provider(monkeypatch, environ, Provider.ANTHROPIC):
        at = keys_page(rt, ann)
        save(at, Provider.ANTHROPIC, first, label="work")
        save(at, Provider.ANTHROPIC, second)  # no label: the replaced key's carries over
    assert texts(at, "success") == ["Saved the Anthropic key sk-…2222 and tested it: 2 models visible."]
    assert any(c.startswith(":material/key: Saved key sk-…2222 “work”") for c in texts(at, "caption"))
    assert "Restore the key sk-…1111 replaced less than a day ago" in buttons(at)
    no_leak(at, first, second)

    at.button(key="mykeys_anthropic_restore").click().run()
    assert not at.exception
    assert texts(at, "success") == ["The Anthropic key sk-…1111 is in use again, and the key sk-…2222 it replaced "
                                    "can be restored for 30 days."]
    assert [(i.mask, i.active) for i in mine(rt, ann)] == [("sk-…1111", True), ("sk-…2222", False)]
    assert keys.resolve(rt, ann.id, Provider.ANTHROPIC).credential.secret.reveal() == first
    assert "Restore the key sk-…2222 replaced less than a day ago" in buttons(at)
    no_leak(at, first, second)


def test_only_the_newest_replaced_key_has_a_restore_button(app, rt):
    ann = make_user(rt, "ann")
    owner, actor = Owner.user(ann.id), Actor.of(ann)
    for n in range(3):
        keys.store(rt, actor, owner, Provider.GOOGLE, f"AIza-PLAINTEXT-{n}-abcdefghij{n}{n}{n}{n}")
    at = keys_page(rt, ann)
    assert [b for b in buttons(at) if b.startswith("Restore")] == ["Restore the key AIz…1111 replaced less than a day "
                                                                    "ago"]
    assert ("Older replaced keys, kept for 30 days after they were replaced: AIz…0000 (less than a day ago)."
            in texts(at, "caption"))
    no_leak(at)


def test_delete_asks_on_the_card_and_cancel_keeps_the_key(app, rt):
    ann = make_user(rt, "ann")
    keys.store(rt, Actor.of(ann), Owner.user(ann.id), Provider.TAVILY, "tvly-PLAINTEXT-abcdefgh-3333")
    at = keys_page(rt, ann)
    at.button(key="mykeys_tavily_del").click().run()
    assert texts(at, "warning") == ["Delete the Tavily key tvl…3333? This cannot be undone."]
    assert len(mine(rt, ann)) == 1  # nothing deleted yet
    at.button(key="mykeys_tavily_no").click().run()
    assert not at.warning and len(mine(rt, ann)) == 1
    at.button(key="mykeys_tavily_del").click().run()
    at.button(key="mykeys_tavily_yes").click().run()
    assert not at.exception
    assert texts(at, "success") == ["Deleted the Tavily key tvl…3333."]
    assert mine(rt, ann) == []
    no_leak(at)


def test_cards_show_the_endpoint_a_hint_and_where_to_get_a_key(app, rt, environ, monkeypatch):
    ann = make_user(rt, "ann")
    use_environment(monkeypatch, {**environ, "BRAVE_BASE_URL": "http://127.0.0.1:9/brave",
                                  "BYOK_ALLOW_PRIVATE_ENDPOINTS": "1"})
    with FakeProvider(Provider.OPENAI_COMPATIBLE) as groq:  # its URL is typed in, not set by the operator
        at = keys_page(rt, ann)
        add_connection(at, "gsk_PLAINTEXT-abcdefgh-5555", "groq", url=groq.base_url)
        assert texts(at, "success") == ["Saved the Groq key gsk…5555 and tested it: 2 models visible."]
        [conn] = connections.list_connections(rt, Actor.of(ann), Owner.user(ann.id))
        shown = texts(at, "caption")
        assert f"Endpoint: {groq.base_url}" in shown
        assert "Endpoint: http://127.0.0.1:9/brave (set by the server's operator)" in shown
        assert "Hint: starts with BSA." in shown and "Hint: 40 digits and letters from a to f." in shown
        assert "Hint: starts with gsk_." in shown  # the preset's
        assert "Groq · Groq" in texts(at, "markdown")
        at.button(key=f"mykeys_conn_{conn.id}_test").click().run()
        assert texts(at, "success") == ["The Groq key gsk…5555 works: 2 models visible."]
    links = {lb.proto.url for lb in at.get("link_button")}
    assert links == {p.spec.key_url for p in Provider if p.spec.key_url} | {"https://console.groq.com/keys"}
    no_leak(at)


def test_test_button_speaks_plain_words(app, rt, environ, monkeypatch):
    ann = make_user(rt, "ann")
    with provider(monkeypatch, environ, expect_key=GOOD) as fake:
        at = keys_page(rt, ann)
        save(at, Provider.OPENAI, GOOD)
        at.button(key="mykeys_openai_test").click().run()
        assert not at.exception
        assert texts(at, "success") == ["The OpenAI key sk-…0000 works: 3 models visible."]
        fake.expect_key = "sk-fake.another-key-now"  # the key was revoked at the provider
        at.button(key="mykeys_openai_test").click().run()
    assert len(at.error) == 1 and at.error[0].value.startswith("OpenAI rejected the key sk-…0000")
    assert any(w.startswith("Stopped working on ") and "(rejected) · last checked " in w for w in texts(at, "warning"))
    no_leak(at, GOOD)


def test_replaced_keys_past_30_days_are_gone_from_the_card(app, rt):
    ann = make_user(rt, "ann")
    owner, actor = Owner.user(ann.id), Actor.of(ann)
    old = keys.store(rt, actor, owner, Provider.SERPER, "0123456789abcdef0123456789abcdefPLAINTEXT")
    keys.store(rt, actor, owner, Provider.SERPER, "fedcba9876543210fedcba9876543210PLAINTEXT")
    with rt.engine.begin() as conn:
        conn.execute(sa.update(ApiKey).where(col(ApiKey.id) == old.id)
                     .values(updated_at=keys.utcnow() - keys.KEEP_REPLACED - timedelta(minutes=1)))
    at = keys_page(rt, ann)
    assert not [b for b in buttons(at) if b.startswith("Restore")]
    assert [i.mask for i in mine(rt, ann)] == ["fed…TEXT"]  # the old one was purged
    no_leak(at)


def test_no_page_shows_another_users_keys(app, rt):
    ann, bob = make_user(rt, "ann"), make_user(rt, "bob")
    keys.store(rt, Actor.of(ann), Owner.user(ann.id), Provider.OPENAI, "sk-fake.ann-secret-aaaa-9999", label="ann's")
    at = keys_page(rt, bob)
    assert "No keys saved yet." in texts(at, "caption")
    text = dump(at)
    assert "9999" not in text and "ann's" not in text
    assert at.dataframe[0].value.set_index("Provider").loc["OpenAI", "Key used"] == "no key: calls will fail"


def test_member_sees_team_key_as_source_but_cannot_manage_it(app, rt):
    boss, mem = make_user(rt, "boss", admin=True), make_user(rt, "mem")
    keys.store(rt, Actor.of(boss), Owner.team(), Provider.OPENAI, "sk-fake.team-secret-7777")
    at = keys_page(rt, mem)
    assert at.dataframe[0].value.set_index("Provider").loc["OpenAI", "Key used"] == "the team's key"
    assert "No key saved here. Calls now use the team's key." in texts(at, "caption")
    assert "7777" not in dump(at)
    assert "mykeys_openai_del" not in [b.key for b in at.button]


def test_admin_manages_team_keys_with_the_same_component(app, rt, environ, monkeypatch):
    boss = make_user(rt, "boss", admin=True)
    with provider(monkeypatch, environ, Provider.TAVILY, expect_key="tvly-team-PLAINTEXT-5555") as fake:
        at = app_test()
        sign_in(at, rt, boss)
        at.run()
        open_page(at, "admin").run()
        save(at, Provider.TAVILY, "tvly-team-PLAINTEXT-5555", prefix="teamkeys")
        assert fake.sent_keys() == ["tvly-team-PLAINTEXT-5555"]
    assert texts(at, "success") == ["Saved the Tavily key tvl…5555 and tested it: 7 credits used on this key."]
    assert [i.mask for i in keys.list_keys(rt, Actor.of(boss), Owner.team())] == ["tvl…5555"]
    assert not mine(rt, boss)
    no_leak(at, "tvly-team-PLAINTEXT-5555")


def test_a_key_pasted_in_quotes_or_after_bearer_is_saved_without_them_and_it_says_so(app, rt, environ, monkeypatch):
    ann = make_user(rt, "ann")
    with provider(monkeypatch, environ, expect_key=SECRET) as fake:
        at = keys_page(rt, ann)
        save(at, Provider.OPENAI, f'  "Bearer {SECRET}"\n')
        assert fake.sent_keys() == [SECRET]
    assert texts(at, "success") == ["Saved the OpenAI key sk-…mnop and tested it: 3 models visible. The quotes "
                                    "around the key and the “Bearer” before it were removed."]
    no_leak(at, SECRET)


def test_deleting_a_key_says_the_one_it_replaced_can_still_be_restored(app, rt):
    ann = make_user(rt, "ann")
    for key in ("tvly-PLAINTEXT-first-key-1111", "tvly-PLAINTEXT-second-key-2222"):
        keys.store(rt, Actor.of(ann), Owner.user(ann.id), Provider.TAVILY, key)
    until = keys.restorable_until(next(i for i in mine(rt, ann) if not i.active))
    kept = (f"The key tvl…1111 it replaced can still be restored with the button below until {until:%B} "
            f"{until.day}; after that it is deleted.")
    at = keys_page(rt, ann)
    at.button(key="mykeys_tavily_del").click().run()
    assert texts(at, "warning") == [f"Delete the Tavily key tvl…2222? This cannot be undone. {kept}"]
    at.button(key="mykeys_tavily_yes").click().run()
    assert texts(at, "success") == [f"Deleted the Tavily key tvl…2222. {kept}"]
    assert any(b.startswith("Restore the key tvl…1111") for b in buttons(at))
    no_leak(at)


def test_a_cap_on_your_own_key_is_set_shown_and_removed_on_the_keys_page(app, rt):
    ann = make_user(rt, "ann")
    at = keys_page(rt, ann)
    assert "Save a key of your own above to cap it." in texts(at, "caption")  # nothing to cap yet
    keys.store(rt, Actor.of(ann), Owner.user(ann.id), Provider.TAVILY, "tvly-PLAINTEXT-capped-key-3333")
    at = keys_page(rt, ann)
    at.selectbox(key="caps_provider").set_value(Provider.TAVILY)
    at.text_input(key="caps_amount").set_value("12.345")
    at.button(key="FormSubmitter:caps_form-Save cap").click().run()
    assert texts(at, "error") == ["Caps are in whole cents: use $12.35 instead of $12.345."]
    at.text_input(key="caps_amount").set_value("12.50")
    at.button(key="FormSubmitter:caps_form-Save cap").click().run()
    assert texts(at, "success") == ["Your own Tavily key is capped at $12.50 a month; calls that could pass it "
                                    "are refused."]
    assert "Tavily: $0.00 of $12.50 this month (0%), stops calls" in texts(at, "markdown")
    assert at.text_input(key="caps_amount").value == ""
    at.button(key="caps_clear_tavily").click().run()
    assert texts(at, "success") == ["Your own Tavily key has no cap now."] and not caps.caps_of(rt, ann.id)
    no_leak(at)


def test_connections_are_added_from_a_preset_renamed_and_deleted(app, rt, environ, monkeypatch):
    """A preset fills the name and base URL; a rejected key leaves the connection without a key and
    says why on its card; rename and delete (which asks first) act on that connection only."""
    ann = make_user(rt, "ann")
    use_environment(monkeypatch, {**environ, "BYOK_ALLOW_PRIVATE_ENDPOINTS": "1"})
    good, bad = "gsk_PLAINTEXT-good-0000-1111", "gsk_PLAINTEXT-bad-0000-2222"
    with FakeProvider(Provider.OPENAI_COMPATIBLE, expect_key=good) as server:
        at = keys_page(rt, ann)
        at.selectbox(key="mykeys_newconn_preset").set_value("mistral").run()
        assert (at.text_input(key="mykeys_newconn_name").value,
                at.text_input(key="mykeys_newconn_url").value) == ("Mistral", "https://api.mistral.ai/v1")
        add_connection(at, bad, "deepseek", url=server.base_url)
        [conn] = connections.list_connections(rt, Actor.of(ann), Owner.user(ann.id))
        assert (conn.name, conn.preset, conn.base_url) == ("DeepSeek", "deepseek", server.base_url)
        assert texts(at, "error") == ["Not saved: DeepSeek rejected the key gsk…2222, so check that you copied all "
                                      "of it."]
        form = f"mykeys_conn_{conn.id}"
        at.text_input(key=f"{form}_key").set_value(good)
        at.button(key=f"FormSubmitter:{form}-Save key").click().run()
        assert texts(at, "success") == ["Saved the DeepSeek key gsk…1111 and tested it: 2 models visible."]
        assert server.sent_keys() == [bad, good]
    keys.store(rt, Actor.of(ann), Owner.user(ann.id), Provider.OPENAI_COMPATIBLE, "gsk_PLAINTEXT-other-3333",
               connection=conn.id)
    at.run()
    at.button(key=f"{form}_restore").click().run()  # messages name the connection
    assert texts(at, "success") == ["The DeepSeek key gsk…1111 is in use again, and the key gsk…3333 it replaced "
                                    "can be restored for 30 days."]
    at.button(key=f"{form}_del").click().run()
    at.button(key=f"{form}_yes").click().run()
    assert texts(at, "success")[0].startswith("Deleted the DeepSeek key gsk…1111. The key gsk…3333 it replaced")
    at.text_input(key=f"{form}_rename").set_value("Deep")
    at.button(key=f"FormSubmitter:{form}_rename_form-Rename").click().run()
    assert texts(at, "success") == ["Renamed the connection DeepSeek to Deep."]
    assert "Deep · DeepSeek" in texts(at, "markdown")
    at.button(key=f"{form}_conn_del").click().run()
    assert any("Delete the connection Deep and every key" in w for w in texts(at, "warning"))
    at.button(key=f"{form}_conn_no").click().run()
    assert connections.list_connections(rt, Actor.of(ann), Owner.user(ann.id))
    at.button(key=f"{form}_conn_del").click().run()
    at.button(key=f"{form}_conn_yes").click().run()
    assert texts(at, "success") == ["Deleted the connection Deep and its keys."]
    assert connections.list_connections(rt, Actor.of(ann), Owner.user(ann.id)) == [] and mine(rt, ann) == []
    no_leak(at, good, bad, "gsk_PLAINTEXT-other-3333")


def test_admin_adds_a_team_connection(app, rt, environ, monkeypatch):
    boss, mem = make_user(rt, "boss", admin=True), make_user(rt, "mem")
    use_environment(monkeypatch, {**environ, "BYOK_ALLOW_PRIVATE_ENDPOINTS": "1"})
    with FakeProvider(Provider.OPENAI_COMPATIBLE) as server:
        at = app_test()
        sign_in(at, rt, boss)
        at.run()
        open_page(at, "admin").run()
        add_connection(at, "sk-or-PLAINTEXT-team-3333", "openrouter", url=server.base_url, prefix="teamkeys")
    assert texts(at, "success") == ["Saved the OpenRouter key sk-…3333 and tested it: 2 models visible."]
    [conn] = connections.list_connections(rt, Actor.of(boss), Owner.team())
    assert [u.connection for u in connections.usable(rt, mem.id)] == [conn]  # members chat on it
    assert connections.list_connections(rt, Actor.of(mem), Owner.user(mem.id)) == []
    no_leak(at, "sk-or-PLAINTEXT-team-3333")


def test_an_azure_connection_is_added_with_its_endpoint_and_api_version(app, rt, environ, monkeypatch):
    """The Azure OpenAI preset asks for the resource's endpoint and an API version (empty: v1); the key
    is tested on the resource's v1 API in the api-key header and never shown again."""
    ann = make_user(rt, "ann")
    use_environment(monkeypatch, {**environ, "BYOK_ALLOW_PRIVATE_ENDPOINTS": "1"})
    key = "0123456789abcdefPLAINTEXT01234567"
    with FakeProvider(Provider.OPENAI_COMPATIBLE, azure=True, expect_key=key, models=["gpt-5-mini"]) as server:
        at = keys_page(rt, ann)
        at.selectbox(key="mykeys_newconn_preset").set_value(connections.AZURE).run()
        assert at.text_input(key="mykeys_newconn_url").label == "Endpoint"
        assert at.text_input(key="mykeys_newconn_url").value == ""  # the placeholder shows the form
        add_connection(at, key, connections.AZURE, url=server.base_url + "/", version="latest")
        assert texts(at, "error") == ["The API version 'latest' is not one Azure has: leave it as v1, or type a dated "
                                      "version such as 2024-10-21 (or 2025-04-01-preview)."]
        assert at.text_input(key="mykeys_newconn_url").value == server.base_url + "/"  # nothing typed is lost
        at.text_input(key="mykeys_newconn_version").set_value("")
        at.text_input(key="mykeys_newconn_key").set_value(key)
        at.button(key="FormSubmitter:mykeys_newconn-Add connection").click().run()
        [conn] = connections.list_connections(rt, Actor.of(ann), Owner.user(ann.id))
        assert (conn.name, conn.preset, conn.base_url) == ("Azure OpenAI", "azure", server.base_url + "/openai/v1")
        assert texts(at, "success") == ["Saved the Azure OpenAI key 012…4567 and tested it: 1 model visible."]
        assert [(r.method, r.path) for r in server.requests] == [("GET", "/openai/v1/models")]
        assert server.sent_keys() == [key] and "authorization" not in server.requests[0].headers
    no_leak(at, key)
