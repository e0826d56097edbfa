"""AppTest: start-up, first-run setup, sign-in, sign-out, password change, and role gating."""

from __future__ import annotations

import pytest
from apptest import app_test, make_user, open_page, sign_in, text_of, use_environment

from byok_core import accounts, audit
from byok_core.identity import Actor
from byok_ui.state import TOKEN_KEY


def texts(at) -> str:
    """Every text the page shows (markdown, titles, alerts, captions, widget labels)."""
    parts = []
    for kind in ("title", "header", "subheader", "markdown", "caption", "error", "warning", "success", "info"):
        parts += [str(e.value) for e in getattr(at, kind)]
    parts += [w.label for w in at.text_input] + [b.label for b in at.button]
    return "\n".join(parts)


def wide(text: str) -> str:
    """``text`` in full-width letters (U+FF01 to U+FF5E), which NFKC turns back into plain ones."""
    return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in text)


def nav_titles(at) -> set[str]:
    return {p["page_name"] for p in at._registered_pages.values()} if hasattr(at, "_registered_pages") else set()


def test_bad_configuration_is_explained_in_plain_words(environ, monkeypatch):
    use_environment(monkeypatch, {**environ, "ENCRYPTION_KEY": "not-a-key"})
    at = app_test().run()
    assert not at.exception
    assert at.error and "ENCRYPTION_KEY" in text_of(at.error[0].value)
    assert "Traceback" not in texts(at)


def test_first_run_setup_needs_the_printed_code(app, rt):
    at = app_test().run()
    assert not at.exception
    assert "setup code" in texts(at).lower()
    code = accounts.issue_setup_code(rt)  # what the console shows (a new code replaces the old)

    at.text_input[0].set_value("000000-000000-000000")
    at.text_input[1].set_value("boss")
    at.text_input[2].set_value("a long password")
    at.text_input[3].set_value("a long password")
    at.button[0].click().run()
    assert at.error and "setup code is not valid" in at.error[0].value
    assert not accounts.has_users(rt)

    at.text_input[0].set_value(code)
    at.text_input[1].set_value("boss")
    at.text_input[2].set_value("a long password")
    at.text_input[3].set_value("a long password")
    at.button[0].click().run()
    assert not at.exception
    assert accounts.get_user(rt, "boss").is_admin
    assert accounts.session_status(rt, at.session_state[TOKEN_KEY])[0].username == "boss"
    assert at.title[0].value == "Chat"  # signed in, on the default page


def test_sign_in_with_one_generic_message(app, rt):
    make_user(rt, "ann", password="ann's password")
    at = app_test().run()
    assert [t.label for t in at.text_input] == ["Username", "Password"]
    at.text_input[0].set_value("ann")
    at.text_input[1].set_value("wrong password")
    at.button[0].click().run()
    wrong = at.error[0].value
    at.text_input[0].set_value("nobody")
    at.text_input[1].set_value("wrong password")
    at.button[0].click().run()
    assert text_of(at.error[0].value) == text_of(wrong) == accounts.SIGN_IN_FAILED

    at.text_input[0].set_value("ann")
    at.text_input[1].set_value("ann's password")
    at.button[0].click().run()
    assert not at.exception
    assert at.title[0].value == "Chat"
    token = at.session_state[TOKEN_KEY]
    assert accounts.session_status(rt, token)[0].username == "ann"
    # the browser is told to fetch the HttpOnly cookie with a one-time ticket, never the token itself
    scripts = "".join(h.value for h in at.html)
    assert "/byok/session" in scripts and token not in scripts


def test_sign_out_revokes_the_session(app, rt):
    user = make_user(rt, "bob")
    at = app_test()
    token = sign_in(at, rt, user)
    at.run()
    assert at.title[0].value == "Chat"
    at.button(key="shell_sign_out").click().run()
    assert not at.exception
    assert accounts.session_status(rt, token)[0] is None
    assert "Sign in" in [b.label for b in at.button]
    assert "/byok/signout" in "".join(h.value for h in at.html)


def test_revoked_or_disabled_session_is_signed_out(app, rt):
    user = make_user(rt, "cy")
    at = app_test()
    sign_in(at, rt, user)
    at.run()
    assert at.title[0].value == "Chat"
    accounts.set_disabled(rt, Actor.operator(), "cy", True)
    at.run()
    assert [t.label for t in at.text_input] == ["Username", "Password"]


def test_enabling_an_account_again_does_not_revive_a_session_from_before(app, rt):
    user = make_user(rt, "cy")
    at = app_test()
    token = sign_in(at, rt, user)
    at.run()
    accounts.set_disabled(rt, Actor.operator(), "cy", True)
    accounts.set_disabled(rt, Actor.operator(), "cy", False)
    again = app_test()  # the browser comes back with the cookie it kept
    again.session_state[TOKEN_KEY] = token
    again.run()
    assert [t.label for t in again.text_input] == ["Username", "Password"] and not again.exception
    at.run()
    assert [t.label for t in at.text_input] == ["Username", "Password"]


def test_change_password_keeps_this_tab_signed_in(app, rt):
    user = make_user(rt, "dee", password="old password 1")
    at = app_test()
    old_token = sign_in(at, rt, user)
    at.run()
    open_page(at, "account").run()
    at.text_input[0].set_value("old password 1")
    at.text_input[1].set_value("new password 2")
    at.text_input[2].set_value("new password 2")
    at.button[0].click().run()
    assert not at.exception
    assert at.success and "Password changed" in at.success[0].value
    assert accounts.session_status(rt, old_token)[0] is None
    assert accounts.session_status(rt, at.session_state[TOKEN_KEY])[0].username == "dee"
    accounts.authenticate(rt, "dee", "new password 2")


def test_member_cannot_open_admin_pages(app, rt):
    member = make_user(rt, "mem")
    at = app_test()
    sign_in(at, rt, member)
    at.run()
    with pytest.raises(ValueError):
        open_page(at, "admin")
    assert "Admin" not in texts(at)


def test_admin_sees_admin_page(app, rt):
    admin = make_user(rt, "root", admin=True)
    make_user(rt, "mem")
    at = app_test()
    sign_in(at, rt, admin)
    at.run()
    open_page(at, "admin").run()
    assert not at.exception
    assert at.title[0].value == "Admin"
    assert list(at.dataframe[0].value["Username"]) == ["mem", "root"]


def test_signed_out_visitor_cannot_open_pages(app, rt):
    make_user(rt, "eve")
    at = app_test().run()
    for page in ("keys", "chat", "admin"):
        with pytest.raises(ValueError):
            open_page(at, page)


OIDC_SECRETS = {"redirect_uri": "http://localhost:8501/oauth2callback", "cookie_secret": "x" * 32,
                "client_id": "id", "client_secret": "secret",
                "server_metadata_url": "https://idp.example/.well-known/openid-configuration"}


def oidc_app(email: str, logged_in: bool = True, **claims):
    at = app_test()
    at.secrets["auth"] = OIDC_SECRETS
    at.user = {"is_logged_in": logged_in, "email": email, **claims}
    return at


def test_oidc_maps_the_email_to_an_existing_enabled_user(app, rt):
    make_user(rt, "ann@example.com")
    at = oidc_app("ann@example.com").run()
    assert not at.exception
    assert at.title[0].value == "Chat"
    assert any("ann@example.com" in text_of(c.value) for c in at.sidebar.caption)


def test_oidc_refuses_unknown_disabled_or_unverified_users(app, rt):
    make_user(rt, "someone")
    make_user(rt, "off@example.com")
    accounts.set_disabled(rt, Actor.operator(), "off@example.com", True)
    make_user(rt, "unverified@example.com")
    for at in (oidc_app("stranger@example.com"), oidc_app("unverified@example.com", email_verified=False)):
        at.run()
        assert not at.exception
        assert "Sign in with single sign-on" in [b.label for b in at.button]
        assert at.warning and "no enabled account" in at.warning[0].value
    at = oidc_app("OFF@example.com").run()  # the identity provider vouched for who this is: told why
    assert not at.exception and not at.sidebar.caption
    assert [text_of(w.value) for w in at.warning] == [
        "The account off@example.com is disabled; ask an admin to enable it."]
    at = oidc_app("", logged_in=False).run()
    assert "Sign in with single sign-on" in [b.label for b in at.button] and not at.warning


def test_admin_manages_users(app, rt):
    boss = make_user(rt, "boss", admin=True)
    at = app_test()
    sign_in(at, rt, boss)
    at.run()
    open_page(at, "admin").run()
    at.text_input(key="admin_new_name").set_value("newbie")
    at.text_input(key="admin_new_pw").set_value("newbie password")
    at.button(key="FormSubmitter:admin_create-Create user").click().run()
    assert not at.exception
    assert at.success and "Created the account newbie." in at.success[0].value
    assert not accounts.get_user(rt, "newbie").is_admin

    at.selectbox(key="admin_pick").select("newbie").run()
    at.button(key="admin_role").click().run()
    assert accounts.get_user(rt, "newbie").is_admin
    at.button(key="admin_disable").click().run()
    assert accounts.get_user(rt, "newbie").disabled
    at.button(key="admin_enable").click().run()
    assert not accounts.get_user(rt, "newbie").disabled
    at.text_input(key="admin_reset_pw").set_value("reset password 9")
    at.button(key="FormSubmitter:admin_reset-Reset password").click().run()
    accounts.authenticate(rt, "newbie", "reset password 9")

    at.selectbox(key="admin_pick").select("boss").run()  # an admin cannot lock themselves out
    assert at.button(key="admin_disable").disabled and at.button(key="admin_role").disabled
    audit_log = next(d.value for d in at.dataframe if "What happened" in d.value.columns)
    assert list(audit_log["What happened"])[:5] == [  # newest first, as sentences (not "user.create")
        "boss set a new password for newbie", "boss enabled newbie's account", "boss disabled newbie's account",
        "boss made newbie an admin", "boss created newbie's account as a member"]
    assert "newbie password" not in repr(at._tree) and "reset password 9" not in audit_log.to_csv()


def test_oidc_sign_out_ends_the_identity_too(app, rt):
    make_user(rt, "ann@example.com")
    at = oidc_app("ann@example.com").run()
    assert at.title[0].value == "Chat"
    at.button(key="shell_sign_out").click().run()
    assert not at.exception
    assert "Sign in with single sign-on" in [b.label for b in at.button]


# --- usernames in any capitals, deep links, pages a role may not open, why a session ended -----------


def open_url(at, url_path: str):
    """Request the page at ``/<url_path>`` on the next run, as a browser opening that URL does
    (AppTest.switch_page only finds page files the navigation registered)."""
    from streamlit.util import calc_hash

    at._page_hash = calc_hash(url_path)
    return at


def sign_in_form(at, username: str, password: str):
    at.text_input[0].set_value(username)
    at.text_input[1].set_value(password)
    return at.button[0].click().run()


def test_sign_in_ignores_capitals_and_width(app, rt):
    make_user(rt, "bob", password="bob's password")
    at = app_test().run()
    assert "Forgot your password? Ask an admin to reset it." in [c.value for c in at.caption]
    sign_in_form(at, " " + wide("BOB") + " ", "bob's password")  # full-width capitals, spaces around
    assert not at.exception and at.title[0].value == "Chat"
    assert any("**bob**" in c.value for c in at.sidebar.caption)


def test_a_signed_out_deep_link_signs_in_to_that_page(app, rt):
    make_user(rt, "ann", password="ann's password")
    at = open_url(app_test(), "keys").run()
    assert not at.exception
    assert [t.label for t in at.text_input] == ["Username", "Password"]
    sign_in_form(at, "Ann", "ann's password")
    assert not at.exception
    assert at.title[0].value == "Keys"  # the page asked for, not Chat
    assert at.run().title[0].value == "Keys"


def test_a_signed_out_deep_link_to_an_admin_page_then_says_it_is_for_admins(app, rt):
    make_user(rt, "ann", password="ann's password")
    at = open_url(app_test(), "budgets").run()
    sign_in_form(at, "ann", "ann's password")
    assert not at.exception and not at.title
    assert [text_of(e.value) for e in at.error] == [
        "Only admins can open the Budgets page; ask an admin if you need something there."]


@pytest.mark.parametrize("page, title", [("admin", "Admin"), ("budgets", "Budgets")])
def test_a_member_opening_an_admin_page_reads_one_sentence(app, rt, page, title):
    make_user(rt, "root", admin=True)
    member = make_user(rt, "mem")
    at = app_test()
    sign_in(at, rt, member)
    open_url(at.run(), page).run()
    assert not at.exception
    assert [text_of(e.value) for e in at.error] == [
        f"Only admins can open the {title} page; ask an admin if you need something there."]
    assert not at.title and not at.dataframe and "root" not in repr(at._tree)


def test_a_signed_in_visit_to_sign_in_goes_to_the_first_page(app, rt):
    user = make_user(rt, "ann")
    at = app_test()
    sign_in(at, rt, user)
    open_url(at, "signin").run()
    assert not at.exception and at.title[0].value == "Chat"


def test_a_disabled_account_is_told_so_after_its_right_password(app, rt):
    make_user(rt, "cy", password="cy's password")
    accounts.set_disabled(rt, Actor.operator(), "cy", True)
    at = app_test().run()
    sign_in_form(at, "cy", "not cy's password")
    assert [text_of(e.value) for e in at.error] == [accounts.SIGN_IN_FAILED]
    sign_in_form(at, "cy", "cy's password")
    assert [e.value for e in at.error] == ["Your account is disabled; ask an admin to enable it."]
    assert TOKEN_KEY not in at.session_state


@pytest.mark.parametrize("end, told", [
    ("password", "You were signed out because your password was changed; sign in with the new password "
                 "(if you did not change it, ask an admin)."),
    ("disable", "You were signed out because your account was disabled; ask an admin to enable it."),
    ("sign_out", "You were signed out in another tab or window; sign in again to go on."),
])
def test_a_session_ended_elsewhere_is_told_why_on_its_next_rerun(app, rt, end, told):
    user = make_user(rt, "dee", password="old password 1")
    at = app_test()
    token = sign_in(at, rt, user)
    at.run()
    assert at.title[0].value == "Chat" and not at.info
    if end == "password":
        accounts.set_password(rt, Actor.operator(), "DEE", "new password 2")
    elif end == "disable":
        accounts.set_disabled(rt, Actor.operator(), "dee", True)
    else:
        accounts.revoke_session(rt, token)
    at.run()
    assert not at.exception
    assert [t.label for t in at.text_input] == ["Username", "Password"]
    assert [i.value for i in at.info] == [told]
    if end != "disable":  # signing in again ends the explanation
        sign_in_form(at, "dee", "new password 2" if end == "password" else "old password 1")
        assert at.title[0].value == "Chat" and not at.info


def test_signing_out_here_needs_no_explanation(app, rt):
    user = make_user(rt, "eve")
    at = app_test()
    sign_in(at, rt, user)
    at.run()
    at.button(key="shell_sign_out").click().run()
    assert [t.label for t in at.text_input] == ["Username", "Password"] and not at.info


def admin_page(rt, name: str = "boss"):
    boss = make_user(rt, name, admin=True)
    at = app_test()
    sign_in(at, rt, boss)
    at.run()
    return open_page(at, "admin").run()


def test_a_refused_username_keeps_what_was_typed_and_the_rules_show_first(app, rt):
    make_user(rt, "bob")
    at = admin_page(rt)
    assert accounts.USERNAME_RULES in [c.value for c in at.caption]  # before any error
    at.text_input(key="admin_new_name").set_value("bad name")
    at.text_input(key="admin_new_pw").set_value("a fine password")
    at.checkbox(key="admin_new_admin").check()
    at.button(key="FormSubmitter:admin_create-Create user").click().run()
    assert [text_of(e.value) for e in at.error] == [accounts.USERNAME_RULES]
    assert at.text_input(key="admin_new_name").value == "bad name"
    assert at.text_input(key="admin_new_pw").value == "a fine password"
    assert at.checkbox(key="admin_new_admin").value

    at.text_input(key="admin_new_name").set_value("BOB")  # the same name as bob's
    at.button(key="FormSubmitter:admin_create-Create user").click().run()
    assert [text_of(e.value) for e in at.error] == [
        "The username “BOB” is taken (capitals do not make a different name); choose another."]
    assert at.text_input(key="admin_new_name").value == "BOB"

    at.text_input(key="admin_new_name").set_value("Carol")
    at.button(key="FormSubmitter:admin_create-Create user").click().run()
    assert [s.value for s in at.success] == ["Created the account Carol."] and not at.error
    assert accounts.get_user(rt, "carol").is_admin
    assert (at.text_input(key="admin_new_name").value, at.text_input(key="admin_new_pw").value) == ("", "")
    assert not at.checkbox(key="admin_new_admin").value


def test_search_prices_save_with_a_confirmation(app, rt):
    from byok_core import pricing
    from byok_core.providers import Provider

    at = admin_page(rt)
    assert not at.success
    at.number_input(key="admin_price_brave").set_value(0.0075).run()
    assert not at.exception
    assert [text_of(s.value) for s in at.success] == ["Saved: each Brave Search request now counts as $0.0075."]
    assert pricing.search_price(rt, Provider.BRAVE) == 0.0075


def test_an_admin_renames_an_account_and_it_keeps_signing_in(app, rt):
    make_user(rt, "bob", password="bob's password")
    at = admin_page(rt)
    at.selectbox(key="admin_pick").select("bob").run()
    at.text_input(key="admin_rename_to").set_value("Robert")
    at.button(key="FormSubmitter:admin_rename-Rename").click().run()
    assert not at.exception
    assert [s.value for s in at.success] == ["Renamed bob to Robert."]
    assert at.selectbox(key="admin_pick").value == "Robert"
    assert accounts.authenticate(rt, "robert", "bob's password").username == "Robert"
    audit_log = next(d.value for d in at.dataframe if "What happened" in d.value.columns)
    assert audit_log["What happened"].iloc[0] == "boss renamed bob to Robert"


def test_the_admin_page_lists_names_that_collide_from_before(app, rt):
    import sqlalchemy as sa

    older, newer = make_user(rt, "bob"), make_user(rt, "bobby")
    with rt.engine.begin() as conn:  # as migration 0007 leaves two accounts made before it
        conn.execute(sa.text("UPDATE users SET username = 'BOB', username_key = :k WHERE id = :id"),
                     {"k": f"bob#{newer.id}", "id": newer.id})
    at = admin_page(rt)
    assert [text_of(w.value) for w in at.warning] == [
        "The usernames 'bob' and 'BOB' now count as one name, so rename all but one of them under Manage a user "
        "(until then each signs in with its exact spelling, and any other spelling signs in to 'bob')."]
    at.selectbox(key="admin_pick").select("BOB").run()
    at.text_input(key="admin_rename_to").set_value("bob2")
    at.button(key="FormSubmitter:admin_rename-Rename").click().run()
    assert not at.warning and accounts.get_user(rt, "bob").id == older.id


def test_audit_events_read_as_sentences(rt):
    from byok_core import keys, words
    from byok_core.audit import AuditAction as A
    from byok_core.audit import Target
    from byok_core.identity import Actor, Owner, Role
    from byok_core.providers import Provider as P

    boss = make_user(rt, "admin", admin=True)
    keys.store(rt, Actor.of(boss), Owner.team(), P.BRAVE, "brave-team-key-0123456789ab12")
    stored = [e for e in audit.recent(rt) if e.action == A.KEY_STORE]
    assert [words.audit_sentence(e) for e in stored] == ["admin saved the team's Brave Search key bra…ab12"]

    names = {5: "bob", 1: "admin"}
    bobs, team = Owner.user(5), Owner.team()

    def said(actor: str, action: A, target: Target | None = None, **fields) -> str:
        return words.audit_sentence(audit.event(actor, action, target or Target(), **fields), names)

    def key(owner: Owner, provider: P, mask: str | None = None) -> Target:
        return Target(owner=owner, provider=provider, key_row_id="0a1b", mask=mask)

    assert said("bob", A.KEY_REPLACE, key(bobs, P.OPENAI, "sk-…9f3c")) == \
        "bob replaced their own OpenAI key with sk-…9f3c"
    assert said("admin", A.KEY_DELETE, key(bobs, P.ANTHROPIC, "sk-…9f3c")) == \
        "admin deleted bob's Anthropic key sk-…9f3c"
    assert said("system", A.KEY_DELETE, key(bobs, P.ANTHROPIC, "sk-…9f3c"), detail="replaced more than 30 days ago") \
        == "The app deleted bob's Anthropic key sk-…9f3c (replaced more than 30 days ago)"
    assert said("operator", A.KEY_ROTATE, key(team, P.TAVILY), detail="from master key a to b") == \
        "An operator (command line) re-encrypted the team's Tavily key under the new master key"
    assert said("system", A.KEY_DECRYPT_FAILED, key(Owner.user(7), P.OPENAI), detail="wrong master key") == \
        "The app could not decrypt a removed account's OpenAI key: wrong master key"
    assert said("setup", A.USER_CREATE, Target(username="admin", role=Role.ADMIN), detail="first-run setup") == \
        "First-run setup created admin's account as an admin"
    assert said("oidc", A.USER_ROLE, Target(username="bob", role=Role.ADMIN),
                detail="from their single sign-on groups") == \
        "Single sign-on made bob an admin from their single sign-on groups"
    assert said("admin", A.USER_ROLE, Target(username="bob", role=Role.MEMBER)) == "admin made bob a member"
    assert said("admin", A.USER_DISABLE, Target(username="bob")) == "admin disabled bob's account"
    assert said("bob", A.USER_PASSWORD, Target(username="bob")) == "bob changed their password"
    assert said("admin", A.USER_PASSWORD, Target(username="bob")) == "admin set a new password for bob"
    assert said("system", A.USER_THROTTLED, Target(username="bob"), detail="3 failed tries") == \
        "Sign-ins to bob's account were slowed down after 3 failed tries"
    assert said("admin", A.USER_RENAME, Target(username="robert"), detail="bob") == "admin renamed bob to robert"
    assert said("admin", A.BUDGET_SET, Target(owner=bobs), usd=25) == \
        "admin set bob's budget on shared keys to $25.00 a month"
    assert said("admin", A.BUDGET_CLEAR, Target(owner=team)) == "admin removed the team's budget on shared keys"
    assert said("admin", A.LIMITS_SET, detail="5 per user, no limit for the team, per minute") == \
        "admin set the rate limits on shared keys: 5 per user, no limit for the team, per minute"
    assert said("admin", A.MODELS_SET, Target(role=Role.MEMBER, provider=P.OPENAI), detail="gpt-4o-mini") == \
        "admin let members use only these OpenAI models on shared keys: gpt-4o-mini"
    assert said("admin", A.MODELS_SET, Target(owner=bobs, provider=P.ANTHROPIC)) == \
        "admin let bob use any Anthropic model on shared keys"
    assert said("admin", A.ALERTS_SET, detail="hooks.example.com") == \
        "admin set the budget alert webhook to an address at hooks.example.com"
    assert said("admin", A.ALERTS_SET) == "admin removed the budget alert webhook"
    assert said("operator", A.ALERTS_ROTATE, detail="to master key 0a1b2c3d") == \
        "An operator (command line) re-encrypted the budget alert webhook under the new master key"
    assert said("admin", A.PRICE_SET, Target(provider=P.BRAVE), usd=0.0075) == \
        "admin set the price of a Brave Search request to $0.0075"
    assert said("operator", A.PRICE_SET, Target(provider=P.OPENAI, model="my tuned model"), usd=0.02) == \
        "An operator (command line) set the per-call price of OpenAI model my tuned model to $0.0200"
    assert said("admin", A.PRICE_SET, Target(provider=P.ANTHROPIC, model="x")) == \
        "admin removed the per-call price of Anthropic model x"
    # an event without the fields its action needs: the action's words alone
    assert said("admin", A.PRICE_SET, Target(provider=P.BRAVE)) == \
        said("admin", A.PRICE_SET, Target(model="y"), usd=1) == "admin changed a price"
    assert said("admin", A.USER_CREATE, key(team, P.BRAVE)) == "admin created an account"
    assert said("admin", A.BUDGET_SET, key(team, P.BRAVE)) == "admin set a budget"
    assert said("admin", A.USER_ROLE, Target(username="bob")) == "admin changed a role"
