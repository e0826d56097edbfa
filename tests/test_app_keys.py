"""AppTest: the Keys page and the admin's team keys (write-only keys, masks, replace, delete, test)."""

from __future__ import annotations

from apptest import app_test, make_user, open_page, sign_in, use_environment
from fakeproviders import FakeProvider

from byok_core import keys
from byok_core.identity import Actor, Owner
from byok_core.providers import Provider

SECRET = "sk-fake.test-PLAINTEXT-4242-abcdefghijklmnop"


def dump(at) -> str:
    """Everything in the rendered tree, including dataframes and widget values."""
    out = [repr(at._tree)]
    out += [e.value.to_csv() for e in at.dataframe]
    out += [str(w.value) for w in at.text_input]
    return "\n".join(out)


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


def test_save_shows_only_the_mask(app, rt):
    ann = make_user(rt, "ann")
    at = keys_page(rt, ann)
    assert at.title[0].value == "Keys"
    save(at, Provider.OPENAI, SECRET, label="work")
    assert at.success and "sk-…mnop" in at.success[0].value
    table = at.dataframe[0].value
    assert list(table["Key"]) == ["sk-…mnop"] and list(table["Status"]) == ["active"]
    assert list(table["Label"]) == ["work"]
    assert SECRET not in dump(at) and "PLAINTEXT" not in dump(at)
    assert at.text_input(key="mykeys_openai_key").value == ""  # the input is cleared
    # where the key comes from today
    sources = at.dataframe[1].value
    assert sources.set_index("Provider").loc["OpenAI", "Key used"] == "your own key"


def test_replace_marks_the_old_key_replaced_and_delete_asks_first(app, rt):
    ann = make_user(rt, "ann")
    at = keys_page(rt, ann)
    save(at, Provider.ANTHROPIC, "sk-fake.ant-first-key-1111")
    save(at, Provider.ANTHROPIC, "sk-fake.ant-second-key-2222")
    table = at.dataframe[0].value
    assert sorted(zip(table["Key"], table["Status"], strict=True)) == [("sk-…1111", "replaced"),
                                                                       ("sk-…2222", "active")]

    old = next(i for i in keys.list_keys(rt, Actor.of(ann), Owner.user(ann.id)) if not i.active)
    at.selectbox(key="mykeys_pick").select(old.id).run()
    at.button(key="mykeys_del").click().run()
    assert at.warning and "cannot be undone" in at.warning[0].value
    assert len(keys.list_keys(rt, Actor.of(ann), Owner.user(ann.id))) == 2  # nothing deleted yet
    at.button(key="mykeys_yes").click().run()
    assert not at.exception
    assert [i.mask for i in keys.list_keys(rt, Actor.of(ann), Owner.user(ann.id))] == ["sk-…2222"]


def test_validation_errors_in_plain_words(app, rt):
    ann = make_user(rt, "ann")
    at = keys_page(rt, ann)
    save(at, Provider.OPENAI, "sk has spaces")
    assert at.error and "spaces" in at.error[0].value
    save(at, Provider.OPENAI_COMPATIBLE, "sk-fake.or-abcdef123456", base_url="")
    assert at.error and "base URL" in at.error[0].value
    assert not keys.list_keys(rt, Actor.of(ann), Owner.user(ann.id))


def test_no_page_shows_another_users_keys(app, rt):
    ann, bob = make_user(rt, "ann"), make_user(rt, "bob")
    keys.store(rt, Actor.of(ann), Owner.user(ann.id), Provider.OPENAI, "sk-fake.ann-secret-aaaa-9999", label="ann's")
    at = keys_page(rt, bob)
    assert "No keys saved yet." in [c.value for c in at.caption]
    text = dump(at)
    assert "9999" not in text and "ann's" not in text
    assert at.dataframe[0].value.set_index("Provider").loc["OpenAI", "Key used"] == "no key: calls will fail"


def test_member_sees_team_key_as_source_but_cannot_manage_it(app, rt):
    boss, mem = make_user(rt, "boss", admin=True), make_user(rt, "mem")
    keys.store(rt, Actor.of(boss), Owner.team(), Provider.OPENAI, "sk-fake.team-secret-7777")
    at = keys_page(rt, mem)
    assert at.dataframe[0].value.set_index("Provider").loc["OpenAI", "Key used"] == "the team's key"
    assert "7777" not in dump(at)


def test_admin_manages_team_keys_with_the_same_component(app, rt):
    boss = make_user(rt, "boss", admin=True)
    at = app_test()
    sign_in(at, rt, boss)
    at.run()
    open_page(at, "admin").run()
    save(at, Provider.TAVILY, "tvly-team-secret-5555", prefix="teamkeys")
    assert [i.mask for i in keys.list_keys(rt, Actor.of(boss), Owner.team())] == ["tvly…5555"] or \
        keys.list_keys(rt, Actor.of(boss), Owner.team())[0].provider is Provider.TAVILY
    assert "tvly-team-secret-5555" not in dump(at)
    assert not keys.list_keys(rt, Actor.of(boss), Owner.user(boss.id))


def test_test_button_reports_the_providers_answer(app, rt, environ, monkeypatch):
    ann = make_user(rt, "ann")
    with FakeProvider(Provider.OPENAI, expect_key="sk-fake.good-key-0000") as fake:
        use_environment(monkeypatch, {**environ, **fake.env()})
        at = keys_page(rt, ann)
        save(at, Provider.OPENAI, "sk-fake.good-key-0000")
        at.button(key="mykeys_openai_test").click().run()
        assert not at.exception
        assert at.success and at.success[0].value.startswith("OpenAI: OK")
        save(at, Provider.OPENAI, "sk-fake.bad-key-1111")
        at.button(key="mykeys_openai_test").click().run()
        assert at.error and "OpenAI" in at.error[0].value
        assert "sk-fake.bad-key-1111" not in dump(at)
