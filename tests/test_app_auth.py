"""AppTest: start-up, first-run setup, sign-in, sign-out, password change, and role gating."""

from __future__ import annotations

import pytest
from apptest import app_test, make_user, open_page, sign_in, use_environment

from byok_core import accounts
from byok_ui.state import TOKEN_KEY


def texts(at) -> str:
    """Every text the page shows (markdown, titles, alerts, captions, widget labels)."""
    parts = []
    for kind in ("title", "header", "subheader", "markdown", "caption", "error", "warning", "success", "info"):
        parts += [str(e.value) for e in getattr(at, kind)]
    parts += [w.label for w in at.text_input] + [b.label for b in at.button]
    return "\n".join(parts)


def nav_titles(at) -> set[str]:
    return {p["page_name"] for p in at._registered_pages.values()} if hasattr(at, "_registered_pages") else set()


def test_bad_configuration_is_explained_in_plain_words(environ, monkeypatch):
    use_environment(monkeypatch, {**environ, "ENCRYPTION_KEY": "not-a-key"})
    at = app_test().run()
    assert not at.exception
    assert at.error and "ENCRYPTION_KEY" in at.error[0].value
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
    assert accounts.user_for_session(rt, at.session_state[TOKEN_KEY]).username == "boss"
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
    assert at.error[0].value == wrong == accounts.SIGN_IN_FAILED

    at.text_input[0].set_value("ann")
    at.text_input[1].set_value("ann's password")
    at.button[0].click().run()
    assert not at.exception
    assert at.title[0].value == "Chat"
    token = at.session_state[TOKEN_KEY]
    assert accounts.user_for_session(rt, token).username == "ann"
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
    assert accounts.user_for_session(rt, token) is None
    assert "Sign in" in [b.label for b in at.button]
    assert "/byok/signout" in "".join(h.value for h in at.html)


def test_revoked_or_disabled_session_is_signed_out(app, rt):
    user = make_user(rt, "cy")
    at = app_test()
    sign_in(at, rt, user)
    at.run()
    assert at.title[0].value == "Chat"
    accounts.set_disabled(rt, "cy", True)
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
    assert accounts.user_for_session(rt, old_token) is None
    assert accounts.user_for_session(rt, at.session_state[TOKEN_KEY]).username == "dee"
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
    assert any("ann@example.com" in c.value for c in at.sidebar.caption)


def test_oidc_refuses_unknown_disabled_or_unverified_users(app, rt):
    make_user(rt, "someone")
    make_user(rt, "off@example.com")
    accounts.set_disabled(rt, "off@example.com", True)
    make_user(rt, "unverified@example.com")
    for at in (oidc_app("stranger@example.com"), oidc_app("off@example.com"),
               oidc_app("unverified@example.com", email_verified=False)):
        at.run()
        assert not at.exception
        assert "Sign in with single sign-on" in [b.label for b in at.button]
        assert at.warning and "no enabled account" in at.warning[0].value
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
    assert at.success and "Created 'newbie'" in at.success[0].value
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
    audit_log = next(d.value for d in at.dataframe if "Action" in d.value.columns)
    assert {"created an account", "changed a role", "disabled an account", "enabled an account",
            "set a password"} <= set(audit_log["Action"])  # in words, not "user.create"
    assert "newbie password" not in repr(at._tree) and "reset password 9" not in audit_log.to_csv()


def test_oidc_sign_out_ends_the_identity_too(app, rt):
    make_user(rt, "ann@example.com")
    at = oidc_app("ann@example.com").run()
    assert at.title[0].value == "Chat"
    at.button(key="shell_sign_out").click().run()
    assert not at.exception
    assert "Sign in with single sign-on" in [b.label for b in at.button]
