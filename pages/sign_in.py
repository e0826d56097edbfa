"""Sign in with a local username and password (or single sign-on when it is configured).

The shell shows this page at the URL of any page while signed out; after signing in, the rerun
opens the page that URL names."""

import streamlit as st

from byok_core import accounts
from byok_core.errors import AuthError
from byok_core.md import md_escape
from byok_ui import state
from byok_ui.process import open_or_explain

rt = open_or_explain()

_, middle, _ = st.columns([1, 2, 1])
with middle:
    st.title("BYOK Dashboard", anchor=False)
    st.caption("Chat and search on your team's own API keys.")
    reason = state.signed_out_reason()
    if reason:
        st.info(reason, icon=":material/info:")
    with st.form("sign_in", enter_to_submit=True, border=True):
        username = st.text_input("Username", max_chars=64, autocomplete="username",
                                 help="Capitals do not matter: Bob and bob are the same account.")
        password = st.text_input("Password", type="password", max_chars=1024, autocomplete="current-password")
        submitted = st.form_submit_button("Sign in", type="primary", width="stretch")
    st.caption("Forgot your password? Ask an admin to reset it.")
    if submitted:
        try:
            user = accounts.authenticate(rt, username, password)
        except AuthError as exc:
            st.error(md_escape(str(exc)), icon=":material/error:")
        else:
            state.start_session(rt, user)
            st.rerun()
    if state.oidc_configured():
        st.divider()
        if st.button("Sign in with single sign-on", icon=":material/badge:", width="stretch"):
            st.login()
        if st.user.is_logged_in:
            email = str(st.user.get("email") or "")
            known = accounts.find_user(rt, email) if email and st.user.get("email_verified") is not False else None
            if known is not None and known.disabled:  # the identity provider vouched for who this is
                st.warning(f"The account {md_escape(known.username)} is disabled; ask an admin to enable it.")
            else:
                st.warning(
                    f"You signed in as {md_escape(email) or 'an unknown email'}, but there is no enabled account with "
                    "that email as its username (or your identity provider has not verified the email), so ask an "
                    "admin to create or enable one."
                )
            if st.button("Sign out of single sign-on"):
                st.logout()
