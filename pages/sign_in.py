"""Sign in with a local username and password (or single sign-on when it is configured)."""

import streamlit as st

from byok_core import accounts
from byok_core.errors import AuthError
from byok_ui import state
from byok_ui.runtime import open_or_explain

rt = open_or_explain()

_, middle, _ = st.columns([1, 2, 1])
with middle:
    st.title("BYOK Dashboard", anchor=False)
    st.caption("Chat and search on your team's own API keys.")
    with st.form("sign_in", enter_to_submit=True, border=True):
        username = st.text_input("Username", max_chars=64, autocomplete="username")
        password = st.text_input("Password", type="password", max_chars=1024, autocomplete="current-password")
        submitted = st.form_submit_button("Sign in", type="primary", width="stretch")
    if submitted:
        try:
            user = accounts.authenticate(rt, username, password)
        except AuthError as exc:
            st.error(str(exc))
        else:
            state.start_session(rt, user)
            st.rerun()
    if state.oidc_configured():
        st.divider()
        if st.button("Sign in with single sign-on", icon=":material/badge:", width="stretch"):
            st.login()
        if st.user.is_logged_in:
            st.warning(
                f"You signed in as {st.user.get('email') or 'an unknown email'}, but there is no enabled "
                "account with that email as its username (or your identity provider has not verified the "
                "email). Ask an admin to create or enable one."
            )
            if st.button("Sign out of single sign-on"):
                st.logout()
